"""trace-cmd ``report`` text: plain, ``-l`` (latency flags before the time), ``-R`` (raw
``field=value`` bodies), ``-t`` (``secs.nsecs``), ``--ts-diff``, ``-T`` (stack records), any
number of CPUs and inputs (``-i a -i b``: see :func:`report_inputs`).

Grammar (tracecmd/trace-read.c and libtraceevent, trace-cmd 2.x and 3.x)::

    version = 6                     older report versions
    CPU 3 is empty                  one per empty CPU
    cpus=6
        comm-pid   [003] d..2 162573.215752: sched_switch:   prev_comm=... (plain)
        <idle>-0       0d.h1. 106467.859747: function:      ktime_get <-- tick_check_idle  (-l)
            bash-1234  [000]  5001.000180: (+80)     sched_switch: ...    (--ts-diff, 3.x)
            bash-1234  [000]  5001.000180 (+80): sched_switch: ...        (--ts-diff, 2.x)
    CPU:2 [123 EVENTS DROPPED]      or  CPU:2 [EVENTS DROPPED]
        ... thermal_power_allocator: [FAILED TO PARSE] tz_id=0 ...

``funcgraph_entry`` / ``funcgraph_exit`` records, drawn by the function_graph plugin
(``1.963 us   |      preempt_count_add();``, ``|  exit_mmap() {``, ``+ 11.487 us  |    }``)
or raw (``func=0x... depth=N`` / ``... calltime=0x... rettime=0x...``), become call-graph rows
(entry / exit / leaf with depth) for :mod:`tracekit.spans`.  The function tracer's
``function:   func <-- parent`` lines are ``function`` rows; everything else is one event row.
The record lines are read by a compiled scanner (:func:`_scan_lines`, on the
:mod:`tracekit.parsers.scan` readers), chunks in parallel threads; every other line, and
any line it does not take, by the general path's regular expressions.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import polars as pl
from tracekit.jit import njit

from tracekit.schema import EVENT_SCHEMA, Kind, conform
from tracekit.symbols import canonical_expr, canonicalize

from . import FormatInfo
from .base import LineChunk, ParseContext, timestamp_ns_expr, trailing_stack
from .callgraph import KINDS as GRAPH_KINDS
from .callgraph import COMMENT, ENTRY, EXIT, LEAF, read_body, read_bodies
from .noise import NOISE_EVENTS, NOISE_TRACERS, noise_columns
from .scan import (DOT, NINE, ZERO, buffer, ints, line_bounds, map_chunks, nulls, read_uint, skip_back_spaces,
                   skip_spaces, strings, texts)
from .scan import dictionary as scan_dictionary

__all__ = ["FORMAT", "sniff", "parse", "scan_bytes", "ReportInputs", "report_inputs", "one_input"]

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
    r"\s+(?P<ts>\d+(?:\.\d+)?)(?:\s+\(\+\d+\))?:\s+(?:\(\+\d+\)\s+)?"
    r"(?P<event>[^\s:][^:\s]*(?::[^:\s]+)?):(?P<body>.*)$"
)
LOST_RE = r"^\s*CPU:\s*(?P<cpu>\d+)\s+\[(?:(?P<n>\d+) )?(?:EVENTS DROPPED|LOST (?P<k>\d+) EVENTS)\]\s*$"
#: A frame of a ``kernel_stack`` / ``user_stack`` record (trace-cmd ``record -T``), printed
#: by libtraceevent's stack handlers one a line after the record: ``=> schedule (ffffffff814b260e)``
#: (older versions), `` => schedule`` or `` => <00007f5e9c8d2d8e>`` (user stack, no symbol).
FRAME_RE = r"^\s*=>\s*(?P<frame>\S.*?)(?:\s+\((?P<addr>[0-9a-fA-F]+)\))?\s*$"
SUBBUF_RE = r"^\s*CPU:\s*(\d+)\s+\[SUBBUFFER START\]\s*$"
HEADER_RE = r"^\s*(?:version = (?P<version>\d+)|cpus=(?P<cpus>\d+)|CPU (?P<empty>\d+) is empty)\s*$"
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
    its line number in the file (the chunk's ``numbers``).  Lines that name no input go with
    the first one.  Read in the bytes by :func:`_input_lines`."""
    names = [n.encode("latin-1") for n in inputs.names]  # (the head was read as latin-1)
    table = np.frombuffer(b"".join(names), dtype=np.uint8)
    name_ends = np.cumsum([len(n) for n in names], dtype=np.int64)
    want = inputs.names.index(name)
    for chunk in chunks:
        raw = chunk.raw
        if raw is None:  # (lines already split: text with carriage returns)
            raw = "".join(s + "\n" for s in chunk.lines.to_list()).encode("utf-8")
            starts, ends = line_bounds(buffer(raw))
        else:
            starts, ends = chunk.bounds()
        kept, rows = _input_lines(buffer(raw), starts, ends, inputs.width, table, name_ends, want)
        numbers = chunk.line_numbers.to_numpy()[rows]
        yield LineChunk(chunk.first_line, raw=kept.tobytes(), is_last=chunk.is_last,
                        numbers=pl.Series("line", numbers, dtype=pl.Int64))


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


def _hexnum(e: pl.Expr) -> pl.Expr:
    return e.str.strip_prefix("0x").str.to_integer(base=16, strict=False)


def parse(chunks: Iterator[LineChunk], ctx: ParseContext) -> Iterator[pl.DataFrame]:
    """trace-cmd report text -> event-schema frames, one chunk at a time; chunks are read
    in threads (a stack record and its frames are kept in one piece)."""
    counts: Counter = Counter()
    for frame, piece_counts in map_chunks(_pieces(chunks), _parse_piece, ctx):
        counts.update(piece_counts)
        if frame.height:
            yield frame
    if counts["failed_to_parse"]:
        ctx.meta["failed_to_parse"] = counts["failed_to_parse"]
        ctx.warn(f"{counts['failed_to_parse']} record(s) marked [FAILED TO PARSE] by trace-cmd "
                 "(kept as events with their raw fields)")
    if counts["graph_raw"] or counts["graph_rendered"]:
        ctx.meta.setdefault("tracer", "function_graph")


@dataclass
class _Piece:
    """Whole lines of the input, read apart from the others: their bytes and the file's
    line number of each (a several-input report's lines are a selection of the file's)."""

    raw: bytes
    numbers: np.ndarray
    #: where each line starts and ends in ``raw``, when already known
    bounds: tuple[np.ndarray, np.ndarray] | None = None


def _pieces(chunks: Iterator[LineChunk]) -> Iterator[_Piece]:
    """The chunks as pieces, a record whose stack frames may go on in the next chunk held
    back with its frames and put before that chunk's lines."""
    carry: _Piece | None = None
    for chunk in chunks:
        piece = _piece_of(chunk)
        if carry is not None:
            piece = _Piece(carry.raw + piece.raw, np.concatenate([carry.numbers, piece.numbers]))
            carry = None
        if not chunk.is_last:
            piece, carry = _hold_back_stack(piece)
        if len(piece.numbers):
            yield piece
    if carry is not None and len(carry.numbers):
        yield carry


def _piece_of(chunk: LineChunk) -> _Piece:
    raw = chunk.raw
    if raw is None:  # (lines already split: text with carriage returns, one input of several)
        raw = "".join(s + "\n" for s in chunk.lines.to_list()).encode("utf-8")
    if chunk.numbers is not None:
        numbers = chunk.numbers.cast(pl.Int64).to_numpy()
    else:
        numbers = np.arange(chunk.first_line, chunk.first_line + chunk.n_lines, dtype=np.int64)
    bounds = chunk.bounds() if chunk.raw is not None else None
    if raw and not raw.endswith(b"\n"):
        raw += b"\n"
    return _Piece(raw, numbers, bounds)


def _hold_back_stack(piece: _Piece) -> tuple[_Piece, _Piece | None]:
    """Split ``piece`` before its last record when that record's stack frames may go on in
    the next chunk (:func:`~tracekit.parsers.base.trailing_stack`)."""
    cut = trailing_stack(piece.raw)
    if cut == 0:
        return piece, None
    i = len(piece.numbers) - piece.raw.count(b"\n", cut)
    return _Piece(piece.raw[:cut], piece.numbers[:i]), _Piece(piece.raw[cut:], piece.numbers[i:])


def _parse_piece(piece: _Piece, ctx: ParseContext) -> tuple[pl.DataFrame, Counter]:
    """One piece: its record lines read by the compiled scanner, every other line (headers,
    lost-event markers, stack frames, funcgraph records, odd shapes) by the general path."""
    counts: Counter = Counter()
    fast, rest, blank = _parse_fast(piece)
    ctx.skip("blank line", blank)
    frames = [conform(fast, EVENT_SCHEMA)]
    chains = None
    if rest.height:
        general, chains = _parse_general(rest, ctx, counts, fast.get_column("line"))
        frames.append(conform(general, EVENT_SCHEMA))
    out = frames[0] if len(frames) == 1 else frames[0].merge_sorted(frames[1], key="seq")
    if chains is not None:
        out = conform(out.drop("callchain").join(chains, on="line", how="left", maintain_order="left"), EVENT_SCHEMA)
    counts["records"] += fast.height
    counts["dotted"] += int(fast.get_column("_dotted").sum())
    counts["graph_rendered"] += int(fast.get_column("_graph").sum())
    if "time_unit" not in ctx.meta and counts["records"]:
        # counter clocks (x86-tsc, ppc-tb, counter) print bare integers, not secs.usecs
        ctx.meta["time_unit"] = "ns" if counts["dotted"] else "ticks"
    if (counts["graph_rendered"] or counts["graph_raw"]) and "span_source" not in ctx.meta:
        # read by the span builder when the first frame arrives
        ctx.meta["span_source"] = "funcgraph_raw" if counts["graph_raw"] > counts["graph_rendered"] else "function_graph"
    return out, counts


#: The function_graph tracer's records: their bodies are drawn by the function_graph plugin
#: (the kernel's call tree) or printed raw (-R: ``func=... depth=...``).
_GRAPH_EVENTS = ("funcgraph_entry", "funcgraph_exit")
#: Events the compiled path leaves to the general one: stack records (their frames follow
#: on lines of their own) and the OS-noise records (parsers/noise.py reads their numbers).
_GENERAL_EVENTS = frozenset({"kernel_stack", "user_stack"}) | NOISE_TRACERS | NOISE_EVENTS
#: the event kind of each of the scanner's kind codes (:func:`_scan_lines`)
_KINDS = (None, Kind.EVENT, Kind.FUNCTION) + GRAPH_KINDS[1:]


def _parse_fast(piece: _Piece) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The record lines of a piece, read by :func:`_scan_lines`: (their rows, the other
    lines as ``line`` and ``text`` for the general path, the number of blank lines)."""
    raw = piece.raw
    buf = buffer(raw)
    starts, ends = piece.bounds or line_bounds(buf)
    code, *taken = _scan_lines(buf, starts, ends)
    row, kind, pid, cpu, ts, dotted, dur, depth, o = taken
    events, names = scan_dictionary(raw, o[_EVENT], o[_EVENT + 1], "event")
    general = names.is_in(list(_GENERAL_EVENTS)).to_numpy()
    if general.any():
        drop = general[events.to_numpy()]
        code[row[drop]] = 0
        row, kind, pid, cpu, ts, dotted, dur, depth, o = (a[..., ~drop] for a in taken)
        events = events.filter(pl.Series(~drop))
    rows = _record_rows(raw, o, kind, pid, cpu, ts, dur, depth, piece.numbers[row])
    rows = rows.with_columns(names.gather(events).alias("event"), pl.Series("_dotted", dotted),
                             pl.Series("_graph", kind > _K_FUNCTION))
    rest = np.flatnonzero(code == 0)
    text = pl.Series("text", [_decode_line(raw[a:b]) for a, b in zip(starts[rest].tolist(), ends[rest].tolist())],
                     dtype=pl.String)
    return rows, pl.DataFrame({"line": piece.numbers[rest], "text": text}), int((code == _K_BLANK).sum())


def _record_rows(raw: bytes, o: np.ndarray, kind: np.ndarray, pid: np.ndarray, cpu: np.ndarray, ts: np.ndarray,
                 dur: np.ndarray, depth: np.ndarray, numbers: np.ndarray) -> pl.DataFrame:
    """The event-schema columns of the lines the scanner took (``o``: their offsets)."""
    line = pl.Series("line", numbers, dtype=pl.Int64)
    return pl.DataFrame({
        "seq": line.alias("seq"),
        "line": line,
        "cpu": ints("cpu", cpu, pl.Int32),
        "pid": ints("pid", pid, pl.Int32),
        "comm": strings(raw, o[_COMM], o[_COMM + 1], "comm"),
        "ts_ns": ints("ts_ns", ts, pl.Int64),
        "kind": pl.Series("kind", _KINDS, dtype=pl.String).gather(pl.Series(kind, dtype=pl.UInt32)),
        **_symbols(raw, o[_FUNC], o[_FUNC + 1], "func"),
        **_symbols(raw, o[_PARENT], o[_PARENT + 1], "parent"),
        "depth": ints("depth", depth, pl.Int32),
        "dur_ns": ints("dur_ns", dur, pl.Int64),
        "flags": strings(raw, o[_FLAGS], o[_FLAGS + 1], "flags"),
        "body": texts(raw, o[_BODY], o[_BODY + 1], "body"),
    })


def _symbols(raw: bytes, starts: np.ndarray, ends: np.ndarray, name: str) -> dict[str, pl.Series]:
    """The canonical names of the symbols at ``starts``/``ends`` and, where they differ, the
    names as printed (``name`` and ``raw_name``), each distinct symbol canonicalized once."""
    codes, values = scan_dictionary(raw, starts, ends, f"raw_{name}")
    canon = canonicalize(values.to_frame(), f"raw_{name}", name)
    return {name: canon.get_column(name).gather(codes), f"raw_{name}": canon.get_column(f"raw_{name}").gather(codes)}


def _decode_line(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def scan_bytes(raw: bytes) -> None:
    """Run the compiled path and the frame assembly on ``raw`` as one chunk of a report
    (for fuzzing): raises only :class:`ParseError`."""
    chunk = LineChunk(1, raw=raw, is_last=True)
    if chunk.n_lines:
        _parse_piece(_piece_of(chunk), ParseContext("<bytes>"))


def _stack_frames(df: pl.DataFrame, is_rec: pl.Expr, is_frame: pl.Expr, ctx: ParseContext,
                  owners: pl.Series) -> pl.DataFrame | None:
    """The ``=> func`` frames after a stack record, as the callchain (innermost first,
    canonical names) of the record they follow (among the lines of ``df`` and the record
    lines ``owners`` read elsewhere); frames after no record are counted."""
    f = df.select("line", is_rec.alias("rec"), is_frame.alias("frame"), pl.col("text")).filter(
        pl.col("rec") | pl.col("frame")
    )
    if not f.select(pl.col("frame").any()).item():
        return None
    others = pl.DataFrame({"line": owners.cast(pl.Int64), "rec": True, "frame": False, "text": None},
                          schema=f.schema)
    f = pl.concat([f, others]).sort("line")
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


def _parse_general(df: pl.DataFrame, ctx: ParseContext, counts: Counter,
                   owners: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """The general path: every field of the lines of ``df`` (``line``, ``text``) found by
    regular expression.  Returns their rows (sorted by line) and the callchains of the
    stack records among them or among the record lines ``owners`` read elsewhere."""
    text = pl.col("text")
    df = df.with_columns(
        text.str.extract_groups(RECORD_RE).alias("r"),
        text.str.extract_groups(LOST_RE).alias("l"),
        text.str.extract_groups(HEADER_RE).alias("h"),
    ).unnest("r").unnest("l", separator="_")
    df = df.rename({c: f"l_{c}" for c in ("n", "k")}, strict=False)
    # the LOST_RE cpu group clashes with the record's; extract it separately
    df = df.with_columns(text.str.extract(LOST_RE, 1).cast(pl.Int32, strict=False).alias("lost_cpu"))
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

    df = df.with_columns(text.str.extract(SUBBUF_RE, 1).cast(pl.Int32, strict=False).alias("subbuf_cpu"))
    is_rec = pl.col("pid").is_not_null()
    is_lost = pl.col("lost_cpu").is_not_null() | pl.col("subbuf_cpu").is_not_null()
    is_hdr = pl.col("version").is_not_null() | pl.col("cpus").is_not_null() | pl.col("empty").is_not_null()
    is_blank = text.str.strip_chars() == ""
    is_frame = ~is_rec & text.str.contains(FRAME_RE)
    chains = _stack_frames(df, is_rec, is_frame, ctx, owners)
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
        pl.coalesce(pl.col("l_n"), pl.col("l_k")).cast(pl.Int64, strict=False).alias("lost"),
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
        pl.col("pid").cast(pl.Int32, strict=False),
        pl.coalesce("cpu", "lcpu").cast(pl.Int32, strict=False).alias("cpu"),
        pl.coalesce("flags", "lflags").alias("flags"),
        timestamp_ns_expr(pl.col("ts")).alias("ts_ns"),
        pl.col("event"),
        pl.col("body").str.strip_chars().alias("body"),
    )
    counts["records"] += rec.height
    counts["dotted"] += int(df.filter(is_rec)["ts"].str.contains(r"\.").sum())
    failed = rec["body"].str.starts_with("[FAILED TO PARSE]").sum()
    counts["failed_to_parse"] += int(failed or 0)

    ev = pl.col("event")
    body = pl.col("body")
    graph = ev.is_in(list(_GRAPH_EVENTS))
    # drawn by the function_graph plugin: the kernel's call-tree body, read by parsers/callgraph.py
    rendered = graph & body.str.contains(r"\|")
    if rec.height:
        tree = read_bodies(rec.select(pl.when(rendered).then(body)).to_series())
        rec = rec.with_columns(tree.select(pl.all().name.prefix("g_")))
    else:
        rec = rec.with_columns(g_kind=pl.lit(None, pl.String), g_raw_func=pl.lit(None, pl.String),
                               g_comment=pl.lit(None, pl.String), g_depth=pl.lit(None, pl.Int32),
                               g_dur_ns=pl.lit(None, pl.Int64))
    drawn = rendered & pl.col("g_kind").is_in([Kind.ENTRY, Kind.LEAF, Kind.EXIT, Kind.COMMENT])
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
        pl.when(drawn).then(pl.col("g_kind"))
        .when(raw & (ev == "funcgraph_entry")).then(pl.lit(Kind.ENTRY))
        .when(raw & (ev == "funcgraph_exit")).then(pl.lit(Kind.EXIT))
        .when(is_function & pl.col("f_func").is_not_null()).then(pl.lit(Kind.FUNCTION))
        # the ftrace stack records ("<stack trace>", kernel/trace/trace_entries.h): the kind
        # the kernel's own text gives them
        .when(ev.is_in(["kernel_stack", "user_stack"])).then(pl.lit(Kind.STACK))
        .otherwise(pl.lit(Kind.EVENT)).alias("kind"),
        pl.when(drawn).then(pl.col("g_raw_func"))
        .when(raw).then(raw_func)
        .when(is_function).then(pl.col("f_func"))
        .alias("raw_func"),
        pl.when(is_function).then(pl.col("f_parent")).alias("raw_parent"),
        pl.when(drawn).then(pl.col("g_depth"))
        .when(raw).then(body.str.extract(r"\bdepth=(\d+)").cast(pl.Int32, strict=False))
        .cast(pl.Int32).alias("depth"),
        pl.when(drawn).then(pl.col("g_dur_ns"))
        .when(raw & (ev == "funcgraph_exit")).then(rettime - calltime)
        .cast(pl.Int64).alias("dur_ns"),
        pl.when(raw & (ev == "funcgraph_exit") & rettime.is_not_null()).then(rettime)
        .otherwise(pl.col("ts_ns")).alias("ts_ns"),
    )
    # hwlat / osnoise / timerlat records and the osnoise tracepoints: their numbers
    noise = noise_columns(body, ev)
    rec = rec.with_columns(**{k: v for k, v in noise.items() if k != "noise_event"})
    counts["graph_rendered"] += int(rec.select(rendered.sum()).item() or 0)
    counts["graph_raw"] += int(rec.select(raw.sum()).item() or 0)
    rec = rec.with_columns(
        canonical_expr(pl.col("raw_func")).alias("func"),
        canonical_expr(pl.col("raw_parent")).alias("parent"),
    ).with_columns(
        pl.when(pl.col("raw_func") != pl.col("func")).then(pl.col("raw_func")).alias("raw_func"),
        pl.when(pl.col("raw_parent") != pl.col("parent")).then(pl.col("raw_parent")).alias("raw_parent"),
        pl.when(drawn & (pl.col("g_kind") == Kind.COMMENT)).then(pl.col("g_comment")).otherwise(body).alias("body"),
    )
    out = pl.concat([rec, lost], how="diagonal_relaxed").sort("line")
    return out.with_columns(pl.col("line").alias("seq")), chains


# -- the compiled reader of the record lines --------------------------------------------------

#: line codes of :func:`_scan_lines` (0: a line left to the general path)
_K_RECORD, _K_BLANK = 1, 2
#: kind codes of the records it takes: an event, a function tracer record, or a call-graph
#: record (2 + the kind code of parsers/callgraph.py)
_K_EVENT, _K_FUNCTION = 1, 2
#: rows of the offsets array: (start, end) of comm, flags, event, body, func, parent
_COMM, _FLAGS, _EVENT, _BODY, _FUNC, _PARENT = 0, 2, 4, 6, 8, 10
_INT32_MAX = 2**31 - 1
_INT64_SECS_MAX = 9_223_372_035  # the largest secs whose ns fit 63 bits
_SPACE, _DASH, _COLON, _LBRACKET, _RBRACKET, _LPAREN, _RPAREN, _PLUS = 32, 45, 58, 91, 93, 40, 41, 43
_FUNCTION_NAME = np.frombuffer(b"function", dtype=np.uint8)
_GRAPH_ENTRY = np.frombuffer(b"funcgraph_entry", dtype=np.uint8)
_GRAPH_EXIT = np.frombuffer(b"funcgraph_exit", dtype=np.uint8)
_FAILED = np.frombuffer(b"[FAILED TO PARSE]", dtype=np.uint8)
_ARROW = np.frombuffer(b"<--", dtype=np.uint8)
_IP = np.frombuffer(b"ip=", dtype=np.uint8)
_PARENT_IP = np.frombuffer(b"parent_ip=", dtype=np.uint8)


@njit(cache=True, nogil=True, inline="always")
def _digit(c: int) -> bool:
    return ZERO <= c <= NINE


@njit(cache=True, nogil=True, inline="always")
def _blank(c: int) -> bool:
    """ASCII white space (what a regular expression's ``\\s`` and ``strip`` take, below 128)."""
    return c == _SPACE or 9 <= c <= 13


@njit(cache=True, nogil=True, inline="always")
def _flag_byte(c: int) -> bool:
    """[.A-Za-z0-9_]: a latency flag character."""
    return c == DOT or c == 95 or _digit(c) or (65 <= c <= 90) or (97 <= c <= 122)


@njit(cache=True, nogil=True, inline="always")
def _starts(buf: np.ndarray, at: int, end: int, word: np.ndarray) -> bool:
    """Whether ``word`` is at ``at`` (before ``end``)."""
    if end - at < len(word):
        return False
    for k in range(len(word)):
        if buf[at + k] != word[k]:
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _digits_end(buf: np.ndarray, at: int, end: int) -> int:
    while at < end and _digit(buf[at]):
        at += 1
    return at


@njit(cache=True, nogil=True, inline="always")
def _small_uint(buf: np.ndarray, at: int, q: int) -> int:
    """The digits ``[at, q)`` as an integer that fits the schema's Int32, or -1."""
    if q == at or q - at > 10:
        return -1
    v, _ = read_uint(buf, at, q)
    return v if v <= _INT32_MAX else -1


@njit(cache=True, nogil=True, inline="always")
def _task(buf: np.ndarray, a: int, e: int, li: int, pid: np.ndarray, offs: np.ndarray) -> int:
    """``%16s-%-5d`` (``%8.8s-%-5d`` with -l): the comm is everything before the first
    ``-digits `` (as the general path's lazy match takes it).  Records comm and pid; returns
    the position after the pid, or -1.  Only printable ASCII is read here: anything else
    (a tab, a byte of another alphabet) leaves the line to the general path."""
    s = skip_spaces(buf, a, e)
    p = s
    while p < e:
        c = buf[p]
        if c < 32 or c > 126:
            return -1
        if c == _DASH:
            q = _digits_end(buf, p + 1, e)
            if q > p + 1 and q < e and buf[q] == _SPACE:
                v = _small_uint(buf, p + 1, q)
                if v < 0:
                    return -1
                pid[li] = v
                offs[_COMM, li] = s
                offs[_COMM + 1, li] = skip_back_spaces(buf, s, p)
                return q
        p += 1
    return -1


@njit(cache=True, nogil=True, inline="always")
def _cpu_flags(buf: np.ndarray, p: int, e: int, li: int, cpu: np.ndarray, offs: np.ndarray) -> int:
    """``[%03d]`` and, from older trace-cmd, latency flags after it; or -l's ``%3d`` with
    the flags right after the CPU (``0d.h1.``).  Flags are 4 to 6 of [.A-Za-z0-9_] and a
    space.  Returns the position of the time, or -1."""
    if p >= e:
        return -1
    if buf[p] == _LBRACKET:
        q = _digits_end(buf, p + 1, e)
        v = _small_uint(buf, p + 1, q)
        if v < 0 or q + 1 >= e or buf[q] != _RBRACKET or buf[q + 1] != _SPACE:
            return -1
        cpu[li] = v
        r = skip_spaces(buf, q + 1, e)
        f = r
        while f < e and _flag_byte(buf[f]):
            f += 1
        if 4 <= f - r <= 6 and f < e and buf[f] == _SPACE:
            offs[_FLAGS, li] = r
            offs[_FLAGS + 1, li] = f
            return skip_spaces(buf, f, e)
        return r
    q = _digits_end(buf, p, e)
    v = _small_uint(buf, p, q)
    if v < 0:
        return -1
    f = q
    while f < e and _flag_byte(buf[f]):
        f += 1
    if not (4 <= f - q <= 6 and f < e and buf[f] == _SPACE):
        return -1
    cpu[li] = v
    offs[_FLAGS, li] = q
    offs[_FLAGS + 1, li] = f
    return skip_spaces(buf, f, e)


@njit(cache=True, nogil=True, inline="always")
def _time(buf: np.ndarray, p: int, e: int, li: int, ts: np.ndarray, dotted: np.ndarray) -> int:
    """``%6.1000d`` (secs.usecs), ``%9.1d`` (-t: secs.nsecs) or a counter clock's bare
    integer, then ``--ts-diff``'s `` (+delta)`` of trace-cmd 2.x and the colon.  The time
    in ns (fraction digits past nine cut, as the general path does), or ticks as printed.
    Returns the position after the colon, or -1."""
    q = _digits_end(buf, p, e)
    if q == p:
        return -1
    if q < e and buf[q] == DOT and q + 1 < e and _digit(buf[q + 1]):
        if q - p > 10:
            return -1
        secs, _ = read_uint(buf, p, q)
        if secs > _INT64_SECS_MAX:
            return -1
        r = _digits_end(buf, q + 1, e)
        frac, _ = read_uint(buf, q + 1, min(r, q + 10))
        for _ in range(9 - min(r - q - 1, 9)):
            frac *= 10
        ts[li] = secs * 1_000_000_000 + frac
        dotted[li] = True
        q = r
    else:
        if q - p > 18:
            return -1
        ts[li], _ = read_uint(buf, p, q)
        dotted[li] = False
    if q < e and buf[q] == _SPACE:  # " (+delta)" before the colon (trace-cmd 2.x)
        q = _delta(buf, skip_spaces(buf, q, e), e)
        if q < 0:
            return -1
    if q >= e or buf[q] != _COLON:
        return -1
    return q + 1


@njit(cache=True, nogil=True, inline="always")
def _delta(buf: np.ndarray, p: int, e: int) -> int:
    """``--ts-diff``'s ``(+%lld)`` at ``p``: the position after it, or -1."""
    if p + 1 >= e or buf[p] != _LPAREN or buf[p + 1] != _PLUS:
        return -1
    q = _digits_end(buf, p + 2, e)
    if q == p + 2 or q >= e or buf[q] != _RPAREN:
        return -1
    return q + 1


@njit(cache=True, nogil=True, inline="always")
def _event(buf: np.ndarray, p: int, e: int, li: int, offs: np.ndarray) -> int:
    """After the time's colon: blanks, trace-cmd 3.x's ``--ts-diff`` ``(+delta)`` and its
    padding, then the event name and its colon (``print_event_name()``: `` %s: ``).  A name
    is a run without blanks or colons, or two such runs joined by one colon (``probe:foo``).
    Returns the start of the body, or -1."""
    if p >= e or buf[p] != _SPACE:
        return -1
    p = skip_spaces(buf, p, e)
    if p < e and buf[p] == _LPAREN:
        q = _delta(buf, p, e)
        if q >= 0 and q < e and buf[q] == _SPACE:
            p = skip_spaces(buf, q, e)
    s = p
    while p < e and buf[p] != _COLON:
        c = buf[p]
        if c <= 32 or c > 126:
            return -1
        p += 1
    if p == s or p >= e:
        return -1
    q = p + 1
    while q < e and buf[q] != _COLON and not _blank(buf[q]):
        if buf[q] > 126:
            return -1
        q += 1
    if q > p + 1 and q < e and buf[q] == _COLON:
        p = q
    offs[_EVENT, li] = s
    offs[_EVENT + 1, li] = p
    return p + 1


@njit(cache=True, nogil=True, inline="always")
def _body(buf: np.ndarray, p: int, e: int, li: int, offs: np.ndarray) -> bool:
    """The body, stripped of blanks.  Not taken (False): a body that may end in a blank of
    another alphabet, [FAILED TO PARSE] (counted by the general path), and the shapes the
    OS-noise records are read from (``#digits``, ``digits blanks``; parsers/noise.py)."""
    while p < e and _blank(buf[p]):
        p += 1
    t = e
    while t > p and _blank(buf[t - 1]):
        t -= 1
    if p < t and (buf[p] > 127 or buf[t - 1] > 127):
        return False
    if p < t and _starts(buf, p, t, _FAILED):
        return False
    if p + 1 < t and buf[p] == 35 and _digit(buf[p + 1]):  # "#%-5u ..."
        return False
    q = _digits_end(buf, p, t)
    if q > p and (q == t or _blank(buf[q])):
        return False
    offs[_BODY, li] = p
    offs[_BODY + 1, li] = t
    return True


@njit(cache=True, nogil=True, inline="always")
def _word(buf: np.ndarray, p: int, t: int, stop_at_equals: bool) -> int:
    """The end of a run of printable ASCII without blanks (and without '=' when asked)
    from ``p``; -1 on a byte outside ASCII."""
    while p < t and not _blank(buf[p]):
        c = buf[p]
        if c > 126 or c < 32 or (stop_at_equals and c == 61):
            return -1 if c != 61 else p
        p += 1
    return p


@njit(cache=True, nogil=True, inline="always")
def _function(buf: np.ndarray, li: int, offs: np.ndarray) -> bool:
    """The function tracer's body: libtraceevent's function plugin ``func <-- parent``, or
    ``-R``'s ``ip=ADDR parent_ip=ADDR`` (either without its parent).  Records the function
    and the parent as printed."""
    p = offs[_BODY, li]
    t = offs[_BODY + 1, li]
    raw = _starts(buf, p, t, _IP)
    if raw:
        p += 3
    q = _word(buf, p, t, not raw)
    if q <= p:
        return False
    offs[_FUNC, li] = p
    offs[_FUNC + 1, li] = q
    if q == t:
        return True
    if not _blank(buf[q]):
        return False  # (an '=' inside the name)
    r = q
    while r < t and _blank(buf[r]):
        r += 1
    if raw:
        if not _starts(buf, r, t, _PARENT_IP):
            return False
        s = r + 10
    else:
        if not _starts(buf, r, t, _ARROW) or r + 3 >= t or not _blank(buf[r + 3]):
            return False
        s = r + 3
        while s < t and _blank(buf[s]):
            s += 1
    u = _word(buf, s, t, False)
    if u != t or u == s:
        return False
    offs[_PARENT, li] = s
    offs[_PARENT + 1, li] = t
    return True


@njit(cache=True, nogil=True, inline="always")
def _time_and_event(buf, p, e, li, ts, dotted, offs) -> int:
    """The time at ``p``, then the event name: the start of the body, or -1."""
    p = _time(buf, p, e, li, ts, dotted)
    return _event(buf, p, e, li, offs) if p >= 0 else -1


@njit(cache=True, nogil=True, inline="always")
def _all_blank(buf: np.ndarray, a: int, e: int) -> bool:
    for i in range(a, e):
        if not _blank(buf[i]):
            return False
    return True


@njit(cache=True, nogil=True, inline="always")
def _is_name(buf: np.ndarray, s: int, e: int, name: np.ndarray) -> bool:
    return e - s == len(name) and _starts(buf, s, e, name)


@njit(cache=True, nogil=True, inline="always")
def _record_kind(buf, li, dur, depth, offs) -> int:
    """What the record's body is: its kind code (0 for a body left to the general path).
    The function tracer's is read by :func:`_function`, a call-graph record drawn by the
    function_graph plugin by parsers/callgraph.py's :func:`read_body` (its comment, the
    body)."""
    s = offs[_EVENT, li]
    e = offs[_EVENT + 1, li]
    if _is_name(buf, s, e, _FUNCTION_NAME):
        return _K_FUNCTION if _function(buf, li, offs) else 0
    if not (_is_name(buf, s, e, _GRAPH_ENTRY) or _is_name(buf, s, e, _GRAPH_EXIT)):
        return _K_EVENT
    k, d, dep, ns, ne, cs, ce = read_body(buf, offs[_BODY, li], offs[_BODY + 1, li])
    if k != ENTRY and k != LEAF and k != EXIT and k != COMMENT:
        return 0
    dur[li] = d
    depth[li] = dep
    offs[_FUNC, li] = ns
    offs[_FUNC + 1, li] = ne
    if k == COMMENT:
        offs[_BODY, li] = cs
        offs[_BODY + 1, li] = ce
    return _K_FUNCTION + k


@njit(cache=True, nogil=True)
def _scan_lines(buf, starts, ends):
    """Read every record line of a chunk as ``trace_show_data()`` (tracecmd/trace-read.c)
    prints it: task, CPU (and flags), time, event name, body.  Returns per line its code
    (0: left to the general path, with headers, lost-event markers, stack frames and odd
    shapes; ``_K_RECORD``, ``_K_BLANK``), then per record taken, in file order: its line's
    index, its kind code, pid, CPU, time (ns, or ticks), whether the time had a fraction,
    a call's duration (ns) and depth, and (start, end) offsets of comm, flags, event name,
    body, function and parent (-1 for none); every offset lies within its line."""
    n = len(starts)
    code = np.zeros(n, dtype=np.int8)
    row = np.empty(n, dtype=np.int64)
    kind = np.empty(n, dtype=np.int8)
    pid = np.empty(n, dtype=np.int64)
    cpu = np.empty(n, dtype=np.int64)
    ts = np.empty(n, dtype=np.int64)
    dotted = np.empty(n, dtype=np.bool_)
    dur = np.empty(n, dtype=np.int64)
    depth = np.empty(n, dtype=np.int64)
    offs = np.empty((12, n), dtype=np.int64)
    j = 0  # (the next record's row: a line not taken leaves it to be written again)
    for li in range(n):
        a = starts[li]
        e = ends[li]
        if _all_blank(buf, a, e):
            code[li] = _K_BLANK
            continue
        offs[:, j] = -1
        dur[j] = -1
        depth[j] = -1
        dotted[j] = False
        p = _task(buf, a, e, j, pid, offs)
        if p >= 0:
            p = _cpu_flags(buf, skip_spaces(buf, p, e), e, j, cpu, offs)
        if p >= 0:
            f = offs[_FLAGS, j]
            q = _time_and_event(buf, p, e, j, ts, dotted, offs)
            if q < 0 and f >= 0 and buf[f - 1] == _SPACE:
                # "[%03d] " then what looked like flags: it may be the time (a short count of ticks)
                offs[_FLAGS, j] = -1
                offs[_FLAGS + 1, j] = -1
                q = _time_and_event(buf, f, e, j, ts, dotted, offs)
            p = q
        if p >= 0 and _body(buf, p, e, j, offs):
            k = _record_kind(buf, j, dur, depth, offs)
            if k != 0:
                code[li] = _K_RECORD
                kind[j] = k
                row[j] = li
                j += 1
    return code, row[:j], kind[:j], pid[:j], cpu[:j], ts[:j], dotted[:j], dur[:j], depth[:j], offs[:, :j]


# -- one input of several (``-i a -i b``) --------------------------------------------------

@njit(cache=True, nogil=True)
def _input_tag(buf: np.ndarray, s: int, e: int, names: np.ndarray, name_ends: np.ndarray) -> int:
    """Which input ``buf[s:e]`` names (``%*s``: right-aligned, spaces before), as an index
    into the names (``names[name_ends[i-1]:name_ends[i]]``), or -1."""
    while s < e and _blank(buf[s]):
        s += 1
    while e > s and _blank(buf[e - 1]):
        e -= 1
    a = 0
    for i in range(len(name_ends)):
        b = name_ends[i]
        if b - a == e - s:
            same = True
            for j in range(e - s):
                if buf[s + j] != names[a + j]:
                    same = False
                    break
            if same:
                return i
        a = b
    return -1


@njit(cache=True, nogil=True)
def _input_lines(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int, names: np.ndarray,
                 name_ends: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
    """The lines of input number ``want`` among lines ``buf[starts[i]:ends[i]]`` of a
    several-input report (trace-cmd's ``print_handle_file()``: ``"%*s: "``, the input's name
    right-aligned to ``width``, before each line): their text after the prefix, each ending
    with a newline, and which lines they are.  A line whose first ``width`` bytes name no
    input before ``": "`` is input 0's, whole."""
    n = len(starts)
    text = np.full(n, -1, dtype=np.int64)  # where a kept line's text starts
    size = 0
    for i in range(n):
        s, e = starts[i], ends[i]
        which, at = -1, s
        if e - s >= width + 2 and buf[s + width] == 58 and buf[s + width + 1] == 32:  # ": "
            which = _input_tag(buf, s, s + width, names, name_ends)
            if which >= 0:
                at = s + width + 2
        if which == want or (which < 0 and want == 0):
            text[i] = at
            size += e - at + 1
    out = np.empty(size, dtype=np.uint8)
    o = 0
    for i in range(n):
        if text[i] >= 0:
            for j in range(text[i], ends[i]):
                out[o] = buf[j]
                o += 1
            out[o] = 10
            o += 1
    return out, np.flatnonzero(text >= 0)
