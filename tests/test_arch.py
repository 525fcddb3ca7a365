"""tracekit.arch: the architecture a trace says it came from."""

from __future__ import annotations

import polars as pl
import pytest

from tracekit.arch import (
    ArchConflict,
    arch_from_kernel_release,
    arch_from_symbols,
    arch_from_uname,
    canonical_arch,
    reconcile,
)


@pytest.mark.parametrize(
    "release,arch",
    [
        ("6.1.0-56-amd64", "x86_64"),  # corpus/qemu/x86_64-*/info.txt (Debian flavour)
        ("6.1.0-50-powerpc64le", "ppc64le"),  # corpus/qemu/ppc64le-*/info.txt
        ("2.6.18-8.el5.ia64", "ia64"),  # RPM-style package suffix
        ("2.6.32-5-mckinley", "ia64"),  # Debian squeeze ia64 flavour
        ("3.2.0-4-powerpc64", "ppc64"),
        ("2.6.18-194.el5.ppc64", "ppc64"),
        ("4.18.0-305.el8.x86_64", "x86_64"),
        ("3.16.0-4-686-pae", "i386"),
        ("5.10.0-21-arm64", "arm64"),
        ("5.10.0-21-armmp-lpae", "arm"),
        ("6.1.192-tkA", None),  # corpus/kbuild: a custom build says nothing
        ("4.13.0-rc1", None),
        ("3.13.0-44-generic", None),
        ("", None),
    ],
)
def test_arch_from_kernel_release(release, arch):
    assert arch_from_kernel_release(release) == arch


@pytest.mark.parametrize(
    "name,arch",
    [("x86_64", "x86_64"), ("amd64", "x86_64"), ("i686", "i386"), ("aarch64", "arm64"),
     ("armv7l", "arm"), ("ppc64le", "ppc64le"), ("ppc64", "ppc64"), ("ia64", "ia64"),
     ("sparc64", None), ("", None)],
)
def test_canonical_arch(name, arch):
    assert canonical_arch(name) == arch


def test_arch_from_uname():
    # trace.dat UNAME options seen in the corpus (docs/formats.md#version-6)
    assert arch_from_uname("Linux host 4.14.62-v7emcole armv7l") == "arm"
    assert arch_from_uname("Linux debian 6.1.0-50-powerpc64le #1 SMP Debian ppc64le") == "ppc64le"
    assert arch_from_uname(None) is None


def test_ppc64_elfv1_dot_symbols():
    # The real ppc64 oops stack quoted in docs/formats.md#symbols (LKML): ELFv1 dot symbols.
    syms = pl.Series([".free_pgtables+0x90/0x134", ".exit_mmap+0xcc/0x180", ".mmput", ".do_exit"])
    assert arch_from_symbols(syms) == "ppc64"


def test_symbols_of_other_arches(corpus):
    from test_perf_script import load, run

    # corpus/qemu perf scripts: callchains with entry_SYSCALL_64 (x86_64) and
    # system_call_exception (powerpc, ELFv2: no dots, so ppc64le).
    df, _ = run(load(corpus / "qemu" / "x86_64-6.1.0-56-preempt-none" / "perf.script.txt"))
    assert arch_from_symbols(df["callchain"].explode()) == "x86_64"
    df, _ = run(load(corpus / "qemu" / "ppc64le-6.1.0-50-preempt-voluntary" / "perf.script.txt"))
    assert arch_from_symbols(df["callchain"].explode()) == "ppc64le"
    # ia64 entry code (LKML ia64 oops text; docs/formats.md#symbols)
    assert arch_from_symbols(pl.Series(["ia64_leave_kernel+0x0/0x280", "schedule"])) == "ia64"
    # Generic kernel functions say nothing.
    assert arch_from_symbols(pl.Series(["exit_mmap", "unmap_vmas", "free_pgtables"])) is None
    assert arch_from_symbols(pl.Series([], dtype=pl.String)) is None


def test_reconcile():
    assert reconcile("x86_64", None) == "x86_64"
    assert reconcile(None, "amd64") == "x86_64"
    assert reconcile("ppc64le", "ppc64le") == "ppc64le"
    with pytest.raises(ArchConflict, match="ppc64le.*x86_64"):
        reconcile("ppc64le", "x86_64")
    with pytest.raises(ArchConflict, match="unknown architecture"):
        reconcile(None, "vax")


def test_infer_arch_and_plain_iterables():
    assert arch_from_symbols([".free_pgtables", ".exit_mmap", ".mmput"]) == "ppc64"
    from tracekit.arch import infer_arch

    assert infer_arch("6.1.0-56-amd64") == "x86_64"
    assert infer_arch("6.1.192-tkA", [".free_pgtables", ".unmap_vmas"]) == "ppc64"
    assert infer_arch(None, ["exit_mmap"]) is None


def test_arm64_before_5x_has_ret_fast_syscall_too():
    from tracekit.arch import arch_from_symbols

    assert arch_from_symbols(["ret_fast_syscall", "el0_svc_naked", "do_page_fault"]) == "arm64"
    assert arch_from_symbols(["ret_fast_syscall", "vector_swi"]) == "arm"
