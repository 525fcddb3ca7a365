"""Benchmark every input format in one table: MB/s, lines/s and peak RSS of ``tracekit
ingest``, beside a bare Python ``for line in file`` loop over the same file and, for
trace.dat, ``trace-cmd report`` writing the text of the same file, all in the same run.

Usage: python benchmarks/bench_formats.py [--mib 100] [--repeat 3] [--tracedat FILE ...]
                                          [--formats function_graph,events,...] [--startup]

Text inputs are generated (benchmarks/gen_fgraph.py, benchmarks/gen_text.py: the printf
formats of the kernel, trace-cmd and perf) and cached in the work directory
(``$TRACEKIT_BENCH_DIR``, default a directory under /tmp), outside the repository.  A
trace.dat cannot be generated faithfully: give real recordings with ``--tracedat``.

Each ingest runs in a fresh child process, into a fresh store, with the library imported
and its compiled loops loaded (by ingesting the file's first lines) before its clock
starts: both are a per-process cost, shown by ``--startup``.  Its peak RSS is the child's
high-water mark.  Shared machines change speed from minute to
minute, so every measurement is repeated and the median is printed, and the ratios to the
line loop measured beside it hold better than the absolute figures; so does the CPU time
of the ingest (all its threads), printed last.

``--startup`` also measures a fresh process's start: the first with an empty compile cache
(numba compiles the scanning loops) and the next with the cache it left.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEXT_FORMATS = {
    # name: (generator command, its extra arguments)
    "function_graph": ("gen_fgraph.py", []),
    "function_graph_noproc": ("gen_fgraph.py", ["--no-proc"]),
    "function": ("gen_text.py", ["function"]),
    "events": ("gen_text.py", ["events"]),
    "tracecmd_report": ("gen_text.py", ["tracecmd"]),
    # report -l -t --ts-diff of events and function tracer records
    "tracecmd_report_opts": ("gen_text.py", ["tracecmd", "--latency", "--nsec", "--ts-diff", "--function", "0.5"]),
    "perf_script": ("gen_text.py", ["perf"]),
}
#: bump when a generator changes what it writes
GENERATOR_VERSION = 5


def _generate(name: str, work: Path, mib: float) -> Path:
    script, extra = TEXT_FORMATS[name]
    out = work / f"{name}-v{GENERATOR_VERSION}-{mib:g}MiB.txt"
    if not out.exists():
        print(f"generating {out} ...", file=sys.stderr)
        tmp = out.with_suffix(".part")
        if script == "gen_fgraph.py":
            cmd = [sys.executable, str(HERE / script), str(tmp), "--mib", str(mib), *extra]
        else:
            cmd = [sys.executable, str(HERE / script), *extra, str(tmp), "--mib", str(mib)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        tmp.rename(out)
    return out


def _child(path: str, store: str) -> None:
    from tracekit import parsers
    from tracekit.pipeline import ingest

    parsers.formats()  # (every format module imported)
    _warm(Path(path), Path(store))
    t0, c0 = time.perf_counter(), time.process_time()
    (r,) = ingest([path], store=store, on_error="collect")
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "lines": r.counts.get("lines", 0), "status": r.status, "error": r.error,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _warm(path: Path, store: Path) -> None:
    """Ingest the first lines of ``path`` (all of a binary trace) into a scratch store, so
    that the timed ingest measures throughput: numba loads a compiled loop from its cache at
    the loop's first call, not at import, and that start-up cost is ``--startup``'s."""
    from tracekit.pipeline import ingest

    scratch = store.with_name(store.name + "-warm")
    sample = path
    with open(path, "rb") as f:
        head = f.read(256 << 10)
    if b"\0" not in head and b"\n" in head:
        sample = scratch.with_suffix(".txt")
        sample.write_bytes(head[: head.rfind(b"\n") + 1])
    try:
        ingest([str(sample)], store=str(scratch), on_error="collect")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if sample != path:
            sample.unlink(missing_ok=True)


def _ingest(path: Path, work: Path) -> dict:
    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    out = subprocess.run([sys.executable, __file__, "--child", str(path), str(store)], check=True,
                         capture_output=True, text=True)
    shutil.rmtree(store, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _line_loop(path: Path) -> float:
    t0 = time.perf_counter()
    n = 0
    with open(path, "rb") as f:
        for _line in f:
            n += 1
    return time.perf_counter() - t0


def _trace_cmd_report(path: Path) -> float | None:
    if not shutil.which("trace-cmd"):
        return None
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run(["trace-cmd", "report", "-i", str(path)], stdout=null, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def _startup(work: Path) -> None:
    """A fresh process's start, with an empty numba cache and then with the cache it left."""
    small = _generate("function_graph", work, 1)
    cache = Path(tempfile.mkdtemp(prefix="numba-cache-", dir=work))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    code = ("import time; t=time.perf_counter(); from tracekit.pipeline import ingest; "
            f"ingest([{str(small)!r}], store={str(work / 'startup-store')!r}); "
            "print(time.perf_counter()-t)")
    for what in ("first process (compiles)", "next process (cached)", "next process (cached)"):
        shutil.rmtree(work / "startup-store", ignore_errors=True)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(f"startup  {what:26s} {wall:6.2f} s wall (interpreter, imports and a 1 MiB ingest: "
              f"{float(out.stdout.strip().splitlines()[-1]):.2f} s of it after the interpreter started)")
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(work / "startup-store", ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description="per-format ingest benchmark")
    ap.add_argument("--mib", type=float, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--formats", default=",".join(TEXT_FORMATS))
    ap.add_argument("--tracedat", nargs="*", default=[], help="real trace.dat recordings to measure")
    ap.add_argument("--startup", action="store_true")
    ap.add_argument("--work", default=os.environ.get("TRACEKIT_BENCH_DIR", str(Path(tempfile.gettempdir()) / "tracekit-bench")))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    inputs = [(name, _generate(name, work, a.mib)) for name in a.formats.split(",") if name]
    inputs += [("trace.dat", Path(p)) for p in a.tracedat]
    print(f"{a.repeat} runs each, medians; load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    head = (f"{'format':22s} {'MiB':>7s} {'lines':>10s} {'ingest s':>9s} {'MB/s':>7s} {'lines/s':>11s} "
            f"{'peak RSS':>9s} {'loop s':>7s} {'x loop':>7s} {'trace-cmd s':>11s} {'CPU s':>6s}")
    print(head)
    print("-" * len(head))
    for name, path in inputs:
        runs, loops, reports = [], [], []
        for _ in range(max(a.repeat, 1)):
            runs.append(_ingest(path, work))
            loops.append(_line_loop(path))
            if name == "trace.dat":
                reports.append(_trace_cmd_report(path))
        if any(r["status"] != "ingested" for r in runs):
            print(f"{name:22s} failed: {runs[0]['error']}")
            continue
        size = path.stat().st_size
        sec = statistics.median(r["seconds"] for r in runs)
        loop = statistics.median(loops)
        lines = runs[0]["lines"]
        rss = max(r["peak_rss_mib"] for r in runs)
        cpu = statistics.median(r["cpu_seconds"] for r in runs)
        tc = f"{statistics.median(reports):11.2f}" if reports and None not in reports else f"{'':>11s}"
        print(f"{name:22s} {size / (1 << 20):7.1f} {lines:10d} {sec:9.2f} {size / 1e6 / sec:7.1f} {lines / sec:11,.0f} "
              f"{rss:6.0f} MiB {loop:7.2f} {sec / loop:7.1f} {tc} {cpu:6.2f}")
    if a.startup:
        _startup(work)


if __name__ == "__main__":
    main()
