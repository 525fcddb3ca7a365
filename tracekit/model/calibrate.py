"""Calibration of the cost profile from measured spans, and replay of a measured run under
another strategy (docs/model.md#calibration-and-replay).

The model's time is linear in its costs, so it is simulated once per *cost group* with only
that group's costs left at their defaults: that gives, for every teardown function F, the
part of F's simulated time each group contributes.  The measured mean time of F per
``exit_mmap`` is then fitted as a non-negative sum of those parts (scipy ``nnls``), one
scale per group:

* ``zap``: the per-PTE work and the walk of unmap_vmas (pte_*, ptl, call, cond_resched);
* ``pgtables``: free_pgtables' walk, page-table clearing and vma unlinks;
* ``free``: TLB flushes, IPIs and page freeing (tlb_finish_mmu, forced flushes).

Fitted against unmap_vmas, free_pgtables and tlb_finish_mmu, with the workload stated by the
caller or, for a run of ``tracekit capture``, derived from the metadata it recorded
(:mod:`.captured`; the trace does not say how many PTEs each call cleared).

What is measured (:func:`measured_means`):

* only the calls made directly under an ``exit_mmap`` call count: ``unmap_region``
  (munmap) runs the same functions on other address spaces' pieces;
* kprobe entry/return spans are preferred: a kprobe costs a trap at entry and at return
  of the probed functions only (eight per exit_mmap), nothing inside them;
* from function_graph spans, every traced call inside a span adds the tracer's own cost to
  it.  That cost per call is estimated from the trace itself, as the 10th percentile of the
  durations of the leaf calls under the selected exits (a leaf's duration is little but
  the tracer's entry and return), and subtracted times the number of traced calls under
  each span; the result says so (``overhead_ns``, ``notes``).

A fitted scale outside :data:`PLAUSIBLE_SCALES` (or a group fitted to zero that the model
says does work) is warned about: it usually means the measurement holds work the model
does not (tracer overhead, other tasks, a workload other than the one stated).  A captured run
also says which ``exit_mmap`` calls are the workload's: ``ExitSelection`` keeps those (the
children's) and the calls nested directly in them, so the parent's and the shell's exits,
which tear down other address spaces, stay out of the means.  Counts (flushes, pages,
windows' contents) never depend on the costs; the fit only makes the times comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import polars as pl

from tracekit.errors import ModelError
from tracekit.model import ModelResult, simulate
from tracekit.model.costs import CostProfile

__all__ = ["GROUPS", "FIT_FUNCTIONS", "PLAUSIBLE_SCALES", "Calibration", "ExitSelection", "Measured", "measure",
           "measured_means", "mean_per_call", "scale_warnings", "calibrate", "replay"]

GROUPS: dict[str, tuple[str, ...]] = {
    "zap": ("pte_none", "pte_anon", "pte_file_clean", "pte_file_dirty", "pte_swap", "ptl", "call",
            "cond_resched", "vma_walk"),
    "pgtables": ("pt_unlink", "free_pgd_walk", "unlink_anon", "unlink_file", "pt_free", "rcu_submit",
                 "sync_ipi"),
    "free": ("page_free", "flush_local", "leave_mm", "ipi_base", "ipi_per_cpu", "invlpg", "ia64_ctx_drop",
             "ia64_ptcga", "ia64_ptcl", "tlbie_base", "tlbie", "tlbiel", "gather", "finish", "batch_alloc",
             "batch_alloc_fail"),
}
FIT_FUNCTIONS = ("unmap_vmas", "free_pgtables", "tlb_finish_mmu")
#: Kernel names of the modern unlink helpers, mapped to the model's.
_ALIASES = {"unlink_anon_vmas": "anon_vma_unlink"}


def _only(group: str) -> CostProfile:
    base = CostProfile()
    keep = set(GROUPS[group])
    return replace(base, **{f.name: 0 for f in fields(CostProfile) if f.name not in keep})


@dataclass
class Calibration:
    """A fitted profile, the per-group scales, measured against fitted times (ns per
    exit_mmap) of each fitted function, where the measurement came from (``source``,
    ``overhead_ns``, ``notes``) and ``warnings`` on the fit."""

    profile: CostProfile
    scales: dict[str, float]
    measured_ns: dict[str, float]
    fitted_ns: dict[str, float]
    exits: int
    source: str = ""
    overhead_ns: float = 0.0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"scales": self.scales, "measured_ns": self.measured_ns, "fitted_ns": self.fitted_ns,
                "exits": self.exits, "source": self.source, "overhead_ns": self.overhead_ns,
                "notes": self.notes, "warnings": self.warnings, "costs": self.profile.to_dict()}


@dataclass(frozen=True)
class ExitSelection:
    """Which ``exit_mmap`` calls of a run are the workload's children's: calls by tasks
    called ``comm``, one per child, the first ``exits`` of them in time.

    The workload's parent is not a child: its pid tears down two address spaces, the
    shell's copy when it execs the workload (the trace prints the pid's last comm) and its
    own when it exits, after every child.  So a pid with more than one call is left out and,
    when more pids remain than children, so is the pid of the last call."""

    comm: str
    exits: int


#: Scales a fit may give before it is warned about: the default costs are round figures for
#: a 2010s x86 core; a TCG guest runs kernel code 5-30 times slower than that.
PLAUSIBLE_SCALES = (0.2, 50.0)
#: Sources of spans in the order they are preferred for calibration.
SOURCES = ("kprobe", "function_graph")
#: The quantile of leaf-call durations taken as function_graph's own cost per traced call.
OVERHEAD_QUANTILE = 0.10


def _roots(lf: pl.LazyFrame, root: str, select: ExitSelection | None) -> pl.DataFrame:
    """The ``root`` calls measured: complete calls, and with ``select`` the workload's
    children's only (when it matches any)."""
    roots = (lf.filter((pl.col("func") == root) & pl.col("complete"))
             .select("span_id", "run_id", "pid", "comm", "start_ns", "seq")
             .sort("run_id", "start_ns", "seq", nulls_last=True).collect())
    if select is None or not roots.height:
        return roots
    picked = [_children(run, select) for _, run in roots.group_by("run_id", maintain_order=True)]
    mine = pl.concat(picked)
    return mine if mine.height else roots


def _children(run: pl.DataFrame, select: ExitSelection) -> pl.DataFrame:
    """The workload children's calls among one run's root calls (ExitSelection)."""
    mine = run.filter(pl.col("comm") == select.comm)
    calls = mine.group_by("pid").agg(n=pl.len())
    mine = mine.join(calls.filter(pl.col("n") == 1).select("pid"), on="pid", how="semi")
    if mine.height > select.exits:
        mine = mine.filter(pl.col("pid") != mine["pid"][-1])
    return mine.head(select.exits)


def _descendants(lf: pl.LazyFrame, ids: pl.Series, max_depth: int = 64) -> pl.DataFrame:
    """Every span under the spans ``ids`` (at any depth): span_id, dur_ns, the top-level
    id it lies under (``root_id``), its direct parent and whether it is a leaf."""
    tree = lf.select("span_id", "parent_id", "func", "dur_ns", "complete").collect()
    level = tree.filter(pl.col("parent_id").is_in(ids.implode())).with_columns(root_id=pl.col("parent_id"))
    out = [level]
    for _ in range(max_depth):
        if not level.height:
            break
        level = (tree.join(level.select(pl.col("span_id").alias("parent_id"), "root_id"), on="parent_id"))
        out.append(level)
    every = pl.concat(out)
    parents = every.select(pl.col("parent_id").alias("span_id")).unique()
    return every.with_columns(leaf=~pl.col("span_id").is_in(parents["span_id"].implode()))


@dataclass
class Measured:
    """Mean time per ``root`` call of each function directly under it, as measured.

    ``source``: the tracer the spans come from; ``calls``: root calls measured;
    ``overhead_ns``: function_graph's estimated cost per traced call, subtracted (0 for
    kprobes); ``notes``: what was selected and corrected, one sentence each;
    ``calls_by_function``: how many calls of each function were measured."""

    means: dict[str, float]
    calls: int
    source: str
    calls_by_function: dict[str, int] = field(default_factory=dict)
    overhead_ns: float = 0.0
    notes: list[str] = field(default_factory=list)


def measure(spans: pl.DataFrame | pl.LazyFrame, root: str = "exit_mmap", select: ExitSelection | None = None,
            source: str | None = None) -> Measured:
    """What a run measured of ``root`` and the functions it calls directly (module
    docstring): from ``source`` (default: kprobe spans when the run has ``root`` among
    them, else function_graph's, with its overhead subtracted)."""
    lf = spans.lazy() if isinstance(spans, pl.DataFrame) else spans
    lf = lf.with_columns(pl.col("func").replace(_ALIASES))
    have = set(lf.filter(pl.col("func") == root).select("source").unique().collect()["source"].to_list())
    if source is None:
        source = next((s for s in SOURCES if s in have), next(iter(sorted(have)), None))
    if source is None or source not in have:
        raise ModelError(f"no complete {root} spans in the run" + (f" from {source}" if source else "")
                         + ": nothing to calibrate against")
    lf = lf.filter(pl.col("source") == source)
    roots = _roots(lf, root, select)
    if not roots.height:
        raise ModelError(f"no complete {root} spans in the run: nothing to calibrate against")
    ids = roots["span_id"]
    under = _descendants(lf, ids, max_depth=1 if source == "kprobe" else 64)
    direct = under.filter(pl.col("parent_id").is_in(ids.implode()) & pl.col("complete") & pl.col("dur_ns").is_not_null())
    top = lf.filter(pl.col("span_id").is_in(ids.implode())).select("span_id", "func", "dur_ns").collect()
    n = roots.height
    m = Measured(means={}, calls=n, source=source)
    m.notes.append(f"{n} {root} calls from {source} spans; of the calls they make, only those directly "
                   f"under them (unmap_region's are another operation)")
    m.calls_by_function = {root: n, **dict(direct.group_by("func").agg(pl.len()).iter_rows())}
    if source == "function_graph":
        _subtract_overhead(m, top, direct, under, root)
    else:
        m.means[root] = float(top["dur_ns"].sum()) / n
        for r in direct.group_by("func").agg(total=pl.col("dur_ns").sum()).iter_rows(named=True):
            m.means[r["func"]] = float(r["total"]) / n
    return m


def _subtract_overhead(m: Measured, top: pl.DataFrame, direct: pl.DataFrame, under: pl.DataFrame, root: str) -> None:
    """function_graph: estimate the tracer's cost per traced call from the leaf calls and
    take it off each span once per traced call beneath it."""
    leaves = under.filter(pl.col("leaf") & pl.col("complete") & pl.col("dur_ns").is_not_null())["dur_ns"]
    if not leaves.len():
        m.notes.append("function_graph spans with no leaf calls under them: overhead not estimated")
        return
    o = float(leaves.quantile(OVERHEAD_QUANTILE, "nearest"))
    m.overhead_ns = o
    # traced calls under each direct child (its subtree), and under each root
    sub = _descendants(under.lazy(), direct["span_id"], max_depth=64) if direct.height else under.head(0)
    below = sub.group_by("root_id").agg(k=pl.len())
    d = direct.join(below.rename({"root_id": "span_id"}), on="span_id", how="left").with_columns(pl.col("k").fill_null(0))
    n = m.calls
    for r in d.group_by("func").agg(total=pl.col("dur_ns").sum(), k=pl.col("k").sum()).iter_rows(named=True):
        m.means[r["func"]] = max(0.0, float(r["total"]) - o * r["k"]) / n
    traced = under.height
    m.means[root] = max(0.0, float(top["dur_ns"].sum()) - o * traced) / n
    m.notes.append(f"function_graph overhead: {o:.0f} ns per traced call ({OVERHEAD_QUANTILE:.0%} quantile of "
                   f"{leaves.len():,} leaf calls' durations), subtracted for each of the {traced / n:,.0f} traced "
                   f"calls per {root}; measure with kprobes to avoid the estimate")


def measured_means(spans: pl.DataFrame | pl.LazyFrame, root: str = "exit_mmap",
                   select: ExitSelection | None = None, source: str | None = None) -> tuple[dict[str, float], int]:
    """Mean time per ``root`` call of each function called directly under it (complete
    spans only), and the number of ``root`` calls (see :func:`measure`)."""
    m = measure(spans, root, select, source)
    return m.means, m.calls


def mean_per_call(m: Measured, func: str) -> float | None:
    """The measured mean time of one call of ``func`` (None when none was measured)."""
    k = m.calls_by_function.get(func, 0)
    return m.means[func] * m.calls / k if k and func in m.means else None


def scale_warnings(scales: dict[str, float], parts: dict[str, float]) -> list[str]:
    """Warnings for fitted scales outside PLAUSIBLE_SCALES; ``parts``: each group's
    simulated time with default costs (a group with none cannot be fitted)."""
    lo, hi = PLAUSIBLE_SCALES
    out = []
    for g, x in scales.items():
        if parts.get(g, 0) <= 0:
            continue
        if x == 0:
            out.append(f"cost group {g} fitted to zero: the measurement leaves no time for work the model "
                       "says is done (a different workload, or a function the kernel inlines?)")
        elif not lo <= x <= hi:
            out.append(f"cost group {g} scaled x{x:.3g}, outside the plausible x{lo:g}..x{hi:g}: the measured "
                       "times hold work the model does not (tracer overhead, other tasks, another workload)")
    return out


def calibrate(spans: pl.DataFrame | pl.LazyFrame, *, arch: str, workload: str, strategy: str = "modern",
              preempt: bool = True, select: ExitSelection | None = None, source: str | None = None,
              **model_kw: Any) -> Calibration:
    """Fit a :class:`CostProfile` so that ``strategy`` on ``workload`` reproduces the mean
    times of unmap_vmas, free_pgtables and tlb_finish_mmu per exit_mmap in ``spans`` (the
    ``select``-ed exits only, when given; spans of several runs are pooled, the selection
    made in each run)."""
    from scipy.optimize import nnls

    m = measure(spans, select=select, source=source)
    measured, exits = m.means, m.calls
    funcs = [f for f in FIT_FUNCTIONS if f in measured]
    if not funcs:
        raise ModelError(f"the run has none of {', '.join(FIT_FUNCTIONS)}: nothing to calibrate against")
    cols = []
    for g in GROUPS:
        r = simulate(arch, strategy, preempt=preempt, workload=workload, costs=_only(g), **model_kw)
        cols.append([r.time_by_function_ns.get(f, 0) for f in funcs])
    parts = {g: float(sum(c)) for g, c in zip(GROUPS, cols)}
    a = np.array(cols, dtype=float).T  # functions x groups
    b = np.array([measured[f] for f in funcs], dtype=float)
    scale, _ = nnls(a, b)
    scales = {g: float(s) for g, s in zip(GROUPS, scale)}
    base = CostProfile()
    values = {}
    for g, names in GROUPS.items():
        for name in names:
            values[name] = int(round(getattr(base, name) * scales[g]))
    profile = replace(base, **values)
    fitted = simulate(arch, strategy, preempt=preempt, workload=workload, costs=profile, **model_kw)
    return Calibration(
        profile=profile,
        scales=scales,
        measured_ns={f: float(measured[f]) for f in funcs},
        fitted_ns={f: float(fitted.time_by_function_ns.get(f, 0)) for f in funcs},
        exits=exits,
        source=m.source,
        overhead_ns=m.overhead_ns,
        notes=m.notes,
        warnings=scale_warnings(scales, parts),
    )


def replay(spans: pl.DataFrame | pl.LazyFrame, *, arch: str, workload: str, strategy: str,
           measured_strategy: str = "modern", preempt: bool = True, profile: CostProfile | None = None,
           select: ExitSelection | None = None, source: str | None = None, **model_kw: Any) -> dict[str, Any]:
    """Predict the run's teardown under ``strategy``: the measured run's mean times per
    exit_mmap beside the model of the measured kernel (``measured_strategy``, fitted) and
    the model of ``strategy`` with the same costs."""
    cal = None
    if profile is None:
        cal = calibrate(spans, arch=arch, workload=workload, strategy=measured_strategy, preempt=preempt,
                        select=select, source=source, **model_kw)
        profile = cal.profile
    m = measure(spans, select=select, source=source)
    measured, exits = m.means, m.calls
    own: ModelResult = simulate(arch, measured_strategy, preempt=preempt, workload=workload, costs=profile, **model_kw)
    other: ModelResult = simulate(arch, strategy, preempt=preempt, workload=workload, costs=profile, **model_kw)
    rows = []
    for f in ("exit_mmap",) + FIT_FUNCTIONS:
        rows.append({
            "function": f,
            "measured_ns": measured.get(f),
            "model_measured_strategy_ns": own.time_by_function_ns.get(f, 0),
            "model_strategy_ns": other.time_by_function_ns.get(f, 0),
        })
    return {
        "arch": arch, "workload": workload, "strategy": strategy, "measured_strategy": measured_strategy,
        "preempt": preempt, "exits": exits, "rows": rows, "source": m.source, "overhead_ns": m.overhead_ns,
        "notes": m.notes,
        "calibration": cal.as_dict() if cal else None,
        "model_measured_strategy": {k: own.as_dict()[k] for k in ("tlb_flushes", "flushes_by_cause", "windows")},
        "model_strategy": {k: other.as_dict()[k] for k in ("tlb_flushes", "flushes_by_cause", "windows")},
    }
