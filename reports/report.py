"""One call that makes the whole report: compare, render every requested format, draw the
plots, write them into the output directory.  ``tracekit report`` is a thin layer over
:func:`write_report`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tracekit.reports.compare import Comparison, ReportError, ReportSource, compare, open_source
from tracekit.reports.patch import PatchInfo, read_patch

__all__ = ["FORMATS", "ReportResult", "write_report", "parse_formats"]

#: Output formats and their file names.
FORMATS = {"text": "report.txt", "md": "report.md", "html": "report.html", "json": "report.json"}


@dataclass
class ReportResult:
    """What was written, and the comparison behind it."""

    comparison: Comparison
    out_dir: Path
    files: dict[str, Path] = field(default_factory=dict)  # format -> file
    plots: list[Path] = field(default_factory=list)
    text: str | None = None  # report.txt's content, when written

    @property
    def any_regression(self) -> bool:
        return self.comparison.any_regression


def parse_formats(spec: str | list[str] | None) -> list[str]:
    """``"text,md"`` -> ["text", "md"]; ReportError naming the known formats otherwise."""
    if spec is None:
        return list(FORMATS)
    items = spec.split(",") if isinstance(spec, str) else [x for s in spec for x in s.split(",")]
    names = [x.strip().lower() for x in items if x.strip()]
    aliases = {"txt": "text", "markdown": "md"}
    names = [aliases.get(n, n) for n in names]
    bad = [n for n in names if n not in FORMATS]
    if bad or not names:
        raise ReportError(f"unknown --format {', '.join(bad) or '(empty)'}; choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(names))


def _require_comparable(comp: Comparison) -> None:
    """A report that compares nothing is an error, not a pass (it would pass
    --fail-on-regression in CI): no arch has runs on every side, or none of the functions
    has a completed call on any side."""
    names = [s.name for s in comp.sides]
    shared = [g for g in comp.groups if all(g.runs.get(s) for s in names)]
    if not shared:
        per = {s: sorted({g.arch for g in comp.groups if g.runs.get(s)}) for s in names}
        said = "; ".join(f"{s}: {', '.join(a) or 'none'}" for s, a in per.items())
        raise ReportError(f"the sides share no arch, so nothing can be compared ({said})")
    if not any(f.before.n or f.after.n for g in shared for f in g.functions) and not any(g.windows for g in shared):
        wanted = ", ".join(comp.functions_requested) or "(none)"
        raise ReportError(f"no completed call of {wanted} on any side of patch {comp.patch!r}: nothing to compare "
                          "(see tracekit sql \"SELECT func, count(*) FROM spans GROUP BY func\")")


def flame_graphs(src: ReportSource, comp: Comparison, patch: str | list[str], before: str,
                 after: str | list[str]) -> list[tuple[str, str | None, str]]:
    """A differential flame graph (:func:`tracekit.flamegraph.flamegraph`) of the calls
    through each function of interest, per side compared with ``before``: (caption, SVG or
    None, why there is none).  Drawn from a store's call paths, so only for one patch read
    from a store."""
    from tracekit.errors import TracekitError
    from tracekit.flamegraph import flamegraph
    from tracekit.store import Store

    if not isinstance(src, Store) or not isinstance(patch, str):
        return []
    present = [f for f in comp.functions_requested if f not in comp.functions_missing]
    out = []
    for label in [after] if isinstance(after, str) else after:
        for func in present:
            caption = f"{func}: calls through it, {label} against {before}"
            try:
                out.append((caption, flamegraph(src, patch=patch, before=before, after=label, func=func), ""))
            except TracekitError as e:
                out.append((caption, None, str(e)))
    return out


def clear_plots(out_dir: Path) -> int:
    """Remove the plots a previous report left in ``out_dir``/plots; returns how many."""
    d = Path(out_dir) / "plots"
    removed = 0
    if d.is_dir():
        for p in list(d.glob("*.png")) + list(d.glob("*.svg")):
            p.unlink()
            removed += 1
    return removed


def write_report(
    patch: str | list[str],
    *,
    store: str | os.PathLike | ReportSource | None = None,
    patch_file: str | os.PathLike | None = None,
    patch_info: PatchInfo | None = None,
    before: str = "before",
    after: str | list[str] = "after",
    functions: list[str] | None = None,
    under: str | None = None,
    out_dir: str | os.PathLike = "tracekit-report",
    formats: str | list[str] | None = None,
    plots: bool = True,
) -> ReportResult:
    """Compare the ``before`` (baseline) runs of ``patch`` with each ``after`` side and
    write the report files into ``out_dir`` (the plots of an earlier report there are
    removed).  ``patch`` may be several patches, ``after`` several labels (see
    :func:`compare`); ``under`` keeps only calls made inside that caller.  Raises
    ReportError (no such patch, empty store, bad format) or PatchError (unreadable patch
    file)."""
    fmts = parse_formats(formats)
    src = store if hasattr(store, "spans") else open_source(store)
    if patch_info is None and patch_file is not None:
        patch_info = read_patch(patch_file)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out}: not a directory (the report is several files)")
    comp = compare(src, patch, before=before, after=after, functions=functions, under=under, patch_info=patch_info)
    _require_comparable(comp)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"--out {out}: cannot make the directory: {e.strerror or e}") from e
    result = ReportResult(comparison=comp, out_dir=out)
    plot_map = {}
    clear_plots(out)
    if plots and ({"md", "html"} & set(fmts)):
        from tracekit.reports.plots import make_plots  # (matplotlib: 0.3 s, for a report with plots only)

        plot_map = make_plots(comp, out)
        result.plots = [p for g in plot_map.values() for files in g.values() for p in files.values()]
    for name in fmts:
        if name == "text":
            from tracekit.reports.render_text import render_text

            content = render_text(comp)
            result.text = content
        elif name == "md":
            from tracekit.reports.render_md import render_md

            content = render_md(comp, plot_map, out)
        elif name == "html":
            from tracekit.reports.render_html import render_html

            content = render_html(comp, plot_map, flame_graphs(src, comp, patch, before, after) if plots else None)
        else:
            from tracekit.reports.render_json import render_json

            content = render_json(comp)
        path = out / FORMATS[name]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(content, encoding="ascii" if name == "text" else "utf-8")
        tmp.replace(path)
        result.files[name] = path
    return result
