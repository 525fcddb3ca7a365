"""The compiled perf script reader (tracekit.parsers.perf_script._scan and the frame
assembly around it) checked against the general path's regular expressions, on lines
printed the way perf prints them and on damaged ones.

Sample lines follow perf_sample__fprintf_start() and process_event()
(tools/perf/builtin-script.c): the comm ``%16s`` (any width with ``-F``), ``%7d`` pid or
``%7d/%-7d`` pid/tid, ``[%03d]`` CPU, ``%5lu.%06lu:`` time (``%09llu`` with ``--ns``),
``%10lu`` period, ``%*s:`` event, then the tracepoint's text or the sampled ip
``%16lx sym+off (dso)``; callchain lines follow sample__fprintf_callchain(): a tab, the
address ``%16lx``, the symbol with ``+0x%lx``, the DSO in parentheses.  Whatever the bytes,
the compiled path with the general path behind it must read a chunk exactly as the general
path alone reads it; lines printed undamaged must be taken by the compiled path.
"""

from __future__ import annotations

import re

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit.parsers import perf_script as ps
from tracekit.parsers.base import LineChunk, ParseContext

from helpers import damage
from test_latency import read_chunks

COMMS = st.sampled_from(["perf-exec", "kworker/0:1", "Web Content", "a b 12", ":-1", "swapper", "x", "gmain 3"])
EVENTS = st.sampled_from(["cycles", "cpu-clock", "cycles:u", "instructions:k", "tlb:tlb_flush",
                          "sched:sched_process_exit", "probe:free_pgtables", "probe:free_pgtables__return",
                          "probe_libc:malloc", "probe:__return", "cpu/event=0x3c,umask=0x0/", "mem-loads:ppp"])
SYMBOLS = st.sampled_from(["free_pgtables", "zap_pte_range.isra.0", ".exit_mmap", "[unknown]", "_start",
                           "OopMapSet::all_do(frame const*, void (*)(oopDesc**))", "operator new(unsigned long)",
                           "do_exit.cold", "a+b"])
DSOS = st.sampled_from(["[kernel.kallsyms]", "/usr/lib/libc.so.6", "/tmp/x (deleted)", "[unknown]", "perf-12.map"])


@st.composite
def _sample(draw) -> tuple[str, bool]:
    """A sample line; whether it is printed with its callchain below it."""
    line = f"{draw(COMMS):>{draw(st.sampled_from([16, 0]))}} "
    pid = draw(st.sampled_from(["1", "556", "4194304", "-1", "2147483648"]))
    line += f"{pid:>7}" + (f"/{draw(st.sampled_from(['556', '-1', '0'])):<7}" if draw(st.booleans()) else "")
    if draw(st.booleans()):
        line += f" [{draw(st.integers(0, 1023)):03d}]"
    if draw(st.booleans()):
        secs, frac = draw(st.integers(0, 10**7)), draw(st.sampled_from(["%06d", "%09d", "%03d", "%010d"]))
        line += f" {secs:5d}.{frac % draw(st.integers(0, 999999))}:"
    if draw(st.booleans()):
        line += f" {draw(st.integers(1, 10**11)):10d}"
    event = draw(EVENTS)
    line += f" {event:>{draw(st.sampled_from([0, 30]))}}:"
    chain = draw(st.booleans())
    body = draw(st.sampled_from(["", "(ffffffffb7ee7a80)", "(ffffffffb7ee7a80 <- ffffffffb7ee7b7b)",
                                 "pages:-1 reason:flush on task switch (0)", "comm=bash pid=12 prio=120",
                                 "ffffffffb1d9f844 strnlen_user+0xb4 ([kernel.kallsyms])",
                                 "7f12 operator new(unsigned long)+0x1c (/usr/lib/libstdc++.so.6)",
                                 "ffff f ((a) (b))", "  "]))
    return line + (" " + body if body else " ") + draw(st.sampled_from(["", " ", "\t"])), chain


@st.composite
def _frame(draw) -> str:
    addr = draw(st.sampled_from(["ffffffff92aca791", "d70", "7f3a12c4e2b0"]))
    sym = draw(SYMBOLS) + draw(st.sampled_from(["", "+0x1", "+0x1a/0x40", "+0xffff018fd5dce000", "+0x"]))
    return f"\t{addr:>16} {sym} ({draw(DSOS)})" + draw(st.sampled_from(["", " "]))


@st.composite
def _record(draw) -> list[str]:
    """A sample with its callchain and blank line, or another line perf script prints."""
    what = draw(st.integers(0, 9))
    if what == 0:
        return [draw(st.sampled_from(["# ========", "# os release : 6.1.0", "# arch : x86_64",
                                      "# event : name = cycles, , id = { 5 }, size = 136"]))]
    if what == 1:
        return ["          forkit 11019 [001] 66663.271207092: PERF_RECORD_FORK(11020:11020):(11019:11019)"]
    if what == 2:  # the oldest layout: frames without the tab
        return ["java 19983 cycles:", "ffffffff8103d0ca native_write_msr_safe ([kernel.kallsyms])", ""]
    line, chain = draw(_sample())
    if not chain:
        return [line]
    return [line, *draw(st.lists(_frame(), min_size=1, max_size=5)), ""]


#: the bytes damage is made of: perf's separators, digits, control bytes, Latin-1, the
#: side-band record's first letters
DAMAGE = b" \t:./[]()+-x0129#\x0b\r\x00\xe9P"


@st.composite
def _text(draw) -> tuple[list[str], list[bool]]:
    """Lines of perf script, some damaged: (lines, whether each is as perf prints it)."""
    lines: list[str] = []
    intact: list[bool] = []
    for _ in range(draw(st.integers(1, 12))):
        for ln in draw(_record()):
            if draw(st.integers(0, 4)) == 0:
                damaged = damage(draw, ln, DAMAGE, least=1)
                lines.append(damaged)
                intact.append(damaged == ln)
            else:
                lines.append(ln)
                intact.append(True)
    return lines, intact


def _general(lines: list[str]) -> tuple[pl.DataFrame, ParseContext]:
    ctx = ParseContext("t")
    df = pl.DataFrame({"line": pl.int_range(1, len(lines) + 1, eager=True, dtype=pl.Int64),
                       "text": pl.Series(lines, dtype=pl.String)})
    return ps._parse_general(df, ctx, []), ctx


@settings(max_examples=250, deadline=None)
@given(_text())
def test_compiled_path_reads_as_the_general_path(case):
    lines, intact = case
    raw = ("\n".join(lines) + "\n").encode("utf-8")
    chunk = LineChunk(1, raw=raw, is_last=True)
    ctx = ParseContext("t")
    fast, _, _ = ps._parse_fast(chunk, ctx)
    general, gctx = _general(chunk.lines.to_list())
    assert fast.equals(general)
    assert ctx.skipped == gctx.skipped
    assert ctx.meta == gctx.meta
    # every sample and frame line printed as perf prints it is taken by the compiled path
    code, _, _ = ps._scan(ps.buffer(raw), *chunk.bounds())
    for i, (ln, ok) in enumerate(zip(lines, intact)):
        general_only = ("#", "java", "ffff")  # comments; the oldest layout's frames, left to the general path
        unrepresentable = "2147483648" in ln or re.search(r"\.\d{10}:", ln)  # an Int32 pid, more than ns digits
        if ok and ln.strip() and not ln.startswith(general_only) and "PERF_RECORD_" not in ln and not unrepresentable:
            assert code[i] != 0, ln


@settings(max_examples=60, deadline=None)
@given(_text(), st.integers(1, 9))
def test_chunk_edges_do_not_cut_a_sample(case, per_chunk):
    lines, _ = case
    ctx = ParseContext("t")
    frames = list(ps.parse(iter(read_chunks(("\n".join(lines) + "\n").encode("utf-8"), per_chunk)), ctx))
    cut = pl.concat(frames) if frames else None
    whole, gctx = _general(LineChunk(1, raw=("\n".join(lines) + "\n").encode("utf-8")).lines.to_list())
    if cut is None:
        assert whole.height == 0
    else:
        assert cut.equals(whole)
    assert ctx.skipped == gctx.skipped


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_are_read_without_failing(data):
    ps.scan_bytes(data)
