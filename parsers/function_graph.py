"""The function_graph tracer's text: the kernel ``trace`` / ``trace_pipe`` file and
``perf ftrace -G`` output (FORMATS.md section 4).

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

from collections.abc import Iterator

import polars as pl

from tracekit.parsers import FormatInfo
from tracekit.parsers.base import LineChunk, ParseContext
from tracekit.schema import Kind, conform
from tracekit.symbols import canonical_expr

__all__ = ["FORMAT", "sniff", "parse", "duration_ns_expr", "abstime_ns_expr"]

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
_LINE_RE = (
    _PROLOGUE
    + r"\s*(?:(?P<mark>[+!#*@$])\s+)?(?:(?P<dur>\d+(?:\.\d+)?)\s+us\s*)?"  # duration column
    + r"\|(?P<indent> *)(?P<body>\S.*?)\s*$"
)
_SWITCH_RE = (
    r"^\s*(?:(?P<abs>\d+\.\d+)\s+\|\s+)?(?:(?P<cpu>\d+)\)\s+)?"
    r"(?P<prev>\S.*?-\d+)\s+=>\s+(?P<next>\S.*?-(?P<next_pid>\d+))\s*$"
)
_IRQ_RE = r"^\s*(?:(?P<abs>\d+\.\d+)\s+\|\s+)?(?:(?P<cpu>\d+)\)\s+)?(?:(?P<proc>[^|]*?-\d+)\s+\|\s*)?(?:(?P<lat>[.A-Za-z0-9]{4,8})\s+\|)?\s*(?P<arrow>==========>|<==========)"
_LOST_RE = r"^\s*CPU:(?P<cpu>\d+) \[LOST (?P<n>\d+) EVENTS\]\s*$"

# Bodies of the call tree.
_ENTRY_RE = r"^(?P<f>[^\s(){};/]+)\(.*\) \{(?:\s*/\*.*\*/)?$"
_LEAF_RE = r"^(?P<f>[^\s(){};/]+)\(.*\);(?:\s*/\*.*\*/)?$"
_EXIT_RE = r"^\}(?:\s*/\*\s*(?P<f>[^\s=*]+?)(?:\(\))?(?:\s*(?:= |ret=).*?)?\s*\*/)?(?:\s*/\*.*\*/)?$"
_COMMENT_RE = r"^/\*\s?(?P<c>.*?)\s?\*/$"


def sniff(head: str) -> int:
    """How sure we are that ``head`` is function_graph text."""
    if "# tracer: function_graph" in head:
        return 95
    lines = [ln for ln in head.splitlines()[:200] if ln.strip() and not ln.startswith("#")]
    if not lines:
        return 0
    import re

    hits = sum(
        1
        for ln in lines
        if re.search(r"\|\s+(?:[^\s(]+\(.*\) \{|[^\s(]+\(.*\);|\}(?:\s*/\*.*\*/)?)\s*$", ln)
    )
    return 80 if hits >= max(1, len(lines) // 2) else 0


def duration_ns_expr(dur: pl.Expr) -> pl.Expr:
    """The kernel's ``print_graph_duration()`` text (``usecs.nsecs``, the fraction cut to fit
    seven characters, or dropped) as integer ns: exactly what the trace states."""
    parts = dur.str.split_exact(".", 1)
    usecs = parts.struct.field("field_0").cast(pl.Int64, strict=False)
    frac = parts.struct.field("field_1").fill_null("").str.pad_end(3, "0").str.slice(0, 3)
    return usecs * 1000 + frac.cast(pl.Int64, strict=False).fill_null(0)


def abstime_ns_expr(ts: pl.Expr) -> pl.Expr:
    """``secs.usecs`` (or any number of fraction digits) as integer ns."""
    parts = ts.str.split_exact(".", 1)
    secs = parts.struct.field("field_0").cast(pl.Int64, strict=False)
    frac = parts.struct.field("field_1").fill_null("").str.pad_end(9, "0").str.slice(0, 9)
    return secs * 1_000_000_000 + frac.cast(pl.Int64, strict=False).fill_null(0)


def _header(lines: pl.Series, ctx: ParseContext) -> None:
    """Read what the ``#`` header says (tracer, CPUs, entries) into ctx.meta."""
    hdr = lines.filter(lines.str.starts_with("#"))
    if hdr.is_empty():
        return
    tracer = hdr.str.extract(r"^#\s*tracer:\s*(\S+)", 1).drop_nulls()
    if len(tracer):
        ctx.meta.setdefault("tracer", tracer[0])
    ent = hdr.str.extract_groups(
        r"entries-in-buffer/entries-written:\s*(?P<a>\d+)/(?P<b>\d+)\s+#P:(?P<p>\d+)"
    ).struct.unnest().drop_nulls()
    if len(ent):
        ctx.meta.setdefault("entries_in_buffer", int(ent["a"][0]))
        ctx.meta.setdefault("entries_written", int(ent["b"][0]))
        ctx.meta.setdefault("ncpus", int(ent["p"][0]))


def parse(chunks: Iterator[LineChunk], ctx: ParseContext) -> Iterator[pl.DataFrame]:
    """Yield one event frame per chunk of function_graph text."""
    ctx.meta.setdefault("tracer", "function_graph")
    ctx.meta.setdefault("span_source", "function_graph")
    for chunk in chunks:
        if len(chunk.lines) == 0:
            continue
        df = _parse_chunk(chunk, ctx)
        if df.height:
            yield df


def _parse_chunk(chunk: LineChunk, ctx: ParseContext) -> pl.DataFrame:
    _header(chunk.lines, ctx)
    df = pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines})
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
        lost=pl.col("text").str.extract_groups(_LOST_RE),
        is_overrun="is_overrun",
    ).unnest("m")
    b = pl.col("body")
    kind = (
        pl.when(pl.col("irq").struct.field("arrow") == "==========>")
        .then(pl.lit(Kind.IRQ_ENTRY))
        .when(pl.col("irq").struct.field("arrow") == "<==========")
        .then(pl.lit(Kind.IRQ_EXIT))
        .when(pl.col("lost").struct.field("n").is_not_null())
        .then(pl.lit(Kind.LOST))
        .when(pl.col("is_overrun"))
        .then(pl.lit(Kind.MARKER))
        .when(b.str.contains(_ENTRY_RE))
        .then(pl.lit(Kind.ENTRY))
        .when(b.str.contains(_LEAF_RE))
        .then(pl.lit(Kind.LEAF))
        .when(b.str.contains(_EXIT_RE))
        .then(pl.lit(Kind.EXIT))
        .when(b.str.contains(_COMMENT_RE))
        .then(pl.lit(Kind.COMMENT))
        .when(pl.col("sw").struct.field("next_pid").is_not_null())
        .then(pl.lit(Kind.SWITCH))
        .otherwise(None)
    )
    g = g.with_columns(kind=kind)

    unknown = g.filter(pl.col("kind").is_null())
    if unknown.height:
        ctx.skip("unrecognised function_graph line", unknown.height)
        if not ctx.meta.get("first_skipped_line"):
            ctx.meta["first_skipped_line"] = int(unknown["line"][0])
    g = g.filter(pl.col("kind").is_not_null())

    sw = pl.col("sw")
    irq = pl.col("irq")
    is_switch = pl.col("kind") == Kind.SWITCH
    is_irq = pl.col("kind").is_in([Kind.IRQ_ENTRY, Kind.IRQ_EXIT])
    is_lost = pl.col("kind") == Kind.LOST
    raw_func = (
        pl.when(pl.col("kind") == Kind.ENTRY)
        .then(b.str.extract(_ENTRY_RE, 1))
        .when(pl.col("kind") == Kind.LEAF)
        .then(b.str.extract(_LEAF_RE, 1))
        .when(pl.col("kind") == Kind.EXIT)
        .then(b.str.extract(_EXIT_RE, 1))
    )
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
        ts_ns=abstime_ns_expr(abs_ts),
        kind="kind",
        raw_func=raw_func,
        depth=(pl.col("indent").str.len_chars().cast(pl.Int32) - 2) // 2,
        dur_ns=duration_ns_expr(pl.col("dur")),
        flags=pl.when(is_irq).then(irq.struct.field("lat")).otherwise(pl.col("lat")),
        body=pl.when(pl.col("kind").is_in([Kind.COMMENT, Kind.SWITCH, Kind.LOST, Kind.MARKER]))
        .then(pl.when(pl.col("kind") == Kind.COMMENT).then(b.str.extract(_COMMENT_RE, 1)).otherwise(pl.col("text").str.strip_chars()))
        .otherwise(None),
        lost=pl.col("lost").struct.field("n").cast(pl.Int64, strict=False),
    )
    out = out.with_columns(
        func=canonical_expr(pl.col("raw_func")),
        depth=pl.when(pl.col("kind").is_in([Kind.ENTRY, Kind.LEAF, Kind.EXIT])).then(pl.col("depth").clip(0)).otherwise(None),
    ).with_columns(
        raw_func=pl.when(pl.col("raw_func") != pl.col("func")).then(pl.col("raw_func")).otherwise(None),
    )
    nlost = out.filter(is_lost)["lost"].sum()
    if nlost:
        ctx.lost_events += int(nlost)
    return conform(out)
