"""``tracekit model``: JSON output, --compare, --costs, and errors (exit 2, no traceback).

Figures are the worked example of docs/model.md#worked-examples (x86_64, 1 GiB anon,
exit_mmap), derived by hand there: 770 flushes (!PREEMPT), 262,144 data pages, 514
page-table pages.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tracekit.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["model", *args])


def test_json_worked_example():
    r = invoke("--arch", "x86_64", "--strategy", "v2622", "--no-preempt", "--workload", "anon:1GiB",
               "--op", "exit_mmap", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["tlb_flushes"] == 770
    assert d["pages_freed"] == 262_144
    assert d["pagetable_pages_freed"] == 514
    assert d["flushes_by_cause"] == {"batch_full": 513, "block_end": 256, "final": 1}
    assert "max_resched_gap_ns" in d and d["max_resched_gap_ns"] > 0
    assert "max_preempt_off_ns" not in d


def test_json_preempt_key():
    r = invoke("--strategy", "v2622", "--preempt", "--workload", "anon:1GiB", "--json")
    d = json.loads(r.output)
    assert d["tlb_flushes"] == 32_770
    assert d["max_preempt_off_ns"] == d["windows"]["max_ns"] > 0


def test_alloc_fail_and_fallback_entries():
    r = invoke("--strategy", "ben2007", "--preempt", "--alloc-fail", "always", "--fallback-entries", "4",
               "--json")
    assert json.loads(r.output)["tlb_flushes"] == 65_665  # docs/model.md#worked-examples, N = 4


def test_compare_json_has_every_strategy():
    r = invoke("--preempt", "--compare", "--workload", "anon:64MiB", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert [x["strategy"] for x in d["results"]] == ["v2622", "hugh2007", "ben2007", "merged30", "v38", "modern"]
    # 64 MiB = 16,384 PTEs: v2622 PREEMPT 2,048 blocks + final; merged30 one flush
    by = {x["strategy"]: x["tlb_flushes"] for x in d["results"]}
    assert by["v2622"] == 2_048 + 1 and by["merged30"] == 1


def test_table_output_is_readable():
    r = invoke("--preempt", "--compare", "--workload", "anon:8MiB")
    assert r.exit_code == 0
    assert "TLB flushes" in r.output and "modern" in r.output


def test_costs_file_changes_times_not_counts(tmp_path):
    base = json.loads(invoke("--strategy", "v2622", "--no-preempt", "--json").output)
    f = tmp_path / "costs.toml"
    f.write_text("pte_anon = 600\npage_free = 9\n")
    r = invoke("--strategy", "v2622", "--no-preempt", "--json", "--costs", str(f))
    d = json.loads(r.output)
    assert d["tlb_flushes"] == base["tlb_flushes"]
    assert d["total_ns"] != base["total_ns"]
    j = tmp_path / "costs.json"
    j.write_text(json.dumps({"pte_anon": 600, "page_free": 9}))
    assert json.loads(invoke("--strategy", "v2622", "--no-preempt", "--json", "--costs", str(j)).output)[
        "total_ns"] == d["total_ns"]


def test_errors_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"pte_anx": 3}')
    cases = [
        ("--strategy", "v2622", "--preempt", "--workload", "anon:1GiB:density=2"),
        ("--strategy", "v2622", "--preempt", "--workload", "heap:1GiB"),
        ("--strategy", "v2622", "--preempt", "--workload", "anon:12345"),
        ("--strategy", "nope", "--preempt"),
        ("--arch", "sparc", "--strategy", "v2622", "--preempt"),
        ("--strategy", "v2622"),  # neither --preempt nor --no-preempt
        ("--strategy", "ben2007", "--preempt", "--alloc-fail", "sometimes"),
        ("--strategy", "v2622", "--preempt", "--costs", str(bad)),
        ("--strategy", "v2622", "--preempt", "--costs", str(tmp_path / "missing.toml")),
        ("--strategy", "v2622", "--preempt", "--op", "truncate"),
    ]
    for args in cases:
        r = invoke(*args)
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output
        assert r.exception is None or isinstance(r.exception, SystemExit), args


def test_help_has_an_example():
    r = invoke("--help")
    assert r.exit_code == 0
    assert "tracekit model --arch" in r.output


def test_emit_writes_traces_and_ground_truth(tmp_path):
    r = invoke("--arch", "ppc64", "--strategy", "v2622", "--preempt", "--workload", "anon:64KiB",
               "--emit", str(tmp_path), "--emit-options", "abstime,tail", "--json")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(f"ppc64-v2622-preempt.{x}" for x in (
        "function_graph.txt", "function.txt", "preemptoff.txt", "events.txt", "ground-truth.json"))
    side = json.loads((tmp_path / "ppc64-v2622-preempt.ground-truth.json").read_text())
    # 64 KiB = 16 PTEs in 8-page blocks: 2 block flushes + the final one
    assert side["model"]["tlb_flushes"] == 3
    assert "} /* .zap_pte_range */" in (tmp_path / "ppc64-v2622-preempt.function_graph.txt").read_text()


def test_emit_tracedat_option(tmp_path):
    r = invoke("--arch", "x86_64", "--strategy", "v2622", "--preempt", "--workload", "anon:64KiB",
               "--emit", str(tmp_path), "--emit-options", "tracedat")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "x86_64-v2622-preempt.le.trace.dat").read_bytes()[:10] == b"\x17\x08Dtracing"
    assert (tmp_path / "x86_64-v2622-preempt.be.trace.dat").exists()


def test_emit_errors(tmp_path):
    assert invoke("--compare", "--preempt", "--emit", str(tmp_path)).exit_code == 2
    assert invoke("--strategy", "v2622", "--preempt", "--emit", str(tmp_path), "--emit-options", "x").exit_code == 2
