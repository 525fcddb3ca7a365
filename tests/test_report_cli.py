"""tracekit report end to end on real captures: the kbuild before/after kernels."""

from __future__ import annotations

import json

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


def test_fail_on_regression(tmp_path):
    # flush_tlb_mm_range: medians 4.161 us (A) -> 4.517 us (B), +8.6% (grep/sort by hand,
    # see test_report_json), and the test rejects "no change".
    r = _run("--patch", "pgfree-lat", "--functions", "flush_tlb_mm_range", "--format", "json",
             "--out", str(tmp_path / "a"), "--fail-on-regression")
    assert r.exit_code == 1, r.output
    assert "regression in x86_64: flush_tlb_mm_range" in r.output
    # Without the flag the same report exits 0.
    r = _run("--patch", "pgfree-lat", "--functions", "flush_tlb_mm_range", "--format", "json",
             "--out", str(tmp_path / "b"))
    assert r.exit_code == 0, r.output
    # up_write gets shorter after (an improvement), which is no reason to fail.
    r = _run("--patch", "pgfree-lat", "--functions", "up_write", "--format", "json",
             "--out", str(tmp_path / "c"), "--fail-on-regression")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "c" / "report.json").read_text())["groups"][0]["results"][0]["verdict"] == "improvement"


def test_unknown_patch_lists_what_exists(tmp_path):
    r = _run("--patch", "no-such-patch", "--out", str(tmp_path))
    assert r.exit_code == 2
    assert "no runs of patch 'no-such-patch'" in r.output
    assert "pgfree-lat (" in r.output
    assert "Traceback" not in r.output


def test_errors_exit_2(tmp_path):
    import tracekit

    r = runner.invoke(app, ["report", "--store", str(tmp_path / "none"), "--patch", "p"])
    assert r.exit_code == 2 and "no store here" in r.output
    tracekit.open_store(tmp_path / "empty")  # a store with no runs yet
    r = runner.invoke(app, ["report", "--store", str(tmp_path / "empty"), "--patch", "p"])
    assert r.exit_code == 2 and "the store is empty" in r.output
    r = _run("--patch", "pgfree-lat", "--before", "nope", "--out", str(tmp_path))
    assert r.exit_code == 2 and "no runs labelled 'nope'" in r.output
    r = _run("--patch", "pgfree-lat", "--format", "pdf", "--out", str(tmp_path))
    assert r.exit_code == 2 and "unknown --format pdf" in r.output
    r = _run("--patch", "pgfree-lat", "--patch-file", str(tmp_path / "missing.patch"), "--out", str(tmp_path))
    assert r.exit_code == 2 and "cannot read" in r.output


def test_help_has_an_example():
    r = runner.invoke(app, ["report", "--help"])
    assert r.exit_code == 0
    assert "tracekit report --patch" in r.output
