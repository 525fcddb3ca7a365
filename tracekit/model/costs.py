"""Cost profile of the replay model: what each kernel operation costs, in integer
nanoseconds (docs/model.md#cost-model).

The defaults are round figures of the right order for a 2010s x86 server core; they make
the model's *times* illustrative, never its *counts* (flushes, pages, windows' contents),
which depend on the algorithm alone.  A profile fitted from measured spans
(docs/model.md#calibration-and-replay) is a JSON or TOML file of the same keys::

    # costs.toml
    pte_anon = 45
    flush_local = 120
    ipi_base = 1800

Integer nanoseconds keep the simulated clock exact, so a trace emitted from it can be read
back to the nanosecond.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from tracekit.errors import ModelError

__all__ = ["CostProfile", "load_costs"]


@dataclass(frozen=True)
class CostProfile:
    """Per-operation costs (ns).  One per operation of docs/model.md#cost-model."""

    pte_none: int = 2  # a pte_none slot scanned in zap_pte_range
    pte_anon: int = 60  # present anon PTE: ptep_get_and_clear_full, page_remove_rmap, rss
    pte_file_clean: int = 70  # present file PTE
    pte_file_dirty: int = 130  # dirty file PTE: + set_page_dirty
    pte_swap: int = 150  # swap entry: free_swap_and_cache
    ptl: int = 40  # pte_offset_map_lock + pte_unmap_unlock, per zap_pte_range call
    call: int = 8  # a function call of the walk (unmap_page_range, zap_pmd_range, ...)
    page_free: int = 90  # per page in free_pages_and_swap_cache (release_pages)
    flush_local: int = 150  # local full TLB flush (x86 CR3 reload, ia64 ptc.l loop)
    leave_mm: int = 250  # x86 leave_mm: switch to swapper_pg_dir, drop from cpu_vm_mask
    ipi_base: int = 1500  # flush_tlb_others: send + wait for the slowest ack
    ipi_per_cpu: int = 400  # ... per target CPU
    invlpg: int = 100  # modern x86 single-page flush (tlb_single_page_flush_ceiling 33)
    ia64_ctx_drop: int = 40  # ia64 flush_tlb_mm with mm_users == 0: drop the context only
    ia64_ptcga: int = 300  # one global ptc.ga purge granule (serialised by ptcg_lock)
    ia64_ptcl: int = 60  # one local ptc.l purge granule
    tlbie_base: int = 300  # ppc64 flush_hash_range, global (tlbie + ptesync)
    tlbie: int = 90  # ... per hash entry, global
    tlbiel: int = 25  # ... per hash entry, local (tlbiel)
    pt_free: int = 200  # a page-table page freed (quicklist or free_page)
    pt_unlink: int = 40  # free_p?d_range clearing one entry: p?d_clear, pgtable dtor, nr_ptes--
    rcu_submit: int = 300  # call_rcu of a page-table batch
    sync_ipi: int = 6000  # smp_call_function(..., wait=1) fallback (pgtable_free_now)
    unlink_anon: int = 150  # anon_vma_unlink (anon_vma->lock)
    unlink_file: int = 250  # unlink_file_vma (i_mmap_lock, prio_tree removal)
    gather: int = 20  # tlb_gather_mmu
    finish: int = 30  # tlb_finish_mmu fixed part, incl. check_pgt_cache
    batch_alloc: int = 400  # GFP_NOWAIT page allocation that succeeds
    batch_alloc_fail: int = 150  # ... that fails
    cond_resched: int = 15  # cond_resched() that does not switch
    free_pgd_walk: int = 3  # per pgd/pud/pmd slot visited in free_pgd_range
    remove_vma: int = 300  # remove_vma per vma at the end of exit_mmap
    vma_walk: int = 20  # per vma visited by unmap_vmas / free_pgtables

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def load_costs(path: str | Path | None) -> CostProfile:
    """A :class:`CostProfile` from a JSON or TOML file (defaults for keys it leaves out).

    Raises ValueError naming the file and the reason for an unreadable file, an unknown
    key or a value that is not a non-negative number.
    """
    if path is None:
        return CostProfile()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ModelError(f"{p}: cannot read cost profile: {e.strerror or e}") from None
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as e:  # noqa: BLE001 - any decoder error is a user error here
        raise ModelError(f"{p}: not a valid {'TOML' if p.suffix.lower() == '.toml' else 'JSON'} cost profile: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("costs"), dict):
        data = data["costs"]
    if not isinstance(data, dict):
        raise ModelError(f"{p}: a cost profile is a table of name = nanoseconds")
    known = {f.name for f in fields(CostProfile)}
    values: dict[str, int] = {}
    for k, v in data.items():
        key = k[2:] if k.startswith("c_") else k
        if key not in known:
            raise ModelError(f"{p}: unknown cost {k!r}; known: {', '.join(sorted(known))}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ModelError(f"{p}: cost {k!r} must be a non-negative number of ns, not {v!r}")
        values[key] = int(round(v))
    return CostProfile(**values)
