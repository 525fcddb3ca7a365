"""The records of the OS-noise tracers, whichever file they are read from.

hwlat, osnoise and timerlat print their own bodies after the usual context in the kernel's
``trace`` file (``trace_hwlat_print()``, ``trace_osnoise_print()``,
``trace_timerlat_print()`` in kernel/trace/trace_output.c)::

    #1     inner/outer(us):   12/14    ts:1499801089.066141940 count:6       (hwlat)
    1000000        190  99.98100       9     18      0   1007     18      1  (osnoise)
    #1     context    irq timer_latency       932 ns                         (timerlat)

with the formats hwlat ``"#%-5u inner/outer(us): %4llu/%-5llu ts:%lld.%09ld count:%d"``
(then `` nmi-total:%llu`` and `` nmi-count:%u`` when NMIs hit the sample; ``count:`` is
absent before 5.x), osnoise ``"%llu %10llu %3llu.%05llu %7llu"`` (runtime, noise, % of the
CPU available, max single noise, all in us) then five ``" %6u"`` interference counters (hw,
nmi, irq, softirq, thread), timerlat ``"#%-5u context %6s timer_latency %9llu ns"``.
Readers of the binary records see them through the events' format files instead
(kernel/trace/trace_entries.h): fields ``seqnum``, ``context``, ``timer_latency``;
``duration``, ``outer_duration``; ``noise``, ``runtime``, ``max_sample``, ``hw_count`` ...
(``field=value`` in trace.dat bodies and ``trace-cmd report -R``), printed by the format's
``F_printk`` as ``seq:%u context:%d timer_latency:%llu``, ``seq:%u ts:... inner:%llu
outer:%llu ...``, ``noise:%llu max_sample:%llu hw:%u nmi:%u irq:%u softirq:%u thread:%u``.
The ``osnoise:*`` tracepoints print ``... duration %llu ns`` (include/trace/events/osnoise.h).

:func:`noise_columns` turns any of these into the event name and the numeric columns of
:data:`tracekit.schema.EVENT_SCHEMA` (every time in ns): one record, one kind and the same
numbers, whether the file has the tracer's ``#`` header (read by the latency parser) or not
(a ``trace_pipe`` excerpt, read by the ftrace parser), or comes from trace-cmd.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from tracekit.jit import njit

from tracekit.parsers.scan import DOT, SPACE, digits_end, read_uint, skip_spaces, strings

__all__ = ["NOISE_EVENTS", "NOISE_TRACERS", "NOISE_COLUMNS", "noise_columns", "read_printed", "printed_columns",
           "PRINTED_NUMBERS", "PRINTED_TRACERS"]

#: The columns :func:`noise_columns` fills, as the parsers select them.
NOISE_COLUMNS = ("seqnum", "latency_ns", "outer_latency_ns", "runtime_ns", "noise_ns",
                 "max_noise_ns", "timer_context", "interference")
#: The tracers' own records (their event names in format files and trace-cmd output).
NOISE_TRACERS = frozenset({"hwlat", "osnoise", "timerlat"})
#: The osnoise tracepoints and the duration their print fmt ends with.
NOISE_EVENTS = frozenset({"nmi_noise", "irq_noise", "softirq_noise", "thread_noise", "sample_threshold"})

_HWLAT_RE = (
    r"^#(?P<h_seq>\d+)\s+inner/outer\(us\):\s*(?P<h_inner>\d+)/(?P<h_outer>\d+)"
    r"(?:\s+ts:\d+\.\d+)?(?:\s+count:\d+)?(?:\s+nmi-total:\d+)?(?:\s+nmi-count:\d+)?\s*$"
)
_OSNOISE_RE = (
    r"^(?P<o_runtime>\d+)\s+(?P<o_noise>\d+)\s+\d+\.\d+\s+(?P<o_max>\d+)\s+(?P<o_hw>\d+)\s+"
    r"(?P<o_nmi>\d+)\s+(?P<o_irq>\d+)\s+(?P<o_softirq>\d+)\s+(?P<o_thread>\d+)\s*$"
)
_TIMERLAT_RE = r"^#(?P<t_seq>\d+)\s+context\s+(?P<t_ctx>\S+)\s+timer_latency\s+(?P<t_lat>\d+)\s+ns\s*$"
_TP_DURATION_RE = r"\bduration (\d+) ns\b"
#: timerlat's ``context`` field, by value (``timerlat_lat_context[]``, trace_output.c).
_TIMERLAT_CONTEXTS = {"0": "irq", "1": "thread", "2": "user-ret"}


def _n(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.Int64, strict=False)


def _field(body: pl.Expr, *names: str) -> pl.Expr:
    """A numeric field of a record rendered from its format: ``name=value`` (a trace.dat
    body, ``report -R``) or ``name:value`` (the format's F_printk), under any of ``names``."""
    alt = "|".join(names)
    return _n(body.str.extract(rf"(?:^|\s)(?:{alt})[=:](\d+)\b", 1))


def noise_columns(body: pl.Expr, event: pl.Expr) -> dict[str, pl.Expr]:
    """For a record's ``body`` (the text after the context's ``: ``, or after trace-cmd's
    event name) and its event name ``event`` (null when the body is not ``name: fields``):
    ``noise_event`` ("hwlat", "osnoise", "timerlat", the tracepoint's name, or null for
    every other record) and the numeric columns: ``seqnum``, ``latency_ns`` (timerlat's
    timer_latency, hwlat's inner latency), ``outer_latency_ns`` (hwlat), ``runtime_ns``,
    ``noise_ns`` (osnoise's noise in the period, or a tracepoint's duration),
    ``max_noise_ns`` (osnoise's max single noise), ``timer_context`` (timerlat: irq, thread,
    user-ret) and ``interference`` (osnoise's hw, nmi, irq, softirq and thread counters)."""
    h = body.str.extract_groups(_HWLAT_RE)
    o = body.str.extract_groups(_OSNOISE_RE)
    t = body.str.extract_groups(_TIMERLAT_RE)
    is_h = h.struct.field("h_seq").is_not_null()
    is_o = o.struct.field("o_runtime").is_not_null()
    is_t = t.struct.field("t_seq").is_not_null()
    is_tp = event.is_in(list(NOISE_EVENTS))
    # the records as their format files render them, named by the event
    rec_h = (event == "hwlat") & ~is_h
    rec_o = (event == "osnoise") & ~is_o
    rec_t = (event == "timerlat") & ~is_t
    us = 1000

    def counter(printed: str, *names: str) -> pl.Expr:
        return pl.when(is_o).then(_n(o.struct.field(printed))).when(rec_o).then(_field(body, *names))

    return {
        "noise_event": pl.when(is_h | rec_h).then(pl.lit("hwlat"))
        .when(is_o | rec_o).then(pl.lit("osnoise"))
        .when(is_t | rec_t).then(pl.lit("timerlat"))
        .when(is_tp).then(event),
        "seqnum": pl.when(is_h).then(_n(h.struct.field("h_seq")))
        .when(is_t).then(_n(t.struct.field("t_seq")))
        .when(rec_h | rec_t).then(_field(body, "seqnum", "seq")),
        "latency_ns": pl.when(is_t).then(_n(t.struct.field("t_lat")))
        .when(is_h).then(_n(h.struct.field("h_inner")) * us)
        .when(rec_t).then(_field(body, "timer_latency"))
        .when(rec_h).then(_field(body, "duration", "inner") * us),
        "outer_latency_ns": pl.when(is_h).then(_n(h.struct.field("h_outer")) * us)
        .when(rec_h).then(_field(body, "outer_duration", "outer") * us),
        "runtime_ns": pl.when(is_o).then(_n(o.struct.field("o_runtime")) * us)
        .when(rec_o).then(_field(body, "runtime") * us),
        "noise_ns": pl.when(is_tp).then(_n(body.str.extract(_TP_DURATION_RE, 1)))
        .when(is_o).then(_n(o.struct.field("o_noise")) * us)
        .when(rec_o).then(_field(body, "noise") * us),
        "max_noise_ns": pl.when(is_o).then(_n(o.struct.field("o_max")) * us)
        .when(rec_o).then(_field(body, "max_sample") * us),
        "timer_context": pl.when(is_t).then(t.struct.field("t_ctx"))
        .when(rec_t).then(_field(body, "context").cast(pl.String).replace_strict(
            _TIMERLAT_CONTEXTS, default=None, return_dtype=pl.String)),
        "interference": pl.when(is_o | rec_o).then(pl.struct(
            hw=counter("o_hw", "hw_count", "hw"),
            nmi=counter("o_nmi", "nmi_count", "nmi"),
            irq=counter("o_irq", "irq_count", "irq"),
            softirq=counter("o_softirq", "softirq_count", "softirq"),
            thread=counter("o_thread", "thread_count", "thread"),
        )),
    }


# -- the compiled reader of the tracers' own printed records ----------------------------------

#: What :func:`read_printed` finds, by row of its ``nums`` array: the numbers of the schema's
#: noise columns (in ns) and osnoise's interference counters.
PRINTED_NUMBERS = ("seqnum", "latency_ns", "outer_latency_ns", "runtime_ns", "noise_ns", "max_noise_ns",
                   "hw", "nmi", "irq", "softirq", "thread")
#: The tracer of each code :func:`read_printed` returns (0: none of them).
PRINTED_TRACERS = (None, "hwlat", "osnoise", "timerlat")
_HWLAT, _OSNOISE, _TIMERLAT = 1, 2, 3
_US = 1000
#: more digits than this are the general path's to read (a number in us times 1000 must fit 63 bits)
_MAX_DIGITS = 15


@njit(cache=True, nogil=True)
def _number(buf: np.ndarray, at: int, end: int) -> tuple[int, int]:
    """The decimal number at ``at``: (value, position after it); the position is -1 when
    there is none or it is too long to be read here."""
    v, q = read_uint(buf, at, end)
    if q == at or q - at > _MAX_DIGITS:
        return 0, -1
    return v, q


@njit(cache=True, nogil=True)
def _word(buf: np.ndarray, at: int, end: int, word: str) -> int:
    """``word`` (ASCII) at ``at``: the position after it, or -1."""
    if at + len(word) > end:
        return -1
    for k in range(len(word)):
        if buf[at + k] != ord(word[k]):
            return -1
    return at + len(word)


@njit(cache=True, nogil=True)
def _gap(buf: np.ndarray, at: int, end: int) -> int:
    """One or more spaces at ``at``: the position after them, or -1."""
    q = skip_spaces(buf, at, end)
    return q if q > at else -1


@njit(cache=True, nogil=True)
def _hwlat(buf, b, e, li, nums) -> bool:
    """``#%-5u inner/outer(us): %4llu/%-5llu`` then `` ts:%lld.%09ld``, `` count:%d``,
    `` nmi-total:%llu`` and `` nmi-count:%u``, each when printed (``trace_hwlat_print()``)."""
    seq, p = _number(buf, b + 1, e)
    if p < 0:
        return False
    p = _gap(buf, p, e)
    p = _word(buf, p, e, "inner/outer(us):") if p >= 0 else -1
    if p < 0:
        return False
    inner, p = _number(buf, skip_spaces(buf, p, e), e)
    if p < 0 or p >= e or buf[p] != 47:  # '/'
        return False
    outer, p = _number(buf, p + 1, e)
    if p < 0:
        return False
    for part in ("ts:", "count:", "nmi-total:", "nmi-count:"):
        q = _gap(buf, p, e)
        q = _word(buf, q, e, part) if q >= 0 else -1
        if q < 0:
            continue
        r = digits_end(buf, q, e)
        if r == q:
            continue
        if part == "ts:":  # "%lld.%09ld"
            if r >= e or buf[r] != DOT or digits_end(buf, r + 1, e) == r + 1:
                continue
            r = digits_end(buf, r + 1, e)
        p = r
    if p != e:
        return False
    nums[0, li] = seq
    nums[1, li] = inner * _US
    nums[2, li] = outer * _US
    return True


@njit(cache=True, nogil=True)
def _osnoise(buf, b, e, li, nums) -> bool:
    """``%llu %10llu %3llu.%05llu %7llu`` (runtime, noise, % of the CPU available, max
    single noise, in us) then five `` %6u`` counters (``trace_osnoise_print()``)."""
    vals = np.empty(8, dtype=np.int64)
    p = b
    for k in range(9):
        if k:
            p = _gap(buf, p, e)
            if p < 0:
                return False
        if k == 2:  # the percentage: checked, not kept
            q = digits_end(buf, p, e)
            if q == p or q >= e or buf[q] != DOT:
                return False
            p = digits_end(buf, q + 1, e)
            if p == q + 1:
                return False
            continue
        v, p = _number(buf, p, e)
        if p < 0:
            return False
        vals[k if k < 2 else k - 1] = v
    if p != e:
        return False
    nums[3, li] = vals[0] * _US
    nums[4, li] = vals[1] * _US
    nums[5, li] = vals[2] * _US
    for k in range(5):
        nums[6 + k, li] = vals[3 + k]
    return True


@njit(cache=True, nogil=True)
def _timerlat(buf, b, e, li, nums) -> bool:
    """``#%-5u context %6s timer_latency %9llu ns`` (``trace_timerlat_print()``)."""
    seq, p = _number(buf, b + 1, e)
    if p < 0:
        return False
    p = _gap(buf, p, e)
    p = _word(buf, p, e, "context") if p >= 0 else -1
    p = _gap(buf, p, e) if p >= 0 else -1
    if p < 0:
        return False
    c = p
    while p < e and buf[p] != SPACE:
        p += 1
    c_end = p
    p = _gap(buf, p, e)
    p = _word(buf, p, e, "timer_latency") if p >= 0 else -1
    p = _gap(buf, p, e) if p >= 0 else -1
    if p < 0:
        return False
    lat, p = _number(buf, p, e)
    p = _gap(buf, p, e) if p >= 0 else -1
    if p < 0 or _word(buf, p, e, "ns") != e:
        return False
    nums[0, li] = seq
    nums[1, li] = lat
    nums[len(PRINTED_NUMBERS), li] = c
    nums[len(PRINTED_NUMBERS) + 1, li] = c_end
    return True


@njit(cache=True, nogil=True)
def read_printed(buf, b, e, li, nums) -> int:
    """The record of hwlat, osnoise or timerlat printed by the tracer in ``[b, e)`` (a
    body without trailing blanks, of printable ASCII and spaces): its tracer code
    (:data:`PRINTED_TRACERS`), its numbers stored in column ``li`` of ``nums`` (rows
    :data:`PRINTED_NUMBERS`, then the (start, end) of timerlat's context); 0 when it is
    none of them."""
    if b >= e:
        return 0
    if buf[b] == 35:  # '#'
        if _hwlat(buf, b, e, li, nums):
            return _HWLAT
        if _timerlat(buf, b, e, li, nums):
            return _TIMERLAT
        return 0
    if 48 <= buf[b] <= 57 and _osnoise(buf, b, e, li, nums):
        return _OSNOISE
    return 0


def printed_columns(raw: bytes, tracer: np.ndarray, nums: np.ndarray) -> dict[str, pl.Series]:
    """The columns of :data:`NOISE_COLUMNS` (and ``noise_event``) of rows read by
    :func:`read_printed` from ``raw``: ``tracer`` its code per row (0 for rows of other
    records), ``nums`` what it stored (a column per row)."""
    has = {t: tracer == code for code, t in enumerate(PRINTED_TRACERS) if t}
    out = {"noise_event": pl.Series("noise_event", PRINTED_TRACERS, dtype=pl.String).gather(
        pl.Series(tracer, dtype=pl.UInt32)).alias("noise_event")}
    for i, name in enumerate(PRINTED_NUMBERS[:6]):
        out[name] = pl.Series(name, np.ma.masked_array(nums[i], nums[i] < 0), dtype=pl.Int64)
    k = len(PRINTED_NUMBERS)
    out["timer_context"] = strings(raw, np.where(has["timerlat"], nums[k], -1), nums[k + 1], "timer_context")
    counters = pl.DataFrame({k: pl.Series(k, nums[6 + i], dtype=pl.Int64) for i, k in enumerate(PRINTED_NUMBERS[6:])})
    out["interference"] = counters.with_columns(_osnoise=has["osnoise"]).select(
        pl.when(pl.col("_osnoise")).then(pl.struct(PRINTED_NUMBERS[6:])).alias("interference")).to_series()
    return out
