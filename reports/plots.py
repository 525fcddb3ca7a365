"""Plots of the comparison, as PNG (for mail and the HTML report) and SVG (for papers and
slides), drawn with matplotlib's Agg backend, 1200 pixels wide, each titled with the patch
and the group, legends outside the axes so that they never cover data:

* per function: the CDF of call durations of every side on a log time axis (ticks at 1, 2
  and 5 times a power of ten, in the unit that suits the plot: ns, us or ms), each unit's
  median marked beneath it, and the histogram (log-spaced bins, fraction of calls per side
  so that sides of unequal size compare);
* per latency tracer: the worst window of each side as a timeline of its trace lines (time
  since the window opened), every line one tick (a density strip beyond
  :data:`WINDOW_TICKS` lines), only the few lines that matter labelled (the first, the last
  and those before the longest gaps), so that a window of any size draws in bounded time.
  CDFs of millions of calls are drawn at :data:`CDF_POINTS` ranks.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator  # noqa: E402

from tracekit.reports import fmt  # noqa: E402
from tracekit.reports.compare import ArchGroup, Comparison, WindowResult, WindowSide  # noqa: E402

__all__ = ["plot_cdf", "plot_histogram", "plot_window", "make_plots", "FIGSIZE", "DPI",
           "time_unit", "ticks_125"]

FIGSIZE = (10.0, 5.6)
DPI = 120  # 1200 x 672 pixels
PALETTE = ("#1f5fa8", "#d9620b", "#2a9d3c", "#a02c8c", "#7a5c00", "#0b8c8c")
#: Labelled lines of a window timeline, at most.
WINDOW_LABELS = 8
#: Points a CDF is drawn with, at most (the exact ECDF at evenly spaced ranks), and lines of
#: a window drawn one tick each (more are drawn as their count per 1/1000 of the window).
CDF_POINTS = 4096
WINDOW_TICKS = 4000

plt.rcParams.update(
    {
        "font.size": 11,
        "axes.titlesize": 12,
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
        # Laid out once, for the PNG: the SVG keeps those positions (the constrained
        # layout would otherwise be worked out again).
        fig.set_layout_engine("none")
        out[ext] = p
    plt.close(fig)
    return out


def time_unit(values_ns: np.ndarray) -> tuple[str, float]:
    """The unit (ns, us, ms, s) in which the median of ``values_ns`` reads between 1 and
    1000, and its size in ns."""
    v = np.asarray(values_ns, dtype=np.float64)
    v = v[v > 0]
    mid = float(np.median(v)) if v.size else 1.0
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if mid >= scale:
            return unit, scale
    return "ns", 1.0


def ticks_125(lo: float, hi: float) -> list[float]:
    """Ticks at 1, 2 and 5 times the powers of ten within [lo, hi] (positive); when the range
    holds fewer than three of those, 1 to 9 times them; when still fewer (a range within a
    decade), evenly spaced at the first 1-2-5 step that gives at most eight."""
    if not (lo > 0 and hi > 0) or not math.isfinite(lo * hi):
        return []
    hi = max(hi, lo)
    out: list[float] = []
    for mults in ((1, 2, 5), tuple(range(1, 10))):
        out = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
               for m in mults if lo <= m * 10.0 ** e <= hi]
        if len(out) >= 3:
            return out
    e = math.floor(math.log10(hi - lo)) - 1 if hi > lo else math.floor(math.log10(hi)) - 1
    for k in range(e, e + 3):
        for m in (1, 2, 5):
            step = m * 10.0 ** k
            ticks = [round(x * step, 12) for x in range(math.ceil(lo / step), math.floor(hi / step) + 1)]
            if len(ticks) <= 8:
                return ticks
    return out


def _log_axis(ax: plt.Axes, lo: float, hi: float) -> None:
    """A log x axis from lo to hi with plain-number labels at 1-2-5 ticks."""
    ax.set_xscale("log")
    lo, hi = (lo / 1.15, hi * 1.15) if hi > lo else (lo / 2, hi * 2)
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator(ticks_125(lo, hi)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _t(s: object) -> str:
    """Text from a trace, safe for matplotlib: a '$' would start mathtext."""
    return str(s).replace("$", r"\$")


def _legend(fig: plt.Figure, ax: plt.Axes) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(handles)), fontsize=10, frameon=False)


Series = list[tuple[str, np.ndarray, list[float]]]  # (legend, durations ns, unit medians ns)


def _ecdf(x: np.ndarray, points: int = CDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF of the positive values of ``x``: every value when there are at most
    ``points``, else the exact ECDF at that many evenly spaced ranks (first and last kept),
    so that a plot of millions of calls draws as fast as one of thousands."""
    xs = x[x > 0]
    n = xs.size
    if n <= points:
        xs = np.sort(xs)
        return xs, np.arange(1, n + 1) / max(n, 1)
    ranks = np.unique(np.linspace(0, n - 1, points).astype(np.int64))
    return np.sort(np.partition(xs, ranks)[ranks]), (ranks + 1) / n


def plot_cdf(title: str, series: Series, stem: Path) -> dict[str, Path]:
    """Empirical CDF of call durations of every side, log time axis; each unit's median
    marked as a tick beneath the curves, in its side's colour."""
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    allx = np.concatenate([x for _, x, _ in series] + [np.empty(0)])
    unit, scale = time_unit(allx)
    pos = allx[allx > 0] / scale
    for i, (label, x, medians) in enumerate(series):
        xs, y = _ecdf(np.asarray(x, dtype=np.float64) / scale)
        if xs.size == 0:
            continue
        color = PALETTE[i % len(PALETTE)]
        ax.step(xs, y, where="post", color=color, lw=1.8, label=_t(label))
        m = np.asarray(medians, dtype=np.float64) / scale
        ax.plot(m, np.full(m.size, -0.04 - 0.03 * i), "|", color=color, ms=12, mew=2)
    if pos.size:
        _log_axis(ax, float(pos.min()), float(pos.max()))
    ax.set_ylim(-0.06 - 0.03 * len(series), 1.02)
    ax.set_xlabel(f"call duration ({unit}, log scale); ticks below the curves: each unit's median")
    ax.set_ylabel("fraction of calls <= duration")
    ax.set_title(_t(title))
    _legend(fig, ax)
    return _save(fig, stem)


def plot_histogram(title: str, series: Series, stem: Path) -> dict[str, Path]:
    """Histogram of call durations of every side on log-spaced bins (fraction of each
    side's calls per bin)."""
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    allx = np.concatenate([x for _, x, _ in series] + [np.empty(0)])
    unit, scale = time_unit(allx)
    pos = allx[allx > 0] / scale
    if pos.size:
        lo, hi = float(pos.min()), float(pos.max())
        hi = hi if hi > lo else lo * 1.1
        bins = np.logspace(np.log10(lo), np.log10(hi), 40)
        for i, (label, x, _) in enumerate(series):
            xs = np.asarray(x, dtype=np.float64)
            xs = xs[xs > 0] / scale
            if xs.size == 0:
                continue
            color = PALETTE[i % len(PALETTE)]
            frac = np.histogram(xs, bins=bins)[0] / xs.size
            ax.stairs(frac, bins, fill=True, alpha=0.25, color=color)
            ax.stairs(frac, bins, lw=1.6, color=color, label=_t(label))
        _log_axis(ax, lo, hi)
    ax.set_xlabel(f"call duration ({unit}, log scale)")
    ax.set_ylabel("fraction of calls")
    ax.set_title(_t(title))
    _legend(fig, ax)
    return _save(fig, stem)


def _labelled(t: np.ndarray, k: int = WINDOW_LABELS, spacing: float = 0.12) -> np.ndarray:
    """Indices of the lines worth a label: the first, the last, and those that begin the
    longest gaps (where the time of the window went), longest first, each at least
    ``spacing`` of the window's span from those already taken so that labels never
    overlap; at most ``k``.  A window of a handful of lines has every line labelled."""
    if t.size <= k // 2:  # few enough to label all, alternately above and below the lane
        return np.arange(t.size)
    span = float(t.max() - t.min()) or 1.0
    gaps = np.diff(t)
    m = min(gaps.size, 50 * k)
    top = np.argpartition(gaps, -m)[-m:] if m else np.arange(0)
    candidates = [0, t.size - 1] + [int(i) for i in top[np.argsort(-gaps[top], kind="stable")]]
    taken: list[int] = []
    for i in candidates:
        if len(taken) == k:
            break
        if i not in taken and all(abs(t[i] - t[j]) >= spacing * span for j in taken):
            taken.append(i)
    return np.array(sorted(taken), dtype=np.int64)


def _window_lane(ax: plt.Axes, s: WindowSide, label: str, color: str, scale: float, unit: str, xmax: float) -> None:
    ev = s.events
    ax.set_title(_t(f"{label}: {fmt.ns(s.worst_latency_ns)} in {s.comm or '?'}-{s.pid}, "
                    f"{s.started_at or '?'} -> {s.ended_at or '?'} ({s.run_name})"), fontsize=10, loc="left")
    ax.barh([0], [s.worst_latency_ns / scale], left=0.0, height=0.5, color=color, alpha=0.25)
    if ev is not None and ev.height and "ts_ns" in ev.columns:
        ev = ev.filter(ev["ts_ns"].is_not_null())
        if "func" in ev.columns:
            ev = ev.filter(ev["func"].is_not_null())  # stack-trace and marker lines carry no time of their own
        if ev.height:
            ts = ev["ts_ns"].to_numpy().astype(np.float64)
            t = (ts - ts.min()) / scale
            if t.size <= WINDOW_TICKS:
                ax.vlines(t, -0.3, 0.3, color=color, lw=1.2)
            else:  # as many lines per 1/1000 of the window, drawn as a density strip
                edges = np.linspace(0.0, max(float(t.max()), 1e-9), 1001)
                counts = np.histogram(t, bins=edges)[0]
                ax.stairs(0.6 * counts / counts.max() - 0.3, edges, baseline=-0.3, fill=True, color=color, alpha=0.8)
            names = ev["func"].to_list()
            keep = _labelled(t)
            right = 0.6 * xmax
            for rank, i in enumerate(keep):
                up = rank % 2 == 0
                ax.annotate(_t(f"{str(names[i])[:28]} @{t[i]:.3g}{unit}"), (t[i], 0.3 if up else -0.3),
                            xytext=(0, 6 if up else -6), textcoords="offset points", fontsize=8, color="#333333",
                            ha="right" if t[i] > right else "left", va="bottom" if up else "top")
            if ev.height > keep.size:
                how = "" if t.size <= WINDOW_TICKS else " (drawn as their density)"
                ax.text(1.0, 1.02, f"{ev.height} lines{how}, {keep.size} labelled", transform=ax.transAxes,
                        ha="right", va="bottom", fontsize=8, color="#555555")
    ax.set_ylim(-1.2, 1.2)
    ax.set_yticks([])


def plot_window(title: str, sides: list[tuple[str, WindowSide]], stem: Path) -> dict[str, Path]:
    """The worst window of each side as a timeline of its trace lines, every side on the
    same time axis (time since the window opened)."""
    n = max(1, len(sides))
    fig, axes = plt.subplots(n, 1, figsize=(FIGSIZE[0], 1.6 + 1.9 * n), sharex=True, squeeze=False, layout="constrained")
    worst = np.array([s.worst_latency_ns for _, s in sides] or [1.0], dtype=np.float64)
    unit, scale = time_unit(worst)
    xmax = float(worst.max()) / scale
    for i, (ax, (label, s)) in enumerate(zip(axes[:, 0], sides)):
        _window_lane(ax, s, label, PALETTE[i % len(PALETTE)], scale, unit, xmax)
    axes[-1, 0].set_xlim(-0.02 * xmax, 1.04 * xmax)
    axes[-1, 0].set_xlabel(f"time since the window opened ({unit}); shaded: the window's latency")
    fig.suptitle(_t(title), fontsize=12)
    return _save(fig, stem)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:80]


def _series(g: ArchGroup, func: str) -> Series:
    samples = g.samples.get(func, {})
    rows = [f for f in g.functions if f.function == func]
    if not rows:
        return []
    medians = {g.side_names[0]: [u.median_ns for u in rows[0].units_before]}
    medians |= {f.against: [u.median_ns for u in f.units_after] for f in rows}
    units = {g.side_names[0]: rows[0].change.units_before} | {f.against: f.change.units_after for f in rows}
    out = []
    for side in g.side_names:
        x = samples.get(side, np.empty(0))
        kern = ", ".join(g.kernels(side))
        k = units.get(side, 0)
        out.append((f"{side}: {x.size} calls in {k} unit{'' if k == 1 else 's'}" + (f" ({kern})" if kern else ""),
                    x, medians.get(side, [])))
    return out


def make_plots(c: Comparison, out_dir: Path) -> dict[str, dict[str, dict[str, Path]]]:
    """Every plot of the report under ``out_dir``/plots (the report removes those of an
    earlier one first); returns, per group key, a map ``"cdf:<func>" | "hist:<func>" |
    "window:<tracer>"`` -> {"png": path, "svg": path}."""
    plots_dir = Path(out_dir) / "plots"
    result: dict[str, dict[str, dict[str, Path]]] = {}
    for g in c.groups:
        made: dict[str, dict[str, Path]] = {}
        head = f"{c.patch} ({g.key})"
        for func in dict.fromkeys(f.function for f in g.functions):
            series = _series(g, func)
            if not any(x.size for _, x, _ in series):
                continue
            base = plots_dir / f"{g.slug}-{_safe(func)}"
            made[f"cdf:{func}"] = plot_cdf(f"{head}: {func}() call duration, CDF", series, Path(f"{base}-cdf"))
            made[f"hist:{func}"] = plot_histogram(f"{head}: {func}() call duration", series, Path(f"{base}-hist"))
        for tracer in dict.fromkeys(w.tracer for w in g.windows):
            ws = [w for w in g.windows if w.tracer == tracer]
            sides = [(g.side_names[0], ws[0].before)] + [(w.against, w.after) for w in ws]
            sides = [(lab, s) for lab, s in sides if s is not None]
            if sides:
                made[f"window:{tracer}"] = plot_window(
                    f"{head}: worst {tracer} window of each side", sides,
                    plots_dir / f"{g.slug}-window-{_safe(tracer)}")
        result[g.key] = made
    return result


def png_bytes(path: Path) -> bytes:
    """The bytes of a plot's PNG (for embedding)."""
    with io.open(path, "rb") as fh:
        return fh.read()
