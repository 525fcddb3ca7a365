"""``struct mmu_gather`` under each strategy, and the arch ``tlb_flush`` hooks.

One class per design (docs/model.md#strategies):

* :class:`PerCpuGather` -- ``v2622`` and ``hugh2007``: Linux 2.6.22.19
  ``include/asm-generic/tlb.h`` L24-146 (per-CPU ``mmu_gathers``, ``get_cpu_var`` /
  ``put_cpu_var``, ``pages[FREE_PTE_NR]``, fast mode when one CPU is online) and
  ``include/asm-ia64/tlb.h`` L49-200 for ia64.
* :class:`OnStackPageGather` -- ``ben2007``: the on-stack gather of the July 2007 thread,
  one page of pointers from a non-sleeping allocation, an N-entry on-stack fallback, the
  allocation retried after each flush (docs/model.md#ben2007).
* :class:`BatchedGather` -- ``merged30`` (d16dfc550f53 + e303297e6c3a, Linux 3.0),
  ``v38`` (53a59fc67f97: at most MAX_GATHER_BATCH_COUNT batch pages) and ``modern``
  (``mm/mmu_gather.c``: delayed rmap, tlbonly flushes, frees in chunks of 512 with
  cond_resched, the RCU table batch).

A strategy can also be another one's code with one change (:data:`VARIANTS`):
``modern-np-pgfree`` is ``modern`` whose ``exit_mmap`` runs ``free_pgtables`` and
``tlb_finish_mmu`` between ``preempt_disable()`` and ``preempt_enable()``, as 2.6.22's
``get_cpu_var(mmu_gathers)`` .. ``put_cpu_var`` did ([6.1.176:mm/mmap.c:L3260-3262], the
two calls bracketed; docs/model-validation.md measures it).  On x86 without PARAVIRT the
page-table pages it frees go through ``tlb_remove_page`` into the page batch
([6.1.176:arch/x86/mm/pgtable.c:L21-27,L54-58]; ``MMU_GATHER_RCU_TABLE_FREE`` only
``if PARAVIRT``, arch/x86/Kconfig L254): the x86 arches' ``batch`` page-table free.

The walker (:mod:`tracekit.model.memory`) works on runs of PTEs, so ``tlb_remove_page``
takes a count: :meth:`room` says how many pages can be added before the gather has
something to do, so that a run is cut exactly where the kernel would flush.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tracekit.errors import ModelError
from tracekit.model.arch import Arch
from tracekit.model.costs import CostProfile
from tracekit.model.sim import Sim
from tracekit.model.workload import PageTables, Workload

__all__ = [
    "STRATEGIES",
    "VARIANTS",
    "KernelCfg",
    "AllocPolicy",
    "MM",
    "MmuGather",
    "PerCpuGather",
    "OnStackPageGather",
    "BatchedGather",
    "make_gather",
]

#: Strategy name -> one-line description (the kernel it models).
STRATEGIES: dict[str, str] = {
    "v2622": "Linux 2.6.22: per-CPU gather, FREE_PTE_NR, ZAP_BLOCK_SIZE finish/re-gather",
    "hugh2007": "2.6.22 + Hugh Dickins' CONFIG_PREEMPT unlink pass in free_pgtables (Jul 2007)",
    "ben2007": "on-stack gather, one GFP_NOWAIT page of pointers, N-entry fallback (2007 proposal)",
    "merged30": "Linux 3.0 preemptible mmu_gather: local[8] + unlimited 510-entry batch pages",
    "v38": "Linux 3.8: merged30 limited to MAX_GATHER_BATCH_COUNT batch pages (10000 pages)",
    "modern": "mm/mmu_gather.c: v38 + delayed rmap, tlbonly flushes, chunked frees, table batch",
    "modern-np-pgfree": "modern with free_pgtables + tlb_finish_mmu under preempt_disable (2.6.22's window on 6.1)",
}

#: Strategies that run another strategy's code with one change: name -> (the design whose
#: gather and walk they use, the change).  ``np_pgfree``: exit_mmap disables preemption
#: from before free_pgtables to after tlb_finish_mmu.
VARIANTS: dict[str, tuple[str, str]] = {
    "modern-np-pgfree": ("modern", "np_pgfree"),
}

UNLIMITED = 1 << 62


class AllocPolicy:
    """Whether the i-th non-sleeping page allocation (GFP_NOWAIT / GFP_ATOMIC) fails:
    ``never``, ``always``, or a probability drawn from a seeded generator."""

    def __init__(self, spec: str | float = "never", seed: int = 0):
        self.spec = spec
        if spec in ("never", "always"):
            self.p = 0.0 if spec == "never" else 1.0
        else:
            try:
                self.p = float(spec)
            except (TypeError, ValueError):
                raise ModelError(f"--alloc-fail must be never, always or a probability, not {spec!r}") from None
            if not 0.0 <= self.p <= 1.0:
                raise ModelError(f"--alloc-fail probability must be between 0 and 1, not {spec}")
        self.rng = random.Random(seed)

    @property
    def repeatable(self) -> bool:
        return self.p in (0.0, 1.0)

    def fails(self) -> bool:
        if self.p == 0.0:
            return False
        if self.p == 1.0:
            return True
        return self.rng.random() < self.p


@dataclass
class KernelCfg:
    """The kernel under simulation (docs/model.md#strategies)."""

    strategy: str
    preempt: bool
    fallback_entries: int = 8  # ben2007 N in {1, 4, 8}
    flush_under_ptl: bool = True  # ben2007: flush from tlb_remove_page under the PTE lock
    ben_zap_block: bool = False  # ben2007: keep the ZAP_BLOCK finish/re-gather
    alloc_fail: str | float = "never"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ModelError(f"unknown strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}")
        if self.fallback_entries < 1:
            raise ModelError("--fallback-entries must be at least 1")

    @property
    def design(self) -> str:
        """The strategy whose gather and walk this kernel runs (itself, or a variant's base)."""
        return VARIANTS[self.strategy][0] if self.strategy in VARIANTS else self.strategy

    @property
    def pgfree_preempt_off(self) -> bool:
        """exit_mmap holds preemption off across free_pgtables and tlb_finish_mmu."""
        return self.strategy in VARIANTS and VARIANTS[self.strategy][1] == "np_pgfree"

    @property
    def zap_block_pages(self) -> int | None:
        """ZAP_BLOCK_SIZE in pages ([K22:mm/memory.c:L778-783]), None once 3.0 removed it."""
        if self.strategy in ("v2622", "hugh2007") or (self.strategy == "ben2007" and self.ben_zap_block):
            return 8 if self.preempt else 1024
        return None

    @property
    def on_stack(self) -> bool:
        return self.strategy not in ("v2622", "hugh2007")


class MM:
    """The ``struct mm_struct`` being torn down and the CPU state around it: who is in
    ``cpu_vm_mask``, the ppc64 per-CPU hash batch and RCU page-table batch."""

    def __init__(self, arch: Arch, workload: Workload, costs: CostProfile, cfg: KernelCfg, sim: Sim):
        self.arch = arch
        self.workload = workload
        self.costs = costs
        self.cfg = cfg
        self.sim = sim
        self.alloc = AllocPolicy(cfg.alloc_fail, cfg.seed)
        self.pt = PageTables(arch, workload.vmas)
        self.mm_users = workload.mm_users
        # exit_mm has set tsk->mm = NULL (lazy TLB on the dying mm) before exit_mmap
        self.current_has_mm = not workload.fullmm
        self.self_in_mask = True
        self.running_cpus = workload.other_cpus  # TLBSTATE_OK elsewhere: stay in the mask
        self.lazy_cpus = workload.lazy_cpus  # drop out at their first shootdown
        self.hash_index = 0  # ppc64_tlb_batch.index
        self.hash_active = False
        self.pt_batch = 0  # ppc64 pte_freelist_cur->index (0 = no batch page)
        self.pt_batch_live = False
        self.truncating = False  # zap with details->i_mmap_lock (2.6.22 lockbreak)
        self.truncating_details = False  # zap_details set: swap/nonlinear ptes left alone

    @property
    def others_in_mask(self) -> int:
        return self.running_cpus + self.lazy_cpus

    def state_key(self) -> tuple:
        return (self.self_in_mask, self.running_cpus, self.lazy_cpus, self.hash_index, self.pt_batch,
                self.pt_batch_live, self.alloc.repeatable)

    def try_alloc_page(self) -> bool:
        """``__get_free_page(GFP_NOWAIT | __GFP_NOWARN)``: True when it succeeds."""
        sim, c = self.sim, self.costs
        if self.alloc.fails():
            sim.spend(c.batch_alloc_fail)
            sim.n["batch_alloc_failures"] += 1
            return False
        sim.spend(c.batch_alloc)
        sim.n["batch_allocs"] += 1
        return True

    # -- arch TLB flush hooks -----------------------------------------------------------
    def tlb_flush(self, cause: str, pages: int, fullmm: bool, start: int, end: int, strategy: str) -> None:
        """The arch ``tlb_flush(tlb)``: one TLB invalidation of the mm (or its range)."""
        model = self.arch.flush_model
        if model == "x86_mm":
            self._x86_flush_tlb_mm(cause, pages, fullmm, start, end, strategy)
        elif model == "ia64_range":
            self._ia64_tlb_flush_mmu(cause, pages, fullmm, start, end)
        else:
            self._ppc64_tlb_flush(cause, pages)

    def _ipi(self, n: int) -> int:
        if n <= 0:
            return 0
        c = self.costs
        self.sim.spend(c.ipi_base + n * c.ipi_per_cpu)
        self.sim.n["ipis"] += n
        self.sim.n["shootdowns"] += 1
        return n

    def _x86_flush_tlb_mm(self, cause: str, pages: int, fullmm: bool, start: int, end: int, strategy: str) -> None:
        """flush_tlb_mm [K22:arch/x86_64/kernel/smp.c:L228-246]: local flush, or leave_mm
        when current->mm is NULL (exit), then IPIs to cpu_vm_mask minus this CPU; lazy
        receivers leave_mm and drop out of the mask [L129-170]."""
        sim, c = self.sim, self.costs
        func = "flush_tlb_mm"
        if strategy == "modern":
            func = "flush_tlb_mm_range"
        sim.enter(func)
        if self.current_has_mm:
            if strategy == "modern" and not fullmm and end > start:
                npages = (end - start) >> self.arch.page_shift
                sim.spend(min(npages * c.invlpg, c.flush_local) if npages <= 33 else c.flush_local)
            else:
                sim.spend(c.flush_local)
        else:
            sim.spend(c.leave_mm)
            self.self_in_mask = False
        ipis = self._ipi(self.others_in_mask)
        self.lazy_cpus = 0
        sim.note_flush(cause, pages, ipis)
        sim.leave(func)

    def _ia64_tlb_flush_mmu(self, cause: str, pages: int, fullmm: bool, start: int, end: int) -> None:
        """The flush half of ia64_tlb_flush_mmu [K22:include/asm-ia64/tlb.h:L74-123]."""
        sim, c = self.sim, self.costs
        if fullmm:
            sim.enter("flush_tlb_mm")
            if self.mm_users == 0:
                # "happens as a result of exit_mmap()": drop the context, no purge
                sim.spend(c.ia64_ctx_drop)
                ipis = 0
            else:
                sim.spend(c.flush_local)
                ipis = self._ipi(self.others_in_mask)
            sim.note_flush(cause, pages, ipis, "mm")
            sim.leave("flush_tlb_mm")
            return
        size = (end - start) & self.arch.ulong_mask
        region = lambda a: (a >> 61) & 7  # noqa: E731 - REGION_NUMBER
        if size >= (1 << 40) or region(start) != region((end - 1) & self.arch.ulong_mask):
            sim.enter("flush_tlb_all")
            sim.spend(c.flush_local)
            ipis = self._ipi(self.workload.online_cpus - 1)
            sim.note_flush(cause, pages, ipis, "all")
            sim.leave("flush_tlb_all")
            return
        granules = max(1, -(-size // self.arch.page_size))
        glob = self.others_in_mask > 0
        for _ in range(2):  # the range, then its VHPT (ia64_thash) image
            sim.enter("flush_tlb_range")
            sim.spend(granules * (c.ia64_ptcga if glob else c.ia64_ptcl))
            sim.leave("flush_tlb_range")
        sim.n["ia64_global_purges" if glob else "ia64_local_purges"] += 2
        sim.note_flush(cause, pages, 0, "range")

    def _ppc64_tlb_flush(self, cause: str, pages: int) -> None:
        """tlb_flush [K22:include/asm-powerpc/tlb.h:L39-51]: flush the pending hash batch,
        then pte_free_finish() (submit the RCU page-table batch)."""
        sim = self.sim
        sim.enter("tlb_flush")
        if self.hash_index:
            self.flush_tlb_pending("tlb_flush")
        if self.pt_batch_live and self.pt_batch:
            self.pte_free_submit()
        sim.note_flush(cause, pages, 0)
        sim.leave("tlb_flush")

    # -- ppc64 hash batch (arch/powerpc/mm/tlb_64.c) ------------------------------------
    def hash_room(self) -> int:
        if self.arch.hash_batch_nr is None:
            return UNLIMITED
        return self.arch.hash_batch_nr - self.hash_index

    def hpte_need_flush(self, m: int) -> None:
        """``m`` hashed PTEs cleared inside the lazy-MMU section: append them to the
        per-CPU batch; a full batch (PPC64_TLB_BATCH_NR) is flushed [L130-206]."""
        if self.arch.hash_batch_nr is None:
            return
        self.hash_index += m
        if self.hash_index >= self.arch.hash_batch_nr:
            self.flush_tlb_pending("batch_full")

    def flush_tlb_pending(self, cause: str) -> None:
        """``__flush_tlb_pending`` [L215-230]: flush_hash_range(n, local), local iff the mm's
        cpu_vm_mask is this CPU alone."""
        sim, c = self.sim, self.costs
        n = self.hash_index
        local = self.others_in_mask == 0
        sim.enter("flush_hash_range")
        sim.spend(c.tlbie_base + n * (c.tlbiel if local else c.tlbie))
        sim.leave("flush_hash_range")
        sim.n["hash_flushes"] += 1
        sim.n["hash:" + cause] += 1
        sim.n["hash_entries"] += n
        if sim.record:
            sim.events.append(("hash_flush", sim.clock, cause, n, local))
        self.hash_index = 0

    def arch_enter_lazy_mmu_mode(self) -> None:
        if self.arch.hash_batch_nr is not None:
            self.hash_active = True

    def arch_leave_lazy_mmu_mode(self) -> None:
        if self.arch.hash_batch_nr is not None:
            if self.hash_index:
                self.flush_tlb_pending("lazy_mmu_leave")
            self.hash_active = False

    # -- page-table page freeing --------------------------------------------------------
    def free_table_synchronously(self, kernel_fn: str) -> None:
        """No page for the RCU batch: one page-table page freed at once after a synchronous
        IPI to every other CPU (no walker can still see it); ``kernel_fn`` is the function
        that does it (2.6.22 ppc64 ``pgtable_free_now``, modern ``tlb_remove_table_one``)."""
        sim, c = self.sim, self.costs
        sim.enter(kernel_fn)
        sim.spend(c.sync_ipi + c.pt_free)
        sim.n["sync_ipis"] += 1
        sim.n["ipis"] += self.workload.online_cpus - 1
        sim.n["pagetable_pages_freed"] += 1
        sim.leave(kernel_fn)

    def pgtable_free_tlb(self, modern: bool) -> None:
        """ppc64 pgtable_free_tlb [K22:arch/powerpc/mm/tlb_64.c:L95-120] (modern:
        tlb_remove_table): immediate when the mm has no other user or runs here alone,
        else into a page-sized RCU batch; allocation failure -> a synchronous IPI to every
        CPU, then an immediate free."""
        sim, c = self.sim, self.costs
        if not modern and (self.mm_users < 2 or self.others_in_mask == 0):
            sim.spend(c.pt_free)
            sim.n["pagetable_pages_freed"] += 1
            return
        if not self.pt_batch_live:
            if not self.try_alloc_page():
                self.free_table_synchronously("pgtable_free_now")
                return
            self.pt_batch_live = True
            self.pt_batch = 0
        self.pt_batch += 1
        sim.n["pagetable_pages_freed"] += 1
        if self.pt_batch >= self.arch.pte_freelist_size:
            self.pte_free_submit()

    def pte_free_submit(self) -> None:
        """call_rcu of the page-table batch (freed after a grace period)."""
        self.sim.spend(self.costs.rcu_submit)
        self.sim.n["rcu_submissions"] += 1
        self.pt_batch = 0
        self.pt_batch_live = False


class MmuGather:
    """What every strategy's ``struct mmu_gather`` shares: need_flush, the pages gathered
    (data and page-table pages apart, for the counts), and the flush/free step."""

    name = "mmu_gather"

    def __init__(self, mm: MM, fullmm: bool):
        self.mm = mm
        self.sim = mm.sim
        self.costs = mm.costs
        self.arch = mm.arch
        self.fullmm = fullmm
        self.need_flush = False
        self.nr_data = 0
        self.nr_pt = 0
        self.fast_mode = False
        self.start_addr: int | None = None  # first address cleared since the last flush
        self.end_addr = 0
        self.range_dirty = False  # modern: cleared_ptes / freed_tables since last tlbonly
        self.delayed_rmap = False

    @property
    def nr(self) -> int:
        return self.nr_data + self.nr_pt

    def key(self) -> tuple:
        return (self.need_flush, self.nr_data, self.nr_pt, self.range_dirty, self.delayed_rmap)

    def room(self) -> int:
        raise NotImplementedError

    # -- hooks the walker calls ---------------------------------------------------------
    def tlb_gather_mmu(self) -> None:
        raise NotImplementedError

    def tlb_finish_mmu(self, start: int, end: int, cause: str = "final") -> None:
        raise NotImplementedError

    def tlb_remove_tlb_entry(self, m: int, lo: int, hi: int) -> None:
        """``tlb_remove_tlb_entry`` for ``m`` PTEs in [lo, hi): need_flush, and the range
        (ia64 start_addr/end_addr; modern cleared_ptes)."""
        self.need_flush = True
        self.range_dirty = True
        if self.start_addr is None:
            self.start_addr = lo
        self.end_addr = hi

    def tlb_remove_page(self, m: int, pagetable: bool = False) -> bool:
        """Gather ``m`` pages (m <= room()).  Returns True when the gather is full and the
        caller must flush (3.0 ``force_flush``); strategies that flush from inside
        tlb_remove_page (2.6.22) do so here and return False."""
        raise NotImplementedError

    def free_pages_and_swap_cache(self, cause: str) -> int:
        """Release the gathered pages; returns how many."""
        sim, c = self.sim, self.costs
        n = self.nr
        if n:
            sim.enter("free_pages_and_swap_cache")
            sim.spend(n * c.page_free)
            sim.leave("free_pages_and_swap_cache")
        sim.n["pages_freed"] += self.nr_data
        sim.n["pagetable_pages_freed"] += self.nr_pt
        self.nr_data = 0
        self.nr_pt = 0
        return n

    def tlb_flush_mmu(self, cause: str, start: int = 0, end: int = 0) -> None:
        """``tlb_flush_mmu`` [K22:include/asm-generic/tlb.h:L68-78]: nothing unless
        need_flush; the arch flush, then free the batch."""
        if not self.need_flush:
            return
        sim = self.sim
        sim.enter("tlb_flush_mmu")
        self.need_flush = False
        pages = 0 if self.fast_mode else self.nr
        self.mm.tlb_flush(cause, pages, self.fullmm, start, end, self.mm.cfg.design)
        if not self.fast_mode:
            self.free_pages_and_swap_cache(cause)
        self.start_addr = None
        self.range_dirty = False
        sim.leave("tlb_flush_mmu")

    def free_pt_page(self, level: str) -> None:
        """``pte_free_tlb`` / ``pmd_free_tlb`` / ``pud_free_tlb``: set need_flush, then the
        arch's ``__p?d_free_tlb`` (docs/model.md#freeing-page-table-pages)."""
        self.need_flush = True
        self.range_dirty = True
        kind = self.arch.pt_free
        sim, c = self.sim, self.costs
        if kind == "batch":
            self.tlb_remove_page(1, pagetable=True)
        elif kind == "immediate":
            sim.spend(c.pt_free)  # ia64: straight to the quicklist
            sim.n["pagetable_pages_freed"] += 1
        elif isinstance(self, BatchedGather) and self.modern:
            self.tlb_remove_table()
        else:
            self.mm.pgtable_free_tlb(modern=False)


class PerCpuGather(MmuGather):
    """2.6.22 per-CPU ``mmu_gathers`` [K22:include/asm-generic/tlb.h:L47-111]: gathering
    disables preemption (get_cpu_var) until tlb_finish_mmu's put_cpu_var; FREE_PTE_NR
    pages; fast mode (immediate frees) when only one CPU is online."""

    def __init__(self, mm: MM, fullmm: bool):
        super().__init__(mm, fullmm)
        self.cap = self.arch.free_pte_nr

    def room(self) -> int:
        return UNLIMITED if self.fast_mode else self.cap - self.nr

    def tlb_gather_mmu(self) -> None:
        sim = self.sim
        sim.enter("tlb_gather_mmu")
        sim.preempt_disable()  # &get_cpu_var(mmu_gathers)
        sim.spend(self.costs.gather)
        self.fast_mode = self.mm.workload.online_cpus == 1
        # tlb->nr = num_online_cpus() > 1 ? 0U : ~0U; need_flush is not reset here
        self.nr_data = self.nr_pt = 0
        sim.leave("tlb_gather_mmu")

    def tlb_remove_page(self, m: int, pagetable: bool = False) -> bool:
        self.need_flush = True
        if self.fast_mode:
            self.sim.spend(m * self.costs.page_free)
            self.sim.n["pagetable_pages_freed" if pagetable else "pages_freed"] += m
            return False
        if pagetable:
            self.nr_pt += m
        else:
            self.nr_data += m
        if self.nr >= self.cap:
            if self.arch.flush_model == "ia64_range":
                # ia64_tlb_flush_mmu(tlb, tlb->start_addr, tlb->end_addr)
                self.tlb_flush_mmu("batch_full", self.start_addr or 0, self.end_addr)
            else:
                self.tlb_flush_mmu("batch_full")
        return False

    def tlb_finish_mmu(self, start: int, end: int, cause: str = "final") -> None:
        """tlb_flush_mmu, check_pgt_cache, put_cpu_var (a preemption point on PREEMPT).
        Only ia64 uses the caller's start/end [K22:include/asm-ia64/tlb.h:L155-170]."""
        sim = self.sim
        sim.enter("tlb_finish_mmu")
        sim.spend(self.costs.finish)
        self.tlb_flush_mmu(cause, start, end)
        sim.preempt_enable()  # put_cpu_var(mmu_gathers)
        sim.leave("tlb_finish_mmu")


class OnStackPageGather(MmuGather):
    """The 2007 on-stack proposal (docs/model.md#ben2007): no preempt_disable; one page of
    PAGE_SIZE/sizeof(void *) pointers from GFP_NOWAIT, else an on-stack array of N entries,
    with the allocation retried after every flush while on the fallback."""

    def __init__(self, mm: MM, fullmm: bool):
        super().__init__(mm, fullmm)
        self.fallback = mm.cfg.fallback_entries
        self.have_page = False
        self.cap = self.fallback

    def key(self) -> tuple:
        return super().key() + (self.cap,)

    def room(self) -> int:
        return self.cap - self.nr

    def _alloc(self) -> None:
        self.have_page = self.mm.try_alloc_page()
        self.cap = self.arch.ben_batch_entries if self.have_page else self.fallback

    def tlb_gather_mmu(self) -> None:
        sim = self.sim
        sim.enter("tlb_gather_mmu")
        sim.spend(self.costs.gather)
        self.nr_data = self.nr_pt = 0
        self._alloc()
        sim.leave("tlb_gather_mmu")

    def tlb_remove_page(self, m: int, pagetable: bool = False) -> bool:
        self.need_flush = True
        if pagetable:
            self.nr_pt += m
        else:
            self.nr_data += m
        if self.nr >= self.cap:
            if self.mm.cfg.flush_under_ptl or pagetable:
                self.tlb_flush_mmu("batch_full")
                return False
            return True
        return False

    def tlb_flush_mmu(self, cause: str, start: int = 0, end: int = 0) -> None:
        was = self.need_flush
        super().tlb_flush_mmu(cause, start, end)
        if was and not self.have_page:
            self._alloc()  # retry the page while on the fallback

    def tlb_finish_mmu(self, start: int, end: int, cause: str = "final") -> None:
        sim = self.sim
        sim.enter("tlb_finish_mmu")
        sim.spend(self.costs.finish)
        self.tlb_flush_mmu(cause, start, end)
        self.have_page = False
        sim.leave("tlb_finish_mmu")


class BatchedGather(MmuGather):
    """Linux 3.0+ ``struct mmu_gather`` with ``mmu_gather_batch`` pages [PZ-2011-extbatch]:
    ``local.__pages[MMU_GATHER_BUNDLE]`` then MAX_GATHER_BATCH-entry pages chained by
    ``tlb_next_batch``; pages of earlier batches are kept across flushes and freed by
    tlb_finish_mmu.  ``limit``: MAX_GATHER_BATCH_COUNT (v38, modern) or None (merged30)."""

    BUNDLE = 8

    def __init__(self, mm: MM, fullmm: bool, limit: int | None, modern: bool):
        super().__init__(mm, fullmm)
        self.limit = limit
        self.modern = modern
        self.batch_pages = 0  # batch pages allocated (tlb->batch_count)
        self.active = 0  # 0 = local, i = i-th batch page
        self.active_nr = 0
        self.batch_max = self.arch.max_gather_batch

    def key(self) -> tuple:
        return super().key() + (self.batch_pages, self.active, self.active_nr)

    def _active_max(self) -> int:
        return self.BUNDLE if self.active == 0 else self.batch_max

    def room(self) -> int:
        return self._active_max() - self.active_nr

    def tlb_gather_mmu(self) -> None:
        sim = self.sim
        sim.enter("tlb_gather_mmu")
        sim.spend(self.costs.gather)
        self.nr_data = self.nr_pt = 0
        self.active = 0
        self.active_nr = 0
        sim.leave("tlb_gather_mmu")

    def tlb_next_batch(self) -> bool:
        """Move to the next batch page: reuse one kept from before, else allocate one,
        unless the count limit is reached (or, modern, delayed rmaps are pending outside
        the local batch)."""
        if self.modern and self.delayed_rmap and self.active != 0:
            return False
        if self.active < self.batch_pages:
            self.active += 1
            self.active_nr = 0
            return True
        if self.limit is not None and self.batch_pages >= self.limit:
            return False
        if not self.mm.try_alloc_page():
            return False
        self.batch_pages += 1
        self.active += 1
        self.active_nr = 0
        return True

    def tlb_remove_page(self, m: int, pagetable: bool = False) -> bool:
        self.need_flush = True
        if pagetable:
            self.nr_pt += m
        else:
            self.nr_data += m
        self.active_nr += m
        if self.active_nr >= self._active_max():
            if not self.tlb_next_batch():
                if pagetable:
                    # tlb_remove_page(): if (!__tlb_remove_page()) tlb_flush_mmu()
                    self.tlb_flush_mmu("forced")
                    return False
                return True
        return False

    def tlb_flush_mmu_tlbonly(self, cause: str, start: int = 0, end: int = 0, pages: int = 0) -> None:
        """Modern ``tlb_flush_mmu_tlbonly``: the TLB flush alone, only if something was
        cleared since the last one.  ``pages``: how many gathered pages the caller frees
        right after it (a forced or delayed-rmap flush); a vma-end flush frees none."""
        if not (self.need_flush and self.range_dirty):
            return
        self.sim.enter("tlb_flush_mmu_tlbonly")
        self.mm.tlb_flush(cause, pages, self.fullmm, start, end, "modern")
        self.range_dirty = False
        self.start_addr = None
        self.sim.leave("tlb_flush_mmu_tlbonly")

    def tlb_batch_pages_flush(self) -> None:
        """Free every batch: modern frees in chunks of at most 512 pages with a
        cond_resched() after each; 3.0 frees all at once (Hocko's soft lockup)."""
        sim, c = self.sim, self.costs
        n = self.nr
        if n and self.modern:
            sim.enter("tlb_batch_pages_flush")
            done = 0
            while done < n:
                chunk = min(512, n - done)
                sim.enter("free_pages_and_swap_cache")
                sim.spend(chunk * c.page_free)
                sim.leave("free_pages_and_swap_cache")
                sim.cond_resched(c.cond_resched)
                done += chunk
            sim.leave("tlb_batch_pages_flush")
            sim.n["pages_freed"] += self.nr_data
            sim.n["pagetable_pages_freed"] += self.nr_pt
            self.nr_data = self.nr_pt = 0
        else:
            self.free_pages_and_swap_cache("")
        self.active = 0
        self.active_nr = 0
        self.delayed_rmap = False

    def tlb_flush_mmu(self, cause: str, start: int = 0, end: int = 0) -> None:
        if not self.modern:
            super().tlb_flush_mmu(cause, start, end)
            self.active = 0
            self.active_nr = 0
            return
        if not self.need_flush:
            return
        self.sim.enter("tlb_flush_mmu")
        self.tlb_flush_mmu_tlbonly(cause, start, end, pages=self.nr)
        self.tlb_table_flush(cause)  # tlb_flush_mmu_free: the range is clean, no second flush
        self.tlb_batch_pages_flush()
        self.need_flush = False
        self.sim.leave("tlb_flush_mmu")

    # -- modern page-table freeing through the RCU table batch ---------------------------
    def tlb_table_invalidate(self, cause: str) -> None:
        """``tlb_table_invalidate`` [6.1.176:mm/mmu_gather.c:L191-201]: when the arch needs
        it, flush the TLB (tlbonly) before the tables go, for hardware walkers' caches."""
        if self.arch.table_invalidate:
            self.tlb_flush_mmu_tlbonly(cause)

    def tlb_table_flush(self, cause: str) -> None:
        """``tlb_table_flush`` [L209-218]: invalidate, then ``call_rcu`` the batch."""
        mm = self.mm
        if mm.pt_batch_live:
            self.tlb_table_invalidate(cause)
            if mm.pt_batch:
                mm.pte_free_submit()
            mm.pt_batch_live = False

    def tlb_remove_table(self) -> None:
        """``tlb_remove_table`` [L220-236]: one page-table page into the batch (a page from
        ``GFP_NOWAIT``); no batch page: invalidate, ``tlb_remove_table_one`` (a synchronous
        IPI to every CPU, then the free); a full batch (MAX_TABLE_BATCH): tlb_table_flush.
        Unlike 2007's ppc64 there is no shortcut for an mm with no other user."""
        mm, sim = self.mm, self.sim
        if not mm.pt_batch_live:
            if not mm.try_alloc_page():
                self.tlb_table_invalidate("table_alloc_fail")
                mm.free_table_synchronously("tlb_remove_table_one")
                return
            mm.pt_batch_live = True
            mm.pt_batch = 0
        mm.pt_batch += 1
        sim.n["pagetable_pages_freed"] += 1
        if mm.pt_batch >= self.arch.pte_freelist_size:
            self.tlb_table_flush("table_batch_full")

    def tlb_finish_mmu(self, start: int, end: int, cause: str = "final") -> None:
        sim = self.sim
        sim.enter("tlb_finish_mmu")
        sim.spend(self.costs.finish)
        self.tlb_flush_mmu(cause, start, end)
        if self.batch_pages:
            sim.spend(self.batch_pages * self.costs.page_free)  # free the batch pages
            self.batch_pages = 0
        sim.leave("tlb_finish_mmu")


def make_gather(mm: MM, fullmm: bool) -> MmuGather:
    """The ``struct mmu_gather`` of the configured strategy."""
    s = mm.cfg.design
    if s in ("v2622", "hugh2007"):
        return PerCpuGather(mm, fullmm)
    if s == "ben2007":
        return OnStackPageGather(mm, fullmm)
    if s == "merged30":
        return BatchedGather(mm, fullmm, None, modern=False)
    limit = mm.arch.max_gather_batch_count
    return BatchedGather(mm, fullmm, limit, modern=s == "modern")
