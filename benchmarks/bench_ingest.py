"""Benchmark: ingest generated function_graph text and print MB/s, lines/s and peak RSS.

Usage: python benchmarks/bench_ingest.py [--mib 200] [--repeat 3]

The input is made by benchmarks/gen_fgraph.py (several CPUs, IRQ markers, task switches,
nesting ten deep) and cached in the work directory.  Each run ingests it through the same
code as ``tracekit ingest``, into a fresh store, in a fresh child process (so that the
generator's memory does not count in its peak RSS, the process's high-water mark).  The
runs are repeated: shared and virtual machines change speed from one minute to the next,
so the median and the best of the runs are printed, with every run's time.
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
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    # (the generator's version is in the name: a changed generator makes a new input)
    src = work / f"fgraph-v{GENERATOR_VERSION}-{a.mib:g}MiB.txt"
    if not src.exists():
        print(f"generating {src} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(HERE / "gen_fgraph.py"), str(src), "--mib", str(a.mib)], check=True)
    store = work / "store"
    runs = []
    for _ in range(max(a.repeat, 1)):
        shutil.rmtree(store, ignore_errors=True)
        out = subprocess.run([sys.executable, __file__, "--child", str(src), str(store)], check=True,
                             capture_output=True, text=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    runs.sort(key=lambda r: r["seconds"])
    m = runs[len(runs) // 2]
    best = runs[0]
    mb = m["bytes"] / 1e6
    print(f"input        {m['bytes'] / (1 << 20):.1f} MiB, {m['lines']} lines ({src.name})")
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
