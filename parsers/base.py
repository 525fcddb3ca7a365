"""What every parser shares: the context it reports into, and the error it raises.

A parser knows one input format and nothing about Parquet, reports or the model.  A text
parser is a function ``parse(chunks, ctx)`` over :class:`LineChunk` objects (bounded pieces
of the input, already split into lines) that yields polars frames in the common event schema
(:data:`tracekit.schema.EVENT_SCHEMA`; use :func:`tracekit.schema.conform`).  A binary parser
is ``parse_file(path, ctx)`` with the same output.  Neither pairs entries with exits: that is
:mod:`tracekit.spans`' job.

What a parser learns about the trace as a whole (arch, kernel, tracer, clock, header
numbers) goes into ``ctx.meta``; latency snapshots into ``ctx.windows``; lines it cannot
read are counted with :meth:`ParseContext.skip`, never dropped silently; input it cannot read
at all raises :class:`ParseError` with file, line and reason.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from tracekit.errors import ParseError

__all__ = ["LineChunk", "ParseContext", "ParseError", "read_trace_header", "LOST_EVENTS_RE", "ELIDED_RE",
           "ELIDED_REASON", "STACK_FRAME_RE", "trailing_stack", "timestamp_ns_expr"]


class LineChunk:
    """A bounded piece of a text input: ``lines`` (a polars String series, no newlines) of
    which the first is line number ``first_line`` (1-based) of the file.

    ``raw``, when set, is the chunk's bytes (whole lines, no carriage returns): a parser may
    hand them to polars' CSV reader to split fields natively, and then never needs
    ``lines``, which are split from ``raw`` only when first asked for."""

    __slots__ = ("first_line", "_lines", "is_last", "raw", "n_lines", "newlines", "_bounds", "numbers")

    def __init__(self, first_line: int, lines: pl.Series | None = None, is_last: bool = False,
                 raw: bytes | None = None, numbers: pl.Series | None = None) -> None:
        if lines is None and raw is None:
            raise ValueError("a LineChunk needs lines or raw bytes")
        self.first_line = first_line
        #: the file's line number of each line, when the lines are a selection of the
        #: file's (one input of a several-input trace-cmd report); None: consecutive
        self.numbers = numbers
        self._lines = lines
        self.is_last = is_last
        self.raw = raw
        #: offsets of the newlines in ``raw`` (None without raw)
        self.newlines: np.ndarray | None = None
        self._bounds: tuple[np.ndarray, np.ndarray] | None = None
        if lines is not None:
            self.n_lines = len(lines)
        else:
            self.newlines = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 10)
            self.n_lines = len(self.newlines) + (0 if not raw or raw.endswith(b"\n") else 1)
        if numbers is not None and len(numbers) != self.n_lines:
            raise ValueError("a LineChunk's line numbers go with its lines, one each")

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Where each line starts in ``raw`` and where it ends (its newline, or the end of
        the bytes for a last line without one); worked out once, from the newline offsets."""
        if self._bounds is None:
            ends = self.newlines
            if ends is None:
                ends = np.flatnonzero(np.frombuffer(self.raw, dtype=np.uint8) == 10)
            if len(ends) < self.n_lines:
                ends = np.append(ends, len(self.raw))
            ends = ends[: self.n_lines]
            starts = np.empty_like(ends)
            starts[:1] = 0
            starts[1:] = ends[:-1] + 1
            self._bounds = (starts, ends)
        return self._bounds

    def _first_bytes(self) -> np.ndarray:
        """The first byte of every line (its newline for an empty one)."""
        buf = np.frombuffer(self.raw, dtype=np.uint8)
        starts, _ = self.bounds()
        return buf[np.minimum(starts, len(buf) - 1)]

    def lines_starting_with(self, byte: bytes) -> pl.Series:
        """The lines that begin with ``byte`` (one byte: ``b"#"`` for header lines), in
        order; from the bytes when the chunk has them, without splitting the other lines."""
        if self.raw is None:
            return self.lines.filter(self.lines.str.starts_with(byte.decode("latin-1")))
        hit = np.flatnonzero(self._first_bytes() == byte[0]) if self.raw else []
        if not len(hit):
            return pl.Series("text", [], dtype=pl.String)
        from tracekit.io import split_lines

        starts, ends = self.bounds()
        return split_lines(b"\n".join(self.raw[starts[j]:ends[j]] for j in hit.tolist()))

    def any_line_starts_with(self, byte: bytes) -> bool:
        """Whether some line begins with ``byte`` (one byte: ``b"#"`` for header lines);
        from the newline offsets when the chunk has its bytes, so that only the first byte
        of each line is looked at."""
        if self.raw is None:
            return bool(self.lines.str.starts_with(byte.decode("latin-1")).any())
        return bool(self.raw) and bool((self._first_bytes() == byte[0]).any())

    @property
    def lines(self) -> pl.Series:
        if self._lines is None:
            from tracekit.io import split_lines

            self._lines = split_lines(self.raw)
        return self._lines

    @property
    def line_numbers(self) -> pl.Series:
        if self.numbers is not None:
            return self.numbers.cast(pl.Int64).alias("line")
        return pl.int_range(
            self.first_line, self.first_line + self.n_lines, dtype=pl.Int64, eager=True
        ).alias("line")


@dataclass
class ParseContext:
    """Everything a parser reports besides its event frames.

    ``meta`` keys with a meaning elsewhere: ``tracer``, ``arch``, ``kernel``, ``clock``,
    ``clock_hz``, ``ncpus``, ``preempt_model``, ``entries_in_buffer``, ``entries_written``,
    ``page_size``, ``time_unit`` ("ns" or "ticks").  Anything else is kept in runs.meta.
    """

    path: str
    meta: dict[str, Any] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    lost_events: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        """Count ``n`` lines that were not understood, by ``reason``."""
        if n:
            self.skipped[reason] += int(n)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def child(self) -> "ParseContext":
        """A fresh context for one chunk parsed apart from the others (in another thread);
        :meth:`merge` it back in file order."""
        return ParseContext(self.path, meta={}, options=self.options)

    def merge(self, other: "ParseContext") -> None:
        """Take what a :meth:`child` learnt: counts add up, the first value of a meta key
        (in file order, when children are merged in order) stays."""
        for k, v in other.meta.items():
            self.meta.setdefault(k, v)
        self.skipped.update(other.skipped)
        for w in other.warnings:
            self.warn(w)
        self.windows.extend(other.windows)
        self.lost_events += other.lost_events

    def error(self, line: int | None, reason: str) -> ParseError:
        return ParseError(self.path, line, reason)


#: ``CPU:%d [LOST %lu EVENTS]``, printed by ``print_trace_line()`` (kernel/trace/trace.c)
#: before the next event of a CPU whose buffer overwrote events, whatever the tracer.
LOST_EVENTS_RE = r"^\s*CPU:(?P<cpu>\d+) \[LOST (?P<n>\d+) EVENTS\]\s*$"


#: An editor's elision in a published trace ("[...]", "...", "[ omitted ]"): not a trace
#: line; counted as skipped under :data:`ELIDED_REASON`.
ELIDED_RE = r"^\s*\[(?:\.\.\.|\s*omitted[^\]]*)\]\s*$|^\s*\.{3,}\s*$"
ELIDED_REASON = "elided line ([...])"


#: A stack trace's frame line: `` => func`` (the kernel's ``trace_stack_print()``), ``=> func
#: (addr)`` (trace-cmd's), ``=> <00007f...>`` (a user stack without symbols).
STACK_FRAME_RE = r"^\s*=>\s*\S"


_FRAME_LINE = re.compile(STACK_FRAME_RE.encode())


def trailing_stack(raw: bytes) -> int:
    """Where the last record of ``raw`` (whole lines) begins when its stack frames may go
    on after ``raw``: the last line that says something is a `` => func`` frame or a
    ``<stack trace>`` record (the kernel's ``trace_stack_print()``, trace-cmd's
    ``kernel_stack``); else 0, also when that record is the whole of ``raw``.  A chunk cut
    there hands the record and its frames to the next chunk whole."""
    end = len(raw) - 1 if raw.endswith(b"\n") else len(raw)
    solid = False
    while end >= 0:
        start = raw.rfind(b"\n", 0, end) + 1
        line = raw[start:end]
        if line.strip():
            frame = _FRAME_LINE.match(line) is not None
            if not solid:
                solid = True
                if not frame and b"stack trace>" not in line:
                    return 0
            if not frame:
                return start
        if start == 0:
            return 0
        end = start - 1
    return 0


def timestamp_ns_expr(ts: pl.Expr) -> pl.Expr:
    """A trace timestamp as an integer: ``secs.usecs`` (``%5lu.%06lu``, or any number of
    fraction digits) in ns; a bare integer (the ``%12llu`` of counter clocks such as x86-tsc)
    is kept as it is, in clock ticks."""
    parts = ts.str.split_exact(".", 1)
    secs = parts.struct.field("field_0").cast(pl.Int64, strict=False)
    frac = parts.struct.field("field_1")
    return (
        pl.when(frac.is_null())
        .then(secs)
        .otherwise(secs * 1_000_000_000 + frac.str.pad_end(9, "0").str.slice(0, 9).cast(pl.Int64, strict=False))
    )


def read_trace_header(lines: pl.Series, ctx: ParseContext) -> pl.Series:
    """Read the ``#`` header the kernel's ``trace`` file starts with (``print_event_info()``
    and the tracer's ``print_header``, kernel/trace/trace.c) into ``ctx.meta``: the tracer,
    ``entries-in-buffer/entries-written: %lu/%lu   #P:%d`` (written beyond in-buffer means
    events were overwritten), the CPU count.  Returns the header lines, for the caller's own
    fields."""
    hdr = lines.filter(lines.str.starts_with("#"))
    if hdr.is_empty():
        return hdr
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
    return hdr
