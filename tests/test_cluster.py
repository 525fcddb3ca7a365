"""Ingest on a dask.distributed cluster (a scheduler and two worker processes on loopback)
into a bucket (moto's S3 server on loopback): the same runs as a local ingest, the same
summary and exit status, and a worker killed mid-file leaves nothing visible while the
retried file lands once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import polars as pl
import pytest

import tracekit

QEMU = "qemu/x86_64-6.1.0-56-preempt-none"
BATCH = [f"{QEMU}/{f}" for f in ("fgraph_default.txt", "fgraph_procabs.txt", "function.txt", "trace.dat", "perf.script.txt")] + [
    "kbuild-x86_64-6.1.192/A/fgraph_exit_mmap.txt", "kbuild-x86_64-6.1.192/B/fgraph_exit_mmap.txt"]


def _tk(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "tracekit", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_dask_ingest_equals_local_ingest_run_by_run(tmp_path, corpus, s3_bucket, dask_cluster):
    address, workers = dask_cluster
    url = f"s3://{s3_bucket()}/store"
    files = [str(corpus / f) for f in BATCH]
    missing = str(tmp_path / "no-such-trace.txt")
    remote = _tk("ingest", *files, missing, "--store", url, "--patch", "p", "--label", "before",
                 "--arch", "x86_64", "--scheduler", address, "--json")
    local = _tk("ingest", *files, missing, "--store", str(tmp_path / "local"), "--patch", "p", "--label", "before",
                "--arch", "x86_64", "--json")
    assert remote.returncode == local.returncode == 2, remote.stderr  # the missing file, as locally
    rr, lr = json.loads(remote.stdout), json.loads(local.stdout)
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in rr] == [{k: v for k, v in r.items() if k not in drop} for r in lr]
    assert rr[-1]["error"] == f"{missing}: no such file"
    st, ls = tracekit.open_store(url, create=False), tracekit.open_store(tmp_path / "local", create=False)
    cols = ["run_id", "patch", "label", "arch", "kernel", "format", "tracer", "counts", "skipped", "warnings", "path"]
    assert st.runs().select(cols).collect().sort("run_id").equals(ls.runs().select(cols).collect().sort("run_id"))
    for table in ("spans", "events", "windows"):
        a, b = getattr(st, table)().collect(), getattr(ls, table)().collect()
        keys = [c for c in ("run_id", "seq", "span_id", "window") if c in a.columns]
        assert a.sort(keys).equals(b.sort(keys)), table
    # each run says which worker ingested it
    pids = {p.pid for p in workers.values()}
    by = [json.loads(m)["ingested_by"] for m in st.runs().select("meta").collect()["meta"]]
    assert {b["pid"] for b in by} <= pids and all(b["host"] for b in by)


def test_killed_worker_leaves_nothing_partial_and_the_retry_lands_once(tmp_path, corpus, s3_bucket, dask_cluster):
    address, workers = dask_cluster
    big = tmp_path / "big.txt"
    subprocess.run([sys.executable, "benchmarks/gen_fgraph.py", str(big), "--mib", "24"], check=True,
                   capture_output=True, cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    url = f"s3://{s3_bucket()}/store"
    st = tracekit.open_store(url)
    files = st._files
    got: list = []
    from distributed import Client

    with Client(address, timeout=30) as c:
        t = threading.Thread(target=lambda: got.extend(tracekit.ingest([str(big)], store=url, arch="x86_64",
                                                                       scheduler=address, on_error="collect")))
        t.start()
        # wait for the first part of the attempt, then kill the worker writing it
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not [f for f in files.find("spans") if "part-" in f]:
            time.sleep(0.02)
        busy = [w for w, tasks in c.processing().items() if tasks]
        assert len(busy) == 1, "no worker is ingesting"
        killed = workers[busy[0]]
        killed.kill()
        killed.wait()
    assert st.runs().collect().height == 0 and st.spans().collect().height == 0  # nothing partial
    t.join(300)
    (r,) = got
    assert r.status == "ingested", r.error
    runs = st.runs().collect()
    assert runs.height == 1 and len(st.run_ids()) == 1 and st.memberships().height == 1
    assert json.loads(runs["meta"][0])["ingested_by"]["pid"] != killed.pid
    assert st.spans().select(pl.len()).collect().item() == runs["counts"][0]["spans"] == r.counts["spans"]
    attempts = {f.split("/")[2] for f in files.find("spans") if "part-" in f}
    assert len(attempts) == 2  # the dead worker's attempt is left, invisible
    assert st.gc(grace_s=0) == 1
    assert len({f.split("/")[2] for f in files.find("spans") if "part-" in f}) == 1
    assert st.spans().select(pl.len()).collect().item() == r.counts["spans"]


def test_unreachable_scheduler_is_one_clear_line(tmp_path, corpus):
    out = _tk("ingest", str(corpus / BATCH[0]), "--store", str(tmp_path / "s"), "--scheduler", "tcp://127.0.0.1:9",
              env={"DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("tracekit: error: --scheduler tcp://127.0.0.1:9: cannot reach the scheduler"), out.stderr


def test_without_dask_the_message_says_what_to_install(tmp_path, corpus):
    code = ("import sys; sys.modules['distributed'] = None; sys.argv = ['tracekit'] + sys.argv[1:];"
            " from tracekit.cli import main; main()")
    out = subprocess.run([sys.executable, "-c", code, "ingest", str(corpus / BATCH[0]), "--store", str(tmp_path / "s"),
                          "--scheduler", "tcp://127.0.0.1:9"], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == ("tracekit: error: --scheduler needs dask.distributed, which is not installed: "
                                  "pip install 'tracekit[cluster]'")


def test_on_error_raise_on_the_cluster_raises_the_workers_own_error(tmp_path, s3_bucket, dask_cluster):
    from tracekit.errors import ParseError

    address, _ = dask_cluster
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not a trace\n")
    url = f"s3://{s3_bucket()}/store"
    with pytest.raises(ParseError) as e:
        tracekit.ingest([str(bad)], store=url, arch="x86_64", scheduler=address)
    assert type(e.value) is ParseError and (e.value.path, e.value.line) == (str(bad), 1)  # made on the worker, as it was
    assert e.value.reason.startswith("not a trace format tracekit knows")
