"""The compiled reader of trace-cmd report lines, checked line by line against the general
path's regular expressions on lines printed in trace-cmd's formats and on damaged ones.

Lines are printed as ``trace_show_data()`` (tracecmd/trace-read.c) prints them: the task
``%16s-%-5d [%03d]`` (``%8.8s-%-5d %3d`` and the latency flags with ``-l``), the time
(``%6.1000d`` secs.usecs, ``%9.1d`` secs.nsecs with ``-t``, ``%12d`` for counter clocks),
``--ts-diff``'s ``(+delta)`` (after the colon in 3.x, before it in 2.x), the event name
padded to 20 columns (``print_event_name()``) and the body; then possibly damaged (bytes
replaced, inserted, cut).  Whatever the compiled path takes must read exactly as the general
path reads it; every record line printed undamaged must be taken; no input makes it fail.
"""

from __future__ import annotations

from collections import Counter

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit.parsers import tracecmd_report as tc
from tracekit.parsers.base import LineChunk, ParseContext
from helpers import assert_general_reads_as_taken

COLUMNS = ("cpu", "pid", "comm", "ts_ns", "kind", "func", "raw_func", "parent", "raw_parent", "depth", "dur_ns", "flags",
           "event", "body")

COMMS = st.sampled_from(["bash", "kworker/1:2", "<idle>", "a b", "x-12", "pgtfree2", "<...>", "Web Content", "sh-"])
FLAGS = st.sampled_from(["d..2", "d..2.", "dN.2.", "d.h1.", "..s1", "....", "X..1.."])
EVENTS = st.sampled_from(["sched_switch", "sched_wakeup", "tlb_flush", "probe:free_pgtables", "bprint", "print",
                          "mm_page_free_batched", "a:b", "irq_handler_entry"])
BODIES = st.sampled_from([
    "prev_comm=bash prev_pid=1 prev_prio=120 prev_state=S ==> next_comm=sh next_pid=2 next_prio=120",
    "pages:-1 reason:flush on task switch (0)", "(ffffffffb7ee7a80)", "0xc042f8a0f: thermal: load=91",
    "comm=a pid=3 prio=120 target_cpu=001", "page=0000000012345678 pfn=0x1f order=0", "tracing_mark_write: hi",
    "x", "[120] R ==> trace-cmd:2603 [120]",
])
FUNCTIONS = st.sampled_from(["ktime_get <-- tick_check_idle", "zap_pte_range.isra.0 <-- unmap_page_range",
                             "ip=0xffffffff811d9620 parent_ip=0xffffffff811da000", "ip=free_pgtables",
                             "copy_process.part.5+0x14/0x1b08 <-- _do_fork+0xd8/0x438", "up_read"])
#: funcgraph records as libtraceevent's function_graph plugin draws them (the kernel's call
#: tree: the duration column, '|', two spaces per level)
GRAPH = st.sampled_from([
    ("funcgraph_entry", "                  |  exit_mmap() {"),
    ("funcgraph_entry", "       1.963 us   |      preempt_count_add();"),
    ("funcgraph_exit", "      + 11.487 us  |    }"),
    ("funcgraph_exit", "      # 2360.424 us |  }"),
    ("funcgraph_exit", "      ! 120.750 us |      } /* unmap_page_range */"),
    ("funcgraph_entry", "       0.922 us   |      uprobe_munmap(); /* = 0x0 */"),
    ("funcgraph_entry", "                  |    /* a comment */"),
])


@st.composite
def _record(draw) -> tuple[str, bool]:
    """One record line in one of trace-cmd's layouts; and whether the compiled path must
    take it (its event is not one the general path reads)."""
    comm, pid, cpu = draw(COMMS), draw(st.integers(0, 4_194_304)), draw(st.integers(0, 600))
    latency = draw(st.integers(0, 2))
    if latency == 2:  # -l
        out = f"{comm[:8]:>8}-{pid:<5d} {cpu:3d}{draw(FLAGS)}"
    else:
        out = f"{comm:>16}-{pid:<5d} [{cpu:03d}]" + (f" {draw(FLAGS)}" if latency else "")
    clock = draw(st.integers(0, 2))
    ns = draw(st.integers(0, 10**14))
    out += (f" {ns // 10**9:5d}.{ns % 10**9 // 1000:06d}", f" {ns // 10**9:5d}.{ns % 10**9:09d}", f" {ns:12d}")[clock]
    diff = draw(st.integers(0, 2))
    delta = f"(+{draw(st.integers(0, 10**6))})"
    out += f" {delta}:" if diff == 1 else ":"
    if diff == 2:
        out += f" {delta:<8s}"
    which = draw(st.integers(0, 2))
    if which == 0:
        event, body = "function", draw(FUNCTIONS)
    elif which == 1:
        event, body = draw(GRAPH)
    else:
        event, body = draw(EVENTS), draw(BODIES)
    out += f" {event}: " + " " * max(0, 20 - len(event)) + body + draw(st.sampled_from(["", " ", "  "]))
    return out, True


@st.composite
def _other(draw) -> tuple[str, bool]:
    """A line the general path reads: headers, lost events, stack records and frames, call
    graph records, noise records, blank lines."""
    return draw(st.sampled_from([
        "cpus=4", "version = 6", "CPU 3 is empty", "CPU:1 [123 EVENTS DROPPED]", "CPU:0 [SUBBUFFER START]", "",
        "   ", "          <idle>-0     [003] 58549.289092: kernel_stack:         <stack trace>",
        "=> schedule (ffffffff814b260e)", "=> cpu_idle (ffffffff8100a38c)",
        "        pgtfree2-563   [000]   117.611230: funcgraph_entry:        1.963 us   |      preempt_count_add();",
        "          <idle>-0     [000]    54.029328: timerlat:             seq:1\tcontext:0\ttimer_latency:932",
        "     bash-7 [001]  5.000001: thermal: [FAILED TO PARSE] tz_id=0", "garbage that is not a record",
    ])), False


@st.composite
def _damaged(draw, line: str) -> str:
    b = bytearray(line.encode("utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.integers(0, 2))
        i = draw(st.integers(0, len(b)))
        if op == 0 and i < len(b):
            b[i] = draw(st.sampled_from(list(b" -:[]().+=<>\t0123456789aZ_\xc2\xa0\xff")))
        elif op == 1:
            b[i:i] = draw(st.sampled_from([b" ", b"-", b":", b"9" * 20, b"\t", b"\xc2\xa0", b"\xe9", b"(+3)"]))
        else:
            del b[i:i + draw(st.integers(1, 8))]
    return bytes(b).decode("utf-8") if _utf8(bytes(b)) else bytes(b).decode("latin-1")


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@st.composite
def _lines(draw) -> list[tuple[str, bool]]:
    out = []
    for _ in range(draw(st.integers(1, 25))):
        line, must = draw(st.one_of(_record(), _record(), _other()))
        if draw(st.integers(0, 3)) == 0:
            line, must = draw(_damaged(line)), False
        out.append((line, must))
    return out


def _fast_and_general(lines: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, int]:
    chunk = LineChunk(1, pl.Series("text", lines, dtype=pl.String), is_last=True)
    fast, rest, blank = tc._parse_fast(tc._piece_of(chunk))
    everything = pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines})
    general, _ = tc._parse_general(everything, ParseContext("<test>"), Counter(), pl.Series([], dtype=pl.Int64))
    return fast, rest, general, blank


@settings(max_examples=150, deadline=None)
@given(_lines())
def test_compiled_lines_read_as_the_general_path_reads_them(rows):
    lines = [r[0] for r in rows]
    fast, rest, general, blank = _fast_and_general(lines)
    assert_general_reads_as_taken(general, fast, "line", COLUMNS)
    taken = set(fast["line"].to_list())
    for i, (line, must) in enumerate(rows, 1):
        if must:
            assert i in taken, line
    assert not taken & set(rest["line"].to_list())
    assert len(taken) + rest.height + blank == len(lines)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.lists(_record(), max_size=5))
def test_any_bytes_are_scanned_without_failing(noise, rows):
    raw = b"\n".join(r[0].encode() for r in rows) + b"\n" + noise
    tc.scan_bytes(raw)
    tc.scan_bytes(noise)


def test_every_line_is_read_once():
    lines = ["cpus=2", "", "     bash-7 [001]  5.000001: sched_switch:       a=1", "   ", "=> f (ffff)",
             "     bash-7 [001]  5.000002: kernel_stack:       <stack trace>", "=> g (ffff)", "=> h"]
    fast, rest, _, _ = _fast_and_general(lines)
    assert fast["line"].to_list() == [3]
    assert rest["line"].to_list() == [1, 5, 6, 7, 8]


def test_one_input_of_a_several_input_report_in_the_bytes():
    """``trace-cmd report -i a -i bb``: each line's ``"%*s: "`` prefix (the name right-aligned
    to the longest) says its input; a line whose prefix names no input (no prefix, an
    unknown name, no space after the colon) goes whole with the first input.  Each line
    keeps its number in the file, also through a second selection."""
    from tracekit.parsers.base import LineChunk
    from tracekit.parsers.tracecmd_report import ReportInputs, one_input

    raw = b"   a: cpus=2\n  bb: cpus=1\n   a: rec1\n  bb: rec2\nno tag line\n  zz: rec3\n   a:rec4\n  bb: \xce\xbb"
    inputs = ReportInputs(4, ("a", "bb"))

    def lines(chunk, name):
        (part,) = one_input(iter([chunk]), inputs, name)
        return part.raw.decode().splitlines(), part.line_numbers.to_list()

    assert lines(LineChunk(10, raw=raw), "a") == (
        ["cpus=2", "rec1", "no tag line", "  zz: rec3", "   a:rec4"], [10, 12, 14, 15, 16])
    assert lines(LineChunk(10, raw=raw), "bb") == (["cpus=1", "rec2", "\u03bb"], [11, 13, 17])
    split = LineChunk(10, pl.Series("text", raw.decode().split("\n")))  # (lines split already)
    assert lines(split, "bb") == (["cpus=1", "rec2", "\u03bb"], [11, 13, 17])
    numbered = LineChunk(1, raw=b"   a:   bb: x\n   a: y\n", numbers=pl.Series([5, 9]))
    (part,) = one_input(iter([numbered]), inputs, "a")
    assert lines(part, "bb") == (["x"], [5])
    assert lines(LineChunk(1, raw=b""), "bb") == ([], [])
