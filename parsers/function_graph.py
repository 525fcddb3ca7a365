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

import re
from collections.abc import Iterator
from dataclasses import dataclass

import polars as pl

from tracekit.parsers import FormatInfo
from tracekit.parsers.base import LOST_EVENTS_RE, LineChunk, ParseContext, read_trace_header, timestamp_ns_expr
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
    cand = lines.filter(
        ~lines.str.starts_with("#")
        & lines.str.contains(r"\|\s*(?:\S+\(.*\) \{|\S+\(.*\);|\})", literal=False)
        & ~lines.str.contains("=>", literal=True)
    ).head(400)
    if cand.is_empty():
        return None
    g = cand.str.extract_groups(_LINE_RE).struct.unnest()
    g = g.filter(pl.col("body").is_not_null())
    if g.is_empty():
        return None
    have = {k: g[k].is_not_null().sum() * 2 > g.height for k in ("abs", "rel", "cpu", "proc", "lat")}
    return Layout(have["abs"], have["rel"], have["cpu"], have["proc"], have["lat"])


def _scaled_decimal(text: pl.Expr, digits: int) -> tuple[pl.Expr, pl.Expr]:
    """``text`` (``123``, ``123.4``, ``123.456789``) times 10**digits as an exact integer
    (through polars' fixed-point Decimal), with the number of fraction digits: a decimal
    cast rounds extra digits, so the caller sends texts with more than ``digits`` to the
    general path, which truncates them as the kernel's own printing does."""
    dot = text.str.find(".", literal=True)
    frac_len = pl.when(dot.is_null()).then(0).otherwise(text.str.len_bytes().cast(pl.Int64) - dot - 1)
    value = (text.cast(pl.Decimal(38, digits), strict=False) * (10**digits)).cast(pl.Int64, strict=False)
    return value, frac_len


_EXIT_NAME_RE = r"^\}\s*/\*\s*([A-Za-z_.][\w.$]*?)(?:\(\))?\s*\*/$"


def _parse_fast(df: pl.DataFrame, lay: Layout) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The fast path for ordinary call lines of a known layout: split each line at the
    prologue's ``|`` separators and read the fields with plain string kernels.  Lines it
    cannot take (task switches, IRQ markers, headers, odd shapes) are returned for the
    general path.  Returns (parsed rows, rows it could not take)."""
    k = lay.bars
    # Materialise each intermediate once: eager polars does not share subexpressions.
    df = df.with_columns(_parts=pl.col("text").str.splitn("|", k + 1)).unnest("_parts")
    f = [pl.col(f"field_{i}") for i in range(k + 1)]
    i = int(lay.abstime) + int(lay.reltime)
    first = f[i]
    if lay.cpu:
        df = df.with_columns(_cpu_split=first.str.splitn(")", 2)).unnest("_cpu_split", separator="")
        df = df.rename({"_cpu_splitfield_0": "_cpu", "_cpu_splitfield_1": "_after_cpu"})
        cpu_txt, after_cpu = pl.col("_cpu").str.strip_chars(), pl.col("_after_cpu")
    else:
        cpu_txt, after_cpu = pl.lit(None, pl.String), first
    proc = lat = pl.lit(None, pl.String)
    if lay.proc:
        proc = after_cpu.str.strip_chars()
        i += 1
        if lay.lat:
            lat = f[i].str.strip_chars()
            i += 1
        dur_f = f[i]
    elif lay.lat:
        lat = after_cpu.str.strip_chars()
        dur_f = f[i + 1]
    else:
        dur_f = after_cpu if lay.cpu else first
    body = f[k]
    df = df.with_columns(
        _abs=f[0].str.strip_chars() if lay.abstime else pl.lit(None, pl.String),
        cpu=cpu_txt.cast(pl.Int32, strict=False),
        _proc=proc,
        flags=lat,
        _num=dur_f.str.strip_chars(" +!#*@$").str.strip_suffix("us").str.strip_chars(),
        _b=body.str.strip_chars(),
        _indent=body.str.len_bytes().cast(pl.Int32) - body.str.strip_chars_start(" ").str.len_bytes().cast(pl.Int32),
    )
    b = pl.col("_b")
    ts_ns, ts_frac = _scaled_decimal(pl.col("_abs"), 9)
    dur_ns, dur_frac = _scaled_decimal(pl.col("_num"), 3)
    df = df.with_columns(
        kind=pl.when(b.str.ends_with(") {"))
        .then(pl.lit(Kind.ENTRY))
        .when(b.str.ends_with(");"))
        .then(pl.lit(Kind.LEAF))
        .when(b.str.starts_with("}"))
        .then(pl.lit(Kind.EXIT))
        .when(b.str.starts_with("/*") & b.str.ends_with("*/"))
        .then(pl.lit(Kind.COMMENT)),
        _dash=pl.col("_proc").str.find(r"-\d+$") if lay.proc else pl.lit(None, pl.UInt32),
        ts_ns=ts_ns,
        _ts_frac=ts_frac,
        dur_ns=pl.when(pl.col("_num") != "").then(dur_ns),
        _dur_frac=dur_frac,
        # "} /* name */" names its function; "}" alone, or a tail holding a return value,
        # names none here (the general path reads return values)
        _exit_name=b.str.extract(_EXIT_NAME_RE, 1),
        _entry_name=b.str.splitn("(", 2).struct.field("field_0"),
    )
    kind = pl.col("kind")
    ok = kind.is_not_null() & (pl.col("_indent") >= 2)
    ok = ok & ((kind != Kind.EXIT) | (b == "}") | pl.col("_exit_name").is_not_null())
    if lay.cpu:
        ok = ok & pl.col("cpu").is_not_null()
    if lay.proc:
        ok = ok & pl.col("_dash").is_not_null()
    if lay.abstime:
        ok = ok & pl.col("ts_ns").is_not_null() & (pl.col("_ts_frac") <= 9)
    ok = ok & ((pl.col("_num") == "") | (pl.col("dur_ns").is_not_null() & (pl.col("_dur_frac") <= 3)))
    df = df.with_columns(_ok=ok.fill_null(False))
    bad = df.filter(~pl.col("_ok")).select("line", "text")
    good = df.filter(pl.col("_ok"))
    dash = pl.col("_dash")
    good = good.select(
        seq="line",
        line="line",
        cpu="cpu",
        pid=pl.col("_proc").str.slice(dash + 1).cast(pl.Int32, strict=False) if lay.proc else pl.lit(None, pl.Int32),
        comm=pl.col("_proc").str.slice(0, dash) if lay.proc else pl.lit(None, pl.String),
        ts_ns=pl.col("ts_ns") if lay.abstime else pl.lit(None, pl.Int64),
        kind="kind",
        raw_func=pl.when(kind == Kind.EXIT).then(pl.col("_exit_name"))
        .when(kind != Kind.COMMENT).then(pl.col("_entry_name")),
        depth=pl.when(kind != Kind.COMMENT).then((pl.col("_indent") - 2) // 2),
        dur_ns="dur_ns",
        flags="flags",
        body=pl.when(kind == Kind.COMMENT).then(b.str.slice(2, b.str.len_chars() - 4).str.strip_chars()),
        lost=pl.lit(None, pl.Int64),
    )
    return canonicalize(good).select(_OUT_COLUMNS), bad


def _parse_chunk(chunk: LineChunk, ctx: ParseContext, layout: Layout | None) -> pl.DataFrame:
    _header(chunk.lines, ctx)
    df = pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines})
    if layout is not None:
        # The fast path takes the ordinary call lines and hands back everything else
        # (task switches, IRQ markers, lost-event lines, headers, blank lines).
        good, rest = _parse_fast(df, layout)
        out = pl.concat([good, _parse_general(rest, ctx)]).sort("seq") if rest.height else good
    else:
        out = _parse_general(df, ctx)
    nlost = out.filter(pl.col("kind") == Kind.LOST)["lost"].sum()
    if nlost:
        ctx.lost_events += int(nlost)
    return conform(out)


def parse(chunks: Iterator[LineChunk], ctx: ParseContext) -> Iterator[pl.DataFrame]:
    """Yield one event frame per chunk of function_graph text."""
    ctx.meta.setdefault("tracer", "function_graph")
    ctx.meta.setdefault("span_source", "function_graph")
    layout: Layout | None = None
    for chunk in chunks:
        if len(chunk.lines) == 0:
            continue
        if layout is None:
            layout = detect_layout(chunk.lines)
        df = _parse_chunk(chunk, ctx, layout)
        if df.height:
            yield df


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
        ts_ns=timestamp_ns_expr(abs_ts),
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
    return out.select(_OUT_COLUMNS)
