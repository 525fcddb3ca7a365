"""Plots of the comparison, as PNG (for mail and the HTML report) and SVG (for papers and
slides), drawn with matplotlib's Agg backend, sized to be read as a mail attachment
(640 x 400 pixels at 100 dpi):

* per function: the before/after CDF of call durations on a log time axis, and the
  histogram (log-spaced bins, fraction of calls per side so that sides of unequal size
  compare);
* per latency tracer: the worst window of each side on a per-CPU timeline of its own
  trace lines (time since the window opened), the two sides on one time scale.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from tracekit.reports import fmt  # noqa: E402
from tracekit.reports.compare import Comparison, WindowResult, WindowSide  # noqa: E402

__all__ = ["plot_cdf", "plot_histogram", "plot_window", "make_plots", "FIGSIZE", "DPI"]

FIGSIZE = (6.4, 4.0)
DPI = 100
COLORS = {"before": "#1f5fa8", "after": "#d9620b"}

plt.rcParams.update(
    {
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "svg.fonttype": "none",  # text stays text in the SVG
        "svg.hashsalt": "tracekit",  # reproducible SVG ids
    }
)


def _save(fig: plt.Figure, stem: Path) -> dict[str, Path]:
    """Write ``stem``.png and ``stem``.svg; returns both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for ext in ("png", "svg"):
        p = stem.with_suffix(f".{ext}")
        meta = {"Software": None} if ext == "png" else {"Date": None}
        fig.savefig(p, format=ext, dpi=DPI, metadata=meta)
        out[ext] = p
    plt.close(fig)
    return out


def _log_time_axis(ax: plt.Axes, values_us: np.ndarray) -> None:
    """A log x axis labelled with plain numbers (1, 2, 5, 10, ... us): easier to read than
    powers of ten, and much cheaper to draw than mathtext labels."""
    ax.set_xscale("log")
    v = values_us[values_us > 0]
    span = v.max() / v.min() if v.size else 10.0
    subs = (1.0, 2.0, 5.0) if span > 20 else tuple(float(i) for i in range(1, 10))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _t(s: object) -> str:
    """Text from a trace, safe for matplotlib: a '$' would start mathtext."""
    return str(s).replace("$", r"\$")


def _us(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) / 1000.0


def _legend(label: str, x: np.ndarray, kernels: list[str]) -> str:
    k = f", {', '.join(kernels)}" if kernels else ""
    return _t(f"{label} (n={x.size}{k})")


def plot_cdf(
    title: str,
    before: np.ndarray,
    after: np.ndarray,
    stem: Path,
    labels: tuple[str, str] = ("before", "after"),
    kernels: tuple[list[str], list[str]] = ([], []),
) -> dict[str, Path]:
    """Empirical CDF of call durations of both sides, log time axis in microseconds, the
    medians marked."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for x, side, label, kern in ((before, "before", labels[0], kernels[0]), (after, "after", labels[1], kernels[1])):
        xs = np.sort(_us(x))
        xs = xs[xs > 0]
        if xs.size == 0:
            continue
        y = np.arange(1, xs.size + 1) / xs.size
        ax.step(xs, y, where="post", color=COLORS[side], lw=1.6, label=_legend(label, xs, kern))
        ax.axvline(np.median(xs), color=COLORS[side], ls="--", lw=0.9, alpha=0.8)
    _log_time_axis(ax, np.concatenate([_us(before), _us(after)]))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("call duration (us, log scale)")
    ax.set_ylabel("fraction of calls <= duration")
    ax.set_title(_t(title))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=9, title="dashed lines: medians", title_fontsize=8)
    fig.tight_layout()
    return _save(fig, stem)


def plot_histogram(
    title: str,
    before: np.ndarray,
    after: np.ndarray,
    stem: Path,
    labels: tuple[str, str] = ("before", "after"),
    kernels: tuple[list[str], list[str]] = ([], []),
) -> dict[str, Path]:
    """Histogram of call durations of both sides on log-spaced bins (fraction of each
    side's calls per bin)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    allx = np.concatenate([_us(before), _us(after)])
    allx = allx[allx > 0]
    if allx.size:
        lo, hi = allx.min(), allx.max()
        if hi <= lo:
            hi = lo * 1.1 + 1e-9
        bins = np.logspace(np.log10(lo), np.log10(hi), 40)
        for x, side, label, kern in ((before, "before", labels[0], kernels[0]), (after, "after", labels[1], kernels[1])):
            xs = _us(x)
            xs = xs[xs > 0]
            if xs.size == 0:
                continue
            w = np.full(xs.size, 1.0 / xs.size)
            ax.hist(xs, bins=bins, weights=w, histtype="stepfilled", alpha=0.35, color=COLORS[side])
            ax.hist(xs, bins=bins, weights=w, histtype="step", lw=1.4, color=COLORS[side], label=_legend(label, xs, kern))
    _log_time_axis(ax, allx)
    ax.set_xlabel("call duration (us, log scale)")
    ax.set_ylabel("fraction of calls")
    ax.set_title(_t(title))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=9)
    fig.tight_layout()
    return _save(fig, stem)


def _window_lane(ax: plt.Axes, s: WindowSide, side: str, label: str, xmax_us: float) -> None:
    ev = s.events
    cpu_default = s.cpu if s.cpu is not None else 0
    title = (f"{label}: {fmt.ns(s.worst_latency_ns)} in {s.comm or '?'}-{s.pid}, "
             f"{s.started_at or '?'} -> {s.ended_at or '?'}")
    ax.set_title(_t(title), fontsize=10, loc="left")
    lanes = {int(cpu_default)}
    if ev is not None and ev.height and "ts_ns" in ev.columns:
        ev = ev.filter(ev["ts_ns"].is_not_null())
        if "func" in ev.columns:
            ev = ev.filter(ev["func"].is_not_null())  # the stack-trace and marker lines carry no time of their own
        if ev.height:
            ts = ev["ts_ns"].to_numpy().astype(np.float64)
            cpus = ev["cpu"].fill_null(cpu_default).to_numpy() if "cpu" in ev.columns else np.full(ts.size, cpu_default)
            t_us = (ts - ts.min()) / 1000.0
            names = ev["func"].to_list() if "func" in ev.columns else [""] * ts.size
            lanes |= {int(c) for c in cpus}
            ax.scatter(t_us, cpus, marker="|", s=400, color=COLORS[side], lw=2, zorder=3)
            # Alternate labels above and below the lane, so that lines a few us apart
            # (the last function hit and tracer_preempt_on) stay readable.
            for i, (x, c, name) in enumerate(zip(t_us, cpus, names)):
                dy = (12 + 10 * (i // 2 % 2)) * (1 if i % 2 == 0 else -1)
                ax.annotate(_t(f"{str(name)[:28]} @{x:.0f}us"), (x, c), xytext=(2, dy), textcoords="offset points",
                            fontsize=7, color="#333333", va="center",
                            ha="right" if x > 0.6 * xmax_us else "left")
    ax.barh([cpu_default], [s.worst_latency_ns / 1000.0], left=0.0, height=0.35,
            color=COLORS[side], alpha=0.3, label=_t(f"{label}: latency {fmt.ns(s.worst_latency_ns)}"))
    ax.set_ylabel("CPU")
    ax.set_yticks(sorted(lanes))


def plot_window(title: str, w: WindowResult, stem: Path, labels: tuple[str, str] = ("before", "after")) -> dict[str, Path]:
    """The worst window of each side as a per-CPU timeline of its trace lines, both sides
    on the same time axis (microseconds since the window opened)."""
    sides = [(s, side, lab) for s, side, lab in ((w.before, "before", labels[0]), (w.after, "after", labels[1])) if s is not None]
    fig, axes = plt.subplots(len(sides) or 1, 1, figsize=(FIGSIZE[0], 1.2 + 1.6 * max(1, len(sides))), sharex=True, squeeze=False)
    xmax_us = max([s.worst_latency_ns / 1000.0 for s, _, _ in sides] or [1.0])
    for ax, (s, side, lab) in zip(axes[:, 0], sides):
        _window_lane(ax, s, side, lab, xmax_us)
        ax.margins(y=0.6)
    axes[-1, 0].set_xlabel("time since the window opened (us)")
    fig.suptitle(_t(title), fontsize=11)
    fig.tight_layout()
    return _save(fig, stem)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:80]


def make_plots(c: Comparison, out_dir: Path) -> dict[str, dict[str, dict[str, Path]]]:
    """Every plot of the report under ``out_dir``/plots; returns, per group key, a map
    ``"cdf:<func>" | "hist:<func>" | "window:<tracer>"`` -> {"png": path, "svg": path}."""
    plots_dir = Path(out_dir) / "plots"
    labels = (c.before_label, c.after_label)
    result: dict[str, dict[str, dict[str, Path]]] = {}
    for g in c.groups:
        made: dict[str, dict[str, Path]] = {}
        kern = (g.kernels("before"), g.kernels("after"))
        for f in g.functions:
            b, a = g.samples.get(f.function, (np.empty(0), np.empty(0)))
            if b.size == 0 and a.size == 0:
                continue
            base = plots_dir / f"{g.slug}-{_safe(f.function)}"
            made[f"cdf:{f.function}"] = plot_cdf(
                f"{g.key}: {f.function}() call duration, CDF", b, a, Path(f"{base}-cdf"), labels, kern)
            made[f"hist:{f.function}"] = plot_histogram(
                f"{g.key}: {f.function}() call duration", b, a, Path(f"{base}-hist"), labels, kern)
        for w in g.windows:
            made[f"window:{w.tracer}"] = plot_window(
                f"{g.key}: worst {w.tracer} window, {labels[0]} and {labels[1]}", w,
                plots_dir / f"{g.slug}-window-{_safe(w.tracer)}", labels)
        result[g.key] = made
    return result


def png_bytes(path: Path) -> bytes:
    """The bytes of a plot's PNG (for embedding)."""
    with io.open(path, "rb") as fh:
        return fh.read()
