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
* Text call graphs (function_graph, ``trace-cmd report``, display-graph) are paired by
  nesting, as the kernel emits them (:func:`_nest`): per task a stack of open entries, an
  entry pushed, ``}`` popping the innermost; the printed indentation is only a check (a
  mail client may have collapsed it), and rows where the two disagree are counted.  The
  stored depth is the nesting depth, anchored at the printed indentation where a task has
  nothing open (a trace that starts inside calls).  ``CPU:N [LOST M EVENTS]`` empties the
  stacks of the tasks last seen on that CPU: their entries lost their exits.
* Records with a stated depth (trace.dat) are paired within one (task, depth): entries and
  exits alternate in a well-formed trace, an exit closes the entry just before it.  An entry followed by another entry lost its exit, an exit
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

import numpy as np
import polars as pl
from tracekit.jit import njit

from tracekit.frames import codes, dictionary, masked
from tracekit.schema import EVENT_SCHEMA, SPAN_SCHEMA, STORED_EVENT_SCHEMA, Kind, conform

__all__ = ["SpanBuilder", "SpanChunk"]

_CALL_KINDS = list(Kind.CALL_GRAPH)
_KPROBE_KINDS = [Kind.KPROBE_ENTRY, Kind.KPROBE_EXIT]
_OPENING = [Kind.ENTRY, Kind.KPROBE_ENTRY]
_CLOSING = [Kind.EXIT, Kind.KPROBE_EXIT]
#: the kinds that change what pairing carries from chunk to chunk besides the calls: the
#: task a CPU runs, its interrupt nesting
_CARRIED_KINDS = [Kind.SWITCH, Kind.IRQ_ENTRY, Kind.IRQ_EXIT]

# Work columns carried with pending (still open) entries between chunks.
_WORK_SCHEMA = {**EVENT_SCHEMA, "task": pl.Int64(), "irq_depth": pl.Int64()}


@dataclass
class SpanChunk:
    """What one chunk of events became: ``spans`` (SPAN_SCHEMA) and ``events``
    (STORED_EVENT_SCHEMA, every row that is not a call)."""

    spans: pl.DataFrame
    events: pl.DataFrame


@dataclass
class Prepared:
    """What :meth:`SpanBuilder.prepare` works out of one event chunk without the state
    carried between chunks, so that it can run ahead in another thread."""

    events: pl.DataFrame
    kind: np.ndarray  #: small-integer kind of every row (:func:`_kind_codes`)
    #: every row names its task (the pid); then the rest below is filled in
    by_pid: bool = False
    stored: pl.DataFrame | None = None  #: rows that are not calls, in STORED_EVENT_SCHEMA
    calls: pl.DataFrame | None = None  #: call rows with their task, irq_depth still to add
    calls_cpu: np.ndarray | None = None
    calls_irq: np.ndarray | None = None  #: IRQ markers of the row's CPU so far in this chunk
    irq_totals: dict[int, int] = field(default_factory=dict)  #: per CPU, over the chunk
    switches: list[tuple[int, int]] = field(default_factory=list)  #: (cpu, next pid) in order
    #: parent of each call row found within the chunk (-1: none there); None when not done
    calls_parent: np.ndarray | None = None
    #: which rows of ``calls`` are calls, when it holds the chunk's other rows too (None:
    #: only calls were kept): a chunk of nearly all calls is not filtered twice
    call_mask: np.ndarray | None = None
    #: a text call graph's rows as arrays, for pairing by nesting (:class:`_Rows`)
    rows: "_Rows | None" = None
    #: no row is a call, a task switch or an IRQ marker: the chunk is all events
    #: (:meth:`SpanBuilder._passes_through`)
    no_calls: bool = False
    #: some row reports lost events (which abandon the open calls of its CPU)
    lost: bool = False


@dataclass
class SpanBuilder:
    """Pairs the call-graph rows of successive event chunks of one trace into spans.

    ``source`` names the span source stored with each span (function_graph, kprobe,
    funcgraph_raw, ...).  Call :meth:`feed` for every chunk, then :meth:`finish` once.
    """

    source: str = "function_graph"
    #: pair entries and exits by nesting (text call graphs), not by their stated depth
    nesting: bool = False
    #: rows whose printed indentation disagrees with their nesting, and the first one's line
    indent_disagreements: int = 0
    first_disagreement_line: int | None = None
    #: open entries carried over from earlier chunks
    _pending: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=_WORK_SCHEMA))
    #: task each CPU last switched to (function_graph "=>" blocks)
    _cpu_task: dict[int, int] = field(default_factory=dict)
    #: kprobe nesting depth per task
    #: kprobe nesting depth per task: (tasks, rising; each one's depth)
    _kprobe_depth: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)))
    #: function_graph IRQ nesting per CPU
    _irq_depth: dict[int, int] = field(default_factory=dict)
    #: a code for each function name met (pairing by nesting compares codes)
    _func_ids: dict[str, int] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)

    def feed(self, events: pl.DataFrame | Prepared, source: str | None = None) -> SpanChunk:
        """Pair what can be paired in ``events`` (one parser chunk, EVENT_SCHEMA, or what
        :meth:`prepare` made of it); ``source`` updates the span source when the parser
        learnt it from this chunk."""
        if source:
            self.source = source
        return self._pair(events, last=False)

    @staticmethod
    def prepare(events: pl.DataFrame, nesting: bool = False) -> Prepared:
        """The work on one chunk that needs nothing from earlier chunks: kinds, and when
        every row names its task, the task, the split into calls and other events, the
        IRQ markers counted per CPU within the chunk and (unless calls are paired by
        ``nesting``, which finds parents itself) the parents within the chunk.  Pure: safe
        in any thread."""
        kind = _kind_codes(events.get_column("kind"))
        if events.height and not _is(kind, _CALL_KINDS + _CARRIED_KINDS).any():
            # (events, samples, markers: nothing to pair and no per-CPU state to update)
            return Prepared(events=events, kind=kind, no_calls=True, lost=bool(_is(kind, [Kind.LOST]).any()),
                            stored=_stored(events, np.zeros(len(kind), dtype=bool)))
        return SpanBuilder._prepare_calls(events, kind, nesting)

    @staticmethod
    def _prepare_calls(events: pl.DataFrame, kind: np.ndarray, nesting: bool) -> Prepared:
        """:meth:`prepare` of a chunk with calls in it (or whose events must meet the calls
        still open)."""
        prep = Prepared(events=events, kind=kind)
        if nesting and not _is(kind, _KPROBE_KINDS).any():
            # a text call graph: every row's numbers as arrays, paired in compiled code
            is_call = _is(kind, _CALL_KINDS)
            prep.stored = _stored(events, is_call)
            prep.rows = _Rows.of(events, kind)
            return prep
        if not events.height:
            return prep
        switch = kind == _KIND_CODE[Kind.SWITCH]
        pid_null = events.get_column("pid").is_null().to_numpy()
        if (pid_null & ~switch).any():
            return prep  # (the task of each row comes from the task-switch blocks)
        is_call = _is(kind, _CALL_KINDS)
        cpu = events.get_column("cpu").fill_null(-1).cast(pl.Int64).to_numpy()
        step = np.zeros(len(kind), dtype=np.int64)
        step[kind == _KIND_CODE[Kind.IRQ_ENTRY]] = 1
        step[kind == _KIND_CODE[Kind.IRQ_EXIT]] = -1
        local, totals = _irq_within(cpu, step)
        at = np.flatnonzero(switch)
        if len(at):
            prep.switches = list(zip(cpu[at].tolist(), events.get_column("pid").gather(at).to_list()))
        work = [c for c in _WORK_SCHEMA if c != "irq_depth"]
        with_task = events.with_columns(task=pl.col("pid").cast(pl.Int64))
        prep.irq_totals = totals
        prep.by_pid = True
        prep.stored, prep.calls, prep.call_mask = _split_calls(with_task, kind, is_call, work)
        if prep.call_mask is None:  # (kprobe hits: only the calls were kept)
            prep.calls_cpu = cpu[is_call]
            prep.calls_irq = local[is_call]
            return prep
        prep.calls_cpu = cpu
        prep.calls_irq = local
        if nesting:
            return prep
        # parents within the chunk; those that opened before it are looked up when the
        # chunk is paired (:func:`_carried_parent`)
        prep.calls_parent = _parents(prep.calls, _is(kind, _OPENING), is_call)
        return prep

    def finish(self) -> SpanChunk:
        """Close the trace: entries still open lost their exit (``complete = false``)."""
        return self._pair(pl.DataFrame(schema=EVENT_SCHEMA), last=True)

    # -- the work -----------------------------------------------------------------------

    def _assign_tasks(self, df: pl.DataFrame) -> pl.DataFrame:
        """Add ``task`` and ``irq_depth`` (:meth:`_tasks_of`)."""
        task, irq = self._tasks_of(_Rows.of(df, _kind_codes(df.get_column("kind"))), self._pending)
        return df.with_columns(task=pl.Series(task, dtype=pl.Int64), irq_depth=pl.Series(irq, dtype=pl.Int64))

    def _kprobe_depths(self, calls: pl.DataFrame) -> pl.DataFrame:
        """Depth of kprobe hits: entries minus returns so far, per task, from where each
        task's count stood at the end of the chunks before (:func:`_kprobe_levels`)."""
        kind = _kind_codes(calls.get_column("kind"))
        if not _is(kind, _KPROBE_KINDS).any():
            return calls
        if not calls.get_column("seq").is_sorted():
            calls = calls.sort("seq", maintain_order=True)
            kind = _kind_codes(calls.get_column("kind"))
        rows = np.flatnonzero(_is(kind, _KPROBE_KINDS))
        at = pl.Series("_i", rows, dtype=pl.UInt32)
        task_s = calls.get_column("task").gather(at)
        task = task_s.fill_null(_NO_TASK).to_numpy().astype(np.int64)
        slot, nslots = _one_key_codes(task)
        keys = np.zeros(nslots, dtype=np.int64)
        keys[slot] = task
        known, levels = self._kprobe_depth
        at = np.minimum(np.searchsorted(known, keys), max(len(known) - 1, 0))
        base = np.where(known[at] == keys, levels[at], 0) if len(known) else np.zeros(nslots, dtype=np.int64)
        depth, level = _kprobe_levels(slot, kind[rows] == _KIND_CODE[Kind.KPROBE_ENTRY], base)
        # (the chunk's tasks take their new depth; the others keep theirs)
        others = ~np.isin(known, keys)
        both = np.concatenate([known[others], keys])
        order = np.argsort(both, kind="stable")
        self._kprobe_depth = (both[order], np.concatenate([levels[others], level])[order])
        stated = calls.get_column("depth")
        whole = stated.cast(pl.Int64).fill_null(0).to_numpy().copy()
        missing = stated.is_null().to_numpy().copy()
        whole[rows], missing[rows] = depth, False
        return calls.with_columns(depth=masked("depth", whole, ~missing, pl.Int32))

    def _passes_through(self, prep: Prepared) -> bool:
        """The chunk's rows are all events and leave the open calls as they are: lost
        events abandon open calls only where calls are paired by nesting."""
        return prep.no_calls and not (prep.lost and self.nesting and self._pending.height)

    def _pair(self, events: pl.DataFrame | Prepared, last: bool) -> SpanChunk:
        prep = events if isinstance(events, Prepared) else self.prepare(events, self.nesting)
        if prep.no_calls:
            if self._passes_through(prep):
                return SpanChunk(spans=pl.DataFrame(schema=SPAN_SCHEMA), events=prep.stored)
            prep = self._prepare_calls(prep.events, prep.kind, self.nesting)
        if prep.rows is not None and not _is(_kind_codes(self._pending.get_column("kind")), _KPROBE_KINDS).any():
            return self._pair_nested(prep, last)
        events, ev_kind = prep.events, prep.kind
        cpu_less = self._pending.height > 0 and bool((self._pending.get_column("task") < 0).any())
        call_mask = None
        if prep.by_pid and not cpu_less:
            call_mask = prep.call_mask
            # every row names its task: only the carried per-CPU state is left to apply
            for c, t in prep.switches:
                if t is not None:
                    self._cpu_task[c] = int(t)
            stored, calls = prep.stored, prep.calls
            if prep.irq_totals or any(self._irq_depth.values()):
                base = np.zeros(len(prep.calls_cpu), dtype=np.int64)
                for c, d in self._irq_depth.items():
                    if d:
                        base[prep.calls_cpu == c] = d
                irq = np.clip(base + prep.calls_irq, 0, None)
                for c, total in prep.irq_totals.items():
                    self._irq_depth[c] = self._irq_depth.get(c, 0) + total
                calls = calls.with_columns(irq_depth=pl.Series("irq_depth", irq, dtype=pl.Int64))
            else:
                calls = calls.with_columns(irq_depth=pl.lit(0, pl.Int64))
        else:
            events = self._assign_tasks(events) if events.height else events.with_columns(
                task=pl.lit(None, dtype=pl.Int64), irq_depth=pl.lit(None, dtype=pl.Int64)
            )
            stored, calls, call_mask = _split_calls(events, ev_kind, _is(ev_kind, _CALL_KINDS), list(_WORK_SCHEMA))
        calls = calls.select(list(_WORK_SCHEMA))
        # (kprobe hits still open from earlier chunks are paired by depth too)
        kprobes = bool(_is(ev_kind, _KPROBE_KINDS).any()) or bool(
            _is(_kind_codes(self._pending.get_column("kind")), _KPROBE_KINDS).any())
        if kprobes:
            calls = self._kprobe_depths(calls)
        # (rows in source order: entries still open from earlier chunks first)
        if kprobes:
            codes = _kind_codes(calls.get_column("kind"))
        elif call_mask is not None:
            codes = ev_kind
        else:
            codes = ev_kind[_is(ev_kind, _CALL_KINDS)]
        if self._pending.height:
            codes = np.concatenate([_kind_codes(self._pending.get_column("kind")), codes])
        calls = pl.concat([self._pending, calls]) if self._pending.height else calls
        n = calls.height
        opening = _is(codes, _OPENING)
        closing = _is(codes, _CLOSING)
        nested = self.nesting and not kprobes
        if nested:
            partner, pending, nest_parent, depth = self._nest(calls, codes, last)
            calls = calls.with_columns(depth=masked("depth", depth, depth >= 0, pl.Int32))
        else:
            partner, pending = _match(calls, opening, closing, last)

        # Rows that become spans: everything but the returns that closed an entry and the
        # entries still waiting for theirs.
        closed = np.zeros(n, dtype=bool)
        closed[partner[partner >= 0]] = True
        keep = ~(closed | pending)
        if call_mask is not None:
            keep[n - len(call_mask):] &= call_mask
        # (the few rows carried over are gathered by index: a filter would pass over every row)
        self._pending = _rows(calls, np.flatnonzero(pending)) if pending.any() else calls.clear()
        carried = n - (prep.calls.height if prep.calls is not None else 0)
        if nested:
            parent = nest_parent[keep]
        elif prep.calls_parent is not None and not cpu_less:  # (set only without kprobes)
            # the chunk's own rows were looked up ahead; those with no parent in the chunk
            # take the last carried entry one level up; carried rows look among themselves
            own = prep.calls_parent.copy()
            if carried:
                pend = calls.head(carried)
                depth = prep.calls.get_column("depth").cast(pl.Int64).fill_null(-1).to_numpy()
                need = (own < 0) & (depth >= 0)
                if need.any():
                    task = prep.calls.get_column("task").to_numpy()
                    own[need] = _carried_parent(pend, task[need], depth[need])
                head = _parents(pend, opening[:carried], np.ones(carried, dtype=bool))
                own = np.concatenate([head, own])
            parent = own[keep]
        else:
            parent = _parents(calls, opening, keep)[keep]
        partner = partner[keep]
        paired = partner >= 0
        pidx = pl.Series("_p", np.where(paired, partner, 0), dtype=pl.UInt32)
        body = calls.filter(pl.Series("_m", keep, dtype=pl.Boolean)) if not keep.all() else calls
        exits = None
        if paired.any():
            # what an entry takes from its exit: the stated duration; the exit's time only
            # where no duration is stated, its comm only where the entry has none
            exits = calls.select("dur_ns")[pidx]
            if (exits.get_column("dur_ns").is_null().to_numpy() & paired).any():
                exits = exits.with_columns(ts_ns=calls.get_column("ts_ns").gather(pidx))
            if body.get_column("comm").null_count():
                exits = exits.with_columns(comm=calls.get_column("comm").gather(pidx))

        kind = pl.col("kind")
        paired_e = pl.lit(pl.Series("_paired", paired, dtype=pl.Boolean))
        is_entry = pl.lit(pl.Series("_e", opening[keep], dtype=pl.Boolean))
        is_exit = pl.lit(pl.Series("_x", closing[keep], dtype=pl.Boolean))
        if exits is not None:
            exit_dur = pl.lit(exits.get_column("dur_ns"))
            if "ts_ns" in exits.columns:
                exit_dur = pl.coalesce(exit_dur, pl.lit(exits.get_column("ts_ns")) - pl.col("ts_ns"))
            exit_comm = pl.lit(exits.get_column("comm")) if "comm" in exits.columns else pl.lit(None, pl.String)
        else:
            exit_dur = pl.lit(None, pl.Int64)
            exit_comm = pl.lit(None, pl.String)
        is_leaf = pl.lit(pl.Series("_l", codes[keep] == _KIND_CODE[Kind.LEAF], dtype=pl.Boolean))
        complete = (is_entry & paired_e) | is_leaf
        dur = (
            pl.when(is_entry & paired_e)
            .then(exit_dur)
            .when(is_exit | is_leaf)
            .then(pl.col("dur_ns"))
        )
        start = pl.when(is_exit).then(pl.col("ts_ns") - pl.col("dur_ns")).otherwise(pl.col("ts_ns"))
        if body.get_column("flags").null_count() == body.height:
            context = pl.when(pl.col("irq_depth") > 0).then(pl.lit("hardirq")).otherwise(pl.lit("task"))
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
        kp_rows = _is(codes[keep], _KPROBE_KINDS)
        kprobe = bool(kp_rows.any())
        source = pl.when(pl.lit(pl.Series("_k", kp_rows, dtype=pl.Boolean))).then(pl.lit("kprobe")).otherwise(pl.lit(self.source)) if kprobe else pl.lit(self.source)
        cols = {
            "span_id": pl.col("seq"),
            "parent_id": pl.lit(pl.Series("parent_id", parent, dtype=pl.Int64)).replace(-1, None),
            "cpu": pl.col("cpu"),
            "pid": pl.when(pl.col("task") >= 0).then(pl.col("task")).otherwise(pl.col("pid")),
            "comm": pl.coalesce(pl.col("comm"), pl.when(paired_e).then(exit_comm)),
            "func": pl.col("func"),
            "raw_func": pl.col("raw_func"),
            "depth": pl.col("depth"),
            "start_ns": start,
            "dur_ns": dur,
            "seq": pl.col("seq"),
            "context": context,
            "complete": complete,
            "source": source,
        }
        assert list(cols) == list(SPAN_SCHEMA)
        spans = body.select([e.cast(SPAN_SCHEMA[c]).alias(c) for c, e in cols.items()])
        if spans.height:
            if kprobe:
                for src, c in spans.group_by("source").len().iter_rows():
                    self.counts[src] += c
            else:
                self.counts[self.source] += spans.height
        return SpanChunk(spans=spans, events=stored)


    def _pair_nested(self, prep: Prepared, last: bool) -> SpanChunk:
        """Pair a text call graph's chunk by nesting (:func:`_nest_rows`), the entries still
        open from earlier chunks first: each row's task is worked out (:func:`_tasks`), the
        spans' numbers are computed on arrays and their names gathered once."""
        new, events = prep.rows, prep.events
        task, irq = self._tasks_of(new, self._pending)
        pend = self._pending
        carried = pend.height
        if carried:
            old = _Rows.of(pend, _kind_codes(pend.get_column("kind")))
            rows = old.then(new)
            task = np.concatenate([pend.get_column("task").fill_null(-1).to_numpy(), task])
            irq = np.concatenate([pend.get_column("irq_depth").fill_null(0).to_numpy(), irq])
            func = np.concatenate([self._name_codes(old), self._name_codes(new)])
        else:
            rows, func = new, self._name_codes(new)
        slot, ntasks = _one_key_codes(task)
        partner, is_open, parent, depth, first_bad, nbad = _nest_rows(
            slot, rows.kind.astype(np.int64), rows.depth, func, rows.cpu, rows.seq, max(ntasks, 1),
            _KIND_CODE[Kind.ENTRY], _KIND_CODE[Kind.EXIT], _KIND_CODE[Kind.LEAF], _KIND_CODE[Kind.LOST])
        if nbad:
            self.indent_disagreements += int(nbad)
            if self.first_disagreement_line is None:
                at = int(first_bad)
                line = pend.get_column("line")[at] if at < carried else events.get_column("line")[at - carried]
                self.first_disagreement_line = int(line) if line is not None else None
        pending = is_open if not last else np.zeros(len(is_open), dtype=bool)
        closed = np.zeros(len(partner), dtype=bool)
        closed[partner[partner >= 0]] = True
        keep = np.flatnonzero(_is(rows.kind, _CALL_KINDS) & ~(closed | pending))
        frames = (pend, events) if carried else (events,)
        spans = _nested_spans(rows, frames, keep, partner, parent, depth, task, irq, self.source)
        held = np.flatnonzero(pending)
        self._pending = _take(frames, held, ("depth", pl.Series(depth[held], dtype=pl.Int32)),
                              ("task", pl.Series(task[held], dtype=pl.Int64)),
                              ("irq_depth", pl.Series(irq[held], dtype=pl.Int64))).select(list(_WORK_SCHEMA))
        if spans.height:
            self.counts[self.source] += spans.height
        return SpanChunk(spans=spans, events=prep.stored)

    def _tasks_of(self, rows: "_Rows", pend: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The task and IRQ nesting of every row of a chunk (:func:`_tasks`), from what each
        CPU ran and how deep in interrupts it was at the chunk's start; the open entries of
        a CPU whose task was unknown until the chunk's first switch block become that
        block's "prev" task's.  Updates the per-CPU state."""
        if not len(rows.kind):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        lo, hi = int(rows.cpu.min()), int(rows.cpu.max())
        if lo >= -1 and hi < 1 << 16:
            keys, slot = np.arange(-1, hi + 1), rows.cpu + 1
        else:
            keys, slot = np.unique(rows.cpu, return_inverse=True)
            slot = slot.reshape(-1)
        keys = keys.tolist()
        known = np.array([k in self._cpu_task for k in keys], dtype=bool)
        ran = np.array([self._cpu_task.get(k, -1) for k in keys], dtype=np.int64)
        deep = np.array([self._irq_depth.get(k, 0) for k in keys], dtype=np.int64)
        task, irq, first_prev, last, total = _tasks(
            rows.kind, slot, rows.cpu, rows.pid, rows.prev, known, ran, deep,
            _KIND_CODE[Kind.SWITCH], _KIND_CODE[Kind.IRQ_ENTRY], _KIND_CODE[Kind.IRQ_EXIT])
        if pend.height and (first_prev >= 0).any():
            rekey = {-1 - keys[j]: int(first_prev[j]) for j in np.flatnonzero(first_prev >= 0).tolist()}
            self._pending = pend.with_columns(
                task=pl.col("task").replace_strict(rekey, default=pl.col("task"), return_dtype=pl.Int64))
        for j in np.flatnonzero(last >= 0).tolist():
            self._cpu_task[keys[j]] = int(last[j])
        for j in np.flatnonzero(total).tolist():
            self._irq_depth[keys[j]] = self._irq_depth.get(keys[j], 0) + int(total[j])
        return task, irq

    def _name_codes(self, rows: "_Rows") -> np.ndarray:
        """The chunk-local function codes of ``rows`` as codes of this trace (the same name,
        the same code in every chunk)."""
        ids = self._func_ids
        lut = np.array([ids.setdefault(v, len(ids)) for v in rows.func_names] + [-1], dtype=np.int64)
        return lut[rows.func]

    def _nest(self, calls: pl.DataFrame, codes: np.ndarray, last: bool
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pair ``calls`` (open entries carried from earlier chunks first) by nesting per
        task (:func:`_nest_rows`): (partner, pending) as :func:`_match` gives them, the
        parent's seq of every row (-1: none) and its depth (-1 on rows that are not
        calls).  Counts the rows whose printed indentation disagrees."""
        task = _codes(calls.get_column("task"))
        ntasks = int(task.max()) + 2 if len(task) else 1
        task = np.where(task < 0, ntasks - 1, task)
        func = _codes(calls.get_column("func"))
        printed = calls.get_column("depth").cast(pl.Int64).fill_null(-1).to_numpy()
        cpu = calls.get_column("cpu").cast(pl.Int64).fill_null(-1).to_numpy()
        seq = calls.get_column("seq").to_numpy().astype(np.int64)
        partner, is_open, parent, depth, first_bad, nbad = _nest_rows(
            task, codes.astype(np.int64), printed, func, cpu, seq, ntasks,
            _KIND_CODE[Kind.ENTRY], _KIND_CODE[Kind.EXIT], _KIND_CODE[Kind.LEAF], _KIND_CODE[Kind.LOST])
        if nbad:
            self.indent_disagreements += int(nbad)
            if self.first_disagreement_line is None:
                line = calls.get_column("line")[int(first_bad)]
                self.first_disagreement_line = int(line) if line is not None else None
        pending = is_open if not last else np.zeros(len(is_open), dtype=bool)
        return partner, pending, parent, depth


@njit(cache=True, nogil=True)
def _nest_rows(task, kind, printed, func, cpu, seq, ntasks, ENTRY, EXIT, LEAF, LOST):
    """The kernel's call nesting, row by row in source order: per task a stack of open
    entries (a linked list through ``below``).  An entry is pushed one level under the
    innermost open entry, or at its printed depth when its task has nothing open; a leaf
    sits one level under the innermost open entry; ``}`` pops the innermost entry and
    closes it, or, when it names its function (``} /* func */``) and the innermost entry
    is another, the nearest open entry of that name (those above it lost their exits).  A
    ``}`` that finds nothing to close keeps its printed depth.  A LOST row abandons the
    stacks of the tasks last seen on its CPU.

    Returns (partner: the row of each closed entry's exit, else -1; open: entries still
    open at the end; parent: seq of each row's enclosing entry, else -1; depth: nesting
    depth of each call row, else -1; the first row whose printed depth disagrees, and how
    many do)."""
    n = len(task)
    partner = np.full(n, -1, dtype=np.int64)
    is_open = np.zeros(n, dtype=np.bool_)
    parent = np.full(n, -1, dtype=np.int64)
    depth = np.full(n, -1, dtype=np.int64)
    below = np.full(n, -1, dtype=np.int64)
    top = np.full(ntasks, -1, dtype=np.int64)
    last_cpu = np.full(ntasks, -2, dtype=np.int64)
    first_bad = -1
    nbad = 0
    for i in range(n):
        k = kind[i]
        if k == LOST:
            for t in range(ntasks):
                if last_cpu[t] == cpu[i]:
                    r = top[t]
                    while r >= 0:
                        is_open[r] = False
                        r = below[r]
                    top[t] = -1
            continue
        if k != ENTRY and k != EXIT and k != LEAF:
            continue
        t = task[i]
        last_cpu[t] = cpu[i]
        up = top[t]
        if k == EXIT:
            hit = up
            if func[i] >= 0:
                while hit >= 0 and func[hit] >= 0 and func[hit] != func[i]:
                    hit = below[hit]
            if hit >= 0:
                r = up
                while r != hit:  # entries that lost their exits
                    is_open[r] = False
                    r = below[r]
                partner[hit] = i
                is_open[hit] = False
                top[t] = below[hit]
                d = depth[hit]
                parent[i] = parent[hit]
            else:
                d = printed[i]
        else:
            if up >= 0:
                d = depth[up] + 1
                parent[i] = seq[up]
            else:
                d = max(printed[i], 0)
            if k == ENTRY:
                below[i] = up
                top[t] = i
                is_open[i] = True
        depth[i] = d
        if printed[i] >= 0 and d != printed[i]:
            nbad += 1
            if first_bad < 0:
                first_bad = i
    return partner, is_open, parent, depth, first_bad, nbad


@dataclass
class _Rows:
    """A text call graph's rows as arrays, -1 where a column is null: what pairing by
    nesting reads, worked out of each chunk apart from the others."""

    kind: np.ndarray  #: :func:`_kind_codes`
    cpu: np.ndarray
    pid: np.ndarray
    prev: np.ndarray  #: on a task-switch row, the task switched from
    depth: np.ndarray  #: as printed
    seq: np.ndarray
    ts: np.ndarray
    dur: np.ndarray
    has_ts: np.ndarray
    has_dur: np.ndarray
    flag: np.ndarray  #: the irq-info flags' context: 3 NMI, 2 hardirq, 1 softirq, 0 none
    func: np.ndarray  #: code of the function name within the chunk
    func_names: list  #: the name of each code

    @classmethod
    def of(cls, events: pl.DataFrame, kind: np.ndarray) -> "_Rows":
        def ints(c: str) -> np.ndarray:
            return events.get_column(c).cast(pl.Int64).fill_null(-1).to_numpy()

        names: dict[str, int] = {}
        func = codes(events.get_column("func"), names)
        ts, dur = events.get_column("ts_ns"), events.get_column("dur_ns")
        switch = np.flatnonzero(kind == _KIND_CODE[Kind.SWITCH])
        prev = np.full(len(kind), -1, dtype=np.int64)
        if len(switch):
            body = events.get_column("body").gather(pl.Series(switch, dtype=pl.UInt32))
            prev[switch] = body.str.extract(r"-(\d+)\s+=>", 1).cast(pl.Int64, strict=False).fill_null(-1).to_numpy()
        return cls(kind, ints("cpu"), ints("pid"), prev, ints("depth"), events.get_column("seq").to_numpy().astype(np.int64),
                   ts.fill_null(0).to_numpy(), dur.fill_null(0).to_numpy(), ts.is_not_null().to_numpy(),
                   dur.is_not_null().to_numpy(), _flag_contexts(events.get_column("flags")), func, list(names))

    def then(self, more: "_Rows") -> "_Rows":
        """These rows, then ``more`` (function codes of each kept as they are)."""
        return _Rows(*(np.concatenate([getattr(self, f), getattr(more, f)])
                       for f in ("kind", "cpu", "pid", "prev", "depth", "seq", "ts", "dur", "has_ts", "has_dur", "flag", "func")),
                     func_names=[])


def _flag_contexts(flags: pl.Series) -> np.ndarray:
    """The context each row's irq-info flags say (``d.h1.``: the fourth character of the
    kernel's ``trace_print_lat_fmt()``): 3 NMI (``Z``/``z``), 2 hardirq (``H``/``h``), 1
    softirq (``s``), 0 none said."""
    if flags.null_count() == len(flags):
        return np.zeros(len(flags), dtype=np.int8)
    names: dict[str, int] = {}
    code = codes(flags, names)
    lut = np.array([3 if ("z" in f or "Z" in f) else 2 if ("h" in f or "H" in f) else 1 if "s" in f else 0
                    for f in names] + [0], dtype=np.int8)
    return lut[code]


#: the span's context by code (:func:`_nested_spans`)
_CONTEXTS = pl.Series("context", ["task", "softirq", "hardirq", "nmi"], dtype=pl.String)


@njit(cache=True, nogil=True)
def _tasks(kind, slot, cpu, pid, prev, known, ran, deep, SWITCH, IRQ_ENTRY, IRQ_EXIT):
    """The task of every row of a chunk and how deep in interrupts its CPU is.

    A row names its task by its pid; otherwise it is the task its CPU last switched to
    (function_graph's task-switch block, ``prev-1 => next-2``), in this chunk or before
    (``ran``, where ``known``); on a CPU never seen switching, the task the CPU's next
    switch block in the chunk switches from; else the CPU itself (``-1 - cpu``).  IRQ
    markers (``==========>`` / ``<==========``) count the CPU's interrupt nesting from
    ``deep``, never below zero.  Rows are in CPU slots ``slot``; returns (task, irq depth,
    per slot: the "prev" of the first switch block of a CPU not ``known``, the task it last
    switched to in the chunk, the chunk's sum of IRQ markers), -1 where none."""
    n = len(kind)
    nslots = len(known)
    upcoming = np.full(nslots, -1, dtype=np.int64)
    switched_from = np.full(n, -1, dtype=np.int64)
    for i in range(n - 1, -1, -1):
        c = slot[i]
        if kind[i] == SWITCH and prev[i] >= 0:
            upcoming[c] = prev[i]
        switched_from[i] = upcoming[c]
    task = np.empty(n, dtype=np.int64)
    irq = np.empty(n, dtype=np.int64)
    last = np.full(nslots, -1, dtype=np.int64)
    total = np.zeros(nslots, dtype=np.int64)
    first_prev = np.full(nslots, -1, dtype=np.int64)
    seen = np.zeros(nslots, dtype=np.bool_)
    for i in range(n):
        c = slot[i]
        k = kind[i]
        if k == SWITCH:
            if pid[i] >= 0:
                last[c] = pid[i]
            if not seen[c]:
                seen[c] = True
                if not known[c]:
                    first_prev[c] = switched_from[i]
        elif k == IRQ_ENTRY:
            total[c] += 1
        elif k == IRQ_EXIT:
            total[c] -= 1
        if k != SWITCH and pid[i] >= 0:
            task[i] = pid[i]
        elif last[c] >= 0:
            task[i] = last[c]
        elif known[c]:
            task[i] = ran[c]
        elif switched_from[i] >= 0:
            task[i] = switched_from[i]
        else:
            task[i] = -1 - cpu[i]
        irq[i] = max(deep[c] + total[c], 0)
    return task, irq, first_prev, last, total


def _take(frames: tuple[pl.DataFrame, ...], idx: np.ndarray, *replace: tuple[str, pl.Series],
          columns: list[str] | None = None) -> pl.DataFrame:
    """Rows ``idx`` (rising) of ``frames`` one after the other (pending entries, then the
    chunk), of ``columns`` (default: the event schema's), with columns ``replace`` (name,
    values of those rows) put in or added."""
    parts, at = [], 0
    for f in frames:
        own = idx[(idx >= at) & (idx < at + f.height)] - at
        parts.append(_rows(f.select(columns or list(EVENT_SCHEMA)), own))
        at += f.height
    out = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
    return out.with_columns(v.alias(c) for c, v in replace) if replace else out


def _gather(frames: tuple[pl.DataFrame, ...], idx: np.ndarray, column: str) -> pl.Series:
    """Column ``column`` of ``frames`` one after the other, at rows ``idx`` (any order)."""
    whole = pl.concat([f.get_column(column) for f in frames]) if len(frames) > 1 else frames[0].get_column(column)
    return whole.gather(pl.Series(idx, dtype=pl.UInt32))


def _nested_spans(rows: _Rows, frames: tuple[pl.DataFrame, ...], keep: np.ndarray, partner: np.ndarray,
                  parent: np.ndarray, depth: np.ndarray, task: np.ndarray, irq: np.ndarray, source: str) -> pl.DataFrame:
    """The spans of rows ``keep`` (:func:`_span_numbers`), their names gathered from
    ``frames`` (one after the other: pending entries, then the chunk)."""
    n = len(keep)
    (seq, parent_id, pid, dep, start, has_start, dur, has_dur, ctx, complete, exit_row, need_comm
     ) = _span_numbers(keep, rows.kind, partner, parent, depth, task, irq, rows.pid, rows.seq, rows.ts, rows.has_ts,
                       rows.dur, rows.has_dur, rows.flag, _KIND_CODE[Kind.ENTRY], _KIND_CODE[Kind.EXIT],
                       _KIND_CODE[Kind.LEAF])
    names = _take(frames, keep, columns=["cpu", "comm", "func", "raw_func"])
    comm = names.get_column("comm")
    if need_comm and comm.null_count():
        # an entry without a comm takes its exit's
        comm = comm.zip_with(comm.is_not_null() | pl.Series(exit_row < 0), _gather(frames, np.maximum(exit_row, 0), "comm"))
    return pl.DataFrame({
        "span_id": seq,
        "parent_id": masked("parent_id", parent_id, parent_id >= 0, pl.Int64),
        "cpu": names.get_column("cpu"),
        "pid": masked("pid", pid, pid >= 0, pl.Int32),
        "comm": comm,
        "func": names.get_column("func"),
        "raw_func": names.get_column("raw_func"),
        "depth": masked("depth", dep, dep >= 0, pl.Int32),
        "start_ns": masked("start_ns", start, has_start, pl.Int64),
        "dur_ns": masked("dur_ns", dur, has_dur, pl.Int64),
        "seq": seq,
        "context": _CONTEXTS.gather(pl.Series(ctx, dtype=pl.UInt32)),
        "complete": pl.Series(complete, dtype=pl.Boolean),
        "source": pl.repeat(source, n, dtype=pl.String, eager=True),
    }, schema=SPAN_SCHEMA)


@njit(cache=True, nogil=True)
def _span_numbers(keep, kind, partner, parent, depth, task, irq, pid, seq, ts, has_ts, dur, has_dur, flag,
                  ENTRY, EXIT, LEAF):
    """The numbers of the span of each row ``keep``: an entry closed by an exit takes the
    duration the exit states (or, where it states none, the time between them); an exit
    without an entry began its duration before its time; a leaf is whole.  The context is
    the irq-info flags' (:func:`_flag_contexts`), or hardirq inside IRQ markers.  Also the
    row of each span's exit (-1: none) and whether any exit was found."""
    n = len(keep)
    out_seq = np.empty(n, dtype=np.int64)
    out_parent = np.empty(n, dtype=np.int64)
    out_pid = np.empty(n, dtype=np.int64)
    out_depth = np.empty(n, dtype=np.int64)
    start = np.zeros(n, dtype=np.int64)
    has_start = np.zeros(n, dtype=np.bool_)
    out_dur = np.zeros(n, dtype=np.int64)
    out_has_dur = np.zeros(n, dtype=np.bool_)
    ctx = np.zeros(n, dtype=np.int64)
    complete = np.zeros(n, dtype=np.bool_)
    exit_row = np.full(n, -1, dtype=np.int64)
    any_exit = False
    for j in range(n):
        i = keep[j]
        k = kind[i]
        out_seq[j] = seq[i]
        out_parent[j] = parent[i]
        out_pid[j] = task[i] if task[i] >= 0 else pid[i]
        out_depth[j] = depth[i]
        x = partner[i]
        if k == ENTRY and x >= 0:
            exit_row[j] = x
            any_exit = True
            complete[j] = True
            if has_dur[x]:
                out_dur[j] = dur[x]
                out_has_dur[j] = True
            elif has_ts[x] and has_ts[i]:
                out_dur[j] = ts[x] - ts[i]
                out_has_dur[j] = True
        elif k == EXIT or k == LEAF:
            out_dur[j] = dur[i]
            out_has_dur[j] = has_dur[i]
            complete[j] = k == LEAF
        if k == EXIT:
            start[j] = ts[i] - dur[i]
            has_start[j] = has_ts[i] and has_dur[i]
        else:
            start[j] = ts[i]
            has_start[j] = has_ts[i]
        f = flag[i]
        ctx[j] = 3 if f == 3 else 2 if (f == 2 or irq[i] > 0) else 1 if f == 1 else 0
    return (out_seq, out_parent, out_pid, out_depth, start, has_start, out_dur, out_has_dur, ctx, complete,
            exit_row, any_exit)


_KIND_CODE = {k: i + 1 for i, k in enumerate(sorted(vars(Kind)[n] for n in vars(Kind) if n.isupper() and isinstance(vars(Kind)[n], str)))}


def _rows(df: pl.DataFrame, idx: np.ndarray) -> pl.DataFrame:
    """Rows ``idx`` of ``df``: for a few rows of many, cheaper than a filter."""
    return df.select(pl.all().gather(pl.Series("_i", idx, dtype=pl.UInt32)))


def _stored(events: pl.DataFrame, is_call: np.ndarray) -> pl.DataFrame:
    """The rows that are not calls, in STORED_EVENT_SCHEMA."""
    if is_call.all():
        return pl.DataFrame(schema=STORED_EVENT_SCHEMA)
    if not is_call.any():
        return conform(events, STORED_EVENT_SCHEMA)
    other = np.flatnonzero(~is_call)
    stored = _rows(events, other) if len(other) * 8 < len(is_call) else events.filter(pl.Series("_c", ~is_call, dtype=pl.Boolean))
    return conform(stored, STORED_EVENT_SCHEMA)


def _split_calls(events: pl.DataFrame, kind: np.ndarray, is_call: np.ndarray, columns: list[str]
                 ) -> tuple[pl.DataFrame, pl.DataFrame, np.ndarray | None]:
    """(the rows that are not calls, in STORED_EVENT_SCHEMA; the rows to pair, ``columns``;
    which of those are calls, or None when only calls were kept).

    The other rows stay among the rows to pair, marked, and are dropped with the returns
    when the spans are made: one pass over the chunk instead of two.  With kprobe hits (and
    in an empty chunk) the calls alone are kept: kprobe depths are counted over them."""
    stored = _stored(events, is_call)
    if not events.height:
        return stored, events.select(columns), None
    if _is(kind, _KPROBE_KINDS).any():
        calls = events.select(columns)
        return stored, calls if is_call.all() else calls.filter(pl.Series("_c", is_call, dtype=pl.Boolean)), None
    return stored, events.select(columns), is_call


def _kind_codes(kind: pl.Series) -> np.ndarray:
    """A small integer per row for ``kind`` (0 for a kind this module does not know):
    one pass over the column, after which every test of the kind is a numpy comparison."""
    names: dict[str, int] = {}
    code = codes(kind, names)
    lut = np.array([_KIND_CODE.get(v, 0) for v in names] + [0], dtype=np.int8)
    return lut[code]


def _is(codes: np.ndarray, kinds) -> np.ndarray:
    out = np.zeros(len(codes), dtype=bool)
    for k in kinds:
        out |= codes == _KIND_CODE[k]
    return out


def _irq_within(cpu: np.ndarray, step: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Per row, the sum of its CPU's IRQ markers (``step``: +1 ``==========>``, -1
    ``<==========``) up to and including the row, within this chunk; and per CPU with a
    marker, the chunk's total."""
    if not step.any():
        return np.zeros(len(cpu), dtype=np.int64), {}
    slot, nslots = _one_key_codes(cpu)
    local, total, marked, first = _irq_rows(slot, nslots, step)
    return local, {int(cpu[first[c]]): int(total[c]) for c in np.flatnonzero(marked).tolist()}


@njit(cache=True, nogil=True)
def _irq_rows(slot, nslots, step):
    """The running sum of ``step`` per CPU slot, row by row: (per row, its slot's sum so far;
    per slot, the total, whether it has a marker, and its first row)."""
    level = np.zeros(nslots, dtype=np.int64)
    marked = np.zeros(nslots, dtype=np.bool_)
    first = np.full(nslots, -1, dtype=np.int64)
    local = np.empty(len(slot), dtype=np.int64)
    for i in range(len(slot)):
        c = slot[i]
        if first[c] < 0:
            first[c] = i
        if step[i]:
            level[c] += step[i]
            marked[c] = True
        local[i] = level[c]
    return local, level, marked, first


#: the task of a row whose task is not known, where a key must be an integer
_NO_TASK = -(1 << 40)


@njit(cache=True, nogil=True)
def _kprobe_levels(slot, entry, base):
    """kprobe hits in source order, each task (``slot``) counting entries minus returns
    from ``base``: the depth of each hit (an entry one less than the count after it, a
    return the count after it) and each task's count at the end."""
    level = base.copy()
    depth = np.empty(len(slot), dtype=np.int64)
    for i in range(len(slot)):
        c = slot[i]
        if entry[i]:
            level[c] += 1
            depth[i] = level[c] - 1
        else:
            level[c] -= 1
            depth[i] = level[c]
    return depth, level


def _codes(s: pl.Series) -> np.ndarray:
    """Integer codes of the values of ``s`` (equal values, equal codes); -1 for null."""
    if not s.dtype.is_integer():
        return codes(s)
    v = s.cast(pl.Int64)
    out, _ = _one_key_codes(v.fill_null(0).to_numpy())
    if v.null_count():
        out[v.is_null().to_numpy()] = -1
    return out


def _one_key_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """:func:`_key_codes` of one integer key per row (a task, a CPU)."""
    values = np.asarray(values, dtype=np.int64)
    zero = np.zeros(len(values), dtype=np.int64)
    return _key_codes(values, zero, zero)


@njit(cache=True, nogil=True)
def _key_codes(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, int]:
    """A dense code (0, 1, ...) for each distinct (a, b, c) of the rows, in order of first
    appearance, and how many there are: an open-addressing table."""
    n = len(a)
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    table = np.full(size, -1, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    ncodes = 0
    for i in range(n):
        h = (np.uint64(a[i]) * np.uint64(0x9E3779B97F4A7C15)) ^ (np.uint64(b[i]) * np.uint64(0xC2B2AE3D27D4EB4F))
        h ^= np.uint64(c[i]) * np.uint64(0x165667B19E3779F9)
        slot = np.int64((h ^ (h >> np.uint64(31))) & np.uint64(mask))
        while True:
            k = table[slot]
            if k < 0:
                table[slot] = ncodes
                first[ncodes] = i
                out[i] = ncodes
                ncodes += 1
                break
            r = first[k]
            if a[r] == a[i] and b[r] == b[i] and c[r] == c[i]:
                out[i] = k
                break
            slot = (slot + 1) & mask
    return out, ncodes


def _match(calls: pl.DataFrame, opening: np.ndarray, closing: np.ndarray, last: bool) -> tuple[np.ndarray, np.ndarray]:
    """Pair returns with entries.  Returns ``partner`` (for each entry that its return
    closes, the row of that return; -1 elsewhere) and ``pending`` (entries with nothing
    after them in their nesting slot: their return may be in the next chunk; none when
    ``last``).

    Within one (task, depth, key), returns close entries last-in first-out
    (:func:`_match_rows`): the kernel records an interrupt's handlers at the depth of the
    call it interrupted, so a call's return may follow other whole calls at its own depth.
    The key is the function when every return names it (trace.dat and raw funcgraph
    records, kprobes, tracing_thresh traces): an interrupt recorded at the depth of the
    call it interrupted then cannot steal that call's return.  Plain ``}`` returns are
    matched by position alone, and a return that names a different function than the
    entry it would close closes nothing."""
    n = calls.height
    partner = np.full(n, -1, dtype=np.int64)
    pending = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(opening | closing)
    if len(rows) == 0:
        return partner, pending
    at = pl.Series("_i", rows, dtype=pl.UInt32)
    task = calls.get_column("task").gather(at).fill_null(-(1 << 40)).to_numpy().astype(np.int64)
    depth = calls.get_column("depth").gather(at).cast(pl.Int64).fill_null(-1 << 20).to_numpy()
    func = codes(calls.get_column("func").gather(at))
    op = opening[rows]
    named_all = bool((~op).any()) and bool((func[~op] >= 0).all())
    key = func if named_all else np.zeros(len(rows), dtype=np.int64)
    group, ngroups = _key_codes(task, depth, key)
    ret, is_open = _match_rows(group, ngroups, op, func)
    paired = ret >= 0
    partner[rows[paired]] = rows[ret[paired]]
    if not last:
        pending[rows[is_open]] = True
    return partner, pending


@njit(cache=True, nogil=True)
def _match_rows(group, ngroups, opening, func):
    """Entries and returns in source order, per ``group`` a stack of open entries: an entry
    is pushed, a return pops the innermost and closes it, unless both name their function
    (``func`` >= 0) and the names differ (then neither is paired).  Returns (the row of
    each closed entry's return, -1 elsewhere; the entries left open)."""
    n = len(group)
    ret = np.full(n, -1, dtype=np.int64)
    below = np.full(n, -1, dtype=np.int64)
    top = np.full(ngroups, -1, dtype=np.int64)
    for i in range(n):
        g = group[i]
        if opening[i]:
            below[i] = top[g]
            top[g] = i
            continue
        e = top[g]
        if e < 0:
            continue
        top[g] = below[e]
        if func[e] < 0 or func[i] < 0 or func[e] == func[i]:
            ret[e] = i
    is_open = np.zeros(n, dtype=np.bool_)
    for g in range(ngroups):
        e = top[g]
        while e >= 0:
            is_open[e] = True
            e = below[e]
    return ret, is_open


def _carried_parent(carried: pl.DataFrame, task: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """For rows at ``depth`` in ``task`` whose parent opened before their chunk: the last
    of the ``carried`` open entries one level up in the same task (-1: none)."""
    tab = carried.group_by(
        pl.col("task").cast(pl.Int64), (pl.col("depth").cast(pl.Int64) + 1).alias("d")
    ).agg(pl.col("seq").max())
    q = pl.DataFrame({"task": pl.Series(task, dtype=pl.Int64), "d": pl.Series(depth, dtype=pl.Int64)})
    got = q.join(tab, on=["task", "d"], how="left", maintain_order="left").get_column("seq")
    return got.fill_null(-1).to_numpy()


def _parents(calls: pl.DataFrame, opening: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """parent_id of each row: the seq of the last entry one level up in the same task before
    it (-1 for none; only rows in ``keep`` are looked up)."""
    n = calls.height
    depth_s = calls.get_column("depth")
    query = keep & depth_s.is_not_null().to_numpy()
    if not opening.any() or not query.any():
        return np.full(n, -1, dtype=np.int64)
    task = calls.get_column("task").fill_null(-(1 << 40)).to_numpy().astype(np.int64)
    depth = depth_s.cast(pl.Int64).fill_null(0).to_numpy()
    seq = calls.get_column("seq").to_numpy().astype(np.int64)
    return _parent_rows(task, depth, seq, opening, query)


@njit(cache=True, nogil=True)
def _parent_rows(task, depth, seq, opening, query):
    """Rows in the order of ``seq``: each entry becomes the last one at its (task, depth),
    and each row in ``query`` takes the seq of the last entry at (its task, its depth - 1)
    (-1: none).  Among rows of one seq, the entries are recorded first."""
    n = len(task)
    keys, _ = _key_codes(np.concatenate((task, task)), np.concatenate((depth, depth - 1)), np.zeros(2 * n, dtype=np.int64))
    last = np.full(2 * n, -1, dtype=np.int64)
    parent = np.full(n, -1, dtype=np.int64)
    order = np.argsort(seq, kind="mergesort")
    i = 0
    while i < n:
        j = i
        while j < n and seq[order[j]] == seq[order[i]]:
            j += 1
        for k in range(i, j):
            r = order[k]
            if opening[r]:
                last[keys[r]] = seq[r]
        for k in range(i, j):
            r = order[k]
            if query[r]:
                parent[r] = last[keys[n + r]]
        i = j
    return parent
