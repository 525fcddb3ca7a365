"""Report profiles in the store: tracekit calibrate writes <store>/model/<patch>/<arch>.json
and tracekit report prints the model's prediction from it, with no environment variable;
$TRACEKIT_MODEL_PROFILE still overrides."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

import tracekit
from tracekit.cli import app
from tracekit.model.report import (
    PROFILE_ENV,
    find_store_profile,
    predict_for_report,
    save_store_profile,
    store_profile_path,
)

FUNCS = ["exit_mmap", "unmap_vmas", "free_pgtables", "tlb_finish_mmu"]
# small enough to keep the test fast; the kbuild children hold far more (PROVENANCE.md)
WL = "anon:16MiB"


@pytest.fixture(scope="module")
def seed_store(corpus, tmp_path_factory):
    """kbuild-x86_64-6.1.192: A (free_pgtables non-preemptible) before, B (6.1 as is) after,
    both under patch "seed"."""
    store = tmp_path_factory.mktemp("seed") / "store"
    ids = {}
    for side, label in (("A", "before"), ("B", "after")):
        path = corpus / "kbuild-x86_64-6.1.192" / side / "fgraph_exit_mmap.txt"
        ids[label] = tracekit.ingest([str(path)], store=str(store), patch="seed", label=label,
                                     arch="x86_64")[0].run_id
    return store, ids


def test_save_is_atomic_and_named_by_patch_and_arch(tmp_path):
    entry = {"before": "v2622", "after": "modern", "preempt": True, "workload": WL}
    p = save_store_profile(tmp_path, "mm/fix: a b", "x86_64", entry)
    # the store's partition spelling: '/', ':' and ' ' become '_'
    assert p == tmp_path / "model" / "mm_fix__a_b" / "x86_64.json" == store_profile_path(tmp_path, "mm/fix: a b", "x86_64")
    assert json.loads(p.read_text())["before"] == "v2622"
    save_store_profile(tmp_path, "mm/fix: a b", "x86_64", {**entry, "before": "hugh2007"})
    assert json.loads(p.read_text())["before"] == "hugh2007"
    assert [q.name for q in p.parent.iterdir()] == ["x86_64.json"]  # no temporary left behind
    with pytest.raises(ValueError, match="needs 'workload'"):
        save_store_profile(tmp_path, "p", "x86_64", {"before": "v2622", "after": "modern"})


def test_calibrate_then_report(seed_store, tmp_path, monkeypatch):
    store, ids = seed_store
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    runner = CliRunner()
    r = runner.invoke(app, ["calibrate", "--store", str(store), "--run", ids["after"][:8], "--workload", WL,
                            "--before", "v2622", "--after", "modern"])
    assert r.exit_code == 0, r.output
    prof = store / "model" / "seed" / "x86_64.json"
    assert str(prof) in r.output
    entry = json.loads(prof.read_text())
    assert (entry["before"], entry["after"], entry["preempt"], entry["workload"]) == ("v2622", "modern", True, WL)
    assert entry["calibrated_from"]["run_id"] == ids["after"]
    assert entry["calibrated_from"]["exits"] == 52  # grep -c 'exit_mmap() {' B/fgraph_exit_mmap.txt
    assert set(entry["costs"]) >= {"pte_anon", "page_free", "pt_free"}

    out = tmp_path / "rep"
    r = runner.invoke(app, ["report", "--store", str(store), "--patch", "seed", "--out", str(out), "--format", "text,md,json", "-q"])
    assert r.exit_code == 0, r.output
    text = (out / "report.txt").read_text()
    md = (out / "report.md").read_text()
    assert "| preemptoff before | " in md and "| preemptoff after | " in md and "not measured" in md
    assert "Model prediction (tracekit.model v2622 -> modern)" in text
    # 16 MiB = 4096 PTEs: v2622 PREEMPT flushes at every 8-PTE ZAP_BLOCK end (512) and once more at the end
    assert "TLB flushes 513 -> " in text
    assert f"fitted to function_graph spans, run {ids['after'][:8]} (after)" in " ".join(text.split())
    # the worst window each side is predicted to have, and that no latency tracer measured it
    assert "worst preemptoff before: predicted" in text and "(v2622, ends in" in text
    assert "worst preemptoff after: predicted" in text and "not measured" in text
    pred = json.loads((out / "report.json").read_text())["groups"][0]["prediction"]
    assert pred["model"] == "tracekit.model v2622 -> modern"
    assert {row["function"] for row in pred["rows"]} >= {"exit_mmap", "unmap_vmas", "free_pgtables"}
    w = pred["windows"]["preemptoff"]
    # v2622 PREEMPT: all of free_pgtables in one preempt-off window; modern: never more than a PTE's work
    assert w["before"]["worst_ns"] > 10 * w["after"]["worst_ns"]


def test_hook_is_given_the_store(seed_store, monkeypatch, tmp_path):
    store, ids = seed_store
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    monkeypatch.setenv("TRACEKIT_STORE", str(tmp_path / "elsewhere"))
    save_store_profile(store, "seed", "x86_64", {"before": "v2622", "after": "modern", "preempt": True,
                                                 "workload": WL})
    runs = [{"run_id": ids["before"]}], [{"run_id": ids["after"]}]
    # not in $TRACEKIT_STORE: the runs are not there, so neither is a profile
    assert predict_for_report("x86_64", FUNCS, *runs, None) is None
    p = predict_for_report("x86_64", FUNCS, *runs, None, store=store)
    assert p["model"] == "tracekit.model v2622 -> modern" and "from x86_64.json" in p["note"]
    # a store that does not hold the runs offers no profile
    assert find_store_profile("x86_64", ["0123456789abcdef"], store) is None
    assert find_store_profile("ppc64", [ids["before"]], store) is None  # no profile for the arch


def test_environment_overrides_the_store(seed_store, monkeypatch, tmp_path):
    store, ids = seed_store
    save_store_profile(store, "seed", "x86_64", {"before": "v2622", "after": "modern", "workload": WL})
    env_prof = tmp_path / "model.json"
    env_prof.write_text(json.dumps({"x86_64": {"before": "hugh2007", "after": "ben2007", "workload": WL}}))
    monkeypatch.setenv(PROFILE_ENV, str(env_prof))
    p = predict_for_report("x86_64", FUNCS, [{"run_id": ids["before"]}], [], None, store=store)
    assert p["model"] == "tracekit.model hugh2007 -> ben2007"


def test_broken_store_profile_is_an_error(seed_store, monkeypatch):
    store, ids = seed_store
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    f = store_profile_path(store, "seed", "x86_64")
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text('{"before": "v2622", "after": "modern"}')
    with pytest.raises(ValueError, match="needs 'workload'"):
        predict_for_report("x86_64", FUNCS, [{"run_id": ids["before"]}], [], None, store=store)
    f.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the model report profile"):
        predict_for_report("x86_64", FUNCS, [{"run_id": ids["before"]}], [], None, store=store)
    f.unlink()


def test_no_save(seed_store, tmp_path):
    store, ids = seed_store
    st = tmp_path / "copy"
    rid = tracekit.ingest([str(tracekit.open_store(str(store)).runs().filter(pl.col("run_id") == ids["after"])
                               .select("path").collect().item())], store=str(st), patch="p", label="after",
                          arch="x86_64")[0].run_id
    r = CliRunner().invoke(app, ["calibrate", "--store", str(st), "--run", rid[:8], "--workload", WL, "--no-save"])
    assert r.exit_code == 0, r.output
    assert not (st / "model").exists()


def test_captured_pair_predicts_with_the_model_arch(tmp_path, monkeypatch):
    """fixtures/ppc64le before/after were made by tracekit capture: calibrate needs no
    --workload, and the report's ppc64le group is replayed as the model's ppc64-64k."""
    from pathlib import Path

    from tracekit.capture.runner import read_workload_meta

    monkeypatch.delenv(PROFILE_ENV, raising=False)
    fixtures = Path(__file__).resolve().parent.parent / "fixtures" / "ppc64le"
    store = tmp_path / "s"
    ids = {}
    for label in ("before", "after"):
        d = fixtures / label
        cap = json.loads((d / "capture.json").read_text())
        ids[label] = tracekit.ingest([str(d / "fgraph_exit_mmap.txt.gz")], store=str(store), patch="ppc-update",
                                     label=label, arch=cap["arch"], kernel=cap["kernel_release"],
                                     preempt=cap["preempt"],
                                     extra_meta={"capture": cap,
                                                 "workload_mm": read_workload_meta(d / "workload.meta.txt")}
                                     )[0].run_id
    r = CliRunner().invoke(app, ["calibrate", "--store", str(store), "--run", ids["after"][:8], "--arch", "ppc64-64k",
                                 "--before", "v2622", "--after", "modern"])
    assert r.exit_code == 0, r.output
    entry = json.loads((store / "model" / "ppc-update" / "ppc64le.json").read_text())
    # pgtfree:forks=10,mb=64 -> the upper 32 MiB; "voluntary" is !CONFIG_PREEMPT
    assert entry["workload"] == "anon:32768KiB:at=0x40010000" and entry["preempt"] is False
    assert entry["model_arch"] == "ppc64-64k" and entry["workload_from"] == "capture pgtfree:forks=10,mb=64,loops=3"
    p = predict_for_report("ppc64le", FUNCS, [{"run_id": ids["before"]}], [{"run_id": ids["after"]}], None,
                           store=store)
    assert p["model"] == "tracekit.model v2622 -> modern (ppc64-64k)"
    assert list(p["windows"]) == ["resched_gap"]


def test_prediction_beside_the_measured_worst_windows(corpus, tmp_path, monkeypatch):
    """The seed's latency snapshots: A (free_pgtables non-preemptible) 11574, 11203 and
    11193 us, B (6.1 as is) 749, 1441 and 390 us ("# latency:" headers).  Runs without a
    boot id are units of their own: medians 11203 and 749 us; the three runs of one boot
    are one unit, its worst 11574 us."""
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    store = tmp_path / "store"
    seed = corpus / "kbuild-x86_64-6.1.192"
    runs = {}
    for side, label in (("A", "before"), ("B", "after")):
        files = [str(seed / side / f"latency_preemptoff.run{i}.txt") for i in (1, 2, 3)]
        runs[label] = [{"run_id": r.run_id} for r in tracekit.ingest(files, store=str(store), patch="seed",
                                                                     label=label, arch="x86_64")]
    entry = {"before": "modern-np-pgfree", "after": "modern", "preempt": True,
             "workload": "anon:64GiB:density=0.001953125:at=0x40001000,anon:131072KiB"}
    save_store_profile(store, "seed", "x86_64", entry)
    p = predict_for_report("x86_64", FUNCS, runs["before"], runs["after"], None, store=store)
    w = p["windows"]["preemptoff"]
    assert (w["before"]["measured_worst_ns"], w["before"]["boots"]) == (11203000, 3)
    assert w["before"]["measured_worst_by_boot_ns"] == [11193000, 11203000, 11574000]
    # "=> started at: / ended at:" of A's snapshots
    assert w["before"]["measured_where"] == ["exit_mmap .. exit_mmap"]
    assert (w["after"]["measured_worst_ns"], w["after"]["boots"]) == (749000, 3)
    assert w["before"]["strategy"] == "modern-np-pgfree" and w["before"]["ended_in"] == "exit_mmap"
    pred = w["before"]["worst_ns"]
    assert w["before"]["error_pct"] == round(100 * (pred - 11203000) / 11203000, 1)
    # one boot id shared by the three runs: one unit
    store2 = tmp_path / "store2"
    files = [str(seed / "A" / f"latency_preemptoff.run{i}.txt") for i in (1, 2, 3)]
    one = [{"run_id": r.run_id} for r in tracekit.ingest(files, store=str(store2), patch="seed", label="before",
                                                         arch="x86_64", boot="A-1")]
    save_store_profile(store2, "seed", "x86_64", entry)
    w = predict_for_report("x86_64", FUNCS, one, [], None, store=store2)["windows"]["preemptoff"]
    assert (w["before"]["measured_worst_ns"], w["before"]["boots"]) == (11574000, 1)


def test_a_baseline_shared_by_two_patches_takes_the_compared_patch_profile(corpus, tmp_path, monkeypatch):
    """One unpatched trace ingested for two patches is one run in both; the prediction for
    each patch's comparison uses that patch's profile (the patch every compared run is in)."""
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    store = tmp_path / "store"
    seed = corpus / "kbuild-x86_64-6.1.192"
    base = str(seed / "B" / "latency_preemptoff.run1.txt")
    runs = {}
    for patch, after in (("p1", "run1"), ("p2", "run2")):
        b = tracekit.ingest([base], store=str(store), patch=patch, label="before", arch="x86_64")[0].run_id
        a = tracekit.ingest([str(seed / "A" / f"latency_preemptoff.{after}.txt")], store=str(store), patch=patch,
                            label="after", arch="x86_64")[0].run_id
        runs[patch] = ([{"run_id": b}], [{"run_id": a}])
    assert runs["p1"][0] == runs["p2"][0]  # the same stored run
    for patch, after in (("p1", "modern-np-pgfree"), ("p2", "v2622")):
        save_store_profile(store, patch, "x86_64", {"before": "modern", "after": after, "preempt": True,
                                                     "workload": WL})
    assert predict_for_report("x86_64", FUNCS, *runs["p1"], None, store=store)["model"].endswith("modern-np-pgfree")
    assert predict_for_report("x86_64", FUNCS, *runs["p2"], None, store=store)["model"].endswith("v2622")
