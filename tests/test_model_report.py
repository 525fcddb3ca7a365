"""The report hook: a prediction only when a report profile names the arch; per-call
before/after times and the worst window from the model."""

from __future__ import annotations

import json

import pytest

from tracekit.model.report import PROFILE_ENV, predict_for_report

FUNCS = ["exit_mmap", "unmap_vmas", "free_pgtables", "tlb_finish_mmu", "no_such_function"]


def test_no_profile_no_prediction(monkeypatch):
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert predict_for_report("x86_64", FUNCS, [], [], None) is None


def test_prediction_from_profile(monkeypatch, tmp_path):
    (tmp_path / "costs.json").write_text(json.dumps({"page_free": 50}))
    prof = tmp_path / "model.json"
    prof.write_text(json.dumps({"x86_64": {"before": "v2622", "after": "modern", "preempt": True,
                                           "workload": "anon:64MiB", "costs": "costs.json"}}))
    monkeypatch.setenv(PROFILE_ENV, str(prof))
    p = predict_for_report("x86_64", FUNCS, [], [], None)
    # tlb_finish_mmu: once per 8-PTE block under v2622, once under modern -> not compared
    assert [r["function"] for r in p["rows"]] == ["exit_mmap", "unmap_vmas", "free_pgtables"]
    w = p["windows"]["preemptoff"]
    # v2622 PREEMPT holds all of free_pgtables in one window; modern only single PTEs
    assert w["before"]["worst_ns"] > 5 * w["after"]["worst_ns"]
    # no runs: nothing measured beside it
    assert w["before"]["measured_worst_ns"] is None and w["before"]["error_pct"] is None
    # 64 MiB: 16,384 PTEs -> 2,048 blocks + the final flush, against modern's one
    assert "2,049 -> 2" in p["note"]
    assert predict_for_report("ppc64", FUNCS, [], [], None) is None  # no entry for the arch


def test_bad_profile_is_an_error(monkeypatch, tmp_path):
    prof = tmp_path / "model.json"
    prof.write_text(json.dumps({"x86_64": {"before": "v2622"}}))
    monkeypatch.setenv(PROFILE_ENV, str(prof))
    with pytest.raises(ValueError, match="needs 'after'"):
        predict_for_report("x86_64", FUNCS, [], [], None)
