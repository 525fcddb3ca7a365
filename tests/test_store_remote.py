"""The store on object storage (S3, served on loopback by moto): the same runs, spans and
report as a local store, the runs row as the commit, orphans removed by gc."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import tracekit
from tracekit.store import RunWriter

QEMU = "qemu/x86_64-6.1.0-56-preempt-none"
KBUILD = "kbuild-x86_64-6.1.192"


def _tk(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True, text=True)


def _same_runs(a: tracekit.store.Store, b: tracekit.store.Store) -> None:
    cols = ["run_id", "patch", "label", "arch", "kernel", "format", "tracer", "counts", "skipped", "path"]
    ra = a.runs().select(cols).collect().sort("run_id", "patch", "label")
    rb = b.runs().select(cols).collect().sort("run_id", "patch", "label")
    assert ra.equals(rb)
    for table in ("spans", "events", "windows"):
        ta, tb = (getattr(s, table)().collect() for s in (a, b))
        keys = [c for c in ("run_id", "patch", "label", "seq", "span_id", "window") if c in ta.columns]
        assert ta.sort(keys).equals(tb.sort(keys)), table


def test_s3_store_equals_local(tmp_path, corpus, s3_bucket):
    url = f"s3://{s3_bucket()}/store"
    files = [str(corpus / QEMU / f) for f in ("fgraph_default.txt", "function.txt", "trace.dat")]
    for where in (url, tmp_path / "local"):
        res = tracekit.ingest(files, store=where, patch="mm/foo", label="1234", on_error="collect")
        assert [r.status for r in res] == ["ingested"] * 3, [r.error for r in res]
        (again,) = tracekit.ingest(files[:1], store=where, patch="mm:foo", label="before")
        assert again.status == "added"
    remote = tracekit.open_store(url, create=False)
    _same_runs(remote, tracekit.open_store(tmp_path / "local"))
    assert remote.spans().filter(pl.col("patch") == "mm:foo").collect()["run_id"].unique().len() == 1
    out = _tk("runs", "--store", url)
    assert out.returncode == 0 and out.stdout.count("mm/foo") == 3, out.stderr


def test_report_from_s3_equals_report_from_a_local_copy(tmp_path, corpus, s3_bucket):
    url = f"s3://{s3_bucket()}/store"
    for side, label in (("A", "before"), ("B", "after")):
        (r,) = tracekit.ingest([str(corpus / KBUILD / side / "fgraph_exit_mmap.txt")], store=url,
                               patch="pgfree-lat", label=label, arch="x86_64")
        assert r.status == "ingested"
    local = tmp_path / "copy"
    import s3fs

    s3fs.S3FileSystem(skip_instance_cache=True).get(url[len("s3://"):] + "/", str(local), recursive=True)
    texts = []
    for store in (url, str(local)):
        out = _tk("report", "--store", store, "--patch", "pgfree-lat", "--out", str(tmp_path / Path(store).name),
                  "--format", "text,json")
        assert out.returncode == 0, out.stderr
        texts.append((tmp_path / Path(store).name / "report.txt").read_text())
    assert texts[0] == texts[1] and "exit_mmap" in texts[0]


def test_s3_crash_leaves_nothing_visible_and_gc_removes_it(tmp_path, corpus, s3_bucket, monkeypatch):
    url = f"s3://{s3_bucket()}/store"
    store = tracekit.open_store(url)
    monkeypatch.setattr(RunWriter, "commit", lambda self, row, replace=False: (_ for _ in ()).throw(KeyboardInterrupt()))
    monkeypatch.setattr(RunWriter, "abort", lambda self: None)  # a crash cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        tracekit.ingest([str(corpus / QEMU / "fgraph_default.txt")], store=store)
    monkeypatch.undo()
    fs = store._files
    parts = [f for f in fs.find("spans") if f.endswith("part-00000.parquet")]
    assert parts and store.runs().collect().height == 0 and store.spans().collect().height == 0
    assert store.gc() == 0  # younger than the grace period: maybe a live writer's
    out = _tk("gc", "--store", url, "--grace", "0")
    assert out.returncode == 0 and "removed 1" in out.stdout, out.stdout + out.stderr
    assert not [f for f in fs.find("spans") if "part-" in f]
    (r,) = tracekit.ingest([str(corpus / QEMU / "fgraph_default.txt")], store=url)
    assert r.status == "ingested" and store.spans().collect().height == r.counts["spans"]


def test_concurrent_ingests_into_one_bucket_all_land(corpus, s3_bucket):
    url = f"s3://{s3_bucket()}/store"
    files = ["fgraph_default.txt", "fgraph_thresh.txt", "function.txt"]
    procs = [subprocess.Popen([sys.executable, "-m", "tracekit", "ingest", str(corpus / QEMU / f), "--store", url,
                               "--patch", "p", "--label", f"l{i % 2}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, f in enumerate(files + files[:1])]  # the first file twice, at the same time
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    st = tracekit.open_store(url, create=False)
    runs = st.runs().collect()
    assert sorted(runs["run_id"].unique().to_list()) == sorted(st.run_ids()) and len(st.run_ids()) == 3
    per_run = dict(st.spans().group_by("run_id", "label").len().collect().select("run_id", "len").unique().iter_rows())
    counts = {r["run_id"]: r["counts"]["spans"] for r in runs.iter_rows(named=True)}
    assert {k: v for k, v in counts.items() if v} == per_run


def test_unknown_scheme_is_one_clear_line(tmp_path, corpus):
    out = _tk("ingest", str(corpus / QEMU / "function.txt"), "--store", "nosuchfs://x/y")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("tracekit: error: nosuchfs://x/y:"), out.stderr
    assert not (Path.cwd() / "nosuchfs:").exists()
