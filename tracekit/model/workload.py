"""The address space the model tears down: VMAs, the PTE tables under them, and the
workload SPEC the command line takes (docs/model.md#workload).

A VMA (``struct vm_area_struct``) is described by its kind and how many of its pages are
present; the model never keeps one object per PTE.  Each PMD-sized span of a VMA is one
:class:`PteTable` holding *runs*: (entry kind, count) in address order.  Present entries come
first, then swap entries, then ``pte_none`` slots; any fixed order gives the same counts
(docs/model.md#workload), and only moves where a ZAP_BLOCK or a full batch ends.

SPEC grammar (comma-separated VMAs, in address order)::

    KIND:SIZE[:key=value|:flag]...
    KIND   anon | file (shared file mapping) | filep (private file mapping)
           | huge (hugetlbfs mapping of PMD-sized pages; x86 arches)
    SIZE   4096, 2MiB, 1GiB, 64GiB, 1TiB (K/M/G/T with or without "iB")
    keys   density=F  fraction of pages present (default 1)
           dirty=F    fraction of present file pages that are dirty (file only)
           swap=F     fraction of pages that are swap entries (anon only)
           at=ADDR    start address (default: right after the previous VMA; first at 1 GiB)
    flags  keep       a neighbour that munmap leaves mapped (bounds floor/ceiling)

Example: ``anon:1GiB``, ``anon:64GiB:density=0.001``, ``file:512MiB:dirty=0.5,anon:1GiB``.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from dataclasses import dataclass, field

from tracekit.errors import ModelError
from tracekit.model.arch import Arch

__all__ = [
    "VMA",
    "PteTable",
    "Workload",
    "PageTables",
    "parse_size",
    "parse_workload",
    "SpecError",
    "PRESENT_KINDS",
]

#: Entry kinds of a PTE, in the order a table's runs list them.
PRESENT_KINDS = ("anon", "file_clean", "file_dirty")
ENTRY_KINDS = PRESENT_KINDS + ("swap", "none")

DEFAULT_BASE = 1 << 30


class SpecError(ModelError):
    """A workload SPEC that cannot be read; the message says which item and why."""


@dataclass(frozen=True)
class PteTable:
    """The part of one PTE table (a PMD_SIZE span at ``base``) that lies in one VMA:
    addresses [lo, hi) and the runs of entry kinds over them."""

    base: int
    lo: int
    hi: int
    runs: tuple[tuple[str, int], ...]

    @property
    def present(self) -> int:
        return sum(n for k, n in self.runs if k in PRESENT_KINDS)


@dataclass
class VMA:
    """A ``struct vm_area_struct``: [start, end), page aligned.

    ``kind``: "anon" (private anonymous, has an anon_vma), "file" (shared file mapping: a
    dirty PTE means set_page_dirty), "filep" (private file mapping: an anon_vma and a file),
    "huge" (a hugetlbfs mapping: PMD entries map huge pages, no PTE tables).
    """

    start: int
    end: int
    kind: str = "anon"
    density: float = 1.0
    dirty: float = 0.0
    swap: float = 0.0
    keep: bool = False
    accounted: bool = True
    _tables: list[PteTable] | None = field(default=None, repr=False)

    @property
    def has_anon_vma(self) -> bool:
        return self.kind in ("anon", "filep")

    @property
    def file_backed(self) -> bool:
        return self.kind in ("file", "filep", "huge")

    @property
    def hugetlb(self) -> bool:
        """``is_vm_hugetlb_page(vma)``."""
        return self.kind == "huge"

    def huge_pages(self, arch: Arch) -> int:
        """Present huge pages (one per PMD_SIZE span, spread with ``density``)."""
        return _cum(self.size // arch.pmd_size, self.density)

    def huge_spans(self, arch: Arch) -> list[int]:
        """PMD-aligned bases of the huge pages present (the first k spans hold floor(k*density))."""
        n = self.size // arch.pmd_size
        return [self.start + i * arch.pmd_size for i in range(n)
                if _cum(i + 1, self.density) > _cum(i, self.density)]

    @property
    def size(self) -> int:
        return self.end - self.start

    def tables(self, arch: Arch) -> list[PteTable]:
        """The PTE tables under this VMA that hold at least one non-none entry, in address
        order.  Present pages are spread evenly: the first k pages hold floor(k*density)."""
        if self._tables is not None:
            return self._tables
        if self.hugetlb:
            self._tables = []
            return self._tables
        shift = arch.page_shift
        pmd = arch.pmd_size
        out: list[PteTable] = []
        cache: dict[tuple, tuple] = {}
        base = self.start & ~(pmd - 1)
        while base < self.end:
            lo = max(base, self.start)
            hi = min(base + pmd, self.end)
            k0 = (lo - self.start) >> shift
            n = (hi - lo) >> shift
            present = _cum(k0 + n, self.density) - _cum(k0, self.density)
            swap = 0
            if self.swap and self.kind != "file":
                swap = min(_cum(k0 + n, self.swap) - _cum(k0, self.swap), n - present)
            if present or swap:
                if self.kind == "anon":
                    parts = [("anon", present)]
                elif self.kind == "filep":
                    parts = [("file_clean", present)]
                else:
                    p0 = _cum(k0, self.density)
                    dirty = _cum(p0 + present, self.dirty) - _cum(p0, self.dirty)
                    parts = [("file_clean", present - dirty), ("file_dirty", dirty)]
                parts += [("swap", swap), ("none", n - present - swap)]
                runs = tuple((k, c) for k, c in parts if c)
                runs = cache.setdefault(runs, runs)
                out.append(PteTable(base, lo, hi, runs))
            base += pmd
        self._tables = out
        return out


def _cum(k: int, fraction: float) -> int:
    """How many of the first ``k`` pages are of a kind spread with ``fraction``."""
    if fraction >= 1.0:
        return k
    if fraction <= 0.0:
        return 0
    return math.floor(k * fraction + 1e-9)


@dataclass
class Workload:
    """What to tear down and in which machine state (docs/model.md#workload).

    ``op``: "exit_mmap" (the whole mm, fullmm), "munmap" (every VMA not marked ``keep``,
    as one unmap_region) or "truncate" (the file of the shared file VMAs truncated to 0:
    unmap_mapping_range).  ``online_cpus`` == 1 selects the generic "fast mode";
    ``other_cpus`` CPUs run other threads of the mm (they stay in cpu_vm_mask and take every
    shootdown); ``lazy_cpus`` CPUs hold the mm lazily and drop out after the first IPI.
    """

    vmas: list[VMA]
    op: str = "exit_mmap"
    online_cpus: int = 4
    other_cpus: int = 0
    lazy_cpus: int = 0

    @property
    def fullmm(self) -> bool:
        return self.op == "exit_mmap"

    @property
    def mm_users(self) -> int:
        """At exit_mmap time mmput has dropped mm_users to 0; munmap runs with the caller
        and every other thread of the mm as users."""
        return 0 if self.fullmm else 1 + self.other_cpus

    def targets(self) -> list[VMA]:
        if self.fullmm:
            return list(self.vmas)
        if self.op == "truncate":
            return [v for v in self.vmas if v.kind == "file"]
        return [v for v in self.vmas if not v.keep]


class PageTables:
    """Which page-table pages of the mm exist: PTE pages by their PMD-aligned base, PMD pages
    by their PUD-aligned base, PUD pages by their PGDIR-aligned base (folded levels have
    none).  Built from the VMAs; free_pgd_range removes what it frees."""

    def __init__(self, arch: Arch, vmas: list[VMA]):
        self.arch = arch
        pte: set[int] = set()
        huge: set[int] = set()  # PMD entries that map a huge page directly
        for v in vmas:
            pte.update(t.base for t in v.tables(arch))
            if v.hugetlb:
                huge.update(v.huge_spans(arch))
        self.levels: dict[str, set[int]] = {"pte": pte}
        pud_mask = ~(arch.pud_size - 1)
        pgd_mask = ~(arch.pgdir_size - 1)
        self.levels["pmd"] = {b & pud_mask for b in pte | huge} if not arch.pmd_folded else set()
        self.levels["pud"] = {b & pgd_mask for b in pte | huge} if not arch.pud_folded else set()
        self._sorted = {k: sorted(v) for k, v in self.levels.items()}

    def present_in(self, level: str, lo: int, hi: int) -> list[int]:
        """Bases of existing ``level`` pages whose address lies in [lo, hi) (hi 0 = top)."""
        keys = self._sorted[level]
        live = self.levels[level]
        i = bisect_left(keys, lo)
        out = []
        top = hi if hi else 1 << 80
        while i < len(keys) and keys[i] < top:
            if keys[i] in live:
                out.append(keys[i])
            i += 1
        return out

    def any_in(self, lo: int, hi: int) -> bool:
        """Whether an upper-level entry covering [lo, hi) is present (not pgd/pud/pmd_none):
        true iff some PTE page exists in the span."""
        keys = self._sorted["pte"]
        live = self.levels["pte"]
        i = bisect_left(keys, lo)
        top = hi if hi else 1 << 80
        while i < len(keys) and keys[i] < top:
            if keys[i] in live:
                return True
            i += 1
        return False

    def count(self) -> int:
        return sum(len(v) for v in self.levels.values())


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"1GiB"`` -> 1073741824.  Binary units; a bare number is bytes."""
    m = _SIZE_RE.match(text)
    if not m:
        raise SpecError(f"bad size {text!r} (use e.g. 4096, 2MiB, 1GiB)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value != int(value):
        raise SpecError(f"size {text!r} is not a whole number of bytes")
    return int(value)


def _fraction(item: str, key: str, text: str) -> float:
    try:
        f = float(text)
    except ValueError:
        raise SpecError(f"{item!r}: {key}={text!r} is not a number") from None
    if not 0.0 <= f <= 1.0:
        raise SpecError(f"{item!r}: {key} must be between 0 and 1, not {text}")
    return f


_TASK_SIZE = {32: 3 << 30, 64: 1 << 47}


def parse_workload(
    spec: str,
    arch: Arch,
    *,
    op: str = "exit_mmap",
    online_cpus: int = 4,
    other_cpus: int = 0,
    lazy_cpus: int = 0,
) -> Workload:
    """Read a workload SPEC (grammar in the module docstring) for ``arch``.

    Raises :class:`SpecError` with the offending item and the reason.
    """
    if op not in ("exit_mmap", "munmap", "truncate"):
        raise SpecError(f"unknown op {op!r}; use exit_mmap, munmap or truncate")
    if online_cpus < 1:
        raise SpecError("--cpus must be at least 1")
    if other_cpus < 0 or lazy_cpus < 0 or other_cpus + lazy_cpus > online_cpus - 1:
        raise SpecError("other and lazy CPUs must fit in the online CPUs besides the current one")
    items = [s.strip() for s in spec.split(",") if s.strip()]
    if not items:
        raise SpecError("empty workload: give at least one VMA, e.g. anon:1GiB")
    page = arch.page_size
    vmas: list[VMA] = []
    cursor = DEFAULT_BASE
    for item in items:
        parts = item.split(":")
        kind = parts[0].strip().lower()
        if kind not in ("anon", "file", "filep", "huge"):
            raise SpecError(f"{item!r}: unknown VMA kind {parts[0]!r} (anon, file, filep, huge)")
        if kind == "huge" and arch.flush_model != "x86_mm":
            raise SpecError(f"{item!r}: huge VMAs are modelled on x86 only (ia64 and ppc64 keep huge "
                            "pages in their own regions and tables)")
        if len(parts) < 2:
            raise SpecError(f"{item!r}: missing size, e.g. {kind}:1GiB")
        try:
            size = parse_size(parts[1])
        except SpecError as e:
            raise SpecError(f"{item!r}: {e}") from None
        if size <= 0 or size % page:
            raise SpecError(f"{item!r}: size must be a positive multiple of the {page}-byte page")
        v = VMA(0, 0, kind)
        start = None
        for opt in parts[2:]:
            opt = opt.strip()
            if opt == "keep":
                v.keep = True
                continue
            if "=" not in opt:
                raise SpecError(f"{item!r}: unknown option {opt!r}")
            key, val = (s.strip() for s in opt.split("=", 1))
            if key == "density":
                v.density = _fraction(item, key, val)
            elif key == "dirty":
                if kind != "file":
                    raise SpecError(f"{item!r}: dirty= applies to shared file mappings (file:)")
                v.dirty = _fraction(item, key, val)
            elif key == "swap":
                if kind == "file":
                    raise SpecError(f"{item!r}: swap= applies to anon and filep mappings")
                v.swap = _fraction(item, key, val)
            elif key == "at":
                try:
                    start = int(val, 0)
                except ValueError:
                    raise SpecError(f"{item!r}: at={val!r} is not an address") from None
                if start % page:
                    raise SpecError(f"{item!r}: at= must be page aligned")
            else:
                raise SpecError(f"{item!r}: unknown option {key!r} (density, dirty, swap, at, keep)")
        if kind == "huge":
            if size % arch.pmd_size or (start is not None and start % arch.pmd_size):
                raise SpecError(f"{item!r}: a huge VMA is a whole number of {arch.pmd_size >> 20} MiB pages, aligned")
            if start is None:
                cursor = -(-cursor // arch.pmd_size) * arch.pmd_size
        if v.density + v.swap > 1.0 + 1e-12:
            raise SpecError(f"{item!r}: density + swap cannot exceed 1")
        v.start = cursor if start is None else start
        v.end = v.start + size
        if vmas and v.start < vmas[-1].end:
            raise SpecError(f"{item!r}: overlaps the previous VMA (VMAs are listed in address order)")
        limit = _TASK_SIZE[arch.ulong_bits]
        if v.end > limit:
            raise SpecError(f"{item!r}: ends at {v.end:#x}, beyond the {arch.name} user address space ({limit:#x})")
        vmas.append(v)
        cursor = v.end
    wl = Workload(vmas, op, online_cpus, other_cpus, lazy_cpus)
    if op == "truncate" and not wl.targets():
        raise SpecError("truncate needs a shared file mapping (file:SIZE) to truncate")
    if not wl.targets():
        raise SpecError("munmap needs at least one VMA not marked keep")
    if op == "munmap":
        t = wl.targets()
        lo, hi = vmas.index(t[0]), vmas.index(t[-1])
        if any(v.keep for v in vmas[lo : hi + 1]):
            raise SpecError("munmap unmaps one contiguous range: keep VMAs must lie outside it")
    return wl
