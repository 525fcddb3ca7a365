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

import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from tracekit.parsers import FormatInfo
from tracekit.parsers.base import ELIDED_RE, ELIDED_REASON, LOST_EVENTS_RE, LineChunk, ParseContext, read_trace_header, timestamp_ns_expr
from tracekit.frames import by_value
from tracekit.io import CSV_READ_ERRORS
from tracekit.parsers.bytescan import read_abstime, read_cpu, read_duration
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

#: What a line of this format can begin with (after the prologue's leading blanks): the
#: header, a prologue field (abstime, REL TIME, CPU, task, duration, the '|' of the call
#: tree), the rules and task-switch lines, lost events, overruns, an editor's elision.  A
#: line that begins otherwise was broken off the line before it (by a mail client):
#: :mod:`tracekit.pasted` joins it back.
OWN_LINE_RE = (
    r"^\s*(?:$|#|\d+\.\d+\s+\||\d+\s+us\s+\||\d+\)|[+!#*@$]?\s*\d+(?:\.\d+)?\s+us\b|\||-{5,}"
    r"|\S+-\d+\s+(?:\||=>)|CPU:\s*\d+|\(Overruns|\[\.\.\.\]|\.\.\.)"
)

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


def _scaled_decimal(text: pl.Expr, digits: int) -> tuple[pl.Expr, pl.Expr]:
    """``text`` (``123``, ``123.4``, ``123.456789``) times 10**digits as an exact integer
    (the physical value of polars' fixed-point Decimal), and whether the text has at most
    ``digits`` fraction digits: a decimal cast rounds extra digits, so the caller sends
    other texts to the general path, which truncates them as the kernel's own printing
    does."""
    value = text.cast(pl.Decimal(38, digits), strict=False).to_physical().cast(pl.Int64, strict=False)
    fits = (text.str.len_bytes().cast(pl.Int64) - text.str.find(".", literal=True) - 1 <= digits).fill_null(True)
    return value, fits


#: how the duration column starts: a space, ``trace_find_mark()``'s mark or a space, a space
_DURATION_LEADS = [f" {m} " for m in " +!#*@$"]

_EXIT_NAME_RE = r"^\}\s*/\*\s*([A-Za-z_.][\w.$]*?)(?:\(\))?\s*\*/$"


def _fields(chunk: LineChunk, lay: Layout) -> pl.DataFrame:
    """The chunk's lines cut at the prologue's ``|`` separators: columns ``f0`` .. ``fK``
    (K = ``lay.bars``), "" where a line has fewer fields.  From the chunk's bytes through
    polars' CSV reader when it has them (a line with more separators is cut short: the
    length check in :func:`_parse_fast` sends it to the general path), else by splitting
    the text (the last field keeps any further ``|``)."""
    k = lay.bars
    if chunk.raw is not None:
        try:
            f = pl.read_csv(
                chunk.raw,
                has_header=False,
                separator="|",
                quote_char=None,
                comment_prefix=None,
                schema={f"f{i}": pl.String for i in range(k + 1)},
                missing_columns="insert",
                extra_columns="ignore",
                truncate_ragged_lines=True,
                empty_string_is_null=False,
                raise_if_empty=False,
            )
            if f.height == chunk.n_lines:
                return f
        except CSV_READ_ERRORS:
            pass
    parts = chunk.lines.str.splitn("|", k + 1).struct.unnest()
    return parts.rename({f"field_{i}": f"f{i}" for i in range(k + 1)})


def _split_cpu(first: pl.Expr, lay: Layout) -> tuple[pl.Expr, pl.Expr]:
    """The ``%*d) `` CPU at the head of the first prologue field, and the text after it."""
    if not lay.cpu:
        return pl.lit(None, pl.Int32), first
    parts = first.str.splitn(")", 2)
    cpu = parts.struct.field("field_0").str.strip_chars().cast(pl.Int32, strict=False)
    return cpu, parts.struct.field("field_1")


def _parse_task_field(u: pl.DataFrame, lay: Layout) -> pl.DataFrame:
    """Distinct values of the first prologue field when it holds the task (``  0)
    pgtfree-1000  ``) or the latency flags: the CPU, comm, pid and flags, and whether the
    field reads cleanly (``_pok``)."""
    cpu, after = _split_cpu(pl.col("s"), lay)
    u = u.with_columns(cpu=cpu, _after=after.str.strip_chars())
    if lay.proc:
        dash = pl.col("_after").str.find(r"-\d+$")
        u = u.with_columns(_dash=dash).with_columns(
            pid=pl.col("_after").str.slice(pl.col("_dash") + 1).cast(pl.Int32, strict=False),
            comm=pl.col("_after").str.slice(0, pl.col("_dash")),
            flags=pl.lit(None, pl.String),
        )
        ok = pl.col("_dash").is_not_null()
    else:  # latency flags without funcgraph-proc
        u = u.with_columns(pid=pl.lit(None, pl.Int32), comm=pl.lit(None, pl.String), flags=pl.col("_after"))
        ok = pl.lit(True)
    if lay.cpu:
        ok = ok & pl.col("cpu").is_not_null()
    return u.select("cpu", "pid", "comm", "flags", _pok=ok.fill_null(False))


def _parse_call_tree(u: pl.DataFrame) -> pl.DataFrame:
    """Distinct values of the call-tree column (indent and ``func() {`` / ``func();`` /
    ``}`` / ``} /* func */`` / ``/* comment */``): kind, names, depth, comment text, and
    whether the fast path may take the line (``_bok``)."""
    raw = pl.col("s")
    b = pl.col("_b")
    u = u.with_columns(
        _b=raw.str.strip_chars(),
        _indent=raw.str.len_bytes().cast(pl.Int32) - raw.str.strip_chars_start(" ").str.len_bytes().cast(pl.Int32),
    )
    u = u.with_columns(
        kind=pl.when(b.str.ends_with(") {"))
        .then(pl.lit(Kind.ENTRY))
        .when(b.str.ends_with(");"))
        .then(pl.lit(Kind.LEAF))
        .when(b.str.starts_with("}"))
        .then(pl.lit(Kind.EXIT))
        .when(b.str.starts_with("/*") & b.str.ends_with("*/"))
        .then(pl.lit(Kind.COMMENT)),
        # "} /* name */" names its function; "}" alone, or a tail holding a return value,
        # names none here (the general path reads return values)
        _exit_name=b.str.extract(_EXIT_NAME_RE, 1),
        _entry_name=b.str.splitn("(", 2).struct.field("field_0"),
    )
    kind = pl.col("kind")
    ok = kind.is_not_null() & (pl.col("_indent") >= 2)
    ok = ok & ((kind != Kind.EXIT) | (b == "}") | pl.col("_exit_name").is_not_null())
    u = u.select(
        _blank=b == "",
        kind="kind",
        raw_func=pl.when(kind == Kind.EXIT).then(pl.col("_exit_name")).when(kind != Kind.COMMENT).then(pl.col("_entry_name")),
        depth=pl.when(kind != Kind.COMMENT).then((pl.col("_indent") - 2) // 2),
        body=pl.when(kind == Kind.COMMENT).then(b.str.slice(2, b.str.len_chars() - 4).str.strip_chars()),
        _bok=ok.fill_null(False),
    )
    return canonicalize(u)


def _field_starts(lines: "_Lines", lens: list[np.ndarray]) -> list[np.ndarray] | None:
    """Byte offset of every prologue field of every line in the chunk's bytes (None when
    the chunk has no bytes)."""
    if lines.chunk.raw is None:
        return None
    starts, _ = lines.chunk.bounds()
    at = [starts]
    for ln in lens[:-1]:
        at.append(at[-1] + ln + 1)
    return at


def _cpu_column(first: pl.Series, lay: Layout, at: np.ndarray | None, length: np.ndarray, lines: "_Lines"
                ) -> tuple[pl.Series, pl.Series, tuple[np.ndarray, np.ndarray] | None]:
    """The CPU of every line when the field that starts with it holds no task (``%*d) ``
    then the duration): (cpu, whether it reads, (bytes up to the duration, ok) from the
    bytes or None).  The bytes are read where the chunk has them; the lines they do not
    cover are read from their text."""
    n = len(first)
    if not lay.cpu:
        return _nulls("cpu", n, pl.Int32), pl.repeat(True, n, dtype=pl.Boolean, eager=True).alias("_pok"), None
    if at is None:
        cpu = first.to_frame("s").select(_split_cpu(pl.col("s"), lay)[0]).to_series().alias("cpu")
        return cpu, cpu.is_not_null().alias("_pok"), None
    value, after, ok = read_cpu(np.frombuffer(lines.chunk.raw, dtype=np.uint8), at)
    ok &= after <= length  # (the ')' inside the field, not in the line after it)
    cpu = pl.Series("cpu", value, dtype=pl.Int32)
    slow = np.flatnonzero(~ok)
    if len(slow):
        take = pl.Series("_i", slow, dtype=pl.UInt32)
        text = first.gather(take).to_frame("s").select(_split_cpu(pl.col("s"), lay)[0]).to_series()
        cpu = cpu.scatter(take, text)
        return cpu, cpu.is_not_null().alias("_pok"), (after, ok)
    return cpu, pl.Series("_pok", ok, dtype=pl.Boolean), (after, ok)


def _times(lines: "_Lines", lay: Layout, f: list[pl.Series], lens: list[np.ndarray], at: list[np.ndarray] | None,
           i: int, dur_at: int | None, dur_text, cpu_after: tuple[np.ndarray, np.ndarray] | None) -> pl.DataFrame:
    """The absolute time and the duration column of every line: ``ts_ns``, ``dur_ns`` (null
    where blank), whether each reads cleanly (``_ts_ok``, ``_dur_ok``) and, where the
    duration column holds an IRQ arrow, its kind (``_irq_kind``).

    The kernel's own shapes are read from the chunk's bytes (:mod:`tracekit.parsers.bytescan`);
    the lines they do not cover, and chunks without bytes, are read from the field strings
    (:func:`_times_from_text`), which decide every odd case."""
    n = len(lens[0])
    if at is None:
        return _times_from_text(f[0] if lay.abstime else None, dur_text(None), lay.abstime)
    buf = np.frombuffer(lines.chunk.raw, dtype=np.uint8)
    if lay.abstime:
        ts, ts_ok = read_abstime(buf, at[0], lens[0])
    else:
        ts, ts_ok = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
    if dur_at is not None:
        d_at, d_len, d_ok = at[dur_at], lens[dur_at], True
    elif cpu_after is not None:  # the duration follows the "%*d) " CPU in the same field
        after, d_ok = cpu_after
        d_at, d_len = at[i] + after, lens[i] - after
    else:
        d_at, d_len, d_ok = at[i], lens[i], True
    dur, blank, dur_ok = read_duration(buf, d_at, d_len)
    dur_ok &= d_ok
    has = dur_ok & ~blank
    irq_kind = None
    slow = np.flatnonzero(~(ts_ok & dur_ok))
    if len(slow):
        take = pl.Series("_i", slow, dtype=pl.UInt32)
        text = _times_from_text(f[0].gather(take) if lay.abstime else None, dur_text(take), lay.abstime)
        ts[slow] = text.get_column("ts_ns").fill_null(0).to_numpy()
        ts_ok[slow] = text.get_column("_ts_ok").to_numpy()
        d = text.get_column("dur_ns")
        dur[slow] = d.fill_null(0).to_numpy()
        has[slow] = d.is_not_null().to_numpy()
        dur_ok[slow] = text.get_column("_dur_ok").to_numpy()
        kinds = text.get_column("_irq_kind")
        if kinds.null_count() < len(kinds):
            irq_kind = _nulls("_irq_kind", n, pl.String).scatter(take, kinds)
    out = pl.DataFrame({
        "ts_ns": pl.Series(ts, dtype=pl.Int64),
        "_ts_ok": pl.Series(ts_ok, dtype=pl.Boolean),
        "dur_ns": pl.Series(dur, dtype=pl.Int64),
        "_has": pl.Series(has, dtype=pl.Boolean),
        "_dur_ok": pl.Series(dur_ok, dtype=pl.Boolean),
        "_irq_kind": irq_kind if irq_kind is not None else _nulls("_irq_kind", n, pl.String),
    })
    return out.with_columns(
        ts_ns=pl.col("ts_ns") if lay.abstime else pl.lit(None, pl.Int64),
        dur_ns=pl.when(pl.col("_has")).then(pl.col("dur_ns")),
    ).drop("_has")


def _nulls(name: str, n: int, dtype: pl.DataType) -> pl.Series:
    return pl.Series(name, [], dtype=dtype).extend_constant(None, n)


def _times_from_text(abs_f: pl.Series | None, dur_f: pl.Series, abstime: bool) -> pl.DataFrame:
    """:func:`_times` from the field strings: exact decimal casts, and the checks the fast
    path needs (no more fraction digits than the unit holds, a duration lead the kernel prints)."""
    frame = pl.DataFrame({
        "_abs": abs_f.str.strip_chars() if abs_f is not None else _nulls("_abs", len(dur_f), pl.String),
        # print_graph_duration(): a space, the overhead mark or a space, a space, the
        # number, " us", spaces; blank when the line has no duration
        "_num": dur_f.str.strip_chars_end().str.strip_suffix(" us").str.slice(3),
        "_mark_ok": dur_f.str.slice(0, 3).is_in(_DURATION_LEADS),
    })
    ts_ns, ts_frac = _scaled_decimal(pl.col("_abs"), 9)
    dur_ns, dur_frac = _scaled_decimal(pl.col("_num"), 3)
    num = pl.col("_num")
    ts_ok = (ts_ns.is_not_null() & ts_frac) if abstime else pl.lit(True)
    return frame.select(
        ts_ns=ts_ns,
        _ts_ok=ts_ok.fill_null(False),
        dur_ns=pl.when(num != "").then(dur_ns),
        _dur_ok=(pl.col("_mark_ok") & ((num == "") | (dur_ns.is_not_null() & dur_frac))).fill_null(False),
        _irq_kind=pl.when(~pl.col("_mark_ok")).then(pl.lit(None, pl.String))
        .when(num == "==========>").then(pl.lit(Kind.IRQ_ENTRY))
        .when(num == "<==========").then(pl.lit(Kind.IRQ_EXIT)),
    )


def _parse_fast(chunk: LineChunk, fields: pl.DataFrame, lay: Layout) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The fast path for ordinary call lines of a known layout, over the lines cut at the
    prologue's ``|`` separators (:func:`_fields`).  The task and call-tree columns are read
    once per distinct value (:func:`tracekit.frames.by_value`); times and durations are read
    from the bytes as exact integers (:func:`_times`).  Lines it cannot take (task switches, IRQ markers, headers, odd shapes) are
    returned for the general path.  Returns (parsed rows, rows it could not take)."""
    k = lay.bars
    f = [fields.get_column(f"f{i}") for i in range(k + 1)]
    lines = _Lines(chunk)
    # exactly k separators, and not a header line
    lens = [c.str.len_bytes().fill_null(0).to_numpy().astype(np.int64) for c in f]
    exact = pl.Series("_exact", sum(lens) + k == lines.lengths(), dtype=pl.Boolean) & ~f[0].str.starts_with("#")
    i = int(lay.abstime) + int(lay.reltime)
    first = f[i]
    cols: dict[str, pl.Series] = {"line": chunk.line_numbers, "_exact": exact}
    at = _field_starts(lines, lens)  # (None without the chunk's bytes)
    dur_at: int | None = None  # which field is the duration column, when it is one
    cpu_after = None
    if lay.proc or lay.lat:
        task = by_value(first, lambda u: _parse_task_field(u, lay))
        if lay.proc and lay.lat:
            lat = by_value(f[i + 1], lambda u: u.select(flags=pl.col("s").str.strip_chars()))
            task = task.with_columns(flags=lat.get_column("flags"))
        dur_at = i + 1 + int(lay.proc and lay.lat)

        def dur_text(take: pl.Series | None) -> pl.Series:
            return f[dur_at] if take is None else f[dur_at].gather(take)
    else:
        cpu, pok, cpu_after = _cpu_column(first, lay, at[i] if at is not None else None, lens[i], lines)
        task = pl.DataFrame({
            "cpu": cpu, "pid": _nulls("pid", len(first), pl.Int32), "comm": _nulls("comm", len(first), pl.String),
            "flags": _nulls("flags", len(first), pl.String), "_pok": pok,
        })

        def dur_text(take: pl.Series | None) -> pl.Series:
            part = first if take is None else first.gather(take)
            return part.to_frame("s").select(_split_cpu(pl.col("s"), lay)[1]).to_series() if lay.cpu else part
    tree = by_value(f[k], _parse_call_tree)
    frame = pl.DataFrame(cols).hstack(task).hstack(tree)
    frame = frame.hstack(_times(lines, lay, f, lens, at, i, dur_at, dur_text, cpu_after))
    ok = pl.col("_exact") & pl.col("_pok") & pl.col("_bok") & pl.col("_ts_ok") & pl.col("_dur_ok")
    # IRQ markers print the prologue, then the arrow in the duration column
    irq = pl.col("_exact") & pl.col("_pok") & pl.col("_blank") & pl.col("_ts_ok") & pl.col("_irq_kind").is_not_null()
    frame = frame.with_columns(_ok=ok.fill_null(False), _irq=irq.fill_null(False))
    taken = (frame.get_column("_ok") | frame.get_column("_irq")).to_numpy()
    rest = lines.rows(np.flatnonzero(~taken))
    # Of the rest: the header, blank lines and the rules around task switches say nothing;
    # task switches ("prev-pid => next-pid") are read here; anything else takes the general path.
    stripped = pl.col("text").str.strip_chars()
    rest = rest.with_columns(
        _quiet=pl.col("text").str.starts_with("#") | (stripped == "") | stripped.str.contains(r"^-{10,}$"),
        _sw=pl.when(pl.col("text").str.contains("=>", literal=True)).then(pl.col("text")).str.extract_groups(_SWITCH_RE),
    )
    is_sw = ~pl.col("_quiet") & pl.col("_sw").struct.field("next_pid").is_not_null()
    switches = rest.filter(is_sw)
    general = rest.filter(~pl.col("_quiet") & ~is_sw).select("line", "text")
    n = frame.height
    sw_at = np.zeros(n, dtype=bool)
    if switches.height:
        rows = switches.get_column("line").to_numpy() - chunk.first_line
        sw_at[rows] = True
        sw = pl.col("_sw")
        proc = sw.struct.field("next").str.strip_chars()
        sw_table = switches.select(
            cpu=sw.struct.field("cpu").cast(pl.Int32, strict=False),
            pid=proc.str.extract(r"-(\d+)$", 1).cast(pl.Int32, strict=False),
            comm=proc.str.extract(r"^(.*)-\d+$", 1),
            ts_ns=timestamp_ns_expr(sw.struct.field("abs")),
            body=pl.col("text").str.strip_chars(),
        )
    cols = {c: frame.get_column(c) for c in ("cpu", "pid", "comm", "ts_ns", "kind", "flags", "body")}
    irq_rows = np.flatnonzero(frame.get_column("_irq").to_numpy())
    if len(irq_rows):
        at = pl.Series("_i", irq_rows, dtype=pl.UInt32)
        cols["kind"] = cols["kind"].clone().scatter(at, frame.get_column("_irq_kind").gather(at))
    if switches.height:
        # the switch line's own fields, written over the few rows where they are
        at = pl.Series("_i", rows, dtype=pl.UInt32)
        for c in ("cpu", "pid", "comm", "ts_ns", "body"):
            cols[c] = cols[c].clone().scatter(at, sw_table.get_column(c).cast(cols[c].dtype))
        cols["kind"] = cols["kind"].clone().scatter(at, pl.repeat(Kind.SWITCH, len(rows), dtype=pl.String, eager=True))
        cols["flags"] = cols["flags"].clone().scatter(at, _nulls("flags", len(rows), pl.String))
    good = pl.DataFrame({
        "seq": frame.get_column("line").alias("seq"),
        "line": frame.get_column("line"),
        **{c: cols[c] for c in ("cpu", "pid", "comm", "ts_ns", "kind")},
        **{c: frame.get_column(c) for c in ("func", "raw_func", "depth", "dur_ns")},
        "flags": cols["flags"],
        "body": cols["body"],
        "lost": _nulls("lost", n, pl.Int64),
    })
    keep = frame.get_column("_ok").to_numpy() | sw_at
    keep[irq_rows] = True
    if not keep.all():
        good = good.filter(pl.Series("_k", keep, dtype=pl.Boolean))
    return good, general


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
        good, rest = _parse_fast(chunk, _fields(chunk, layout), layout)
        out = pl.concat([good, _parse_general(rest, ctx)]).sort("seq") if rest.height else good
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
    layout: Layout | None = None
    # Chunks are independent once the layout is known: later ones are parsed two at a time
    # in threads (polars and numpy release the GIL), each with its own context, merged back
    # in file order.
    pool = ThreadPoolExecutor(max_workers=PARSE_THREADS, thread_name_prefix="tracekit-fgraph")
    ahead: deque = deque()
    try:
        for chunk in chunks:
            if chunk.n_lines == 0:
                continue
            if layout is None:
                layout = detect_layout(_head_lines(chunk))
                if layout is None:  # no call lines near the start: the general path reads it
                    df = _parse_chunk(chunk, ctx, layout)
                    if df.height:
                        yield df
                    continue
            sub = ctx.child()
            ahead.append((pool.submit(_parse_chunk, chunk, sub, layout), sub))
            while len(ahead) > PARSE_THREADS:
                yield from _collect(ahead, ctx)
        while ahead:
            yield from _collect(ahead, ctx)
    finally:
        for fut, _ in ahead:
            fut.cancel()
        pool.shutdown(wait=True)


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


#: chunks of one function_graph trace parsed at the same time
PARSE_THREADS = 2


def _collect(ahead: deque, ctx: ParseContext) -> Iterator[pl.DataFrame]:
    fut, sub = ahead.popleft()
    df = fut.result()
    ctx.merge(sub)
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
