"""Calibration of the cost profile from measured spans, and replay of a measured run under
another strategy (docs/model.md#calibration-and-replay).

The model's time is linear in its costs, so it is simulated once per *cost group* with only
that group's costs left at their defaults: that gives, for every teardown function F, the
part of F's simulated time each group contributes.  The measured mean time of F per
``exit_mmap`` (from the run's function_graph spans) is then fitted as a non-negative sum of
those parts (scipy ``nnls``), one scale per group:

* ``zap``: the per-PTE work and the walk of unmap_vmas (pte_*, ptl, call, cond_resched);
* ``pgtables``: free_pgtables' walk, page-table clearing and vma unlinks;
* ``free``: TLB flushes, IPIs and page freeing (tlb_finish_mmu, forced flushes).

Fitted against unmap_vmas, free_pgtables and tlb_finish_mmu, with the workload stated by the
caller or, for a run of ``tracekit capture``, derived from the metadata it recorded
(:mod:`.captured`; the trace does not say how many PTEs each call cleared).  A captured run
also says which ``exit_mmap`` calls are the workload's: ``ExitSelection`` keeps those (the
children's) and the calls nested directly in them, so the parent's and the shell's exits,
which tear down other address spaces, stay out of the means.  Counts (flushes, pages,
windows' contents) never depend on the costs; the fit only makes the times comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import polars as pl

from tracekit.model import ModelResult, simulate
from tracekit.model.costs import CostProfile

__all__ = ["GROUPS", "FIT_FUNCTIONS", "Calibration", "ExitSelection", "measured_means", "calibrate", "replay"]

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
    """A fitted profile, the per-group scales, and measured against fitted times (ns per
    exit_mmap) of each fitted function."""

    profile: CostProfile
    scales: dict[str, float]
    measured_ns: dict[str, float]
    fitted_ns: dict[str, float]
    exits: int

    def as_dict(self) -> dict[str, Any]:
        return {"scales": self.scales, "measured_ns": self.measured_ns, "fitted_ns": self.fitted_ns,
                "exits": self.exits, "costs": self.profile.to_dict()}


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


def _select(lf: pl.LazyFrame, root: str, select: ExitSelection | None) -> pl.LazyFrame:
    """The spans of the selected ``root`` calls and of the calls made directly in them;
    all spans when nothing is selected or the selection matches no call (no comm column
    in the trace)."""
    if select is None:
        return lf
    roots = (lf.filter((pl.col("func") == root) & pl.col("complete") & (pl.col("comm") == select.comm))
             .select("span_id", "pid", "start_ns", "seq").sort("start_ns", "seq", nulls_last=True).collect())
    if not roots.height:
        return lf
    calls = roots.group_by("pid").agg(n=pl.len())
    roots = roots.join(calls.filter(pl.col("n") == 1).select("pid"), on="pid", how="semi")
    if roots.height > select.exits:
        roots = roots.filter(pl.col("pid") != roots["pid"][-1])
    ids = roots.head(select.exits)["span_id"].implode()
    if not ids.list.len()[0]:
        return lf
    return lf.filter(pl.col("span_id").is_in(ids) | pl.col("parent_id").is_in(ids))


def measured_means(spans: pl.DataFrame | pl.LazyFrame, root: str = "exit_mmap",
                   select: ExitSelection | None = None) -> tuple[dict[str, float], int]:
    """Mean time per ``root`` call of each function in the spans (complete spans only), and
    the number of ``root`` calls; with ``select``, of the selected calls only (and the
    functions they call directly)."""
    lf = spans.lazy() if isinstance(spans, pl.DataFrame) else spans
    lf = _select(lf, root, select)
    df = (lf.filter(pl.col("complete") & pl.col("dur_ns").is_not_null())
          .with_columns(pl.col("func").replace(_ALIASES))
          .group_by("func").agg(total=pl.col("dur_ns").sum(), calls=pl.len()).collect())
    roots = df.filter(pl.col("func") == root)
    n = int(roots["calls"][0]) if roots.height else 0
    if not n:
        raise ValueError(f"no complete {root} spans in the run: nothing to calibrate against")
    return {r["func"]: r["total"] / n for r in df.iter_rows(named=True)}, n


def calibrate(spans: pl.DataFrame | pl.LazyFrame, *, arch: str, workload: str, strategy: str = "modern",
              preempt: bool = True, select: ExitSelection | None = None, **model_kw: Any) -> Calibration:
    """Fit a :class:`CostProfile` so that ``strategy`` on ``workload`` reproduces the mean
    times of unmap_vmas, free_pgtables and tlb_finish_mmu per exit_mmap in ``spans`` (the
    ``select``-ed exits only, when given)."""
    from scipy.optimize import nnls

    measured, exits = measured_means(spans, select=select)
    funcs = [f for f in FIT_FUNCTIONS if f in measured]
    if not funcs:
        raise ValueError(f"the run has none of {', '.join(FIT_FUNCTIONS)}: nothing to calibrate against")
    cols = []
    for g in GROUPS:
        r = simulate(arch, strategy, preempt=preempt, workload=workload, costs=_only(g), **model_kw)
        cols.append([r.time_by_function_ns.get(f, 0) for f in funcs])
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
    )


def replay(spans: pl.DataFrame | pl.LazyFrame, *, arch: str, workload: str, strategy: str,
           measured_strategy: str = "modern", preempt: bool = True, profile: CostProfile | None = None,
           select: ExitSelection | None = None, **model_kw: Any) -> dict[str, Any]:
    """Predict the run's teardown under ``strategy``: the measured run's mean times per
    exit_mmap beside the model of the measured kernel (``measured_strategy``, fitted) and
    the model of ``strategy`` with the same costs."""
    cal = None
    if profile is None:
        cal = calibrate(spans, arch=arch, workload=workload, strategy=measured_strategy, preempt=preempt,
                        select=select, **model_kw)
        profile = cal.profile
    measured, exits = measured_means(spans, select=select)
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
        "preempt": preempt, "exits": exits, "rows": rows,
        "calibration": cal.as_dict() if cal else None,
        "model_measured_strategy": {k: own.as_dict()[k] for k in ("tlb_flushes", "flushes_by_cause", "windows")},
        "model_strategy": {k: other.as_dict()[k] for k in ("tlb_flushes", "flushes_by_cause", "windows")},
    }
