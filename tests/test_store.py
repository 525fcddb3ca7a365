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
    (b,) = tracekit.ingest([str(corpus / FG)], store=store, patch="p", label="before")
    assert a.status == "ingested" and b.status == "duplicate" and a.run_id == b.run_id
    assert store.runs().collect().height == 1
    (c,) = tracekit.ingest([str(corpus / FG)], store=store, patch="p", label="before", replace=True)
    assert c.status == "replaced" and c.memberships == [("p", "before")]
    assert store.runs().collect().height == 1
    assert store.spans().collect().height == a.counts["spans"]
    # one attempt's parts, the replaced one's are gone
    assert len(list((store.root / "spans" / a.run_id).iterdir())) == 1


def test_membership_is_shared_not_copied(tmp_path, corpus):
    """The same trace for another patch or label adds a membership, never a second copy;
    --replace re-ingests the data and keeps every membership."""
    store = tracekit.open_store(tmp_path / "s")
    (a,) = tracekit.ingest([str(corpus / FG)], store=store, patch="mm/foo", label="before")
    (b,) = tracekit.ingest([str(corpus / FG)], store=store, patch="mm:foo", label="after")
    assert b.status == "added" and b.run_id == a.run_id
    assert b.memberships == [("mm/foo", "before"), ("mm:foo", "after")]
    parts = list((store.root / "spans").rglob("part-*.parquet"))
    assert len(parts) == 1  # the data once
    runs = store.runs().collect().sort("patch")
    assert runs.select("patch", "label").rows() == [("mm/foo", "before"), ("mm:foo", "after")]
    n = a.counts["spans"]
    per = store.spans().group_by("patch", "label").len().collect().sort("patch")
    assert per.rows() == [("mm/foo", "before", n), ("mm:foo", "after", n)]
    assert store.spans().filter(pl.col("patch") == "mm:foo").collect().height == n
    (c,) = tracekit.ingest([str(corpus / FG)], store=store, patch="mm/foo", label="after", replace=True)
    assert c.status == "replaced"
    assert c.memberships == [("mm/foo", "after"), ("mm/foo", "before"), ("mm:foo", "after")]
    assert store.runs().collect().height == 3 and store.spans().collect().height == 3 * n
    assert len(list((store.root / "spans").rglob("part-*.parquet"))) == 1


def test_cli_says_membership_added(tmp_path, corpus):
    s = str(tmp_path / "s")
    _tk("ingest", str(corpus / FG), "--store", s, "--patch", "p", "--label", "before")
    out = _tk("ingest", str(corpus / FG), "--store", s, "--patch", "q", "--label", "before")
    assert out.returncode == 0, out.stderr
    assert "already in the store" in out.stdout and "added to patch q, label before" in out.stdout
    assert "patch p, label before" in out.stdout


def test_names_never_collide_or_change_type(tmp_path, corpus):
    """mm/foo and mm:foo are two patches; 1234 and 1 stay strings; a path-like name
    stays inside the store."""
    store = tracekit.open_store(tmp_path / "s")
    hostile = "../../etc/x=1\x00y"
    for patch, label in (("mm/foo", "before"), ("mm:foo", "before"), ("1234", "1"), (hostile, "a/b")):
        (r,) = tracekit.ingest([str(corpus / FG)], store=store, patch=patch, label=label, arch="x86_64")
        assert r.status in ("ingested", "added")
    names = sorted(p.name for p in (store.root / "memberships").iterdir() if p.is_dir())
    assert names == sorted(["mm%2Ffoo", "mm%3Afoo", "1234", "%2E.%2F..%2Fetc%2Fx%3D1%00y"])
    assert all(p.resolve().is_relative_to(store.root.resolve()) for p in store.root.rglob("*"))
    runs = store.runs().collect()
    assert runs.schema["patch"] == pl.String and runs.schema["label"] == pl.String
    assert sorted(runs["patch"].to_list()) == sorted(["mm/foo", "mm:foo", "1234", hostile])
    raw = pl.read_parquet(str(store.root / "memberships" / "**" / "*.parquet"))
    assert raw.schema["patch"] == pl.String and raw.schema["label"] == pl.String
    assert sorted(raw["label"].to_list()) == ["1", "a/b", "before", "before"]


def test_encode_name_is_reversible():
    from tracekit.store import StoreError, decode_name, encode_name

    for name in ("mm/foo", "mm:foo", "mm_foo", "..", ".", "_x", "a%2Fb", "1234", "ünïcode ✓", "x" * 60):
        enc = encode_name(name)
        assert decode_name(enc) == name
        assert "/" not in enc and not enc.startswith((".", "_")) and enc not in (".", "..")
    assert len({encode_name(n) for n in ("mm/foo", "mm:foo", "mm_foo", "mm%2Ffoo")}) == 4
    with pytest.raises(StoreError):
        encode_name("")
    with pytest.raises(StoreError):
        encode_name("/" * 100)


def test_commit_puts_each_file_on_disk_before_what_names_it(tmp_path, monkeypatch):
    """A run's commit, watched at the system calls: every file is fsynced before it is
    renamed into place; the parts' directories (attempt, run, table) and the membership
    are on disk, directory entries included (new directories too), before the runs row is
    renamed into place, and the runs row's directory after it.  No work file is left
    behind."""
    import tracekit.store as st

    store = tracekit.open_store(tmp_path / "s", create=True)
    w = store.begin_run("0123456789abcdef")
    w.write("spans", _span_rows())
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = st._fsync, os.replace
    monkeypatch.setattr(st, "_fsync", lambda p, directory=False: (events.append(("fsync", p)), real_fsync(p, directory)))
    monkeypatch.setattr(st.os, "replace", lambda a, b: (events.append(("replace", (a, b))), real_replace(a, b)))
    w.commit({"run_id": w.run_id, "patch": "p", "label": "before", "format": "function_graph"})
    synced = lambda until: {p for e, p in events[:until] if e == "fsync"}  # noqa: E731
    renames = [(i, a, b) for i, (e, ab) in enumerate(events) if e == "replace" for a, b in [ab]]
    assert [os.path.relpath(b, store.root) for _, _, b in renames] == [
        "memberships/p/before/0123456789abcdef.parquet", "runs/0123456789abcdef.parquet"]
    for i, tmp, _ in renames:
        assert tmp in synced(i)
    (m_at, _, member), (r_at, _, runs) = renames
    attempt = store.root / "spans" / w.run_id / w.attempt
    assert {str(attempt), str(attempt.parent), str(attempt.parent.parent), os.path.dirname(member)} <= synced(r_at)
    # the membership's new directories (patch, label) are entries of directories synced too
    assert {str(store.root / "memberships"), str(store.root / "memberships" / "p")} <= synced(m_at)
    assert os.path.dirname(runs) in synced(len(events))
    assert not list((store.root / ".tmp").glob("put-*"))
    assert store.runs().collect()["run_id"].to_list() == [w.run_id]
    assert store.spans().collect().height == 5


def test_sanitize_partition():
    assert sanitize_partition("..") == "_"
    assert sanitize_partition("") == "none"
    assert "/" not in sanitize_partition("a/../b") and ".." not in sanitize_partition("a/../b")


def test_crash_before_runs_row_leaves_nothing_visible(tmp_path, corpus, monkeypatch):
    store = tracekit.open_store(tmp_path / "s")
    real_commit = RunWriter.commit

    def crash_before_runs_row(self, run_row, replace=False):
        # the parts and the membership are written, then the process dies
        self.store.add_membership(self.run_id, run_row["patch"], run_row["label"])
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(RunWriter, "commit", crash_before_runs_row)
    monkeypatch.setattr(RunWriter, "abort", lambda self: None)  # a crash cleans nothing up
    with pytest.raises(KeyboardInterrupt):
        tracekit.ingest([str(corpus / FG)], store=store)
    monkeypatch.undo()
    assert list((store.root / "spans").rglob("part-*.parquet"))
    assert list((store.root / "memberships").rglob("*/*/*.parquet"))
    assert store.runs().collect().height == 0 and store.spans().collect().height == 0
    (r,) = tracekit.ingest([str(corpus / FG)], store=store)  # recovers first
    assert r.status == "ingested"
    assert store.spans().collect().height == r.counts["spans"]
    assert len(list((store.root / "spans").rglob("part-*.parquet"))) == 1


def test_gc_removes_orphans(tmp_path, corpus, monkeypatch):
    store = tracekit.open_store(tmp_path / "s")
    monkeypatch.setattr(RunWriter, "commit", lambda self, row, replace=False: (_ for _ in ()).throw(KeyboardInterrupt()))
    monkeypatch.setattr(RunWriter, "abort", lambda self: None)
    with pytest.raises(KeyboardInterrupt):
        tracekit.ingest([str(corpus / FG)], store=store, patch="p", label="x")
    monkeypatch.undo()
    assert list((store.root / "spans").rglob("part-*.parquet"))
    out = _tk("gc", "--store", str(store.root))
    assert out.returncode == 0, out.stderr
    assert "removed 1" in out.stdout
    assert not list((store.root / "spans").rglob("part-*.parquet"))


@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0])
def test_kill_9_mid_ingest(tmp_path, big_trace, delay):
    store = tmp_path / "s"
    p = subprocess.Popen([sys.executable, "-m", "tracekit", "ingest", str(big_trace), "--store", str(store), "--arch", "x86_64"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.send_signal(signal.SIGKILL)
    p.wait()
    st = tracekit.open_store(store, create=True)  # the kill may come before the store is made
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


def test_store_readable_by_plain_polars_pyarrow_pandas_duckdb(tmp_path, corpus):
    """The raw files, read with nothing of tracekit: the documented join (docs/store.md)
    gives the runs' spans with their patch, label and arch, strings all."""
    import duckdb
    import pandas as pd
    import pyarrow.dataset as ds

    store = tracekit.open_store(tmp_path / "s")
    (r,) = tracekit.ingest([str(corpus / FG)], store=store, patch="1234", label="1", arch="x86_64")
    tracekit.ingest([str(corpus / FG)], store=store, patch="mm/foo", label="before")
    n = r.counts["spans"]
    root = store.root
    t = ds.dataset(str(root / "spans"), format="parquet").to_table()
    assert t.num_rows == n and set(t.column("run_id").to_pylist()) == {r.run_id}
    m = pd.read_parquet(root / "memberships")
    assert sorted(m["patch"]) == ["1234", "mm/foo"] and m["label"].map(type).eq(str).all()
    df = pl.scan_parquet(str(root / "memberships" / "**" / "*.parquet")).collect()
    assert df.schema["patch"] == pl.String and sorted(df["label"].to_list()) == ["1", "before"]
    got = duckdb.sql(f"""
        SELECT m.patch, m.label, r.arch, count(*) AS n, any_value(typeof(m.patch)) AS t
        FROM read_parquet('{root}/spans/**/*.parquet') s
        JOIN read_parquet('{root}/runs/*.parquet') r USING (run_id, attempt)
        JOIN read_parquet('{root}/memberships/**/*.parquet') m USING (run_id)
        GROUP BY ALL ORDER BY ALL""").fetchall()
    assert got == [("1234", "1", "x86_64", n, "VARCHAR"), ("mm/foo", "before", "x86_64", n, "VARCHAR")]
    # an empty table has its schema: windows has no rows here
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{root}/windows/**/*.parquet')").fetchall() == [(0,)]
    assert pl.scan_parquet(str(root / "windows" / "**" / "*.parquet")).collect().columns[:3] == ["window", "tracer", "latency_ns"]
    assert ds.dataset(str(root / "windows"), format="parquet").schema.field("latency_ns").type == "int64"
    assert list(pd.read_parquet(root / "windows").columns)[:2] == ["window", "tracer"]


def test_empty_store_reads_as_empty_everywhere(tmp_path):
    import duckdb

    store = tracekit.open_store(tmp_path / "s", create=True)
    assert store.runs().collect().height == 0 and store.spans().collect().height == 0
    assert store.spans().collect_schema()["patch"] == pl.String
    for table in ("runs", "memberships", "spans", "events", "windows"):
        assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{store.root}/{table}/**/*.parquet')").fetchall() == [(0,)]
        assert pl.scan_parquet(str(store.root / table / "**" / "*.parquet")).collect().height == 0


def _span_rows(func: pl.DataType = pl.String) -> pl.DataFrame:
    """Five calls of two tasks, in the span schema, with ``func`` in the dtype given."""
    from tracekit.schema import SPAN_SCHEMA, conform

    df = conform(pl.DataFrame({
        "span_id": [1, 2, 3, 4, 5], "parent_id": [None, 1, 1, None, 4], "cpu": [0, 0, 0, 1, 1],
        "pid": [17, 17, 17, 4242, 4242], "comm": ["bash", "bash", "bash", "kworker/1:0", "kworker/1:0"],
        "func": ["exit_mmap", "unmap_vmas", "free_pgtables", "exit_mmap", "tlb_finish_mmu"],
        "depth": [0, 1, 1, 0, 1], "start_ns": [100, 110, 150, 120, 125], "dur_ns": [90, 30, 20, 40, 5],
        "seq": [1, 2, 4, 3, 5],
    }), SPAN_SCHEMA)
    return df.with_columns(pl.col("func").cast(func))


@pytest.mark.parametrize("func", [pl.String, pl.Categorical])
def test_part_columns_encoded_by_what_they_hold(tmp_path, func):
    """Names are dictionary-encoded (a Categorical's dictionary written as it comes), the
    64-bit ids and times delta-encoded, the small integers plain; every reader reads the
    values back as written, names as strings."""
    import io

    import duckdb
    import pyarrow.parquet as pq

    from tracekit.store import write_part

    df = _span_rows(func)
    buf = io.BytesIO()
    write_part(df, buf, {"run_id": "0123456789abcdef", "attempt": "1796604250-869ff19a9b9a"})
    md = pq.ParquetFile(io.BytesIO(buf.getvalue())).metadata
    chunks = {md.schema.column(i).name: md.row_group(0).column(i) for i in range(md.num_columns)}
    for name in ("comm", "func", "run_id", "attempt"):
        assert chunks[name].has_dictionary_page, name
    for name in ("span_id", "start_ns", "dur_ns", "seq"):
        assert "DELTA_BINARY_PACKED" in chunks[name].encodings and not chunks[name].has_dictionary_page, name
    for name in ("cpu", "pid", "depth"):
        assert not chunks[name].has_dictionary_page and "PLAIN" in chunks[name].encodings, name
    back = pl.read_parquet(io.BytesIO(buf.getvalue()))
    want = _span_rows().with_columns(run_id=pl.lit("0123456789abcdef"), attempt=pl.lit("1796604250-869ff19a9b9a"))
    assert back.schema == want.schema and back.equals(want)
    part = tmp_path / "part.parquet"
    part.write_bytes(buf.getvalue())
    got = duckdb.sql(f"SELECT typeof(func), func FROM read_parquet('{part}') ORDER BY seq").fetchall()
    assert got == [("VARCHAR", f) for f in ["exit_mmap", "unmap_vmas", "exit_mmap", "free_pgtables", "tlb_finish_mmu"]]
    import pandas as pd

    assert pd.read_parquet(part)["func"].tolist() == want["func"].to_list()


def test_parts_let_readers_skip_row_groups_by_function(tmp_path, corpus):
    """A part's func and comm carry min/max statistics and a Bloom filter: DuckDB's probe
    excludes a function the run never called and keeps one it did."""
    import duckdb

    store = tracekit.open_store(tmp_path / "s")
    (r,) = tracekit.ingest([str(corpus / FG)], store=store, arch="x86_64")
    (part,) = (store.root / "spans").rglob("part-*.parquet")
    import pyarrow.parquet as pq

    md = pq.ParquetFile(part).metadata
    names = [md.schema.column(i).name for i in range(md.num_columns)]
    stats = md.row_group(0).column(names.index("func")).statistics
    assert stats.has_min_max and stats.min <= "exit_mmap" <= stats.max

    def excluded(col: str, value: str) -> bool:
        return duckdb.sql(f"SELECT bloom_filter_excludes FROM parquet_bloom_probe('{part}', '{col}', '{value}')").fetchall()[0][0]

    assert not excluded("func", "exit_mmap") and excluded("func", "no_such_kernel_function")
    assert excluded("comm", "no-such-task")


def test_forget_takes_a_run_out_of_one_patch_and_label(tmp_path, corpus):
    s = str(tmp_path / "s")
    _tk("ingest", str(corpus / FG), "--store", s, "--patch", "p", "--label", "before")
    _tk("ingest", str(corpus / FG), "--store", s, "--patch", "p", "--label", "after")
    store = tracekit.open_store(s, create=False)
    rid = next(iter(store.run_ids()))
    out = _tk("forget", rid[:8], "--store", s, "--patch", "p", "--label", "before")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"run {rid}: no longer in patch p, label before; still in patch p, label after"
    assert store.runs().select("label").collect()["label"].to_list() == ["after"]
    assert store.spans().select("label").unique().collect()["label"].to_list() == ["after"]
    again = _tk("forget", rid, "--store", s, "--patch", "p", "--label", "before")
    assert again.returncode == 2 and again.stderr.strip() == f"tracekit: error: run {rid} is not in patch p, label before (see tracekit runs)"
