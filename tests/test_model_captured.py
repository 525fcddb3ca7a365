"""The model's workload of a run made by tracekit capture (runs.meta "capture" and
"workload_mm"): derived from pgtfree's spec, cross-checked against the children's mm
figures, and used by calibrate and replay when --workload is left out."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import tracekit
from tracekit.capture.runner import read_workload_meta
from tracekit.cli import app
from tracekit.model.calibrate import GROUPS, ExitSelection, calibrate
from tracekit.model.captured import NoWorkloadMeta, captured_workload, preempt_of
from tracekit.model.costs import CostProfile
from tracekit.model.emit import EmitOptions, emit

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# pgtfree forks=2, mb=8: each child keeps the upper 4 MiB (4096 KiB) of its 8 MiB mapping;
# placed one 4 KiB page past the 1 GiB boundary (0x40001000)
SPEC_MB8 = "anon:4096KiB:at=0x40001000"


def capture_meta(workload: str, preempt: str | None = "full", vmpte_kb: int = 40, anon_kb: int = 4200,
                 children: int = 2) -> dict:
    """runs.meta extras exactly as tracekit.capture.runner.ingest_capture writes them:
    capture.json's keys, and one dict per workload.meta.txt line."""
    return {
        "capture": {
            "tag": "x86_64-synthetic", "arch": "x86_64", "kernel_package": "linux-image-6.1.0-56-amd64",
            "kernel_release": "6.1.0-56-amd64", "preempt": preempt, "clock": "local", "thp": "never",
            "workload": workload, "tracers": ["function_graph"], "outmode": "9p", "qemu_wall_s": 70.1,
            "qemu_returncode": 0, "captured_at": "2026-11-26T02:00:00Z",
        },
        "workload_mm": [
            {"child": i, "pid": 300 + i, "mapped_mb": 8, "VmPTE_kB": vmpte_kb, "VmRSS_kB": anon_kb + 500,
             "Rss_kB": anon_kb + 500, "Anonymous_kB": anon_kb, "AnonHugePages_kB": 0}
            for i in range(children)
        ],
    }


def test_spec_from_pgtfree():
    cw = captured_workload(capture_meta("pgtfree:forks=2,mb=8,loops=1"), "x86_64")
    assert cw.spec == SPEC_MB8
    assert (cw.comm, cw.exits, cw.preempt) == ("pgtfree", 2, True)
    # 4 MiB from 0x40001000 ends at 0x40401000: PMDs 512, 513 and 514 -> 3 PTE tables, one PMD
    # table, one PUD table = 5 pages = 20 kB; VmPTE 40 kB leaves 5 for the binary and stack
    assert not cw.warnings
    assert any("VmPTE 40-40 kB = 10-10 page-table pages" in n and "VMAs' 5" in n for n in cw.notes)
    # capture's defaults when keys are left out: forks=20, mb=64 -> 32 MiB = 32768 KiB
    assert captured_workload({"capture": {"workload": "pgtfree"}}, "x86_64").spec == "anon:32768KiB:at=0x40001000"
    assert captured_workload({"capture": {"workload": "pgtfree"}}, "x86_64").exits == 20


def test_sparse_spec_from_pgtfree():
    """sparse=64: 64 GiB from 0x40001000 with one present page per 512 (the 512th, ..., so
    one in each PMD span from 0x40200000 up to the span at 65 GiB: 32768 PTE tables), then
    the dense upper half, 128 MiB from 0x1040001000 to 0x1048001000: 65 PMD spans, the
    first shared with the sparse VMA's last, so 64 more.  PMD tables: the 1 GiB spans 1..65
    (65); PUD tables: one.  32768 + 64 + 65 + 1 = 32898 pages = 131592 kB."""
    spec = "pgtfree:forks=2,mb=256,sparse=64"
    meta = capture_meta(spec, vmpte_kb=131592 + 24, anon_kb=131072 + 32768 * 4 + 100)
    cw = captured_workload(meta, "x86_64")
    assert cw.spec == "anon:64GiB:density=0.001953125:at=0x40001000,anon:131072KiB"
    assert not cw.warnings, cw.warnings
    assert any("VMAs' 32898" in n for n in cw.notes), cw.notes
    assert any("32,768 PTE tables" in n for n in cw.notes)
    # a capture that did not map the sparse part is caught by its page tables
    cw = captured_workload(capture_meta(spec, vmpte_kb=300, anon_kb=300000), "x86_64")
    assert any("fewer than the 32898" in w for w in cw.warnings)


def test_pgtfree_spec_is_one_format_for_every_command(tmp_path):
    """model --workload takes the capture's spelling as it is."""
    from tracekit.model.captured import pgtfree_model_spec

    r = CliRunner().invoke(app, ["model", "--strategy", "modern", "--preempt", "--json",
                                 "--workload", "pgtfree:forks=2,mb=8,sparse=1,loops=3"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["workload"] == pgtfree_model_spec("pgtfree:forks=2,mb=8,sparse=1,loops=3", "x86_64")
    # 512 sparse tables + the dense 4 MiB's 3 (one shared at the boundary: 2 more)
    assert d["calls_by_function"]["pte_free_tlb"] == 512 + 2
    r = CliRunner().invoke(app, ["model", "--strategy", "modern", "--preempt", "--workload", "pgtfree:sparse=x"])
    assert r.exit_code == 2 and "whole number" in r.output


def test_mm_figures_that_disagree_are_warned():
    # 12 kB of page tables cannot hold the VMA's 5 tables (20 kB)
    cw = captured_workload(capture_meta("pgtfree:forks=2,mb=8", vmpte_kb=12), "x86_64")
    assert any("fewer than the 5" in w for w in cw.warnings)
    # 4000 kB anonymous is less than the 4096 kB the VMA keeps present
    cw = captured_workload(capture_meta("pgtfree:forks=2,mb=8", anon_kb=4000), "x86_64")
    assert any("4000 kB" in w for w in cw.warnings)
    meta = capture_meta("pgtfree:forks=2,mb=8")
    meta["workload_mm"][0]["AnonHugePages_kB"] = 2048
    assert any("transparent huge pages" in w for w in captured_workload(meta, "x86_64").warnings)


@pytest.mark.parametrize("meta", [None, "", "{}", {"capture": {"arch": "x86_64"}}, {"workload_mm": []}])
def test_no_capture_workload(meta):
    with pytest.raises(NoWorkloadMeta, match="give --workload"):
        captured_workload(meta, "x86_64")
    with pytest.raises(NoWorkloadMeta, match="not pgtfree"):
        captured_workload({"capture": {"workload": "stress:vm=1"}}, "x86_64")


def test_preempt_modes():
    # tracekit capture records the mode the kernel reported: CONFIG_PREEMPT(_RT) or not
    assert [preempt_of(m) for m in ("full", "rt", "none", "voluntary", None, "?")] == [
        True, True, False, False, None, None]


@pytest.fixture(scope="module")
def synthetic_capture(tmp_path_factory):
    """A function_graph trace of three pgtfree exits (pids 4242-4244 on three CPUs) of the
    workload's VMA under known costs (zap x3, free x2), ingested with capture metadata for
    forks=2 (4244 stands in for the parent, exiting last), and once without metadata."""
    base = CostProfile()
    true = replace(base, **{n: getattr(base, n) * 3 for n in GROUPS["zap"]},
                   **{n: getattr(base, n) * 2 for n in GROUPS["free"]})
    d = tmp_path_factory.mktemp("capwl")
    t = emit(d, arch="x86_64", strategy="modern", preempt=True, workload=SPEC_MB8, formats=("function_graph",),
             options=EmitOptions(comm="pgtfree", proc=True, copies=3), costs=true)
    trace = str(d / t["files"]["function_graph"])
    store = d / "store"
    with_meta = tracekit.ingest([trace], store=str(store), patch="cap", label="after", arch="x86_64",
                                extra_meta=capture_meta("pgtfree:forks=2,mb=8,loops=1"))[0].run_id
    without = tracekit.ingest([trace], store=str(store / "plain"), patch="cap", label="after", arch="x86_64")[0].run_id
    return store, with_meta, without


def test_calibrate_without_workload_uses_the_capture(synthetic_capture, tmp_path):
    store, rid, _ = synthetic_capture
    r = CliRunner().invoke(app, ["calibrate", "--store", str(store), "--run", rid[:8], "--no-save", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["workload"] == SPEC_MB8 and d["preempt"] is True
    assert d["exits"] == 2  # forks=2: pids 4242 and 4243; 4244's exit is last, taken for the parent's
    # the derived workload is the emitted one: the closed loop gives back the true scales
    assert d["scales"]["zap"] == pytest.approx(3.0, rel=1e-9)
    assert d["scales"]["free"] == pytest.approx(2.0, rel=1e-9)
    assert d["scales"]["pgtables"] == pytest.approx(1.0, rel=1e-9)
    assert d["captured"]["source"] == "pgtfree:forks=2,mb=8,loops=1"


def test_replay_without_workload(synthetic_capture):
    store, rid, _ = synthetic_capture
    runner = CliRunner()
    r = runner.invoke(app, ["replay", "--store", str(store), "--run", rid[:8], "--strategy", "v2622", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["workload"] == SPEC_MB8 and d["exits"] == 2
    # 4 MiB = 1024 PTEs: v2622 PREEMPT ends a ZAP_BLOCK every 8 of them
    assert d["model_strategy"]["flushes_by_cause"]["block_end"] == 128
    r = runner.invoke(app, ["replay", "--store", str(store), "--run", rid[:8], "--strategy", "v2622"])
    assert r.exit_code == 0, r.output
    assert "workload from the capture: " + SPEC_MB8 in r.output and "measured" in r.output
    h = runner.invoke(app, ["replay", "--help"])
    assert "tracekit replay --run 5e1c0a77 --strategy v2622\n" in h.output


def test_run_without_metadata_needs_workload(synthetic_capture):
    store, _, rid = synthetic_capture
    for cmd in (["calibrate"], ["replay", "--strategy", "v2622"]):
        r = CliRunner().invoke(app, [*cmd, "--store", str(store / "plain"), "--run", rid[:8]])
        assert r.exit_code == 2, r.output
        assert "records no capture workload" in r.output and "give --workload" in r.output
        assert "Traceback" not in r.output


def test_selection_keeps_the_childrens_exits(synthetic_capture):
    store, rid, _ = synthetic_capture
    spans = tracekit.open_store(str(store)).spans().filter(pl.col("run_id") == rid)
    cal = calibrate(spans, arch="x86_64", workload=SPEC_MB8, select=ExitSelection("pgtfree", 2))
    assert cal.exits == 2
    assert calibrate(spans, arch="x86_64", workload=SPEC_MB8).exits == 3
    # a comm the trace does not have selects nothing: every exit counts
    assert calibrate(spans, arch="x86_64", workload=SPEC_MB8, select=ExitSelection("nope", 2)).exits == 3


def test_real_capture_ppc64le(tmp_path):
    """fixtures/ppc64le/before was made by tracekit capture; its capture.json and
    workload.meta.txt are what ingest_capture puts in runs.meta."""
    d = FIXTURES / "ppc64le" / "before"
    meta = {"capture": json.loads((d / "capture.json").read_text()),
            "workload_mm": read_workload_meta(d / "workload.meta.txt")}
    store = tmp_path / "s"
    # as ingest_capture does it, arch, kernel and preempt from capture.json
    cap = meta["capture"]
    rid = tracekit.ingest([str(d / "fgraph_exit_mmap.txt.gz")], store=str(store), patch="ppc", label="before",
                          arch=cap["arch"], kernel=cap["kernel_release"], preempt=cap["preempt"],
                          extra_meta=meta)[0].run_id
    runner = CliRunner()
    r = runner.invoke(app, ["calibrate", "--store", str(store), "--run", rid[:8]])
    assert r.exit_code == 2 and "unknown arch 'ppc64le'" in r.output and "give --arch" in r.output
    r = runner.invoke(app, ["calibrate", "--store", str(store), "--run", rid[:8], "--arch", "ppc64-64k",
                            "--no-save", "--json"])
    assert r.exit_code == 0, r.output
    cal = json.loads(r.stdout)
    # pgtfree:forks=10,mb=64: the upper 32 MiB; preempt "voluntary" is !CONFIG_PREEMPT
    assert cal["workload"] == "anon:32768KiB:at=0x40010000" and cal["preempt"] is False
    # pgtfree-173 execs (the shell's mm) and exits last; children 174..183 exit once each
    assert cal["exits"] == 10
    # mean of the 10 children's durations, summed by awk over the "    }" closing lines of
    # unmap_vmas/free_pgtables/tlb_finish_mmu under each exit_mmap of pids 174-183, less
    # function_graph's own cost for each traced call beneath: awk counts 120, 200 and 30
    # calls under them (12, 20 and 3 per exit); the leaf calls' own durations (__cond_resched,
    # uprobe_munmap: 1.3-3.8 us) bound the per-call estimate
    o = cal["overhead_ns"]
    assert cal["source"] == "function_graph" and 1000 < o < 4000
    assert any("function_graph overhead" in n for n in cal["notes"])
    assert cal["measured_ns"]["unmap_vmas"] == pytest.approx(12457537.4 - 12 * o)
    assert cal["measured_ns"]["free_pgtables"] == pytest.approx(889109.2 - 20 * o)
    assert cal["measured_ns"]["tlb_finish_mmu"] == pytest.approx(16050958.2 - 3 * o)
    assert any("VmPTE (25-25 kB) not checked" in n for n in cal["captured"]["notes"])
    # --workload restates the VMAs; the children and the preemption mode still come from the capture
    r = runner.invoke(app, ["calibrate", "--store", str(store), "--run", rid[:8], "--arch", "ppc64-64k",
                            "--workload", "anon:32MiB", "--no-save", "--json"])
    assert r.exit_code == 0, r.output
    cal = json.loads(r.stdout)
    assert (cal["workload"], cal["exits"], cal["preempt"]) == ("anon:32MiB", 10, False)


def test_workload_option_overrides_the_spec_not_the_selection(synthetic_capture):
    store, rid, _ = synthetic_capture
    r = CliRunner().invoke(app, ["calibrate", "--store", str(store), "--run", rid[:8], "--workload", "anon:4MiB",
                                 "--no-save", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    # the stated VMAs, the capture's children (2 of the 3 pgtfree exits) and preempt "full"
    assert d["workload"] == "anon:4MiB" and d["exits"] == 2 and d["preempt"] is True
    assert d["captured"] is None
