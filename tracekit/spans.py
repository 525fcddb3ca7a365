"""Pairing entries with exits: the one place where function calls become spans.

Parsers emit call-graph rows (:class:`tracekit.schema.Kind`): function_graph entries
(``func() {``), exits (``}``) and leaves (``func();``), trace.dat ``funcgraph_entry`` /
``funcgraph_exit`` records, kprobe / kretprobe hits.  :class:`SpanBuilder` turns them into
spans chunk by chunk, with memory bounded by the number of calls still open:

* The *task* of a row is its pid; when the format does not print one (function_graph
  without funcgraph-proc) it is the task the CPU last switched to (the ``=>`` block), and
  before the first switch the CPU itself.  The kernel keeps the graph return stack per task
  (``current->ret_stack``), so nesting is per task, not per CPU.
* kprobe hits carry no depth: it is the running count of entries minus returns per task, so
  that nested or recursive calls pair LIFO.
* Within one (task, depth), entries and exits alternate in a well-formed trace: an exit
  closes the entry just before it.  An entry followed by another entry lost its exit, an exit
  with no entry before it lost its entry (trace start, lost events, tracing_thresh): both
  are kept with ``complete = false``.  An exit that names a different function than the
  entry it would close (``} /* func */``) is not paired with it.
* The parent of a call is the last entry one level up in the same task before it
  (an as-of join, not a stack walk).
* Context (task / softirq / hardirq / nmi) comes from the irq-info flags when printed, and
  from function_graph's IRQ markers (``==========>`` ... ``<==========``) otherwise.

Durations the trace states (function_graph's duration column, funcgraph_exit's
``rettime - calltime``) are kept exactly; only kprobe pairs get ``exit ts - entry ts``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from tracekit.schema import EVENT_SCHEMA, SPAN_SCHEMA, STORED_EVENT_SCHEMA, Kind, conform

__all__ = ["SpanBuilder", "SpanChunk"]

_CALL_KINDS = list(Kind.CALL_GRAPH)
_KPROBE_KINDS = [Kind.KPROBE_ENTRY, Kind.KPROBE_EXIT]
_OPENING = [Kind.ENTRY, Kind.KPROBE_ENTRY]
_CLOSING = [Kind.EXIT, Kind.KPROBE_EXIT]

# Work columns carried with pending (still open) entries between chunks.
_WORK_SCHEMA = {**EVENT_SCHEMA, "task": pl.Int64(), "irq_depth": pl.Int64()}


@dataclass
class SpanChunk:
    """What one chunk of events became: ``spans`` (SPAN_SCHEMA) and ``events``
    (STORED_EVENT_SCHEMA, every row that is not a call)."""

    spans: pl.DataFrame
    events: pl.DataFrame


@dataclass
class SpanBuilder:
    """Pairs the call-graph rows of successive event chunks of one trace into spans.

    ``source`` names the span source stored with each span (function_graph, kprobe,
    funcgraph_raw, ...).  Call :meth:`feed` for every chunk, then :meth:`finish` once.
    """

    source: str = "function_graph"
    #: open entries carried over from earlier chunks
    _pending: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_WORK_SCHEMA))
    #: task each CPU last switched to (function_graph "=>" blocks)
    _cpu_task: dict[int, int] = field(default_factory=dict)
    #: kprobe nesting depth per task
    _kprobe_depth: dict[int, int] = field(default_factory=dict)
    #: function_graph IRQ nesting per CPU
    _irq_depth: dict[int, int] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)

    def feed(self, events: pl.DataFrame, source: str | None = None) -> SpanChunk:
        """Pair what can be paired in ``events`` (one parser chunk, EVENT_SCHEMA); ``source``
        updates the span source when the parser learnt it from this chunk."""
        if source:
            self.source = source
        return self._pair(events, last=False)

    def finish(self) -> SpanChunk:
        """Close the trace: entries still open lost their exit (``complete = false``)."""
        return self._pair(pl.DataFrame(schema=EVENT_SCHEMA), last=True)

    # -- the work -----------------------------------------------------------------------

    def _assign_tasks(self, df: pl.DataFrame) -> pl.DataFrame:
        """Add ``task`` (pid, or the task the CPU switched to, or -1-cpu) and ``irq_depth``."""
        kind = pl.col("kind")
        kinds = set(df.get_column("kind").unique().to_list())
        if (
            Kind.SWITCH not in kinds
            and Kind.IRQ_ENTRY not in kinds
            and Kind.IRQ_EXIT not in kinds
            and not self._irq_depth
            and df.get_column("pid").null_count() == 0
        ):
            # Every row names its task (funcgraph-proc, or any format with a pid column).
            return df.with_columns(task=pl.col("pid").cast(pl.Int64), irq_depth=pl.lit(0, pl.Int64))
        cpu_key = pl.col("cpu").fill_null(-1)
        switched = pl.when(kind == Kind.SWITCH).then(pl.col("pid").cast(pl.Int64))
        # The task a CPU ran before its first switch block is that block's "prev".
        before_first = pl.when(kind == Kind.SWITCH).then(
            pl.col("body").str.extract(r"-(\d+)\s+=>", 1).cast(pl.Int64, strict=False)
        )
        df = df.with_columns(_cpu_key=cpu_key).with_columns(
            _switched=switched.forward_fill().over("_cpu_key"),
            _prev_task=before_first.backward_fill().over("_cpu_key"),
            _irq=pl.when(kind == Kind.IRQ_ENTRY)
            .then(1)
            .when(kind == Kind.IRQ_EXIT)
            .then(-1)
            .otherwise(0)
            .cum_sum()
            .over("_cpu_key"),
        )
        if self._cpu_task:
            prev = pl.col("_cpu_key").replace_strict(self._cpu_task, default=None, return_dtype=pl.Int64)
        else:
            prev = pl.lit(None, dtype=pl.Int64)
        if self._irq_depth:
            prev_irq = pl.col("_cpu_key").replace_strict(self._irq_depth, default=0, return_dtype=pl.Int64)
        else:
            prev_irq = pl.lit(0, dtype=pl.Int64)
        df = df.with_columns(
            task=pl.coalesce(
                pl.when(kind != Kind.SWITCH).then(pl.col("pid").cast(pl.Int64)),
                pl.col("_switched"),
                prev,
                pl.when(~pl.col("_cpu_key").is_in(list(self._cpu_task))).then(pl.col("_prev_task")),
                -1 - pl.col("_cpu_key").cast(pl.Int64),
            ),
            irq_depth=(pl.col("_irq") + prev_irq).clip(0),
        )
        # Calls still open from earlier chunks, on a CPU whose task was unknown until this
        # chunk's first switch block, belong to that block's "prev" task.
        firsts = (
            df.filter((kind == Kind.SWITCH) & ~pl.col("_cpu_key").is_in(list(self._cpu_task)))
            .group_by("_cpu_key")
            .agg(pl.col("_prev_task").first())
            .drop_nulls()
        )
        if firsts.height and self._pending.height:
            rekey = {-1 - cpu: t for cpu, t in firsts.iter_rows()}
            self._pending = self._pending.with_columns(
                task=pl.col("task").replace_strict(rekey, default=pl.col("task"), return_dtype=pl.Int64)
            )
        # Remember per-CPU state for the next chunk.
        last = df.group_by("_cpu_key").agg(
            pl.col("_switched").drop_nulls().last().alias("t"), pl.col("_irq").last().alias("i")
        )
        for cpu, t, i in last.iter_rows():
            if t is not None:
                self._cpu_task[cpu] = t
            self._irq_depth[cpu] = self._irq_depth.get(cpu, 0) + (i or 0)
        return df.drop("_cpu_key", "_switched", "_prev_task", "_irq")

    def _kprobe_depths(self, calls: pl.DataFrame) -> pl.DataFrame:
        """Depth of kprobe hits: entries minus returns so far, per task."""
        kp = calls.filter(pl.col("kind").is_in(_KPROBE_KINDS))
        if kp.is_empty():
            return calls
        step = pl.when(pl.col("kind") == Kind.KPROBE_ENTRY).then(1).otherwise(-1)
        base = (
            pl.col("task").replace_strict(self._kprobe_depth, default=0, return_dtype=pl.Int64)
            if self._kprobe_depth
            else pl.lit(0, dtype=pl.Int64)
        )
        kp = kp.sort("seq").with_columns(_cum=step.cum_sum().over("task") + base)
        kp = kp.with_columns(
            depth=pl.when(pl.col("kind") == Kind.KPROBE_ENTRY)
            .then(pl.col("_cum") - 1)
            .otherwise(pl.col("_cum"))
            .cast(pl.Int32)
        )
        for task, cum in kp.group_by("task").agg(pl.col("_cum").last()).iter_rows():
            self._kprobe_depth[task] = cum
        kp = kp.drop("_cum")
        return pl.concat([calls.filter(~pl.col("kind").is_in(_KPROBE_KINDS)), kp]).sort("seq")

    def _pair(self, events: pl.DataFrame, last: bool) -> SpanChunk:
        events = self._assign_tasks(events) if events.height else events.with_columns(
            task=pl.lit(None, dtype=pl.Int64), irq_depth=pl.lit(None, dtype=pl.Int64)
        )
        is_call = pl.col("kind").is_in(_CALL_KINDS)
        stored = conform(events.filter(~is_call), STORED_EVENT_SCHEMA)
        calls = events.filter(is_call).select(list(_WORK_SCHEMA))
        calls = self._kprobe_depths(calls)
        calls = pl.concat([self._pending, calls])
        kind = pl.col("kind")
        # Leaves (most rows of a function_graph trace) are whole calls already: only
        # entries and returns need pairing.
        leaves = calls.filter(kind == Kind.LEAF).with_columns(
            start_ns=pl.col("ts_ns"), complete=pl.lit(True), span_id=pl.col("seq")
        )
        calls = calls.filter(kind != Kind.LEAF)

        # When every return names its function (trace.dat and raw funcgraph records,
        # kprobes, tracing_thresh traces), the function is part of the key: an interrupt
        # recorded at the depth of the call it interrupted then cannot steal that call's
        # return.  Plain "}" returns are matched by position alone.
        exits = calls.filter(kind.is_in(_CLOSING))
        named = exits.height > 0 and exits.get_column("func").null_count() == 0
        calls = calls.with_columns(_key=pl.col("func") if named else pl.lit("", pl.String))
        # Within one (task, depth, key), returns close entries last-in first-out: the kernel
        # records an interrupt's handlers at the depth of the call it interrupted, so a
        # call's return may follow other whole calls at its own depth.  The nesting level
        # (entries minus returns so far) makes each entry and its return neighbours in
        # (task, depth, key, level).
        opening = kind.is_in(_OPENING)
        closing = kind.is_in(_CLOSING)
        step = pl.when(opening).then(1).when(closing).then(-1).otherwise(0)
        # (rows are in source order: pending entries first, then this chunk's rows)
        calls = calls.with_columns(_cum=step.cum_sum().over(["task", "depth", "_key"]))
        calls = calls.with_columns(
            _level=pl.when(opening).then(pl.col("_cum") - 1).when(closing).then(pl.col("_cum"))
        ).sort(["task", "depth", "_key", "_level", "seq"], nulls_last=True)
        same = lambda k: (  # noqa: E731
            (pl.col("task").shift(k) == pl.col("task"))
            & (pl.col("depth").shift(k) == pl.col("depth"))
            & (pl.col("_key").shift(k) == pl.col("_key"))
            & (pl.col("_level").shift(k) == pl.col("_level"))
        )
        same_next, same_prev = same(-1), same(1)
        calls = calls.with_columns(_sn=same_next.fill_null(False), _sp=same_prev.fill_null(False))
        nxt = lambda c: pl.when(pl.col("_sn")).then(pl.col(c).shift(-1))  # noqa: E731
        prv = lambda c: pl.when(pl.col("_sp")).then(pl.col(c).shift(1))  # noqa: E731
        calls = calls.with_columns(
            _next_kind=nxt("kind"),
            _next_func=nxt("func"),
            _exit_ts=nxt("ts_ns"),
            _exit_dur=nxt("dur_ns"),
            _exit_comm=nxt("comm"),
            _prev_kind=prv("kind"),
            _prev_func=prv("func"),
        )
        opening = kind.is_in(_OPENING)
        closing = kind.is_in(_CLOSING)
        # An exit that names its function must name the entry's.
        names_agree = lambda a, b: a.is_null() | b.is_null() | (a == b)  # noqa: E731
        closes_next = opening & pl.col("_next_kind").is_in(_CLOSING) & names_agree(
            pl.col("func"), pl.col("_next_func")
        )
        closed_by_prev = closing & pl.col("_prev_kind").is_in(_OPENING) & names_agree(
            pl.col("_prev_func"), pl.col("func")
        )
        pending_now = opening & pl.col("_next_kind").is_null()
        calls = calls.with_columns(
            _paired=closes_next.fill_null(False),
            _closed=closed_by_prev.fill_null(False),
            _pending=pending_now.fill_null(False) if not last else pl.lit(False),
        )

        # Entries still open at the end of the chunk wait for the next one.
        self._pending = calls.filter(pl.col("_pending")).select(list(_WORK_SCHEMA)).sort("seq")
        body = calls.filter(~pl.col("_pending") & ~pl.col("_closed"))
        paired = pl.col("_paired")
        is_entry = kind.is_in(_OPENING)
        is_exit = kind.is_in(_CLOSING)
        dur = (
            pl.when(is_entry & paired)
            .then(pl.coalesce(pl.col("_exit_dur"), pl.col("_exit_ts") - pl.col("ts_ns")))
            .when(is_exit)
            .then(pl.col("dur_ns"))
        )
        start = pl.when(is_exit).then(pl.col("ts_ns") - pl.col("dur_ns")).otherwise(pl.col("ts_ns"))
        spans = body.with_columns(
            dur_ns=dur,
            start_ns=start,
            complete=is_entry & paired,
            comm=pl.coalesce(pl.col("comm"), pl.when(paired).then(pl.col("_exit_comm"))),
            span_id=pl.col("seq"),
        )
        cols = [*_WORK_SCHEMA, "start_ns", "complete", "span_id"]
        spans = pl.concat([spans.select(cols), leaves.select(cols)])
        spans = self._parents(spans, calls)
        if spans.get_column("flags").null_count() == spans.height:
            hard = pl.col("irq_depth") > 0
            context = pl.when(hard).then(pl.lit("hardirq")).otherwise(pl.lit("task"))
        else:
            flags = pl.col("flags").fill_null("")
            context = (
                pl.when(flags.str.contains("[zZ]"))
                .then(pl.lit("nmi"))
                .when(flags.str.contains("[hH]") | (pl.col("irq_depth") > 0))
                .then(pl.lit("hardirq"))
                .when(flags.str.contains("s"))
                .then(pl.lit("softirq"))
                .otherwise(pl.lit("task"))
            )
        source = (
            pl.when(kind.is_in(_KPROBE_KINDS)).then(pl.lit("kprobe")).otherwise(pl.lit(self.source))
        )
        spans = spans.with_columns(
            context=context,
            source=source,
            pid=pl.when(pl.col("task") >= 0).then(pl.col("task")).otherwise(pl.col("pid")),
        )
        spans = conform(spans, SPAN_SCHEMA)
        if spans.height:
            for src, n in spans.group_by("source").len().iter_rows():
                self.counts[src] += n
        return SpanChunk(spans=spans, events=stored)

    @staticmethod
    def _parents(spans: pl.DataFrame, calls: pl.DataFrame) -> pl.DataFrame:
        """parent_id: the last opening row one level up in the same task, before the span."""
        opens = (
            calls.filter(pl.col("kind").is_in(_OPENING))
            .select(
                pl.col("task"),
                (pl.col("depth") + 1).alias("_cdepth"),
                pl.col("seq").alias("_pseq"),
            )
            .sort("_pseq")
        )
        if opens.is_empty() or spans.is_empty():
            return spans.with_columns(parent_id=pl.lit(None, dtype=pl.Int64))
        left = spans.with_columns(_cdepth=pl.col("depth").cast(pl.Int32)).sort("seq")
        joined = left.join_asof(
            opens.with_columns(pl.col("_cdepth").cast(pl.Int32)),
            left_on="seq",
            right_on="_pseq",
            by=["task", "_cdepth"],
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        return joined.with_columns(parent_id=pl.col("_pseq")).drop("_cdepth", "_pseq")
