"""tracekit capture end to end: a real Debian kernel booted under QEMU, traced, ingested.

Slow (about two minutes, plus a one-off download of about 100 MB): skipped unless
TRACEKIT_SLOW=1.  Needs qemu-system-x86, gcc with a static libc, apt access to Debian.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import polars as pl
import pytest

from tracekit.capture.plan import CapturePlan, parse_tracers, parse_workload

pytestmark = pytest.mark.slow

KERNEL = os.environ.get("TRACEKIT_E2E_KERNEL", "linux-image-6.1.0-56-amd64")


def _qemu_pids(mentioning: str) -> list[int]:
    """QEMU processes whose command line mentions ``mentioning`` (this test's directory:
    another capture may run beside the test)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmdline = (p / "cmdline").read_bytes()
                if b"qemu-system" in cmdline and mentioning.encode() in cmdline:
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86 not installed")
def test_capture_x86_64_end_to_end(tmp_path):
    from tracekit import open_store
    from tracekit.capture.runner import capture

    forks = 3
    plan = CapturePlan(
        arch="x86_64",
        tag="e2e",
        preempt="full",
        thp="never",
        tracers=parse_tracers("function_graph,events,kprobes"),
        workload=parse_workload(f"pgtfree:forks={forks},mb=8,loops=1"),
    )
    phases: list[str] = []
    res = capture(
        plan,
        KERNEL,
        out_dir=tmp_path / "out",
        store=tmp_path / "store",
        patch="e2e",
        label="after",
        timeout_s=600,
        on_phase=lambda name, detail: phases.append(name),
    )
    # no emulator outlives the capture
    assert _qemu_pids(str(tmp_path)) == []
    assert res.qemu.guest_done and not res.qemu.timed_out
    assert phases[:4] == ["kernel", "tools", "workload", "initramfs"] and phases[-1] == "done"
    # the kernel says who it is: the package's ABI release, and the mode it was booted in
    assert res.kernel_release == KERNEL.removeprefix("linux-image-")
    assert res.preempt == "full"
    run = res.run_dir
    assert "(full)" in (run / "capture.env").read_text()
    assert "[never]" in (run / "capture.env").read_text()
    # the workload recorded each child's mm before exit
    assert [r["child"] for r in res.workload] == list(range(forks))
    assert all(r["VmPTE_kB"] > 0 and r["AnonHugePages_kB"] == 0 for r in res.workload)
    assert (run / "smaps.before_exit.txt").stat().st_size > 0

    # every exit_mmap() the function_graph text shows is one exit_mmap span in the store
    text = (run / "fgraph_exit_mmap.txt").read_text()
    n_exit_mmap = len(re.findall(r"\|\s+exit_mmap\(\)( \{|;)", text))
    assert n_exit_mmap >= forks + 1  # each child, and the workload's own exit
    assert all(d["status"] == "ingested" for d in res.ingested), res.ingested
    fgraph_run = next(d["run_id"] for d in res.ingested if d["path"].endswith("fgraph_exit_mmap.txt"))
    st = open_store(tmp_path / "store")
    spans = st.spans().filter(pl.col("run_id") == fgraph_run).collect()
    assert spans.filter(pl.col("func") == "exit_mmap").height == n_exit_mmap
    runs = st.runs().collect()
    assert set(runs["kernel"]) == {res.kernel_release}
    assert set(runs["arch"]) == {"x86_64"} and set(runs["label"]) == {"after"} and set(runs["patch"]) == {"e2e"}


PATCH_0001 = "kbuild-x86_64-6.1.192/patches/0001-mm-reenact-non-preemptible-pagetable-freeing.patch"


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86 not installed")
def test_kernel_source_pair_end_to_end(tmp_path, corpus):
    """Build before/after kernels from linux-source-6.1 and the corpus's "before" patch
    (preempt_disable() around free_pgtables()..tlb_finish_mmu() in exit_mmap()), capture
    both with the preemptoff tracer, ingest.  Uncached: two kernel builds (2-15 min each)."""
    from tracekit import open_store
    from tracekit.capture.kbuild import capture_patch_pair

    results = capture_patch_pair(
        source_package="linux-source-6.1",
        patch_file=corpus / PATCH_0001,
        tracers=parse_tracers("function_graph"),
        workload=parse_workload("pgtfree:forks=4,mb=64,loops=1"),
        patch="reenact",
        store=tmp_path / "store",
        out_dir=tmp_path / "out",
        timeout_s=900,
        latency_runs=2,
    )
    assert [r.kernel_release.rsplit("-tk-", 1)[-1] for r in results] == ["before", "after"]
    assert all(r.preempt == "full" for r in results)  # CONFIG_PREEMPT=y in tracekit.fragment
    assert all(r.outmode == "serial" for r in results)  # no modules, no 9p: the fallback
    windows = open_store(tmp_path / "store").windows().collect()
    after = windows.filter((pl.col("label") == "after") & (pl.col("tracer") == "preemptoff"))
    before = windows.filter((pl.col("label") == "before") & (pl.col("tracer") == "preemptoff"))
    assert before.height == 2 and after.height == 2  # one snapshot per workload run
    # the patch makes exit_mmap() a preempt-off section: the worst window of each run is it
    assert set(after["started_at"]) == {"exit_mmap"} and set(after["ended_at"]) == {"exit_mmap"}
    assert "exit_mmap" not in set(before["started_at"])


@pytest.mark.skipif(not shutil.which("patch"), reason="patch not installed")
def test_patch_that_does_not_apply_stops_before_building(tmp_path, corpus):
    from tracekit.capture.kbuild import capture_patch_pair
    from tracekit.capture.plan import CaptureError

    # a context line in the middle of the hunk no longer matches mm/mmap.c: no fuzz saves it
    text = (corpus / PATCH_0001).read_text().replace(" \ttlb_finish_mmu(&tlb);", " \ttlb_finish_mmu(&tlbX);")
    assert text != (corpus / PATCH_0001).read_text()
    bad = tmp_path / "bad.patch"
    bad.write_text(text)
    with pytest.raises(CaptureError, match=r"bad.patch does not apply to linux-source-6.1:\n.*FAILED"):
        capture_patch_pair(source_package="linux-source-6.1", patch_file=bad, store=tmp_path / "s")


@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86 not installed")
def test_model_predicts_the_patched_kernel(tmp_path, corpus):
    """docs/model-validation.md in small: unpatched and patched 6.1 under -icount, 4 GiB
    sparse per child; calibrated on the unpatched kernel's kprobe spans only, the model's
    worst preempt-off window of the patched kernel is within 25% of the measured one, which
    starts and ends in exit_mmap.  Uses the cached kernel builds when present."""
    import json

    from typer.testing import CliRunner

    from tracekit import open_store
    from tracekit.capture.kbuild import capture_patch_pair
    from tracekit.cli import app
    from tracekit.model.report import predict_for_report

    store = tmp_path / "store"
    capture_patch_pair(
        source_package="linux-source-6.1",
        patch_file=corpus / PATCH_0001,
        tracers=parse_tracers("preemptoff,kprobes"),
        workload=parse_workload("pgtfree:forks=2,mb=256,sparse=4,loops=0"),
        patch="np",
        store=store,
        out_dir=tmp_path / "out",
        timeout_s=1800,
        latency_runs=1,
        icount=0,
    )
    r = CliRunner().invoke(app, ["calibrate", "--store", str(store), "--patch", "np", "--label", "before",
                                 "--source", "kprobe", "--before", "modern", "--after", "modern-np-pgfree", "--json"])
    assert r.exit_code == 0, r.output
    cal = json.loads(r.stdout)
    assert cal["source"] == "kprobe" and cal["exits"] == 2
    runs = open_store(store).runs().collect()
    side = {lab: [{"run_id": x} for x in runs.filter(pl.col("label") == lab)["run_id"]] for lab in ("before", "after")}
    p = predict_for_report("x86_64", ["free_pgtables"], side["before"], side["after"], None, store=store)
    w = p["windows"]["preemptoff"]["after"]
    assert w["measured_where"] == ["exit_mmap .. exit_mmap"]
    assert abs(w["error_pct"]) <= 25, w
