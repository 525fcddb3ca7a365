"""Rows of the store as a user asks for them (``tracekit spans``, ``events``, ``windows``).

A :class:`RowFilter` says which runs (patch, label, run id) and which rows of them
(function, task, CPU, caller, duration, time); :func:`select` applies it to one table and
returns the rows sorted in trace order.  Runs are chosen through the runs table, by the
patch and label the user gave at ingest (not the sanitised partition directories).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import numpy as np
import polars as pl

from tracekit.errors import OptionError
from tracekit.store import Store

__all__ = ["RowFilter", "TABLES", "select", "runs_matching", "under"]

#: The tables rows are listed from, with the order they are listed in.
TABLES: dict[str, list[str]] = {
    "spans": ["run_id", "seq"],
    "events": ["run_id", "seq"],
    "windows": ["run_id", "window"],
}


@dataclass(frozen=True)
class RowFilter:
    """Which rows to list; a field left None does not filter.

    ``func`` and ``comm`` are names or shell globs (``zap_*``), several separated by
    commas; ``run`` is a run id or a unique prefix of one; ``under`` keeps the spans called
    (at any depth) from a call of that function; ``min_dur_ns`` keeps spans that lasted at
    least that long (windows: whose latency is at least that); ``time_ns`` keeps rows that
    start in [FROM, TO] (either bound may be None)."""

    patch: str | None = None
    label: str | None = None
    run: str | None = None
    func: str | None = None
    comm: str | None = None
    pid: int | None = None
    cpu: int | None = None
    under: str | None = None
    min_dur_ns: int | None = None
    time_ns: tuple[int | None, int | None] | None = None


#: Which filters apply to which table (the others are an error, not silently ignored).
_APPLIES = {
    "spans": {"func", "comm", "pid", "cpu", "under", "min_dur_ns", "time_ns"},
    "events": {"func", "comm", "pid", "cpu", "time_ns"},
    "windows": {"comm", "pid", "cpu", "min_dur_ns"},
}
_OPTION = {"func": "--func", "comm": "--comm", "pid": "--pid", "cpu": "--cpu", "under": "--under",
           "min_dur_ns": "--min-dur", "time_ns": "--time"}
#: The column each table's time and duration filters read.
_TIME = {"spans": "start_ns", "events": "ts_ns"}
_DURATION = {"spans": "dur_ns", "windows": "latency_ns"}


def _names(column: str, spec: str) -> pl.Expr:
    """``column`` matches one of the comma-separated names or globs of ``spec``."""
    exact = [s.strip() for s in spec.split(",") if s.strip() and not any(c in s for c in "*?[")]
    globs = [s.strip() for s in spec.split(",") if s.strip() and any(c in s for c in "*?[")]
    expr = pl.col(column).is_in(exact) if exact else pl.lit(False)
    for g in globs:
        expr = expr | pl.col(column).str.contains("^" + fnmatch.translate(g).replace(r"\Z", "$"))
    return expr


def runs_matching(store: Store, f: RowFilter) -> pl.DataFrame:
    """The runs (run_id, patch, label) chosen by ``f.patch``, ``f.label`` and ``f.run``;
    :class:`OptionError` for a run prefix that matches no run or several."""
    runs = store.runs().select("run_id", "patch", "label").collect()
    if f.patch is not None:
        runs = runs.filter(pl.col("patch") == f.patch)
    if f.label is not None:
        runs = runs.filter(pl.col("label") == f.label)
    if f.run is not None:
        hit = runs.filter(pl.col("run_id").str.starts_with(f.run))
        if hit.height > 1:
            raise OptionError(f"--run {f.run!r}: {hit.height} runs start so; give more of the id (tracekit runs)")
        if hit.height == 0:
            raise OptionError(f"--run {f.run!r}: no such run{' of that patch and label' if f.patch or f.label else ''} (tracekit runs)")
        runs = hit
    return runs


def under(spans: pl.DataFrame, caller: str) -> pl.Series:
    """Per span of ``spans`` (run_id, span_id, parent_id, func; whole runs), whether a call
    of ``caller`` encloses it, at any depth: the parent chain is followed one level per
    step for every span at once, so the steps are as many as the deepest call chain."""
    keyed = spans.select("run_id", "span_id", "parent_id", "func").with_row_index("i")
    parent = (keyed.join(keyed.select("run_id", pl.col("span_id").alias("parent_id"), pl.col("i").alias("pi")),
                         on=["run_id", "parent_id"], how="left")
              .sort("i")["pi"].fill_null(-1).to_numpy().astype(np.int64))
    is_caller = (keyed["func"] == caller).fill_null(False).to_numpy()
    inside = np.zeros(len(parent), dtype=bool)
    cur = parent.copy()
    live = cur >= 0
    while live.any():
        inside[live] |= is_caller[cur[live]]
        cur[live] = parent[cur[live]]
        live = cur >= 0
    return pl.Series("under", inside)


def select(store: Store, table: str, f: RowFilter) -> pl.DataFrame:
    """The rows of ``table`` (spans, events or windows) that ``f`` keeps, in trace order;
    :class:`OptionError` for a filter that does not apply to the table."""
    if table not in TABLES:
        raise OptionError(f"{table!r}: rows are listed from {', '.join(TABLES)}")
    for name in set(_OPTION) - _APPLIES[table]:
        if getattr(f, name) is not None:
            raise OptionError(f"{_OPTION[name]} does not apply to {table} (it applies to "
                              f"{', '.join(t for t in TABLES if name in _APPLIES[t])})")
    ids = runs_matching(store, f)["run_id"].to_list()
    lf = getattr(store, table)().filter(pl.col("run_id").is_in(ids))
    if f.under is not None:
        whole = lf.collect()
        lf = whole.filter(under(whole, f.under)).lazy()
    if f.func is not None:
        lf = lf.filter(_names("func", f.func))
    if f.comm is not None:
        lf = lf.filter(_names("comm", f.comm))
    if f.pid is not None:
        lf = lf.filter(pl.col("pid") == f.pid)
    if f.cpu is not None:
        lf = lf.filter(pl.col("cpu") == f.cpu)
    if f.min_dur_ns is not None:
        lf = lf.filter(pl.col(_DURATION[table]) >= f.min_dur_ns)
    if f.time_ns is not None:
        lo, hi = f.time_ns
        t = pl.col(_TIME[table])
        if lo is not None:
            lf = lf.filter(t >= lo)
        if hi is not None:
            lf = lf.filter(t <= hi)
    return lf.sort(TABLES[table], nulls_last=True).collect()
