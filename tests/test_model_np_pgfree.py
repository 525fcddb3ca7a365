"""The kernel under test as a strategy (modern-np-pgfree: free_pgtables and tlb_finish_mmu
under preempt_disable, as patch 0001 of the seed's re-enactment does) and modern's RCU
page-table batch with its table-invalidate flush.  Expected counts are worked out by hand
in each test's docstring."""

from __future__ import annotations

import pytest

from tracekit.model import STRATEGIES, simulate
from tracekit.model.captured import pgtfree_model_spec

SPARSE64 = pgtfree_model_spec("pgtfree:forks=2,mb=256,sparse=64", "x86_64")


def test_variant_is_listed_beside_the_six():
    assert list(STRATEGIES)[:6] == ["v2622", "hugh2007", "ben2007", "merged30", "v38", "modern"]
    assert "modern-np-pgfree" in STRATEGIES


def test_np_pgfree_window_is_free_pgtables_and_tlb_finish_mmu():
    """One window from before free_pgtables to after tlb_finish_mmu: 32898 page-table pages
    (32768 + 64 PTE, 65 PMD, 1 PUD; see test_model_captured), nothing zapped in it; its
    length is the two functions' simulated time, nothing in between."""
    r = simulate("x86_64", "modern-np-pgfree", preempt=True, workload=SPARSE64)
    w = r.worst_window
    assert w["composition"]["pagetable_pages_freed"] == 32898
    assert w["composition"]["ptes_zapped"] == 0
    assert w["ended_in"] == "exit_mmap"
    t = r.time_by_function_ns
    assert w["dur_ns"] == t["free_pgtables"] + t["tlb_finish_mmu"]


def test_np_pgfree_walks_as_modern_does():
    """Same code but for the preempt_disable: the same flushes, pages and times; modern's
    worst window is a PTL hold in zap_pte_range, not teardown of the tables."""
    a = simulate("x86_64", "modern", preempt=True, workload=SPARSE64)
    b = simulate("x86_64", "modern-np-pgfree", preempt=True, workload=SPARSE64)
    assert a.flushes_by_cause == b.flushes_by_cause
    assert (a.pages_freed, a.pagetable_pages_freed, a.total_ns) == (b.pages_freed, b.pagetable_pages_freed, b.total_ns)
    assert a.worst_window["composition"]["pagetable_pages_freed"] == 0
    assert b.max_window_ns > 100 * a.max_window_ns


def test_np_pgfree_window_grows_with_the_sparse_tables():
    worst = [simulate("x86_64", "modern-np-pgfree", preempt=True,
                      workload=pgtfree_model_spec(f"pgtfree:forks=2,mb=256,sparse={g}", "x86_64")).max_window_ns
             for g in (1, 4, 16, 64)]
    assert worst == sorted(worst) and worst[-1] > 10 * worst[0]


# 1 GiB at 1 GiB with one present page per 512: 512 PTE tables, 1 PMD and 1 PUD table = 514
# page-table pages.  MAX_TABLE_BATCH = (4096 - 24) / 8 = 509 on 64-bit.
ONE_GIB = "anon:1GiB:density=0.001953125"


def test_rcu_table_batch_full_flushes_the_tlb_first():
    """x86_64 with PARAVIRT: the 509th table fills the batch -> tlb_table_invalidate (one
    TLB flush) + call_rcu; the last 5 go with the final tlb_flush_mmu, whose tlbonly flush
    already cleaned the range (one more call_rcu, no second flush)."""
    r = simulate("x86_64-paravirt", "modern", preempt=True, workload=ONE_GIB)
    assert r.flushes_by_cause == {"table_batch_full": 1, "final": 1}
    assert r.counters["rcu_submissions"] == 2
    assert r.pagetable_pages_freed == 514


def test_rcu_table_batch_allocation_failure_invalidates_each_table():
    """No batch page ever: each of the 514 tables is freed by tlb_remove_table_one (one
    synchronous IPI round each) after its own tlb_table_invalidate flush."""
    r = simulate("x86_64-paravirt", "modern", preempt=True, workload=ONE_GIB, alloc_fail="always")
    assert r.flushes_by_cause["table_alloc_fail"] == 514
    assert r.counters["sync_ipis"] == 514


@pytest.mark.parametrize("arch", ["ppc64", "x86_64"])
def test_no_table_invalidate_where_the_arch_has_none(arch):
    """powerpc hash MMU (radix_enabled() false) and x86_64 without PARAVIRT (tables join the
    page batch): no table flush."""
    r = simulate(arch, "modern", preempt=True, workload=ONE_GIB)
    assert not any(c.startswith("table_") for c in r.flushes_by_cause)
