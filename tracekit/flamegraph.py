"""Flame graphs of the store's spans, as self-contained SVG (``tracekit flamegraph``).

A frame is a call path (``outer;...;inner``, from :func:`tracekit.export.folded_stacks`,
without the task's name, so that runs whose traces name their tasks differently compare);
its width is the time spent in it and in what it calls, summed over the spans of the
runs drawn and divided by their number (the mean per run).  Callers are at the bottom,
callees above, siblings in alphabetical order (the layout of Brendan Gregg's
flamegraph.pl).

A differential flame graph draws the *before* runs' frames, widths from before, each
coloured by how its time per run changed after the patch: red where it grew, blue where it
shrank, the deeper the larger the change (full at +-50%); white where it did not change.
Call paths only the after side has cannot be drawn at a before width: their time is in
the subtitle.  Every frame's ``<title>`` (the tooltip) gives both sides' times and the
change.  Frames narrower than a tenth of a pixel are not drawn (their time is within their
callers' widths); the subtitle says how many.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass, field

import polars as pl

from tracekit.errors import InputError, OptionError
from tracekit.export import folded_stacks
from tracekit.store import Store

__all__ = ["Frame", "build_tree", "render_svg", "flamegraph", "side_spans"]

WIDTH = 1200
FRAME_H = 16
PAD_TOP = 90
PAD_BOTTOM = 20
PAD_SIDE = 10
FONT = 12
CHAR_W = 7.2  # width of one character of the 12px monospace font
SATURATE = 0.5  # a change of 50% or more is drawn at full colour


@dataclass
class Frame:
    """One call path: its own name, its time per run on each side (inclusive of callees),
    and its callees."""

    name: str
    before: float = 0.0
    after: float = 0.0
    children: dict[str, "Frame"] = field(default_factory=dict)

    def child(self, name: str) -> "Frame":
        if name not in self.children:
            self.children[name] = Frame(name)
        return self.children[name]


def build_tree(before: pl.DataFrame, after: pl.DataFrame | None = None, runs_before: int = 1,
               runs_after: int = 1) -> Frame:
    """The tree of call paths from folded stacks (stack, value) of one side or two, each
    value divided by its side's run count."""
    root = Frame("all")
    for df, side, n in ((before, "before", runs_before), (after, "after", runs_after)):
        if df is None:
            continue
        for stack, value in df.iter_rows():
            v = value / max(n, 1)
            node = root
            setattr(node, side, getattr(node, side) + v)
            for name in stack.split(";"):
                node = node.child(name)
                setattr(node, side, getattr(node, side) + v)
    return root


def _depth(f: Frame) -> int:
    return 1 + max((_depth(c) for c in f.children.values()), default=0)


def _hot_colour(name: str) -> str:
    """flamegraph.pl's warm palette, the same colour for the same name every time."""
    h = hashlib.blake2b(name.encode(), digest_size=3).digest()
    return f"rgb({205 + h[0] * 50 // 255},{h[1] * 230 // 255},{h[2] * 55 // 255})"


def _diff_colour(change: float | None) -> str:
    if change is None:  # in before only: it went away
        change = -1.0
    x = max(-1.0, min(1.0, change / SATURATE))
    fade = int(round(255 * (1 - abs(x))))
    return f"rgb(255,{fade},{fade})" if x > 0 else f"rgb({fade},{fade},255)"


def _ns(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.3f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.3f} us"
    return f"{v:.0f} ns"


def render_svg(root: Frame, title: str, subtitle: list[str], differential: bool) -> str:
    """The tree as an SVG document: widths from the before side (the only side of a plain
    graph)."""
    depth = _depth(root)
    height = PAD_TOP + depth * FRAME_H + PAD_BOTTOM
    scale = (WIDTH - 2 * PAD_SIDE) / root.before if root.before else 0.0
    rects: list[str] = []
    hidden = 0

    def draw(f: Frame, x: float, level: int) -> None:
        nonlocal hidden
        w = f.before * scale
        if w < 0.1:
            hidden += 1
            return
        y = height - PAD_BOTTOM - (level + 1) * FRAME_H
        share = 100 * f.before / root.before
        if differential:
            change = (f.after - f.before) / f.before if f.after else None
            fill = _diff_colour(change)
            after = f"{_ns(f.after)}, {change * 100:+.1f}%" if change is not None else "none (gone after)"
            tip = f"{f.name}: before {_ns(f.before)} per run ({share:.2f}%), after {after}"
        else:
            fill = _hot_colour(f.name)
            tip = f"{f.name}: {_ns(f.before)} per run ({share:.2f}%)"
        label = f.name if len(f.name) * CHAR_W <= w - 4 else f.name[: max(0, int((w - 4) / CHAR_W) - 2)] + ".."
        text = (f'<text x="{x + 3:.2f}" y="{y + FRAME_H - 4:.2f}">{html.escape(label)}</text>'
                if w >= 3 * CHAR_W else "")
        rects.append(f'<g><title>{html.escape(tip)}</title><rect x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" '
                     f'height="{FRAME_H - 1}" rx="2" fill="{fill}"/>{text}</g>')
        cx = x
        for name in sorted(f.children):
            c = f.children[name]
            draw(c, cx, level + 1)
            cx += c.before * scale

    if root.before:
        draw(root, PAD_SIDE, 0)
    if hidden:
        subtitle = [*subtitle, f"{hidden} frames narrower than 0.1 px not drawn"]
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans Mono, monospace" font-size="{FONT}">'
            f'<rect width="100%" height="100%" fill="#f8f8f8"/>'
            f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="17">{html.escape(title)}</text>'
            + "".join(f'<text x="{WIDTH / 2}" y="{42 + 14 * i}" text-anchor="middle" fill="#555">{html.escape(line)}</text>'
                      for i, line in enumerate(subtitle)))
    return head + "".join(rects) + "</svg>\n"


def side_spans(store: Store, patch: str | None, label: str | None, run: str | None) -> tuple[pl.DataFrame, int]:
    """The spans of the runs chosen (a run id or prefix, or a patch's runs with a label),
    and how many runs they are."""
    from tracekit.rows import RowFilter, runs_matching

    ids = runs_matching(store, RowFilter(patch=patch, label=label, run=run))["run_id"].to_list()
    if not ids:
        what = f"run {run!r}" if run else f"runs of patch {patch!r} labelled {label!r}"
        raise OptionError(f"no {what} in the store (tracekit runs)")
    spans = store.spans().filter(pl.col("run_id").is_in(ids)).collect()
    return spans, len(ids)


def flamegraph(store: Store, *, patch: str | None = None, before: str = "before", after: str = "after",
               run: str | None = None, func: str | None = None) -> str:
    """A flame graph SVG: of one run (``run``), or differential of ``patch``'s ``before``
    and ``after`` runs.  With ``func``, only the call paths through that function."""
    if run is not None:
        spans, n = side_spans(store, None, None, run)
        b, a, na = folded_stacks(spans, comm=False), None, 0
        title = f"run {run}" + (f": calls through {func}" if func else "")
    else:
        if patch is None:
            raise OptionError("give --patch P (before against after) or --run R (one run)")
        spans, n = side_spans(store, patch, before, None)
        after_spans, na = side_spans(store, patch, after, None)
        b, a = folded_stacks(spans, comm=False), folded_stacks(after_spans, comm=False)
        title = f"{patch}: {after} against {before}" + (f", calls through {func}" if func else "")
    if func is not None:
        b = _through(b, func)
        a = _through(a, func) if a is not None else None
    if not b.height:
        raise InputError(f"no complete spans{' through ' + func if func else ''} in the {'run' if run else before + ' runs'}: nothing to draw")
    root = build_tree(b, a, n, na)
    if a is None:
        subtitle = [f"widths: time per run ({_ns(root.before)} in all)"]
        return render_svg(root, title, subtitle, differential=False)
    only_after = _only_after(root)
    subtitle = [f"widths: {before}, {n} run(s), {_ns(root.before)} per run",
                f"colour: change per run in {after}, {na} run(s), {_ns(root.after)} per run: red grew, blue shrank"]
    if only_after:
        subtitle.append(f"{_ns(only_after)} per run in call paths only {after} has: not drawn")
    return render_svg(root, title, subtitle, differential=True)


def _through(stacks: pl.DataFrame, func: str) -> pl.DataFrame:
    """The stacks that pass through ``func``, cut to start at its outermost call."""
    parts = pl.col("stack").str.split(";")
    hit = stacks.filter(parts.list.contains(func))
    return hit.with_columns(pl.col("stack").str.replace(r"^(?:[^;]*;)*?(" + _re_escape(func) + r"(?:;|$))", "${1}"))


def _re_escape(s: str) -> str:
    import re

    return re.escape(s)


def _only_after(f: Frame) -> float:
    """Time per run in call paths the before side does not have."""
    if f.before == 0:
        return f.after
    return sum(_only_after(c) for c in f.children.values())
