"""Truncation (unmap_mapping_range) in 2.6.22: zap_page_range with details under the
i_mmap_lock spinlock, which unmap_vmas breaks at every spent ZAP_BLOCK
(docs/model.md#unmap_vmas-and-zap_block_size, docs/model.md#pitfalls); from 3.0 the lock is a
mutex and there is no lockbreak.  Page tables stay."""

from __future__ import annotations

from tracekit.model import simulate

# 8 MiB half-dirty + 4 MiB clean shared file mappings = 3,072 file PTEs; the anon vma is
# not part of the file and stays
WL = "anon:64MiB,file:8MiB:dirty=0.5,file:4MiB"


def sim(strategy, preempt):
    return simulate("x86_64", strategy, preempt=preempt, workload=WL, op="truncate")


def test_v2622_preempt_lockbreak_every_block():
    r = sim("v2622", True)
    # 3,072 / 8 = 384 blocks, each ending with tlb_finish_mmu and an i_mmap_lock break
    assert r.counters["i_mmap_lockbreaks"] == 384
    assert r.flushes_by_cause == {"block_end": 384}
    assert r.pages_freed == 3_072 and r.pagetable_pages_freed == 0
    assert r.worst_window["composition"]["ptes_zapped"] == 8


def test_v2622_no_preempt():
    r = sim("v2622", False)
    # 3 blocks of 1024 (the 8 MiB vma is 2 of them, the 4 MiB one 1): 506 + 506 + 12
    assert r.flushes_by_cause == {"batch_full": 6, "block_end": 3}
    assert r.counters["i_mmap_lockbreaks"] == 3


def test_ben2007_holds_i_mmap_lock_for_the_whole_file():
    # no ZAP_BLOCK, no lockbreak: the spinlock covers all 3,072 PTEs in one window
    r = sim("ben2007", True)
    assert r.worst_window["composition"]["ptes_zapped"] == 3_072


def test_merged30_one_gather_per_vma():
    r = sim("merged30", True)
    assert r.flushes_by_cause == {"final": 2}  # zap_page_range's tlb_finish_mmu, per vma
    assert "i_mmap_lockbreaks" not in r.counters


def test_modern_delayed_rmap_and_vma_end():
    r = sim("modern", True)
    # dirty shared-file PTEs in the 4 tables of the 8 MiB vma; the clean vma flushes at its end
    assert r.flushes_by_cause == {"delayed_rmap": 4, "vma_end": 1}
