"""The kernel ``trace`` / ``trace_pipe`` text of the function tracer and of trace events
(docs/formats.md#ftrace-text).

A line is the context printed by ``trace_print_context()`` (kernel/trace/trace_output.c):
``comm-pid``, optionally ``(tgid)``, ``[cpu]``, optionally the irq-info flags
(``trace_print_lat_fmt()``: 4 columns before 5.13, 5 after, more on PREEMPT_RT and lazy
preemption kernels), the timestamp (``%5lu.%06lu``, or ``%12llu`` for counter clocks), ``: ``
and the body.  The body is a function-tracer hit (``func <-parent``, ``print_fn_trace()``),
a trace event (``name: fields``), a kprobe (``name: (func+0x0/0x150)``) or kretprobe
(``name: (caller+0xd4/0x310 <- func) ret=0x0``) event, or a stack trace (``<stack trace>``
then `` => func`` lines).  ``CPU:N [LOST M EVENTS]`` lines report lost events.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import polars as pl
from tracekit.jit import njit

from tracekit.parsers import FormatInfo
from tracekit.parsers.noise import (NOISE_COLUMNS, NOISE_EVENTS, NOISE_TRACERS, PRINTED_NUMBERS, PRINTED_TRACERS,
                                    noise_columns, printed_columns, read_printed)
from tracekit.parsers.base import (
    ELIDED_RE, ELIDED_REASON, LOST_EVENTS_RE, LineChunk, ParseContext, read_trace_header, timestamp_ns_expr,
    trailing_stack,
)
from tracekit.parsers.scan import (DOT, NINE, SPACE, ZERO, buffer, digits_end, find_byte, ints, map_chunks, matches_at,
                                   printable, read_decimal, read_uint, skip_back_spaces, skip_spaces, strings, texts)
from tracekit.parsers.scan import dictionary as scan_dictionary
from tracekit.schema import EVENT_SCHEMA, Kind, conform
from tracekit.symbols import canonical_expr, printed_symbols

__all__ = ["FORMAT", "sniff", "parse", "scan_bytes", "CONTEXT_RE"]

FORMAT = FormatInfo(
    name="ftrace",
    kind="text",
    description="ftrace text: function tracer, trace events, kprobes (trace, trace_pipe)",
    example="         pgtfree-415     [000] .....    55.774338: unmap_vmas <-exit_mmap",
)

#: The event context.  The comm may hold spaces and dashes: it ends at the last
#: "-<digits>" before the CPU bracket (lazy match, then backtracking does the rest).
CONTEXT_RE = (
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+"
    r"(?:\(\s*(?P<tgid>[\d-]+)\)\s+)?"
    r"\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[.A-Za-z0-9]{4,8})\s+)?"
    r"(?P<ts>\d+(?:\.\d+)?):\s(?P<body>.*?)\s*$"
)
_FUNC_RE = r"^(?P<f>[^\s:<]+(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?(?: \[[^\]]+\])?)(?: <[0-9a-fx]+>)?(?: <-(?P<p>[^\s<]+(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?)(?: <[0-9a-fx]+>)?(?: \[[^\]]+\])?)?$"
_EVENT_RE = r"^(?P<ev>[A-Za-z_][\w:.-]*): (?P<rest>.*)$"
# The syscall tracer's own lines (print_syscall_enter/exit): "sys_ioctl(fd: ff, ...)" and
# "sys_ioctl -> 0x0".
_SYSCALL_RE = r"^(?P<ev>sys_\w+)(?P<rest>\(.*\)| -> \S+)$"
# A kprobe on a function's first instructions: offset 0 on x86 without IBT, 4 with endbr64,
# 8 or 0xc on ppc64le (the local entry point, after the TOC set-up).
_KPROBE_ENTRY_RE = r"^\((?P<f>[^\s+()<]+)\+0x(?:[0-9a-f])/0x[0-9a-f]+\)"
_KRETPROBE_RE = r"^\((?P<caller>[^\s()]+) <- (?P<f>[^\s()]+)\)"
# trace_printk() under the sym-offset option: trace_bprint_print() / trace_bputs_print()
# print the caller with seq_print_ip_sym() ("%pS": func+0x28/0x6c), ": " and the text.
# (Without sym-offset the caller's bare name reads like a trace event's; it stays one.)
_PRINTK_RE = r"^(?P<ip>[A-Za-z_.][\w.]*\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[^\]]+\])?): "
# The sched_switch tracer's own records (2.6.2x; the wakeup tracers print them still):
# TRACE_CTX / TRACE_WAKE, printed as " %5d:%3d:%c %s %5d:%3d:%c" (kernel/trace/trace.c
# print_trace_fmt(), 2.6.27) and later "%7d:%3d:%c %s [%03d] %7d:%3d:%c %s"
# (trace_ctxwake_print(), kernel/trace/trace_output.c): prev pid:prio:state, "==>" for a
# switch or "  +" for a wakeup, [next cpu], next pid:prio:state, next comm.
_CTXWAKE_RE = (
    r"^\s*(?P<prev_pid>\d+):\s*(?P<prev_prio>\d+):(?P<prev_state>\S)\s+(?P<op>\+|==>)\s+"
    r"(?:\[(?P<next_cpu>\d+)\]\s+)?(?P<next_pid>\d+):\s*(?P<next_prio>\d+):(?P<next_state>\S)(?:\s+\S.*)?$"
)
_STACK_FRAME_RE = r"^\s*=> (?P<f>\S+.*?)\s*$"


#: What a line of this format can begin with: the header, a record's context
#: (``comm-pid [cpu]``, with the tgid column or not), a stack frame, a lost-events line, the
#: annotate option's "##### CPU 2 buffer started ####", an editor's elision.  A line that
#: begins otherwise was broken off the line before it (by a mail client):
#: :mod:`tracekit.pasted` joins it back.
OWN_LINE_RE = (
    r"^\s*(?:$|#|=>|CPU:\s*\d+|\[\.\.\.\]|\.{3}|\S.*?-\d+\s+(?:\(\s*[\d-]+\)\s+)?\[\d+\])"
)


def _stack_callchains(out: pl.DataFrame) -> pl.DataFrame:
    """The frames after a ``<stack trace>`` record, innermost first, as that record's
    callchain (as the latency and trace-cmd readers give it); the frame rows stay."""
    is_frame = (pl.col("kind") == Kind.STACK) & pl.col("body").str.starts_with("=>")
    is_head = (pl.col("kind") == Kind.STACK) & ~is_frame & pl.col("pid").is_not_null()
    owner = pl.when(is_head).then(pl.col("line")).when(~is_frame).then(-1).forward_fill()
    marked = out.with_columns(owner=owner)
    chains = (
        marked.filter(is_frame & (pl.col("owner") >= 0))
        .group_by("owner", maintain_order=True)
        .agg(chain=pl.col("func"))
    )
    if not chains.height:
        return out
    return (
        out.join(chains, left_on="line", right_on="owner", how="left", maintain_order="left")
        .with_columns(callchain=pl.when(is_head).then(pl.col("chain")))
        .drop("chain")
    )


def sniff(head: str) -> int:
    """How sure we are that ``head`` is function-tracer / event text."""
    m = re.search(r"^# tracer: (\S+)", head, re.M)
    if m and m.group(1) in ("function", "nop", "blk", "mmiotrace"):
        return 90
    # a "<stack trace>" record's " => func" frames belong to it: they are not counted as
    # lines that could be records (a stack can be longer than the records around it)
    frame = re.compile(_STACK_FRAME_RE)
    lines = [
        ln for ln in head.splitlines()[:200]
        if ln.strip() and not ln.startswith("#") and not frame.match(ln)
    ]
    if not lines:
        return 0
    rx = re.compile(CONTEXT_RE)
    hits = sum(1 for ln in lines if rx.match(ln))
    if hits >= max(1, len(lines) // 2):
        return 60
    return 0


def _header(lines: pl.Series, ctx: ParseContext) -> None:
    hdr = read_trace_header(lines, ctx)
    if hdr.is_empty():
        return
    legend = hdr.str.extract(r"=>\s*(\S.*?)\s*$", 1).drop_nulls()
    if len(legend) and "flag_legend" not in ctx.meta:
        ctx.meta["flag_legend"] = legend.to_list()


def parse(chunks: Iterator[LineChunk], ctx: ParseContext) -> Iterator[pl.DataFrame]:
    """Yield one event frame per chunk of function-tracer / trace-event text.  Chunks are
    scanned in threads; a chunk that ends inside a stack trace hands that record to the next."""
    ctx.meta.setdefault("span_source", "kprobe")
    for df in map_chunks(_whole_records(chunks), _parse_chunk, ctx):
        if df.height:
            yield df


def _whole_records(chunks: Iterator[LineChunk]) -> Iterator[LineChunk]:
    """The chunks as bytes, each ending with a whole record: a ``<stack trace>`` record and
    its `` => func`` frames at a chunk's end are carried to the start of the next chunk."""
    carry, carry_line = b"", 0
    for chunk in chunks:
        if chunk.n_lines == 0:
            continue
        raw, first = _chunk_bytes(chunk), chunk.first_line
        if carry:
            raw, first, carry = carry + raw, carry_line, b""
        cut = 0 if chunk.is_last else trailing_stack(raw)
        if cut > 0:
            carry, carry_line = raw[cut:], first + raw.count(b"\n", 0, cut)
            raw = raw[:cut]
        yield LineChunk(first, raw=raw, is_last=chunk.is_last and not carry)
    if carry:
        yield LineChunk(carry_line, raw=carry, is_last=True)


def _parse_chunk(chunk: LineChunk, ctx: ParseContext) -> pl.DataFrame:
    """One chunk's records: the lines the compiled scanner takes, and the general path's
    reading of the others, in file order."""
    if chunk.any_line_starts_with(b"#"):
        _header(chunk.lines_starting_with(b"#"), ctx)
    good, rest = _parse_fast(chunk)
    out = _merge(good, _parse_general(rest, ctx)) if rest.height else good
    if "time_unit" not in ctx.meta:
        first = out.get_column("_ts_dot").drop_nulls()
        if len(first):
            ctx.meta["time_unit"] = "ns" if first[0] else "ticks"
    if (out.get_column("kind") == Kind.STACK).any():
        out = _stack_callchains(out)
    nlost = out.filter(pl.col("kind") == Kind.LOST)["lost"].sum()
    if nlost:
        ctx.lost_events += int(nlost)
    return conform(out)


def _merge(rows: pl.DataFrame, more: pl.DataFrame) -> pl.DataFrame:
    """Two frames of lines in file order (``seq`` rising) as one, by a merge."""
    return rows.merge_sorted(more.select(rows.columns), key="seq")


def _parse_general(df: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """The general path: every field found by regular expression, every odd line decided
    and the unreadable ones counted.  ``df`` holds ``line`` and ``text``; the frame returned
    has the columns of :data:`_COLUMNS` (``_ts_dot``: whether the timestamp had a dot)."""
    started = pl.col("text").str.contains(r"^#+ CPU \d+ buffer started #+$")
    df = df.filter(started | ~(pl.col("text").str.starts_with("#") | (pl.col("text").str.strip_chars() == "")))
    g = df.select(
        "line",
        "text",
        c=pl.col("text").str.extract_groups(CONTEXT_RE),
        lost=pl.col("text").str.extract_groups(LOST_EVENTS_RE),
        frame=pl.col("text").str.extract(_STACK_FRAME_RE, 1),
        started=pl.col("text").str.contains(r"^#+ CPU \d+ buffer started #+$"),
    ).unnest("c")
    body = pl.col("body")
    ev = body.str.extract_groups(_EVENT_RE)
    g = g.with_columns(ev=ev)
    g = g.with_columns(**noise_columns(body, pl.col("ev").struct.field("ev")))
    g = g.with_columns(
        kind=pl.when(pl.col("lost").struct.field("n").is_not_null())
        .then(pl.lit(Kind.LOST))
        .when(pl.col("frame").is_not_null() & pl.col("body").is_null())
        .then(pl.lit(Kind.STACK))
        .when(pl.col("body").is_null())
        .then(None)
        .when(body.is_in(["<stack trace>", "<user stack trace>"]))
        .then(pl.lit(Kind.STACK))
        .when(pl.col("ev").struct.field("rest").str.contains(_KPROBE_ENTRY_RE))
        .then(pl.lit(Kind.KPROBE_ENTRY))
        .when(pl.col("ev").struct.field("rest").str.contains(_KRETPROBE_RE))
        .then(pl.lit(Kind.KPROBE_EXIT))
        .when(pl.col("ev").struct.field("ev").is_not_null() | pl.col("noise_event").is_not_null()
              | body.str.contains(_PRINTK_RE) | body.str.contains(_CTXWAKE_RE))
        .then(pl.lit(Kind.EVENT))
        .when(body.str.contains(_SYSCALL_RE))
        .then(pl.lit(Kind.EVENT))
        .when(body.str.contains(_FUNC_RE))
        .then(pl.lit(Kind.FUNCTION))
        .otherwise(pl.lit(Kind.MARKER))
    )
    unknown = g.filter(pl.col("kind").is_null() & ~pl.col("started"))
    if unknown.height:
        elided = int(unknown["text"].str.contains(ELIDED_RE).sum())
        ctx.skip(ELIDED_REASON, elided)
        ctx.skip("unrecognised ftrace line", unknown.height - elided)
        ctx.meta.setdefault("first_skipped_line", int(unknown["line"][0]))
    g = g.with_columns(
        kind=pl.when(pl.col("started")).then(pl.lit(Kind.MARKER)).otherwise(pl.col("kind"))
    ).filter(pl.col("kind").is_not_null())

    kind = pl.col("kind")
    rest = pl.col("ev").struct.field("rest")
    raw_func = (
        pl.when(kind == Kind.FUNCTION)
        .then(body.str.extract(_FUNC_RE, 1))
        .when(kind == Kind.KPROBE_ENTRY)
        .then(rest.str.extract(_KPROBE_ENTRY_RE, 1))
        .when(kind == Kind.KPROBE_EXIT)
        .then(rest.str.extract(_KRETPROBE_RE, 2))
        .when((kind == Kind.STACK) & pl.col("frame").is_not_null())
        .then(pl.col("frame"))
        .when(kind == Kind.EVENT)
        .then(body.str.extract(_PRINTK_RE, 1))
    )
    out = g.select(
        seq="line",
        line="line",
        cpu=pl.when(kind == Kind.LOST)
        .then(pl.col("lost").struct.field("cpu"))
        .otherwise(pl.col("cpu"))
        .cast(pl.Int32, strict=False),
        pid=pl.col("pid").cast(pl.Int32, strict=False),
        comm=pl.col("comm").str.strip_chars(),
        ts_ns=timestamp_ns_expr(pl.col("ts")),
        kind=kind,
        raw_func=raw_func,
        raw_parent=pl.when(kind == Kind.FUNCTION).then(body.str.extract(_FUNC_RE, 2)),
        flags="flags",
        event=pl.when(kind.is_in([Kind.EVENT, Kind.KPROBE_ENTRY, Kind.KPROBE_EXIT]))
        .then(pl.coalesce(
            pl.col("noise_event"),
            pl.when(body.str.contains(_PRINTK_RE)).then(pl.lit("bprint")),
            pl.when(body.str.extract(_CTXWAKE_RE, 4) == "==>").then(pl.lit("sched_switch"))
            .when(body.str.contains(_CTXWAKE_RE)).then(pl.lit("sched_wakeup")),
            pl.col("ev").struct.field("ev"),
            body.str.extract(_SYSCALL_RE, 1),
        ))
        .when(kind == Kind.FUNCTION)
        .then(pl.lit("function")),
        body=pl.when(pl.col("noise_event").is_not_null() & pl.col("ev").struct.field("ev").is_null())
        .then(body)
        .when(body.str.contains(_PRINTK_RE) | body.str.contains(_CTXWAKE_RE))
        .then(body.str.strip_chars())  # as the trace.dat reader keeps a bprint record: "caller: text"
        .when(kind.is_in([Kind.EVENT, Kind.KPROBE_ENTRY, Kind.KPROBE_EXIT]))
        .then(pl.coalesce(rest, body.str.extract(_SYSCALL_RE, 2)))
        .when(kind.is_in([Kind.LOST, Kind.MARKER]) | (kind == Kind.STACK) & pl.col("body").is_null())
        .then(pl.col("text").str.strip_chars())
        .when(kind == Kind.STACK)
        .then(body),
        lost=pl.col("lost").struct.field("n").cast(pl.Int64, strict=False),
        ts_raw=pl.col("ts"),
        *NOISE_COLUMNS,
    )
    out = out.with_columns(
        func=canonical_expr(pl.col("raw_func")), parent=canonical_expr(pl.col("raw_parent")),
        _ts_dot=pl.col("ts_raw").str.contains(".", literal=True),
    ).with_columns(
        raw_func=pl.when(pl.col("raw_func") != pl.col("func")).then(pl.col("raw_func")),
        raw_parent=pl.when(pl.col("raw_parent") != pl.col("parent")).then(pl.col("raw_parent")),
    )
    return conform(out, _COLUMNS)


#: The columns of a chunk's frame before :func:`conform`: the event schema, and whether
#: the timestamp was printed with a dot (``%5lu.%06lu``) or as a counter (``%12llu``).
_COLUMNS = {**EVENT_SCHEMA, "_ts_dot": pl.Boolean()}


def scan_bytes(raw: bytes) -> None:
    """Run the compiled scanner and the frame assembly on ``raw`` as one chunk (for the
    fuzzer); raises only :class:`ParseError`."""
    for _ in parse(iter([LineChunk(1, raw=raw, is_last=True)]), ParseContext("<bytes>")):
        pass


def _chunk_bytes(chunk: LineChunk) -> bytes:
    """The chunk's text as bytes, whole lines each ending with a newline but perhaps the last."""
    if chunk.raw is not None:
        return chunk.raw
    return ("\n".join(chunk.lines.to_list()) + "\n").encode("utf-8")


def _rows_text(chunk: LineChunk, idx: np.ndarray) -> pl.DataFrame:
    """Lines ``idx`` (0-based in the chunk) as a frame of ``line`` and ``text``: decoded one
    by one when they are few, else taken from the chunk's split lines (which decode a chunk
    that is not UTF-8 as Latin-1)."""
    line = pl.Series("line", idx + chunk.first_line, dtype=pl.Int64)
    if len(idx) * 8 <= chunk.n_lines:
        starts, ends = chunk.bounds()
        raw = chunk.raw
        try:
            text = [raw[a:b].decode("utf-8") for a, b in zip(starts[idx].tolist(), ends[idx].tolist())]
            return pl.DataFrame({"line": line, "text": pl.Series("text", text, dtype=pl.String)})
        except UnicodeDecodeError:
            pass
    return pl.DataFrame({"line": line, "text": chunk.lines.gather(pl.Series("_i", idx, dtype=pl.UInt32))})


def _parse_fast(chunk: LineChunk) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The lines of a chunk (with its bytes) that :func:`_scan_lines` reads, as a frame of
    :data:`_COLUMNS`, and the others (``line`` and ``text``) for the general path.  The
    OS-noise tracepoints and the records of those tracers rendered from their format files,
    named like events, go to the general path too (:func:`noise_columns` reads them)."""
    raw = chunk.raw
    starts, ends = chunk.bounds()
    kind, cpu, pid, ts, dot, offs, nums = _scan_lines(buffer(raw), starts, ends)
    ev_codes, ev_names = scan_dictionary(raw, offs[8], offs[9], "event")
    ev_all = ev_codes.cast(pl.Int64).fill_null(-1).to_numpy()
    noisy = np.flatnonzero(ev_names.is_in(list(NOISE_TRACERS | NOISE_EVENTS)).to_numpy())
    if len(noisy):
        kind[np.isin(ev_all, noisy)] = 0
    rows = np.flatnonzero(kind)
    o = offs[:, rows]
    k = kind[rows]
    line = pl.Series("line", rows + chunk.first_line, dtype=pl.Int64)
    good = pl.DataFrame({
        "seq": line.alias("seq"),
        "line": line,
        "cpu": ints("cpu", cpu[rows], pl.Int32),
        "pid": ints("pid", pid[rows], pl.Int32),
        "comm": strings(raw, o[0], o[1], "comm"),
        "ts_ns": ints("ts_ns", ts[rows], pl.Int64),
        "kind": pl.Series("kind", _SCAN_KINDS[1:], dtype=pl.String).gather(pl.Series(k - 1, dtype=pl.UInt32)),
        **printed_symbols(raw, o[4], o[5], "raw_func", "func"),
        **printed_symbols(raw, o[6], o[7], "raw_parent", "parent"),
        "flags": strings(raw, o[2], o[3], "flags"),
        "event": _event_names(k, ev_all[rows], ev_names, nums),
        "body": texts(raw, o[10], o[11], "body"),
        "_ts_dot": ints("_ts_dot", dot[rows], pl.Int8).cast(pl.Boolean),
    })
    if nums.shape[1]:
        good = good.with_columns(**_noise_numbers(raw, k, nums))
    return conform(good, _COLUMNS), _rows_text(chunk, np.flatnonzero(kind == 0))


def _event_names(k: np.ndarray, codes: np.ndarray, names: pl.Series, nums: np.ndarray) -> pl.Series:
    """The ``event`` column of the rows of kinds ``k``: the event's name (``codes`` into
    ``names``), "function" for the function tracer, the tracer's name for an OS-noise
    record, null for a stack trace."""
    codes = codes.copy()
    codes[k == _K_FUNCTION] = len(names)
    codes[k == _K_NOISE] = len(names) + nums[_NOISE_ROWS - 1]
    codes[(k == _K_STACK) | (k == _K_FRAME)] = -1
    values = pl.concat([names, pl.Series("event", ["function", *PRINTED_TRACERS[1:]])])
    return values.gather(ints("_i", codes, pl.UInt32))


def _noise_numbers(raw: bytes, k: np.ndarray, nums: np.ndarray) -> dict[str, pl.Series]:
    """The OS-noise columns of the rows of kinds ``k``, from the numbers of their records
    (``nums``, a column per record in file order)."""
    at = np.flatnonzero(k == _K_NOISE)
    tracer = np.zeros(len(k), dtype=np.int64)
    tracer[at] = nums[_NOISE_ROWS - 1]
    every = np.full((_NOISE_ROWS - 1, len(k)), -1, dtype=np.int64)
    every[:, at] = nums[:-1]
    cols = printed_columns(raw, tracer, every)
    del cols["noise_event"]  # (the event column names the tracer)
    return cols



# -- the compiled reader of the context and the common bodies ---------------------------------

#: kind codes of :func:`_scan_lines` (0: a line it does not take)
_SCAN_KINDS = (None, Kind.FUNCTION, Kind.EVENT, Kind.KPROBE_ENTRY, Kind.KPROBE_EXIT, Kind.EVENT, Kind.STACK, Kind.STACK)
_K_FUNCTION, _K_EVENT, _K_KPROBE_ENTRY, _K_KPROBE_EXIT, _K_NOISE, _K_STACK, _K_FRAME = 1, 2, 3, 4, 5, 6, 7
#: the rows of the array of OS-noise numbers: :data:`PRINTED_NUMBERS`, timerlat's context
#: (start, end), the tracer's code
_NOISE_ROWS = len(PRINTED_NUMBERS) + 3
_COLON, _DASH, _LT, _GT, _PAREN_OPEN, _PAREN_CLOSE, _BRACKET_OPEN, _BRACKET_CLOSE, _PLUS, _SLASH = (
    58, 45, 60, 62, 40, 41, 91, 93, 43, 47)
_INT32_MAX = 2**31 - 1


@njit(cache=True, nogil=True, inline="always")
def _digit(c: int) -> bool:
    return ZERO <= c <= NINE


@njit(cache=True, nogil=True)
def _flag_byte(c: int) -> bool:
    """[.A-Za-z0-9]: a character of the irq-info column."""
    return c == DOT or _digit(c) or (65 <= c <= 90) or (97 <= c <= 122)


@njit(cache=True, nogil=True)
def _timestamp_end(buf: np.ndarray, at: int, end: int) -> int:
    """``%5lu.%06lu`` or ``%12llu`` at ``at`` followed by ``: ``: the position of the
    colon, or -1."""
    q = digits_end(buf, at, end)
    if q == at:
        return -1
    if q < end and buf[q] == DOT:
        r = digits_end(buf, q + 1, end)
        if r == q + 1:
            return -1
        q = r
    if q + 1 >= end or buf[q] != _COLON or buf[q + 1] != SPACE:
        return -1
    return q


@njit(cache=True, nogil=True)
def _after_task(buf: np.ndarray, d: int, end: int, at: np.ndarray) -> bool:
    """The context after the task's comm, from its ``-`` at ``d``: pid, `` (tgid)`` of
    record-tgid, ``[cpu]``, the irq-info flags (4 or 5 characters, more on PREEMPT_RT and
    lazy-preemption kernels) and the timestamp.  Fills ``at`` with the positions of the pid,
    the CPU, the flags (-1, -1 for none) and the timestamp and its colon."""
    p = digits_end(buf, d + 1, end)
    if p == d + 1 or p >= end or buf[p] != SPACE:
        return False
    at[0] = d + 1
    at[1] = p
    p = skip_spaces(buf, p, end)
    if p < end and buf[p] == _PAREN_OPEN:  # "(%7d) " of record-tgid, "(-------)" unknown
        q = skip_spaces(buf, p + 1, end)
        r = q
        while r < end and (_digit(buf[r]) or buf[r] == _DASH):
            r += 1
        if r == q or r + 1 >= end or buf[r] != _PAREN_CLOSE or buf[r + 1] != SPACE:
            return False
        p = skip_spaces(buf, r + 1, end)
    if p >= end or buf[p] != _BRACKET_OPEN:
        return False
    q = digits_end(buf, p + 1, end)
    if q == p + 1 or q + 1 >= end or buf[q] != _BRACKET_CLOSE or buf[q + 1] != SPACE:
        return False
    at[2] = p + 1
    at[3] = q
    p = skip_spaces(buf, q + 1, end)
    f = p
    while f < end and f - p <= 8 and _flag_byte(buf[f]):
        f += 1
    if 4 <= f - p <= 8 and f < end and buf[f] == SPACE:
        t = skip_spaces(buf, f, end)
        c = _timestamp_end(buf, t, end)
        if c >= 0:
            at[4], at[5], at[6], at[7] = p, f, t, c
            return True
    c = _timestamp_end(buf, p, end)
    if c < 0:
        return False
    at[4], at[5], at[6], at[7] = -1, -1, p, c
    return True


@njit(cache=True, nogil=True)
def _read_context(buf, a, e, li, cpu, pid, ts, dot, offs, at) -> int:
    """``trace_print_context()``'s prologue of the line ``[a, e)`` (comm, pid, tgid, CPU,
    flags, timestamp), its fields stored at row ``li``: the position of the body, -1 when
    there is no prologue, -2 when the general path must decide (a prologue with white space
    other than blanks or bytes outside ASCII, or numbers that do not fit the schema).  The
    comm may hold blanks and dashes: it ends at the first ``-`` after which the rest of the
    prologue reads."""
    s = a
    while s < e and (buf[s] == SPACE or buf[s] == 9):  # (blanks and tabs: traces pasted from mail)
        s += 1
    d = find_byte(buf, s, e, _DASH)
    while d >= 0 and not _after_task(buf, d, e, at):
        d = find_byte(buf, d + 1, e, _DASH)
    if d < 0:
        return -1
    body = at[7] + 2
    for i in range(s, body - 1):
        if not printable(buf[i]) and buf[i] != SPACE:
            return -2
    if at[1] - at[0] > 10 or at[3] - at[2] > 10:
        return -2
    v, _ = read_uint(buf, at[0], at[1])
    c, _ = read_uint(buf, at[2], at[3])
    if v > _INT32_MAX or c > _INT32_MAX:
        return -2
    t = find_byte(buf, at[6], at[7], DOT)
    if t < 0:  # a counter clock's "%12llu": ticks
        if at[7] - at[6] > 18:
            return -2
        tv, _ = read_uint(buf, at[6], at[7])
    else:
        if t - at[6] > 9 or at[7] - t - 1 > 9:
            return -2
        tv, _, _ = read_decimal(buf, at[6], at[7], 9)
    pid[li] = v
    cpu[li] = c
    ts[li] = tv
    dot[li] = 1 if t >= 0 else 0
    offs[0, li] = s
    offs[1, li] = skip_back_spaces(buf, s, d)
    offs[2, li] = at[4]
    offs[3, li] = at[5]
    return body


@njit(cache=True, nogil=True)
def _event_name_end(buf: np.ndarray, at: int, end: int) -> int:
    """A trace event's ``name: `` at ``at`` (``[A-Za-z_][\\w:.-]*`` then ``: ``): the
    position of that colon, -1 for none, -2 when a byte outside ASCII leaves it undecided."""
    c = buf[at]
    if not (c == 95 or (65 <= c <= 90) or (97 <= c <= 122)):
        return -1
    q = at + 1
    while q < end:
        c = buf[q]
        if not (c == 95 or c == _COLON or c == DOT or c == _DASH or _digit(c) or (65 <= c <= 90) or (97 <= c <= 122)):
            break
        q += 1
    if q < end and buf[q] >= 128:
        return -2
    if q < end and buf[q] == SPACE and buf[q - 1] == _COLON and q - 1 > at:
        return q - 1
    return -1


@njit(cache=True, nogil=True)
def _symbol_end(buf: np.ndarray, at: int, end: int, colon: bool) -> int:
    """The end of a symbol printed by ``%ps`` at ``at``: no blank and no ``<`` (nor ``:``
    unless ``colon``); -1 when it stops at a byte that may be white space outside ASCII or
    a control byte (the general path decides), or at a ``(`` (a syscall's arguments)."""
    q = at
    while q < end:
        c = buf[q]
        if c == SPACE or c == _LT or (c == _COLON and not colon):
            break
        if not printable(c) or c == _PAREN_OPEN:
            return -1
        q += 1
    return q


@njit(cache=True, nogil=True)
def _bracketed_end(buf: np.ndarray, at: int, end: int, open_: int, close: int, hex_only: bool) -> int:
    """`` [module]`` (or `` <addr>`` of sym-addr, ``hex_only``) at ``at``: the position after
    it, or ``at`` when there is none."""
    if at + 3 > end or buf[at] != SPACE or buf[at + 1] != open_:
        return at
    q = at + 2
    while q < end and buf[q] != close:
        c = buf[q]
        if hex_only and not (_digit(c) or (97 <= c <= 102) or c == 120):
            return at
        q += 1
    if q >= end or q == at + 2:
        return at
    return q + 1


@njit(cache=True, nogil=True)
def _read_function(buf, b, e, li, offs) -> bool:
    """The function tracer's body (``print_fn_trace()``): ``func <-parent``, each symbol
    perhaps with ``+off/size`` (sym-offset), `` <addr>`` (sym-addr) and `` [module]``."""
    q = _symbol_end(buf, b, e, False)
    if q <= b:
        return False
    q = _bracketed_end(buf, q, e, _BRACKET_OPEN, _BRACKET_CLOSE, False)
    offs[4, li] = b
    offs[5, li] = q
    q = _bracketed_end(buf, q, e, _LT, _GT, True)
    if q == e:
        return True
    if q + 3 > e or buf[q] != SPACE or buf[q + 1] != _LT or buf[q + 2] != _DASH:
        return False
    r = _symbol_end(buf, q + 3, e, True)
    if r <= q + 3:
        return False
    offs[6, li] = q + 3
    offs[7, li] = r
    r = _bracketed_end(buf, r, e, _LT, _GT, True)
    r = _bracketed_end(buf, r, e, _BRACKET_OPEN, _BRACKET_CLOSE, False)
    return r == e


@njit(cache=True, nogil=True)
def _probe_kind(buf, r, e, li, offs) -> int:
    """The fields of a kprobe event (``(func+0x0/0x150)``: an offset of one hex digit, at
    the function's entry) or kretprobe event (``(caller+0xd4/0x310 <- func)``) at ``r``:
    the kind code and the function's position, an ordinary event's code, or 0 when a byte
    outside ASCII leaves it undecided."""
    if r >= e or buf[r] != _PAREN_OPEN:
        return _K_EVENT
    q = r + 1
    while q < e and printable(buf[q]) and buf[q] != _PLUS and buf[q] != _PAREN_OPEN and buf[q] != _PAREN_CLOSE and buf[q] != _LT:
        q += 1
    if q < e and not printable(buf[q]) and buf[q] != SPACE:
        return 0
    if (q > r + 1 and q + 8 <= e and buf[q] == _PLUS and buf[q + 1] == ZERO and buf[q + 2] == 120
            and (_digit(buf[q + 3]) or 97 <= buf[q + 3] <= 102) and buf[q + 4] == _SLASH and buf[q + 5] == ZERO
            and buf[q + 6] == 120):
        h = q + 7
        while h < e and (_digit(buf[h]) or 97 <= buf[h] <= 102):
            h += 1
        if h > q + 7 and h < e and buf[h] == _PAREN_CLOSE:
            offs[4, li] = r + 1
            offs[5, li] = q
            return _K_KPROBE_ENTRY
    q = r + 1
    while q < e and printable(buf[q]) and buf[q] != _PAREN_OPEN and buf[q] != _PAREN_CLOSE:
        q += 1
    if q < e and not printable(buf[q]) and buf[q] != SPACE:
        return 0
    if q == r + 1 or q + 4 > e or buf[q] != SPACE or buf[q + 1] != _LT or buf[q + 2] != _DASH or buf[q + 3] != SPACE:
        return _K_EVENT
    f = q + 4
    g = f
    while g < e and printable(buf[g]) and buf[g] != _PAREN_OPEN and buf[g] != _PAREN_CLOSE:
        g += 1
    if g < e and not printable(buf[g]) and buf[g] != SPACE:
        return 0
    if g == f or g >= e or buf[g] != _PAREN_CLOSE:
        return _K_EVENT
    offs[4, li] = f
    offs[5, li] = g
    return _K_KPROBE_EXIT


@njit(cache=True, nogil=True)
def _spaced_ascii(buf: np.ndarray, a: int, e: int) -> bool:
    """Whether ``[a, e)`` is printable ASCII and blanks only (white space of one definition)."""
    for i in range(a, e):
        if not printable(buf[i]) and buf[i] != SPACE:
            return False
    return True


_STACK_TRACE = np.frombuffer(b"<stack trace>", dtype=np.uint8)
_USER_STACK_TRACE = np.frombuffer(b"<user stack trace>", dtype=np.uint8)


@njit(cache=True, nogil=True)
def _frame(buf: np.ndarray, a: int, e: int, li: int, offs: np.ndarray) -> bool:
    """A stack trace's frame, `` => func`` (``trace_stack_print()``, printed under a
    ``<stack trace>`` record): the line (stripped) as the body, the symbol as the function."""
    s = skip_spaces(buf, a, e)
    be = skip_back_spaces(buf, s, e)
    if s + 4 > be or buf[s] != 61 or buf[s + 1] != _GT or buf[s + 2] != SPACE or not printable(buf[s + 3]):
        return False
    if not _spaced_ascii(buf, s, be):
        return False
    offs[4, li] = s + 3
    offs[5, li] = be
    offs[10, li] = s
    offs[11, li] = be
    return True


@njit(cache=True, nogil=True)
def _syscall_end(buf: np.ndarray, b: int, be: int) -> int:
    """The syscall tracer's own body (``print_syscall_enter()`` / ``print_syscall_exit()``):
    ``sys_name(arg: val, ...)`` or ``sys_name -> 0x0``: the end of the name, -1 for none, -2
    when a byte outside ASCII leaves it undecided."""
    if be - b < 5 or buf[b] != 115 or buf[b + 1] != 121 or buf[b + 2] != 115 or buf[b + 3] != 95:  # "sys_"
        return -1
    q = b + 4
    while q < be and (buf[q] == 95 or _digit(buf[q]) or 65 <= buf[q] <= 90 or 97 <= buf[q] <= 122):
        q += 1
    if q < be and buf[q] >= 128:
        return -2
    if q == b + 4 or q == be:
        return -1
    if buf[q] == _PAREN_OPEN and buf[be - 1] == _PAREN_CLOSE:
        return q
    if q + 4 < be and buf[q] == SPACE and buf[q + 1] == _DASH and buf[q + 2] == _GT and buf[q + 3] == SPACE:
        for i in range(q + 4, be):
            if not printable(buf[i]):
                return -2 if buf[i] != SPACE else -1
        return q
    return -1


@njit(cache=True, nogil=True)
def _body_kind(buf, b, be, li, offs, nums, nnoise) -> int:
    """The kind code of the body ``[b, be)`` of a line with a context (0: the general
    path's), its fields stored at row ``li``; an OS-noise record's numbers go to column
    ``nnoise`` of ``nums``."""
    c = _event_name_end(buf, b, be)
    if c >= 0:
        offs[8, li] = b
        offs[9, li] = c
        offs[10, li] = c + 2
        offs[11, li] = be
        return _probe_kind(buf, c + 2, be, li, offs)
    if c == -2:
        return 0
    c = _syscall_end(buf, b, be)
    if c >= 0:
        offs[8, li] = b
        offs[9, li] = c
        offs[10, li] = c
        offs[11, li] = be
        return _K_EVENT
    if c == -2:
        return 0
    c = buf[b]
    if c == DOT or c == 95 or 65 <= c <= 90 or 97 <= c <= 122:
        return _K_FUNCTION if _read_function(buf, b, be, li, offs) else 0
    offs[10, li] = b
    offs[11, li] = be
    if c == _LT and ((be - b == len(_STACK_TRACE) and matches_at(buf, b, be, _STACK_TRACE))
                     or (be - b == len(_USER_STACK_TRACE) and matches_at(buf, b, be, _USER_STACK_TRACE))):
        return _K_STACK
    if (c == 35 or _digit(c)) and _spaced_ascii(buf, b, be):
        tracer = read_printed(buf, b, be, nnoise, nums)
        if tracer:
            nums[_NOISE_ROWS - 1, nnoise] = tracer
            return _K_NOISE
    return 0


@njit(cache=True, nogil=True)
def _scan_lines(buf, starts, ends):
    """Read every line of a chunk that is a function-tracer hit, a trace event, a
    k(ret)probe event, a syscall, an OS-noise tracer's record or a stack trace.  Returns per line its
    kind code (0 for lines left to the general path: the header, lost events, trace_printk
    under sym-offset, the sched_switch tracer's records, odd shapes), CPU, pid, timestamp (ns, or ticks of a counter clock), whether
    it had a dot (-1: no timestamp), (start, end) offsets of comm, flags, function, parent,
    event name and body, and the numbers of the OS-noise records (a column each, in file
    order); every offset lies within the line."""
    n = len(starts)
    kind = np.zeros(n, dtype=np.int8)
    cpu = np.full(n, -1, dtype=np.int64)
    pid = np.full(n, -1, dtype=np.int64)
    ts = np.full(n, -1, dtype=np.int64)
    dot = np.full(n, -1, dtype=np.int8)
    offs = np.full((12, n), -1, dtype=np.int64)
    nums = np.full((_NOISE_ROWS, 16), -1, dtype=np.int64)
    nnoise = 0
    at = np.empty(8, dtype=np.int64)
    for li in range(n):
        a = starts[li]
        e = ends[li]
        if a >= e or buf[a] == 35:  # '#': the header
            continue
        b = _read_context(buf, a, e, li, cpu, pid, ts, dot, offs, at)
        if b == -1:
            if _frame(buf, a, e, li, offs):
                kind[li] = _K_FRAME
            continue
        if b < 0:
            continue
        be = skip_back_spaces(buf, b, e)
        k = 0
        if be > b and printable(buf[be - 1]):
            if nnoise == nums.shape[1]:
                more = np.full((_NOISE_ROWS, 2 * nnoise), -1, dtype=np.int64)
                more[:, :nnoise] = nums
                nums = more
            k = _body_kind(buf, b, be, li, offs, nums, nnoise)
        if k == 0:
            for j in range(12):
                offs[j, li] = -1
            dot[li] = -1
            continue
        if k == _K_NOISE:
            nnoise += 1
        kind[li] = k
    return kind, cpu, pid, ts, dot, offs, nums[:, :nnoise].copy()
