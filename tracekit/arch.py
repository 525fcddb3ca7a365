"""Architectures: canonical names, and what a trace says about the one it came from.

A trace names its architecture in several ways: the perf header (``# arch : x86_64``),
trace.dat's uname (``... ppc64le``), the kernel release (Debian's ``-amd64`` /
``-powerpc64le`` flavours), and the symbols themselves (ppc64 ELFv1 function descriptors
give text symbols a leading dot: ``.free_pgtables``).  The canonical names are the kernel's
``uname -m`` spellings for the arches tracekit models: x86_64, i386, ia64, ppc64, ppc64le,
plus arm64 and arm for the traces that come from those boards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "ARCHES",
    "canonical_arch",
    "arch_from_kernel_release",
    "arch_from_symbols",
    "infer_arch",
]

ARCHES = ("x86_64", "i386", "ia64", "ppc64", "ppc64le", "arm64", "arm", "s390x", "riscv64")

_ALIASES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "x86-64": "x86_64",
    "x64": "x86_64",
    "i386": "i386",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "x86": "i386",
    "ia64": "ia64",
    "itanium": "ia64",
    "ppc64": "ppc64",
    "powerpc64": "ppc64",
    "ppc64be": "ppc64",
    "ppc64le": "ppc64le",
    "ppc64el": "ppc64le",
    "powerpc64le": "ppc64le",
    "arm64": "arm64",
    "aarch64": "arm64",
    "arm": "arm",
    "armv7l": "arm",
    "armv6l": "arm",
    "armhf": "arm",
    "armel": "arm",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def canonical_arch(name: str | None) -> str | None:
    """The canonical spelling of an arch name (``amd64`` -> ``x86_64``), None if unknown."""
    if not name:
        return None
    return _ALIASES.get(name.strip().lower())


def arch_from_kernel_release(release: str | None) -> str | None:
    """The arch a kernel release string names, if any (Debian flavours ``6.1.0-56-amd64``,
    ``6.1.0-50-powerpc64le``, ``-686-pae``, ``-arm64``; or an arch word such as ``ppc64``)."""
    if not release:
        return None
    r = release.lower()
    for pat, arch in (
        (r"powerpc64le|ppc64le|ppc64el", "ppc64le"),
        (r"powerpc64(?!le)|ppc64(?!le)", "ppc64"),
        (r"amd64|x86_64", "x86_64"),
        (r"-686|i686|i386", "i386"),
        (r"ia64|itanium|mckinley", "ia64"),
        (r"arm64|aarch64", "arm64"),
        (r"armv7|armmp|armhf", "arm"),
    ):
        if re.search(pat, r):
            return arch
    return None


def arch_from_symbols(symbols: Iterable[str]) -> str | None:
    """ppc64 (big-endian ELFv1) when most kernel text symbols carry the function-descriptor
    dot (``.free_pgtables``); None when the symbols do not tell."""
    n = dots = 0
    for s in symbols:
        if not s:
            continue
        n += 1
        if re.match(r"^\.[A-Za-z_]", s):
            dots += 1
    if n >= 3 and dots * 2 > n:
        return "ppc64"
    return None


def infer_arch(kernel: str | None = None, symbols: Iterable[str] = ()) -> str | None:
    """The arch implied by what a trace says when it does not name one outright."""
    return arch_from_kernel_release(kernel) or arch_from_symbols(symbols)
