"""Ingest on a dask.distributed cluster: ``tracekit ingest PATH... --scheduler tcp://host:8786``.

The client reads each trace and sends its bytes with the task, so the workers need not see
the client's files; a worker writes them to a temporary file of its own and ingests it with
:func:`tracekit.pipeline.ingest_file`, the code of a local ingest, straight into the store,
which every worker reaches (object storage, or a directory they all mount).  What comes
back is what a local ingest gives, an :class:`~tracekit.pipeline.IngestResult` per run
(counts, warnings, error), so the summary and the exit status are those of a local ingest.

A worker that dies in the middle of a file leaves an attempt no runs row names: invisible,
and removed by ``tracekit gc``.  The scheduler gives the file to another worker; the run id
is the content's, so the file lands once.  At most two files per worker thread are in
flight, so the client holds a bounded number of traces in memory.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

from tracekit.pipeline import IngestError, IngestOptions, IngestResult, ingest_file
from tracekit.store import Store

__all__ = ["ingest_on_cluster"]

def ingest_on_cluster(scheduler: str, paths: list[str], store: Store, opts: IngestOptions, *,
                      raising: bool = False) -> list[list[IngestResult]]:
    """The results of each path (one per run it makes), in the order of ``paths``, each
    ingested by a worker of the cluster whose scheduler is at ``scheduler``.  With
    ``raising``, the first error a worker reports is raised as the worker made it (the
    files then in flight may still land; none is sent after it)."""
    try:
        import distributed
    except ImportError:
        raise IngestError("--scheduler needs dask.distributed, which is not installed: pip install 'tracekit[cluster]'") from None
    try:
        # (how long to wait for the scheduler is Dask's: distributed.comm.timeouts.connect)
        client = distributed.Client(scheduler, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        raise IngestError(f"--scheduler {scheduler}: cannot reach the scheduler: {e}") from None
    results: list[list[IngestResult] | None] = [None] * len(paths)
    with client:
        window = 2 * max(1, sum(client.nthreads().values()))
        todo = list(enumerate(paths))[::-1]
        names: dict[str, tuple[int, str]] = {}

        def submit_next():
            """Send the next trace that exists; its future, or None when none is left."""
            while todo:
                i, path = todo.pop()
                if path != "-" and not Path(path).is_file():  # the local ingest's own message
                    results[i] = ingest_file(path, store, opts, raising=raising)
                    continue
                display, recorded = ("<stdin>", "<stdin>") if path == "-" else (path, os.path.abspath(path))
                data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
                name = "stdin" if path == "-" else Path(path).name
                with warnings.catch_warnings():  # a trace is a large argument, on purpose
                    warnings.simplefilter("ignore")
                    fut = client.submit(_ingest_shipped, display, recorded, name, data, store.url, opts, raising,
                                        key=f"tracekit-ingest-{uuid.uuid4().hex}", pure=False)
                names[fut.key] = (i, display)
                return fut
            return None

        first = [f for f in (submit_next() for _ in range(window)) if f is not None]
        if first:
            running = distributed.as_completed(first, loop=client.loop)
            for fut in running:
                i, display = names.pop(fut.key)
                results[i] = _result(fut, display, distributed, raising)
                nxt = submit_next()
                if nxt is not None:
                    running.add(nxt)
    return [r for r in results if r is not None]


def _result(fut, display: str, distributed, raising: bool) -> list[IngestResult]:
    """A future's results; an input's error as the local ingest reports it (with
    ``raising``, the worker's own exception, raised)."""
    try:
        return fut.result()
    except distributed.KilledWorker as e:
        error = f"{display}: every worker that ingested it died ({e})"
        if raising:
            raise IngestError(error) from e
    except Exception as e:  # noqa: BLE001 - one input's failure, reported as the local ingest would
        if raising:
            raise
        error = f"{display}: internal error on the cluster: {type(e).__name__}: {e}"
    return [IngestResult(path=display, status="failed", error=error)]


def _ingest_shipped(display: str, recorded: str, name: str, data: bytes, url: str, opts: IngestOptions,
                    raising: bool) -> list[IngestResult]:
    """On a worker: the trace's bytes into a file of its own, ingested into the store."""
    d = tempfile.mkdtemp(prefix="tracekit-ingest-")
    try:
        f = Path(d) / name
        f.write_bytes(data)
        del data
        return ingest_file(str(f), Store(url), opts, raising=raising, display=display, recorded_path=recorded)
    finally:
        shutil.rmtree(d, ignore_errors=True)
