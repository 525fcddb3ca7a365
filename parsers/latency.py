"""Latency-tracer snapshots: irqsoff, preemptoff, preemptirqsoff, wakeup, wakeup_rt and
wakeup_dl, from every era that printed them, plus the output of the timerlat / osnoise /
hwlat tracers (docs/formats.md#latency-tracers).

A snapshot is what the kernel saved when it saw a new maximum latency (``update_max_tr()``)
and printed with ``print_trace_header()`` (kernel/trace/trace.c) and the latency line
printers ``lat_print_generic()`` / ``lat_print_timestamp()`` (kernel/trace/trace_output.c)::

    # tracer: irqsoff
    # irqsoff latency trace v1.1.5 on 6.1.192-tkA
    # latency: 4045 us, #4/4, CPU#0 | (M:preempt VP:0, KP:0, SP:0 HP:0 #P:1)
    #    | task: pgtfree2-374 (uid:0 nice:0 policy:0 rt_prio:0)
    #  => started at: exc_page_fault
    #  => ended at:   irqentry_exit_to_user_mode
    #                    _------=> CPU#            (the flag legend)
    pgtfree2-374       0d....    0us : exc_page_fault

Layouts read here, all by the same code:

* modern (2.6.29+): every header line starts with ``# ``; body ``func <-parent``;
* 2.6.26-2.6.28 ``latency_trace``: the same header without ``# ``, body ``func (parent)``;
* ``verbose`` option: ``comm pid cpu flags preempt idx [abs] ms (+ms): func``;
* ``display-graph`` option (4.20+): a function_graph body with ``REL TIME``, CPU, task,
  flag and duration columns; its rows are call-graph rows (entry/exit/leaf with depth) that
  :mod:`tracekit.spans` pairs, ``ctx.meta["span_source"] = "function_graph"``;
* the pre-mainline -rt ``/proc/latency_trace`` (2004-2007): v1.0.x
  (``00000001 0.004ms (+0.217ms): clear_page_tables (exit_mmap)`` and ``entries: N (M)``)
  and v1.1.x, whose lines may carry a ``(T<type>/#<idx>)`` record tag and whose ``µ`` is
  the Latin-1 byte 0xB5 (accepted as ``µs``, ``us``, U+FFFD or the CP949 mojibake).

Each snapshot becomes one dict in ``ctx.windows`` (WINDOW_SCHEMA keys): ``latency_ns`` is
exactly the header's ``latency: N us`` times 1000.  Its body lines become rows with
``window`` = the snapshot's index in the file (0, 1, ...).  **Times are relative:** the
latency ``time`` column counts from the start of the snapshot (``iter->ts -
time_start``), so ``ts_ns`` of a snapshot's rows is that relative time in ns (microsecond
resolution; ticks for a counter clock, with ``ctx.meta["time_unit"] = "ticks"``).

The flag columns are not hard-coded: the header legend (``_-----=> irqs-off`` ...) names
them, and PREEMPT_RT or lazy-preemption kernels print more of them.  ``flags`` keeps them
as printed; ``ctx.meta["lat_flag_columns"]`` lists their names in order and
:func:`decode_lat_flags` decodes them by those names.  (``verbose`` lines print
``entry->flags`` as a decimal number instead; ``flags`` keeps that number, and the v1.0.x
lines' ``%08x`` preempt count.)  Lines of the capture tools around a snapshot
(``max_latency_us=N``, trace-cmd's ``version = 6``) are kept as ``marker`` rows;
``ctx.meta["tracing_max_latency_us"]`` keeps the last ``max_latency_us=`` value.

How a chunk is read: a compiled pass over its bytes (:func:`_scan_lines`) names every line
it can without doubt: a ``lat_print_generic()`` line with its fields (and, for ``func
<-parent`` and ``<stack trace>`` bodies, the whole row), a `` => sym`` stack frame, a
blank line, a ``#`` help line, a flag legend line.  The other lines (the header lines
that say each snapshot's numbers, and every layout but the modern one) go to the general
path: regular expressions, over those lines only.  Snapshot boundaries come from the
lines' codes, a stack's frames join the row before them by line index, and
``parse(compiled=False)`` reads every line by the general path (the property tests hold
the two to the same result).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from tracekit.arch import arch_from_symbols
from tracekit.jit import njit
from tracekit.parsers import FormatInfo, callgraph
from tracekit.parsers.base import ELIDED_RE, ELIDED_REASON, LineChunk, ParseContext
from tracekit.parsers.noise import noise_columns
from tracekit.parsers.scan import (buffer, find_bytes, ints, line_bounds, matches_at, printable,
                                   read_uint, skip_back_spaces, skip_spaces, strings, texts)
from tracekit.frames import by_value
from tracekit.schema import EVENT_SCHEMA, WINDOW_SCHEMA, Kind, conform
from tracekit.symbols import canonical_expr, canonicalize, printed_symbols

__all__ = [
    "FORMAT",
    "LATENCY_TRACERS",
    "NOISE_TRACERS",
    "sniff",
    "parse",
    "decode_lat_flags",
    "scan_bytes",
]

FORMAT = FormatInfo(
    name="latency",
    kind="text",
    description="latency tracers (irqsoff, preemptoff, wakeup*, -rt latency_trace) and "
    "timerlat/osnoise/hwlat output",
    example="pgtfree2-153       0...1.    0us*: exit_mmap <-exit_mmap",
)

#: The tracers whose output is a max-latency snapshot.
LATENCY_TRACERS = frozenset(
    {"irqsoff", "preemptoff", "preemptirqsoff", "wakeup", "wakeup_rt", "wakeup_dl"}
)
#: The OS-noise family: ordinary ``trace`` text, kept as events.
NOISE_TRACERS = frozenset({"timerlat", "osnoise", "hwlat"})

# "µs" as it reaches us: UTF-8, Latin-1 0xB5 (same code point), Greek mu, UTF-8 read as
# Latin-1, a replacement character, or 0xB5 0x73 read as CP949.
_US = r"(?:us|µs|μs|Âµs|\x{FFFD}s|탎)"
_PY_US = "(?:us|µs|μs|Âµs|\ufffds|탎)"

# --- header lines (prefix "# " since 2.6.29, none before and in the -rt patches) -------
_H = r"^(?:#\s?)?\s*"
_TRACER_RE = r"^#\s*tracer:\s*(?P<tracer>\S+)"
_VERSION_RE = _H + r"(?P<vtracer>\S+) latency trace (?P<version>v[\d.]+) on (?P<kernel>\S.*?)\s*$"
_LATENCY_RE = (
    _H + r"latency:\s*(?P<lat_us>\d+)\s*" + _US + r",\s*#(?P<shown>\d+)/(?P<total>\d+),"
    r"\s*CPU#(?P<lcpu>\d+)\s*\|\s*\((?:M:(?P<model>[^\s,)]+))?(?P<lrest>[^)]*)\)?"
)
# v1.0.x: " latency: 234 us, entries: 38 (38)   |   [VP:1 KP:1 SP:1 HP:1 #CPUS:2]"
_LATENCY10_RE = (
    _H + r"latency:\s*(?P<lat_us>\d+)\s*" + _US + r",\s*entries:\s*(?P<shown>\d+)\s*"
    r"\((?P<total>\d+)\)\s*\|\s*\[(?P<lrest>[^\]]*)\]"
)
_NCPUS_RE = r"#(?:P|CPUS):(\d+)"
# "| task: ksoftirqd/0-2 (uid:0 ...)" (v1.1+), "| task: IRQ 14/203, uid:0 ..." (v1.0)
_TASK_RE = _H + r"\|\s*task:\s*(?P<tcomm>.+?)[-/](?P<tpid>\d+)\s*[,(]"
_STARTED_RE = _H + r"=>\s*started at:\s*(?P<started>\S.*?)\s*$"
_ENDED_RE = _H + r"=>\s*ended at:\s*(?P<ended>\S.*?)\s*$"
# (the name is one word: osnoise prints column titles on the same lines, "preempt-depth  MAX")
_LEGEND_RE = r"^#?\s*[|/ ]*_-*=>\s*(?P<legend>\S+)"
# Column help and rulers: "#  cmd     pid ...", "#     \   /", "----", "=======>",
# "#   REL TIME ...", a lone "#".
_HELP_RE = (
    r"^(?:#.*|\s*-{3,}\s*|\s*={3,}>?\s*|\s*cmd\s+pid\s.*|\s*\\\s+/.*|\s*\|+\s*/?\s*|"
    r"\s*\|+\s+delay\s*|\s*[|/ ]*_-*=>.*)$"
)

# --- body lines --------------------------------------------------------------------------
_TAG = r"(?:\(T(?P<rtype>\d+)/#(?P<ridx>\d+)\)\s*)?"
# lat_print_generic() + lat_print_timestamp(): "%8.8s-%-7d %3d" + flags + " %4lldus%c: "
_LAT_RE = (
    r"^" + _TAG + r"(?P<comm>.*?)-(?P<pid>\d+)\s+(?P<cpu>\d+)(?P<flags>[^\s\d]\S*)\s+"
    r"(?P<time>\d+)(?:(?P<unit>" + _US + r")(?P<mark>[ !+#*@$])?:?|:)\s?(?P<rest>.*?)\s*$"
)
# verbose: "%16s %7d %3d %d %08x %08lx " + "[%08llx] %ld.%03ldms (+%ld.%03ldms): "
#                                     or "[%016llx] %lld (+%lld): " (counter clock)
_VERBOSE_RE = (
    r"^(?:\(T(?P<vtype>\d+)/#(?P<vidx>\d+)\)\s*)?\s*(?P<vcomm>\S.*?)\s+(?P<vpid>\d+)\s+"
    r"(?P<vcpu>\d+)\s+(?P<vflags>\d+)\s+(?P<vpreempt>[0-9a-fA-F]{8})\s+[0-9a-fA-F]{8,}\s+"
    r"\[[0-9a-fA-F]+\]\s+(?:(?P<vms>\d+)\.(?P<vus>\d+)ms\s+\(\+\d+\.\d+ms\)|"
    r"(?P<vticks>\d+)\s+\(\+\d+\)):\s?(?P<vrest>.*?)\s*$"
)
# -rt v1.0.x: "%08x %d.%03dms (+%d.%03dms): func (parent)"
_V10_RE = (
    r"^(?P<opreempt>[0-9a-fA-F]{8})\s+(?P<oms>\d+)\.(?P<ous>\d+)ms\s+\(\+\d+\.\d+ms\):"
    r"\s?(?P<orest>.*?)\s*$"
)
# -rt v1.1.x task-switch marker: "(T4/#15) [ =>     valgrind.bin ] 0.316ms (+0.001ms)"
_SWITCH_RE = (
    r"^\(T\d+/#\d+\)\s*\[\s*=>\s*(?P<scomm>.*?)\s*\]\s+(?P<sms>\d+)\.(?P<sus>\d+)ms"
)
# display-graph: "%9llu us |  " + " %d) " + proc + " | " + flags + " | ", then the call
# graph's body (the duration column or an IRQ arrow, "|", the call tree: parsers/callgraph.py)
_GRAPH_RE = (
    r"^\s*(?P<grel>\d+) us \|\s*(?P<gcpu>\d+)\)\s+(?P<gproc>\S.*?)\s+\|\s+(?P<gflags>\S+)\s+\|"
    r"(?P<gbody>\s*(?:[!+#*@$]?\s*(?:\d+(?:\.\d+)?\s+us)?|==========>|<==========)\s*\|.*?)\s*$"
)
# trace_print_context() lines of timerlat / osnoise / hwlat (absolute time).
_CONTEXT_RE = (
    r"^\s*(?P<ncomm>.*?)-(?P<npid>\d+)\s+(?:\(\s*[\d-]+\)\s+)?\[(?P<ncpu>\d+)\]\s+"
    r"(?:(?P<nflags>[.A-Za-z0-9]{4,8})\s+)?(?P<nts>\d+(?:\.\d+)?):\s(?P<nbody>.*?)\s*$"
)
_FRAME_RE = r"^\s*=>\s*(?P<frame>\S.*?)\s*$"
# What the capture scripts append: "max_latency_us=4045", "no preemptoff window >= ...".
# trace-cmd report prints a recorded latency trace as it is, after its own "version = 6",
# "CPU N is empty" and "cpus=N" lines.
_NOTE_RE = r"^(?:\w+=\S.*|no \w+ window >= \d+ us.*|version = \d+|CPU \d+ is empty)\s*$"
_MODELINE_RE = r"^\s*vim:.*$"

#: What a line of these formats can begin with: a header or help line (with or without
#: "# "), a record of any layout (context, verbose, -rt tag or preempt count, display-graph
#: REL TIME), a stack frame, an elision, a capture note.  A line that begins otherwise was
#: broken off the line before it (by a mail client): :mod:`tracekit.pasted` joins it back.
#: So is a line that begins "#P:", the end of print_trace_header()'s "# latency:" line.
OWN_LINE_RE = (
    r"^\s*(?:$|#(?:$|[^P]|P$|P[^:])|=>|\[|\.\.\.|\(T\d|vim:|-{3,}|={3,}|\||\\|_-|cmd\s+pid"
    r"|\S+ latency trace v|latency:|\d+ us \||[0-9a-fA-F]{8}\s+\d+\.\d+ms"
    r"|\S.*?-\d+\s+(?:\d+\S+\s+\d+|\(\s*[\d-]+\)\s+\[|\[\d+\])|\S.*?\s\d+\s+\d+\s+\d+\s+[0-9a-fA-F]{8}\s"
    r"|\w+=|no \w+ window|version = |CPU \d+ is empty|cpus=)"
)

# Bodies.
_FUNC_PARENT_RE = (
    r"^(?P<f>[^\s(<][^\s(]*(?:\s+<[0-9a-fA-F]+>)?|<[0-9a-fA-F]+>)"
    r"(?:\s+(?:<-\s*(?P<p1>\S+(?:\s+<[0-9a-fA-F]+>)?)|\((?P<p2>[^()]*)\)))?\s*$"
)
_WAKE_RE = r"^\s*\d+:\s*\d+:\S\s+(?P<op>\+|==>)\s+\[\d+\]\s+\d+:\s*\d+:\S"
_EVENT_RE = r"^(?P<ev>[A-Za-z_][\w:.-]*): (?P<erest>.*)$"



#: The header's ``M:`` word and the preemption model it names, as the kernel's other
#: interfaces (``preempt=``, ``/sys/kernel/debug/sched/preempt``) and the runs' config call
#: it: print_trace_header() prints server, desktop, preempt or preempt_rt for
#: preempt_model_none/voluntary/full/rt() [6.1.176:kernel/trace/trace.c:L4311-4320].  The
#: window rows keep the header's own word.
PREEMPT_MODELS = {"server": "none", "desktop": "voluntary", "preempt": "full", "preempt_rt": "rt"}


def sniff(head: str) -> int:
    """How sure we are that ``head`` is latency-tracer output (or timerlat/osnoise/hwlat)."""
    m = re.search(r"^#\s*tracer:\s*(\S+)", head, re.M)
    if m and m.group(1).lower() in LATENCY_TRACERS:
        return 95
    if re.search(r"^(?:#\s?)?\s*\S+ latency trace v\d", head, re.M):
        return 95
    if m and m.group(1) in NOISE_TRACERS:
        return 92
    if re.match(r"\s*no \w+ window >= \d+ us", head):
        return 50
    lines = [ln for ln in head.splitlines()[:200] if ln.strip() and not ln.startswith("#")]
    if lines:
        rx = re.compile(_LAT_RE.replace(r"\x{FFFD}", "\ufffd"))
        verbose = re.compile(_VERBOSE_RE)
        hits = sum(1 for ln in lines if rx.match(ln) or verbose.match(ln))
        if hits >= max(1, len(lines) // 2):
            return 40
    return 0


def decode_lat_flags(flags: pl.Expr, columns: list[str]) -> pl.Expr:
    """Decode latency flag characters (``trace_print_lat_fmt()``) by the legend's column
    names: a struct with ``irqs_off`` (bool; None for ``X``), ``need_resched`` (the
    character), ``context`` (task / softirq / hardirq / nmi), ``preempt_depth`` and
    ``migrate_disable`` (ints, 0 for ``.``), each null when the legend has no such column."""

    def char(i: int) -> pl.Expr:
        return flags.str.slice(i, 1)

    def depth(i: int) -> pl.Expr:
        c = char(i)
        return pl.when(c == ".").then(0).otherwise(c.str.to_integer(base=16, strict=False))

    fields: dict[str, pl.Expr] = {}
    for i, name in enumerate(columns):
        n = name.lower()
        if n.startswith("irqs-off"):
            c = char(i)
            fields["irqs_off"] = (
                pl.when(c == "X").then(None).otherwise(c.is_in(["d", "D"]))
            )
        elif n == "need-resched":
            fields["need_resched"] = char(i)
        elif n == "hardirq/softirq":
            c = char(i)
            fields["context"] = (
                pl.when(c.is_in(["z", "Z"])).then(pl.lit("nmi"))
                .when(c.is_in(["h", "H"])).then(pl.lit("hardirq"))
                .when(c == "s").then(pl.lit("softirq"))
                .otherwise(pl.lit("task"))
            )
        elif n == "preempt-depth":
            fields["preempt_depth"] = depth(i)
        elif n == "migrate-disable":
            fields["migrate_disable"] = depth(i)
    return pl.struct(**{k: v for k, v in fields.items()}) if fields else pl.lit(None)


# ---------------------------------------------------------------------------------------


class _State:
    """What one pass over a file carries from chunk to chunk."""

    def __init__(self) -> None:
        self.snapshot = -1  # index of the current snapshot (-1: none yet)
        self.last_marker = 0  # the last line's marker (_TRACER, _VERSION, _BODY; 0: none yet)
        # the header fields of the snapshots not yet turned into windows, one row each
        self.headers = pl.DataFrame(schema=_HEADER_SCHEMA)
        self.graph = False
        self.counter_clock = False
        self.syms: list[pl.Series] = []  # a bounded sample of symbols, for the arch
        self.kernels: set[str] = set()


def parse(chunks: Iterator[LineChunk], ctx: ParseContext, compiled: bool = True) -> Iterator[pl.DataFrame]:
    """Parse latency-tracer text into event frames; snapshots go to ``ctx.windows``.
    ``compiled=False`` reads every line by the general path (the reference the compiled
    reader is tested against)."""
    st = _State()
    carry: _Lines | None = None
    for lines, is_last in _scanned(chunks, compiled):
        if carry is not None:
            lines, carry = carry.joined(lines), None
        if not is_last:
            lines, carry = _hold_back_stack(lines)
        out = _parse_lines(lines, st, ctx)
        if out is not None and out.height:
            yield out
    if carry is not None:
        out = _parse_lines(carry, st, ctx)
        if out is not None and out.height:
            yield out
    _finish(st, ctx)


def _scanned(chunks: Iterator[LineChunk], compiled: bool) -> Iterator[tuple[_Lines, bool]]:
    """The chunks' lines read by the compiled reader (and whether each chunk is the last),
    the next chunk read in a thread while the caller assembles the rows of this one (the
    reader releases the GIL)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracekit-scan") as pool:
        ahead: tuple[Future, bool] | None = None
        for chunk in chunks:
            if chunk.n_lines == 0:
                continue
            scan = pool.submit(_Lines.of, chunk, compiled)
            if ahead is not None:
                yield ahead[0].result(), ahead[1]
            ahead = (scan, chunk.is_last)
        if ahead is not None:
            yield ahead[0].result(), ahead[1]


def scan_bytes(raw: bytes) -> None:
    """Read ``raw`` as one chunk of latency-tracer text, compiled reader and frame assembly
    (for the fuzzer): bad input is counted as the parser counts it, or a ParseError."""
    ctx = ParseContext("<bytes>")
    for _ in parse(iter([LineChunk(1, raw=raw)]), ctx):
        pass


def _num(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.Int64, strict=False)


#: line codes of :func:`_scan_lines` (0: a line the general path reads); the first three
#: are ``lat_print_generic()`` lines
_SLOW, _LAT, _FN, _STACK, _FRAME, _BLANK, _HELP, _LEGEND = 0, 1, 2, 3, 4, 5, 6, 7


def _is_lat(code: np.ndarray) -> np.ndarray:
    """Which lines the compiled reader read as ``lat_print_generic()`` lines."""
    return (code >= _LAT) & (code <= _STACK)


class _Lines:
    """A chunk's lines as bytes, with what the compiled reader made of each
    (:func:`_scan_lines`): ``code``, ``nums`` and ``offs`` (its arrays) and the rows it read
    whole (``rows``, :func:`_taken_rows`), the file's line number of each line (``number``)
    and the text of a line for the general path."""

    def __init__(self, raw: bytes, number: np.ndarray, compiled: bool) -> None:
        self.raw, self.number = raw, number
        self.starts, self.ends = line_bounds(buffer(raw))
        n = len(self.starts)
        if compiled:
            self.code, self.nums, self.offs, high = _scan_lines(buffer(raw), self.starts, self.ends)
        else:
            self.code = np.zeros(n, dtype=np.int8)
            self.nums, self.offs = np.full((4, n), -1, dtype=np.int64), np.full((10, n), -1, dtype=np.int64)
            high = bool((buffer(raw) > 127).any())
        # (per line, whether its text is read as Latin-1: a chunk that is not UTF-8 is)
        self.latin1 = np.full(n, bool(high) and not _is_utf8(raw))
        self.rows = _taken_rows(self)
        self._slow: pl.DataFrame | None = None

    @classmethod
    def of(cls, chunk: LineChunk, compiled: bool) -> "_Lines":
        raw = chunk.raw
        if raw is None:
            raw = ("\n".join(chunk.lines.to_list()) + "\n").encode("utf-8")
        elif raw and not raw.endswith(b"\n"):
            raw += b"\n"
        return cls(raw, chunk.line_numbers.to_numpy(), compiled)

    @classmethod
    def _made(cls, raw: bytes, number: np.ndarray, latin1: np.ndarray, starts: np.ndarray, ends: np.ndarray,
              code: np.ndarray, nums: np.ndarray, offs: np.ndarray, rows: pl.DataFrame) -> "_Lines":
        out = cls.__new__(cls)
        out.raw, out.number, out.latin1, out.starts, out.ends = raw, number, latin1, starts, ends
        out.code, out.nums, out.offs, out.rows, out._slow = code, nums, offs, rows, None
        return out

    def joined(self, more: "_Lines") -> "_Lines":
        """These lines and ``more`` after them (their arrays joined, nothing read again)."""
        shift = len(self.raw)
        return _Lines._made(
            self.raw + more.raw, np.concatenate([self.number, more.number]), np.concatenate([self.latin1, more.latin1]),
            np.concatenate([self.starts, more.starts + shift]), np.concatenate([self.ends, more.ends + shift]),
            np.concatenate([self.code, more.code]), np.concatenate([self.nums, more.nums], axis=1),
            np.concatenate([self.offs, np.where(more.offs >= 0, more.offs + shift, -1)], axis=1),
            pl.concat([self.rows, more.rows.with_columns(pl.col("i") + len(self))]))

    def split(self, at: int) -> tuple["_Lines", "_Lines"]:
        """The lines before line ``at`` and from it on."""
        cut = int(self.starts[at])
        head = _Lines._made(self.raw[:cut], self.number[:at], self.latin1[:at], self.starts[:at], self.ends[:at],
                            self.code[:at], self.nums[:, :at], self.offs[:, :at], self.rows.filter(pl.col("i") < at))
        if self._slow is not None:
            head._slow = self._slow.filter(pl.col("i") < at)
        tail = _Lines._made(self.raw[cut:], self.number[at:], self.latin1[at:], self.starts[at:] - cut,
                            self.ends[at:] - cut, self.code[at:], self.nums[:, at:],
                            np.where(self.offs[:, at:] >= 0, self.offs[:, at:] - cut, -1),
                            self.rows.filter(pl.col("i") >= at).with_columns(pl.col("i") - at))
        return head, tail

    def __len__(self) -> int:
        return len(self.starts)

    def slow(self) -> pl.DataFrame:
        """The lines the compiled reader left (``i``, ``line``, ``text``), classified by
        the general path (:func:`_classify`)."""
        if self._slow is None:
            self._slow = _classify(self.frame(np.flatnonzero(self.code == _SLOW)))
        return self._slow

    def texts(self, idx: np.ndarray) -> pl.Series:
        """The text of lines ``idx``: UTF-8, or Latin-1 when their chunk is not UTF-8 (as
        the ingest reader decodes a chunk)."""
        raw = self.raw
        return pl.Series("text", [raw[a:b].decode("latin-1" if l1 else "utf-8") for a, b, l1 in
                                  zip(self.starts[idx].tolist(), self.ends[idx].tolist(), self.latin1[idx].tolist())],
                         dtype=pl.String)

    def frame(self, idx: np.ndarray) -> pl.DataFrame:
        """Lines ``idx`` as a frame of ``i`` (the index in the chunk), ``line`` and ``text``."""
        return pl.DataFrame({"i": pl.Series("i", idx, dtype=pl.Int64), "line": pl.Series("line", self.number[idx], dtype=pl.Int64),
                             "text": self.texts(idx)})


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _scan_chunk(df: pl.DataFrame) -> pl.DataFrame:
    """The lines of ``df`` read by the compiled reader of latency lines (:func:`_scan_lines`):
    ``fast`` and, on those lines, the fields of ``_LAT_RE`` (pid, CPU and time as numbers,
    ``unit`` "us" or null, ``rest`` stripped), and where the rest is ``func <-parent``,
    ``fn`` with ``f`` and ``p1`` as ``_FUNC_PARENT_RE`` reads them."""
    lines = _Lines(("\n".join(df["text"].to_list()) + "\n").encode("utf-8") if df.height else b"",
                   df["line"].to_numpy(), True)
    return df.with_columns(**_fast_columns(lines, np.arange(len(lines))))


def _fast_columns(lines: _Lines, idx: np.ndarray) -> dict[str, pl.Series]:
    """The fields the compiled reader read on lines ``idx`` (null where it took none)."""
    raw, nums, offs, code = lines.raw, lines.nums[:, idx], lines.offs[:, idx], lines.code[idx]
    taken = _is_lat(code)
    fn = code == _FN

    def where(row: int, mask: np.ndarray) -> np.ndarray:
        return np.where(mask, offs[row], -1)

    return dict(
        fast=pl.Series(taken),
        comm=strings(raw, where(0, taken), offs[1], "comm"),
        pid=ints("pid", np.where(taken, nums[0], -1), pl.Int64),
        cpu=ints("cpu", np.where(taken, nums[1], -1), pl.Int64),
        flags=strings(raw, where(2, taken), offs[3], "flags"),
        time=ints("time", np.where(taken, nums[2], -1), pl.Int64),
        unit=pl.Series("unit", ["us", None], dtype=pl.String).gather(np.where(taken & (nums[3] == 1), 0, 1)),
        rest=texts(raw, where(4, taken), offs[5], "rest"),
        fn=pl.Series(fn),
        f=strings(raw, where(6, fn), offs[7], "f"),
        p1=strings(raw, where(8, fn), offs[9], "p1"),
    )


#: the columns :func:`_fast_columns` gives
_FAST_SCHEMA = {"fast": pl.Boolean(), "comm": pl.String(), "pid": pl.Int64(), "cpu": pl.Int64(), "flags": pl.String(),
                "time": pl.Int64(), "unit": pl.String(), "rest": pl.String(), "fn": pl.Boolean(), "f": pl.String(),
                "p1": pl.String()}
_FAST_COLUMNS = tuple(k for k in _FAST_SCHEMA if k != "fast")

def _classify(df: pl.DataFrame) -> pl.DataFrame:
    """Which header, help, blank or frame line each line of ``df`` (``text``) is."""
    t = pl.col("text")
    return df.with_columns(
        is_tracer=t.str.contains(_TRACER_RE),
        is_version=t.str.contains(_VERSION_RE),
        is_latency=t.str.contains(_LATENCY_RE) | t.str.contains(_LATENCY10_RE),
        is_task=t.str.contains(_TASK_RE),
        is_started=t.str.contains(_STARTED_RE),
        is_ended=t.str.contains(_ENDED_RE),
        is_legend=t.str.contains(_LEGEND_RE),
        is_help=t.str.contains(_HELP_RE),
        is_blank=t.str.contains(r"^\s*$"),
        is_frame=t.str.contains(_FRAME_RE),
    ).with_columns(
        is_header=pl.any_horizontal(
            "is_tracer", "is_version", "is_latency", "is_task", "is_started", "is_ended",
            "is_legend",
        )
    ).with_columns(
        is_frame=pl.col("is_frame") & ~pl.col("is_header"),
        is_help=pl.col("is_help") & ~pl.col("is_header"),
    )


#: what a line is, for the snapshot it belongs to and the stack it continues
_NONE, _TRACER, _VERSION, _BODY = 0, 1, 2, 3


def _roles(lines: _Lines, slow: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per line of the chunk: its marker (:data:`_TRACER`, :data:`_VERSION`, :data:`_BODY` or
    :data:`_NONE` for header, help, blank and frame lines) and whether it is a frame or
    blank line; ``slow`` is the general path's classification of the lines the compiled
    reader left."""
    code = lines.code
    marker = np.where(_is_lat(code), _BODY, _NONE).astype(np.int8)
    loose = (code == _FRAME) | (code == _BLANK)
    if slow.height:
        i = slow["i"].to_numpy()
        hdr, hlp, blank, frame = (slow[c].to_numpy() for c in ("is_header", "is_help", "is_blank", "is_frame"))
        marker[i] = np.where(slow["is_tracer"].to_numpy(), _TRACER,
                             np.where(slow["is_version"].to_numpy(), _VERSION,
                                      np.where(~hdr & ~hlp & ~blank & ~frame, _BODY, _NONE)))
        loose[i] = frame | blank
    return marker, loose


def _hold_back_stack(lines: _Lines) -> tuple[_Lines, _Lines | None]:
    """A stack trace may continue in the next chunk: its "<stack trace>" line and the
    frames after it are held back; the lines before are returned."""
    if not len(lines):
        return lines, None
    _, loose = _roles(lines, lines.slow())
    solid = np.flatnonzero(~loose)
    if len(solid):
        at = int(solid[-1])
        if b"<stack trace>" in lines.raw[lines.starts[at]:lines.ends[at]]:
            return lines.split(at)
    return lines, None


def _parse_lines(lines: _Lines, st: _State, ctx: ParseContext) -> pl.DataFrame | None:
    """One chunk's lines: headers into ``st``, body lines into event rows."""
    if not len(lines):
        return None
    slow = lines.slow()
    marker, _ = _roles(lines, slow)
    snapshot = _number_snapshots(marker, st)
    slow = slow.with_columns(snapshot=pl.Series(snapshot[slow["i"].to_numpy()], dtype=pl.Int32))
    _collect_headers(slow.filter(pl.col("is_header")), _legends(lines, snapshot, ctx), st, ctx)
    _entries_written(slow.filter(pl.col("is_help")), ctx)
    body = slow.filter(~pl.col("is_header") & ~pl.col("is_help") & ~pl.col("is_blank"))
    out = _parse_body(lines, body, snapshot, st, ctx)
    _finalize(st, ctx, before=st.snapshot)  # the earlier snapshots are complete
    return out


def _number_snapshots(marker: np.ndarray, st: _State) -> np.ndarray:
    """The index of the snapshot each line belongs to: a "# tracer:" line starts one; so
    does a version line that does not follow its own tracer line (the -rt layouts have no
    tracer line)."""
    at = np.where(marker != _NONE, np.arange(len(marker)), -1)
    last = np.maximum.accumulate(at)  # the last marked line at or before each line
    prev = np.empty_like(marker)
    prev[:1] = st.last_marker
    prev[1:] = np.where(last[:-1] >= 0, marker[np.maximum(last[:-1], 0)], st.last_marker)
    start = (marker == _TRACER) | ((marker == _VERSION) & (prev != _TRACER))
    snapshot = (np.cumsum(start) + st.snapshot).astype(np.int32)
    if len(marker) and last[-1] >= 0:
        st.last_marker = int(marker[last[-1]])
    if len(snapshot):
        st.snapshot = int(snapshot[-1])
    return snapshot


def _legends(lines: _Lines, snapshot: np.ndarray, ctx: ParseContext) -> pl.DataFrame:
    """The flag legend lines the compiled reader took (``line``, ``snapshot``, ``legend``,
    the column's name), while the run's flag columns are not known yet."""
    i = np.flatnonzero(lines.code == _LEGEND) if "lat_flag_columns" not in ctx.meta else np.empty(0, dtype=np.int64)
    return pl.DataFrame({
        "line": pl.Series(lines.number[i], dtype=pl.Int64),
        "snapshot": pl.Series(snapshot[i], dtype=pl.Int32),
        "legend": strings(lines.raw, lines.offs[4, i], lines.offs[5, i], "legend"),
    })


def _entries_written(help_lines: pl.DataFrame, ctx: ParseContext) -> None:
    """``# entries-in-buffer/entries-written: 13/13   #P:8`` (print_event_info(), 2.6.37+)
    into ctx.meta, from the first snapshot that prints it."""
    ew = help_lines.select(
        pl.col("text").str.extract_groups(
            r"^#\s*entries-in-buffer/entries-written:\s*(?P<eib>\d+)/(?P<ew>\d+)\s+#P:(?P<np>\d+)"
        ).alias("e")
    ).unnest("e").drop_nulls()
    if ew.height and "entries_written" not in ctx.meta:
        eib, ewr, ncpu = (int(x) for x in ew.row(0))
        ctx.meta.update(entries_in_buffer=eib, entries_written=ewr)
        ctx.meta.setdefault("ncpus", ncpu)


def _collect_headers(h: pl.DataFrame, legends: pl.DataFrame, st: _State, ctx: ParseContext) -> None:
    """Fold the header lines of each snapshot into ``st.headers`` (a few lines a snapshot);
    ``legends`` are the flag legend lines the compiled reader read (their column names)."""
    if not h.height and not legends.height:
        return
    t = pl.col("text")

    def read(flag: str, *fields: pl.Expr) -> pl.DataFrame:
        """The header lines of one kind (``flag``, as :func:`_classify` found it), read."""
        return h.filter(pl.col(flag)).select("line", "snapshot", *fields)

    l11, l10 = t.str.extract_groups(_LATENCY_RE), t.str.extract_groups(_LATENCY10_RE)
    parts = [
        read("is_tracer", t.str.extract(_TRACER_RE, 1).alias("tracer")),
        read("is_version", t.str.extract_groups(_VERSION_RE).alias("v")).unnest("v"),
        read("is_latency", l11.alias("l11"), l10.alias("l10")).select(
            "line", "snapshot",
            lat_us=pl.coalesce(pl.col("l11").struct.field("lat_us"), pl.col("l10").struct.field("lat_us")),
            shown=pl.coalesce(pl.col("l11").struct.field("shown"), pl.col("l10").struct.field("shown")),
            total=pl.coalesce(pl.col("l11").struct.field("total"), pl.col("l10").struct.field("total")),
            lcpu=pl.col("l11").struct.field("lcpu"),
            model=pl.col("l11").struct.field("model"),
        ),
        h.select("line", "snapshot", t.str.extract(_NCPUS_RE, 1).alias("ncpus")).drop_nulls("ncpus"),
        read("is_task", t.str.extract_groups(_TASK_RE).alias("task")).unnest("task"),
        read("is_started", t.str.extract(_STARTED_RE, 1).alias("started_at")),
        read("is_ended", t.str.extract(_ENDED_RE, 1).alias("ended_at")),
        read("is_legend", t.str.extract(_LEGEND_RE, 1).alias("legend")),
        legends,
    ]
    h = pl.concat([pl.DataFrame(schema={"line": pl.Int64, "snapshot": pl.Int32}), *[x for x in parts if x.height]],
                  how="diagonal_relaxed").sort("line", maintain_order=True)
    h = h.with_columns(*[pl.lit(None, dtype=pl.String).alias(f) for f in (*_HEADER_FIELDS, "legend") if f not in h.columns])
    agg = h.group_by("snapshot", maintain_order=True).agg(
        *[pl.col(f).drop_nulls().first() for f in _HEADER_FIELDS],
        pl.col("legend").drop_nulls(),
    )
    tracer = agg.select(pl.coalesce("tracer", "vtracer").drop_nulls().first()).item()
    if tracer:
        ctx.meta.setdefault("tracer", tracer)
    both = pl.concat([st.headers, agg.select(_HEADER_SCHEMA.keys()).cast(_HEADER_SCHEMA)])
    st.headers = both.group_by("snapshot", maintain_order=True).agg(  # (the first value each field has)
        *[pl.col(f).drop_nulls().first() for f in _HEADER_FIELDS], pl.col("legend").list.explode(keep_nulls=False, empty_as_null=False))


#: What a snapshot's header lines say (each field as printed), and the flag legend's names.
_HEADER_FIELDS = ("tracer", "vtracer", "version", "kernel", "lat_us", "shown", "total", "lcpu", "model", "ncpus",
                  "tcomm", "tpid", "started_at", "ended_at")
_HEADER_SCHEMA = {"snapshot": pl.Int32(), **{f: pl.String() for f in _HEADER_FIELDS}, "legend": pl.List(pl.String())}


def _with_window(st: _State) -> pl.DataFrame:
    """The pending snapshots that have a latency header (they are windows)."""
    return st.headers.filter(pl.col("lat_us").is_not_null())


def _flag_columns(legend: list[str]) -> list[str]:
    return [n for n in legend if not n.upper().startswith("CPU")]


#: The body grammars, most specific first: (form, regex).  A line follows the first whose
#: regex it matches; only that regex's groups are extracted for it.
_BODY_FORMS = (
    ("verbose", _VERBOSE_RE),
    ("graph", _GRAPH_RE),
    ("lat", _LAT_RE),
    ("context", _CONTEXT_RE),
    ("v10", _V10_RE),
    ("switch", _SWITCH_RE),
    ("frame", _FRAME_RE),
)
_BODY_GROUPS = [
    g for _, rx in _BODY_FORMS for g in re.compile(rx.replace(r"\x{FFFD}", "\ufffd")).groupindex
]


def _parse_body(lines: _Lines, slow: pl.DataFrame, snapshot: np.ndarray, st: _State,
                ctx: ParseContext) -> pl.DataFrame | None:
    """The body lines of a chunk as event rows: the ``func <-parent`` lines the compiled
    reader read (:func:`_taken_rows`), the others by the general path (``slow``: the
    body lines the compiled reader left), and the stack frames after a ``<stack trace>``
    line as its callchain."""
    code = lines.code
    if (lines.nums[3][_is_lat(code)] == 0).any():
        st.counter_clock = True
    rows = [lines.rows.with_columns(snapshot=pl.Series(snapshot[lines.rows["i"].to_numpy()], dtype=pl.Int32))]
    frame_lines = [np.flatnonzero(code == _FRAME)]
    frame_names = [strings(lines.raw, lines.offs[4, frame_lines[0]], lines.offs[5, frame_lines[0]], "frame")]
    general = _general_rows(lines, slow, snapshot, st, ctx)
    if general is not None:
        frames = general.filter(pl.col("kind") == "frame")
        frame_lines.append(frames["i"].to_numpy())
        frame_names.append(frames["frame"])
        rows.append(conform(general.filter(pl.col("kind") != "frame"), _ROWS))
    b = rows[0] if len(rows) == 1 else pl.concat(rows).sort("i")
    b = _attach_stacks(b, np.concatenate(frame_lines), pl.concat(frame_names), ctx)
    _sample_symbols(b, st)
    return _assign_windows(b, st)


#: the rows of a chunk before their windows and stacks: the event schema's columns, the
#: line's index in the chunk and its snapshot
_ROWS = {"i": pl.Int64(), "snapshot": pl.Int32(),
         **{k: v for k, v in EVENT_SCHEMA.items() if k not in ("seq", "window", "callchain")}}


def _taken_rows(lines: _Lines) -> pl.DataFrame:
    """The ``func <-parent`` and ``<stack trace>`` lines the compiled reader read, as
    function and stack rows (``ts_ns``: the line's time in us as ns, or in ticks for a
    counter clock; ``snapshot`` is the caller's to fill)."""
    i = np.flatnonzero((lines.code == _FN) | (lines.code == _STACK))
    raw, nums, offs = lines.raw, lines.nums[:, i], lines.offs[:, i]
    stack = lines.code[i] == _STACK
    return conform(pl.DataFrame({
        "i": pl.Series(i, dtype=pl.Int64),
        "line": pl.Series(lines.number[i], dtype=pl.Int64),
        "cpu": ints("cpu", nums[1], pl.Int32),
        "pid": ints("pid", nums[0], pl.Int32),
        "comm": strings(raw, offs[0], offs[1], "comm"),
        "ts_ns": pl.Series(np.where(nums[3] == 1, nums[2] * 1000, nums[2]), dtype=pl.Int64),
        "kind": pl.Series("kind", [Kind.FUNCTION, Kind.STACK], dtype=pl.String).gather(stack.astype(np.uint32)),
        **printed_symbols(raw, offs[6], offs[7], "raw_func", "func"),
        **printed_symbols(raw, offs[8], offs[9], "raw_parent", "parent"),
        "flags": strings(raw, offs[2], offs[3], "flags"),
        "body": texts(raw, offs[4], offs[5], "body"),
    }), _ROWS)



def _general_rows(lines: _Lines, slow: pl.DataFrame, snapshot: np.ndarray, st: _State,
                  ctx: ParseContext) -> pl.DataFrame | None:
    """The body lines the general path reads: those the compiled reader left (``slow``)
    and the lines it read whose body is not ``func <-parent`` (an event, a stack trace),
    in file order, with their kinds, names and (``frame``) stack frames."""
    lat = np.flatnonzero(lines.code == _LAT)
    if not len(lat) and not slow.height:
        return None
    b = slow.select("i", "line", "text", "snapshot", "is_frame").with_columns(
        **{k: pl.lit(None, dtype=t) for k, t in _FAST_SCHEMA.items()}).with_columns(fast=pl.lit(False), fn=pl.lit(False))
    if len(lat):
        taken = lines.frame(lat).with_columns(snapshot=pl.Series(snapshot[lat], dtype=pl.Int32), is_frame=pl.lit(False),
                                              **_fast_columns(lines, lat))
        b = pl.concat([b, taken.select(b.columns)]).sort("i")
    b = _read_forms(b, ctx)
    if not b.height:
        return None
    b = _read_graph_bodies(_common_columns(b, st))
    if b.filter(pl.col("form") == "graph").height:
        st.graph = True
        ctx.meta["span_source"] = "function_graph"  # before the first frame is yielded
    b = _kinds_and_names(_lat_bodies(b, ctx), ctx)
    _note_max_latency(b, ctx)
    return _v10_cpu(b, st)


def _read_forms(b: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """Which grammar each line follows (``form``; the lines the compiled reader took are
    "lat"), and its fields by that grammar only; lines of none are counted and dropped."""
    t = pl.col("text")
    fast = b.filter(pl.col("fast")).with_columns(form=pl.lit("lat"))
    slow = b.filter(~pl.col("fast")).drop(*_FAST_COLUMNS).with_columns(
        *[t.str.contains(rx).alias(f"is_{name}") for name, rx in _BODY_FORMS if name != "frame"],
        t.str.contains(_NOTE_RE).alias("is_note"),
        t.str.contains(ELIDED_RE).alias("is_elided"),
        t.str.contains(_MODELINE_RE).alias("is_modeline"),
    )
    form = pl.when(pl.lit(False)).then(pl.lit(None, dtype=pl.String))
    for name, _ in _BODY_FORMS:
        form = form.when(pl.col(f"is_{name}")).then(pl.lit(name))
    slow = slow.with_columns(form=form.when(pl.col("is_note")).then(pl.lit("note")))
    parts = [fast]
    for name, rx in _BODY_FORMS:
        sub = slow.filter(pl.col("form") == name)
        if sub.height:
            sub = sub.with_columns(t.str.extract_groups(rx).alias("x")).unnest("x")
            parts.append(sub.with_columns(_num("pid"), _num("cpu"), _num("time")) if name == "lat" else sub)
    parts.append(slow.filter(~pl.col("form").is_in([n for n, _ in _BODY_FORMS]) | pl.col("form").is_null()))
    b = pl.concat(parts, how="diagonal_relaxed").sort("i")
    b = b.with_columns(
        [pl.lit(None, dtype=pl.String).alias(g) for g in _BODY_GROUPS if g not in b.columns]
    )
    unknown = b.filter(pl.col("form").is_null())
    if unknown.height:
        ctx.skip(ELIDED_REASON, int(unknown["is_elided"].sum()))
        ctx.skip("editor modeline", int(unknown["is_modeline"].sum()))
        ctx.skip(
            "unrecognised latency-trace line",
            int((~unknown["is_elided"] & ~unknown["is_modeline"]).sum()),
        )
        b = b.filter(pl.col("form").is_not_null())
    return b


def _common_columns(b: pl.DataFrame, st: _State) -> pl.DataFrame:
    """The fields every form has, whichever grammar printed them: ``rest`` (the body after
    the prologue, stripped), ``ts_ns`` (relative to the snapshot), ``cpu``, ``pid``,
    ``comm``, ``flags``, ``rtype`` (the -rt record tag)."""
    form = pl.col("form")
    rest = (
        pl.when(form == "verbose").then(pl.col("vrest"))
        .when(form == "lat").then(pl.col("rest"))
        .when(form == "v10").then(pl.col("orest"))
        .when(form == "context").then(pl.col("nbody"))
    )
    proc = pl.col("gproc").str.extract_groups(r"^(?P<pcomm>.*)-(?P<ppid>\d+)$")
    b = b.with_columns(rest=rest.str.strip_chars(), p=proc).unnest("p")
    ts = (
        pl.when(form == "lat").then(_num("time") * pl.when(pl.col("unit").is_not_null()).then(1000).otherwise(1))
        .when((form == "verbose") & pl.col("vms").is_not_null()).then(_ms_ns("vms", "vus"))
        .when(form == "verbose").then(_num("vticks"))
        .when(form == "v10").then(_ms_ns("oms", "ous"))
        .when(form == "switch").then(_ms_ns("sms", "sus"))
        .when(form == "graph").then(_num("grel") * 1000)
        .when(form == "context").then(_abs_ns(pl.col("nts")))
    )
    if b.filter((form == "lat") & pl.col("unit").is_null()).height or b.filter(
        (form == "verbose") & pl.col("vticks").is_not_null()
    ).height:
        st.counter_clock = True
    return b.with_columns(
        ts_ns=ts,
        cpu=pl.coalesce(_num("cpu"), _num("vcpu"), _num("gcpu"), _num("ncpu")),
        pid=pl.coalesce(_num("pid"), _num("vpid"), _num("ppid"), _num("npid")),
        comm=pl.coalesce(pl.col("comm"), pl.col("vcomm"), pl.col("pcomm"), pl.col("ncomm")).str.strip_chars(),
        flags=pl.coalesce(pl.col("flags"), pl.col("vflags"), pl.col("gflags"), pl.col("nflags"),
                          pl.col("opreempt")),
        rtype=pl.coalesce(pl.col("rtype"), pl.col("vtype")),
    )


def _lat_bodies(b: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """The bodies of the lines that are not display-graph's: ``func <-parent`` (``f``,
    ``p1`` / ``p2``; the compiled reader's where it read them), an event (``ev``,
    ``erest``), a stack trace or an -rt wakeup (``is_stack``, ``is_wake``, ``wake_op``) and
    the noise tracers' numbers."""
    read = b.filter(pl.col("fn").fill_null(False)).with_columns(
        is_stack=pl.lit(False), is_wake=pl.lit(False), wake_op=pl.lit(None, dtype=pl.String))
    rest = pl.col("rest")
    todo = b.filter(~pl.col("fn").fill_null(False)).drop("f", "p1").with_columns(
        fp=rest.str.extract_groups(_FUNC_PARENT_RE), ev=rest.str.extract_groups(_EVENT_RE),
        is_stack=rest.str.contains(r"^<(?:user )?stack trace>"), is_wake=rest.str.contains(_WAKE_RE),
        wake_op=rest.str.extract(_WAKE_RE, 1),
    ).unnest("fp", "ev")
    noise = noise_columns(rest, pl.col("ev"))
    context = pl.col("form") == "context"
    if todo.filter(context).height:
        todo = todo.with_columns(**{k: pl.when(context).then(v) for k, v in noise.items()})
    else:  # (the columns, without reading for none)
        kinds = todo.head(0).select(**noise).schema
        todo = todo.with_columns(*[pl.lit(None, dtype=t).alias(k) for k, t in kinds.items()])
    return pl.concat([read, todo], how="diagonal_relaxed").sort("i")


def _line_kind() -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """A latency line's kind, event name and function as printed, from its body: a stack
    trace, a -rt wakeup or switch (``+`` / ``==>``), a -rt special or wakeup record (tag
    types 3 and 6), a function call, another event, or a marker."""
    rest = pl.col("rest")
    is_stack, is_wake, wake_op = pl.col("is_stack"), pl.col("is_wake"), pl.col("wake_op")
    kind = (
        pl.when(is_stack).then(pl.lit(Kind.STACK))
        .when(is_wake).then(pl.lit(Kind.EVENT))
        .when(pl.col("rtype").is_in(["3", "6"])).then(pl.lit(Kind.EVENT))
        .when(pl.col("f").is_not_null() & (rest != "0")).then(pl.lit(Kind.FUNCTION))
        .when(pl.col("ev").is_not_null()).then(pl.lit(Kind.EVENT))
        .otherwise(pl.lit(Kind.MARKER))
    )
    event = (
        pl.when(is_wake & (wake_op == "+")).then(pl.lit("sched_wakeup"))
        .when(is_wake).then(pl.lit("sched_switch"))
        .when(pl.col("rtype") == "3").then(pl.lit("rt_special"))
        .when(pl.col("rtype") == "6").then(pl.lit("rt_wakeup"))
        .when(pl.col("ev").is_not_null() & ~is_stack).then(pl.col("ev"))
    )
    raw_func = pl.when(pl.col("rtype") == "3").then(rest.str.extract(r"^(\S+)", 1)).otherwise(pl.col("f"))
    return kind, event, raw_func


def _kinds_and_names(b: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """Every row's ``kind``, ``event``, ``body``, ``depth`` and ``dur_ns`` (display-graph)
    and its function and parent, canonical (``func``, ``parent``) and as printed when that
    differs (``raw_func``, ``raw_parent``)."""
    form = pl.col("form")
    lat_kind, event, raw_func = _line_kind()
    lat_forms = form.is_in(["lat", "verbose", "v10"])
    graph = form == "graph"
    kind = (
        pl.when(graph).then(pl.col("g_kind").fill_null(Kind.MARKER))
        .when(form == "frame").then(pl.lit("frame"))
        .when(form.is_in(["note", "switch"])).then(pl.lit(Kind.MARKER))
        .when(form == "context").then(pl.lit(Kind.EVENT))
        .otherwise(lat_kind)
    )
    b = b.with_columns(
        kind=kind,
        raw_func=pl.when(graph).then(pl.col("g_func")).when(lat_forms).then(raw_func),
        parent_raw=pl.when(lat_forms).then(pl.coalesce(pl.col("p1"), pl.col("p2"))),
        depth=pl.when(graph).then(pl.col("g_depth")),
        dur_ns=pl.when(graph).then(pl.col("g_dur_ns")),
        event=pl.when(lat_forms).then(event)
        .when(form == "context").then(pl.coalesce(pl.col("noise_event"), pl.col("ev"), pl.lit(ctx.meta.get("tracer")))),
        body=pl.when(graph).then(pl.col("g_tree")).when(form.is_in(["note", "switch"])).then(pl.col("text").str.strip_chars())
        .otherwise(pl.col("rest")),
    ).with_columns(
        # A marker ("0": an ip of 0, a note) names no function.
        raw_func=pl.when(pl.col("kind") != Kind.MARKER).then(pl.col("raw_func")),
        parent_raw=pl.when(pl.col("kind") != Kind.MARKER).then(pl.col("parent_raw")),
    )
    b = canonicalize(b, "raw_func", "func")  # (once per distinct name)
    return canonicalize(b, "parent_raw", "parent").rename({"parent_raw": "raw_parent"})


def _note_max_latency(b: pl.DataFrame, ctx: ParseContext) -> None:
    """The capture tools' "max_latency_us=N" note: the number kept for cross-checking."""
    notes = b.filter((pl.col("form") == "note") & pl.col("text").str.contains(r"max_latency_us=\d+"))
    if notes.height:
        ctx.meta["tracing_max_latency_us"] = int(
            notes["text"].str.extract(r"max_latency_us=(\d+)", 1).cast(pl.Int64)[-1]
        )


def _attach_stacks(b: pl.DataFrame, frame_lines: np.ndarray, frames: pl.Series, ctx: ParseContext) -> pl.DataFrame:
    """The " => func" frame lines (``frame_lines``, their indices in the chunk, and their
    symbols ``frames``) become the ``callchain`` of the row they follow (``b``, the chunk's
    other rows in file order); frames that follow no "<stack trace>" row are counted."""
    if not len(frame_lines):
        return b.with_columns(callchain=pl.lit(None, dtype=pl.List(pl.String)))
    order = np.argsort(frame_lines, kind="stable")
    frame_lines = frame_lines[order]
    owner = np.searchsorted(b["i"].to_numpy(), frame_lines, side="left") - 1  # the row before each frame
    stack = (b["kind"] == Kind.STACK).to_numpy()
    orphan = int((owner < 0).sum() + (~stack[owner[owner >= 0]]).sum())
    if orphan:
        ctx.skip("stack frame without a <stack trace> line", orphan)
    kept = owner >= 0
    names = by_value(frames.gather(order[kept]), lambda u: u.select(canonical_expr(pl.col("s")).alias("f")))["f"]
    count = np.bincount(owner[kept], minlength=b.height)
    offsets = np.zeros(b.height + 1, dtype=np.int64)
    np.cumsum(count, out=offsets[1:])
    chains = pa.LargeListArray.from_arrays(pa.array(offsets), names.to_arrow(),
                                           mask=pa.array(count == 0))
    return b.with_columns(callchain=pl.Series("callchain", chains).cast(pl.List(pl.String)))


def _sample_symbols(b: pl.DataFrame, st: _State) -> None:
    """Keep up to 20,000 symbols of the run (functions and stack frames) for naming its
    arch."""
    if sum(x.len() for x in st.syms) >= 20_000:
        return
    names = pl.concat([
        b.select(pl.coalesce("raw_func", "func")).to_series().drop_nulls(),
        b["callchain"].explode().drop_nulls() if "callchain" in b.columns else pl.Series([], dtype=pl.String),
    ])
    st.syms.append(names.head(20_000))


def _v10_cpu(b: pl.DataFrame, st: _State) -> pl.DataFrame:
    """A counter clock's v1.0 lines print no CPU: they take their window's."""
    v10 = b.filter(pl.col("form") == "v10")
    if not v10.height:
        return b
    win = _with_window(st)
    win_cpu = pl.DataFrame(
        {"snapshot": win["snapshot"], "win_cpu": [_int(v) for v in win["lcpu"].to_list()]},
        schema={"snapshot": pl.Int32, "win_cpu": pl.Int64},
    )
    return b.join(win_cpu, on="snapshot", how="left", maintain_order="left").with_columns(
        cpu=pl.coalesce(pl.col("cpu"), pl.when(pl.col("form") == "v10").then(pl.col("win_cpu"))))


def _assign_windows(b: pl.DataFrame, st: _State) -> pl.DataFrame:
    """Each row's ``window`` (its snapshot, when that has a latency header)."""
    has_window = _with_window(st)["snapshot"]
    return conform(b.with_columns(
        window=pl.when(pl.col("snapshot").is_in(has_window.implode())).then(pl.col("snapshot")),
        seq=pl.col("line"),
    ))


def _read_graph_bodies(b: pl.DataFrame) -> pl.DataFrame:
    """The display-graph lines' bodies (``gbody``) read by the call graph's reader:
    ``g_kind``, ``g_dur_ns``, ``g_depth``, ``g_func`` (as printed) and ``g_tree`` (the call
    tree as printed, stripped; an IRQ arrow's body), null on the other lines."""
    is_graph = b["form"] == "graph"
    rows = is_graph.arg_true()
    read = callgraph.read_bodies(b["gbody"].gather(rows)) if len(rows) else None
    cols = {"g_kind": ("kind", pl.String), "g_dur_ns": ("dur_ns", pl.Int64), "g_depth": ("depth", pl.Int32),
            "g_func": ("raw_func", pl.String)}
    out = {}
    for name, (src, dtype) in cols.items():
        col = pl.Series(name, [None] * b.height, dtype=dtype)
        out[name] = col.scatter(rows, read[src]) if read is not None else col
    tree = pl.col("gbody").str.splitn("|", 2).struct.field("field_1").str.strip_chars()
    whole = pl.col("gbody").str.strip_chars()  # (an IRQ arrow's line has no call tree)
    return b.with_columns(**out).with_columns(g_tree=pl.when(is_graph).then(pl.when(tree != "").then(tree).otherwise(whole)))


def _ms_ns(ms: str, frac: str) -> pl.Expr:
    """``%ld.%03ldms`` (columns ``ms`` and ``frac``) as ns."""
    return _num(ms) * 1_000_000 + pl.col(frac).str.pad_end(3, "0").str.slice(0, 3).cast(
        pl.Int64, strict=False
    ) * 1000


def _abs_ns(ts: pl.Expr) -> pl.Expr:
    """``secs.usecs`` as ns; a bare integer (counter clock) as it is."""
    parts = ts.str.split_exact(".", 1)
    secs = parts.struct.field("field_0").cast(pl.Int64, strict=False)
    frac = parts.struct.field("field_1")
    return pl.when(frac.is_null()).then(secs).otherwise(
        secs * 1_000_000_000 + frac.str.pad_end(9, "0").str.slice(0, 9).cast(pl.Int64, strict=False)
    )


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _finalize(st: _State, ctx: ParseContext, before: int | None = None) -> None:
    """Turn the headers of the snapshots numbered below ``before`` (all when None) into
    ``ctx.windows`` and run-level ``ctx.meta`` (the first snapshot that names each), and
    forget them: a file of many snapshots keeps only the current one's header in memory."""
    h = st.headers
    if before is not None:
        h, st.headers = h.filter(pl.col("snapshot") < before), h.filter(pl.col("snapshot") >= before)
    else:
        st.headers = h.clear()
    if not h.height:
        return
    h = h.with_columns(tracer=pl.coalesce("tracer", "vtracer"))
    first = h.select(pl.col("tracer", "kernel", "ncpus").drop_nulls().first())
    if first["tracer"][0] and "tracer" not in ctx.meta:
        ctx.meta["tracer"] = first["tracer"][0]
    if first["kernel"][0]:
        st.kernels.update(h["kernel"].drop_nulls().unique().to_list())
        ctx.meta.setdefault("kernel", first["kernel"][0])
    if first["ncpus"][0]:
        ctx.meta.setdefault("ncpus", int(first["ncpus"][0]))
    if "lat_flag_columns" not in ctx.meta:
        cols = next((c for c in map(_flag_columns, h["legend"].to_list()) if c), None)
        if cols:
            ctx.meta["lat_flag_columns"] = cols
    win = h.filter(pl.col("lat_us").is_not_null())
    model = win["model"].drop_nulls()
    if len(model):
        ctx.meta.setdefault("preempt_model", PREEMPT_MODELS.get(model[0], model[0]))
    ctx.windows.extend(_windows(win))


def _windows(h: pl.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``ctx.windows`` (WINDOW_SCHEMA keys) of the snapshots ``h``: the
    numbers exactly as the header prints them."""
    def ints(name: str, scale: int = 1) -> list[int | None]:
        return [None if v is None else int(v) * scale for v in h[name].to_list()]

    cols = {
        "window": h["snapshot"].to_list(),
        "tracer": h["tracer"].to_list(),
        "latency_ns": ints("lat_us", 1000),
        "cpu": ints("lcpu"),
        "pid": ints("tpid"),
        "comm": [v.strip() if v else None for v in h["tcomm"].to_list()],
        "started_at": h["started_at"].to_list(),
        "ended_at": h["ended_at"].to_list(),
        "entries_shown": ints("shown"),
        "entries_total": ints("total"),
        "preempt_model": h["model"].to_list(),
        "kernel": h["kernel"].to_list(),
        "version": [f"latency trace {v}" if v else None for v in h["version"].to_list()],
    }
    keys = list(WINDOW_SCHEMA)
    return [dict(zip(keys, row)) for row in zip(*(cols[k] for k in keys))]


def _finish(st: _State, ctx: ParseContext) -> None:
    """The last snapshots into ``ctx.windows``; run-level ``ctx.meta``."""
    _finalize(st, ctx)
    kernels = st.kernels
    if len(kernels) > 1:
        ctx.warn(f"snapshots from several kernels: {', '.join(sorted(kernels))}")
    ctx.meta.setdefault("time_unit", "ticks" if st.counter_clock else "ns")
    if st.graph:
        ctx.meta["span_source"] = "function_graph"
    if ctx.windows:
        ctx.meta["windows_relative_time"] = True
    if "arch" not in ctx.meta and st.syms:
        # The headers never name the arch; stack traces through arch-only entry code
        # (entry_SYSCALL_64, asm_exc_page_fault, ia64_leave_kernel) or ppc64 dot symbols do.
        arch = arch_from_symbols(pl.concat(st.syms))
        if arch:
            ctx.meta["arch"] = arch
            ctx.meta["arch_source"] = "symbols"


# -- the compiled reader of lat_print_generic() lines ---------------------------------------

_INT32_MAX = 2**31 - 1


_LATENCY_WORD = np.frombuffer(b"latency:", dtype=np.uint8)
_VERSION_WORDS = np.frombuffer(b" latency trace v", dtype=np.uint8)
_CMD_WORD = np.frombuffer(b"cmd", dtype=np.uint8)
_GRAPH_TIME = np.frombuffer(b" us |", dtype=np.uint8)
_ARROW = np.frombuffer(b"=>", dtype=np.uint8)
_STACK_WORDS = np.frombuffer(b"<stack trace>", dtype=np.uint8)
_USER_STACK_WORDS = np.frombuffer(b"<user stack trace>", dtype=np.uint8)


@njit(cache=True, nogil=True)
def _opens_elsewhere(buf: np.ndarray, a: int, e: int) -> bool:
    """A line (all printable ASCII, with no `` latency trace v`` and no ``(+``) that another
    grammar may claim before ``lat_print_generic()``'s: its first non-blank byte opens a
    header, help, legend or frame line (``# | \\ / _ = -``) or a -rt record tag (``(``), or
    it opens with ``latency:``, ``cmd`` and a blank, or display-graph's ``%llu us |``."""
    p = skip_spaces(buf, a, e)
    if p < e and buf[p] in (35, 124, 92, 47, 95, 61, 45, 40):
        return True
    _, q = read_uint(buf, p, e)
    if q > p and matches_at(buf, q, e, _GRAPH_TIME):
        return True
    if matches_at(buf, p, e, _CMD_WORD) and p + 3 < e and buf[p + 3] == 32:
        return True  # (the column help "#  cmd     pid", printed without its "#" before 2.6.29)
    return matches_at(buf, p, e, _LATENCY_WORD)


@njit(cache=True, nogil=True)
def _digits(buf: np.ndarray, at: int, end: int, most: int) -> tuple[int, int, bool]:
    """The decimal number at ``at``: (value, position after it, ok); not ok when it has
    more than ``most`` digits (the general path reads it)."""
    v, q = read_uint(buf, at, end)
    return v, q, q - at <= most and not (q < end and 48 <= buf[q] <= 57)


@njit(cache=True, nogil=True)
def _after_dash(buf: np.ndarray, d: int, e: int, out: np.ndarray) -> int:
    """``-%-7d %3d`` + the flags + `` %4lldus%c: `` (or the counter clock's `` %4lld: ``)
    after the dash at ``d``: 1 when read (``out``: pid, cpu, flags start and end, time,
    whether in us, rest start), 0 when the line does not continue so from this dash, -1
    when a number is longer than the schema's (the general path decides)."""
    pid, q, ok = _digits(buf, d + 1, e, 10)
    if q == d + 1:
        return 0
    if not ok or pid > _INT32_MAX:
        return -1
    p = skip_spaces(buf, q, e)
    if p == q:
        return 0
    cpu, q, ok = _digits(buf, p, e, 10)
    if q == p:
        return 0
    if not ok or cpu > _INT32_MAX:
        return -1
    if q >= e or buf[q] == 32:
        return 0
    fs = q
    while q < e and buf[q] != 32:
        q += 1
    fe = q
    p = skip_spaces(buf, q, e)
    if p == q:
        return 0
    time, q, ok = _digits(buf, p, e, 15)
    if q == p:
        return 0
    if not ok:
        return -1
    us = q + 1 < e and buf[q] == 117 and buf[q + 1] == 115
    if us:
        q += 2
        if q < e and buf[q] in (32, 33, 43, 35, 42, 64, 36):  # trace_find_mark()
            q += 1
        if q < e and buf[q] == 58:
            q += 1
    elif q < e and buf[q] == 58:
        q += 1
    else:
        return 0
    out[0], out[1], out[2], out[3], out[4], out[5], out[6] = pid, cpu, fs, fe, time, int(us), q
    return 1


@njit(cache=True, nogil=True)
def _read_fn(buf: np.ndarray, rs: int, re_: int) -> tuple[int, int, int, int]:
    """``print_fn_trace()``'s ``%ps <-%ps`` (or a lone ``%ps``) in the body ``[rs, re_)``:
    (function start, end, parent start, end; -1 for none).  A body of another shape (an
    address, a ``(parent)``, an event's ``name: ``, a stack trace) gives all -1: the general
    path reads it."""
    q = rs
    while q < re_ and buf[q] != 32:
        if buf[q] == 40:  # '('
            return -1, -1, -1, -1
        q += 1
    if q == rs or buf[rs] == 60 or buf[q - 1] == 58:  # ('<...>', or "name:" of an event)
        return -1, -1, -1, -1
    if q == re_:
        return rs, q, -1, -1
    p = skip_spaces(buf, q, re_)
    if not (p + 1 < re_ and buf[p] == 60 and buf[p + 1] == 45):  # "<-"
        return -1, -1, -1, -1
    p = skip_spaces(buf, p + 2, re_)
    r = p
    while r < re_ and buf[r] != 32:
        r += 1
    if r == p or r != re_:
        return -1, -1, -1, -1
    return rs, q, p, r


_HASH, _DASH, _EQUALS, _GT, _UNDERSCORE, _BAR, _SLASH = 35, 45, 61, 62, 95, 124, 47


#: what :func:`_shape` finds in a line
_NOT_PLAIN, _HAS_COLON, _HAS_VERSION, _HAS_DASH, _HAS_VERBOSE = 1, 2, 4, 8, 16
_HAS_PAREN, _HAS_Y = 32, 64
#: the bits each byte sets: outside printable ASCII and the space, ``:``, ``-``, ``(`` (of
#: ``(+``), ``y`` (of `` latency trace v``)
_BYTE_BITS = np.zeros(256, dtype=np.int64)
_BYTE_BITS[:32] = _BYTE_BITS[127:] = _NOT_PLAIN
_BYTE_BITS[ord(":")], _BYTE_BITS[ord("-")], _BYTE_BITS[ord("(")], _BYTE_BITS[ord("y")] = (
    _HAS_COLON, _HAS_DASH, _HAS_PAREN, _HAS_Y)
_VERBOSE_WORDS = np.frombuffer(b"(+", dtype=np.uint8)


@njit(cache=True, nogil=True)
def _shape(buf: np.ndarray, a: int, e: int) -> int:
    """What the line ``[a, e)`` holds, as bits: a byte outside printable ASCII and the
    space (:data:`_NOT_PLAIN`: the general path's white space and digits are Unicode's), a
    colon, a version line's `` latency trace v`` (the words without which no header line
    but the legend's can be read), a dash (without which no line is
    ``lat_print_generic()``'s), a verbose line's ``(+``.  One table look-up a byte; the
    words are looked for only in a line that has their rarest byte."""
    bits = 0
    for i in range(a, e):
        bits |= _BYTE_BITS[buf[i]]
    if bits & _HAS_PAREN and find_bytes(buf, a, e, _VERBOSE_WORDS) >= 0:
        bits |= _HAS_VERBOSE
    if bits & _HAS_Y and find_bytes(buf, a, e, _VERSION_WORDS) >= 0:
        bits |= _HAS_VERSION
    return bits


@njit(cache=True, nogil=True)
def _legend_word(buf: np.ndarray, a: int, e: int) -> tuple[int, int]:
    """The column name of a flag legend line (``#`` + ``[|/ ]*_-*=>`` + blanks + the name, as
    ``_LEGEND_RE`` reads it): its start and end, or -1, -1."""
    p = a + 1 if a < e and buf[a] == _HASH else a
    while p < e and (buf[p] == 32 or buf[p] == _BAR or buf[p] == _SLASH):
        p += 1
    if p >= e or buf[p] != _UNDERSCORE:
        return -1, -1
    p += 1
    while p < e and buf[p] == _DASH:
        p += 1
    if not (p + 1 < e and buf[p] == _EQUALS and buf[p + 1] == _GT):
        return -1, -1
    p = skip_spaces(buf, p + 2, e)
    q = p
    while q < e and buf[q] != 32:
        q += 1
    return (p, q) if q > p else (-1, -1)


@njit(cache=True, nogil=True)
def _read_lat(buf: np.ndarray, a: int, e: int, li: int, nums: np.ndarray, offs: np.ndarray,
              out: np.ndarray) -> int:
    """A ``lat_print_generic()`` + ``lat_print_timestamp()`` line (``%8.8s-%-7d %3d``, the
    flag columns, `` %4lldus%c: ``, then the body) into ``nums`` (pid, CPU, time, 1 when in
    us) and ``offs`` (comm, flags, rest, stripped; the function and parent of a ``func
    <-parent`` rest): :data:`_FN` for such a rest, :data:`_STACK` for ``<stack trace>``,
    :data:`_LAT` for another, 0 when the line
    is not one (or is one another grammar may claim).  The comm is what comes before the
    first dash from which the line reads on, as the general path's lazy ``(?P<comm>.*?)-``
    takes it."""
    if _opens_elsewhere(buf, a, e):
        return 0
    how = 0
    d = a
    while d < e:
        if buf[d] == 45:
            how = _after_dash(buf, d, e, out)
            if how != 0:
                break
        d += 1
    if how != 1:
        return 0
    cs = skip_spaces(buf, a, d)
    ce = skip_back_spaces(buf, cs, d)
    rs = skip_spaces(buf, out[6], e)
    re_ = skip_back_spaces(buf, rs, e)
    if (cs < ce and not (printable(buf[cs]) and printable(buf[ce - 1]))) or (
            rs < re_ and not (printable(buf[rs]) and printable(buf[re_ - 1]))):
        return 0  # (an edge the general path strips otherwise)
    nums[0, li], nums[1, li], nums[2, li], nums[3, li] = out[0], out[1], out[4], out[5]
    offs[0, li], offs[1, li] = cs, ce
    offs[2, li], offs[3, li] = out[2], out[3]
    offs[4, li], offs[5, li] = rs, re_
    if matches_at(buf, rs, re_, _STACK_WORDS) or matches_at(buf, rs, re_, _USER_STACK_WORDS):
        return _STACK  # (trace_stack_print(), trace_user_stack_print())
    f0, f1, p0, p1 = _read_fn(buf, rs, re_)
    if f0 < 0 or (p0 < 0 and f1 - f0 == 1 and buf[f0] == 48):  # (a lone "0": an ip of 0, a marker)
        return _LAT
    offs[6, li], offs[7, li], offs[8, li], offs[9, li] = f0, f1, p0, p1
    return _FN


@njit(cache=True, nogil=True)
def _scan_lines(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """What each line of a chunk is, as far as the compiled reader can tell without doubt:
    a ``lat_print_generic()`` line (:data:`_FN` when its body is ``func <-parent``, else
    :data:`_LAT`; its fields as :func:`_read_lat` reads them), a stack frame (`` => sym``:
    :data:`_FRAME`, the symbol at ``offs[4:6]``), a blank line, a ``#`` help line that no
    header grammar reads (:data:`_HELP`), a flag legend line (:data:`_LEGEND`, the column's
    name at ``offs[4:6]``), or 0: a line for the general path (every other header line, and
    any line with a byte outside printable ASCII).  Also whether any byte is outside ASCII."""
    n = len(starts)
    code = np.zeros(n, dtype=np.int8)
    nums = np.full((4, n), -1, dtype=np.int64)  # pid, cpu, time, in us
    offs = np.full((10, n), -1, dtype=np.int64)  # comm, flags, rest, function, parent: start/end pairs
    out = np.empty(7, dtype=np.int64)
    high = False
    for li in range(n):
        a, e = starts[li], ends[li]
        bits = _shape(buf, a, e)
        if bits & _NOT_PLAIN:
            for i in range(a, e):
                if buf[i] > 127:
                    high = True
            continue
        p = skip_spaces(buf, a, e)
        if p == e:
            code[li] = _BLANK
        elif buf[a] == _HASH:
            if not bits & (_HAS_COLON | _HAS_VERSION):
                w0, w1 = _legend_word(buf, a, e)
                if w0 >= 0:
                    code[li], offs[4, li], offs[5, li] = _LEGEND, w0, w1
                elif find_bytes(buf, a, e, _ARROW) < 0:
                    code[li] = _HELP
        elif buf[p] == _EQUALS:
            if p + 1 < e and buf[p + 1] == _GT and not bits & (_HAS_COLON | _HAS_VERSION | _HAS_DASH):
                q = skip_spaces(buf, p + 2, e)
                if q < e:
                    code[li], offs[4, li], offs[5, li] = _FRAME, q, skip_back_spaces(buf, q, e)
        elif bits & _HAS_DASH and not bits & (_HAS_VERSION | _HAS_VERBOSE):
            code[li] = _read_lat(buf, a, e, li, nums, offs, out)
    return code, nums, offs, high
