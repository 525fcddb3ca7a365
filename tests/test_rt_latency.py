"""The pre-mainline -rt / voluntary-preemption ``/proc/latency_trace`` layouts (2004-2005),
read by tracekit.parsers.latency: v1.1.4 verbose with ``(T<type>/#<idx>)`` record tags and
a Latin-1 ``µ`` (corpus/lkml-2005-rt-latency/trace1.txt), and v1.0.7
(fixtures/latency/rt_v1.0.7_vp.txt, from LKML).  Expected values read from the files."""

from __future__ import annotations

import polars as pl
import pytest

from tracekit.parsers import latency
from tracekit.schema import Kind

from test_latency import run


@pytest.fixture(scope="module")
def trace1(corpus):
    return (corpus / "lkml-2005-rt-latency" / "trace1.txt").read_bytes()


def test_trace1_is_latin1(trace1):
    # The file is what the list archive holds: "µ" is the single byte 0xB5.
    assert b"\xb5s" in trace1 and b"\xc2\xb5" not in trace1


def test_v114_header(trace1):
    # " latency: 323 µs, #22/22, CPU#0 | (M:preempt VP:0, KP:1, SP:1 HP:1 #P:1)"
    # "    | task: ksoftirqd/0-2 (uid:0 nice:-10 policy:0 rt_prio:0)"
    assert latency.sniff(trace1.decode("latin-1")) >= 90
    df, ctx = run(trace1)
    assert len(ctx.windows) == 1
    w = ctx.windows[0]
    assert w["latency_ns"] == 323_000
    assert (w["entries_shown"], w["entries_total"], w["cpu"]) == (22, 22, 0)
    assert (w["comm"], w["pid"]) == ("ksoftirqd/0", 2)
    assert w["kernel"] == "2.6.11-rc4-RT-V0.7.39-02"
    assert w["version"] == "latency trace v1.1.4"
    assert w["preempt_model"] == "preempt"
    assert w["started_at"] is None
    assert ctx.meta["ncpus"] == 1
    assert ctx.meta["lat_flag_columns"] == [
        "irqs-off", "need-resched", "hardirq/softirq", "preempt-depth"
    ]


def test_v114_records(trace1):
    # grep -c '^(T' trace1.txt -> 21 records; grep -o '^(T[0-9]' | sort | uniq -c ->
    # 17 T1 (function entries), 2 T3 (special), 1 T4 (task switch), 1 T6 (wakeup).
    # (#1 is not printed: 21 records of the 22 the header counts.)
    df, ctx = run(trace1)
    assert df.height == 21
    counts = dict(df.group_by("kind").agg(pl.len()).iter_rows())
    assert counts == {Kind.FUNCTION: 17, Kind.EVENT: 3, Kind.MARKER: 1}
    assert sorted(df.filter(pl.col("kind") == Kind.EVENT)["event"].to_list()) == [
        "rt_special", "rt_special", "rt_wakeup"
    ]
    # the trailing "vim:ft=help" line is counted, not dropped silently
    assert ctx.skipped == {"editor modeline": 1}
    assert df["window"].unique().to_list() == [0]
    # (T1/#5) valgrind.bin 15934 0 2 00000001 00000005 [0032064023088406] 0.307ms (+0.000ms):
    #         preempt_schedule+0xa/0x70 <c027d0ca> (copy_pte_range+0xb7/0x1c0 <c0142ad7>)
    r = df.filter(pl.col("seq") == 21).row(0, named=True)
    assert (r["comm"], r["pid"], r["cpu"], r["ts_ns"]) == ("valgrind.bin", 15934, 0, 307_000)
    assert (r["func"], r["parent"]) == ("preempt_schedule", "copy_pte_range")
    assert r["raw_func"] == "preempt_schedule+0xa/0x70 <c027d0ca>"
    # (T6/#4) valgrind-15934 0dn.2    2µs!< (1)   -- the µ line, no colon after the mark
    r = df.filter(pl.col("seq") == 20).row(0, named=True)
    assert (r["comm"], r["pid"], r["flags"], r["ts_ns"]) == ("valgrind", 15934, "dn.2", 2_000)
    # (T3/#17)    <...>-2     0d..2  319µs : __schedule+0x2ea/0x630 <c027cc6a> <valgrind-15934> (7d 69):
    r = df.filter(pl.col("seq") == 33).row(0, named=True)
    assert (r["comm"], r["pid"], r["func"], r["ts_ns"]) == ("<...>", 2, "__schedule", 319_000)


@pytest.mark.parametrize("micro", [b"u", "\u00b5".encode(), "\ufffd".encode(), "\u03bc".encode()])
def test_micro_sign_variants(trace1, micro):
    # The same file as UTF-8 "µs", as "us", with a replacement character, with Greek mu.
    df, ctx = run(trace1.replace(b"\xb5", micro))
    assert ctx.windows[0]["latency_ns"] == 323_000
    assert df.height == 21


def test_v107(fixtures_dir):
    # fixtures/latency/rt_v1.0.7_vp.txt: two snapshots, "latency: 1715 us, entries: 18 (18)"
    # (task "IRQ 14/203") and "latency: 234 us, entries: 38 (38)" (task "get_ltrace.sh/7082");
    # grep -c 'ms (+' -> 56 lines = 18 + 38.
    df, ctx = run(fixtures_dir / "latency" / "rt_v1.0.7_vp.txt")
    ws = ctx.windows
    assert [(w["latency_ns"], w["entries_shown"], w["entries_total"]) for w in ws] == [
        (1_715_000, 18, 18), (234_000, 38, 38)
    ]
    assert [(w["comm"], w["pid"]) for w in ws] == [("IRQ 14", 203), ("get_ltrace.sh", 7082)]
    assert ws[1]["started_at"] == "unmap_vmas+0x12e/0x280"
    assert [w["version"] for w in ws] == ["latency trace v1.0.7"] * 2
    assert ctx.meta["ncpus"] == 2  # "#CPUS:2"
    assert df.height == 56
    assert df.group_by("window").agg(pl.len()).sort("window")["len"].to_list() == [18, 38]
    # "00000001 0.004ms (+0.217ms): clear_page_tables (exit_mmap)"
    r = df.filter(pl.col("func") == "clear_page_tables").row(0, named=True)
    assert (r["ts_ns"], r["parent"], r["flags"], r["window"]) == (4_000, "exit_mmap", "00000001", 1)
    assert df.filter(pl.col("func") == "zap_pte_range")["parent"].to_list() == ["zap_pmd_range"]
    assert not ctx.skipped
