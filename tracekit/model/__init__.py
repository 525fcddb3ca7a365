"""The reference replay model of the kernel's page-table teardown (docs/model.md#simulation).

``simulate()`` walks ``exit_mmap`` or ``unmap_region`` over a workload of VMAs under one
mmu_gather strategy on one architecture and returns what a reviewer asks about: the
preempt-off windows (CONFIG_PREEMPT) or rescheduling gaps (!CONFIG_PREEMPT), TLB flushes by
cause, pages per flush, IPIs, page-table pages freed and simulated time by function::

    >>> from tracekit.model import simulate
    >>> r = simulate("x86_64", "v2622", preempt=False, workload="anon:1GiB")
    >>> r.tlb_flushes
    770

Modules, each named for what it mirrors: :mod:`.arch` (arch hooks), :mod:`.gather`
(``struct mmu_gather`` per strategy, ``include/asm-generic/tlb.h``, ``mm/mmu_gather.c``),
:mod:`.memory` (``mm/memory.c`` / ``mm/mmap.c`` / ``mm/hugetlb.c`` walk), :mod:`.workload`
(VMAs and the SPEC grammar), :mod:`.costs` (cost profile), :mod:`.sim` (clock, windows,
exact repetition), :mod:`.emit` and :mod:`.emit_tracedat` (synthetic traces with ground
truth), :mod:`.calibrate` (fit costs to a measured run, replay it), :mod:`.captured` (the workload
a ``tracekit capture`` run recorded), :mod:`.report` (the prediction ``tracekit report``
prints, and the report profiles ``tracekit calibrate`` stores under ``<store>/model/``), :mod:`.cli` (``tracekit model``, ``calibrate``,
``replay``).

Latency is measured as a waking task would see it: every ``cond_resched()`` and every
``need_resched()`` test that bails out is taken to find a reschedule due (worst case).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from tracekit.model.arch import ARCHES, Arch, get_arch
from tracekit.model.costs import CostProfile, load_costs
from tracekit.model.gather import MM, STRATEGIES, KernelCfg
from tracekit.model.memory import exit_mmap, free_pgd_range, unmap_mapping_range, unmap_region
from tracekit.model.sim import Sim
from tracekit.model.workload import SpecError, Workload, parse_workload

__all__ = [
    "simulate",
    "ModelResult",
    "STRATEGIES",
    "ARCHES",
    "get_arch",
    "CostProfile",
    "load_costs",
    "parse_workload",
    "SpecError",
    "free_pgd_range",
    "percentile",
]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def percentile(durations: list[int], counts: list[int], p: float) -> int:
    """The p-th percentile (nearest rank) of durations given with multiplicities."""
    total = sum(counts)
    if not total:
        return 0
    rank = max(1, math.ceil(p / 100.0 * total))
    acc = 0
    for d, k in zip(durations, counts):
        acc += k
        if acc >= rank:
            return d
    return durations[-1]


@dataclass
class ModelResult:
    """What one simulated teardown produced.  ``as_dict()`` is the ``--json`` object."""

    arch: str
    strategy: str
    preempt: bool
    op: str
    workload: str
    counters: dict[str, int]
    flushes_by_cause: dict[str, int]
    pages_per_flush: dict[int, int]
    windows_ns: tuple[list[int], list[int]]
    worst_window: dict[str, Any] | None
    time_by_function_ns: dict[str, int]
    calls_by_function: dict[str, int]
    total_ns: int
    sim: Sim | None = field(default=None, repr=False)

    @property
    def tlb_flushes(self) -> int:
        return self.counters.get("tlb_flushes", 0)

    @property
    def pages_freed(self) -> int:
        return self.counters.get("pages_freed", 0)

    @property
    def pagetable_pages_freed(self) -> int:
        return self.counters.get("pagetable_pages_freed", 0)

    @property
    def window_kind(self) -> str:
        return "preempt_off" if self.preempt else "resched_gap"

    @property
    def max_window_ns(self) -> int:
        d, _ = self.windows_ns
        return d[-1] if d else 0

    def window_stats(self) -> dict[str, Any]:
        d, k = self.windows_ns
        total = sum(k)
        out: dict[str, Any] = {"count": total, "max_ns": d[-1] if d else 0}
        for p in PERCENTILES:
            out[f"p{p:g}_ns"] = percentile(d, k, p)
        out["total_ns"] = sum(a * b for a, b in zip(d, k))
        return out

    def typical_pages_per_flush(self) -> int:
        """The most frequent number of pages freed by one flush (0 when none)."""
        if not self.pages_per_flush:
            return 0
        return max(self.pages_per_flush.items(), key=lambda kv: (kv[1], kv[0]))[0]

    def as_dict(self) -> dict[str, Any]:
        c = self.counters
        d: dict[str, Any] = {
            "arch": self.arch,
            "strategy": self.strategy,
            "preempt": self.preempt,
            "op": self.op,
            "workload": self.workload,
            "tlb_flushes": self.tlb_flushes,
            "flushes_by_cause": self.flushes_by_cause,
            "pages_freed": self.pages_freed,
            "pagetable_pages_freed": self.pagetable_pages_freed,
            "ptes_zapped": c.get("ptes_zapped", 0),
            "pages_per_flush": {str(k): v for k, v in self.pages_per_flush.items()},
            "typical_pages_per_flush": self.typical_pages_per_flush(),
            "ipis": c.get("ipis", 0),
            "hash_flushes": c.get("hash_flushes", 0),
            "hash_flushes_by_cause": {k[5:]: v for k, v in c.items() if k.startswith("hash:")},
            "batch_allocs": c.get("batch_allocs", 0),
            "batch_alloc_failures": c.get("batch_alloc_failures", 0),
            "rcu_submissions": c.get("rcu_submissions", 0),
            "cond_resched": c.get("cond_resched", 0),
            "window_kind": self.window_kind,
            "windows": self.window_stats(),
            "worst_window": self.worst_window,
            "total_ns": self.total_ns,
            "time_by_function_ns": self.time_by_function_ns,
            "calls_by_function": self.calls_by_function,
        }
        key = "max_preempt_off_ns" if self.preempt else "max_resched_gap_ns"
        d[key] = self.max_window_ns
        return d


def simulate(
    arch: str | Arch,
    strategy: str,
    *,
    preempt: bool,
    workload: str | Workload,
    op: str = "exit_mmap",
    costs: CostProfile | None = None,
    alloc_fail: str | float = "never",
    fallback_entries: int = 8,
    flush_under_ptl: bool = True,
    ben_zap_block: bool = False,
    online_cpus: int = 4,
    other_cpus: int = 0,
    lazy_cpus: int = 0,
    seed: int = 0,
    record: bool = False,
) -> ModelResult:
    """Simulate one teardown.  ``workload`` is a SPEC (see :mod:`.workload`) or a
    :class:`Workload`; ``record`` keeps the event list for the emitters (slower: use it on
    small workloads).  Raises ValueError (SpecError) for bad arguments."""
    a = arch if isinstance(arch, Arch) else get_arch(arch)
    if isinstance(workload, Workload):
        wl = workload
        spec = ",".join(f"{v.kind}:{v.size}" for v in wl.vmas)
    else:
        wl = parse_workload(workload, a, op=op, online_cpus=online_cpus, other_cpus=other_cpus,
                            lazy_cpus=lazy_cpus)
        spec = workload
    cfg = KernelCfg(strategy, preempt, fallback_entries, flush_under_ptl, ben_zap_block, alloc_fail, seed)
    sim = Sim(preempt=preempt, record=record)
    mm = MM(a, wl, costs or CostProfile(), cfg, sim)
    if wl.fullmm:
        exit_mmap(mm)
    elif wl.op == "truncate":
        unmap_mapping_range(mm)
    else:
        unmap_region(mm)
    n = dict(sim.n)
    return ModelResult(
        arch=a.name,
        strategy=strategy,
        preempt=preempt,
        op=wl.op,
        workload=spec,
        counters=n,
        flushes_by_cause={k[6:]: v for k, v in sorted(n.items()) if k.startswith("flush:")},
        pages_per_flush=sim.flushes_by_pages(),
        windows_ns=sim.windows(),
        worst_window=sim.worst,
        time_by_function_ns=dict(sim.t_func.most_common()),
        calls_by_function=dict(sim.calls.most_common()),
        total_ns=sim.clock,
        sim=sim if record else None,
    )
