"""The columns of every table tracekit reads and writes.

Units are part of the column names (``dur_ns``, ``latency_ns``).  Parsers produce frames in
the common *event* schema (:data:`EVENT_SCHEMA`); :mod:`tracekit.spans` turns the call-graph
rows of those frames into *spans* (:data:`SPAN_SCHEMA`) and everything else goes to the
``events`` table (:data:`STORED_EVENT_SCHEMA`).  Latency-tracer snapshots become *windows*
(:data:`WINDOW_SCHEMA`); one ingested trace file is one *run* (:data:`RUN_SCHEMA`).
"""

from __future__ import annotations

import polars as pl

__all__ = [
    "EVENT_SCHEMA",
    "SPAN_SCHEMA",
    "STORED_EVENT_SCHEMA",
    "WINDOW_SCHEMA",
    "RUN_SCHEMA",
    "MEMBERSHIP_SCHEMA",
    "COUNT_FIELDS",
    "Kind",
    "conform",
    "empty",
]


class Kind:
    """Values of the ``kind`` column of the event schema.

    The call-graph kinds (``ENTRY``, ``EXIT``, ``LEAF``, ``KPROBE_ENTRY``, ``KPROBE_EXIT``)
    are consumed by :mod:`tracekit.spans`; ``SWITCH`` rows tell it which task a CPU runs.
    All others are stored as events.
    """

    ENTRY = "entry"  # function_graph "func() {" / funcgraph_entry record
    EXIT = "exit"  # function_graph "}" / funcgraph_exit record (dur_ns stated)
    LEAF = "leaf"  # function_graph "func();" (entry and exit in one line)
    KPROBE_ENTRY = "kprobe_entry"  # kprobe hit at a function's entry
    KPROBE_EXIT = "kprobe_exit"  # kretprobe hit at that function's return
    FUNCTION = "function"  # function tracer: "func <-parent"
    EVENT = "event"  # a tracepoint ("sched_switch: ...")
    SAMPLE = "sample"  # a perf sample (with its callchain)
    SWITCH = "switch"  # function_graph task-switch block: pid/comm are the next task
    IRQ_ENTRY = "irq_entry"  # "==========>"
    IRQ_EXIT = "irq_exit"  # "<=========="
    COMMENT = "comment"  # "/* trace_printk text */" inside a function_graph trace
    LOST = "lost"  # "CPU:N [LOST M EVENTS]" and friends: ``lost`` holds M (null if unknown)
    STACK = "stack"  # "<stack trace>" and its " => func" lines
    MARKER = "marker"  # any other line kept for the record ("##### CPU 2 buffer started ####")

    CALL_GRAPH = frozenset({ENTRY, EXIT, LEAF, KPROBE_ENTRY, KPROBE_EXIT})


#: The common event schema every parser yields, one row per trace record.
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "seq": pl.Int64(),  # order in the source: line number (text) or record index (binary)
    "line": pl.Int64(),  # 1-based source line; null for binary inputs
    "cpu": pl.Int32(),
    "pid": pl.Int32(),
    "comm": pl.String(),
    "ts_ns": pl.Int64(),  # absolute time (ns, or clock ticks when the run says so); null if none
    "kind": pl.String(),  # see Kind
    "func": pl.String(),  # canonical function name (tracekit.symbols.canonical)
    "raw_func": pl.String(),  # the symbol as printed, where it differs from func
    "parent": pl.String(),  # calling function (function tracer "<-parent"), canonical
    "raw_parent": pl.String(),  # the parent as printed ("+0x1a/0x40", ".isra.0"), where it differs
    "depth": pl.Int32(),  # call depth (function_graph indentation / record depth)
    "dur_ns": pl.Int64(),  # duration the trace states for this call, in ns
    "flags": pl.String(),  # irq-info / latency flag characters as printed ("d..2.")
    "event": pl.String(),  # tracepoint or perf event name ("tlb_flush", "probe:free_pgtables")
    "body": pl.String(),  # the rest of the record, as printed
    "lost": pl.Int64(),  # number of lost events on LOST rows
    "window": pl.Int32(),  # index of the latency window (snapshot) in the file, if any
    "callchain": pl.List(pl.String()),  # perf callchain / stack trace, innermost first
    # the OS-noise tracers' numbers (parsers/noise.py), null on every other record:
    "seqnum": pl.Int64(),  # hwlat / timerlat sample number ("#%-5u")
    "latency_ns": pl.Int64(),  # timerlat timer_latency; hwlat inner latency (printed in us)
    "outer_latency_ns": pl.Int64(),  # hwlat outer latency (printed in us)
    "runtime_ns": pl.Int64(),  # osnoise: the sampling period's runtime (printed in us)
    "noise_ns": pl.Int64(),  # osnoise: noise in the period (us); osnoise:* events: duration (ns)
    "max_noise_ns": pl.Int64(),  # osnoise: the longest single noise in the period (printed in us)
    "timer_context": pl.String(),  # timerlat: irq, thread or user-ret
    # osnoise: interference counts in the period, by source
    "interference": pl.Struct({k: pl.Int64() for k in ("hw", "nmi", "irq", "softirq", "thread")}),
}

#: One row per function call, completed or truncated.
SPAN_SCHEMA: dict[str, pl.DataType] = {
    "span_id": pl.Int64(),  # seq of the row that opened the span (or closed it, if no entry)
    "parent_id": pl.Int64(),  # span_id of the enclosing call, null at the top
    "cpu": pl.Int32(),
    "pid": pl.Int32(),
    "comm": pl.String(),
    "func": pl.String(),
    "raw_func": pl.String(),
    "depth": pl.Int32(),
    "start_ns": pl.Int64(),  # null when the format has no timestamps
    "dur_ns": pl.Int64(),  # exactly as stated by the trace; null when the exit is missing
    "seq": pl.Int64(),  # order in the source of the opening row
    "context": pl.String(),  # task / softirq / hardirq / nmi
    "complete": pl.Boolean(),  # false when the entry or the exit is missing
    "source": pl.String(),  # function_graph, kprobe, funcgraph_raw, ...
}

#: The events table: the event schema without the call-graph-only columns.
STORED_EVENT_SCHEMA: dict[str, pl.DataType] = {
    k: v for k, v in EVENT_SCHEMA.items() if k not in ("depth", "dur_ns")
}

#: One row per latency-tracer snapshot (irqsoff, preemptoff, wakeup, ...).
WINDOW_SCHEMA: dict[str, pl.DataType] = {
    "window": pl.Int32(),  # index of the snapshot in its file, matches events.window
    "tracer": pl.String(),
    "latency_ns": pl.Int64(),  # exactly the header's "latency: N us"
    "cpu": pl.Int32(),
    "pid": pl.Int32(),
    "comm": pl.String(),
    "started_at": pl.String(),
    "ended_at": pl.String(),
    "entries_shown": pl.Int64(),
    "entries_total": pl.Int64(),
    "preempt_model": pl.String(),
    "kernel": pl.String(),
    "version": pl.String(),  # "latency trace v1.1.5"
}

#: The counters every run records.
COUNT_FIELDS = ("lines", "events", "spans", "windows", "lost_events", "skipped_lines")

#: One row per ingested trace file.
RUN_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "path": pl.String(),
    "sha256": pl.String(),
    "format": pl.String(),
    "tracer": pl.String(),
    "arch": pl.String(),
    "kernel": pl.String(),
    "patch": pl.String(),
    "label": pl.String(),
    # the boot (or iteration) the trace was recorded in: every trace of one boot shares it.
    # Null when nothing said so; then the run is its own unit of replication.  The unit of
    # a run in a report is coalesce(boot_id, run_id) (docs/statistics.md).
    "boot_id": pl.String(),
    "partition": pl.Struct({"patch": pl.String(), "arch": pl.String(), "label": pl.String()}),
    "config": pl.String(),  # JSON object: preempt model, page size, page-table levels, ...
    "clock": pl.String(),
    "clock_hz": pl.Float64(),
    "time_unit": pl.String(),  # "ns", or "ticks" when a counter clock had no frequency
    "ncpus": pl.Int32(),
    "counts": pl.Struct({k: pl.Int64() for k in COUNT_FIELDS}),
    "spans_by_source": pl.String(),  # JSON object source -> count
    "skipped": pl.String(),  # JSON object reason -> count
    "warnings": pl.List(pl.String()),
    "meta": pl.String(),  # JSON object: everything else the trace said (header numbers, ...)
    "tracekit_version": pl.String(),
    "ingested_at": pl.Datetime("us", "UTC"),
}


#: One row per (run, patch, label): a run belongs to every patch and label it was ingested
#: for, its data stored once.
MEMBERSHIP_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "patch": pl.String(),
    "label": pl.String(),
    "added_at": pl.Datetime("us", "UTC"),  # when the run was first ingested for this patch and label
}


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with exactly the columns of ``schema``."""
    return pl.DataFrame(schema=schema)


def conform(df: pl.DataFrame, schema: dict[str, pl.DataType] = EVENT_SCHEMA) -> pl.DataFrame:
    """Return ``df`` with exactly the columns of ``schema``, in order and of its types.

    Missing columns are added as nulls; extra columns are dropped.  Parsers call this on every
    frame they yield, so they need only build the columns their format has.
    """
    cols = []
    for name, dtype in schema.items():
        if name in df.columns:
            col = pl.col(name)
            if df.schema[name] != dtype:
                col = col.cast(dtype, strict=False)
            cols.append(col)
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return df.select(cols)
