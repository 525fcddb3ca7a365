"""Emitter -> parser round trips (docs/model.md#synthetic-traces): a trace the model writes,
ingested with ``tracekit.ingest`` into a fresh store, gives back its ground-truth sidecar
exactly --
per-function calls and stated durations (function_graph), calls (function), the latency
snapshot's header (preemptoff) and tlb_flush counts (events) -- for each arch, with the
function_graph options varied.

The ground truth is computed by the emitter from what it prints, never by reading the trace.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import tracekit
from tracekit.model.emit import EmitOptions, emit

CASES = [
    # (arch, strategy, preempt, workload, options)
    ("x86_64", "v2622", True, "anon:256KiB,file:64KiB:dirty=0.5", EmitOptions()),
    ("x86_64", "modern", True, "file:128KiB:dirty=1", EmitOptions(abstime=True, proc=True, tail=True)),
    ("i386", "ben2007", True, "anon:256KiB", EmitOptions(cpu=0, ncpus=2, old_marks=True)),
    ("ia64", "v2622", True, "anon:512KiB", EmitOptions(abstime=True, overhead=False)),
    ("ppc64", "hugh2007", True, "anon:128KiB,anon:64KiB", EmitOptions(proc=True, tail=True, cpu=3)),
    ("ppc64-64k", "merged30", True, "anon:1MiB", EmitOptions(abstime=True)),
    # task-switch blocks where the PREEMPT kernel would preempt at window ends
    ("x86_64", "v2622", True, "anon:128KiB", EmitOptions(switch_every=1, proc=True)),
    ("ppc64", "v2622", True, "anon:256KiB", EmitOptions(switch_every=3, abstime=True, tail=True, proc=True)),
]
ARCH_OF = {"x86_64": "x86_64", "i386": "i386", "ia64": "ia64", "ppc64": "ppc64", "ppc64-64k": "ppc64"}


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    out = tmp_path_factory.mktemp("emit")
    store = out / "store"
    truths = []
    for i, (arch, strategy, preempt, workload, opt) in enumerate(CASES):
        t = emit(out / f"case{i}", arch=arch, strategy=strategy, preempt=preempt, workload=workload,
                 options=opt, other_cpus=1 if arch.startswith("x86") else 0, op="munmap" if i == 1 else "exit_mmap")
        for fmt in ("function_graph", "function", "preemptoff", "events"):
            path = out / f"case{i}" / t["files"][fmt]
            res = tracekit.ingest([str(path)], store=str(store), arch=ARCH_OF[arch], patch=f"case{i}", label=fmt)
            assert res[0].error is None, res[0].error
            assert res[0].counts["skipped_lines"] == 0, res[0].as_dict()
        truths.append(t)
    return tracekit.open_store(str(store)), truths


def _sel(lf: pl.LazyFrame, i: int, fmt: str) -> pl.DataFrame:
    return lf.filter((pl.col("patch") == f"case{i}") & (pl.col("label") == fmt)).collect()


@pytest.mark.parametrize("i", range(len(CASES)))
def test_function_graph_round_trip(emitted, i):
    store, truths = emitted
    spans = _sel(store.spans(), i, "function_graph")
    assert spans["complete"].all()
    got = spans.group_by("func").agg(calls=pl.len(), dur_ns_sum=pl.col("dur_ns").sum())
    got_d = {r["func"]: {"calls": r["calls"], "dur_ns_sum": r["dur_ns_sum"]} for r in got.iter_rows(named=True)}
    assert got_d == truths[i]["function_graph"]["functions"]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_function_tracer_round_trip(emitted, i):
    store, truths = emitted
    ev = _sel(store.events(), i, "function").filter(pl.col("func").is_not_null())
    got = dict(ev.group_by("func").agg(pl.len()).iter_rows())
    assert got == truths[i]["function"]["calls"]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_preemptoff_snapshot_round_trip(emitted, i):
    store, truths = emitted
    w = _sel(store.windows(), i, "preemptoff")
    t = truths[i]["preemptoff"]
    assert w.height == 1
    row = w.row(0, named=True)
    assert row["latency_ns"] == t["latency_ns"]
    assert row["started_at"].lstrip(".") == t["started_at"]
    assert row["ended_at"].lstrip(".") == t["ended_at"]
    assert row["entries_shown"] == row["entries_total"] == t["entries"]
    assert (row["cpu"], row["pid"], row["comm"]) == (t["cpu"], t["pid"], t["comm"])


@pytest.mark.parametrize("i", range(len(CASES)))
def test_tlb_flush_events_round_trip(emitted, i):
    store, truths = emitted
    ev = _sel(store.events(), i, "events").filter(pl.col("event") == "tlb_flush")
    t = truths[i]["events"]
    assert ev.height == t["total"]
    assert ev.filter(pl.col("body").str.contains("remote ipi send")).height == t["by_reason"]["remote ipi send"]


def test_switch_blocks_are_printed(emitted):
    _, truths = emitted
    # x86_64 v2622 PREEMPT, 128 KiB = 32 PTEs: 4 block windows + the free_pgtables one;
    # one block out and one back after each
    assert len(truths[6]["windows"]) == 5


def test_ground_truth_matches_the_model(tmp_path):
    t = emit(tmp_path, arch="x86_64", strategy="v2622", preempt=True, workload="anon:256KiB")
    side = json.loads((tmp_path / t["files"]["ground_truth"]).read_text())
    # 256 KiB = 64 PTEs in 8-page blocks: 8 block flushes + the final one
    assert side["model"]["tlb_flushes"] == 9
    assert side["events"]["by_reason"]["local mm shootdown"] == 9
    # the snapshot is the longest of the windows listed
    assert side["preemptoff"]["window_ns"] == max(w["dur_ns"] for w in side["windows"])


def test_emission_is_deterministic(tmp_path):
    a = emit(tmp_path / "a", arch="ppc64", strategy="ben2007", preempt=True, workload="anon:64KiB",
             alloc_fail=0.5, seed=3)
    b = emit(tmp_path / "b", arch="ppc64", strategy="ben2007", preempt=True, workload="anon:64KiB",
             alloc_fail=0.5, seed=3)
    for fmt in ("function_graph", "function", "preemptoff", "events"):
        assert (tmp_path / "a" / a["files"][fmt]).read_bytes() == (tmp_path / "b" / b["files"][fmt]).read_bytes()


def test_ppc64_prints_dot_symbols(tmp_path):
    t = emit(tmp_path, arch="ppc64", strategy="v2622", preempt=True, workload="anon:64KiB")
    text = (tmp_path / t["files"]["function_graph"]).read_text()
    assert ".free_pgtables() {" in text and " free_pgtables" not in text


def test_function_tracer_lost_events_round_trip(tmp_path):
    t = emit(tmp_path, arch="ia64", strategy="v2622", preempt=True, workload="anon:1MiB", formats=("function",),
             options=EmitOptions(lost_every=7, lost_run=2))
    text = (tmp_path / t["files"]["function"]).read_text()
    lost_lines = text.count("[LOST 2 EVENTS]")
    assert lost_lines > 0 and t["function"]["lost_events"] == 2 * lost_lines
    res = tracekit.ingest([str(tmp_path / t["files"]["function"])], store=str(tmp_path / "s"), arch="ia64")
    assert res[0].counts["lost_events"] == t["function"]["lost_events"]
    ev = tracekit.open_store(str(tmp_path / "s")).events().filter(pl.col("func").is_not_null()).collect()
    assert dict(ev.group_by("func").agg(pl.len()).iter_rows()) == t["function"]["calls"]


@pytest.mark.parametrize("abstime", [True, False])
def test_interleaved_cpus_round_trip(tmp_path, abstime):
    # the same teardown on CPUs 0, 1 and 2 at once, lines merged by time as the kernel does
    opt = EmitOptions(copies=3, cpu=0, abstime=abstime, proc=True)
    t = emit(tmp_path, arch="x86_64", strategy="v2622", preempt=True, workload="anon:64KiB",
             formats=("function_graph",), options=opt)
    text = (tmp_path / t["files"]["function_graph"]).read_text()
    assert " 0) " in text and " 1) " in text and " 2) " in text
    res = tracekit.ingest([str(tmp_path / t["files"]["function_graph"])], store=str(tmp_path / "s"), arch="x86_64")
    assert res[0].counts["skipped_lines"] == 0
    spans = tracekit.open_store(str(tmp_path / "s")).spans().collect()
    assert spans["complete"].all()
    assert sorted(set(spans["cpu"].to_list())) == [0, 1, 2]
    got = spans.group_by("func").agg(calls=pl.len(), dur_ns_sum=pl.col("dur_ns").sum())
    assert {r["func"]: {"calls": r["calls"], "dur_ns_sum": r["dur_ns_sum"]} for r in got.iter_rows(named=True)} \
        == t["function_graph"]["functions"]
    assert t["function_graph"]["functions"]["exit_mmap"]["calls"] == 3
