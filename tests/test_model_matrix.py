"""Every arch x strategy x preemption model x operation runs, and what does not depend on
the strategy is the same under all of them: the PTEs cleared, the data pages and the
page-table pages freed (free_pgtables' arithmetic is the same code in every kernel)."""

from __future__ import annotations

import pytest

from tracekit.model import ARCHES, STRATEGIES, simulate

# 3 MiB of anon (768 pages at 4 KiB), a file mapping half dirty, a sparse region, and a
# neighbour that munmap keeps
WL = "anon:4MiB:keep,anon:3MiB,file:2MiB:dirty=0.5,anon:1GiB:density=0.002"


@pytest.mark.parametrize("arch", list(ARCHES))
@pytest.mark.parametrize("op", ["exit_mmap", "munmap", "truncate"])
def test_invariants_across_strategies(arch, op):
    seen = {}
    for strategy in STRATEGIES:
        for preempt in (True, False):
            r = simulate(arch, strategy, preempt=preempt, workload=WL, op=op, other_cpus=1)
            key = (r.counters["ptes_zapped"], r.pages_freed, r.pagetable_pages_freed)
            seen.setdefault(key, []).append((strategy, preempt))
            assert r.tlb_flushes >= 1
            assert r.max_window_ns > 0
    assert len(seen) == 1, seen
    (ptes, pages, _), = seen
    assert ptes == pages  # every present PTE maps a page that is freed
