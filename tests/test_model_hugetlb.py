"""Hugetlb VMAs (docs/model.md#free_pgtables-and-free_pgd_range, docs/model.md#pitfalls): one
unmap_hugepage_range call for the whole vma under mm->page_table_lock (no ZAP_BLOCK break),
one flush_tlb_range, PAGE_SIZE of zap_work per huge page, no PTE tables;
hugetlb_free_pgd_range frees the PMD/PUD pages."""

from __future__ import annotations

import pytest

from tracekit.model import SpecError, simulate


def test_one_call_one_flush_no_pte_tables():
    # 64 MiB of 2 MiB pages = 32 huge pages at 1 GiB: no PTE page; PMD page of [1G,2G) and
    # PUD page of [0,512G) freed; one hugetlb flush, one final flush for the page tables
    r = simulate("x86_64", "v2622", preempt=False, workload="huge:64MiB")
    assert r.counters["huge_pages_freed"] == 32
    assert r.pagetable_pages_freed == 2
    assert r.flushes_by_cause == {"hugetlb_range": 1, "final": 1}
    assert r.calls_by_function["unmap_hugepage_range"] == 1
    assert "zap_pte_range" not in r.calls_by_function


def test_no_block_break_inside_the_vma():
    # PREEMPT: 8-page ZAP_BLOCKs for the anon neighbours (2 x 1024 PTEs -> 256 blocks), but
    # the 512 huge pages go in one preempt-off window
    r = simulate("x86_64", "v2622", preempt=True, workload="anon:4MiB,huge:1GiB,anon:4MiB")
    assert r.flushes_by_cause["block_end"] == 256
    assert r.worst_window["composition"]["huge_pages_freed"] == 512
    # PTE pages: 2 + 2 for the anon vmas; PMD pages of the PUD spans 1G and 2G; 1 PUD page
    assert r.pagetable_pages_freed == 7


def test_i386_huge_pages_are_pgd_entries():
    # 2 levels: PMD_SIZE = 4 MiB huge pages mapped by the PGD, which is never freed here
    r = simulate("i386", "v2622", preempt=True, workload="huge:64MiB")
    assert r.counters["huge_pages_freed"] == 16
    assert r.pagetable_pages_freed == 0
    assert r.flushes_by_cause == {"hugetlb_range": 1}


@pytest.mark.parametrize("spec, arch", [("huge:64MiB", "ppc64"), ("huge:3MiB", "x86_64"),
                                        ("huge:4MiB:at=0x40100000", "x86_64")])
def test_bad_huge_specs(spec, arch):
    with pytest.raises(SpecError):
        simulate(arch, "v2622", preempt=True, workload=spec)
