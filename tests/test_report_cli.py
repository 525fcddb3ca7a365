"""tracekit report end to end on real captures: the kbuild before/after kernels."""

from __future__ import annotations

import json

import pytest

from typer.testing import CliRunner

from _report_store import PATCH_0001, kbuild_store, latency_format_available
from tracekit.cli import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["report", "--store", str(kbuild_store()), *args])


def test_report_end_to_end(tmp_path):
    out = tmp_path / "rep"
    r = _run("--patch", "pgfree-lat", "--patch-file", str(PATCH_0001), "--out", str(out),
             "--format", "text,json,html", "--functions", "exit_mmap")
    assert r.exit_code == 0, r.output
    assert {p.name for p in out.iterdir()} >= {"report.txt", "report.json", "report.html", "plots"}
    assert not (out / "report.md").exists()
    text = (out / "report.txt").read_text()
    assert text in r.stdout  # printed as well
    assert "mm: re-enact non-preemptible pagetable freeing in" in text
    data = json.loads((out / "report.json").read_text())
    res = {x["function"]: x for x in data["groups"][0]["results"]}
    # grep -c 'exit_mmap() {' in {A,B}/fgraph_exit_mmap.txt: 52 each
    assert res["exit_mmap"]["before"]["n"] == 52 and res["exit_mmap"]["after"]["n"] == 52
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(list((out / "plots").glob("*.png")))
    if latency_format_available():
        (w,) = data["groups"][0]["windows"]
        # "# latency:" headers: A runs 11574, 11203, 11193 us; B runs 390, 1441, 749 us.
        assert w["before"]["latencies_ns"] == [11574000, 11203000, 11193000]
        assert w["after"]["latencies_ns"] == [1441000, 749000, 390000]
        assert w["before"]["started_at"] == "exit_mmap" and w["before"]["ended_at"] == "exit_mmap"
        assert w["after"]["started_at"] == "preempt_schedule_thunk" and w["after"]["ended_at"] == "pipe_read"
        assert len(data["groups"][0]["runs"]["before"]) == 4


def test_one_boot_a_side_is_no_reason_to_fail(tmp_path):
    # flush_tlb_mm_range: medians 4.161 us (A) -> 4.517 us (B), +8.6% over 1 run a side:
    # once a "regression" of every call taken as a sample, now no verdict.
    r = _run("--patch", "pgfree-lat", "--functions", "flush_tlb_mm_range", "--format", "json",
             "--out", str(tmp_path / "a"), "--fail-on-regression")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "a" / "report.json").read_text())["groups"][0]["results"][0]
    assert res["verdict"] == "too few units" and res["significant"] is False
    assert res["before"]["units"] == 1 and res["after"]["units"] == 1


def test_fail_on_regression(tmp_path):
    from _report_store import boots_store

    # Five boots a side, each boot's free_pgtables median 100, 110, 105, 95, 102 us before
    # and 150, 160, 155, 149, 170 us after: fully separated, exact p = 2/252.
    store = boots_store(tmp_path, {"before": [100, 110, 105, 95, 102], "after": [150, 160, 155, 149, 170]})
    args = ["report", "--store", str(store), "--patch", "synthetic", "--functions", "free_pgtables",
            "--under", "exit_mmap", "--format", "json"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "a"), "--fail-on-regression"])
    assert r.exit_code == 1, r.output
    assert "regression in x86_64: free_pgtables" in r.output
    res = json.loads((tmp_path / "a" / "report.json").read_text())["groups"][0]["results"][0]
    # medians over the boots: 102 -> 155 us, +51.96%
    assert res["before"]["unit_median_ns"] == 102000 and res["after"]["unit_median_ns"] == 155000
    assert res["median_change_pct"] == pytest.approx((155 - 102) / 102 * 100)
    assert res["p_value"] == pytest.approx(2 / 252) and res["verdict"] == "regression"
    assert res["selection"]["under"] == "exit_mmap" and res["before"]["n"] == 35
    # Without the flag the same report exits 0.
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
