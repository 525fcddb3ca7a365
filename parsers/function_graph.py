"""The function_graph tracer's text: the kernel ``trace`` / ``trace_pipe`` file and
``perf ftrace -G`` output (docs/formats.md#function_graph).

Each line is the prologue printed by ``print_graph_prologue()`` (kernel/trace/
trace_functions_graph.c): optional absolute time (funcgraph-abstime, ``%5lu.%06lu |``),
optional relative time (display-graph), the CPU (funcgraph-cpu, `` 0) ``), the task
(funcgraph-proc, ``comm-pid`` centred in 14 columns then `` | ``), the latency flags
(latency-format), then the duration column (funcgraph-duration: an overhead mark from
``trace_find_mark()`` and ``usecs.nsecs us``, or blank) and the call tree indented two spaces
per level: ``func() {`` (an entry), ``func();`` (a leaf: entry and return in one line),
``}`` or ``} /* func */`` (a return; the name is printed with funcgraph-tail, or when the
entry is not in the buffer), ``/* text */`` (trace_printk or another event).

Special lines: IRQ markers (``==========>`` / ``<==========``), the task-switch block
(``------`` rules around `` 0)  prev-1  =>  next-2``), ``CPU:N [LOST M EVENTS]``,
`` (Overruns: N)``.  The parser classifies every line with vectorized regular expressions
over a whole chunk; pairing returns with entries is :mod:`tracekit.spans`' job.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from tracekit.parsers import FormatInfo
from tracekit.jit import njit

from tracekit.parsers.base import ELIDED_RE, ELIDED_REASON, LOST_EVENTS_RE, LineChunk, ParseContext, read_trace_header, timestamp_ns_expr
from tracekit.parsers import callgraph
from tracekit.parsers.callgraph import DURATION_RE, TREE_RE, duration_ns_expr, read_body
from tracekit.parsers.scan import (DOT, NINE, ZERO, buffer, find_byte, line_bounds, printable, read_decimal, read_uint,
                                   skip_back_spaces, skip_spaces, strings, texts, ints, nulls, map_chunks)
from tracekit.parsers.scan import dictionary as scan_dictionary
from tracekit.schema import Kind, conform
from tracekit.symbols import canonical_expr, canonicalize

__all__ = ["FORMAT", "sniff", "parse", "duration_ns_expr"]

FORMAT = FormatInfo(
    name="function_graph",
    kind="text",
    description="ftrace function_graph tracer text (trace, trace_pipe, perf ftrace -G)",
    example=" 0)               |  free_pgtables() {",
)

# The prologue, field by field.  Every field is optional because every one of them is a
# trace option; the duration column ends with the '|' that starts the call tree.
_PROLOGUE = (
    r"^\s*"
    r"(?:(?P<abs>\d+\.\d+)\s+\|\s+)?"  # funcgraph-abstime
    r"(?:(?P<rel>\d+)\s+us\s+\|\s+)?"  # REL TIME (display-graph latency traces)
    r"(?:(?P<cpu>\d+)\)\s+)?"  # funcgraph-cpu
    r"(?:(?P<proc>[^|]*?-\d+)\s+\|\s*)?"  # funcgraph-proc
    r"(?:(?P<lat>[.A-Za-z0-9]{4,8})\s+\|)?"  # latency-format flags
)
_LINE_RE = _PROLOGUE + DURATION_RE + TREE_RE  # (the body: parsers/callgraph.py)
_SWITCH_RE = (
    r"^\s*(?:(?P<abs>\d+\.\d+)\s+\|\s+)?(?:(?P<cpu>\d+)\)\s+)?"
    r"(?P<prev>\S.*?-\d+)\s+=>\s+(?P<next>\S.*?-(?P<next_pid>\d+))\s*$"
)
# (print_graph_irq() prints the prologue: abstime, REL TIME, CPU, task, flags)
_IRQ_RE = r"^\s*(?:(?P<abs>\d+\.\d+)\s+\|\s+)?(?:(?P<rel>\d+)\s+us\s+\|\s+)?(?:(?P<cpu>\d+)\)\s+)?(?:(?P<proc>[^|]*?-\d+)\s+\|\s*)?(?:(?P<lat>[.A-Za-z0-9]{4,8})\s+\|)?\s*(?P<arrow>==========>|<==========)"

#: What a line of this format can begin with (after the prologue's leading blanks): the
#: header, a prologue field (abstime, REL TIME, CPU, task, duration, the '|' of the call
#: tree), the rules and task-switch lines, lost events, overruns, an editor's elision.  A
#: line that begins otherwise was broken off the line before it (by a mail client):
#: :mod:`tracekit.pasted` joins it back.
OWN_LINE_RE = (
    r"^\s*(?:$|#|\d+\.\d+\s+\||\d+\s+us\s+\||\d+\)|[+!#*@$]?\s*\d+(?:\.\d+)?\s+us\b|\||-{5,}"
    r"|\S+-\d+\s+(?:\||=>)|CPU:\s*\d+|\(Overruns|\[\.\.\.\]|\.\.\.)"
)


def sniff(head: str) -> int:
    """How sure we are that ``head`` is function_graph text."""
    if "# tracer: function_graph" in head:
        return 95
    lines = [ln for ln in head.splitlines()[:200] if ln.strip() and not ln.startswith("#")]
    if not lines:
        return 0
    hits = sum(
        1
        for ln in lines
        if re.search(r"\|\s+(?:[^\s(]+\(.*\) \{|[^\s(]+\(.*\);|\}(?:\s*/\*.*\*/)?)\s*$", ln)
    )
    return 80 if hits >= max(1, len(lines) // 2) else 0


def _header(lines: pl.Series, ctx: ParseContext) -> None:
    """Read what the ``#`` header says (tracer, CPUs, entries) into ctx.meta."""
    read_trace_header(lines, ctx)


_OUT_COLUMNS = ["seq", "line", "cpu", "pid", "comm", "ts_ns", "kind", "func", "raw_func", "depth", "dur_ns", "flags", "body", "lost"]


@dataclass(frozen=True)
class Layout:
    """Which prologue fields a trace prints (they are fixed by the trace options, so one
    file has one layout).  ``bars`` is the number of ``|`` before the call tree."""

    abstime: bool
    reltime: bool
    cpu: bool
    proc: bool
    lat: bool

    @property
    def bars(self) -> int:
        return int(self.abstime) + int(self.reltime) + int(self.proc) + int(self.lat) + 1


def detect_layout(lines: pl.Series) -> Layout | None:
    """The layout of the ordinary call lines among ``lines`` (majority vote over up to 400
    of them), or None when there are none."""
    def candidates(ls: pl.Series) -> pl.Series:
        return ls.filter(
            ~ls.str.starts_with("#")
            & ls.str.contains(r"\|\s*(?:\S+\(.*\) \{|\S+\(.*\);|\})", literal=False)
            & ~ls.str.contains("=>", literal=True)
        ).head(400)

    cand = candidates(lines.head(4000))
    if cand.len() < 400 and len(lines) > 4000:
        cand = candidates(lines)
    if cand.is_empty():
        return None
    g = cand.str.extract_groups(_LINE_RE).struct.unnest()
    g = g.filter(pl.col("body").is_not_null())
    if g.is_empty():
        return None
    have = {k: g[k].is_not_null().sum() * 2 > g.height for k in ("abs", "rel", "cpu", "proc", "lat")}
    return Layout(have["abs"], have["rel"], have["cpu"], have["proc"], have["lat"])


def _parse_fast(chunk: LineChunk, lay: Layout) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The call-tree lines of a chunk of a known layout, read by the compiled scanner
    (:func:`_scan_lines`); task switches are read here too.  Returns (rows read, the
    lines left to the general path as ``line`` and ``text``)."""
    raw = chunk.raw
    if raw is None:  # (text that had carriage returns: lines already split)
        raw = ("\n".join(chunk.lines.to_list()) + "\n").encode("utf-8")
        starts, ends = line_bounds(buffer(raw))
    else:
        starts, ends = chunk.bounds()
    kind, ts, cpu, pid, dur, depth, offs = _scan_lines(
        buffer(raw), starts, ends, int(lay.abstime), int(lay.reltime), int(lay.cpu), int(lay.proc), int(lay.lat))
    left = np.flatnonzero(kind == 0)
    rows, code, ts, cpu, pid, dur, depth, o = _taken(kind, ts, cpu, pid, dur, depth, offs)
    names, values = scan_dictionary(raw, o[4], o[5], "raw_func")
    canon = canonicalize(values.to_frame())
    line = pl.Series("line", rows + chunk.first_line, dtype=pl.Int64)
    good = pl.DataFrame({
        "seq": line.alias("seq"),
        "line": line,
        "cpu": ints("cpu", cpu, pl.Int32),
        "pid": ints("pid", pid, pl.Int32),
        "comm": strings(raw, o[0], o[1], "comm"),  # (funcgraph-proc, and the task-switch lines)
        "ts_ns": ints("ts_ns", ts, pl.Int64),
        "kind": _KIND_NAMES.gather(pl.Series(code, dtype=pl.UInt32)),
        "func": canon.get_column("func").gather(names),
        "raw_func": canon.get_column("raw_func").gather(names),
        "depth": ints("depth", depth, pl.Int32),
        "dur_ns": ints("dur_ns", dur, pl.Int64),
        "flags": strings(raw, o[2], o[3], "flags") if lay.lat else nulls("flags", len(rows), pl.String),
        "body": texts(raw, o[6], o[7], "body"),
        "lost": nulls("lost", len(rows), pl.Int64),
    })
    rest = _Lines(chunk).rows(left)
    # Of the rest, the header, blank lines and the rules around task switches say nothing;
    # anything else takes the general path.
    stripped = pl.col("text").str.strip_chars()
    quiet = pl.col("text").str.starts_with("#") | (stripped == "") | stripped.str.contains(r"^-{10,}$")
    return good, rest.filter(~quiet)


@njit(cache=True, nogil=True)
def _taken(kind, ts, cpu, pid, dur, depth, offs):
    """The scanner's results for the lines it took (kind not 0), in one pass: (their rows
    in the chunk, kind code less one, time, CPU, pid, duration, depth, name offsets)."""
    n = 0
    for i in range(len(kind)):
        if kind[i]:
            n += 1
    rows = np.empty(n, dtype=np.int64)
    k = np.empty(n, dtype=np.int64)
    out = np.empty((5, n), dtype=np.int64)
    o = np.empty((offs.shape[0], n), dtype=np.int64)
    j = 0
    for i in range(len(kind)):
        if kind[i]:
            rows[j] = i
            k[j] = kind[i] - 1
            out[0, j] = ts[i]
            out[1, j] = cpu[i]
            out[2, j] = pid[i]
            out[3, j] = dur[i]
            out[4, j] = depth[i]
            for f in range(offs.shape[0]):
                o[f, j] = offs[f, i]
            j += 1
    return rows, k, out[0], out[1], out[2], out[3], out[4], o


def _merge(rows: pl.DataFrame, more: pl.DataFrame) -> pl.DataFrame:
    """Two frames of lines in file order (``seq`` rising) as one: a merge, not a sort;
    ``more`` takes the columns and types of ``rows`` (null where it lacks one)."""
    more = more.select([(pl.col(c) if c in more.columns else pl.lit(None)).cast(t).alias(c)
                        for c, t in rows.schema.items()])
    return rows.merge_sorted(more, key="seq")


class _Lines:
    """Whole lines of a chunk on demand: from its bytes (without splitting the rest) when it
    has them, else from its lines."""

    def __init__(self, chunk: LineChunk) -> None:
        self.chunk = chunk

    def lengths(self) -> np.ndarray:
        """Byte length of every line."""
        if self.chunk.raw is None:
            return self.chunk.lines.str.len_bytes().cast(pl.Int64).to_numpy()
        starts, ends = self.chunk.bounds()
        return ends - starts

    def rows(self, idx: np.ndarray) -> pl.DataFrame:
        """Lines ``idx`` (0-based in the chunk) as a frame of ``line`` and ``text``."""
        line = pl.Series("line", idx + self.chunk.first_line, dtype=pl.Int64)
        text = None
        if self.chunk.raw is not None and len(idx) * 8 <= self.chunk.n_lines:
            starts, ends = self.chunk.bounds()
            raw = self.chunk.raw
            try:
                text = pl.Series("text", [raw[a:b].decode("utf-8") for a, b in zip(starts[idx].tolist(), ends[idx].tolist())], dtype=pl.String)
            except UnicodeDecodeError:  # the split lines decode it as the file is decoded
                text = None
        if text is None:
            text = self.chunk.lines.gather(pl.Series("_i", idx, dtype=pl.UInt32))
        return pl.DataFrame({"line": line, "text": text.alias("text")})


def _parse_chunk(chunk: LineChunk, ctx: ParseContext, layout: Layout | None) -> pl.DataFrame:
    if chunk.any_line_starts_with(b"#"):
        _header(chunk.lines_starting_with(b"#"), ctx)
    if layout is not None:
        # The fast path takes the ordinary call lines and hands back everything else
        # (task switches, IRQ markers, lost-event lines, headers, blank lines).
        good, rest = _parse_fast(chunk, layout)
        out = _merge(good, _parse_general(rest, ctx)) if rest.height else good
    else:
        out = _parse_general(pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines}), ctx)
    nlost = out.filter(pl.col("kind") == Kind.LOST)["lost"].sum()
    if nlost:
        ctx.lost_events += int(nlost)
    return conform(out)


def parse(chunks: Iterator[LineChunk], ctx: ParseContext) -> Iterator[pl.DataFrame]:
    """Yield one event frame per chunk of function_graph text."""
    ctx.meta.setdefault("tracer", "function_graph")
    ctx.meta.setdefault("span_source", "function_graph")
    chunks = iter(chunks)
    layout: Layout | None = None
    for chunk in chunks:
        if chunk.n_lines == 0:
            continue
        layout = detect_layout(_head_lines(chunk))
        if layout is not None:
            chunks = itertools.chain([chunk], chunks)
            break
        df = _parse_chunk(chunk, ctx, None)  # no call lines near the start: the general path
        if df.height:
            yield df
    if layout is None:
        return
    # Chunks are independent once the layout is known: they are scanned in threads.
    for df in map_chunks((c for c in chunks if c.n_lines), lambda c, sub: _parse_chunk(c, sub, layout), ctx):
        if df.height:
            yield df


def _head_lines(chunk: LineChunk, nbytes: int = 512 << 10) -> pl.Series:
    """The first lines of a chunk (about ``nbytes``), without splitting all of it."""
    raw = chunk.raw
    if raw is None or len(raw) <= nbytes:
        return chunk.lines
    cut = raw.rfind(b"\n", 0, nbytes) + 1
    if cut <= 0:
        return chunk.lines
    from tracekit.io import split_lines

    return split_lines(raw[:cut])


def _parse_general(df: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """The general path: every field found by regular expression.  Used for the lines the
    fast path cannot take (special lines, lines of an unexpected layout)."""
    stripped = pl.col("text").str.strip_chars()
    df = df.with_columns(
        is_blank=stripped == "",
        is_header=pl.col("text").str.starts_with("#"),
        is_rule=stripped.str.contains(r"^-{10,}$"),
        is_overrun=stripped.str.contains(r"^\(Overruns: \d+\)$"),
    )
    understood_quietly = pl.col("is_blank") | pl.col("is_header") | pl.col("is_rule")
    body = df.filter(~understood_quietly)

    g = body.select(
        "line",
        "text",
        m=pl.col("text").str.extract_groups(_LINE_RE),
        sw=pl.col("text").str.extract_groups(_SWITCH_RE),
        irq=pl.col("text").str.extract_groups(_IRQ_RE),
        lost=pl.col("text").str.extract_groups(LOST_EVENTS_RE),
        is_overrun="is_overrun",
    ).unnest("m")
    tree = callgraph.tree_exprs(pl.col("body"), pl.col("indent"))
    kind = (
        pl.when(pl.col("irq").struct.field("arrow") == "==========>")
        .then(pl.lit(Kind.IRQ_ENTRY))
        .when(pl.col("irq").struct.field("arrow") == "<==========")
        .then(pl.lit(Kind.IRQ_EXIT))
        .when(pl.col("lost").struct.field("n").is_not_null())
        .then(pl.lit(Kind.LOST))
        .when(pl.col("is_overrun"))
        .then(pl.lit(Kind.MARKER))
        .when(tree["kind"].is_not_null())
        .then(tree["kind"])
        .when(pl.col("sw").struct.field("next_pid").is_not_null())
        .then(pl.lit(Kind.SWITCH))
        .otherwise(None)
    )
    g = g.with_columns(kind=kind)

    unknown = g.filter(pl.col("kind").is_null())
    if unknown.height:
        elided = int(unknown["text"].str.contains(ELIDED_RE).sum())
        ctx.skip(ELIDED_REASON, elided)
        ctx.skip("unrecognised function_graph line", unknown.height - elided)
        if not ctx.meta.get("first_skipped_line"):
            ctx.meta["first_skipped_line"] = int(unknown["line"][0])
    g = g.filter(pl.col("kind").is_not_null())

    sw = pl.col("sw")
    irq = pl.col("irq")
    is_switch = pl.col("kind") == Kind.SWITCH
    is_irq = pl.col("kind").is_in([Kind.IRQ_ENTRY, Kind.IRQ_EXIT])
    is_lost = pl.col("kind") == Kind.LOST
    is_call = pl.col("kind").is_in([Kind.ENTRY, Kind.LEAF, Kind.EXIT])
    abs_ts = (
        pl.when(is_switch)
        .then(sw.struct.field("abs"))
        .when(is_irq)
        .then(irq.struct.field("abs"))
        .otherwise(pl.col("abs"))
    )
    cpu = (
        pl.when(is_switch)
        .then(sw.struct.field("cpu"))
        .when(is_irq)
        .then(irq.struct.field("cpu"))
        .when(is_lost)
        .then(pl.col("lost").struct.field("cpu"))
        .otherwise(pl.col("cpu"))
    )
    proc = (
        pl.when(is_switch)
        .then(sw.struct.field("next"))
        .when(is_irq)
        .then(irq.struct.field("proc"))
        .otherwise(pl.col("proc"))
        .str.strip_chars()
    )
    out = g.select(
        seq="line",
        line="line",
        cpu=cpu.cast(pl.Int32, strict=False),
        pid=proc.str.extract(r"-(\d+)$", 1).cast(pl.Int32, strict=False),
        comm=proc.str.extract(r"^(.*)-\d+$", 1),
        ts_ns=timestamp_ns_expr(abs_ts),
        kind="kind",
        raw_func=pl.when(is_call).then(tree["raw_func"]),
        depth=pl.when(is_call).then(tree["depth"]),
        # (only a call has a duration: a task-switch line read with a '|' in a name has none)
        dur_ns=pl.when(is_call).then(duration_ns_expr(pl.col("dur"))),
        flags=pl.when(is_irq).then(irq.struct.field("lat")).when(~is_switch).then(pl.col("lat")),
        body=pl.when(pl.col("kind").is_in([Kind.COMMENT, Kind.SWITCH, Kind.LOST, Kind.MARKER]))
        .then(pl.when(pl.col("kind") == Kind.COMMENT).then(tree["comment"]).otherwise(pl.col("text").str.strip_chars()))
        .otherwise(None),
        lost=pl.col("lost").struct.field("n").cast(pl.Int64, strict=False),
    )
    out = out.with_columns(
        func=canonical_expr(pl.col("raw_func")),
    ).with_columns(
        raw_func=pl.when(pl.col("raw_func") != pl.col("func")).then(pl.col("raw_func")).otherwise(None),
    )
    return out.select(_OUT_COLUMNS)


# -- the compiled reader of the call-tree lines ---------------------------------------------

#: kind codes of :func:`_scan_lines` (0: a line it does not take): the call tree's, then
#: the task switch
_SCAN_KINDS = callgraph.KINDS + (Kind.SWITCH,)
#: the kind of each code less one (the kinds of the lines taken)
_KIND_NAMES = pl.Series("kind", _SCAN_KINDS[1:], dtype=pl.String)
_K_SWITCH = len(callgraph.KINDS)
_BAR, _PAREN_CLOSE, _DASH = 124, 41, 45
_INT32_MAX = 2**31 - 1


@njit(cache=True, nogil=True)
def _word_byte(c: int) -> bool:
    """[A-Za-z0-9_.]: the bytes of a C identifier, and the dot of clone suffixes."""
    return c == 46 or c == 95 or (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122)


@njit(cache=True, nogil=True)
def _task_end(buf: np.ndarray, s: int, t: int) -> int:
    """Where ``comm`` ends in the task ``comm-pid`` printed in ``[s, t)``: the position of
    the dash before the pid, or -1 when it does not end in ``-digits``."""
    d = t - 1
    while d > s and ZERO <= buf[d] <= NINE:
        d -= 1
    if d < s or buf[d] != _DASH or d == t - 1:
        return -1
    return d


@njit(cache=True, nogil=True)
def _read_switch(buf, a, e, li, ts, cpu, pid, offs) -> bool:
    """A line of the task-switch block (``print_graph_proc()`` via ``verif_pid()``):
    optional absolute time, the CPU, ``prev-pid  =>  next-pid``.  Records the CPU, the time,
    the next task (comm and pid) and the whole line as its body."""
    t0 = skip_spaces(buf, a, e)
    t1 = skip_back_spaces(buf, t0, e)
    if t0 == t1 or not (printable(buf[t0]) and printable(buf[t1 - 1])):
        return False
    p = t0
    v, q, ok = read_decimal(buf, p, t1, 9)
    if ok and find_byte(buf, p, q, DOT) >= 0:  # "%5lu.%06lu |"
        r = skip_spaces(buf, q, t1)
        if r == q or r >= t1 or buf[r] != _BAR or r + 1 >= t1 or buf[r + 1] != 32:
            return False
        ts[li] = v
        p = skip_spaces(buf, r + 1, t1)
    v, q = read_uint(buf, p, t1)
    if q > p:
        if q + 1 >= t1 or buf[q] != _PAREN_CLOSE or buf[q + 1] != 32 or v > _INT32_MAX:
            return False
        cpu[li] = v
        p = skip_spaces(buf, q + 1, t1)
    arrow = p
    while arrow + 1 < t1 and not (buf[arrow] == 61 and buf[arrow + 1] == 62):  # "=>"
        arrow += 1
    if arrow + 1 >= t1 or arrow == p or buf[arrow - 1] != 32 or arrow + 2 >= t1 or buf[arrow + 2] != 32:
        return False
    prev_end = skip_back_spaces(buf, p, arrow)
    if _task_end(buf, p, prev_end) <= p:  # (each task is some text, then -pid)
        return False
    n0 = skip_spaces(buf, arrow + 2, t1)
    d = _task_end(buf, n0, t1)
    if d <= n0 or not printable(buf[n0]):
        return False
    v, q = read_uint(buf, d + 1, t1)
    if q != t1 or v > _INT32_MAX:
        return False
    pid[li] = v
    offs[0, li] = n0
    offs[1, li] = d
    offs[6, li] = t0
    offs[7, li] = t1
    return True


@njit(cache=True, nogil=True)
def _scan_lines(buf, starts, ends, abstime, reltime, has_cpu, proc, lat):
    """Read every call-tree line of a chunk of the layout (abstime, reltime, cpu, proc,
    lat): ``print_graph_prologue()``'s fields cut at their ``|`` separators, then the call
    tree.  Returns per line its kind code (0 for lines left to the general path: headers,
    task switches, IRQ markers, odd shapes), the numbers, and (start, end) offsets of its
    names; every offset lies within the line."""
    n = len(starts)
    kind = np.zeros(n, dtype=np.int8)
    ts = np.full(n, -1, dtype=np.int64)
    cpu = np.full(n, -1, dtype=np.int64)
    pid = np.full(n, -1, dtype=np.int64)
    dur = np.full(n, -1, dtype=np.int64)
    depth = np.full(n, -1, dtype=np.int64)
    offs = np.full((8, n), -1, dtype=np.int64)  # comm, flags, name, comment: start/end pairs
    nbars = abstime + reltime + proc + lat + 1
    bars = np.empty(nbars + 1, dtype=np.int64)
    for li in range(n):
        a = starts[li]
        e = ends[li]
        if a >= e or buf[a] == 35:  # '#': the header
            continue
        # the prologue's separators; bars[0] is the position before the first field
        bars[0] = a - 1
        nb = 0
        p = a
        while nb < nbars and p < e:
            if buf[p] == _BAR:
                nb += 1
                bars[nb] = p
            p += 1
        if nb < nbars:
            if _read_switch(buf, a, e, li, ts, cpu, pid, offs):
                kind[li] = _K_SWITCH
            else:
                ts[li] = -1
            continue
        f = 0
        if abstime:
            s = skip_spaces(buf, bars[0] + 1, bars[1])
            v, q, ok = read_decimal(buf, s, bars[1], 9)
            if (not ok or find_byte(buf, s, q, DOT) < 0 or q == bars[1] or skip_spaces(buf, q, bars[1]) != bars[1]
                    or buf[bars[1] + 1] != 32):  # (not "%5lu.%06lu |  ")
                continue
            ts[li] = v
            f += 1
        if reltime:  # display-graph's "%llu us |": checked, not kept
            s = skip_spaces(buf, bars[f] + 1, bars[f + 1])
            v, q = read_uint(buf, s, bars[f + 1])
            r = skip_spaces(buf, q, bars[f + 1])
            if (q == s or r == q or r + 2 > bars[f + 1] or buf[r] != 117 or buf[r + 1] != 115
                    or r + 2 == bars[f + 1] or skip_spaces(buf, r + 2, bars[f + 1]) != bars[f + 1]
                    or buf[bars[f + 1] + 1] != 32):
                continue
            f += 1
        p = bars[f] + 1
        fe = bars[f + 1]
        if has_cpu:
            p = skip_spaces(buf, p, fe)
            v, q = read_uint(buf, p, fe)
            if q == p or q + 1 >= fe or buf[q] != _PAREN_CLOSE or buf[q + 1] != 32 or v > _INT32_MAX:  # "%*d) "
                continue
            cpu[li] = v
            p = q + 1
        if proc:
            s = skip_spaces(buf, p, fe)
            t = skip_back_spaces(buf, s, fe)
            d = _task_end(buf, s, t)
            if t == fe or d < 0 or not printable(buf[s]):  # (a space before the '|', and comm-pid)
                continue
            v, q = read_uint(buf, d + 1, t)
            if q != t or v > _INT32_MAX:  # (a CPU or pid that does not fit the schema's Int32: damaged)
                continue
            pid[li] = v
            offs[0, li] = s
            offs[1, li] = d
            f += 1
            p = bars[f] + 1
            fe = bars[f + 1]
        if lat:  # the latency flags: 4 to 8 of [.A-Za-z0-9]
            s = skip_spaces(buf, p, fe)
            t = skip_back_spaces(buf, s, fe)
            q = s
            while q < t and buf[q] != 95 and _word_byte(buf[q]):
                q += 1
            if q != t or not 4 <= t - s <= 8 or t == fe:
                continue
            offs[2, li] = s
            offs[3, li] = t
            f += 1
            p = bars[f] + 1
            fe = bars[f + 1]
        k, v, dep, ns, ne, cs, ce = read_body(buf, p, e)  # (its '|' is bars[f + 1])
        if k == callgraph.NONE:
            continue
        kind[li] = k
        dur[li] = v
        depth[li] = dep
        offs[4, li] = ns
        offs[5, li] = ne
        offs[6, li] = cs  # (a trace_printk comment's)
        offs[7, li] = ce
    return kind, ts, cpu, pid, dur, depth, offs
