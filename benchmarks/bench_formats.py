"""Benchmark every input format in one table: MB/s, lines/s and peak RSS of ``tracekit
ingest``, beside a bare Python ``for line in file`` loop over the same file and, for
trace.dat, ``trace-cmd report`` writing the text of the same file, all in the same run.

Usage: python benchmarks/bench_formats.py [--mib 100] [--repeat 3] [--tracedat FILE ...]
                                          [--formats function_graph,events,...] [--startup]

Text inputs are generated (benchmarks/gen_fgraph.py, benchmarks/gen_text.py: the printf
formats of the kernel, trace-cmd and perf) and cached in the work directory
(``$TRACEKIT_BENCH_DIR``, default a directory under /tmp), outside the repository.  A
trace.dat cannot be generated faithfully: give real recordings with ``--tracedat``.  The
corpus ones are small (the largest about 4 MB); ``benchmarks/record_tracedat.py`` records a
large one under QEMU (function_graph below exit_mmap with the sched, kmem, tlb and irq
events: about 1.2 million records, 6.8 MB with zstd) into
/tmp/tracekit-bench/capture/bench-tracedat/trace.dat.

Each ingest runs in a fresh child process, into a fresh store, with the library imported
and its compiled loops loaded (by ingesting the file's first lines) before its clock
starts: both are a per-process cost, shown by ``--startup``.  Its peak RSS is the child's
high-water mark.  Shared machines change speed from minute to
minute, so every measurement is repeated and the median is printed, and the ratios to the
line loop measured beside it hold better than the absolute figures; so does the CPU time
of the ingest (all its threads), printed last.

``--startup`` also measures a fresh process's start (wall and CPU seconds, the CPU time
holding better on a loaded machine).  A start is a whole process, timed by this one from
its exec to its exit, sources byte-compiled and numba's cache filled as an installation
leaves them: the interpreter, ``tracekit --version``, and ``tracekit ingest`` of a 4 KiB
file of each compiled format, first with an empty compile cache (numba compiles the
scanning loops), then with the cache it left, as a user runs it (the figure the start-up
target is about), then split into imports, numba's target, each compiled function loaded
from the cache, and the command, interpreted (as a small input is read) and compiled.
Last, both ways over inputs of 4 to 256 KiB, which is how the interpreted path's bound
(tracekit.jit.SMALL_TEXT_BYTES) is chosen.
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
    "function_tgid_tsc": ("gen_text.py", ["function", "--tgid", "--counter-clock", "--sym-offset"]),
    "events": ("gen_text.py", ["events"]),
    "events_noirq_4x": ("gen_text.py", ["events", "--noirq-info", "--pid-width", "5"]),
    "tracecmd_report": ("gen_text.py", ["tracecmd"]),
    # report -l -t --ts-diff of events and function tracer records
    "tracecmd_report_opts": ("gen_text.py", ["tracecmd", "--latency", "--nsec", "--ts-diff", "--function", "0.5"]),
    "perf_script": ("gen_text.py", ["perf"]),
    "latency": ("gen_text.py", ["latency"]),
}
#: bump when a generator changes what it writes
GENERATOR_VERSION = 8


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
    store = work / f"store-{os.getpid()}"  # (the work directory is shared with other benchmarks)
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


def _trace_cmd_report(path: Path) -> tuple[float, float] | None:
    """Wall and CPU seconds of ``trace-cmd report`` writing the text of ``path``."""
    if not shutil.which("trace-cmd"):
        return None
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.devnull, "wb") as null:
        subprocess.run(["trace-cmd", "report", "-i", str(path)], stdout=null, stderr=subprocess.DEVNULL, check=True)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t0, (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)


#: formats whose small inputs ``--startup`` ingests (one compiled reader each)
STARTUP_FORMATS = ("function_graph", "events")
#: the small input the start-up target is about, and the sizes around the interpreted
#: path's bound (tracekit.jit.SMALL_TEXT_BYTES) at which both ways are timed
STARTUP_KIB = 4
THRESHOLD_KIB = (4, 16, 64, 128, 256)


def _cut(name: str, work: Path, kib: int) -> Path:
    """The first whole lines of ``name``'s generated input, at most ``kib`` KiB."""
    out = work / f"{name}-v{GENERATOR_VERSION}-{kib}KiB.txt"
    if not out.exists():
        with open(_generate(name, work, max(1.0, kib / 1024)), "rb") as f:
            head = f.read(kib << 10)
        out.write_bytes(head[: head.rfind(b"\n") + 1])
    return out


def _startup_child(mode: str, path: str, store: str) -> None:
    """One fresh process's start, phase by phase, as ``tracekit ingest PATH`` runs it, with
    the compiled loops run as the ingest decides (``auto``), or ``compiled`` or
    ``interpreted`` whatever the size: prints one JSON line of phases (name, wall s, CPU s)
    and of the compiled functions it loaded from numba's cache or compiled (name, s,
    loaded)."""
    def clock() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    phases: list[tuple[str, float, float]] = []
    last = clock()

    def phase(name: str) -> None:
        nonlocal last
        now = clock()
        phases.append((name, now[0] - last[0], now[1] - last[1]))
        last = now

    import tracekit.cli

    phase("imports: the command line (tracekit.cli)")
    from tracekit import parsers
    from tracekit import pipeline

    parsers.formats()
    phase("imports: the ingest (tracekit.pipeline, the format modules)")
    loads: list[tuple[str, float, bool]] = []
    if mode != "auto":
        pipeline._small = lambda real, mod: mode == "interpreted"
    if mode == "compiled":
        from tracekit.jit import _numba_without_blas

        _numba_without_blas()
        from numba.core import caching
        from numba.core.registry import cpu_target

        load_overload = caching.Cache.load_overload

        def timed(self, sig, target_context):
            t = time.perf_counter()
            got = load_overload(self, sig, target_context)
            loads.append((self._py_func.__qualname__, time.perf_counter() - t, got is not None))
            return got

        caching.Cache.load_overload = timed
        phase("imports: numba")
        cpu_target.target_context.refresh()
        phase("numba's CPU target (made ready by the first compiled call)")
    sys.argv = ["tracekit", "ingest", path, "--store", store]
    code = tracekit.cli.run()
    phase("the command (options, store, compiled loads, ingest, summary)")
    print(json.dumps({"phases": phases, "loads": loads, "numba": "numba" in sys.modules}), flush=True)
    sys.stderr.flush()
    os._exit(code)  # (as tracekit.cli.main ends the process)


def _rusage_children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _fresh(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Run ``cmd`` in a fresh process: (wall s, CPU s, its standard output)."""
    cpu0 = _rusage_children_cpu()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, _rusage_children_cpu() - cpu0, out


def _row(what: str, wall: float, cpu: float) -> None:
    print(f"{what:74s} {wall:7.2f} {cpu:7.2f}")


class _Starts:
    """Fresh processes, each timed from its exec to its exit by this process (wall, and
    CPU from the children's rusage), medians of ``n``, with a numba cache of their own and
    sources byte-compiled as an installation has them."""

    def __init__(self, work: Path, n: int) -> None:
        self.work, self.n = work, n
        self.cache = Path(tempfile.mkdtemp(prefix="numba-cache-", dir=work))
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        self.env["NUMBA_CACHE_DIR"] = str(self.cache)
        self.store = work / f"startup-store-{os.getpid()}"

    def fresh(self, cmd: list[str], keep_store: bool = False) -> tuple[float, float, str]:
        if not keep_store:
            shutil.rmtree(self.store, ignore_errors=True)
        return _fresh(cmd, self.env)

    def median(self, cmd: list[str], keep_store: bool = False) -> tuple[float, float, list[str]]:
        runs = [self.fresh(cmd, keep_store) for _ in range(self.n)]
        return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), [r[2] for r in runs])

    def child(self, mode: str, path: Path) -> list[str]:
        return [sys.executable, __file__, "--startup-child", mode, str(path), str(self.store)]

    def close(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)
        shutil.rmtree(self.store, ignore_errors=True)


def _phases(st: _Starts, mode: str, path: Path) -> dict:
    """Medians of the phases of ``mode``'s child over ``path``, printed."""
    runs = []
    for _ in range(st.n):
        wall, cpu, out = st.fresh(st.child(mode, path))
        runs.append((wall, cpu, json.loads(out.strip().splitlines()[-1])))
    _row(f"  {mode}: the whole process (numba {'imported' if runs[0][2]['numba'] else 'not imported'})",
         statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    _row("    the interpreter's start and exit (the process less the phases below)",
         statistics.median(r[0] - sum(p[1] for p in r[2]["phases"]) for r in runs),
         statistics.median(r[1] - sum(p[2] for p in r[2]["phases"]) for r in runs))
    for i, (phase, _, _) in enumerate(runs[0][2]["phases"]):
        _row(f"    {phase}", statistics.median(r[2]["phases"][i][1] for r in runs),
             statistics.median(r[2]["phases"][i][2] for r in runs))
    return runs[len(runs) // 2][2]


def _startup(work: Path, repeat: int) -> None:
    """A fresh process's start: the interpreter, ``tracekit --version``, and ``tracekit
    ingest`` of a small file of each compiled format: first with an empty numba cache (it
    compiles), then with the cache it left, as a user runs it and split into its phases,
    interpreted and compiled; then both ways over sizes around the interpreted path's
    bound."""
    from tracekit.jit import SMALL_TEXT_BYTES

    script = Path(sys.executable).with_name("tracekit")
    tk = [str(script)] if script.exists() else [sys.executable, "-m", "tracekit"]
    st = _Starts(work, max(repeat, 1))
    print(f"\nstartup: fresh processes, each timed from exec to exit, medians of {st.n}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs{'':2s}wall s   CPU s")
    try:
        _row("python -c pass", *st.median([sys.executable, "-c", "pass"])[:2])
        _row("tracekit --version", *st.median([*tk, "--version"])[:2])
        for name in STARTUP_FORMATS:
            small = _cut(name, work, STARTUP_KIB)
            kib = small.stat().st_size / 1024
            wall, cpu, out = st.fresh(st.child("compiled", small))
            first = json.loads(out.strip().splitlines()[-1])
            compiled = sorted({f for f, _, hit in first["loads"] if not hit})
            _row(f"tracekit ingest {kib:.1f} KiB {name}, compiled, empty cache: compiles {len(compiled)}", wall, cpu)
            # the figure the start-up target is about: the console script as a user runs it
            _row(f"tracekit ingest {kib:.1f} KiB {name} (cached) into a new store", *st.median([*tk, "ingest", str(small), "--store", str(st.store)])[:2])
            seed = _cut(name, work, STARTUP_KIB // 2)
            runs = []
            for _ in range(st.n):
                st.fresh([*tk, "ingest", str(seed), "--store", str(st.store)])
                runs.append(st.fresh([*tk, "ingest", str(small), "--store", str(st.store)], keep_store=True))
            _row(f"tracekit ingest {kib:.1f} KiB {name} (cached) into a store of one run",
                 statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
            _phases(st, "auto", small)
            got = _phases(st, "compiled", small)
            again = sorted({f for f, _, hit in got["loads"] if not hit})
            print(f"    of which compiled functions loaded from the cache ({sum(h for *_, h in got['loads'])}): "
                  + ", ".join(f"{f} {s * 1000:.0f} ms" for f, s, h in got["loads"] if h))
            print(f"    compiled again although cached: {', '.join(again) if again else 'none'}")
        print(f"\ninterpreted against compiled (cached), the whole process; inputs up to "
              f"{SMALL_TEXT_BYTES >> 10} KiB are read interpreted{'':4s}interp. wall/CPU  compiled wall/CPU")
        for name in STARTUP_FORMATS:
            for kib in THRESHOLD_KIB:
                path = _cut(name, work, kib)
                i = st.median(st.child("interpreted", path))
                c = st.median(st.child("compiled", path))
                print(f"  {name} {path.stat().st_size / 1024:6.1f} KiB{'':38s} {i[0]:6.2f} {i[1]:6.2f}   {c[0]:6.2f} {c[1]:6.2f}")
    finally:
        st.close()


def main() -> None:
    ap = argparse.ArgumentParser(description="per-format ingest benchmark")
    ap.add_argument("--mib", type=float, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--formats", default=",".join(TEXT_FORMATS))
    ap.add_argument("--tracedat", nargs="*", default=[], help="real trace.dat recordings to measure")
    ap.add_argument("--startup", action="store_true")
    ap.add_argument("--work", default=os.environ.get("TRACEKIT_BENCH_DIR", str(Path(tempfile.gettempdir()) / "tracekit-bench")))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--startup-child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    if a.startup_child:
        _startup_child(*a.startup_child)
        return
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    inputs = [(name, _generate(name, work, a.mib)) for name in a.formats.split(",") if name]
    inputs += [("trace.dat " + "/".join(Path(p).parts[-3:-1])[-12:], Path(p)) for p in a.tracedat]
    print(f"{a.repeat} runs each, medians; load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    head = (f"{'format':22s} {'MiB':>7s} {'lines':>10s} {'ingest s':>9s} {'MB/s':>7s} {'lines/s':>11s} "
            f"{'peak RSS':>9s} {'loop s':>7s} {'x loop':>7s} {'trace-cmd s':>11s} {'CPU s':>6s}")
    # (trace-cmd s: the wall time of trace-cmd report over the same trace.dat, its CPU time in brackets)
    print(head)
    print("-" * len(head))
    for name, path in inputs:
        runs, loops, reports = [], [], []
        for _ in range(max(a.repeat, 1)):
            runs.append(_ingest(path, work))
            loops.append(_line_loop(path))
            if name.startswith("trace.dat"):
                reports.append(_trace_cmd_report(path))
        if any(r["status"] != "ingested" for r in runs):
            bad = next(r for r in runs if r["status"] != "ingested")
            print(f"{name:22s} {bad['status']}: {bad['error']}")
            continue
        size = path.stat().st_size
        sec = statistics.median(r["seconds"] for r in runs)
        loop = statistics.median(loops)
        lines = runs[0]["lines"]
        rss = max(r["peak_rss_mib"] for r in runs)
        cpu = statistics.median(r["cpu_seconds"] for r in runs)
        tc = f"{'':>11s}"
        if reports and None not in reports:  # wall, and CPU in brackets
            tc = f"{statistics.median(w for w, _ in reports):5.2f} ({statistics.median(c for _, c in reports):.2f})"
            tc = f"{tc:>11s}"
        print(f"{name:22s} {size / (1 << 20):7.1f} {lines:10d} {sec:9.2f} {size / 1e6 / sec:7.1f} {lines / sec:11,.0f} "
              f"{rss:6.0f} MiB {loop:7.2f} {sec / loop:7.1f} {tc} {cpu:6.2f}")
    if a.startup:
        _startup(work, a.repeat)


if __name__ == "__main__":
    main()
