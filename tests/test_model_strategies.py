"""Each strategy's flush triggers (docs/model.md#strategies), one test per trigger.

Counts are worked by hand from the kernel constants in the comments (x86_64: 512 PTEs per
table, FREE_PTE_NR 506, ZAP_BLOCK_SIZE 8/1024 pages, MAX_GATHER_BATCH 510 and
MAX_GATHER_BATCH_COUNT 19, ppc64 PTE_FREELIST_SIZE 509).
"""

from __future__ import annotations

from tracekit.model import simulate


def sim(strategy, preempt, workload="anon:1GiB", arch="x86_64", **kw):
    return simulate(arch, strategy, preempt=preempt, workload=workload, **kw)


def test_v2622_fast_mode_one_cpu():
    # num_online_cpus() == 1: tlb->nr = ~0U, pages freed at once; flushes only where
    # need_flush is set at a block end (256) and at the final finish
    r = sim("v2622", False, online_cpus=1)
    assert r.flushes_by_cause == {"block_end": 256, "final": 1}
    assert r.pages_per_flush == {0: 257}
    assert r.pages_freed == 262_144 and r.pagetable_pages_freed == 514


def test_v2622_partial_last_block_left_batched():
    # 1 GiB + 3 pages: the 3-page block leaves budget, unmap_vmas returns with 3 pages in
    # the gather; free_pgtables adds 513 PTE + 2 PMD + 1 PUD = 516 pages: 3 + 516 = 519 ->
    # one batch_full at 506 and 13 at the final finish
    r = sim("v2622", True, workload="anon:1GiB,anon:12KiB")
    assert r.pagetable_pages_freed == 516
    assert r.flushes_by_cause == {"block_end": 32_768, "batch_full": 1, "final": 1}


def test_hugh2007_extra_finish_when_something_is_batched():
    # same workload, two vmas: the unlink pass ends the gather first (flushing the 3 pages),
    # then 516 pt pages: 506 + 10
    r = sim("hugh2007", True, workload="anon:1GiB,anon:12KiB")
    assert r.flushes_by_cause == {"block_end": 32_768, "unlink_pass": 1, "batch_full": 1, "final": 1}
    assert r.pages_per_flush[3] == 1 and r.pages_per_flush[10] == 1


def test_hugh2007_is_v2622_without_preempt():
    spec = "anon:1GiB,anon:12KiB"
    assert sim("hugh2007", False, workload=spec).as_dict()["flushes_by_cause"] == \
        sim("v2622", False, workload=spec).as_dict()["flushes_by_cause"]


def test_ben2007_flush_outside_ptl_is_forced():
    # the page of 512 pointers: 512 full lists during unmap, flushed after the PTE lock
    r = sim("ben2007", True, flush_under_ptl=False)
    assert r.flushes_by_cause["forced"] == 512


def test_ben2007_keeping_zap_block():
    # ZAP_BLOCK kept on PREEMPT: 8-PTE blocks end with a finish each
    r = sim("ben2007", True, ben_zap_block=True)
    assert r.flushes_by_cause["block_end"] == 32_768


def test_ben2007_retries_the_page_after_a_flush():
    # failure probability 0.999: the gather starts on the 8-entry fallback and retries the
    # page after every flush until one allocation succeeds; the page is then kept
    r = sim("ben2007", True, alloc_fail=0.999, seed=0)
    assert r.counters["batch_allocs"] == 1
    assert r.counters["batch_alloc_failures"] > 0
    assert 514 < r.tlb_flushes < 32_833
    assert sim("ben2007", True, alloc_fail=0.999, seed=0).tlb_flushes == r.tlb_flushes  # seeded


def test_merged30_grows_without_limit():
    # every full batch chains another page: 262,658 pages -> local 8 + 515 full pages,
    # and __tlb_remove_page asks for the next one as the last fills: 516 allocations
    r = sim("merged30", True)
    assert r.counters["batch_allocs"] == 516


def test_v38_count_limit():
    r = sim("v38", True)
    assert r.counters["batch_allocs"] == 19  # MAX_GATHER_BATCH_COUNT, kept across flushes


def test_modern_vma_end_flushes_on_munmap():
    # munmap of two separate 3-page vmas: tlb_end_vma flushes each range (not fullmm); the
    # final finish flushes for the 2 freed PTE pages (+ PMD, PUD of the first PUD span)
    r = sim("modern", True, workload="anon:12KiB,anon:12KiB:at=0x80000000", op="munmap")
    assert r.flushes_by_cause == {"vma_end": 2, "final": 1}
    # the vma_end flushes free nothing yet; the final one frees 6 data pages + 2 PTE, 2 PMD
    # (PUD spans of 1G and 2G) and 1 PUD page
    assert r.pages_per_flush == {0: 2, 11: 1}


def test_modern_no_vma_end_flush_on_exit():
    r = sim("modern", True, workload="anon:12KiB,anon:12KiB:at=0x80000000")
    assert "vma_end" not in r.flushes_by_cause


def test_ppc64_rcu_page_table_batch():
    # munmap with another thread running: pt pages go to the 509-entry RCU batch;
    # 512 PTE + 4 PMD + 1 PUD = 517 -> one full batch submitted, the rest at tlb_flush
    r = sim("v2622", False, arch="ppc64", op="munmap", other_cpus=1)
    assert r.pagetable_pages_freed == 517
    assert r.counters["rcu_submissions"] == 2


def test_ppc64_rcu_batch_alloc_failure_syncs():
    # every GFP_ATOMIC batch page fails: pgtable_free_now, one smp_call_function per page
    r = sim("v2622", False, arch="ppc64", op="munmap", other_cpus=1, alloc_fail="always")
    assert r.counters["sync_ipis"] == 517


def test_ppc64_exit_frees_page_tables_at_once():
    r = sim("v2622", False, arch="ppc64")
    assert r.counters.get("rcu_submissions", 0) == 0  # mm_users == 0 at exit


def test_no_preempt_resched_gap_is_one_block():
    # v2622 !PREEMPT: the worst gap is a 1024-PTE block with its 3 flushes
    r = sim("v2622", False)
    c = r.worst_window["composition"]
    assert c["ptes_zapped"] == 1024 and c["tlb_flushes"] == 3


def test_modern_preempt_windows_end_at_need_resched_tests():
    # modern: the PTE-lock hold is cut at every entry's need_resched() test, so no window
    # holds more than one present PTE's work plus the lock and a flush
    r = sim("modern", True)
    assert r.worst_window["composition"]["ptes_zapped"] <= 1
