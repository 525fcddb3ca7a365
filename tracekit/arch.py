"""Which architecture a trace came from, from what the trace itself says.

Canonical names: ``x86_64``, ``i386``, ``ia64``, ``ppc64`` (big-endian, ELFv1 function
descriptors), ``ppc64le``, ``arm64``, ``arm``.  The evidence, strongest first:

* a machine name the trace carries: perf's ``# arch :`` header, the machine field of a
  ``trace.dat`` UNAME option (``uname -m``: ``x86_64``, ``ppc64le``, ``aarch64``,
  ``armv7l``, ``i686``, ``ia64``);
* the kernel release string: distribution flavours (Debian ``6.1.0-56-amd64``,
  ``-powerpc64le``, ``-686-pae``, ``-arm64``, ``-armmp``, ``-mckinley``) and RPM-style
  suffixes (``4.18.0-305.el8.x86_64``, ``.ppc64le``, ``.aarch64``, ``.ia64``);
* the symbols: ppc64 ELFv1 kernels name text symbols with a leading dot
  (``.free_pgtables``: the dot symbol is the code, the plain one the function descriptor),
  and some entry points exist on one arch only (``ia64_leave_kernel``,
  ``entry_SYSCALL_64``, ``el0_svc``, ``system_call_exception``...).

:func:`reconcile` compares what the trace says with ``--arch`` and refuses a conflict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import polars as pl

from tracekit.errors import InputError

__all__ = [
    "ARCHES",
    "ArchConflict",
    "canonical_arch",
    "arch_from_uname",
    "arch_from_kernel_release",
    "arch_from_symbols",
    "reconcile",
    "infer_arch",
]

#: The canonical architecture names (the last two only as boards report them).
ARCHES = ("x86_64", "i386", "ia64", "ppc64", "ppc64le", "arm64", "arm", "s390x", "riscv64")

# uname -m values, perf's arch names, distribution and --arch spellings -> canonical.
_ALIASES = {
    "x86_64": "x86_64", "amd64": "x86_64", "x86-64": "x86_64", "x64": "x86_64",
    "i386": "i386", "i486": "i386", "i586": "i386", "i686": "i386", "x86": "i386",
    "x86_32": "i386", "ia32": "i386",
    "ia64": "ia64", "itanium": "ia64",
    "ppc64": "ppc64", "powerpc64": "ppc64", "ppc64be": "ppc64",
    "ppc64le": "ppc64le", "powerpc64le": "ppc64le", "ppc64el": "ppc64le",
    "arm64": "arm64", "aarch64": "arm64",
    "arm": "arm", "armhf": "arm", "armel": "arm",
    "s390x": "s390x", "riscv64": "riscv64",
}


class ArchConflict(InputError, ValueError):
    """The trace says one architecture and the command line another."""


def canonical_arch(name: str | None) -> str | None:
    """The canonical name of an architecture spelled as ``uname -m``, perf, a distribution
    or a user would (``aarch64`` -> ``arm64``, ``armv7l`` -> ``arm``); None if unknown."""
    if not name:
        return None
    n = name.strip().lower()
    if n in _ALIASES:
        return _ALIASES[n]
    if re.fullmatch(r"armv\d+\w*", n):
        return "arm"
    return None


def arch_from_uname(uname: str | None) -> str | None:
    """Arch from a ``uname -a``-like line (trace.dat's UNAME option:
    ``Linux host 4.14.62-v7emcole armv7l``): the machine field, else the release."""
    if not uname:
        return None
    fields = uname.split()
    for f in reversed(fields):
        arch = canonical_arch(f)
        if arch:
            return arch
    if len(fields) >= 3:
        return arch_from_kernel_release(fields[2])
    return None


# Kernel release suffixes, checked in order (more specific first).
_RELEASE_RULES = (
    (r"(?:^|[-.+_])(?:powerpc64le|ppc64le|ppc64el)(?:$|[-.+_])", "ppc64le"),
    (r"(?:^|[-.+_])(?:powerpc64|ppc64)(?:$|[-.+_])", "ppc64"),
    (r"(?:^|[-.+_])(?:amd64|x86_64)(?:$|[-.+_])", "x86_64"),
    (r"(?:^|[-.+_])(?:686|686-pae|i686|i586|i486|i386|486)(?:$|[-.+_])", "i386"),
    (r"(?:^|[-.+_])(?:ia64|itanium|mckinley)(?:$|[-.+_])", "ia64"),
    (r"(?:^|[-.+_])(?:arm64|aarch64)(?:$|[-.+_])", "arm64"),
    (r"(?:^|[-.+_])(?:armmp|armmp-lpae|armv7hl|armv7l|armhf|armel|marvell|rpi)(?:$|[-.+_])", "arm"),
)


def arch_from_kernel_release(release: str | None) -> str | None:
    """Arch from a kernel release string, when its flavour or package suffix names one
    (``6.1.0-56-amd64`` -> x86_64, ``6.1.0-50-powerpc64le`` -> ppc64le,
    ``2.6.18-8.el5.ia64`` -> ia64); None when it does not say (``6.1.192-tkA``)."""
    if not release:
        return None
    r = release.strip().lower()
    for pattern, arch in _RELEASE_RULES:
        if re.search(pattern, r):
            return arch
    return None


# Entry points and helpers that exist on one architecture only (arch/<arch>/...).
_SYMBOL_RULES = (
    ("ia64", r"^\.?ia64_"),  # arch/ia64: ia64_leave_kernel, ia64_switch_to, ...
    ("x86_64", r"^(?:entry_SYSCALL_64|__x64_sys_|asm_exc_|x86_64_start_kernel$|native_irq_return_iret$)"),
    ("i386", r"^(?:entry_SYSENTER_32$|entry_INT80_32$|i386_start_kernel$)"),
    ("arm64", r"^(?:el0_svc|el0t_64_|el1h_64_|__arm64_sys_|do_el0_svc$|arm64_)"),
    ("arm", r"^(?:vector_swi$|ret_fast_syscall$|__irq_svc$|__dabt_svc$|sys_arm_)"),
    ("ppc64le", r"^(?:system_call_exception$|system_call_vectored_common$|interrupt_return_srr)"),
)


def arch_from_symbols(symbols: pl.Series | Iterable[str]) -> str | None:
    """Arch from the kernel symbols a trace prints (a String series or any iterable of
    names, raw as printed).

    ppc64 ELFv1 when most text symbols carry the leading dot of a function-descriptor ABI
    (``.free_pgtables``, ``.exit_mmap``); otherwise the arch whose arch-only entry points
    appear, when exactly one does.  None when the symbols do not say."""
    if not isinstance(symbols, pl.Series):
        symbols = pl.Series(list(symbols), dtype=pl.String)
    s = symbols.cast(pl.String).drop_nulls().str.strip_chars()
    s = s.filter(s.str.len_chars() > 0)
    if s.len() == 0:
        return None
    names = s.str.replace(r"\+0x[0-9a-fA-F]+(?:/0x[0-9a-fA-F]+)?$", "")
    dotted = names.str.contains(r"^\.[A-Za-z_]").sum()
    if dotted >= 2 and dotted * 2 > names.len():
        # ia64 has no dot symbols; a dotted ia64_ name would still be ppc64 ELFv1.
        return "ppc64"
    found = [
        arch for arch, pattern in _SYMBOL_RULES if names.str.contains(pattern).any()
    ]
    if set(found) == {"arm", "arm64"}:
        # arm64 kernels before 5.x also have ret_fast_syscall; el0_svc & co. are arm64's own
        found = ["arm64"]
    if len(found) == 1:
        if found[0] == "ppc64le" and dotted:
            return "ppc64"
        return found[0]
    return None


def reconcile(from_trace: str | None, given: str | None) -> str | None:
    """The run's arch: what the trace says, else ``--arch``; both canonical.  Raises
    :class:`ArchConflict` naming both when they disagree."""
    t = canonical_arch(from_trace) if from_trace else None
    g = canonical_arch(given) if given else None
    if given and g is None:
        raise ArchConflict(f"unknown architecture {given!r} (known: {', '.join(ARCHES)})")
    if t and g and t != g:
        raise ArchConflict(f"the trace says arch {t} but --arch says {g}")
    return t or g


def infer_arch(kernel: str | None = None, symbols: pl.Series | Iterable[str] = ()) -> str | None:
    """The arch implied by what a trace says when it does not name one outright: the
    kernel release first, then the symbols."""
    return arch_from_kernel_release(kernel) or arch_from_symbols(symbols)
