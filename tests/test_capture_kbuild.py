"""tracekit capture --kernel-source: cache keys, patch checks and error reporting of the
kernel builds (the builds themselves run only in the slow end-to-end test)."""

from __future__ import annotations

import shutil
from pathlib import Path
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


def test_repeated_pair_alternates_sides_one_tag_per_boot(monkeypatch, tmp_path):
    """--repeat 3: six boots, before and after alternating, each its own run directory;
    the tracers asked for are kept (preemptoff alone is not widened to all three)."""
    from tracekit.capture import kbuild, runner
    from tracekit.capture.plan import parse_workload

    monkeypatch.setenv("TRACEKIT_CACHE", str(tmp_path / "cache"))
    patch = tmp_path / "0001-x.patch"
    patch.write_text("diff\n")
    monkeypatch.setattr(kbuild, "provision_source", lambda pkg, cache: (tmp_path, "6.1.0-1"))
    monkeypatch.setattr(kbuild, "check_patch", lambda tree, p: None)
    built = lambda *a, **k: kbuild.KernelBuild(tmp_path / "bzImage", tmp_path / ".config", "6.1", 1.0, True)  # noqa: E731
    monkeypatch.setattr(kbuild, "build_kernel", built)
    monkeypatch.setattr(kbuild, "host_tsc_khz", lambda: 2000000)
    seen = []
    monkeypatch.setattr(runner, "capture", lambda plan, kernel, **kw: seen.append((plan, kw["label"])) or plan.tag)
    out = kbuild.capture_patch_pair("linux-source-6.1", patch, tracers=("preemptoff", "kprobes"),
                                    workload=parse_workload("pgtfree:forks=2,mb=256,sparse=64"),
                                    patch="0001", repeat=3, latency_path=True)
    assert out == ["0001-before-b1", "0001-after-b1", "0001-before-b2", "0001-after-b2",
                   "0001-before-b3", "0001-after-b3"]
    assert [label for _, label in seen] == ["before", "after"] * 3
    plan = seen[0][0]
    assert plan.tracers == ("kprobes", "preemptoff") and plan.latency_path
    assert plan.workload.sparse == 64
    with pytest.raises(kbuild.CaptureError, match="at least 1"):
        kbuild.capture_patch_pair("linux-source-6.1", patch, repeat=0)


def test_boot_ids_are_distinct_and_name_the_run():
    from tracekit.capture.runner import new_boot_id

    a, b = new_boot_id("0001-before-b1"), new_boot_id("0001-before-b1")
    assert a != b and a.startswith("0001-before-b1-") and len(a) == len("0001-before-b1-") + 8


def test_ingest_capture_gives_every_trace_of_a_boot_its_id(corpus, tmp_path):
    """A run directory as a boot leaves it: capture.json (with the boot id), a kprobe
    trace, two latency runs and a --latency-path run; every trace is ingested with the
    boot's id, the path run apart, its meta saying so."""
    import gzip
    import json

    import polars as pl

    import tracekit
    from tracekit.capture.runner import ingest_capture, trace_files

    run = tmp_path / "0001-after-b2"
    run.mkdir()
    (run / "capture.json").write_text(json.dumps({"arch": "x86_64", "kernel_release": "6.1.176-tk-after",
                                                  "preempt": "full", "workload": "pgtfree:forks=2,mb=256,sparse=64,loops=5",
                                                  "boot_id": "0001-after-b2-0123abcd"}))
    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "x86_64" / "before"
    (run / "kprobes.txt").write_bytes(gzip.decompress((fixtures / "kprobes.txt.gz").read_bytes()))
    seed = corpus / "kbuild-x86_64-6.1.192" / "A"
    for src, dst in (("run1", "run1"), ("run2", "run2"), ("run3", "path")):
        (run / f"latency_preemptoff.{dst}.txt").write_text((seed / f"latency_preemptoff.{src}.txt").read_text())
    assert [p.name for p in trace_files(run)] == ["kprobes.txt", "latency_preemptoff.run1.txt",
                                                  "latency_preemptoff.run2.txt"]
    got = ingest_capture(run, store=tmp_path / "s", patch="0001", label="after")
    assert len(got) == 4 and not any(d.get("error") for d in got)
    runs = tracekit.open_store(tmp_path / "s").runs().collect()
    assert set(runs["boot_id"]) == {"0001-after-b2-0123abcd"}
    path = runs.filter(pl.col("path").str.ends_with("latency_preemptoff.path.txt"))
    assert json.loads(path["meta"][0])["latency"].startswith("path")
