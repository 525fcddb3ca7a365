"""Architecture hooks of the teardown path: page-table geometry, FREE_PTE_NR and how an
arch flushes the TLB and frees page-table pages.

Mirrors, for Linux 2.6.22.19 (docs/model.md#x86, docs/model.md#ia64, docs/model.md#ppc64):

* ``include/asm-x86_64/pgtable.h`` L37-58, ``include/asm-i386/pgtable-{2,3}level-defs.h``:
  levels and shifts; ``include/asm-x86_64/pgalloc.h`` L114-117: page-table pages go through
  ``tlb_remove_page``; ``include/asm-i386/pgalloc.h`` L52-64: PAE PMDs go with the PGD.
* ``include/asm-ia64/tlb.h`` L49-54, L74-123: FREE_PTE_NR 2048, ``ia64_tlb_flush_mmu`` with
  ranges; ``include/asm-ia64/pgalloc.h``: page-table pages freed at once to the quicklist;
  ``arch/ia64/Kconfig`` L169-213: 16 KiB pages and 3 levels by default.
* ``include/asm-powerpc/pgtable-{4k,64k}.h``, ``arch/powerpc/mm/tlb_64.c`` L44-230: the
  192-entry ``ppc64_tlb_batch`` of hash-table invalidations and the RCU ``pte_freelist_batch``
  of page-table pages.

``include/asm-generic/tlb.h`` L24-34 sets FREE_PTE_NR to 506 on SMP; the x86_64
``ARCH_FREE_PTE_NR 5350`` is dead because the generic header tests ``ARCH_FREE_PTR_NR``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from tracekit.errors import ModelError

__all__ = ["Arch", "ARCHES", "get_arch"]


@dataclass(frozen=True)
class Arch:
    """One row of the table in docs/model.md#page-table-geometry.

    ``shifts`` are (PAGE_SHIFT, PMD_SHIFT, PUD_SHIFT, PGDIR_SHIFT); a folded level has the
    shift of the level above it (``asm-generic/pgtable-nopud.h``, ``-nopmd.h``).
    """

    name: str
    page_shift: int
    levels: int
    pmd_shift: int
    pud_shift: int
    pgdir_shift: int
    free_pte_nr: int
    #: "batch": page-table pages join the gather (x86); "immediate": quicklist (ia64);
    #: "rcu_batch": pte_freelist_batch / tlb_remove_table (ppc64).
    pt_free: str
    #: "x86_mm" | "ia64_range" | "ppc64_hash"
    flush_model: str
    ulong_bits: int = 64
    hash_batch_nr: int | None = None
    #: PMD pages are freed by pmd_free_tlb (False on i386 PAE: freed with the PGD).
    frees_pmd_pages: bool = True
    symbol_prefix: str = ""  # "." for ppc64 ELFv1 function descriptors
    big_endian: bool = False
    first_user_address: int = 0
    #: modern ``tlb_needs_table_invalidate()``: a full RCU table batch (or a failed batch
    #: allocation) first flushes the TLB (``tlb_table_invalidate``); the generic default
    #: is true, powerpc's is ``radix_enabled()`` (false on the hash MMU modelled here)
    #: [6.1.176:include/asm-generic/tlb.h:L222-224, arch/powerpc/include/asm/tlb.h:L36].
    table_invalidate: bool = False

    @cached_property
    def page_size(self) -> int:
        return 1 << self.page_shift

    @cached_property
    def ptrs_per_pte(self) -> int:
        return 1 << (self.pmd_shift - self.page_shift)

    @cached_property
    def pmd_size(self) -> int:
        return 1 << self.pmd_shift

    @cached_property
    def pud_size(self) -> int:
        return 1 << self.pud_shift

    @cached_property
    def pgdir_size(self) -> int:
        return 1 << self.pgdir_shift

    @cached_property
    def ulong_mask(self) -> int:
        return (1 << self.ulong_bits) - 1

    @cached_property
    def pointer_size(self) -> int:
        return self.ulong_bits // 8

    @cached_property
    def pmd_folded(self) -> bool:
        return self.levels < 3

    @cached_property
    def pud_folded(self) -> bool:
        return self.levels < 4

    @cached_property
    def max_gather_batch(self) -> int:
        """``MAX_GATHER_BATCH`` = (PAGE_SIZE - sizeof(struct mmu_gather_batch)) / sizeof(void *):
        the header is ``next`` (a pointer) plus two ``unsigned int`` (nr, max)."""
        header = self.pointer_size + 8
        return (self.page_size - header) // self.pointer_size

    @cached_property
    def max_gather_batch_count(self) -> int:
        """``MAX_GATHER_BATCH_COUNT`` = 10000UL / MAX_GATHER_BATCH (commit 53a59fc67f97)."""
        return 10000 // self.max_gather_batch

    @cached_property
    def pte_freelist_size(self) -> int:
        """ppc64 ``PTE_FREELIST_SIZE``, also modern ``MAX_TABLE_BATCH``: a page less the
        ``rcu_head`` and index header (24 bytes on 64-bit), in pointers."""
        return (self.page_size - 24) // self.pointer_size

    @cached_property
    def ben_batch_entries(self) -> int:
        """The page of pointers of the 2007 on-stack proposal: PAGE_SIZE / sizeof(void *)."""
        return self.page_size // self.pointer_size

    def sym(self, func: str) -> str:
        """How the arch's ftrace prints ``func`` (ppc64 ELFv1: ``.free_pgtables``)."""
        return self.symbol_prefix + func


ARCHES: dict[str, Arch] = {
    # x86_64 4 levels of 512 entries: PMD 2 MiB, PUD 1 GiB, PGDIR 512 GiB.
    "x86_64": Arch("x86_64", 12, 4, 21, 30, 39, 506, "batch", "x86_mm"),
    # x86_64 with CONFIG_PARAVIRT (Debian's kernels): MMU_GATHER_RCU_TABLE_FREE, page-table
    # pages go to tlb_remove_table's RCU batch [6.1.176:arch/x86/Kconfig:L254,
    # arch/x86/mm/pgtable.c:L54-58 via pv_ops.mmu.tlb_remove_table]; modern kernels only.
    "x86_64-paravirt": Arch("x86_64-paravirt", 12, 4, 21, 30, 39, 506, "rcu_batch", "x86_mm",
                            table_invalidate=True),
    # i386 without PAE: 2 levels of 1024, PGDIR 4 MiB (pmd and pud folded).
    "i386": Arch("i386", 12, 2, 22, 22, 22, 506, "batch", "x86_mm", ulong_bits=32),
    # i386 PAE: PGD of 4, PMD 512, PTE 512; __pmd_free_tlb is a no-op.
    "i386-pae": Arch(
        "i386-pae", 12, 3, 21, 30, 30, 506, "batch", "x86_mm", ulong_bits=32, frees_pmd_pages=False
    ),
    # ia64 16 KiB default, 3 levels: PTRS_PER_PTE 2048, PMD 32 MiB, PGDIR 64 GiB.
    "ia64": Arch("ia64", 14, 3, 25, 36, 36, 2048, "immediate", "ia64_range"),
    # ia64 64 KiB pages (3 levels): 8192 entries per table, PMD 512 MiB.
    "ia64-64k": Arch("ia64-64k", 16, 3, 29, 42, 42, 2048, "immediate", "ia64_range"),
    # ppc64 4 KiB: PTE 9 bits, PMD 7, PUD 7, PGD 9 -> PMD 2 MiB, PUD 256 MiB, PGDIR 32 GiB.
    "ppc64": Arch(
        "ppc64", 12, 4, 21, 28, 35, 506, "rcu_batch", "ppc64_hash",
        hash_batch_nr=192, symbol_prefix=".", big_endian=True,
    ),
    # ppc64 64 KiB: 3 levels, PTE 12 bits (256 MiB per table), PMD 12 (1 TiB), PGD 4.
    "ppc64-64k": Arch(
        "ppc64-64k", 16, 3, 28, 40, 40, 506, "rcu_batch", "ppc64_hash",
        hash_batch_nr=192, symbol_prefix=".", big_endian=True,
    ),
}

_ALIASES = {
    "amd64": "x86_64",
    "x86-64": "x86_64",
    "x86_64-pv": "x86_64-paravirt",
    "i386-2level": "i386",
    "i386_pae": "i386-pae",
    "i386-3level": "i386-pae",
    "ia64-16k": "ia64",
    "ia64_64k": "ia64-64k",
    "ppc64-4k": "ppc64",
    "ppc64_64k": "ppc64-64k",
}


def get_arch(name: str) -> Arch:
    """The :class:`Arch` called ``name`` (or an alias such as ``ppc64-4k``); ValueError lists
    the known names otherwise."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in ARCHES:
        raise ModelError(f"unknown arch {name!r}; known: {', '.join(ARCHES)}")
    return ARCHES[key]
