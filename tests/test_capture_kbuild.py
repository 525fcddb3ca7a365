"""tracekit capture --kernel-source: cache keys, patch checks and error reporting of the
kernel builds (the builds themselves run only in the slow end-to-end test)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tracekit.capture.kbuild import (
    build_key,
    check_patch,
    first_error_lines,
    fragment_text,
    host_tsc_khz,
)
from tracekit.capture.plan import CaptureError


def test_fragment_selects_the_latency_tracers(corpus):
    frag = fragment_text()
    for opt in ("CONFIG_PREEMPT=y", "CONFIG_IRQSOFF_TRACER=y", "CONFIG_PREEMPT_TRACER=y",
                "CONFIG_FUNCTION_GRAPH_TRACER=y", "CONFIG_KPROBE_EVENTS=y", "CONFIG_MODULES=y",
                "# CONFIG_TRANSPARENT_HUGEPAGE is not set"):  # fmt: skip
        assert opt in frag.splitlines()
    # the same options as the fragment that built the corpus's kbuild kernels
    def options(text: str) -> set[str]:
        return {ln for ln in text.splitlines() if ln.startswith("CONFIG_") or ln.startswith("# CONFIG_")}

    lab = (corpus / "kbuild-x86_64-6.1.192" / "tracekit.fragment").read_text()
    assert options(frag) == options(lab)


def test_build_key_changes_with_each_input():
    base = build_key("6.1.192-2", "CONFIG_A=y\n", b"patch")
    assert base == build_key("6.1.192-2", "CONFIG_A=y\n", b"patch")
    assert base != build_key("6.1.194-1", "CONFIG_A=y\n", b"patch")
    assert base != build_key("6.1.192-2", "CONFIG_A=n\n", b"patch")
    assert base != build_key("6.1.192-2", "CONFIG_A=y\n", b"patch2")
    assert base != build_key("6.1.192-2", "CONFIG_A=y\n", None)


def test_host_tsc_khz_from_cpuinfo():
    text = "processor\t: 0\nmodel name\t: X\ncpu MHz\t\t: 2596.130\ncache size\t: 1 kB\n"
    assert host_tsc_khz(text) == 2596130
    assert host_tsc_khz("processor : 0\n") is None


@pytest.fixture
def tiny_tree(tmp_path):
    tree = tmp_path / "linux-source-6.1"
    (tree / "mm").mkdir(parents=True)
    (tree / "mm" / "mmap.c").write_text("void exit_mmap(void)\n{\n\tunmap_vmas();\n\tfree_pgtables();\n}\n")
    return tree


def _patch(tmp_path, old: str, new: str):
    p = tmp_path / "x.patch"
    p.write_text(
        "--- a/mm/mmap.c\n+++ b/mm/mmap.c\n@@ -1,5 +1,5 @@\n void exit_mmap(void)\n {\n"
        f"-\t{old}\n+\t{new}\n \tfree_pgtables();\n }}\n"
    )
    return p


@pytest.mark.skipif(not shutil.which("patch"), reason="patch (Debian package patch) not installed")
def test_patch_that_applies_passes_the_dry_run(tiny_tree, tmp_path):
    check_patch(tiny_tree, _patch(tmp_path, "unmap_vmas();", "preempt_disable();"))
    # a dry run leaves the tree as it was
    assert "unmap_vmas" in (tiny_tree / "mm" / "mmap.c").read_text()


@pytest.mark.skipif(not shutil.which("patch"), reason="patch (Debian package patch) not installed")
def test_patch_that_does_not_apply_stops_with_patch_own_words(tiny_tree, tmp_path):
    bad = _patch(tmp_path, "zap_pte_range();", "preempt_disable();")
    # what patch(1) itself says about this hunk, read independently
    proc = subprocess.run(["patch", "-p1", "--dry-run", "--batch", "--forward", "-i", str(bad)],
                          cwd=tiny_tree, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0
    with pytest.raises(CaptureError) as info:
        check_patch(tiny_tree, bad)
    msg = str(info.value)
    assert msg.startswith("x.patch does not apply to linux-source-6.1:")
    assert "Hunk #1 FAILED" in msg and "Hunk #1 FAILED" in proc.stdout
    assert len(msg.splitlines()) <= 12


def test_first_error_lines_picks_the_compiler_error():
    log = "\n".join(
        [f"  CC      mm/file{i}.o" for i in range(500)]
        + ["mm/mmap.c: In function 'exit_mmap':",
           "mm/mmap.c:3142:9: error: implicit declaration of function 'preempt_disabl'",
           " 3142 |         preempt_disabl();",
           "make[3]: *** [scripts/Makefile.build:250: mm/mmap.o] Error 1"]
        + [f"  CC      kernel/x{i}.o" for i in range(300)]
    )  # fmt: skip
    head = first_error_lines(log).splitlines()
    assert head[0] == "mm/mmap.c: In function 'exit_mmap':"
    assert "error: implicit declaration of function 'preempt_disabl'" in head[1]
    assert len(head) <= 10 and not any(ln.startswith("  CC      kernel/") for ln in head)
