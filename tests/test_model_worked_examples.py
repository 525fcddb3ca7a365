"""docs/model.md#worked-examples: every figure of the worked example (1 GiB anon, fully
touched, exit_mmap) comes out exact on x86_64, ia64 and ppc64.

Expected values are the worked example's own, re-derived by hand in the comments from the
kernel constants it cites (ZAP_BLOCK_SIZE 8/1024 pages, FREE_PTE_NR 506/2048, MAX_GATHER_BATCH 510,
MAX_GATHER_BATCH_COUNT 19, PPC64_TLB_BATCH_NR 192), never from the model's output.
"""

from __future__ import annotations

import pytest

from tracekit.model import simulate

GIB = "anon:1GiB"


def run(arch="x86_64", strategy="v2622", preempt=False, **kw):
    return simulate(arch, strategy, preempt=preempt, workload=kw.pop("workload", GIB), **kw)


def test_structure_x86_64():
    r = run()
    # 2^30 / 2^12 = 262,144 present PTEs; 512 PTE pages + 1 PMD + 1 PUD = 514
    assert r.counters["ptes_zapped"] == 262_144
    assert r.pages_freed == 262_144
    assert r.pagetable_pages_freed == 514


def test_v2622_no_preempt():
    r = run("x86_64", "v2622", False)
    # 256 blocks of 1024 PTEs, each 506 + 506 + 12 -> 3 flushes = 768; 514 pt pages: 506 + 8 -> 2
    assert r.flushes_by_cause == {"batch_full": 512 + 1, "block_end": 256, "final": 1}
    assert r.tlb_flushes == 770
    assert r.typical_pages_per_flush() == 506


def test_v2622_preempt():
    r = run("x86_64", "v2622", True)
    # 32,768 blocks of 8 PTEs, one flush each; free_pgtables + finish: 2
    assert r.flushes_by_cause["block_end"] == 32_768
    assert r.tlb_flushes == 32_770
    assert r.typical_pages_per_flush() == 8
    # the longest preempt-off window is free_pgtables: 514 pt pages and 2 flushes in one
    w = r.worst_window["composition"]
    assert w["pagetable_pages_freed"] == 514 and w["tlb_flushes"] == 2


def test_hugh2007_one_vma_same_as_v2622():
    r = run("x86_64", "hugh2007", True)
    assert r.tlb_flushes == 32_770  # one vma: no extra finish
    # "with preemption enabled, except when unmapping just one area": the one unlink
    # stays in the free_pgtables window
    assert r.worst_window["composition"]["unlinks"] == 1


def test_hugh2007_several_vmas_unlink_outside_window():
    spec = "anon:1GiB,file:64MiB,anon:8MiB"
    v = run("x86_64", "v2622", True, workload=spec)
    h = run("x86_64", "hugh2007", True, workload=spec)
    # v2622: anon_vma_unlink x2 + unlink_file_vma x1 inside the free_pgtables window
    assert v.worst_window["composition"]["unlinks"] == 3
    assert h.worst_window["composition"]["unlinks"] == 0
    assert h.max_window_ns < v.max_window_ns


def test_ben2007_page_allocated():
    r = run("x86_64", "ben2007", True)
    # capacity 4096/8 = 512: 262,144 / 512 = 512 during unmap; 514 pt pages: 512 + 2
    assert r.tlb_flushes == 514
    assert r.typical_pages_per_flush() == 512


@pytest.mark.parametrize("n, flushes", [(8, 32_833), (4, 65_665), (1, 262_658)])
def test_ben2007_alloc_always_fails(n, flushes):
    # N=8: 32,768 + 64 + 1 (2 pages left); N=4: 65,536 + 128 + 1; N=1: every page its own
    r = run("x86_64", "ben2007", True, alloc_fail="always", fallback_entries=n)
    assert r.tlb_flushes == flushes


def test_merged30_unlimited():
    r = run("x86_64", "merged30", True)
    # 8 + 515 * 510 = 262,658 pages: nothing flushed before tlb_finish_mmu
    assert r.flushes_by_cause == {"final": 1}
    assert r.pages_per_flush == {262_658: 1}


def test_merged30_every_alloc_fails():
    r = run("x86_64", "merged30", True, alloc_fail="always")
    # local batch of 8: 32,768 during unmap, 514 pt pages -> 64 + 1 final
    assert r.tlb_flushes == 32_833
    assert r.flushes_by_cause == {"forced": 32_768 + 64, "final": 1}


@pytest.mark.parametrize("strategy", ["v38", "modern"])
def test_v38_modern(strategy):
    r = run("x86_64", strategy, True)
    # capacity 8 + 19 * 510 = 9,698: floor(262,144 / 9,698) = 27 forced; 298 + 514 = 812 final
    assert r.flushes_by_cause == {"forced": 27, "final": 1}
    assert r.pages_per_flush == {9_698: 27, 812: 1}


def test_merged30_no_preempt_final_free_has_no_resched_point():
    r = run("x86_64", "merged30", False)
    # the worst gap is the final free of all 262,658 pages (Hocko's soft lockup)
    assert r.worst_window["composition"]["pages_freed"] == 262_144
    assert r.worst_window["composition"]["pagetable_pages_freed"] == 514


def test_ia64():
    # 16 KiB pages: 65,536 PTEs in 32 tables of 2048 + 1 PMD page; FREE_PTE_NR 2048 > 1024
    r = run("ia64", "v2622", False)
    assert r.counters["ptes_zapped"] == 65_536
    assert r.pagetable_pages_freed == 33
    assert r.tlb_flushes == 65  # 64 blocks + 1 at finish
    assert run("ia64", "v2622", True).tlb_flushes == 8_193  # 8,192 blocks + 1


def test_ppc64_4k_hash_flushes():
    # PREEMPT: every 8-PTE block leaves the lazy-MMU section: 32,768 hash flushes
    r = run("ppc64", "v2622", True)
    assert r.counters["hash_flushes"] == 32_768
    # !PREEMPT: per table 192 + 192 + the rest at arch_leave_lazy_mmu_mode = 3 -> 1,536
    # from the hash batch itself (the worked example's figure) ...
    r = run("ppc64", "v2622", False)
    by = r.as_dict()["hash_flushes_by_cause"]
    assert by["batch_full"] + by["lazy_mmu_leave"] == 1_536
    # ... plus one per table where the 506-page gather flush lands mid-table: tlb_flush()
    # flushes the pending hash batch first (asm-powerpc/tlb.h), at page 506 and 1012 of
    # every 1024-PTE block, i.e. once in each of the 512 tables
    assert by["tlb_flush"] == 512
    # the generic page batch flushes as on x86 during unmap: 256 blocks x 3
    assert r.flushes_by_cause["block_end"] + r.flushes_by_cause["batch_full"] == 768


def test_ppc64_64k():
    # 16,384 PTEs in 4 tables of 4096; !PREEMPT 16 blocks x 3 = 48, + final
    r = run("ppc64-64k", "v2622", False)
    assert r.counters["ptes_zapped"] == 16_384
    assert r.flushes_by_cause["block_end"] + r.flushes_by_cause["batch_full"] == 48
    assert r.tlb_flushes == 49


def test_shared_file_dirty_munmap_modern():
    # 512 tables of dirty shared-file PTEs: one delayed-rmap tlbonly flush per table
    r = run("x86_64", "modern", True, workload="file:1GiB:dirty=1", op="munmap")
    assert r.flushes_by_cause["delayed_rmap"] == 512


def test_munmap_shootdowns_to_running_threads():
    # munmap with threads running on 7 other CPUs: every one of the 770 flushes is a
    # 7-CPU shootdown
    r = run("x86_64", "v2622", False, op="munmap", online_cpus=8, other_cpus=7)
    assert r.tlb_flushes == 770
    assert r.counters["shootdowns"] == 770
    assert r.counters["ipis"] == 770 * 7


def test_exit_lazy_cpus_drop_after_first_flush():
    # exit: the first flush_tlb_mm does leave_mm + IPIs to the lazy holders, later ones none
    r = run("x86_64", "v2622", False, lazy_cpus=3)
    assert r.counters["shootdowns"] == 1 and r.counters["ipis"] == 3


def test_64gib_exit_counts_and_speed():
    import time

    t = time.monotonic()
    r = run("x86_64", "v2622", True, workload="anon:64GiB")
    # 2^36 / 2^12 = 16,777,216 PTEs / 8 = 2,097,152 blocks; 32,768 PTE + 64 PMD + 1 PUD =
    # 32,833 pt pages: 64 batch_full (506 each) + final
    assert r.flushes_by_cause == {"block_end": 2_097_152, "batch_full": 64, "final": 1}
    assert r.pagetable_pages_freed == 32_833
    assert time.monotonic() - t < 30  # repeated blocks are multiplied, not walked
