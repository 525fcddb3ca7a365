"""free_pgd_range's floor/ceiling arithmetic (2.6.22 mm/memory.c L206-267), boundary cases.

Each expectation is worked by hand from the kernel's code with unsigned-long arithmetic:
``addr &= PMD_MASK; if (addr < floor) addr += PMD_SIZE (0: return); ceiling &= PMD_MASK
(0: return); if (end - 1 > ceiling - 1) end -= PMD_SIZE; if (addr > end - 1) return``, then
the same test at PUD_MASK (frees the PMD page) and PGDIR_MASK (frees the PUD page).
"""

from __future__ import annotations

from tracekit.model import get_arch
from tracekit.model.costs import CostProfile
from tracekit.model.gather import MM, KernelCfg, make_gather
from tracekit.model.memory import free_pgd_range
from tracekit.model.sim import Sim
from tracekit.model.workload import VMA, Workload, parse_workload

G = 1 << 30
M = 1 << 20
K = 1 << 10


def _mm(arch: str, vmas: list[VMA] | str):
    a = get_arch(arch)
    wl = parse_workload(vmas, a) if isinstance(vmas, str) else Workload(vmas)
    mm = MM(a, wl, CostProfile(), KernelCfg("v2622", False), Sim(preempt=False))
    tlb = make_gather(mm, fullmm=True)
    tlb.tlb_gather_mmu()
    return mm, tlb


def freed(arch, vmas, addr, end, floor, ceiling):
    mm, tlb = _mm(arch, vmas)
    return free_pgd_range(mm, tlb, addr, end, floor, ceiling)


def test_everything_below_the_top_is_freed():
    # exit_mmap: floor 0, ceiling 0 (top): 2 PTE pages, the PMD page of [1G,2G), the PUD
    # page of [0,512G)
    got = freed("x86_64", "anon:4MiB", G, G + 4 * M, 0, 0)
    assert got == [("pte", G), ("pte", G + 2 * M), ("pmd", G), ("pud", 0)]


def test_floor_below_the_pmd_keeps_the_pud():
    # floor = prev->vm_end = 1G - 4K: PTEs and PMD freed; PUD start 0 < floor -> kept
    got = freed("x86_64", "anon:4MiB", G, G + 4 * M, G - 4 * K, 0)
    assert got == [("pte", G), ("pte", G + 2 * M), ("pmd", G)]


def test_floor_inside_the_first_pmd_skips_the_shared_pte_page():
    # neighbour [1G, 1G+512K), target [1G+1M, 1G+3M), floor 1G+512K: addr 1G < floor ->
    # addr = 1G+2M; only the PTE page at 1G+2M; PMD start 1G < floor -> kept
    spec = "anon:512KiB:at=0x40000000,anon:2MiB:at=0x40100000"
    got = freed("x86_64", spec, G + M, G + 3 * M, G + 512 * K, 0)
    assert got == [("pte", G + 2 * M)]


def test_ceiling_inside_the_last_pmd():
    # [1G, 1G+3M), next at 1G+3M+4K: ceiling -> 1G+2M; end - 1 > ceiling - 1 so end -= 2M
    # = 1G+1M: PTE page at 1G only; PMD: end - 1 > (1G & PUD_MASK) - 1 -> kept
    got = freed("x86_64", "anon:3MiB", G, G + 3 * M, 0, G + 3 * M + 4 * K)
    assert got == [("pte", G)]


def test_ceiling_in_the_next_pud_frees_the_pmd_not_the_pud():
    # next at 2G+4K: ceiling & PUD_MASK = 2G covers the PMD page; & PGDIR_MASK = 0 -> return
    got = freed("x86_64", "anon:4MiB", G, G + 4 * M, 0, 2 * G + 4 * K)
    assert got == [("pte", G), ("pte", G + 2 * M), ("pmd", G)]


def test_ceiling_rounding_to_zero_frees_nothing():
    # ceiling 1M & PMD_MASK = 0 -> return before the loop
    got = freed("x86_64", "anon:8KiB:at=0x1000", 0x1000, 0x3000, 0, M)
    assert got == []


def test_end_zero_means_top_of_32bit_space():
    # i386 (4 MiB PMD, 32-bit unsigned long): a vma at the very top, end passed as 0;
    # end - 1 wraps to 0xffffffff, so the last PTE page is freed
    v = VMA(0xFFC00000, 1 << 32, "anon")
    got = freed("i386", [v], 0xFFC00000, 0, 0, 0)
    assert got == [("pte", 0xFFC00000)]


def test_addr_wraps_to_zero_returns():
    # i386: addr in the last PMD and below floor: addr + PMD_SIZE wraps to 0 -> return
    v = VMA(0xFFC00000, 0xFFFFF000, "anon")
    got = freed("i386", [v], 0xFFC00000, 0xFFFFF000, 0xFFC01000, 0)
    assert got == []


def test_i386_pae_pmd_pages_go_with_the_pgd():
    # PAE: 3 levels, __pmd_free_tlb is a no-op -> only the two PTE pages count as freed
    got = freed("i386-pae", "anon:4MiB", G, G + 4 * M, 0, 0)
    assert got == [("pte", G), ("pte", G + 2 * M)]


def test_ia64_pmd_span():
    # ia64 16K: PMD_SIZE 32 MiB, PUD folded, PGDIR 64 GiB: one PTE page, one PMD page
    got = freed("ia64", "anon:32MiB", G, G + 32 * M, 0, 0)
    assert got == [("pte", G), ("pmd", 0)]


def test_ppc64_4k_pud_span_is_256mib():
    # ppc64 4K: PUD_SIZE 256 MiB -> 1 GiB of PTE pages lies under 4 PMD pages, 1 PUD page
    mm, tlb = _mm("ppc64", "anon:1GiB")
    got = free_pgd_range(mm, tlb, G, 2 * G, 0, 0)
    assert sum(1 for lvl, _ in got if lvl == "pte") == 512
    assert [b for lvl, b in got if lvl == "pmd"] == [G, G + 256 * M, G + 512 * M, G + 768 * M]
    assert [b for lvl, b in got if lvl == "pud"] == [0]
