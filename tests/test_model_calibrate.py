"""Calibration and replay (docs/model.md#calibration-and-replay): a closed loop on a trace the
model emitted with known costs, the commands, and a fit to the real 6.1 exit_mmap trace of the
corpus."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

import tracekit
from tracekit.cli import app
from tracekit.model.calibrate import PLAUSIBLE_SCALES, GROUPS, calibrate, measure, replay, scale_warnings
from tracekit.model.costs import CostProfile
from tracekit.model.emit import EmitOptions, emit

WL = "anon:4MiB,file:1MiB:dirty=0.5"
FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture(scope="module")
def emitted_run(tmp_path_factory):
    # the "measured" kernel: modern, with the zap costs x3 and the free costs x2
    base = CostProfile()
    true = replace(base, **{n: getattr(base, n) * 3 for n in GROUPS["zap"]},
                   **{n: getattr(base, n) * 2 for n in GROUPS["free"]})
    d = tmp_path_factory.mktemp("cal")
    t = emit(d, arch="x86_64", strategy="modern", preempt=True, workload=WL, formats=("function_graph",),
             options=EmitOptions(), costs=true)
    store = d / "store"
    res = tracekit.ingest([str(d / t["files"]["function_graph"])], store=str(store), patch="cal", label="m",
                          arch="x86_64")
    return store, res[0].run_id


def _spans(store, run_id):
    return tracekit.open_store(str(store)).spans().filter(pl.col("run_id") == run_id)


def test_closed_loop_recovers_the_scales(emitted_run):
    store, rid = emitted_run
    cal = calibrate(_spans(store, rid), arch="x86_64", workload=WL)
    assert cal.exits == 1
    assert cal.scales["zap"] == pytest.approx(3.0, rel=1e-9)
    assert cal.scales["free"] == pytest.approx(2.0, rel=1e-9)
    assert cal.scales["pgtables"] == pytest.approx(1.0, rel=1e-9)
    for f, m in cal.measured_ns.items():
        assert cal.fitted_ns[f] == m


def test_replay_under_another_strategy(emitted_run):
    store, rid = emitted_run
    rp = replay(_spans(store, rid), arch="x86_64", workload=WL, strategy="v2622")
    rows = {r["function"]: r for r in rp["rows"]}
    assert rows["exit_mmap"]["model_measured_strategy_ns"] == rows["exit_mmap"]["measured_ns"]
    # 5 MiB = 1280 PTEs: v2622 PREEMPT ends a block every 8 of them
    assert rp["model_strategy"]["flushes_by_cause"]["block_end"] == 160


def test_commands(emitted_run, tmp_path):
    store, rid = emitted_run
    runner = CliRunner()
    prof = tmp_path / "costs.json"
    r = runner.invoke(app, ["calibrate", "--store", str(store), "--run", rid[:8], "--workload", WL,
                            "--out", str(prof), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(prof.read_text())["pte_anon"] == CostProfile().pte_anon * 3
    r = runner.invoke(app, ["replay", "--store", str(store), "--run", rid, "--strategy", "merged30",
                            "--workload", WL, "--costs", str(prof), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["model_strategy"]["tlb_flushes"] == 1  # everything at the final flush
    r = runner.invoke(app, ["replay", "--store", str(store), "--run", "nope", "--strategy", "v2622", "--workload", WL])
    assert r.exit_code == 2 and "no such run" in r.output


def test_fit_to_the_real_6_1_exit_mmap_trace(corpus, tmp_path):
    path = corpus / "kbuild-x86_64-6.1.192" / "B" / "fgraph_exit_mmap.txt"
    res = tracekit.ingest([str(path)], store=str(tmp_path / "s"), patch="seed", label="after")
    # pgtfree2 children: 256 MiB dense + 64 GiB touched once per 2 MiB (PROVENANCE.md)
    wl = "anon:256MiB,anon:64GiB:density=0.001953125"
    cal = calibrate(_spans(tmp_path / "s", res[0].run_id), arch="x86_64", workload=wl)
    assert cal.exits == 52  # grep -c 'exit_mmap() {' fgraph_exit_mmap.txt
    for f in ("free_pgtables", "tlb_finish_mmu"):
        assert cal.fitted_ns[f] == pytest.approx(cal.measured_ns[f], rel=0.01)
    assert cal.fitted_ns["unmap_vmas"] == pytest.approx(cal.measured_ns["unmap_vmas"], rel=0.10)


@pytest.fixture(scope="module")
def x86_both(tmp_path_factory):
    """The bundled x86_64 capture's kprobe and function_graph traces in one run set."""
    d = FIXTURES_DIR / "x86_64" / "before"
    store = tmp_path_factory.mktemp("kp") / "store"
    tracekit.ingest([str(d / "kprobes.txt.gz"), str(d / "fgraph_exit_mmap.txt.gz")], store=str(store),
                    patch="kp", label="before", arch="x86_64")
    return tracekit.open_store(str(store)).spans()


def test_kprobe_spans_only_under_exit_mmap(x86_both):
    """awk over kprobes.txt: a kretprobe line names its caller ("exit_mmap+0xd4/0x310 <-
    unmap_vmas"); 12 exit_mmap calls; the calls returning into exit_mmap sum to 33,485,000 ns
    (unmap_vmas), 1,620,000 (free_pgtables) and 53,109,000 (tlb_finish_mmu); those returning
    elsewhere (unmap_region, setup_arg_pages...) 44,497,000 ns more of unmap_vmas, which
    must not count."""
    m = measure(x86_both)
    assert m.source == "kprobe" and m.calls == 12 and m.overhead_ns == 0
    assert m.means["unmap_vmas"] == pytest.approx(33485000 / 12)
    assert m.means["free_pgtables"] == pytest.approx(1620000 / 12)
    assert m.means["tlb_finish_mmu"] == pytest.approx(53109000 / 12)
    assert m.means["exit_mmap"] == pytest.approx(90944000 / 12)
    assert m.means["unmap_vmas"] < m.means["exit_mmap"]


def test_function_graph_overhead_is_estimated_and_said(x86_both):
    m = measure(x86_both, source="function_graph")
    assert m.source == "function_graph" and m.overhead_ns > 0
    assert any("function_graph overhead" in n and "subtracted" in n for n in m.notes)
    raw = measure(x86_both, source="kprobe")  # another tracer, another boot step: same order
    assert 0 < m.means["unmap_vmas"] < 10 * raw.means["unmap_vmas"]


def test_implausible_scales_are_warned():
    w = scale_warnings({"zap": 160.0, "pgtables": 1.0, "free": 0.0}, {"zap": 5.0, "pgtables": 2.0, "free": 3.0})
    assert len(w) == 2
    assert "zap scaled x160" in w[0] and "free fitted to zero" in w[1]
    # a group with no simulated work cannot be judged
    assert scale_warnings({"zap": 1.0, "pgtables": 0.0, "free": 1.0}, {"zap": 1.0, "pgtables": 0.0, "free": 1.0}) == []
    lo, hi = PLAUSIBLE_SCALES
    assert scale_warnings({"zap": lo, "free": hi}, {"zap": 1.0, "free": 1.0}) == []


def test_calibration_carries_its_source_and_warnings(x86_both):
    cal = calibrate(x86_both, arch="x86_64", workload="anon:8MiB", source="kprobe")
    d = cal.as_dict()
    assert d["source"] == "kprobe" and d["exits"] == 12
    assert isinstance(d["warnings"], list) and d["notes"]
