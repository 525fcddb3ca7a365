"""The model's workload of a captured run, from what ``tracekit capture`` recorded with it
(docs/model.md#calibration-and-replay, docs/capture.md#workload).

``tracekit capture`` ingests its traces with two keys in ``runs.meta``:

* ``capture``: the capture's settings, among them ``arch``, ``kernel_release``, ``preempt``
  (``none``, ``voluntary``, ``full``, ``rt``: the mode the guest kernel reported) and
  ``workload``, the capture's workload spec, e.g. ``pgtfree:forks=20,mb=256,loops=5``;
* ``workload_mm``: one dict per child of the workload, written by the child just before it
  exits: ``VmPTE_kB`` (``/proc/self/status``), ``VmRSS_kB``, and ``Rss_kB``,
  ``Anonymous_kB``, ``AnonHugePages_kB`` (``/proc/self/smaps_rollup``).

What pgtfree (``tracekit/capture/pgtfree.c``) does in each of its ``forks`` children, one
after another: ``mmap(NULL, mb MiB, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS)``,
one write per page (every PTE present), ``munmap(m, bytes / 2)`` (the *lower* half goes
through ``unmap_region``); with ``sparse=G``, ``mmap`` of G GiB more with
``MAP_NORESERVE`` and one write per 2 MiB (one PTE table per PMD entry, each holding one
page); then ``_exit``: ``exit_mmap`` tears down the upper half, ``[m + bytes/2, m +
bytes)``, a single private anonymous VMA of ``mb/2`` MiB, dense, the sparse VMA right
below it (the top-down allocator puts it in the highest gap that fits, which ends where
the dense half starts; VM_NORESERVE keeps the two from merging), and the static binary's
own small VMAs (text, data, heap, stack, vdso).  The model's workload is the sparse and
the dense VMA; the binary's VMAs hold under a MiB and are left out (``Rss_kB`` says how
much).  The same spec given as ``--workload pgtfree:...`` is read the same way
(:func:`pgtfree_model_spec`).

The VMA's start is where the kernel's top-down ``get_unmapped_area`` put it, a random
page below ``mmap_base`` (ASLR), so its PTE tables are ``mb/2 MiB / PMD_SIZE`` plus one when
the start is not PMD-aligned, as it almost always is not.  The model places it one page past
a PMD boundary for that reason.  ``VmPTE_kB`` checks it where the model's page-table geometry
is the captured kernel's (x86_64: since Linux 4.14 ``VmPTE`` is ``mm_pgtables_bytes``, every
PTE, PMD and PUD table of the mm, 4 KiB each): the model's tables must fit in it, and what
is left over is the binary's, heap's and stack's own tables, a handful.

The exits measured are the children's: the workload's ``exit_mmap`` calls by the
workload's command (``pgtfree``), the first ``forks`` of them in time; the parent's own exit
and the shell's commands tear down other address spaces.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tracekit.capture.plan import CaptureError
from tracekit.errors import ModelError
from tracekit.capture.plan import Workload as PgtfreeWorkload
from tracekit.capture.plan import parse_workload as parse_pgtfree
from tracekit.model.arch import Arch, get_arch
from tracekit.model.workload import PageTables, parse_workload

__all__ = ["CapturedWorkload", "NoWorkloadMeta", "captured_workload", "preempt_of", "pgtfree_model_spec",
           "is_pgtfree_spec"]

#: Preemption modes as the capture records them, and whether the model's CONFIG_PREEMPT
#: applies (voluntary preemption is !CONFIG_PREEMPT with more cond_resched() points).
_PREEMPT_MODES = {"full": True, "rt": True, "none": False, "voluntary": False}

#: Page-table tables a process's own small VMAs can add beyond the model's (binary, heap,
#: stack and vdso regions, each at most one PTE, PMD and PUD table on x86_64).
OTHER_TABLES_MAX = 12


class NoWorkloadMeta(ModelError):
    """The run carries no capture metadata the model can build a workload from."""


@dataclass
class CapturedWorkload:
    """The model's view of a captured run's workload.

    ``spec``: the model workload SPEC of one child's ``exit_mmap``; ``comm`` and ``exits``
    select the children's calls among the run's ``exit_mmap`` spans; ``preempt`` the
    model's CONFIG_PREEMPT for the mode the kernel ran (None when not recorded);
    ``notes``: what was checked against the recorded mm figures, one sentence each;
    ``warnings``: where they disagree with the spec.
    """

    spec: str
    source: str
    comm: str
    exits: int
    mb: int
    preempt: bool | None
    capture_arch: str | None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"workload": self.spec, "source": self.source, "comm": self.comm, "exits": self.exits,
                "mb": self.mb, "preempt": self.preempt, "capture_arch": self.capture_arch,
                "notes": self.notes, "warnings": self.warnings}


def preempt_of(mode: str | None) -> bool | None:
    """CONFIG_PREEMPT in model terms of a recorded preemption mode (None if unknown)."""
    return _PREEMPT_MODES.get((mode or "").strip().lower())


def is_pgtfree_spec(spec: str) -> bool:
    """Whether a ``--workload`` value is a capture workload (``pgtfree:...``) rather than
    the model's VMA list."""
    return spec.strip().split(":", 1)[0].strip() == "pgtfree"


def _pgtfree(spec: str) -> PgtfreeWorkload:
    """The capture's own reading of ``pgtfree:forks=F,mb=M,sparse=G,loops=L``."""
    if not is_pgtfree_spec(spec):
        raise NoWorkloadMeta(f"the capture's workload {spec!r} is not pgtfree: the model knows only "
                             "pgtfree's address space; give --workload")
    try:
        return parse_pgtfree(spec)
    except CaptureError as e:
        raise NoWorkloadMeta(str(e)) from None


#: Where the model puts the sparse VMA: one page past a PMD boundary, as a random
#: ``mmap_base`` almost always leaves it (page aligned, not PMD aligned).
_BASE = 1 << 30


def pgtfree_model_spec(spec: str, arch: str | Arch) -> str:
    """The model workload SPEC of one pgtfree child's ``exit_mmap`` (module docstring): the
    sparse VMA (``sparse`` GiB, one present page per 2 MiB: density 1/512 on 4 KiB pages)
    and, right above it, the upper half of the dense mapping.  Raises
    :class:`NoWorkloadMeta` (a ValueError) for anything but a pgtfree spec."""
    a = arch if isinstance(arch, Arch) else get_arch(arch)
    wl = _pgtfree(spec)
    size = wl.mb << 19  # munmap(m, bytes / 2) leaves the upper half
    if size % a.page_size:
        raise NoWorkloadMeta(f"the capture's {wl.mb} MiB halves to {size} bytes, not a whole number of "
                             f"{a.name} pages; give --workload")
    start = _BASE + a.page_size
    vmas = []
    if wl.sparse:
        per = (2 << 20) // a.page_size  # pages per 2 MiB: one of them written
        vmas.append(f"anon:{wl.sparse}GiB:density={1 / per!r}:at={start:#x}")
        vmas.append(f"anon:{size // 1024}KiB")
    else:
        vmas.append(f"anon:{size // 1024}KiB:at={start:#x}")
    return ",".join(vmas)


def captured_workload(meta: str | dict[str, Any] | None, arch: str | Arch) -> CapturedWorkload:
    """The model workload of a run from its ``runs.meta`` (JSON text or dict) for the model
    arch ``arch``.  Raises :class:`NoWorkloadMeta` (a ValueError) when the run has no capture
    workload."""
    a = arch if isinstance(arch, Arch) else get_arch(arch)
    if isinstance(meta, str):
        try:
            meta = json.loads(meta) if meta.strip() else {}
        except ValueError:
            meta = {}
    cap = (meta or {}).get("capture") if isinstance(meta, dict) else None
    if not isinstance(cap, dict) or not isinstance(cap.get("workload"), str):
        raise NoWorkloadMeta("the run records no capture workload (it was not made by tracekit capture): "
                             "give --workload, e.g. --workload anon:256MiB")
    wl = _pgtfree(cap["workload"])
    spec = pgtfree_model_spec(cap["workload"], a)
    cw = CapturedWorkload(spec=spec, source=cap["workload"], comm="pgtfree", exits=wl.forks, mb=wl.mb,
                          preempt=preempt_of(cap.get("preempt")), capture_arch=cap.get("arch"))
    sparse = f" and {wl.sparse} GiB with one page per 2 MiB ({wl.sparse * 512:,} PTE tables)" if wl.sparse else ""
    cw.notes.append(f"{cap['workload']}: each of {wl.forks} children exits holding the upper half of its "
                    f"{wl.mb} MiB mapping, {wl.mb << 9} KiB of present anonymous pages in one VMA{sparse}")
    rows = [r for r in (meta.get("workload_mm") or []) if isinstance(r, dict)]
    if rows:
        _check_mm(cw, rows, a)
    return cw


def _check_mm(cw: CapturedWorkload, rows: list[dict], a: Arch) -> None:
    """Cross-check the workload against the children's recorded mm figures: anonymous
    memory and page-table pages against what the model's VMAs hold."""
    vmas = parse_workload(cw.spec, a).vmas
    size_kb = sum(sum(t.present for t in v.tables(a)) for v in vmas) * a.page_size >> 10
    anon = [r["Anonymous_kB"] for r in rows if isinstance(r.get("Anonymous_kB"), int) and r["Anonymous_kB"] >= 0]
    if anon:
        low = min(anon)
        if low < size_kb:
            cw.warnings.append(f"a child held {low} kB of anonymous memory before exit, less than the "
                               f"{size_kb} kB the workload leaves mapped: the model's PTE counts overstate it")
        else:
            cw.notes.append(f"children's Anonymous {low}-{max(anon)} kB >= the VMAs' {size_kb} kB")
    huge = [r.get("AnonHugePages_kB") for r in rows if isinstance(r.get("AnonHugePages_kB"), int)]
    if any(h > 0 for h in huge):
        cw.warnings.append(f"children held up to {max(huge)} kB in transparent huge pages: those are "
                           "PMD mappings with no PTE table, which the model's anon VMA does not have")
    pte = [r["VmPTE_kB"] for r in rows if isinstance(r.get("VmPTE_kB"), int) and r["VmPTE_kB"] >= 0]
    if not pte:
        return
    if cw.capture_arch is not None and cw.capture_arch != a.name:
        cw.notes.append(f"VmPTE ({min(pte)}-{max(pte)} kB) not checked: the {cw.capture_arch} kernel's "
                        f"page tables are not laid out as the model's {a.name}")
        return
    model_tables = PageTables(a, vmas).count()
    page_kb = a.page_size >> 10
    for kb in sorted(set(pte)):
        tables = kb // page_kb
        if tables < model_tables:
            cw.warnings.append(f"VmPTE {kb} kB is {tables} page-table pages, fewer than the {model_tables} "
                               "under the model's VMAs: the recorded mm does not match the workload spec")
        elif tables - model_tables > OTHER_TABLES_MAX:
            cw.warnings.append(f"VmPTE {kb} kB is {tables} page-table pages, {tables - model_tables} more "
                               "than the model's VMAs need: the children mapped more than the spec says")
    if not cw.warnings:
        cw.notes.append(f"VmPTE {min(pte)}-{max(pte)} kB = {min(pte) // page_kb}-{max(pte) // page_kb} "
                        f"page-table pages: the VMAs' {model_tables} and the binary's, heap's and stack's")
