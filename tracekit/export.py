"""A run out of the store, for other tools: Chrome/Perfetto trace-event JSON, and folded
stacks for flame-graph tools.

Perfetto (``tracekit export --format perfetto``), in the trace-event format that
ui.perfetto.dev and chrome://tracing open:

* one process per CPU (``CPU n``), one thread per task seen on it (``comm-pid``): a task's
  calls on a CPU are one track;
* one complete (``X``) event per completed span that has a start time, ``ts`` and
  ``dur`` in microseconds (fractions keep the nanoseconds), the function as name, its
  depth, context and source in ``args``.  A span's times are clamped into its caller's
  (the trace prints starts to the microsecond and durations to the nanosecond, so a call
  can seem to outlast its caller by less than a microsecond), so that every track nests;
* one instant (``i``, thread scope) event per stored event with a time (tracepoints,
  function hits, samples, markers), on its task's track, or its CPU's when it has no task;
* one slice per latency-tracer window, on a ``latency windows`` process with a thread per
  tracer, from the window's first record for its stated latency;
* what could not be placed (spans without a start time or an exit, events and windows
  without a time) is counted in the file's ``metadata`` and in :class:`Export`.

Folded stacks (``--format folded``), as Brendan Gregg's stackcollapse scripts write them:
one line per call path, ``comm;outer;...;inner VALUE`` (no ``comm`` where the trace names
no task), VALUE the nanoseconds spent in the
innermost function itself (its duration less its complete callees'), summed over the
run's complete spans; for a run with no spans, its samples' callchains, VALUE a count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from tracekit.jit import njit

from tracekit.errors import OptionError
from tracekit.store import Store

__all__ = ["EXPORT_FORMATS", "Export", "perfetto", "folded", "folded_stacks", "nest_clamped", "run_of"]

EXPORT_FORMATS = ("perfetto", "folded")


@dataclass
class Export:
    """What an export wrote, and what it could not place (by reason)."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)


def run_of(store: Store, run: str) -> dict[str, Any]:
    """The runs row of the run whose id is ``run`` or starts with it."""
    runs = store.runs().filter(pl.col("run_id").str.starts_with(run)).collect()
    if runs.height != 1:
        what = "no such run" if runs.height == 0 else f"{runs.height} runs start so; give more of the id"
        raise OptionError(f"--run {run!r}: {what} (tracekit runs)")
    return runs.row(0, named=True)


@njit(cache=True, nogil=True)
def nest_clamped(track, start, end):
    """Per track (rows sorted by track, then start, then longest first), clamp every
    interval into the innermost interval open at its start, so that intervals on a track
    either nest or are disjoint.  Returns the clamped (start, end)."""
    n = len(start)
    s = start.copy()
    e = end.copy()
    stack = np.empty(n, dtype=np.int64)
    top = -1
    for i in range(n):
        if i > 0 and track[i] != track[i - 1]:
            top = -1
        while top >= 0 and e[stack[top]] <= s[i]:
            top -= 1
        if top >= 0:
            p = stack[top]
            if s[i] < s[p]:
                s[i] = s[p]
            if e[i] > e[p]:
                e[i] = e[p]
        top += 1
        stack[top] = i
    return s, e


def _tracks(spans: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """One row per (cpu, pid) track that has spans or events: its thread id and name."""
    keys = pl.concat([spans.select("cpu", "pid", "comm"), events.select("cpu", "pid", "comm")])
    tracks = (keys.group_by("cpu", "pid").agg(pl.col("comm").drop_nulls().first())
              .sort("cpu", "pid", nulls_last=True).with_row_index("tid", offset=1))
    return tracks.with_columns(pl.col("tid").cast(pl.Int64))


def _metadata(kind: str, pid: int, tid: int | None, name: str, sort: int | None = None) -> list[dict]:
    ev: dict[str, Any] = {"name": kind, "ph": "M", "pid": pid, "args": {"name": name}}
    if tid is not None:
        ev["tid"] = tid
    out = [ev]
    if sort is not None:
        key = "process_sort_index" if kind == "process_name" else "thread_sort_index"
        out.append({"name": key, "ph": "M", "pid": pid, **({"tid": tid} if tid is not None else {}),
                    "args": {"sort_index": sort}})
    return out


def _us(ns: np.ndarray | int) -> Any:
    """Nanoseconds as trace-event microseconds (three decimals keep every nanosecond)."""
    return np.round(np.asarray(ns, dtype=np.float64) / 1000.0, 3)


def perfetto(store: Store, run: str) -> Export:
    """The run as Chrome/Perfetto trace-event JSON (see the module's description)."""
    row = run_of(store, run)
    rid = row["run_id"]
    spans = store.spans().filter(pl.col("run_id") == rid).collect()
    events = store.events().filter(pl.col("run_id") == rid).collect()
    windows = store.windows().filter(pl.col("run_id") == rid).collect()
    left: dict[str, int] = {}

    placed = spans.filter(pl.col("complete") & pl.col("start_ns").is_not_null() & pl.col("dur_ns").is_not_null())
    if spans.height - placed.height:
        left["spans without a start time or an exit"] = spans.height - placed.height
    timed = events.filter(pl.col("ts_ns").is_not_null())
    if events.height - timed.height:
        left["events without a time"] = events.height - timed.height

    tracks = _tracks(placed, timed)
    cpu_pid = {c: i + 1 for i, c in enumerate(sorted({c for c in tracks["cpu"].to_list() if c is not None}))}
    no_cpu = len(cpu_pid) + 1
    trace: list[dict] = []
    for cpu, p in cpu_pid.items():
        trace += _metadata("process_name", p, None, f"CPU {cpu}", sort=cpu)
    if tracks["cpu"].null_count():
        trace += _metadata("process_name", no_cpu, None, "CPU unknown", sort=1 << 20)
    for t in tracks.iter_rows(named=True):
        p = cpu_pid.get(t["cpu"], no_cpu)
        who = f"{t['comm'] or '<...>'}-{t['pid']}" if t["pid"] is not None else "(no task)"
        trace += _metadata("thread_name", p, t["tid"], who, sort=t["pid"] if t["pid"] is not None else -1)
    proc = {t["tid"]: cpu_pid.get(t["cpu"], no_cpu) for t in tracks.iter_rows(named=True)}

    trace += _span_events(placed, tracks, proc)
    trace += _instant_events(timed, tracks, proc)
    win, missing = _window_slices(windows, events, pid=no_cpu + 1)
    if missing:
        left["windows without a time"] = missing
    trace += win
    doc = {
        "displayTimeUnit": "ns",
        "traceEvents": trace,
        "metadata": {
            "tracekit-run": rid, "patch": row["patch"], "label": row["label"], "arch": row["arch"],
            "kernel": row["kernel"], "format": row["format"], "path": row["path"],
            "left-out": left,
        },
    }
    counts = {"spans": placed.height, "events": timed.height, "windows": len(win)}
    return Export(json.dumps(doc, separators=(",", ":")), counts, left)


def _track_ids(df: pl.DataFrame, tracks: pl.DataFrame) -> pl.DataFrame:
    return df.join(tracks.select("cpu", "pid", "tid"), on=["cpu", "pid"], how="left", nulls_equal=True)


def _span_events(spans: pl.DataFrame, tracks: pl.DataFrame, proc: dict[int, int]) -> list[dict]:
    df = _track_ids(spans, tracks).sort(["tid", "start_ns", "dur_ns"], descending=[False, False, True])
    if not df.height:
        return []
    start = df["start_ns"].to_numpy().astype(np.int64)
    s, e = nest_clamped(df["tid"].to_numpy().astype(np.int64), start, start + df["dur_ns"].to_numpy().astype(np.int64))
    ts, dur = _us(s), _us(e - s)
    out = []
    for i, r in enumerate(df.select("func", "tid", "depth", "context", "source", "dur_ns").iter_rows()):
        func, tid, depth, context, source, stated = r
        args = {"depth": depth, "context": context, "source": source, "dur_ns": stated}
        out.append({"name": func or "?", "cat": context or "task", "ph": "X", "ts": float(ts[i]),
                    "dur": float(dur[i]), "pid": proc[tid], "tid": tid, "args": args})
    return out


def _instant_events(events: pl.DataFrame, tracks: pl.DataFrame, proc: dict[int, int]) -> list[dict]:
    df = _track_ids(events, tracks).sort("ts_ns")
    ts = _us(df["ts_ns"].to_numpy())
    out = []
    for i, (kind, event, func, body, cpu, tid) in enumerate(df.select("kind", "event", "func", "body", "cpu", "tid").iter_rows()):
        args = {k: v for k, v in (("kind", kind), ("func", func), ("body", body), ("cpu", cpu)) if v is not None}
        out.append({"name": event or func or kind, "cat": kind, "ph": "i", "s": "t", "ts": float(ts[i]),
                    "pid": proc[tid], "tid": tid, "args": args})
    return out


def _window_slices(windows: pl.DataFrame, events: pl.DataFrame, pid: int) -> tuple[list[dict], int]:
    """One slice per window that has timed records: from its first record, for its stated
    latency; (slices, windows without a time)."""
    if not windows.height:
        return [], 0
    first = (events.filter(pl.col("window").is_not_null() & pl.col("ts_ns").is_not_null())
             .group_by("window").agg(pl.col("ts_ns").min().alias("t0")))
    w = windows.join(first, on="window", how="left").sort("window")
    timed = w.filter(pl.col("t0").is_not_null() & pl.col("latency_ns").is_not_null())
    tracers = sorted(set(timed["tracer"].drop_nulls().to_list()))
    out = _metadata("process_name", pid, None, "latency windows", sort=-1) if timed.height else []
    tid = {t: i + 1 for i, t in enumerate(tracers)}
    for t, i in tid.items():
        out += _metadata("thread_name", pid, i, t)
    for r in timed.iter_rows(named=True):
        args = {k: r[k] for k in ("window", "latency_ns", "cpu", "pid", "comm", "started_at", "ended_at") if r[k] is not None}
        out.append({"name": f"{r['tracer']} {r['latency_ns'] / 1000:g} us", "cat": "latency", "ph": "X",
                    "ts": float(_us(r["t0"])), "dur": float(_us(r["latency_ns"])), "pid": pid,
                    "tid": tid.get(r["tracer"], 0), "args": args})
    return out, w.height - timed.height


def folded_stacks(spans: pl.DataFrame, comm: bool = True) -> pl.DataFrame:
    """(stack, value): per call path ``comm;outer;...;inner``, the nanoseconds spent in the
    innermost function itself (its duration less its complete callees'), over the
    complete spans of ``spans`` (one run or several; the call tree is followed within each
    run, through incomplete callers too).  Without ``comm`` the paths start at the
    outermost function."""
    empty = pl.DataFrame(schema={"stack": pl.String, "value": pl.Int64})
    df = spans.select("run_id", "span_id", "parent_id", "comm", "complete", "dur_ns",
                      pl.col("func").fill_null("?"))
    done = df.filter(pl.col("complete") & pl.col("dur_ns").is_not_null())
    if not done.height:
        return empty
    callees = done.group_by("run_id", "parent_id").agg(pl.col("dur_ns").sum().alias("callees"))
    done = (done.join(callees, left_on=["run_id", "span_id"], right_on=["run_id", "parent_id"], how="left")
            .select("run_id", "span_id", (pl.col("dur_ns") - pl.col("callees").fill_null(0)).clip(lower_bound=0).alias("self_ns")))
    # each span's path: its caller's path and its own name, one nesting level at a time
    ids = df.select("run_id", pl.col("span_id").alias("parent_id"))
    level = (df.join(ids, on=["run_id", "parent_id"], how="anti")
             .with_columns(path=pl.when(pl.col("comm").is_null() | (not comm)).then(pl.col("func"))
                           .otherwise(pl.col("comm") + ";" + pl.col("func"))))
    found = []
    while level.height:
        found.append(level.select("run_id", "span_id", "path"))
        up = level.select("run_id", pl.col("span_id").alias("parent_id"), pl.col("path").alias("up"))
        level = (df.join(up, on=["run_id", "parent_id"], how="inner")
                 .with_columns(path=pl.col("up") + ";" + pl.col("func")).drop("up"))
    paths = pl.concat(found)
    out = (done.join(paths, on=["run_id", "span_id"], how="inner").group_by("path")
           .agg(pl.col("self_ns").sum().alias("value")).rename({"path": "stack"}))
    return out.filter(pl.col("value") > 0).sort("stack")


def _sample_stacks(events: pl.DataFrame) -> pl.DataFrame:
    """(stack, value): per callchain of the samples (outermost first), the number of
    samples."""
    s = events.filter((pl.col("kind") == "sample") & pl.col("callchain").is_not_null())
    if not s.height:
        return pl.DataFrame(schema={"stack": pl.String, "value": pl.Int64})
    s = s.with_columns(stack=pl.col("comm").fill_null("?") + ";" + pl.col("callchain").list.reverse().list.join(";"))
    return s.group_by("stack").agg(pl.len().cast(pl.Int64).alias("value")).sort("stack")


def folded(store: Store, run: str) -> Export:
    """The run as folded stacks (see the module's description)."""
    rid = run_of(store, run)["run_id"]
    spans = store.spans().filter(pl.col("run_id") == rid).collect()
    stacks = folded_stacks(spans)
    unit = "ns"
    if not stacks.height:
        stacks = _sample_stacks(store.events().filter(pl.col("run_id") == rid).collect())
        unit = "samples"
    text = "".join(f"{s} {v}\n" for s, v in stacks.iter_rows())
    return Export(text, {"stacks": stacks.height, unit: int(stacks["value"].sum()) if stacks.height else 0})
