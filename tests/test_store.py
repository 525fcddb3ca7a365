"""The store's invariants (docs/store.md): atomic runs, content-derived run ids,
concurrent writers, sanitised partitions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import tracekit
from tracekit.store import RunWriter, sanitize_partition

ROOT = Path(__file__).resolve().parent.parent
FG = "qemu/x86_64-6.1.0-56-preempt-none/fgraph_default.txt"


def _tk(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def big_trace(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("big") / "big.txt"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_fgraph.py"), str(p), "--mib", "6"], check=True, capture_output=True)
    return p


def test_same_content_is_one_run(tmp_path, corpus):
    store = tracekit.open_store(tmp_path / "s")
    (a,) = tracekit.ingest([str(corpus / FG)], store=store, patch="p", label="before")
    (b,) = tracekit.ingest([str(corpus / FG)], store=store, patch="p", label="after")
    assert a.status == "ingested" and b.status == "duplicate" and a.run_id == b.run_id
    assert b.label == "before"  # says where it already is
    assert store.runs().collect().height == 1
    (c,) = tracekit.ingest([str(corpus / FG)], store=store, patch="p", label="after", replace=True)
    assert c.status == "replaced"
    runs = store.runs().collect()
    assert runs.height == 1 and runs["label"][0] == "after"
    spans = store.spans().collect()
    assert spans["label"].unique().to_list() == ["after"] and spans.height == a.counts["spans"]


def test_partition_values_are_sanitised(tmp_path, corpus):
    store = tracekit.open_store(tmp_path / "s")
    patch = "../../etc/x=1\x00y"
    (r,) = tracekit.ingest([str(corpus / FG)], store=store, patch=patch, label="a/b", arch="x86_64")
    assert r.status == "ingested"
    dirs = [p.relative_to(store.root) for p in (store.root / "spans").rglob("run_id=*")]
    assert len(dirs) == 1 and ".." not in str(dirs[0]) and "\x00" not in str(dirs[0])
    assert dirs[0].parts[1] == "patch=_etc_x_1_y" or dirs[0].parts[1].startswith("patch=")
    assert all(p.resolve().is_relative_to(store.root.resolve()) for p in store.root.rglob("*"))
    row = store.runs().collect().row(0, named=True)
    assert row["patch"] == patch and row["label"] == "a/b"
    assert row["partition"]["label"] == sanitize_partition("a/b") == "a_b"


def test_sanitize_partition():
    assert sanitize_partition("..") == "_"
    assert sanitize_partition("") == "none"
    assert sanitize_partition("mm: reduce pagetable-freeing latencies") == "mm__reduce_pagetable-freeing_latencies"
    assert "/" not in sanitize_partition("a/../b") and ".." not in sanitize_partition("a/../b")


def test_crash_before_runs_row_leaves_nothing_visible(tmp_path, corpus, monkeypatch):
    store = tracekit.open_store(tmp_path / "s")
    real_commit = RunWriter.commit

    def crash_after_tables(self, run_row, replace=False):
        # publish the table directories, then die before the runs row
        real_rename = os.rename
        calls = []

        def rename(src, dst):
            if str(dst).endswith(".parquet") and "/runs/" in str(dst):
                raise KeyboardInterrupt("simulated crash")
            calls.append(dst)
            return real_rename(src, dst)

        monkeypatch.setattr(os, "rename", rename)
        try:
            return real_commit(self, run_row, replace)
        finally:
            monkeypatch.setattr(os, "rename", real_rename)

    monkeypatch.setattr(RunWriter, "commit", crash_after_tables)
    with pytest.raises(KeyboardInterrupt):
        tracekit.ingest([str(corpus / FG)], store=store)
    monkeypatch.setattr(RunWriter, "commit", real_commit)
    # the span directory was renamed in, but without its runs row nothing shows
    assert list((store.root / "spans").rglob("run_id=*"))
    assert store.runs().collect().height == 0 and store.spans().collect().height == 0
    (r,) = tracekit.ingest([str(corpus / FG)], store=store)
    assert r.status == "ingested"
    assert store.spans().collect().height == r.counts["spans"]
    assert len(list((store.root / "spans").rglob("run_id=*"))) == 1


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0])
def test_kill_9_mid_ingest(tmp_path, big_trace, delay):
    store = tmp_path / "s"
    p = subprocess.Popen([sys.executable, "-m", "tracekit", "ingest", str(big_trace), "--store", str(store), "--arch", "x86_64"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()
    st = tracekit.open_store(store)
    runs = st.runs().collect()
    spans = st.spans().collect()
    if runs.height == 0:
        assert spans.height == 0 and st.events().collect().height == 0
    else:  # it finished before the kill: then it is whole
        assert spans.height == runs["counts"][0]["spans"]
    (r,) = tracekit.ingest([str(big_trace)], store=st, arch="x86_64")
    assert r.status in ("ingested", "duplicate")
    runs = st.runs().collect()
    assert runs.height == 1 and st.spans().collect().height == runs["counts"][0]["spans"]
    assert not any((store / ".tmp").iterdir()) if (store / ".tmp").exists() else True


def test_concurrent_ingests_all_land(tmp_path, corpus):
    store = tmp_path / "s"
    files = [
        "qemu/x86_64-6.1.0-56-preempt-none/fgraph_default.txt",
        "qemu/x86_64-6.1.0-56-preempt-none/fgraph_procabs.txt",
        "qemu/x86_64-6.1.0-56-preempt-none/function.txt",
        "qemu/ppc64le-6.1.0-50-preempt-voluntary/fgraph_default.txt",
    ]
    procs = [
        subprocess.Popen([sys.executable, "-m", "tracekit", "ingest", str(corpus / f), "--store", str(store), "--arch", "x86_64"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for f in files + files[:1]  # the first file twice, at the same time
    ]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    st = tracekit.open_store(store)
    assert st.runs().collect().height == 4
    said = "".join(o for o, _ in outs)
    assert said.count("already in the store") == 1
    per_run = st.spans().group_by("run_id").len().collect()
    counts = {r["run_id"]: r["counts"]["spans"] for r in st.runs().collect().iter_rows(named=True)}
    assert {k: v for k, v in counts.items() if v} == dict(per_run.iter_rows())


def test_store_readable_by_plain_polars_and_pyarrow(tmp_path, corpus):
    store = tracekit.open_store(tmp_path / "s")
    (r,) = tracekit.ingest([str(corpus / FG)], store=store, patch="p1", label="before", arch="x86_64")
    import pyarrow.dataset as ds

    d = ds.dataset(str(store.root / "spans"), format="parquet", partitioning="hive")
    t = d.to_table()
    assert t.num_rows == r.counts["spans"]
    assert set(t.column("run_id").to_pylist()) == {r.run_id}
    df = pl.scan_parquet(str(store.root / "spans" / "**" / "*.parquet"), hive_partitioning=True).collect()
    assert df.height == r.counts["spans"] and df["patch"].unique().to_list() == ["p1"]
