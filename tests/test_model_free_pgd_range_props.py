"""free_pgd_range against the statement of what it frees in
docs/model.md#free_pgtables-and-free_pgd_range, for random VMAs and neighbours (hypothesis): a
PTE page iff its PMD span lies in [floor, ceiling rounded down to PMD_SIZE), a PMD page iff
its PUD span lies in [floor, ceiling rounded down to PUD_SIZE), a PUD page iff its PGDIR span
does; ceiling 0 is the top.  The statement is checked set by set against the kernel-arithmetic
implementation, on 64-bit and 32-bit arches.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit.model import get_arch
from tracekit.model.costs import CostProfile
from tracekit.model.gather import MM, KernelCfg, make_gather
from tracekit.model.memory import free_pgd_range
from tracekit.model.sim import Sim
from tracekit.model.workload import VMA, Workload


def expected(arch, tables, floor, ceiling):
    """What docs/model.md#free_pgtables-and-free_pgd_range says is freed, for PTE pages at
    ``tables`` (PMD bases)."""
    def inside(base, size):
        if base < floor:
            return False
        if ceiling == 0:
            return True
        return base + size <= (ceiling & ~(size - 1))

    out = {("pte", t) for t in tables if inside(t, arch.pmd_size)}
    if not arch.pmd_folded and arch.frees_pmd_pages:
        out |= {("pmd", u) for u in {t & ~(arch.pud_size - 1) for t in tables} if inside(u, arch.pud_size)}
    if not arch.pud_folded:
        out |= {("pud", v) for v in {t & ~(arch.pgdir_size - 1) for t in tables} if inside(v, arch.pgdir_size)}
    return out


@st.composite
def case(draw, arch_name):
    a = get_arch(arch_name)
    top = 1 << a.ulong_bits
    # a start near a PGDIR (or PUD) boundary, so that every level's test is exercised
    unit = draw(st.sampled_from([a.pgdir_size, a.pud_size, a.pmd_size]))
    k = draw(st.integers(1, max(1, min(6, (top // unit) - 2))))
    delta_pages = draw(st.integers(-40, 40)) * (a.pmd_size // 4 if draw(st.booleans()) else a.page_size)
    start = (k * unit + delta_pages) & ~(a.page_size - 1)
    npages = draw(st.integers(1, 3 * a.ptrs_per_pte))
    end = start + npages * a.page_size
    if start <= 0 or end >= top - a.pmd_size:
        start, end = a.pmd_size * 3, a.pmd_size * 3 + npages * a.page_size
    floor = draw(st.one_of(st.just(0), st.integers(0, start)))
    floor &= ~(a.page_size - 1)
    ceiling = draw(st.one_of(st.just(0), st.integers(end, min(top - 1, end + 3 * a.pud_size))))
    ceiling &= ~(a.page_size - 1)
    if ceiling and ceiling < end:
        ceiling = 0
    return a, start, end, floor, ceiling


def run(a, start, end, floor, ceiling):
    v = VMA(start, end, "anon")
    mm = MM(a, Workload([v]), CostProfile(), KernelCfg("v2622", False), Sim(preempt=False))
    tlb = make_gather(mm, fullmm=True)
    tlb.tlb_gather_mmu()
    tables = [t.base for t in v.tables(a)]
    return set(free_pgd_range(mm, tlb, start, end, floor, ceiling)), tables


@settings(max_examples=150, deadline=None)
@given(case("x86_64"))
def test_x86_64(c):
    a, start, end, floor, ceiling = c
    got, tables = run(a, start, end, floor, ceiling)
    assert got == expected(a, tables, floor, ceiling)


@settings(max_examples=100, deadline=None)
@given(case("ppc64"))
def test_ppc64_4k(c):
    a, start, end, floor, ceiling = c
    got, tables = run(a, start, end, floor, ceiling)
    assert got == expected(a, tables, floor, ceiling)


@settings(max_examples=100, deadline=None)
@given(case("i386-pae"))
def test_i386_pae_32bit(c):
    a, start, end, floor, ceiling = c
    got, tables = run(a, start, end, floor, ceiling)
    assert got == expected(a, tables, floor, ceiling)


@settings(max_examples=100, deadline=None)
@given(case("ia64"))
def test_ia64(c):
    a, start, end, floor, ceiling = c
    got, tables = run(a, start, end, floor, ceiling)
    assert got == expected(a, tables, floor, ceiling)
