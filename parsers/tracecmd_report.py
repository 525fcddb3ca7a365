"""trace-cmd ``report`` text: plain, ``-l`` (latency flags before the time), ``-R`` (raw
``field=value`` bodies), any number of CPUs.

Grammar (tracecmd/trace-read.c and libtraceevent, trace-cmd 2.x and 3.x)::

    version = 6                     older report versions
    CPU 3 is empty                  one per empty CPU
    cpus=6
        comm-pid   [003] d..2 162573.215752: sched_switch:   prev_comm=... (plain)
        <idle>-0       0d.h1. 106467.859747: function:      ktime_get <-- tick_check_idle  (-l)
    CPU:2 [123 EVENTS DROPPED]      or  CPU:2 [EVENTS DROPPED]
        ... thermal_power_allocator: [FAILED TO PARSE] tz_id=0 ...

``funcgraph_entry`` / ``funcgraph_exit`` records, drawn by the function_graph plugin
(``1.963 us   |      preempt_count_add();``, ``|  exit_mmap() {``, ``+ 11.487 us  |    }``)
or raw (``func=0x... depth=N`` / ``... calltime=0x... rettime=0x...``), become call-graph rows
(entry / exit / leaf with depth) for :mod:`tracekit.spans`.  The function tracer's
``function:   func <-- parent`` lines are ``function`` rows; everything else is one event row.
Each chunk of lines is parsed with polars string kernels, never line by line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

import polars as pl

from tracekit.schema import EVENT_SCHEMA, Kind, conform
from tracekit.symbols import canonical_expr

from . import FormatInfo
from .base import LineChunk, ParseContext, hold_back_stack
from .noise import noise_columns

__all__ = ["FORMAT", "sniff", "parse", "ReportInputs", "report_inputs", "one_input"]

FORMAT = FormatInfo(
    name="tracecmd_report",
    kind="text",
    description="trace-cmd report text (plain, -l, -R; function_graph plugin or raw funcgraph records)",
    example="        pgtfree2-563   [000]   117.611220: funcgraph_entry:                   |  exit_mmap() {",
)

# "comm-pid [cpu] flags ts: event: body" (plain) or "comm-pid cpuflags ts: event: body" (-l).
RECORD_RE = (
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+"
    r"(?:\[(?P<cpu>\d+)\](?:\s+(?P<flags>[.\w]{4,6}))?|(?P<lcpu>\d+)(?P<lflags>[.\w]{4,6}))"
    r"\s+(?P<ts>\d+(?:\.\d+)?)(?:\s+\(\+\d+\))?:\s+(?P<event>[^\s:][^:\s]*(?::[^:\s]+)?):(?P<body>.*)$"
)
LOST_RE = r"^\s*CPU:\s*(?P<cpu>\d+)\s+\[(?:(?P<n>\d+) )?(?:EVENTS DROPPED|LOST (?P<k>\d+) EVENTS)\]\s*$"
#: A frame of a ``kernel_stack`` / ``user_stack`` record (trace-cmd ``record -T``), printed
#: by libtraceevent's stack handlers one a line after the record: ``=> schedule (ffffffff814b260e)``
#: (older versions), `` => schedule`` or `` => <00007f5e9c8d2d8e>`` (user stack, no symbol).
FRAME_RE = r"^\s*=>\s*(?P<frame>\S.*?)(?:\s+\((?P<addr>[0-9a-fA-F]+)\))?\s*$"
SUBBUF_RE = r"^\s*CPU:\s*(\d+)\s+\[SUBBUFFER START\]\s*$"
HEADER_RE = r"^\s*(?:version = (?P<version>\d+)|cpus=(?P<cpus>\d+)|CPU (?P<empty>\d+) is empty)\s*$"
# function_graph plugin body: [overhead mark] [duration] | indent then the call.
GRAPH_RE = (
    r"^\s*(?:(?P<mark>[+!#@*$])\s*)?(?:(?P<us>\d+)\.(?P<frac>\d+) us)?\s*\|(?P<indent> *)"
    r"(?P<call>.*?)\s*$"
)


@dataclass(frozen=True)
class ReportInputs:
    """A report of several trace files (``trace-cmd report -i a.dat -i b.dat``) or buffer
    instances: trace-cmd's ``print_handle_file()`` (tracecmd/trace-read.c) puts
    ``"%*s: "`` (the input's name, right-aligned to the longest name's ``width``) before
    every line of an input, and prints each input's ``cpus=N`` header that way.  ``names``
    are the inputs in the order their ``cpus=`` lines come."""

    width: int
    names: tuple[str, ...]


_INPUT_CPUS_RE = re.compile(r"^(?P<pad> *)(?P<name>\S(?:.*\S)?): cpus=\d+\s*$")


def report_inputs(head: bytes) -> ReportInputs | None:
    """The inputs of a several-input report, from its first bytes; None for any other text.
    Every ``name: cpus=N`` line must give the same width, and most record lines must carry
    one of the names at that width."""
    if b"\0" in head:
        return None
    lines = head.decode("latin-1").splitlines()[:4000]
    found = [m for ln in lines if (m := _INPUT_CPUS_RE.match(ln))]
    if not found:
        return None
    widths = {len(m["pad"]) + len(m["name"]) for m in found}
    if len(widths) != 1:
        return None
    width = widths.pop()
    names = tuple(dict.fromkeys(m["name"] for m in found))
    body = [ln for ln in lines if ln.strip()]
    tagged = sum(1 for ln in body if ln[width:width + 2] == ": " and ln[:width].strip() in names)
    if tagged * 10 < len(body) * 9:
        return None
    return ReportInputs(width, names)


def one_input(chunks: Iterator[LineChunk], inputs: ReportInputs, name: str) -> Iterator[LineChunk]:
    """The lines of input ``name`` of a several-input report, without their prefix, each with
    its line number in the file.  Lines that name no input go with the first one."""
    w = inputs.width
    for chunk in chunks:
        df = pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines})
        tag = pl.col("text").str.slice(0, w).str.strip_chars()
        tagged = (pl.col("text").str.slice(w, 2) == ": ") & tag.is_in(list(inputs.names))
        keep = tagged & (tag == name)
        if name == inputs.names[0]:
            keep = keep | ~tagged
        sel = df.filter(keep).with_columns(
            text=pl.when(tagged).then(pl.col("text").str.slice(w + 2)).otherwise(pl.col("text"))
        )
        yield LineChunk(chunk.first_line, sel["text"], is_last=chunk.is_last, numbers=sel["line"])


def sniff(head: str) -> int:
    """How sure we are that ``head`` is trace-cmd report text: its ``cpus=N`` /
    ``version = 6`` / ``CPU N is empty`` header makes it certain; record lines alone could
    also be the kernel's trace_pipe, so they score lower."""
    lines = [ln for ln in head.splitlines()[:50] if ln.strip()]
    if not lines:
        return 0
    if re.match(r"^(?:cpus=\d+|version = \d+|CPU \d+ is empty)\s*$", lines[0]):
        return 95
    if lines[0].startswith("#"):
        return 0
    rec = re.compile(RECORD_RE)
    matched = [m for ln in lines[:20] if (m := rec.match(ln))]
    if not matched or len(matched) < len(lines[:20]) // 2:
        return 0
    # libtraceevent's function plugin prints "func <-- parent"; the kernel's
    # print_fn_trace() prints " <-" (kernel/trace/trace_output.c): trace-cmd 1.x wrote the
    # event name without padding, so this is what says it is trace-cmd's.
    if any(m["event"] == "function" and re.match(r"\s*\S+ <-- \S+\s*$", m["body"]) for m in matched):
        return 85
    # trace-cmd pads the event name to 20 columns ("%-20s"); the kernel prints one space.
    short = [m for m in matched if len(m["event"]) < 18]
    padded = sum(1 for m in short if m["body"].startswith("  "))
    if (short and padded * 2 > len(short)) or any("[FAILED TO PARSE]" in m["body"] for m in matched):
        return 85
    raw_graph = any("funcgraph_entry:" in ln or " <-- " in ln for ln in lines)
    return 45 if raw_graph else 30


def _ts_ns(ts: pl.Expr) -> pl.Expr:
    """``secs.usecs`` (or ``secs.nsecs`` with -t) -> integer ns; a bare integer is kept
    as it is (a counter clock)."""
    parts = ts.str.split_exact(".", 1)
    secs = parts.struct.field("field_0").cast(pl.Int64)
    frac = parts.struct.field("field_1")
    frac_ns = frac.str.pad_end(9, "0").str.slice(0, 9).cast(pl.Int64)
    return pl.when(frac.is_null()).then(secs).otherwise(secs * 1_000_000_000 + frac_ns)


def _hexnum(e: pl.Expr) -> pl.Expr:
    return e.str.strip_prefix("0x").str.to_integer(base=16, strict=False)


def parse(chunks: Iterator[LineChunk], ctx: ParseContext) -> Iterator[pl.DataFrame]:
    """trace-cmd report text -> event-schema frames, one chunk at a time."""
    counts = {"failed_to_parse": 0, "graph_rendered": 0, "graph_raw": 0}
    carry: pl.DataFrame | None = None
    for chunk in chunks:
        df = pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines})
        if carry is not None:
            df, carry = pl.concat([carry, df]), None
        if not chunk.is_last:
            df, carry = hold_back_stack(df)
        frame = _parse_chunk(df, ctx, counts)
        if frame is not None and frame.height:
            yield conform(frame, EVENT_SCHEMA)
    if carry is not None and carry.height:
        frame = _parse_chunk(carry, ctx, counts)
        if frame is not None and frame.height:
            yield conform(frame, EVENT_SCHEMA)
    if counts["failed_to_parse"]:
        ctx.meta["failed_to_parse"] = counts["failed_to_parse"]
        ctx.warn(f"{counts['failed_to_parse']} record(s) marked [FAILED TO PARSE] by trace-cmd "
                 "(kept as events with their raw fields)")
    if counts["graph_raw"] or counts["graph_rendered"]:
        ctx.meta.setdefault("tracer", "function_graph")


def _stack_frames(df: pl.DataFrame, is_rec: pl.Expr, is_frame: pl.Expr, ctx: ParseContext) -> pl.DataFrame | None:
    """The ``=> func`` frames after a stack record, as the callchain (innermost first,
    canonical names) of the record they follow; frames after no record are counted."""
    f = df.select("line", is_rec.alias("rec"), is_frame.alias("frame"), pl.col("text")).filter(
        pl.col("rec") | pl.col("frame")
    )
    if not f.select(pl.col("frame").any()).item():
        return None
    f = f.with_columns(owner=pl.when(pl.col("rec")).then(pl.col("line")).forward_fill()).filter(pl.col("frame"))
    orphans = f.filter(pl.col("owner").is_null()).height
    if orphans:
        ctx.skip("stack frame without a stack record", orphans)
    return (
        f.drop_nulls("owner")
        .group_by("owner", maintain_order=True)
        .agg(callchain=canonical_expr(pl.col("text").str.extract(FRAME_RE, 1)))
        .rename({"owner": "line"})
    )


def _parse_chunk(df: pl.DataFrame, ctx: ParseContext, counts: dict) -> pl.DataFrame | None:
    text = pl.col("text")
    df = df.with_columns(
        text.str.extract_groups(RECORD_RE).alias("r"),
        text.str.extract_groups(LOST_RE).alias("l"),
        text.str.extract_groups(HEADER_RE).alias("h"),
    ).unnest("r").unnest("l", separator="_")
    df = df.rename({c: f"l_{c}" for c in ("n", "k")}, strict=False)
    # the LOST_RE cpu group clashes with the record's; extract it separately
    df = df.with_columns(text.str.extract(LOST_RE, 1).cast(pl.Int32).alias("lost_cpu"))
    df = df.unnest("h")

    # -- header lines -------------------------------------------------------------------------
    hdr = df.filter(pl.col("version").is_not_null() | pl.col("cpus").is_not_null() | pl.col("empty").is_not_null())
    if hdr.height:
        for v in hdr["version"].drop_nulls():
            ctx.meta["report_version"] = int(v)
        for v in hdr["cpus"].drop_nulls():
            ctx.meta["ncpus"] = int(v)
        empty = [int(v) for v in hdr["empty"].drop_nulls()]
        if empty:
            ctx.meta["empty_cpus"] = sorted(set(ctx.meta.get("empty_cpus", [])) | set(empty))

    df = df.with_columns(text.str.extract(SUBBUF_RE, 1).cast(pl.Int32).alias("subbuf_cpu"))
    is_rec = pl.col("pid").is_not_null()
    is_lost = pl.col("lost_cpu").is_not_null() | pl.col("subbuf_cpu").is_not_null()
    is_hdr = pl.col("version").is_not_null() | pl.col("cpus").is_not_null() | pl.col("empty").is_not_null()
    is_blank = text.str.strip_chars() == ""
    is_frame = ~is_rec & text.str.contains(FRAME_RE)
    chains = _stack_frames(df, is_rec, is_frame, ctx)
    other = df.filter(~is_rec & ~is_lost & ~is_hdr & ~is_frame)
    if other.height:
        blank = int(other.select(is_blank.sum()).item())
        ctx.skip("blank line", blank)
        ctx.skip("trace-cmd report: line not understood", other.height - blank)

    # -- lost events ------------------------------------------------------------------------
    lost = df.filter(is_lost).select(
        "line",
        pl.coalesce("lost_cpu", "subbuf_cpu").alias("cpu"),
        pl.when(pl.col("lost_cpu").is_not_null()).then(pl.lit(Kind.LOST)).otherwise(pl.lit(Kind.MARKER)).alias("kind"),
        pl.coalesce(pl.col("l_n"), pl.col("l_k")).cast(pl.Int64).alias("lost"),
        text.str.strip_chars().alias("body"),
    )
    if lost.height:
        ctx.lost_events += int(lost["lost"].fill_null(0).sum())
        unknown = int(lost.filter(pl.col("kind") == Kind.LOST)["lost"].null_count())
        if unknown:
            ctx.warn(f"{unknown} 'EVENTS DROPPED' marker(s) without a count")

    # -- records ----------------------------------------------------------------------------
    rec = df.filter(is_rec).select(
        "line",
        pl.col("comm").str.strip_chars(),
        pl.col("pid").cast(pl.Int32),
        pl.coalesce("cpu", "lcpu").cast(pl.Int32).alias("cpu"),
        pl.coalesce("flags", "lflags").alias("flags"),
        _ts_ns(pl.col("ts")).alias("ts_ns"),
        pl.col("event"),
        pl.col("body").str.strip_chars().alias("body"),
    )
    if "time_unit" not in ctx.meta and rec.height:
        # counter clocks (x86-tsc, ppc-tb, counter) print bare integers, not secs.usecs
        raw_ts = df.filter(is_rec)["ts"]
        ctx.meta["time_unit"] = "ticks" if not raw_ts.str.contains(r"\.").any() else "ns"
    failed = rec["body"].str.starts_with("[FAILED TO PARSE]").sum()
    counts["failed_to_parse"] += int(failed or 0)

    ev = pl.col("event")
    body = pl.col("body")
    graph = ev.is_in(["funcgraph_entry", "funcgraph_exit"])
    rendered = graph & body.str.contains(r"\|")
    g = body.str.extract_groups(GRAPH_RE)
    rec = rec.with_columns(g.alias("g")).unnest("g")
    call = pl.col("call")
    indent = pl.col("indent").str.len_chars()
    dur_rendered = pl.col("us").cast(pl.Int64) * 1000 + pl.col("frac").str.pad_end(3, "0").str.slice(0, 3).cast(pl.Int64)
    leaf = rendered & call.str.ends_with(";")
    opening = rendered & call.str.ends_with("{")
    closing = rendered & call.str.starts_with("}")
    comment = rendered & call.str.starts_with("/*")
    name_rendered = (
        pl.when(closing).then(call.str.extract(r"/\*\s*(\S+)\s*\*/"))
        .otherwise(call.str.extract(r"^([^\s(]+)\s*\(")))
    # raw -R: func=..., depth=..., calltime=..., rettime=...
    raw = graph & ~rendered
    raw_func = body.str.extract(r"\bfunc=(\S+)")
    calltime = _hexnum(body.str.extract(r"\bcalltime=(\S+)"))
    rettime = _hexnum(body.str.extract(r"\brettime=(\S+)"))
    # "func <-- parent" (function plugin) or raw "ip=0x... parent_ip=0x..." (-R)
    fn_body = body.str.extract_groups(
        r"^(?:ip=(?P<f_func>\S+)(?:\s+parent_ip=(?P<f_parent>\S+))?"
        r"|(?P<g_func>[^\s=]+)(?:\s+<--\s+(?P<g_parent>\S+))?)\s*$"
    )
    rec = rec.with_columns(fn_body.alias("fb")).unnest("fb").with_columns(
        pl.coalesce("f_func", "g_func").alias("f_func"), pl.coalesce("f_parent", "g_parent").alias("f_parent")
    )
    is_function = ev == "function"

    rec = rec.with_columns(
        pl.when(leaf).then(pl.lit(Kind.LEAF))
        .when(opening).then(pl.lit(Kind.ENTRY))
        .when(closing).then(pl.lit(Kind.EXIT))
        .when(comment).then(pl.lit(Kind.COMMENT))
        .when(raw & (ev == "funcgraph_entry")).then(pl.lit(Kind.ENTRY))
        .when(raw & (ev == "funcgraph_exit")).then(pl.lit(Kind.EXIT))
        .when(is_function & pl.col("f_func").is_not_null()).then(pl.lit(Kind.FUNCTION))
        # the ftrace stack records ("<stack trace>", kernel/trace/trace_entries.h): the kind
        # the kernel's own text gives them
        .when(ev.is_in(["kernel_stack", "user_stack"])).then(pl.lit(Kind.STACK))
        .otherwise(pl.lit(Kind.EVENT)).alias("kind"),
        pl.when(rendered).then(name_rendered)
        .when(raw).then(raw_func)
        .when(is_function).then(pl.col("f_func"))
        .alias("raw_func"),
        pl.when(is_function).then(pl.col("f_parent")).alias("raw_parent"),
        pl.when(rendered & ~comment).then(((indent - 2) // 2).clip(lower_bound=0))
        .when(raw).then(body.str.extract(r"\bdepth=(\d+)").cast(pl.Int32))
        .cast(pl.Int32).alias("depth"),
        pl.when(rendered & (leaf | closing)).then(dur_rendered)
        .when(raw & (ev == "funcgraph_exit")).then(rettime - calltime)
        .cast(pl.Int64).alias("dur_ns"),
        pl.when(raw & (ev == "funcgraph_exit") & rettime.is_not_null()).then(rettime)
        .otherwise(pl.col("ts_ns")).alias("ts_ns"),
    )
    # hwlat / osnoise / timerlat records and the osnoise tracepoints: their numbers
    noise = noise_columns(body, ev)
    rec = rec.with_columns(**{k: v for k, v in noise.items() if k != "noise_event"})
    n_rendered = int(rec.select(rendered.sum()).item() or 0)
    n_raw = int(rec.select(raw.sum()).item() or 0)
    counts["graph_rendered"] += n_rendered
    counts["graph_raw"] += n_raw
    if (n_rendered or n_raw) and "span_source" not in ctx.meta:
        # read by the span builder when the first frame arrives
        ctx.meta["span_source"] = "funcgraph_raw" if n_raw > n_rendered else "function_graph"
    rec = rec.with_columns(
        canonical_expr(pl.col("raw_func")).alias("func"),
        canonical_expr(pl.col("raw_parent")).alias("parent"),
    ).with_columns(
        pl.when(pl.col("raw_func") != pl.col("func")).then(pl.col("raw_func")).alias("raw_func"),
        pl.when(pl.col("raw_parent") != pl.col("parent")).then(pl.col("raw_parent")).alias("raw_parent"),
        pl.when(comment).then(call).otherwise(body).alias("body"),
    )
    if chains is not None:
        rec = rec.join(chains, on="line", how="left", maintain_order="left")
    out = pl.concat([rec, lost], how="diagonal_relaxed").sort("line")
    return out.with_columns(pl.col("line").alias("seq"))
