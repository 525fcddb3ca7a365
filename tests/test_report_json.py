"""report.json: versioned schema, one record per arch and function."""

from __future__ import annotations

import json

import pytest

from _report_store import kbuild_store
from tracekit.reports.compare import compare, open_source
from tracekit.reports.render_json import SCHEMA_VERSION, render_json

SIDE_KEYS = {"n", "median_ns", "p90_ns", "p99_ns", "p999_ns", "max_ns", "mean_ns", "stddev_ns", "runs", "units"}
RESULT_KEYS = {
    "function", "before", "after", "median_change_pct", "median_change_ci_pct", "p99_change_pct",
    "p99_change_ci_pct", "p_value", "p_adjusted", "verdict", "significant", "selection", "source",
}


@pytest.fixture(scope="module")
def report():
    c = compare(open_source(kbuild_store()), "pgfree-lat", functions=["flush_tlb_mm_range", "exit_mmap", "no_such_fn"])
    return json.loads(render_json(c))


def test_schema(report):
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["before_label"] == "before" and report["after_label"] == "after"
    assert report["functions"]["missing"] == ["no_such_fn"]
    assert set(report["method"]) >= {"unit", "alpha", "min_effect_pct", "min_units", "bootstrap_replicates", "seed"}
    (g,) = report["groups"]
    assert g["arch"] == "x86_64"
    assert {r["function"] for r in g["results"]} == {"flush_tlb_mm_range", "exit_mmap", "no_such_fn"}
    for r in g["results"]:
        assert set(r) >= RESULT_KEYS
        assert set(r["before"]) >= SIDE_KEYS and set(r["after"]) >= SIDE_KEYS
        assert r["verdict"] in ("improvement", "regression", "no significant change",
                                "significant, below the 5% threshold", "too few units")
        for k in ("median_change_ci_pct", "p99_change_ci_pct"):
            assert r[k] is None or (len(r[k]) == 2 and r[k][0] <= r[k][1])


def test_values_against_the_trace(report):
    (g,) = report["groups"]
    r = {x["function"]: x for x in g["results"]}["flush_tlb_mm_range"]
    # grep 'flush_tlb_mm_range();' {A,B}/fgraph_exit_mmap.txt | awk -F'|' '{print $3}' |
    # sort -n: 52 calls each; median = mean of the 26th and 27th = 4.161 us (A), 4.517 us
    # (B); max 87.811 us (A), 107.239 us (B).
    assert r["before"]["n"] == 52 and r["after"]["n"] == 52
    assert r["before"]["median_ns"] == pytest.approx(4161)
    assert r["after"]["median_ns"] == pytest.approx(4517)
    assert r["before"]["max_ns"] == 87811 and r["after"]["max_ns"] == 107239
    assert r["median_change_pct"] == pytest.approx((4517 - 4161) / 4161 * 100)  # +8.56%
    assert r["before"]["runs"] == 1 and r["before"]["units"] == 1
    # One run a side: every call of it is one sample of one unit; no verdict.
    assert r["verdict"] == "too few units" and r["p_value"] is None and not r["significant"]
    assert r["selection"]["runs"]["before"] and r["source"] == "function_graph"
    missing = {x["function"]: x for x in g["results"]}["no_such_fn"]
    assert missing["before"]["n"] == 0 and missing["before"]["median_ns"] is None
    assert missing["verdict"] == "too few units"


def test_json_has_no_nan(report):
    text = json.dumps(report)
    assert "NaN" not in text and "Infinity" not in text


def test_reports_are_reproducible(tmp_path):
    # Seeded bootstrap, no timestamps: the same store gives the same bytes.
    from tracekit.reports.report import write_report

    outs = []
    for name in ("one", "two"):
        r = write_report("pgfree-lat", store=kbuild_store(), out_dir=tmp_path / name, formats="text,json",
                         functions=["exit_mmap", "free_pgtables"])
        outs.append((r.files["text"].read_bytes(), r.files["json"].read_bytes()))
    assert outs[0] == outs[1]


def test_report_matches_the_schema(report, report_schema):
    import jsonschema

    jsonschema.validate(report, report_schema)
    broken = json.loads(json.dumps(report))
    broken["groups"][0]["results"][0]["verdict"] = "too few samples"  # the old word
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, report_schema)
