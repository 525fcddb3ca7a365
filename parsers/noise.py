"""The records of the OS-noise tracers, whichever file they are read from: hwlat, osnoise and
timerlat print their own bodies after the usual context (``trace_hwlat_print()``,
``trace_osnoise_print()``, ``trace_timerlat_print()`` in kernel/trace/trace_output.c), and
the ``osnoise:*`` tracepoints print ``... duration %llu ns`` (include/trace/events/osnoise.h)::

    #1     inner/outer(us):   12/14    ts:1499801089.066141940 count:6       (hwlat)
    1000000        190  99.98100       9     18      0   1007     18      1  (osnoise)
    #1     context    irq timer_latency       932 ns                         (timerlat)
    irq_noise: local_timer:236 start 5789.857529929 duration 1845 ns         (osnoise:irq_noise)

The printers' formats: hwlat ``"#%-5u inner/outer(us): %4llu/%-5llu ts:%lld.%09ld count:%d"``
(then `` nmi-total:%llu`` and `` nmi-count:%u`` when NMIs hit the sample; ``count:`` is
absent before 5.x), osnoise ``"%llu %10llu %3llu.%05llu %7llu"`` (runtime, noise, % of the
CPU available, max single noise, all in us) then five ``" %6u"`` interference counters (hw,
nmi, irq, softirq, thread), timerlat ``"#%-5u context %6s timer_latency %9llu ns"``.

:func:`noise_columns` turns a body into the event name and the numeric columns of
:data:`tracekit.schema.EVENT_SCHEMA` (every time in ns), the same whether the file has the
tracer's ``#`` header (read by the latency parser) or not (a ``trace_pipe`` excerpt, read by
the ftrace parser): one record, one kind.
"""

from __future__ import annotations

import re

import polars as pl

__all__ = ["NOISE_EVENTS", "NOISE_COLUMNS", "noise_columns", "NOISE_BODY_RE"]

#: The columns :func:`noise_columns` fills, as the parsers select them.
NOISE_COLUMNS = ("seqnum", "latency_ns", "outer_latency_ns", "runtime_ns", "noise_ns",
                 "max_noise_ns", "timer_context", "interference")

_HWLAT_RE = (
    r"^#(?P<h_seq>\d+)\s+inner/outer\(us\):\s*(?P<h_inner>\d+)/(?P<h_outer>\d+)\s+"
    r"ts:\d+\.\d+(?:\s+count:(?P<h_count>\d+))?(?:\s+nmi-total:\d+)?(?:\s+nmi-count:(?P<h_nmi>\d+))?\s*$"
)
_OSNOISE_RE = (
    r"^(?P<o_runtime>\d+)\s+(?P<o_noise>\d+)\s+\d+\.\d+\s+(?P<o_max>\d+)\s+(?P<o_hw>\d+)\s+"
    r"(?P<o_nmi>\d+)\s+(?P<o_irq>\d+)\s+(?P<o_sirq>\d+)\s+(?P<o_thread>\d+)\s*$"
)
_TIMERLAT_RE = r"^#(?P<t_seq>\d+)\s+context\s+(?P<t_ctx>\S+)\s+timer_latency\s+(?P<t_lat>\d+)\s+ns\s*$"
#: The osnoise tracepoints and the duration their print fmt ends with.
NOISE_EVENTS = frozenset({"nmi_noise", "irq_noise", "softirq_noise", "thread_noise", "sample_threshold"})
_TP_DURATION_RE = r"\bduration (\d+) ns\b"
def _strip_names(rx: str) -> str:
    """``rx`` without its group names (to combine regexes that share none)."""
    return re.sub(r"\(\?P<\w+>", "(?:", rx)


#: Any of the three tracers' bodies (for classification).
NOISE_BODY_RE = "|".join(_strip_names(rx) for rx in (_HWLAT_RE, _OSNOISE_RE, _TIMERLAT_RE))


def _n(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.Int64, strict=False)


def noise_columns(body: pl.Expr, event: pl.Expr) -> dict[str, pl.Expr]:
    """For a record's ``body`` (the text after the context's ``: ``) and its tracepoint name
    ``event`` (null when the body is not ``name: fields``): ``noise_event`` ("hwlat",
    "osnoise", "timerlat", the tracepoint's name, or null for every other record) and the
    numeric columns: ``seqnum``, ``latency_ns`` (timerlat's timer_latency, hwlat's inner
    latency), ``outer_latency_ns`` (hwlat), ``runtime_ns``, ``noise_ns`` (osnoise's noise in
    the period, or a tracepoint's duration), ``max_noise_ns`` (osnoise's max single noise),
    ``timer_context`` (timerlat: irq, thread, user-ret) and ``interference`` (osnoise's hw,
    nmi, irq, softirq and thread counters)."""
    h = body.str.extract_groups(_HWLAT_RE)
    o = body.str.extract_groups(_OSNOISE_RE)
    t = body.str.extract_groups(_TIMERLAT_RE)
    is_h = h.struct.field("h_seq").is_not_null()
    is_o = o.struct.field("o_runtime").is_not_null()
    is_t = t.struct.field("t_seq").is_not_null()
    is_tp = event.is_in(list(NOISE_EVENTS))
    us = 1000
    return {
        "noise_event": pl.when(is_h).then(pl.lit("hwlat"))
        .when(is_o).then(pl.lit("osnoise"))
        .when(is_t).then(pl.lit("timerlat"))
        .when(is_tp).then(event),
        "seqnum": pl.coalesce(_n(h.struct.field("h_seq")), _n(t.struct.field("t_seq"))),
        "latency_ns": pl.coalesce(_n(t.struct.field("t_lat")), _n(h.struct.field("h_inner")) * us),
        "outer_latency_ns": _n(h.struct.field("h_outer")) * us,
        "runtime_ns": _n(o.struct.field("o_runtime")) * us,
        "noise_ns": pl.when(is_tp).then(_n(body.str.extract(_TP_DURATION_RE, 1)))
        .otherwise(_n(o.struct.field("o_noise")) * us),
        "max_noise_ns": _n(o.struct.field("o_max")) * us,
        "timer_context": t.struct.field("t_ctx"),
        "interference": pl.when(is_o).then(pl.struct(
            hw=_n(o.struct.field("o_hw")),
            nmi=_n(o.struct.field("o_nmi")),
            irq=_n(o.struct.field("o_irq")),
            softirq=_n(o.struct.field("o_sirq")),
            thread=_n(o.struct.field("o_thread")),
        )),
    }
