"""Boots as the unit of replication, end to end on real captures: one boot a side gives
numbers and no verdict; windows and calls of several boots a side give one; a baseline is
compared with several sides in one table; calls can be restricted to those under a caller."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import tracekit
from _report_store import boots_store, latency_format_available
from tracekit.reports.compare import compare, open_source
from tracekit.reports.render_text import render_text
from tracekit.reports.report import write_report

TRACES = ("fgraph_exit_mmap.txt.gz", "fgraph_teardown.txt.gz", "function.txt.gz", "events.txt.gz", "kprobes.txt.gz")


def _ingest_pair(fixtures_dir: Path, store: Path, arch: str, patch: str, boot: bool) -> None:
    for side in ("before", "after"):
        d = fixtures_dir / arch / side
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = tracekit.ingest([str(d / t) for t in TRACES], store=store, patch=patch, label=side, arch=arch,
                                  boot=f"{arch}-{side}" if boot else None)
        assert not [r.error for r in res if r.error]


@pytest.fixture(scope="module")
def ppc_store(tmp_path_factory, fixtures_dir):
    store = tmp_path_factory.mktemp("ppc") / "store"
    _ingest_pair(fixtures_dir, store, "ppc64le", "ppc-kernel-update", boot=True)
    return store


def test_ppc64le_one_boot_a_side_gives_no_verdict(ppc_store, tmp_path):
    # fixtures/ppc64le: one boot of 6.1.0-47 against one boot of 6.1.0-50.  Per call,
    # free_pgtables once came out "+74%, p=0.003, regression"; one boot a side cannot say.
    r = write_report("ppc-kernel-update", store=ppc_store, out_dir=tmp_path / "rep", formats="text,json")
    data = json.loads(r.files["json"].read_text())
    (g,) = data["groups"]
    assert g["units"]["before"] == ["ppc64le-before"] and g["units"]["after"] == ["ppc64le-after"]
    assert g["results"] and all(x["verdict"] == "too few units" and not x["significant"] for x in g["results"])
    assert not data["any_regression"]
    fp = {x["function"]: x for x in g["results"]}["free_pgtables"]
    assert fp["before"]["units"] == 1 and fp["before"]["n"] > 6 and fp["p_value"] is None
    flat = " ".join(r.text.split())
    assert "One boot a side cannot tell the patch from boot-to-boot variation: a verdict needs at least" in flat
    assert "regression" not in r.text.split("Method:")[0]


def test_ppc64le_reports_the_tracer_it_did_not_compare(ppc_store):
    # free_pgtables is traced by function_graph (two files) and by a kprobe pair: the
    # report compares one and says what the other says.
    c = compare(open_source(ppc_store), "ppc-kernel-update", functions=["free_pgtables"])
    (f,) = c.groups[0].functions
    assert f.source == "function_graph" and "most calls" in f.source_reason
    others = {o.source: o for o in f.other_sources}
    assert "kprobe" in others and others["kprobe"].units == {"before": 1, "after": 1}
    assert "kprobe also traced it" in " ".join(render_text(c).split())


def test_x86_64_preempt_none_against_full_gives_no_verdict(tmp_path, fixtures_dir):
    # One Debian kernel booted preempt=none and preempt=full, one capture each: exit_mmap
    # was "significant" per call.  Ingested without --boot each trace file is its own
    # unit: function_graph traced exit_mmap in two files a side, and 2 against 2 can never
    # reach p < 0.05 (2/C(4,2) = 0.33).
    store = tmp_path / "store"
    _ingest_pair(fixtures_dir, store, "x86_64", "preempt-none-to-full", boot=False)
    c = compare(open_source(store), "preempt-none-to-full", functions=["exit_mmap"])
    (f,) = c.groups[0].functions
    assert f.verdict == "too few units" and f.change.units_before == 2 and f.change.units_after == 2
    assert "The exact rank test on 2 against 2 runs cannot reach p<0.05" in " ".join(render_text(c).split())


_SNAPSHOT = """\
# tracer: preemptoff
#
# preemptoff latency trace v1.1.5 on 6.1.192-tk{side}
# --------------------------------------------------------------------
# latency: {lat} us, #4/4, CPU#0 | (M:preempt VP:0, KP:0, SP:0 HP:0 #P:1)
#    -----------------
#    | task: pgtfree2-{pid} (uid:0 nice:0 policy:0 rt_prio:0)
#    -----------------
#  => started at: {func}
#  => ended at:   {func}
#
#
#                    _------=> CPU#
#                   / _-----=> irqs-off/BH-disabled
#                  | / _----=> need-resched
#                  || / _---=> hardirq/softirq
#                  ||| / _--=> preempt-depth
#                  |||| / _-=> migrate-disable
#                  ||||| /     delay
#  cmd     pid     |||||| time  |   caller
#     \\   /        ||||||  \\    |    /
pgtfree2-{pid}       0...1.    0us*: {func} <-{func}
pgtfree2-{pid}       0...1. {end:5d}us : {func} <-{func}
pgtfree2-{pid}       0...1. {after:5d}us+: tracer_preempt_on <-{func}
pgtfree2-{pid}       0...1. {after:5d}us : <stack trace>
 => mmput
 => do_exit
"""


def test_five_windows_a_side_fully_apart_are_an_improvement(tmp_path):
    """The corpus' seed kernels have three preemptoff snapshots a side, of one boot each
    (corpus/kbuild-x86_64-6.1.192: run1..3; test_report_text shows they give no verdict,
    p = 0.1 at best).  Five runs a side in the kernel's snapshot format, with the corpus'
    ranges (before 10.9-11.6 ms in exit_mmap, after 0.39-1.44 ms), each run its own unit:
    fully apart, exact p = 2/252 = 0.0079."""
    if not latency_format_available():
        pytest.skip("the latency-tracer parser is not registered")
    sides = {"before": ("A", "exit_mmap", [11574, 11203, 11193, 10905, 10983]),
             "after": ("B", "free_unref_page_list", [749, 1441, 390, 340, 360])}
    for label, (tag, func, lats) in sides.items():
        paths = []
        for i, lat in enumerate(lats):
            p = tmp_path / label / f"latency_preemptoff.run{i + 1}.txt"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(_SNAPSHOT.format(side=tag, lat=lat, pid=150 + i, func=func, end=lat - 6, after=lat + 4))
            paths.append(str(p))
        res = tracekit.ingest(paths, store=tmp_path / "store", patch="seed", label=label, arch="x86_64")
        assert not [r.error for r in res if r.error]
    r = write_report("seed", store=tmp_path / "store", out_dir=tmp_path / "rep", formats="text,json,md")
    (w,) = json.loads(r.files["json"].read_text())["groups"][0]["windows"]
    assert w["before"]["units"] == 5 and w["after"]["units"] == 5
    ch = w["change"]
    assert ch["p_value"] == pytest.approx(2 / 252) and ch["verdict"] == "improvement" and ch["significant"]
    # medians of the runs' worst windows: 11193 us and 390 us
    assert ch["median_change_pct"] == pytest.approx((390 - 11193) / 11193 * 100)
    assert "improvement: median of the runs' worst windows 11.19ms -> 390.0us" in " ".join(r.text.split())


def test_calls_under_a_caller(tmp_path):
    # Each boot: 7 calls of free_pgtables inside exit_mmap and 1 inside unmap_region.
    store = boots_store(tmp_path, {"before": [100, 110], "after": [120, 130]})
    st = tracekit.open_store(store)
    assert st.calls("free_pgtables").collect().height == 32
    assert st.calls("free_pgtables", under="exit_mmap").collect().height == 28
    under = st.calls("free_pgtables", under="unmap_region", label="before").collect()
    # the unmap_region calls take ten times the boot's median: 1000 and 1100 us
    assert sorted(under["dur_ns"].to_list()) == [1_000_000, 1_100_000]
    assert set(under["unit"].to_list()) == {"before-boot0", "before-boot1"}


def test_baseline_against_several_sides(tmp_path):
    # Five boots each: v1 is +50% fully apart, v2 interleaves with the baseline.
    store = boots_store(tmp_path, {"before": [100, 110, 105, 95, 102], "v1": [150, 160, 155, 149, 170],
                                   "v2": [101, 96, 108, 104, 99]})
    r = write_report("synthetic", store=store, out_dir=tmp_path / "rep", before="before", after=["v1", "v2"],
                     functions=["free_pgtables"], under="exit_mmap", formats="text,json,md,html")
    data = json.loads(r.files["json"].read_text())
    assert [s["name"] for s in data["sides"]] == ["before", "v1", "v2"]
    res = {x["against"]: x for x in data["groups"][0]["results"]}
    assert res["v1"]["verdict"] == "regression" and res["v1"]["p_value"] == pytest.approx(2 / 252)
    assert res["v2"]["verdict"] == "no significant change"
    # medians of the boots: 102 (before), 155 (v1), 101 (v2)
    assert res["v2"]["median_change_pct"] == pytest.approx((101 - 102) / 102 * 100)
    t = r.text
    assert "v1 against before:" in t and "v2 against before:" in t
    rows = [ln.split() for ln in t.splitlines()]
    assert ["before", "5", "35", "102.0us"] in [x[:4] for x in rows]
    assert ["v1", "5", "35", "155.0us"] in [x[:4] for x in rows]
    assert ["v2", "5", "35", "101.0us"] in [x[:4] for x in rows]
    # the benchstat-style table: each side's median over its boots, and its change
    assert ["free_pgtables", "102.0us", "155.0us", "+52.0%", "101.0us", "~"] in rows


def test_cli_baseline_compare(tmp_path):
    from typer.testing import CliRunner

    from tracekit.cli import app

    store = boots_store(tmp_path, {"before": [100, 110, 105, 95, 102], "v1": [150, 160, 155, 149, 170],
                                   "v2": [101, 96, 108, 104, 99]})
    out = tmp_path / "rep"
    r = CliRunner().invoke(app, ["report", "--store", str(store), "--patch", "synthetic", "--baseline", "before",
                                 "--compare", "v1,v2", "--functions", "free_pgtables", "--under", "exit_mmap",
                                 "--out", str(out), "--fail-on-regression"])
    assert r.exit_code == 1 and "regression in x86_64: free_pgtables (v1)" in r.output
    assert "tracekit report: patch synthetic, before vs v1 vs v2" in r.output


def test_a_trace_shared_by_two_patches_appears_in_both_reports(tmp_path):
    store = tmp_path / "store"
    medians = {"before": [100, 110, 105, 95, 102]}
    boots_store(tmp_path / "a", {**medians, "after": [150, 160, 155, 149, 170]}, patch="fix-a")
    base = sorted((tmp_path / "a" / "traces").glob("before-*.txt"))
    for p in sorted((tmp_path / "a" / "traces").glob("*.txt")):
        label = p.name.split("-")[0]
        tracekit.ingest([str(p)], store=store, patch="fix-a", label=label, arch="x86_64", boot=p.stem)
    # the same baseline traces, now also the baseline of fix-b
    res = tracekit.ingest([str(p) for p in base], store=store, patch="fix-b", label="before", arch="x86_64")
    assert all(r.status != "failed" for r in res)
    boots_store(tmp_path / "b", {"after": [101, 96, 108, 104, 99]}, patch="fix-b")
    for p in sorted((tmp_path / "b" / "traces").glob("after-*.txt")):
        tracekit.ingest([str(p)], store=store, patch="fix-b", label="after", arch="x86_64", boot="b-" + p.stem)
    for patch in ("fix-a", "fix-b"):
        c = compare(open_source(store), patch, functions=["free_pgtables"], under="exit_mmap")
        (f,) = c.groups[0].functions
        assert f.change.units_before == 5 and f.before.n == 35


def test_several_patches_against_one_baseline(tmp_path):
    # Patch A has the baseline and its own "after"; patch B only an "after".
    store = boots_store(tmp_path, {"before": [100, 110, 105, 95, 102], "after": [150, 160, 155, 149, 170]}, patch="A")
    boots_store(tmp_path, {"after": [101, 96, 108, 104, 99]}, patch="B")
    c = compare(open_source(store), ["A", "B"], before="before", after="after", functions=["free_pgtables"],
                under="exit_mmap")
    assert [s.name for s in c.sides] == ["A:before", "A:after", "B:after"]
    res = {f.against: f for f in c.groups[0].functions}
    assert res["A:after"].verdict == "regression" and res["B:after"].verdict == "no significant change"
    assert res["B:after"].change.unit_median_before_ns == 102_000  # A's baseline
    assert "tracekit report: patch A,B, A:before vs A:after vs B:after" in render_text(c)
