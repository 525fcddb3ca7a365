"""Shared by the report tests: a store of the real kbuild before/after captures, built once
per test session, and a small synthetic store with hostile strings."""

from __future__ import annotations

import functools
import json
import tempfile
import warnings
from pathlib import Path

import polars as pl
import pytest
from conftest import CORPUS

from tracekit.schema import RUN_SCHEMA, SPAN_SCHEMA, STORED_EVENT_SCHEMA, WINDOW_SCHEMA, conform

KBUILD = CORPUS / "kbuild-x86_64-6.1.192"
PATCH_0001 = KBUILD / "patches" / "0001-mm-reenact-non-preemptible-pagetable-freeing.patch"


def latency_format_available() -> bool:
    """Whether the latency-tracer parser is registered (it is developed separately)."""
    from tracekit import parsers

    try:
        parsers.get("latency")
    except (KeyError, ImportError):
        return False
    return True


@functools.lru_cache(maxsize=None)
def kbuild_store() -> Path:
    """A store with corpus/kbuild-x86_64-6.1.192: A as "before", B as "after" of patch
    "pgfree-lat": fgraph_exit_mmap.txt, and latency_preemptoff.run{1,2,3}.txt when the
    latency parser is registered."""
    import tracekit

    if not KBUILD.is_dir():
        pytest.fail(f"the real-trace corpus is missing: {KBUILD}")
    root = Path(tempfile.mkdtemp(prefix="tk-report-store-"))
    for side, label in (("A", "before"), ("B", "after")):
        paths = [str(KBUILD / side / "fgraph_exit_mmap.txt")]
        if latency_format_available():
            paths += [str(KBUILD / side / f"latency_preemptoff.run{i}.txt") for i in (1, 2, 3)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = tracekit.ingest(paths, store=root, patch="pgfree-lat", label=label, arch="x86_64")
        bad = [r for r in results if r.error]
        assert not bad, [r.error for r in bad]
    return root


HOSTILE = "<script>alert('x')</script>"


def _part(df: pl.DataFrame, run_id: str, label: str, patch: str = "evil", arch: str = "x86_64") -> pl.DataFrame:
    return df.with_columns(
        pl.lit(patch).alias("patch"), pl.lit(arch).alias("arch"), pl.lit(label).alias("label"), pl.lit(run_id).alias("run_id")
    )


def hostile_source(n: int = 30):
    """A synthetic store (frames in memory) whose task names, function names and window
    symbols are hostile HTML, with long and non-ASCII names to stress the text layout."""
    from tracekit.reports.compare import FrameSource

    long_func = "a_function_with_a_rather_long_name_that_will_not_fit_a_column_" + "x" * 40
    runs = []
    spans = []
    windows = []
    events = []
    for rid, label, scale in (("r-before", "before", 1.0), ("r-after", "after", 3.0)):
        runs.append({
            "run_id": rid, "path": f"/traces/{label}\t{HOSTILE}.txt", "format": "function_graph",
            "tracer": "function_graph", "arch": "x86_64", "kernel": f"6.1-{label}-\u00b5", "patch": "evil",
            "label": label, "partition": {"patch": "evil", "arch": "x86_64", "label": label},
            "config": json.dumps({"preempt_model": "full"}),
        })
        for func in ("exit_mmap", HOSTILE, long_func):
            spans.append(conform(pl.DataFrame({
                "span_id": list(range(n)), "func": [func] * n, "comm": [HOSTILE] * n,
                "dur_ns": [int((1000 + 37 * i) * scale) for i in range(n)],
                "complete": [True] * n, "depth": [0] * n, "cpu": [0] * n, "pid": [7] * n,
                "seq": list(range(n)),
            }), SPAN_SCHEMA).pipe(_part, rid, label))
        windows.append(conform(pl.DataFrame({
            "window": [0], "tracer": ["preemptoff"], "latency_ns": [int(5_000_000 * scale)], "cpu": [0],
            "pid": [7], "comm": [HOSTILE], "started_at": [HOSTILE], "ended_at": ["<b>bold</b>"],
        }), WINDOW_SCHEMA).pipe(_part, rid, label))
        events.append(conform(pl.DataFrame({
            "seq": [1, 2, 3], "ts_ns": [0, 1000, int(5_000_000 * scale)], "cpu": [0, 0, 0], "window": [0, 0, 0],
            "kind": ["function"] * 3, "func": [HOSTILE, "exit_mmap", "tracer_preempt_on"], "comm": [HOSTILE] * 3,
        }), STORED_EVENT_SCHEMA).pipe(_part, rid, label))
        events.append(conform(pl.DataFrame({
            "seq": [10, 11], "event": ["tlb_flush", "tlb_flush"], "kind": ["event", "event"],
            "body": [f"pages:1 reason:{HOSTILE} (9)", "pages:-1 reason:flush on task switch (0)"],
        }), STORED_EVENT_SCHEMA).pipe(_part, rid, label))
    runs_df = conform(pl.DataFrame(runs), RUN_SCHEMA)
    return FrameSource(
        runs_lf=runs_df.lazy(),
        spans_lf=pl.concat(spans).lazy(),
        events_lf=pl.concat(events).lazy(),
        windows_lf=pl.concat(windows).lazy(),
    ), long_func


def _mark(us: float) -> str:
    """function_graph's duration mark (kernel/trace/trace_output.c, trace_find_mark)."""
    for limit, mark in ((1e6, "$"), (1e5, "@"), (1e4, "*"), (1e3, "#"), (100, "!"), (10, "+")):
        if us > limit:
            return mark
    return " "


def fgraph_text(calls: list[tuple[str, str, float, float]], pid: int = 425) -> str:
    """function_graph text (abstime, proc) of top-level calls, each ``(caller, callee,
    caller_us, callee_us)``: ``caller() {``, a leaf ``callee();`` inside it, ``}``."""
    lines = ["# tracer: function_graph", "#",
             "#     TIME        CPU  TASK/PID         DURATION                  FUNCTION CALLS",
             "#      |          |     |    |           |   |                     |   |   |   |"]
    t = 10.0
    for caller, callee, outer, inner in calls:
        lines.append(f"{t:12.6f} |   0)  pgtfree-{pid}   |               |  {caller}() {{")
        lines.append(f"{t + 1e-6:12.6f} |   0)  pgtfree-{pid}   | {_mark(inner)} {inner:.3f} us {'':<3}|    {callee}();")
        lines.append(f"{t + outer / 1e6:12.6f} |   0)  pgtfree-{pid}   | {_mark(outer)} {outer:.3f} us {'':<3}|  }}")
        t += outer / 1e6 + 0.001
    return "\n".join(lines) + "\n"


def boots_store(root: Path, medians_us: dict[str, list[float]], patch: str = "synthetic",
                func: str = "free_pgtables", calls: int = 7) -> Path:
    """A store of one function_graph trace per boot (``--boot``): for each label, one boot
    per median given, each with ``calls`` calls of ``func`` inside exit_mmap whose
    durations are the median -1%, ..., +1% (so the median of a boot's calls under
    exit_mmap is exactly the one given), and one call inside unmap_region of ten times
    that."""
    import tracekit

    for label, medians in medians_us.items():
        for i, m in enumerate(medians):
            spread = [m * (1 + (k - calls // 2) / 100 / max(calls // 2, 1)) for k in range(calls)]
            rows = [("exit_mmap", func, d * 3, d) for d in spread] + [("unmap_region", func, m * 30, m * 10)]
            path = root / "traces" / f"{label}-boot{i}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(fgraph_text(rows, pid=400 + i))
            [res] = tracekit.ingest([str(path)], store=root / "store", patch=patch, label=label,
                                    arch="x86_64", boot=f"{label}-boot{i}")
            assert res.error is None, res.error
    return root / "store"
