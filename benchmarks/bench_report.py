"""Benchmark: ``tracekit report`` over a store of many spans; prints the seconds of the
comparison, of each output and of the plots, and the peak RSS.

Usage: python benchmarks/bench_report.py [--spans 10000000] [--boots 6] [--repeat 3]

The store is made directly through the store's writer (not by ingesting text, which
bench_ingest.py measures): one run per boot, ``--boots`` a side, each holding an equal
share of the spans as function_graph would record them: half of them nested teardown calls
(exit_mmap > unmap_vmas > unmap_page_range > zap_pte_range, free_pgtables >
free_pgd_range, tlb_finish_mmu > tlb_flush_mmu) among many other short calls, log-normal
durations, the "after" side 10% faster; plus one preemptoff window per run with 44,000
lines.  It is cached in the work directory.  Each repetition runs the whole report (text,
md, html, json and the plots) in a fresh process; the median and the best are printed with
every run's time.
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

#: bump when the generated store changes
GENERATOR_VERSION = 3
TEARDOWN = [
    # (function, parent index or -1, calls per exit_mmap, median us)
    ("exit_mmap", -1, 1, 9000.0),
    ("unmap_vmas", 0, 1, 6000.0),
    ("unmap_page_range", 1, 12, 400.0),
    ("zap_pte_range", 2, 40, 8.0),
    ("free_pgtables", 0, 1, 1500.0),
    ("free_pgd_range", 4, 4, 300.0),
    ("tlb_finish_mmu", 0, 1, 700.0),
    ("tlb_flush_mmu", 6, 2, 300.0),
]


def _run_spans(n: int, seed: int, speed: float):
    """About ``n`` spans of one run: teardown trees, the rest other short calls."""
    import numpy as np
    import polars as pl

    from tracekit.schema import SPAN_SCHEMA, conform

    rng = np.random.default_rng(seed)
    per_exit = sum(k for _, _, k, _ in TEARDOWN)
    exits = max(1, n // (per_exit * 2))  # half the spans are teardown calls
    funcs, parents = [], []
    base = 0
    for _ in range(exits):
        ids = {}
        for i, (f, p, k, med) in enumerate(TEARDOWN):
            for _ in range(k):
                ids.setdefault(i, base)
                funcs.append(f)
                parents.append(ids[p] if p >= 0 else -1)
                base += 1
    tear = len(funcs)
    other = n - tear
    func = np.array(funcs + [f"other_fn_{i}" for i in range(97)] * (other // 97) + ["other_fn_0"] * (other % 97))
    span_id = np.arange(func.size, dtype=np.int64)
    parent = np.concatenate([np.array(parents, dtype=np.int64), np.full(func.size - tear, -1, dtype=np.int64)])
    med = {f: m for f, _, _, m in TEARDOWN}
    mu = np.log(np.array([med.get(f, 2.0) for f in funcs] + [2.0] * (func.size - tear))) + np.log(1000 * speed)
    dur = np.exp(rng.normal(mu, 0.4)).astype(np.int64)
    df = pl.DataFrame({
        "span_id": span_id, "parent_id": pl.Series(parent).replace(-1, None), "cpu": np.zeros(func.size, np.int32),
        "pid": np.full(func.size, 425, np.int32), "comm": "pgtfree", "func": func,
        "depth": np.zeros(func.size, np.int32), "start_ns": span_id * 1000, "dur_ns": dur, "seq": span_id,
        "context": "task", "complete": True, "source": "function_graph",
    })
    return conform(df, SPAN_SCHEMA)


def _window(lines: int, latency_ns: int):
    import numpy as np
    import polars as pl

    from tracekit.schema import STORED_EVENT_SCHEMA, WINDOW_SCHEMA, conform

    ts = np.linspace(0, latency_ns, lines).astype(np.int64)
    ev = pl.DataFrame({"seq": np.arange(lines, dtype=np.int64), "ts_ns": ts, "cpu": np.zeros(lines, np.int32),
                       "kind": "function", "func": [f"fn{i % 211}" for i in range(lines)], "window": np.zeros(lines, np.int32)})
    win = pl.DataFrame({"window": [0], "tracer": ["preemptoff"], "latency_ns": [latency_ns], "cpu": [0], "pid": [425],
                        "comm": ["pgtfree"], "started_at": ["exit_mmap"], "ended_at": ["exit_mmap"],
                        "entries_shown": [lines], "entries_total": [lines]})
    return conform(ev, STORED_EVENT_SCHEMA), conform(win, WINDOW_SCHEMA)


def make_store(root: Path, spans: int, boots: int) -> None:
    from datetime import datetime, timezone

    from tracekit.store import open_store

    st = open_store(root)
    per_run = spans // (2 * boots)
    for side, speed in (("before", 1.0), ("after", 0.9)):
        for b in range(boots):
            run_id = f"bench-{side}-{b}"
            with st.lock(run_id):
                w = st.begin_run(run_id)
                df = _run_spans(per_run, seed=hash((side, b)) & 0xFFFF, speed=speed)
                for start in range(0, df.height, 1 << 20):
                    w.write("spans", df.slice(start, 1 << 20))
                ev, win = _window(44_000, int(11_000_000 * speed))
                w.write("events", ev)
                w.write("windows", win)
                w.commit({"run_id": run_id, "path": f"/bench/{side}-{b}.txt", "format": "function_graph",
                          "tracer": "function_graph", "arch": "x86_64", "kernel": "bench", "patch": "bench",
                          "label": side, "boot_id": f"{side}-boot{b}", "counts": {"spans": df.height},
                          "ingested_at": datetime.now(timezone.utc)})


def _child(store: str, out: str) -> None:
    t_import = time.perf_counter()
    from tracekit.reports.compare import compare, open_source
    from tracekit.reports.plots import make_plots
    from tracekit.reports.render_html import render_html
    from tracekit.reports.render_json import render_json
    from tracekit.reports.render_text import render_text

    t0 = time.perf_counter()
    c = compare(open_source(store), "bench")
    t1 = time.perf_counter()
    render_text(c)
    render_json(c)
    t2 = time.perf_counter()
    plots = make_plots(c, Path(out))
    t3 = time.perf_counter()
    render_html(c, plots)
    t4 = time.perf_counter()
    print(json.dumps({"compare_s": t1 - t0, "text_json_s": t2 - t1, "plots_s": t3 - t2, "html_s": t4 - t3,
                      "total_s": t4 - t0, "import_s": t0 - t_import,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "functions": len(c.groups[0].functions), "calls": sum(f.before.n + f.after.n for f in c.groups[0].functions)}))


def main() -> None:
    ap = argparse.ArgumentParser(description="report benchmark")
    ap.add_argument("--spans", type=int, default=10_000_000)
    ap.add_argument("--boots", type=int, default=6, help="boots (runs) a side: 6 let eight functions have verdicts")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", default=os.environ.get("TRACEKIT_BENCH_DIR", str(Path(tempfile.gettempdir()) / "tracekit-bench")))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(*a.child)
        return
    store = Path(a.work) / f"report-store-{a.spans}-{a.boots}-v{GENERATOR_VERSION}"
    if not (store / "runs").is_dir() or not any((store / "runs").iterdir()):
        shutil.rmtree(store, ignore_errors=True)
        t = time.perf_counter()
        make_store(store, a.spans, a.boots)
        print(f"made the store ({a.spans} spans, {a.boots} boots a side) in {time.perf_counter() - t:.1f} s: {store}")
    runs = []
    for _ in range(a.repeat):
        out = tempfile.mkdtemp(prefix="tk-bench-report-")
        p = subprocess.run([sys.executable, __file__, "--child", str(store), out], capture_output=True, text=True)
        shutil.rmtree(out, ignore_errors=True)
        if p.returncode:
            sys.exit(p.stderr)
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    tot = sorted(r["total_s"] for r in runs)
    last = runs[-1]
    print(f"report over {a.spans} spans ({last['calls']} calls of {last['functions']} functions compared, "
          f"{a.boots} boots a side): median {tot[len(tot) // 2]:.2f} s, best {tot[0]:.2f} s "
          f"(runs: {', '.join(f'{x:.2f}' for x in (r['total_s'] for r in runs))})")
    print(f"  compare {last['compare_s']:.2f} s, text+json {last['text_json_s']:.2f} s, plots {last['plots_s']:.2f} s, "
          f"html {last['html_s']:.2f} s; import {last['import_s']:.2f} s; peak RSS {last['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
