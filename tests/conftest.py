"""Shared test fixtures: where the real-trace corpus and the project's fixtures live."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = (ROOT.parent / "shared" / "corpus").resolve()
FIXTURES = ROOT / "fixtures"


def pytest_collection_modifyitems(config, items):
    import os

    for marker, env in (("slow", "TRACEKIT_SLOW"), ("spark", "TRACEKIT_SPARK")):
        if os.environ.get(env):
            continue
        skip = pytest.mark.skip(reason=f"{marker} test: set {env}=1 to run it")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """../shared/corpus, read in place (never copied into the project)."""
    if not CORPUS.is_dir():
        pytest.fail(f"the real-trace corpus is missing: {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def report_schema() -> dict:
    """docs/report.schema.json, the JSON Schema of report.json."""
    import json

    return json.loads((ROOT / "docs" / "report.schema.json").read_text())


@pytest.fixture(autouse=True)
def _reports_match_the_schema(request, report_schema):
    """Every report.json a test writes under its tmp_path validates against the schema."""
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if tmp is None:
        return
    import json

    import jsonschema

    for path in tmp.rglob("report.json"):
        jsonschema.validate(json.loads(path.read_text()), report_schema)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc, what: str, timeout: float = 60) -> None:
    import socket
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with status {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


@pytest.fixture(scope="session")
def s3_bucket():
    """An S3 endpoint on loopback (moto's standalone server, started here), its address and
    credentials in the environment of this process and of every process it starts, as a
    user's would be.  Returns a function making a fresh bucket and giving its name."""
    import itertools
    import os
    import subprocess
    import sys

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        _wait_for_port(port, proc, "moto_server")
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        counter = itertools.count()

        def make() -> str:
            name = f"tk-{next(counter)}"
            fs.mkdir(name)
            return name

        yield make
    finally:
        proc.terminate()
        proc.wait(10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def dask_cluster(s3_bucket, tmp_path_factory):
    """A dask.distributed scheduler and two worker processes on loopback, started here (no
    nanny: a killed worker stays dead), with the S3 endpoint's environment.  Yields the
    scheduler's address and a dict worker address -> the worker's Popen."""
    import subprocess
    import sys

    from distributed import Client

    d = tmp_path_factory.mktemp("dask")
    port = _free_port()
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = f"tcp://127.0.0.1:{port}"
    try:
        _wait_for_port(port, procs[0], "dask scheduler")
        for i in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--no-nanny", "--nthreads", "1",
                 "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}", "--local-directory", str(d / f"w{i}")],
                cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            pids = client.run(lambda: __import__("os").getpid())
        by_pid = {p.pid: p for p in procs[1:]}
        yield address, {addr: by_pid[pid] for addr, pid in pids.items()}
    finally:
        for p in procs[::-1]:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
