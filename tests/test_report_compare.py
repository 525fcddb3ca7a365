"""What the comparison picks from the store: event counts per run, grouping by arch and
kernel configuration, the functions of interest."""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import polars as pl
import pytest

from tracekit.reports.compare import FrameSource, TEARDOWN_FUNCTIONS, compare, open_source
from tracekit.reports.patch import PatchInfo
from tracekit.schema import RUN_SCHEMA, SPAN_SCHEMA, STORED_EVENT_SCHEMA, WINDOW_SCHEMA, conform


@pytest.fixture(scope="module")
def events_store(corpus):
    import tracekit

    root = Path(tempfile.mkdtemp(prefix="tk-report-events-"))
    x86 = corpus / "qemu" / "x86_64-6.1.0-56-preempt-none"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tracekit.ingest([str(x86 / "events.txt")], store=root, patch="ev", label="before", arch="x86_64")
        tracekit.ingest([str(x86 / "function.txt")], store=root, patch="ev", label="after", arch="x86_64")
    return root


def test_tlb_flush_by_reason_and_page_frees(events_store):
    c = compare(open_source(events_store), "ev")
    (g,) = c.groups
    counts = {e.name: (e.before, e.after) for e in g.events}
    # grep -o 'tlb_flush: .*reason:[^(]*' events.txt | sed 's/.*reason://' | sort | uniq -c
    #     64 flush on task switch
    #    161 local mm shootdown
    # grep -c ' mm_page_free_batched:' events.txt -> 13177 (and no plain mm_page_free lines)
    # function.txt (the "after" run) recorded none of these events: no count, not zero.
    assert counts == {
        "tlb_flush: flush on task switch": ([64], []),
        "tlb_flush: local mm shootdown": ([161], []),
        "mm_page_free_batched": ([13177], []),
    }


def _synthetic(configs: list[tuple[str, str, str, dict]]) -> FrameSource:
    """Runs (run_id, label, arch, config), each with 8 calls of exit_mmap."""
    runs, spans = [], []
    for rid, label, arch, cfg in configs:
        runs.append({"run_id": rid, "path": f"/t/{rid}.txt", "arch": arch, "patch": "p", "label": label,
                     "kernel": "6.1", "config": json.dumps(cfg), "format": "function_graph"})
        spans.append(conform(pl.DataFrame({"func": ["exit_mmap"] * 8, "dur_ns": list(range(100, 108)),
                                           "complete": [True] * 8}), SPAN_SCHEMA).with_columns(
            pl.lit("p").alias("patch"), pl.lit(arch).alias("arch"), pl.lit(label).alias("label"), pl.lit(rid).alias("run_id")))
    hive = {"patch": pl.String, "arch": pl.String, "label": pl.String, "run_id": pl.String}
    return FrameSource(
        runs_lf=conform(pl.DataFrame(runs), RUN_SCHEMA).lazy(),
        spans_lf=pl.concat(spans).lazy(),
        events_lf=pl.DataFrame(schema={**STORED_EVENT_SCHEMA, **hive}).lazy(),
        windows_lf=pl.DataFrame(schema={**WINDOW_SCHEMA, **hive}).lazy(),
    )


def test_unstated_config_does_not_split():
    # A function_graph run states no preempt model; the latency runs do.  One group.
    src = _synthetic([("a1", "before", "x86_64", {}), ("a2", "before", "x86_64", {"preempt_model": "full"}),
                      ("b1", "after", "x86_64", {}), ("b2", "after", "x86_64", {"preempt_model": "full"})])
    (g,) = compare(src, "p").groups
    assert g.config is None and g.config_note is None
    assert len(g.runs_before) == 2 and len(g.runs_after) == 2
    assert g.functions[0].before.n == 16 and g.functions[0].runs_before == 2  # pooled


def test_config_differing_between_sides_is_noted():
    src = _synthetic([("a", "before", "x86_64", {"preempt_model": "none"}), ("b", "after", "x86_64", {"preempt_model": "full"})])
    (g,) = compare(src, "p").groups
    assert "preempt_model: before none, after full" in g.config_note


def test_config_on_both_sides_splits_and_arches_group():
    src = _synthetic([
        ("a4", "before", "ppc64", {"page_size": 4096}), ("a64", "before", "ppc64", {"page_size": 65536}),
        ("b4", "after", "ppc64", {"page_size": 4096}), ("b64", "after", "ppc64", {"page_size": 65536}),
        ("ax", "before", "x86_64", {}), ("bx", "after", "x86_64", {}),
    ])
    groups = compare(src, "p").groups
    assert [g.key for g in groups] == ["ppc64 (page_size=4096)", "ppc64 (page_size=65536)", "x86_64"]
    assert [(len(g.runs_before), len(g.runs_after)) for g in groups] == [(1, 1), (1, 1), (1, 1)]


def test_functions_of_interest():
    src = _synthetic([("a", "before", "x86_64", {}), ("b", "after", "x86_64", {})])
    c = compare(src, "p", patch_info=PatchInfo(subject="s", functions=["free_pgtables_unlinked"]))
    assert c.functions_requested[0] == "free_pgtables_unlinked"
    assert c.functions_requested[1:] == list(TEARDOWN_FUNCTIONS)
    assert [f.function for f in c.groups[0].functions] == ["exit_mmap"]  # where present
    c = compare(src, "p", functions=["exit_mmap", "zap_pte_range"])
    assert [f.function for f in c.groups[0].functions] == ["exit_mmap", "zap_pte_range"]
    assert c.functions_missing == ["zap_pte_range"]


def test_model_prediction_hook(monkeypatch):
    import sys
    import types

    from tracekit.reports.render_json import report_dict
    from tracekit.reports.render_text import render_text

    src = _synthetic([("a", "before", "x86_64", {}), ("b", "after", "x86_64", {})])
    # Without tracekit.model.report the report has no prediction and says nothing of one.
    monkeypatch.setitem(sys.modules, "tracekit.model.report", None)  # import fails
    c = compare(src, "p")
    assert c.groups[0].prediction is None and "Model prediction" not in render_text(c)

    hook = types.ModuleType("tracekit.model.report")
    seen = {}

    def predict_for_report(arch, functions, runs_before, runs_after, patch_info, store=None):
        seen.update(arch=arch, functions=functions, n=(len(runs_before), len(runs_after)))
        return {"model": "replay", "note": "n", "rows": [{"function": "exit_mmap", "before_ns": 100.0, "after_ns": 50.0}]}

    hook.predict_for_report = predict_for_report
    monkeypatch.setitem(sys.modules, "tracekit.model.report", hook)
    c = compare(src, "p")
    assert seen == {"arch": "x86_64", "functions": ["exit_mmap"], "n": (1, 1)}
    text = render_text(c)
    assert "Model prediction (replay)" in text and "predicted   -50.0%" in text
    assert report_dict(c)["groups"][0]["prediction"]["rows"][0]["after_ns"] == 50.0
