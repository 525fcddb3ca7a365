"""The teardown walk: ``exit_mmap`` / ``unmap_region`` -> ``unmap_vmas`` ->
``unmap_page_range`` -> ``zap_p?d_range`` -> ``zap_pte_range``, then ``free_pgtables`` ->
``free_pgd_range`` and ``tlb_finish_mmu``.

Mirrors Linux 2.6.22.19 ``mm/memory.c`` (L125-295 free_pgtables/free_pgd_range, L621-874
zap_*_range/unmap_vmas) and ``mm/mmap.c`` (L1679-1695 unmap_region, L1969-1996 exit_mmap),
with the later strategies' changes as docs/model.md#strategies gives them: Hugh Dickins'
unlink pass (2007), the 3.0 rework (no ZAP_BLOCK_SIZE, cond_resched per PMD, flush outside the
PTE lock via force_flush/``goto again``) and the modern zap_pte_range (per-entry need_resched
test, delayed rmap, tlbonly flush under the lock).

The walk never visits one PTE at a time: a PTE table is a few runs of equal entries and each
run is cut only where the kernel would act (ZAP_BLOCK budget spent, gather full, ppc64 hash
batch full).  A ZAP_BLOCK or a flush cycle that repeats exactly inside a run is simulated
once and multiplied (:meth:`tracekit.model.sim.Sim.repeat`).
"""

from __future__ import annotations

from bisect import bisect_left

from tracekit.model.gather import MM, MmuGather, make_gather
from tracekit.model.workload import PRESENT_KINDS, VMA, PteTable

__all__ = [
    "exit_mmap",
    "unmap_mapping_range",
    "unmap_hugepage_range",
    "unmap_region",
    "unmap_vmas",
    "unmap_page_range",
    "zap_pte_range",
    "free_pgtables",
    "free_pgd_range",
]

_PTE_COST = {
    "anon": "pte_anon",
    "file_clean": "pte_file_clean",
    "file_dirty": "pte_file_dirty",
    "swap": "pte_swap",
    "none": "pte_none",
}


class _TlbRef:
    """``struct mmu_gather **tlbp``: unmap_vmas and Hugh's free_pgtables end the gather and
    start a new one; the walker keeps one object and re-gathers it."""

    def __init__(self, tlb: MmuGather):
        self.tlb = tlb


def _table_of(mm: MM, vma: VMA, base: int) -> PteTable:
    tables = getattr(vma, "_by_base", None)
    if tables is None:
        tables = {t.base: t for t in vma.tables(mm.arch)}
        vma._by_base = tables  # type: ignore[attr-defined]
    t = tables.get(base)
    if t is None:
        # a table that exists for a neighbouring VMA: this VMA's part of it is all none
        lo, hi = max(base, vma.start), min(base + mm.arch.pmd_size, vma.end)
        t = PteTable(base, lo, hi, (("none", (hi - lo) >> mm.arch.page_shift),))
        tables[base] = t
    return t


def _run_at(table: PteTable, idx: int) -> tuple[str, int]:
    """(kind, index one past the run) of the run holding entry ``idx`` of ``table``."""
    pos = 0
    for kind, n in table.runs:
        if idx < pos + n:
            return kind, pos + n
        pos += n
    return "none", pos


# --------------------------------------------------------------------------------------
# zap_pte_range
# --------------------------------------------------------------------------------------


def _zap_pte_entries(mm: MM, tlb: MmuGather, vma: VMA, table: PteTable, idx: int, end_idx: int,
                     zap_work: int | None) -> tuple[int, int | None, bool]:
    """The ``do { ... } while (pte++, addr += PAGE_SIZE, addr != end && *zap_work > 0)``
    loop of zap_pte_range [K22:mm/memory.c:L621-700], over runs.  Returns (index reached,
    zap_work, force_flush)."""
    sim, c, arch = mm.sim, mm.costs, mm.arch
    page = arch.page_size
    strategy = mm.cfg.design
    modern = strategy == "modern"
    force_flush = False
    while idx < end_idx and (zap_work is None or zap_work > 0):
        kind, run_end = _run_at(table, idx)
        k = min(run_end, end_idx) - idx
        cost = getattr(c, _PTE_COST[kind])
        if kind == "none":
            m = k if zap_work is None else min(k, zap_work)
            if modern:
                sim.spend_polled(1, 0)  # one need_resched() test per do_zap_pte_range
            sim.spend(m * cost)
            sim.n["pte_none_scanned"] += m
            if zap_work is not None:
                zap_work -= m
            idx += m
            continue
        m = k
        if zap_work is not None:
            m = min(m, -(-zap_work // page))
        if kind == "swap" and mm.truncating_details:
            # "if (details) continue;": truncation leaves swap and nonlinear file ptes
            sim.spend(m * c.pte_none)
            if zap_work is not None:
                zap_work -= m * page
            idx += m
            continue
        if kind == "swap":
            if modern:
                sim.spend_polled(m, cost)
            else:
                sim.spend(m * cost)
            sim.n["swap_entries_freed"] += m
            if zap_work is not None:
                zap_work -= m * page
            idx += m
            continue
        # present PTEs: cut where the gather or the hash batch has something to do
        room = tlb.room()
        rep = None
        if not sim.record and zap_work is None and room < m // 3 and tlb.nr == 0:
            # a flush cycle that may repeat exactly to the end of the run
            rep = (sim.mark(), tlb.key(), mm.state_key(), idx)
        m = min(m, room, mm.hash_room())
        if modern and kind == "file_dirty" and mm.workload.online_cpus > 1:
            # zap_present_folio_ptes: folio_mark_dirty; tlb_delay_rmap -> delay_rmap,
            # *force_flush = true (the TLB must be flushed before the rmap goes)
            tlb.delayed_rmap = True
            force_flush = True
        if modern:
            sim.spend_polled(m, cost, "ptes_zapped")
        else:
            sim.spend(m * cost)
            sim.n["ptes_zapped"] += m
        if kind == "file_dirty":
            sim.n["set_page_dirty"] += m
        lo = table.lo + idx * page
        tlb.tlb_remove_tlb_entry(m, lo, lo + m * page)
        mm.hpte_need_flush(m)
        if zap_work is not None:
            zap_work -= m * page
        idx += m
        if tlb.tlb_remove_page(m):
            force_flush = True
            break
        if rep is not None:
            m0, k0, s0, i0 = rep
            L = idx - i0
            if tlb.key() == k0 and mm.state_key() == s0:
                q = (min(run_end, end_idx) - idx) // L - 1
                if q > 0 and sim.repeat(m0, q):
                    idx += q * L
    return idx, zap_work, force_flush


def zap_pte_range(mm: MM, tlbp: _TlbRef, vma: VMA, table: PteTable, addr: int, end: int,
                  zap_work: int | None) -> tuple[int, int | None]:
    """zap_pte_range(): clear the PTEs of one table in [addr, end) under its PTE lock
    (``pte_offset_map_lock``), inside the lazy-MMU section (ppc64 hash batch).

    2.6.22 [K22:mm/memory.c:L621-700]: a full gather flushes from tlb_remove_page, under
    the lock.  3.0 [PZ-2011-lockbreak]: a full gather breaks the loop (``force_flush``),
    the lock is dropped, tlb_flush_mmu runs, and the walk resumes (``goto again``).
    Modern: tlbonly flush and delayed rmaps under the lock, pages freed after, and
    ``cond_resched()`` before retrying.  Returns (address reached, zap_work)."""
    sim, c, arch = mm.sim, mm.costs, mm.arch
    tlb = tlbp.tlb
    shift = arch.page_shift
    idx = (addr - table.lo) >> shift
    end_idx = (end - table.lo) >> shift
    modern = mm.cfg.design == "modern"
    sim.enter("zap_pte_range")
    again = False
    while True:  # again:
        kind, run_end = _run_at(table, idx)
        rep = None
        if (again and not sim.record and kind in PRESENT_KINDS and zap_work is None
                and min(run_end, end_idx) - idx > 2 * tlb.room()):
            rep = (sim.mark(), tlb.key(), mm.state_key(), idx)
        sim.preempt_disable()  # spin_lock(ptl)
        sim.spend(c.ptl)
        mm.arch_enter_lazy_mmu_mode()
        idx, zap_work, force_flush = _zap_pte_entries(mm, tlb, vma, table, idx, end_idx, zap_work)
        sim.n["ptl_holds"] += 1
        if modern and force_flush:
            tlb.tlb_flush_mmu_tlbonly("delayed_rmap" if tlb.room() else "forced", pages=tlb.nr)
        mm.arch_leave_lazy_mmu_mode()
        sim.preempt_enable()  # pte_unmap_unlock
        if not force_flush:
            break
        # after pte_unmap_unlock: flush (3.0) or free what the tlbonly flush covered (modern)
        tlb.tlb_flush_mmu("forced")
        if idx == end_idx or (zap_work is not None and zap_work <= 0):
            break
        if modern:
            sim.cond_resched(c.cond_resched)
        again = True
        if rep is not None:
            m0, k0, s0, i0 = rep
            L = idx - i0
            if L > 0 and tlb.key() == k0 and mm.state_key() == s0:
                q = (min(run_end, end_idx) - idx) // L - 1
                if q > 0 and sim.repeat(m0, q):
                    idx += q * L
    sim.leave("zap_pte_range")
    return table.lo + (idx << shift), zap_work


# --------------------------------------------------------------------------------------
# zap_pmd_range / zap_pud_range / unmap_page_range
# --------------------------------------------------------------------------------------


def _pmd_end(mm: MM, addr: int, end: int) -> int:
    b = (addr + mm.arch.pmd_size) & ~(mm.arch.pmd_size - 1)
    return b if b < end else end


def zap_pmd_range(mm: MM, tlbp: _TlbRef, vma: VMA, addr: int, end: int,
                  zap_work: int | None) -> tuple[int, int | None]:
    """zap_pmd_range [K22:mm/memory.c:L702-724]: a none PMD costs one byte of zap_work;
    3.0 adds cond_resched() after each PTE table, modern after every PMD."""
    sim, c, arch = mm.sim, mm.costs, mm.arch
    strategy = mm.cfg.design
    per_pmd_resched = strategy in ("merged30", "v38", "modern") or (
        strategy == "ben2007" and mm.cfg.zap_block_pages is None)
    modern = strategy == "modern"
    sim.enter("zap_pmd_range")
    sim.spend(c.call)
    keys = mm.pt._sorted["pte"]
    live = mm.pt.levels["pte"]
    pmd = arch.pmd_size
    i = bisect_left(keys, addr & ~(pmd - 1))
    while True:
        while i < len(keys) and (keys[i] not in live or keys[i] + pmd <= addr):
            i += 1
        slot = addr & ~(pmd - 1)
        tbase = keys[i] if i < len(keys) and keys[i] < end else None
        if tbase != slot:
            # pmd_none slots up to the next table (or end)
            stop = tbase if tbase is not None else end
            nslots = ((stop - 1) >> arch.pmd_shift) - (slot >> arch.pmd_shift) + 1
            if zap_work is not None:
                take = min(nslots, zap_work)
                zap_work -= take
            else:
                take = nslots
            sim.spend(take * c.free_pgd_walk)
            if modern:
                sim.spend_polled(take, c.cond_resched)
            addr = min(slot + take * pmd, end)
            if addr >= end or (zap_work is not None and zap_work <= 0):
                break
            continue
        table = _table_of(mm, vma, tbase)
        addr, zap_work = zap_pte_range(mm, tlbp, vma, table, addr, _pmd_end(mm, addr, end), zap_work)
        if per_pmd_resched:
            sim.cond_resched(c.cond_resched)
        if addr >= end or (zap_work is not None and zap_work <= 0):
            break
    sim.leave("zap_pmd_range")
    return addr, zap_work


def _level_end(addr: int, end: int, size: int) -> int:
    b = (addr + size) & ~(size - 1)
    return b if b < end else end


def zap_pud_range(mm: MM, tlbp: _TlbRef, vma: VMA, addr: int, end: int,
                  zap_work: int | None) -> tuple[int, int | None]:
    """zap_pud_range [K22:mm/memory.c:L726-746]; a folded PUD is never none."""
    sim, arch = mm.sim, mm.arch
    sim.enter("zap_pud_range")
    sim.spend(mm.costs.call)
    while True:
        nxt = _level_end(addr, end, arch.pud_size)
        if not arch.pud_folded and not mm.pt.any_in(addr & ~(arch.pud_size - 1), nxt):
            if zap_work is not None:
                zap_work -= 1
            addr = nxt
        else:
            addr, zap_work = zap_pmd_range(mm, tlbp, vma, addr, nxt, zap_work)
            if mm.cfg.design == "modern":
                sim.cond_resched(mm.costs.cond_resched)
        if addr >= end or (zap_work is not None and zap_work <= 0):
            break
    sim.leave("zap_pud_range")
    return addr, zap_work


def unmap_page_range(mm: MM, tlbp: _TlbRef, vma: VMA, addr: int, end: int,
                     zap_work: int | None) -> tuple[int, int | None]:
    """unmap_page_range [K22:mm/memory.c:L748-776]: tlb_start_vma, the pgd loop (a none
    pgd costs one byte of zap_work), tlb_end_vma (no-ops on x86, ia64, powerpc)."""
    sim, arch = mm.sim, mm.arch
    sim.enter("unmap_page_range")
    sim.spend(mm.costs.call)
    while True:
        nxt = _level_end(addr, end, arch.pgdir_size)
        if not mm.pt.any_in(addr & ~(arch.pgdir_size - 1), nxt):
            if zap_work is not None:
                zap_work -= 1
            addr = nxt
        else:
            addr, zap_work = zap_pud_range(mm, tlbp, vma, addr, nxt, zap_work)
        if addr >= end or (zap_work is not None and zap_work <= 0):
            break
    sim.leave("unmap_page_range")
    return addr, zap_work


# --------------------------------------------------------------------------------------
# unmap_vmas
# --------------------------------------------------------------------------------------


def _run_bounds(mm: MM, vma: VMA, addr: int) -> tuple[str, int] | None:
    """(kind, end address) of the run of entries that ``addr`` starts in, if any."""
    base = addr & ~(mm.arch.pmd_size - 1)
    if base not in mm.pt.levels["pte"]:
        return None
    t = _table_of(mm, vma, base)
    idx = (addr - t.lo) >> mm.arch.page_shift
    kind, run_end = _run_at(t, idx)
    return kind, t.lo + (run_end << mm.arch.page_shift)


def _uniform_end(mm: MM, vma: VMA, base: int) -> int | None:
    """End of the stretch of identical, fully covered single-run tables starting at the
    table ``base``, inside one PUD span (so the walk above the PTE level repeats too);
    None when the table at ``base`` is not such a table."""
    cache = getattr(vma, "_uniform", None)
    if cache is None:
        arch = mm.arch
        pmd, pud = arch.pmd_size, arch.pud_size
        cache = {}
        tables = vma.tables(arch)
        end_at = None
        for i in range(len(tables) - 1, -1, -1):
            t = tables[i]
            full = t.lo == t.base and t.hi == t.base + pmd and len(t.runs) == 1
            if not full:
                end_at = None
                continue
            nt = tables[i + 1] if i + 1 < len(tables) else None
            if (end_at is None or nt is None or nt.base != t.base + pmd or nt.runs != t.runs
                    or (nt.base & ~(pud - 1)) != (t.base & ~(pud - 1))):
                end_at = t.base + pmd
            cache[t.base] = end_at
        vma._uniform = cache  # type: ignore[attr-defined]
    return cache.get(base)


def _blocks_align(mm: MM, a0: int, L: int) -> bool:
    """Whether blocks of L bytes starting at a0 fall on the same place in every table."""
    pmd = mm.arch.pmd_size
    if L < pmd:
        return pmd % L == 0 and (a0 % pmd) % L == 0
    return L % pmd == 0 and a0 % pmd == 0


def unmap_hugepage_range(mm: MM, vma: VMA, start: int, end: int) -> None:
    """unmap_hugepage_range [K22:mm/hugetlb.c:L379-438]: the whole range in one call under
    ``mm->page_table_lock``: clear every huge PTE, one flush_tlb_range, unlock, then
    put_page each huge page.  Modelled this way for every strategy (the gather-based
    hugetlb unmap of later kernels is not modelled)."""
    sim, c = mm.sim, mm.costs
    pmd = mm.arch.pmd_size
    n = sum(1 for b in vma.huge_spans(mm.arch) if start <= b < end)
    sim.enter("unmap_hugepage_range")
    sim.preempt_disable()  # spin_lock(&mm->page_table_lock)
    sim.spend(c.ptl + n * c.pte_anon)
    sim.n["huge_ptes_zapped"] += n
    if n:
        mm.tlb_flush("hugetlb_range", 0, False, start & ~(pmd - 1), end, mm.cfg.design)
    sim.preempt_enable()
    sim.spend(n * c.page_free)
    sim.n["huge_pages_freed"] += n
    sim.leave("unmap_hugepage_range")


def _block_resched(mm: MM) -> None:
    """After a spent ZAP_BLOCK: ``cond_resched()``, or, truncating under i_mmap_lock, the
    lockbreak (``*tlbp = NULL``; unmap_mapping_range_vma drops i_mmap_lock, cond_resched,
    retakes it and restarts at the address reached) [K22:mm/memory.c:L850-866].
    need_resched() is assumed due at every block end (the worst case)."""
    sim, c = mm.sim, mm.costs
    if mm.truncating:
        sim.n["i_mmap_lockbreaks"] += 1
        sim.preempt_enable()  # spin_unlock(details->i_mmap_lock)
        sim.cond_resched(c.cond_resched)
        sim.preempt_disable()  # spin_lock(details->i_mmap_lock)
    else:
        sim.cond_resched(c.cond_resched)


def unmap_vmas(mm: MM, tlbp: _TlbRef, vmas: list[VMA], start_addr: int, end_addr: int) -> int:
    """unmap_vmas [K22:mm/memory.c:L778-874]: with a ZAP_BLOCK_SIZE (2.6.22 strategies),
    every spent block ends with tlb_finish_mmu (flush, free, preempt_enable), a
    cond_resched() and a new tlb_gather_mmu, whether or not a reschedule is due.  From 3.0
    on, one unmap_page_range per vma (modern: tlb_end_vma flushes when not fullmm).
    Returns the address reached."""
    sim, c = mm.sim, mm.costs
    block = mm.cfg.zap_block_pages
    zap_block_size = block * mm.arch.page_size if block else None
    page = mm.arch.page_size
    sim.enter("unmap_vmas")
    start = start_addr
    zap_work = zap_block_size
    tlb_start = 0
    tlb_start_valid = False
    for vma in vmas:
        start = max(vma.start, start_addr)
        end = min(vma.end, end_addr)
        sim.spend(c.vma_walk)
        if start >= end:
            continue
        sim.n["vmas"] += 1
        if vma.accounted:
            sim.n["nr_accounted"] += (end - start) >> mm.arch.page_shift
        if zap_block_size is None:
            if vma.hugetlb:
                unmap_hugepage_range(mm, vma, start, end)
                start = end
                continue
            start, _ = unmap_page_range(mm, tlbp, vma, start, end, None)
            if mm.cfg.design == "modern" and not tlbp.tlb.fullmm:
                # tlb_end_vma: flush the range of this vma before moving on
                tlbp.tlb.tlb_flush_mmu_tlbonly("vma_end", vma.start, vma.end)  # type: ignore[attr-defined]
            continue
        while start != end:
            if not tlb_start_valid:
                tlb_start = start
                tlb_start_valid = True
            if vma.hugetlb:
                # one call for the whole vma, no block break; PAGE_SIZE of zap_work per huge page
                unmap_hugepage_range(mm, vma, start, end)
                zap_work -= (end - start) // (mm.arch.pmd_size // page)
                start = end
                if zap_work > 0:
                    break
                tlbp.tlb.tlb_finish_mmu(tlb_start, start, "block_end")
                _block_resched(mm)
                tlbp.tlb.tlb_gather_mmu()
                tlb_start_valid = False
                zap_work = zap_block_size
                continue
            rep = None
            if not sim.record and zap_work == zap_block_size:
                rb = _run_bounds(mm, vma, start)
                if rb is not None and rb[0] in PRESENT_KINDS:
                    ue = _uniform_end(mm, vma, start & ~(mm.arch.pmd_size - 1))
                    region = (ue, True) if ue is not None and ue > rb[1] else (rb[1], False)
                    if region[0] - start >= 3 * block * page:
                        rep = (sim.mark(), tlbp.tlb.key(), mm.state_key(), start, region)
            start, zap_work = unmap_page_range(mm, tlbp, vma, start, end, zap_work)
            if zap_work > 0:
                break
            tlbp.tlb.tlb_finish_mmu(tlb_start, start, "block_end")
            _block_resched(mm)
            tlbp.tlb.tlb_gather_mmu()
            tlb_start_valid = False
            zap_work = zap_block_size
            if rep is not None:
                m0, k0, s0, a0, (run_end, multi) = rep
                L = start - a0
                if (L > 0 and start <= run_end and tlbp.tlb.key() == k0 and mm.state_key() == s0
                        and (not multi or _blocks_align(mm, a0, L))):
                    q = (min(run_end, end) - start) // L
                    if q > 0 and sim.repeat(m0, q):
                        start += q * L
    sim.leave("unmap_vmas")
    return start


# --------------------------------------------------------------------------------------
# free_pgtables / free_pgd_range
# --------------------------------------------------------------------------------------


def _unlink(mm: MM, vma: VMA, sleeping_locks: bool) -> None:
    """anon_vma_unlink [K22:mm/rmap.c:L121-138] and unlink_file_vma [K22:mm/mmap.c:L208-218]:
    each a short spinlock section in 2.6.22, mutexes from 3.0."""
    sim, c = mm.sim, mm.costs
    for func, wanted, cost in (("anon_vma_unlink", vma.has_anon_vma, c.unlink_anon),
                               ("unlink_file_vma", vma.file_backed, c.unlink_file)):
        if not wanted:
            continue
        sim.enter(func)
        if not sleeping_locks:
            sim.preempt_disable()
        sim.spend(cost)
        sim.n["unlinks"] += 1
        if not sleeping_locks:
            sim.preempt_enable()
        sim.leave(func)


def free_pgtables(mm: MM, tlbp: _TlbRef, vmas: list[VMA], floor: int, ceiling: int) -> None:
    """free_pgtables [K22:mm/memory.c:L269-295]: unlink each vma from rmap, gather
    neighbours within PMD_SIZE into one free_pgd_range call.

    hugh2007 on CONFIG_PREEMPT [LKML-2007-07-24]: with two or more vmas, end the gather
    (one extra tlb_finish_mmu), unlink them all with preemption enabled, start a new
    gather for the page-table freeing."""
    sim, c, arch = mm.sim, mm.costs, mm.arch
    strategy = mm.cfg.design
    sleeping = strategy in ("merged30", "v38", "modern")
    sim.enter("free_pgtables")
    unlinked = False
    if strategy == "hugh2007" and mm.cfg.preempt and vmas:
        if len(vmas) > 1:
            t = tlbp.tlb
            s = t.start_addr if arch.flush_model == "ia64_range" and t.start_addr is not None else 0
            e = t.end_addr if arch.flush_model == "ia64_range" else 0
            t.tlb_finish_mmu(s, e, "unlink_pass")
        for v in vmas:
            _unlink(mm, v, sleeping)
        if len(vmas) > 1:
            tlbp.tlb.tlb_gather_mmu()
        unlinked = True
    i = 0
    while i < len(vmas):
        vma = vmas[i]
        nxt = vmas[i + 1] if i + 1 < len(vmas) else None
        addr = vma.start
        sim.spend(c.vma_walk)
        if not unlinked:
            _unlink(mm, vma, sleeping)
        if vma.hugetlb:
            # hugetlb_free_pgd_range: the generic free_pgd_range on x86
            free_pgd_range(mm, tlbp.tlb, addr, vma.end, floor, nxt.start if nxt is not None else ceiling)
            i += 1
            continue
        # "Optimization: gather nearby vmas into one call down"
        while nxt is not None and nxt.start <= vma.end + arch.pmd_size and not nxt.hugetlb:
            i += 1
            vma = nxt
            nxt = vmas[i + 1] if i + 1 < len(vmas) else None
            sim.spend(c.vma_walk)
            if not unlinked:
                _unlink(mm, vma, sleeping)
        free_pgd_range(mm, tlbp.tlb, addr, vma.end, floor, nxt.start if nxt is not None else ceiling)
        i += 1
    sim.leave("free_pgtables")


def free_pgd_range(mm: MM, tlb: MmuGather, addr: int, end: int, floor: int, ceiling: int) -> list[tuple[str, int]]:
    """free_pgd_range [K22:mm/memory.c:L206-267] with its unsigned-long arithmetic exact
    (``end - 1 > ceiling - 1`` with 0 meaning the top of the address space).

    A PTE page is freed iff its PMD span lies in [floor, ceiling) rounded to PMD_SIZE; a
    PMD page iff its PUD span does; a PUD page iff its PGDIR span does.  Returns the pages
    freed as (level, base address), in order."""
    arch, sim = mm.arch, mm.sim
    M = arch.ulong_mask
    pmd_size = arch.pmd_size
    pmd_mask = M & ~(pmd_size - 1)
    freed: list[tuple[str, int]] = []
    sim.enter("free_pgd_range")
    try:
        addr &= pmd_mask
        if addr < floor:
            addr = (addr + pmd_size) & M
            if not addr:
                return freed
        if ceiling:
            ceiling &= pmd_mask
            if not ceiling:
                return freed
        if ((end - 1) & M) > ((ceiling - 1) & M):
            end = (end - pmd_size) & M
        if addr > ((end - 1) & M):
            return freed
        top = end if end else M + 1
        _free_level(mm, tlb, "pgd", addr, top, floor, ceiling, freed)
        return freed
    finally:
        sim.leave("free_pgd_range")


_LEVELS = ("pgd", "pud", "pmd", "pte")


def _free_level(mm: MM, tlb: MmuGather, level: str, addr: int, end: int, floor: int, ceiling: int,
                freed: list[tuple[str, int]]) -> None:
    """The entry loop of free_pgd_range (level "pgd"), free_pud_range ("pud") and
    free_pmd_range ("pmd") over [addr, end) (``end`` is never 0 here: the top is 2**bits),
    followed by the floor/ceiling test that frees the table page of the level below."""
    arch, sim, c = mm.arch, mm.sim, mm.costs
    M = arch.ulong_mask
    size = {"pgd": arch.pgdir_size, "pud": arch.pud_size, "pmd": arch.pmd_size}[level]
    pt = mm.pt
    # which existing page marks an entry of this level present
    if level == "pmd":
        child_level = "pte"
    elif level == "pud":
        child_level = "pmd" if not arch.pmd_folded else "pte"
    else:
        child_level = "pud" if not arch.pud_folded else ("pmd" if not arch.pmd_folded else "pte")
    slots = ((end - 1) // size) - (addr // size) + 1
    sim.spend(slots * c.free_pgd_walk)
    children = pt.present_in(child_level, addr & ~(size - 1), end)
    seen_slots: list[int] = []
    for b in children:
        s = b & ~(size - 1)
        if not seen_slots or seen_slots[-1] != s:
            seen_slots.append(s)
    for s in seen_slots:
        lo, hi = max(s, addr), min(s + size, end)
        if level == "pgd":
            if arch.pud_folded:
                _free_pud_range(mm, tlb, lo, hi, floor, ceiling, freed)
            else:
                _free_level(mm, tlb, "pud", lo, hi, floor, ceiling, freed)
                _free_upper(mm, tlb, lo, hi, floor, ceiling, arch.pgdir_size, "pud", freed)
        elif level == "pud":
            _free_pud_entry(mm, tlb, lo, hi, floor, ceiling, freed)
        else:  # pmd entries: PTE pages
            if s in pt.levels["pte"]:
                free_pte_range(mm, tlb, s, freed)


def _free_pud_range(mm: MM, tlb: MmuGather, addr: int, end: int, floor: int, ceiling: int,
                    freed: list[tuple[str, int]]) -> None:
    """free_pud_range with the PUD folded into the PGD: one entry, then the PGDIR test
    whose pud_free_tlb is a no-op (only need_flush)."""
    _free_pud_entry(mm, tlb, addr, end, floor, ceiling, freed)


def _free_pud_entry(mm: MM, tlb: MmuGather, addr: int, end: int, floor: int, ceiling: int,
                    freed: list[tuple[str, int]]) -> None:
    """One PUD entry: free_pmd_range over it (or, PMD folded, the PTE page directly),
    then the PUD-granularity test that frees the PMD page."""
    arch = mm.arch
    if arch.pmd_folded:
        s = addr & ~(arch.pmd_size - 1)
        if s in mm.pt.levels["pte"]:
            free_pte_range(mm, tlb, s, freed)
        return
    _free_level(mm, tlb, "pmd", addr, end, floor, ceiling, freed)
    _free_upper(mm, tlb, addr, end, floor, ceiling, arch.pud_size, "pmd", freed)


def _free_upper(mm: MM, tlb: MmuGather, start: int, end: int, floor: int, ceiling: int, size: int,
                level: str, freed: list[tuple[str, int]]) -> None:
    """The tail of free_pmd_range (size PUD_SIZE, frees a PMD page) and free_pud_range
    (size PGDIR_SIZE, frees a PUD page)::

        start &= MASK; if (start < floor) return;
        if (ceiling) { ceiling &= MASK; if (!ceiling) return; }
        if (end - 1 > ceiling - 1) return;
        clear the entry; p?d_free_tlb(tlb, page)
    """
    arch = mm.arch
    M = arch.ulong_mask
    mask = M & ~(size - 1)
    end &= M  # the top (2**bits) is 0 again here, as in the kernel
    start &= mask
    if start < floor:
        return
    if ceiling:
        ceiling &= mask
        if not ceiling:
            return
    if ((end - 1) & M) > ((ceiling - 1) & M):
        return
    if start not in mm.pt.levels[level]:
        return
    mm.pt.levels[level].discard(start)
    mm.sim.spend(mm.costs.pt_unlink)
    tlb.need_flush = True
    if level == "pmd" and not arch.frees_pmd_pages:
        return  # i386 PAE: __pmd_free_tlb is a no-op, PMDs go with the PGD
    mm.sim.enter(level + "_free_tlb")
    tlb.free_pt_page(level)
    mm.sim.leave(level + "_free_tlb")
    freed.append((level, start))


def free_pte_range(mm: MM, tlb: MmuGather, base: int, freed: list[tuple[str, int]]) -> None:
    """free_pte_range [K22:mm/memory.c:L125-131]: pmd_clear, pte_free_tlb, nr_ptes--."""
    mm.pt.levels["pte"].discard(base)
    mm.sim.spend(mm.costs.pt_unlink)
    mm.sim.enter("pte_free_tlb")
    tlb.free_pt_page("pte")
    mm.sim.leave("pte_free_tlb")
    freed.append(("pte", base))


# --------------------------------------------------------------------------------------
# exit_mmap / unmap_region
# --------------------------------------------------------------------------------------


def exit_mmap(mm: MM) -> None:
    """exit_mmap [K22:mm/mmap.c:L1969-1996]: tlb_gather_mmu(mm, 1), unmap_vmas over the
    whole mm, free_pgtables(FIRST_USER_ADDRESS, 0), tlb_finish_mmu, then remove_vma for
    each vma with preemption enabled (modern: cond_resched per vma,
    [6.1.176:mm/mmap.c:L3247-3274]).  ``modern-np-pgfree``: preemption off from before free_pgtables to after
    tlb_finish_mmu, one window over both (cond_resched in tlb_batch_pages_flush and the
    sleeping unlink locks cannot switch inside it)."""
    sim, c = mm.sim, mm.costs
    vmas = mm.workload.vmas
    sim.begin_op()
    sim.enter("exit_mmap")
    tlbp = _TlbRef(make_gather(mm, fullmm=True))
    tlbp.tlb.tlb_gather_mmu()
    end = unmap_vmas(mm, tlbp, vmas, 0, mm.arch.ulong_mask)
    if mm.cfg.pgfree_preempt_off:
        sim.preempt_disable()
    free_pgtables(mm, tlbp, vmas, mm.arch.first_user_address, 0)
    tlbp.tlb.tlb_finish_mmu(0, end, "final")
    if mm.cfg.pgfree_preempt_off:
        sim.preempt_enable()  # 2.6.22: put_cpu_var(mmu_gathers)
    for _ in vmas:
        sim.leaf("remove_vma", c.remove_vma)
        if mm.cfg.design == "modern":
            sim.cond_resched(c.cond_resched)
    sim.leave("exit_mmap")
    sim.end_op()


def unmap_region(mm: MM) -> None:
    """unmap_region [K22:mm/mmap.c:L1679-1695] for the munmap of every non-``keep`` VMA:
    tlb_gather_mmu(mm, 0), unmap_vmas(start, end), free_pgtables between the neighbours'
    ends (prev->vm_end or FIRST_USER_ADDRESS, next->vm_start or 0), tlb_finish_mmu(start, end)."""
    sim = mm.sim
    wl = mm.workload
    targets = wl.targets()
    start, end = targets[0].start, targets[-1].end
    i0 = wl.vmas.index(targets[0])
    prev = wl.vmas[i0 - 1] if i0 > 0 else None
    i1 = wl.vmas.index(targets[-1])
    nxt = wl.vmas[i1 + 1] if i1 + 1 < len(wl.vmas) else None
    sim.begin_op()
    sim.enter("unmap_region")
    tlbp = _TlbRef(make_gather(mm, fullmm=False))
    tlbp.tlb.tlb_gather_mmu()
    unmap_vmas(mm, tlbp, targets, start, end)
    free_pgtables(mm, tlbp, targets, prev.end if prev else mm.arch.first_user_address,
                  nxt.start if nxt else 0)
    tlbp.tlb.tlb_finish_mmu(start, end, "final")
    sim.leave("unmap_region")
    sim.end_op()


def unmap_mapping_range(mm: MM) -> None:
    """unmap_mapping_range [K22:mm/memory.c] truncating the shared file to 0: under
    ``mapping->i_mmap_lock`` (a spinlock until 3.0, i_mmap_mutex after), each vma mapping the
    file is zapped by zap_page_range with details: its own gather and tlb_finish_mmu, swap
    and nonlinear ptes left alone, page tables kept (no free_pgtables)."""
    sim = mm.sim
    spin = mm.cfg.design in ("v2622", "hugh2007", "ben2007")
    sim.begin_op()
    sim.enter("unmap_mapping_range")
    mm.truncating = spin  # the lockbreak exists only with the spinlock
    if spin:
        sim.preempt_disable()  # spin_lock(&mapping->i_mmap_lock)
    for vma in mm.workload.targets():
        sim.enter("zap_page_range")
        tlbp = _TlbRef(make_gather(mm, fullmm=False))
        tlbp.tlb.tlb_gather_mmu()
        mm.truncating_details = True
        unmap_vmas(mm, tlbp, [vma], vma.start, vma.end)
        tlbp.tlb.tlb_finish_mmu(vma.start, vma.end, "final")
        sim.leave("zap_page_range")
    if spin:
        sim.preempt_enable()
    sim.leave("unmap_mapping_range")
    sim.end_op()
