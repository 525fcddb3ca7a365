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

import polars as pl

from tracekit.parsers import FormatInfo
from tracekit.parsers.noise import NOISE_COLUMNS, noise_columns
from tracekit.parsers.base import (
    ELIDED_RE, ELIDED_REASON, LOST_EVENTS_RE, LineChunk, ParseContext, hold_back_stack, read_trace_header,
    timestamp_ns_expr,
)
from tracekit.schema import Kind, conform
from tracekit.symbols import canonical_expr

__all__ = ["FORMAT", "sniff", "parse", "CONTEXT_RE"]

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
    """Yield one event frame per chunk of function-tracer / trace-event text."""
    ctx.meta.setdefault("span_source", "kprobe")
    carry: pl.DataFrame | None = None
    for chunk in chunks:
        lines = pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines})
        if carry is not None:
            lines, carry = pl.concat([carry, lines]), None
        if not chunk.is_last:  # a stack's frames may go on in the next chunk
            lines, carry = hold_back_stack(lines)
        if lines.height:
            df = _parse_chunk(LineChunk(chunk.first_line, lines["text"], numbers=lines["line"]), ctx)
            if df.height:
                yield df
    if carry is not None and carry.height:
        df = _parse_chunk(LineChunk(int(carry["line"][0]), carry["text"], numbers=carry["line"]), ctx)
        if df.height:
            yield df


def _parse_chunk(chunk: LineChunk, ctx: ParseContext) -> pl.DataFrame:
    _header(chunk.lines, ctx)
    df = pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines})
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
    if "time_unit" not in ctx.meta:
        first = out["ts_raw"].drop_nulls()
        if len(first):
            ctx.meta["time_unit"] = "ns" if "." in first[0] else "ticks"
    out = out.with_columns(
        func=canonical_expr(pl.col("raw_func")), parent=canonical_expr(pl.col("raw_parent"))
    ).with_columns(
        raw_func=pl.when(pl.col("raw_func") != pl.col("func")).then(pl.col("raw_func")),
        raw_parent=pl.when(pl.col("raw_parent") != pl.col("parent")).then(pl.col("raw_parent")),
    )
    out = _stack_callchains(out)
    nlost = out.filter(kind == Kind.LOST)["lost"].sum()
    if nlost:
        ctx.lost_events += int(nlost)
    return conform(out)
