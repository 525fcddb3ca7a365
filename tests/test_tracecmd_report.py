"""trace-cmd ``report`` text, against counts made by hand on the corpus files.

Each expected number says how it was counted (grep / a few lines of Python over the text,
independent of the parser)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tracekit.parsers import detect, tracecmd_report
from tracekit.parsers.base import LineChunk, ParseContext


def parse_lines(lines: list[str], path: str = "<text>", chunk: int = 4000) -> tuple[pl.DataFrame, ParseContext]:
    ctx = ParseContext(path)
    chunks = [
        LineChunk(i + 1, pl.Series(lines[i:i + chunk], dtype=pl.String), i + chunk >= len(lines))
        for i in range(0, len(lines), chunk)
    ]
    frames = list(tracecmd_report.parse(iter(chunks), ctx))
    return pl.concat(frames), ctx


def parse_file(path: Path) -> tuple[pl.DataFrame, ParseContext]:
    return parse_lines(path.read_text(encoding="latin-1").splitlines(), str(path))


def test_rendered_function_graph(corpus: Path) -> None:
    path = corpus / "kbuild-x86_64-6.1.192/A/tracecmd.report.txt"
    df, ctx = parse_file(path)
    # wc -l: 10117 lines, the first is "cpus=1"
    assert df.height == 10116
    assert ctx.meta["ncpus"] == 1
    kinds = dict(df.group_by("kind").len().iter_rows())
    # grep -c 'funcgraph_entry: .*{$' -> 1384; grep -c 'funcgraph_entry: .*();$' -> 6069;
    # grep -c 'funcgraph_exit: .*}' -> 1384
    assert kinds["entry"] == 1384 and kinds["leaf"] == 6069 and kinds["exit"] == 1384
    # grep -c 'sched_switch:' -> 1176
    assert df.filter(pl.col("event") == "sched_switch").height == 1176
    # grep -c 'exit_mmap() {' -> 52, each closed by a depth-0 "|  }" line; their durations
    # ("# 2360.424 us |  }" ...) summed in Python over the text: 3741085339 ns
    top_exits = df.filter((pl.col("kind") == "exit") & (pl.col("depth") == 0))
    assert top_exits.height == 52
    assert top_exits["dur_ns"].sum() == 3741085339
    assert df.filter((pl.col("kind") == "entry") & (pl.col("func") == "exit_mmap")).height == 52
    # first leaf: "117.611230: funcgraph_entry:        1.963 us   |      preempt_count_add();"
    first_leaf = df.filter(pl.col("kind") == "leaf").row(0, named=True)
    assert (first_leaf["func"], first_leaf["depth"], first_leaf["dur_ns"], first_leaf["ts_ns"]) == (
        "preempt_count_add", 2, 1963, 117_611_230_000)
    assert ctx.meta["span_source"] == "function_graph"
    assert ctx.meta["time_unit"] == "ns"
    assert sum(ctx.skipped.values()) == 0


def test_raw_funcgraph_records(corpus: Path) -> None:
    df, ctx = parse_file(corpus / "tracecompass/trace-func-graph")
    # grep -c funcgraph_entry: -> 113; grep -c funcgraph_exit: -> 86; header "cpus=8"
    assert dict(df.group_by("kind").len().iter_rows()) == {"entry": 113, "exit": 86}
    assert ctx.meta["ncpus"] == 8
    assert ctx.meta["span_source"] == "funcgraph_raw"
    # sum of rettime - calltime over the 86 exit lines, in Python over the text: 113109
    assert df["dur_ns"].sum() == 113109
    first_exit = df.filter(pl.col("kind") == "exit").row(0, named=True)
    # "func=0xffffffffbaac16a0 calltime=0xa9a8c8a5227 rettime=0xa9a8c8a5299 overrun=0x0 depth=1"
    assert first_exit["func"] == "0xffffffffbaac16a0" and first_exit["depth"] == 1
    assert first_exit["dur_ns"] == 0xA9A8C8A5299 - 0xA9A8C8A5227
    assert set(df["cpu"].unique().to_list()) <= set(range(8))


def test_failed_to_parse_kept_and_counted(corpus: Path) -> None:
    df, ctx = parse_file(corpus / "trappy/tests/trace_failed_to_parse.txt")
    # wc -l -> 11 record lines; grep -c 'FAILED TO PARSE' -> 3
    assert df.height == 11
    assert ctx.meta["failed_to_parse"] == 3
    assert df.filter(pl.col("body").str.starts_with("[FAILED TO PARSE]")).height == 3
    assert ctx.warnings


def test_headers_version_and_empty_cpus(corpus: Path) -> None:
    df, ctx = parse_file(corpus / "trappy/doc/trace.txt")
    # head: "version = 6", "CPU 0 is empty" ... (grep -c 'is empty' -> 5), "cpus=6"
    assert ctx.meta["report_version"] == 6
    assert ctx.meta["ncpus"] == 6
    assert ctx.meta["empty_cpus"] == [0, 1, 2, 3, 5]
    assert set(df["cpu"].unique().to_list()) == {4}


def test_multi_cpu_sched_trace(corpus: Path) -> None:
    df, ctx = parse_file(corpus / "lisa/tests/assets/trace_txt/trace.txt")
    # wc -l -> 2943, of which 2 header lines (version = 6, cpus=6)
    assert df.height == 2941
    # grep -c 'sched_switch:' -> 1856
    assert df.filter(pl.col("event") == "sched_switch").height == 1856
    assert ctx.meta["ncpus"] == 6
    # first record: "<...>-1701  [001]    76.211513: sched_switch: prev_comm=trace-cmd ..."
    r = df.row(0, named=True)
    assert (r["comm"], r["pid"], r["cpu"], r["ts_ns"]) == ("<...>", 1701, 1, 76_211_513_000)
    assert r["body"].startswith("prev_comm=trace-cmd prev_pid=1701")


def test_flags_and_bprint(corpus: Path) -> None:
    df, ctx = parse_file(corpus / "trappy/doc/trace_dynamic.txt")
    # wc -l -> 1600; grep -c 'bprint:' -> 1600; every line has flags "d..2" style columns
    assert df.height == 1600
    assert df.filter(pl.col("event") == "bprint").height == 1600
    r = df.row(0, named=True)
    assert r["flags"] == "d..2" and r["ts_ns"] == 109_999_957_000
    assert r["body"] == "0xc042f8a0f: thermal_gpu_power_get: frequency=420 load=91"


def test_no_trailing_newline(corpus: Path) -> None:
    df, _ = parse_file(corpus / "trappy/tests/trace_no_trailing_line.txt")
    # wc -l -> 9 newlines, and a last line without one: 10 records
    assert df.height == 10


def test_dropped_events_latency_format_and_function_lines() -> None:
    """The DROPPED markers of trace_show_data(), the -l layout and the function plugin's
    ``<--`` parent, on lines in trace-cmd's printf formats (docs/formats.md#trace-cmd-report)."""
    lines = [
        "cpus=2",
        "          <idle>-0     [001] 106467.859747: function:             ktime_get <-- tick_check_idle",
        "CPU:1 [123 EVENTS DROPPED]",
        "          <idle>-0     [001] 106467.859750: function:                rcu_irq_enter <-- irq_enter",
        "CPU:0 [EVENTS DROPPED]",
        "  <idle>-0       0d.h1. 106467.859760: function:             zap_pte_range.isra.0 <-- unmap_page_range",
        "",
        "garbage that is not a record",
    ]
    df, ctx = parse_lines(lines)
    assert ctx.lost_events == 123
    lost = df.filter(pl.col("kind") == "lost")
    assert lost["lost"].to_list() == [123, None] and lost["cpu"].to_list() == [1, 0]
    fn = df.filter(pl.col("kind") == "function")
    assert fn["func"].to_list() == ["ktime_get", "rcu_irq_enter", "zap_pte_range"]
    assert fn["parent"].to_list() == ["tick_check_idle", "irq_enter", "unmap_page_range"]
    assert fn["raw_func"].to_list() == [None, None, "zap_pte_range.isra.0"]
    last = fn.row(2, named=True)
    assert (last["cpu"], last["flags"], last["pid"]) == (0, "d.h1.", 0)
    assert df["seq"].is_sorted()
    assert ctx.skipped == {"blank line": 1, "trace-cmd report: line not understood": 1}


def test_raw_function_records_ts_diff_and_subbuffer_markers() -> None:
    """``-R`` prints the function tracer's raw fields; ``--ts-diff`` adds ``(+delta)``
    after the time; ``--subbuf-breaks`` prints ``CPU:N [SUBBUFFER START]`` (trace-read.c)."""
    lines = [
        "CPU:0 [SUBBUFFER START]",
        "           bash-1234  [000]  5001.000100: function:             ip=0xffffffff811d9620 parent_ip=0xffffffff811da000",
        "           bash-1234  [000]  5001.000180 (+80): function:       ip=free_pgtables parent_ip=exit_mmap",
    ]
    df, ctx = parse_lines(lines)
    assert df["kind"].to_list() == ["marker", "function", "function"]
    assert df["func"].to_list() == [None, "0xffffffff811d9620", "free_pgtables"]
    assert df["parent"].to_list()[2] == "exit_mmap"
    assert df["ts_ns"].to_list()[1:] == [5_001_000_100_000, 5_001_000_180_000]
    assert ctx.lost_events == 0 and not ctx.skipped


def test_latency_nsec_and_ts_diff_options() -> None:
    """trace-cmd 3.x ``report -l -t --ts-diff``: trace_show_data() prints ``%8.8s-%-5d %3d``
    and the latency flags, the time as `` %9.1d:`` (secs.nsecs), then `` %-8s`` of
    ``(+delta)`` (blank on the first record) before the event name."""
    lines = [
        "cpus=4",
        "systemd--45310   3d..2.    50.000001472:          sched_switch:         prev_comm=pgtfree prev_pid=18710",
        "swapper/-15420   1d.h1.    50.000002364: (+892)   function:             release_pages <-- zap_pmd_range.isra.0",
    ]
    df, ctx = parse_lines(lines)
    assert df.select("comm", "pid", "cpu", "flags", "ts_ns", "event", "kind").rows() == [
        ("systemd-", 45310, 3, "d..2.", 50_000_001_472, "sched_switch", "event"),
        ("swapper/", 15420, 1, "d.h1.", 50_000_002_364, "function", "function"),
    ]
    assert df.select("func", "parent", "raw_parent").row(1) == ("release_pages", "zap_pmd_range", "zap_pmd_range.isra.0")
    assert ctx.meta["time_unit"] == "ns" and not ctx.skipped


def test_counter_clock_ticks() -> None:
    """With a counter clock (``trace-cmd record -C x86-tsc``) the time is a bare integer
    of ticks: kept as it is, and the run says its unit is ticks."""
    lines = [
        "cpus=1",
        "        pgtfree2-563   [000] 2904471833761: sched_switch:         prev_comm=pgtfree2 prev_pid=563",
    ]
    df, ctx = parse_lines(lines)
    assert df["ts_ns"].to_list() == [2904471833761]
    assert ctx.meta["time_unit"] == "ticks"


def test_detection(corpus: Path) -> None:
    head = (corpus / "kbuild-x86_64-6.1.192/A/tracecmd.report.txt").read_bytes()[:8192]
    assert detect(head) is tracecmd_report
    head = (corpus / "lisa/tests/assets/trace_txt/trace.txt").read_bytes()[:8192]
    assert detect(head) is tracecmd_report
    assert tracecmd_report.sniff("# tracer: function_graph\n#\n") == 0
    # no header, but trace-cmd's event-name padding ("ext4_da_write_end:    dev 8,13")
    for rel in ("trappy/tests/trace_filesystem.txt", "trappy/tests/trace_failed_to_parse.txt"):
        assert detect((corpus / rel).read_bytes()[:8192]) is tracecmd_report, rel


from hypothesis import given, settings, strategies as st  # noqa: E402

_comm = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="[]"), min_size=1, max_size=16)
_line = st.tuples(
    _comm,
    st.integers(0, 4_194_304),  # pid (PID_MAX_LIMIT)
    st.integers(0, 511),  # cpu
    st.integers(0, 10**7),  # seconds
    st.integers(0, 999_999),  # microseconds
    st.from_regex(r"[a-z][a-z0-9_]{0,24}", fullmatch=True),  # event name
    st.from_regex(r"[a-z_]{1,8}=[0-9a-z]{1,8}( [a-z_]{1,8}=[0-9a-z]{1,8}){0,4}", fullmatch=True),
)


@settings(max_examples=25, deadline=None)
@given(st.lists(_line, min_size=1, max_size=30))
def test_report_line_property(rows) -> None:
    """Lines printed in trace-cmd's formats ("%16s-%-5d [%03d] %d.%06d: %-20s %s",
    trace-read.c) read back to the same comm, pid, cpu, time, event and body."""
    lines = ["cpus=512"] + [
        f"{comm:>16}-{pid:<5d} [{cpu:03d}] {s:6d}.{us:06d}: {event + ':':<20} {body}"
        for comm, pid, cpu, s, us, event, body in rows
    ]
    df, ctx = parse_lines(lines)
    assert df.height == len(rows) and not ctx.skipped
    assert df["comm"].to_list() == [r[0] for r in rows]
    assert df["pid"].to_list() == [r[1] for r in rows]
    assert df["cpu"].to_list() == [r[2] for r in rows]
    assert df["ts_ns"].to_list() == [r[3] * 10**9 + r[4] * 1000 for r in rows]
    assert df["event"].to_list() == [r[5] for r in rows]
    assert df["body"].to_list() == [r[6] for r in rows]
