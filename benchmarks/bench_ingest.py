"""Benchmark: ingest generated function_graph text and print MB/s, lines/s and peak RSS.

Usage: python benchmarks/bench_ingest.py [--mib 200] [--repeat 3] [--store URL | --moto]

The input is made by benchmarks/gen_fgraph.py (several CPUs, IRQ markers, task switches,
nesting ten deep) and cached in the work directory.  Each run ingests it through the same
code as ``tracekit ingest``, into a fresh store, in a fresh child process (so that the
generator's memory does not count in its peak RSS, the process's high-water mark).  The
runs are repeated: shared and virtual machines change speed from one minute to the next,
so the median and the best of the runs are printed, with every run's time.

The store is a local directory in the work directory, or ``--store URL`` (a fresh prefix
under it per run: ``s3://bucket/bench``, credentials from the environment), or ``--moto``:
an S3 bucket on moto's server, started on loopback for the benchmark (the S3 protocol's
cost on this machine, not a real network's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: bump when gen_fgraph.py changes what it writes
GENERATOR_VERSION = 2


def _child(path: str, store: str) -> None:
    # The library (polars, pyarrow, numpy) is imported before the clock starts, as in any
    # long-lived process: the import is a fixed cost per process, not per byte, and is
    # reported on its own line.
    t_import = time.perf_counter()
    from tracekit.pipeline import ingest

    t0 = time.perf_counter()
    res = ingest([path], store=store)
    dt = time.perf_counter() - t0
    r = res[0]
    size = os.path.getsize(path)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "bytes": size, "seconds": dt, "lines": r.counts["lines"], "spans": r.counts["spans"],
        "events": r.counts["events"], "skipped": r.counts["skipped_lines"], "peak_rss_mib": rss_mib,
        "import_seconds": t0 - t_import,
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description="ingest benchmark")
    ap.add_argument("--mib", type=float, default=200)
    ap.add_argument("--repeat", type=int, default=3, help="runs to make (each in a fresh process)")
    ap.add_argument("--work", default=os.environ.get("TRACEKIT_BENCH_DIR", str(Path(tempfile.gettempdir()) / "tracekit-bench")))
    ap.add_argument("--store", help="ingest into a fresh prefix under this store URL instead of a local directory")
    ap.add_argument("--moto", action="store_true", help="ingest into an S3 bucket on moto's server on loopback")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    if a.moto:
        with _moto() as url:
            _bench(a, url)
    else:
        _bench(a, a.store)


def _moto():
    """An S3 bucket on moto's standalone server on 127.0.0.1, its endpoint and test
    credentials in the environment the children inherit."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def run():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                          AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            import s3fs

            s3fs.S3FileSystem().mkdir("bench")
            yield "s3://bench/store"
        finally:
            proc.terminate()
            proc.wait()

    return run()


def _bench(a, store_url: str | None) -> None:
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    # (the generator's version is in the name: a changed generator makes a new input)
    src = work / f"fgraph-v{GENERATOR_VERSION}-{a.mib:g}MiB.txt"
    if not src.exists():
        print(f"generating {src} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(HERE / "gen_fgraph.py"), str(src), "--mib", str(a.mib)], check=True)
    store = work / "store"
    runs = []
    for i in range(max(a.repeat, 1)):
        shutil.rmtree(store, ignore_errors=True)
        target = f"{store_url.rstrip('/')}/run-{os.getpid()}-{i}" if store_url else str(store)
        out = subprocess.run([sys.executable, __file__, "--child", str(src), target], check=True,
                             capture_output=True, text=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda r: r["seconds"])
    m = runs[len(runs) // 2]
    best = runs[0]
    mb = m["bytes"] / 1e6
    print(f"input        {m['bytes'] / (1 << 20):.1f} MiB, {m['lines']} lines ({src.name})")
    print(f"store        {store_url + ' (a fresh prefix per run)' if store_url else 'a local directory'}")
    print(f"ingest       {m['seconds']:.2f} s: {mb / m['seconds']:.1f} MB/s, {m['lines'] / m['seconds']:,.0f} lines/s"
          f" (median of {len(runs)} runs)")
    if len(runs) > 1:
        every = ", ".join(f"{r['seconds']:.2f}" for r in runs)
        print(f"best run     {best['seconds']:.2f} s: {mb / best['seconds']:.1f} MB/s, {best['lines'] / best['seconds']:,.0f} lines/s"
              f"   (all runs: {every} s)")
    print(f"startup      {m['import_seconds']:.2f} s importing the library, once per process (not in the figures above;"
          f" with it: {mb / (m['seconds'] + m['import_seconds']):.1f} MB/s)")
    print(f"output       {m['spans']} spans, {m['events']} events, {m['skipped']} lines skipped")
    print(f"peak RSS     {max(r['peak_rss_mib'] for r in runs):.0f} MiB (the highest of the runs)")
    shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
