"""Latency tracers (irqsoff, preemptoff, preemptirqsoff, wakeup*) and timerlat, read by
tracekit.parsers.latency.

Expected values come from the traces themselves, read by eye or counted with grep, never
from the parser: the header numbers are the kernel's own (``latency: N us, #shown/total``),
and ``max_latency_us=`` is what the capture script read from ``tracing_max_latency`` after
the run, an independent record of the same number.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tracekit.parsers import latency
from tracekit.parsers.base import LineChunk, ParseContext
from tracekit.schema import EVENT_SCHEMA, WINDOW_SCHEMA, Kind

KB = "kbuild-x86_64-6.1.192"


def read_chunks(data: bytes, lines_per_chunk: int = 1 << 20) -> list[LineChunk]:
    """Decode like the ingest reader (UTF-8, else Latin-1) and cut into line chunks."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    out = []
    for i in range(0, max(len(lines), 1), lines_per_chunk):
        part = lines[i : i + lines_per_chunk]
        out.append(LineChunk(i + 1, pl.Series("text", part, dtype=pl.String),
                             is_last=i + lines_per_chunk >= len(lines)))
    return out


def run(data: bytes | Path, lines_per_chunk: int = 1 << 20) -> tuple[pl.DataFrame, ParseContext]:
    if isinstance(data, Path):
        path, data = str(data), data.read_bytes()
    else:
        path = "<bytes>"
    ctx = ParseContext(path)
    frames = list(latency.parse(iter(read_chunks(data, lines_per_chunk)), ctx))
    df = pl.concat(frames) if frames else pl.DataFrame(schema=EVENT_SCHEMA)
    return df, ctx


# (file, task, latency us, shown, total, started at, ended at, frames under <stack trace>)
# Numbers from: grep -o 'latency: [0-9]* us, #[0-9]*/[0-9]*' FILE; grep 'task:\|started at\|ended
# at' FILE; grep -c '^ => ' FILE.
CORPUS_SNAPSHOTS = [
    ("A/latency_irqsoff.txt", "pgtfree2-374", 4045, 4, 4, "exc_page_fault", "irqentry_exit_to_user_mode", 1),
    ("A/latency_preemptirqsoff.txt", "pgtfree2-400", 10983, 4, 4, "exit_mmap", "exit_mmap", 6),
    ("A/latency_preemptoff.run1.txt", "pgtfree2-153", 11574, 4, 4, "exit_mmap", "exit_mmap", 6),
    ("A/latency_preemptoff.run2.txt", "pgtfree2-170", 11203, 4, 4, "exit_mmap", "exit_mmap", 6),
    ("A/latency_preemptoff.run3.txt", "pgtfree2-187", 11193, 4, 4, "exit_mmap", "exit_mmap", 6),
    ("A/thresh/th1000.run1.txt", "pgtfree2-274", 10905, 4, 4, "exit_mmap", "exit_mmap", 6),
    ("B/latency_irqsoff.txt", "pgtfree2-348", 360, 4, 4, "_raw_spin_lock_irqsave", "_raw_spin_unlock_irqrestore", 12),
    ("B/latency_preemptirqsoff.txt", "pgtfree2-374", 340, 4, 4, "free_unref_page_list", "free_unref_page_list", 11),
    ("B/latency_preemptoff.run1.txt", "init-1", 749, 4, 4, "vfs_write", "vfs_write", 3),
    ("B/latency_preemptoff.run2.txt", "pgtfree2-169", 1441, 4, 4, "preempt_schedule_thunk", "pipe_read", 4),
    ("B/latency_preemptoff.run3.txt", "pgtfree2-187", 390, 4, 4, "free_unref_page_list", "free_unref_page_list", 11),
]


@pytest.mark.parametrize("name,task,lat_us,shown,total,started,ended,nframes", CORPUS_SNAPSHOTS)
def test_corpus_snapshot_header(corpus, name, task, lat_us, shown, total, started, ended, nframes):
    path = corpus / KB / name
    df, ctx = run(path)
    assert len(ctx.windows) == 1
    w = ctx.windows[0]
    assert set(w) == set(WINDOW_SCHEMA)
    assert w["latency_ns"] == lat_us * 1000
    assert (w["entries_shown"], w["entries_total"]) == (shown, total)
    assert (w["started_at"], w["ended_at"]) == (started, ended)
    assert w["cpu"] == 0 and f"{w['comm']}-{w['pid']}" == task
    assert w["preempt_model"] == "preempt"
    assert w["kernel"] == ("6.1.192-tkA" if name.startswith("A/") else "6.1.192-tkB")
    tracer = name.split("latency_")[1].split(".")[0] if "latency_" in name else "preemptoff"
    assert w["tracer"] == tracer
    assert ctx.meta["kernel"] == w["kernel"]
    assert ctx.meta["ncpus"] == 1  # "#P:1"
    # PROVENANCE.md: x86_64 kernels; the stacks end in entry_SYSCALL_64* / asm_exc_page_fault.
    assert ctx.meta["arch"] == "x86_64"
    # The capture script's own reading of tracing_max_latency equals the header.
    assert ctx.meta["tracing_max_latency_us"] == lat_us
    # The 4 entries the header announces (#4/4) are the 4 "pgtfree2-" lines.
    body = df.filter(pl.col("kind").is_in([Kind.FUNCTION, Kind.STACK]))
    assert body.height == shown
    assert body["window"].to_list() == [0] * shown
    stack = df.filter(pl.col("kind") == Kind.STACK)
    assert stack.height == 1
    assert stack["pid"].to_list() == [w["pid"]]  # the stack is taken in the task's context
    assert len(stack["callchain"][0]) == nframes
    assert ctx.meta["lat_flag_columns"] == [
        "irqs-off/BH-disabled", "need-resched", "hardirq/softirq", "preempt-depth",
        "migrate-disable",
    ]
    assert not ctx.skipped


def test_corpus_preemptoff_before_patch_lines(corpus):
    # A/latency_preemptoff.run1.txt, lines 22-25 (read by eye):
    #   pgtfree2-153  0...1.     0us*: exit_mmap <-exit_mmap
    #   pgtfree2-153  0...1. 11568us : exit_mmap <-exit_mmap
    #   pgtfree2-153  0...1. 11578us+: tracer_preempt_on <-exit_mmap
    #   pgtfree2-153  0...1. 11642us : <stack trace>  => mmput ... => entry_SYSCALL_64_after_hwframe
    df, ctx = run(corpus / KB / "A/latency_preemptoff.run1.txt")
    body = df.filter(pl.col("kind") != Kind.MARKER)
    assert body["seq"].to_list() == [22, 23, 24, 25]
    assert body["ts_ns"].to_list() == [0, 11_568_000, 11_578_000, 11_642_000]
    assert body["func"].to_list()[:3] == ["exit_mmap", "exit_mmap", "tracer_preempt_on"]
    assert body["parent"].to_list()[:3] == ["exit_mmap"] * 3
    assert set(body["flags"].to_list()) == {"...1."}
    chain = body.filter(pl.col("kind") == Kind.STACK)["callchain"][0].to_list()
    assert chain[0] == "mmput" and chain[-1] == "entry_SYSCALL_64_after_hwframe"
    marker = df.filter(pl.col("kind") == Kind.MARKER)
    assert marker["body"].to_list() == ["max_latency_us=11574"]


def test_several_snapshots_in_one_file(corpus):
    # cat of the three "before" preemptoff runs: three snapshots, three windows.
    data = b"".join((corpus / KB / f"A/latency_preemptoff.run{i}.txt").read_bytes() for i in (1, 2, 3))
    df, ctx = run(data)
    assert [w["latency_ns"] for w in ctx.windows] == [11_574_000, 11_203_000, 11_193_000]
    assert [w["window"] for w in ctx.windows] == [0, 1, 2]
    assert [w["pid"] for w in ctx.windows] == [153, 170, 187]
    per_window = df.group_by("window").agg(pl.len()).sort("window")
    assert per_window["len"].to_list() == [5, 5, 5]  # 4 entries + the max_latency_us note
    assert df["seq"].is_sorted() and df["seq"].n_unique() == df.height


@pytest.mark.parametrize("lines_per_chunk", [1, 3, 7, 26])
def test_chunk_boundaries_do_not_change_the_result(corpus, lines_per_chunk):
    path = corpus / KB / "B/latency_irqsoff.txt"
    whole, ctx1 = run(path)
    cut, ctx2 = run(path, lines_per_chunk)
    assert cut.sort("seq").equals(whole.sort("seq"))
    assert ctx1.windows == ctx2.windows
    assert ctx2.skipped == ctx1.skipped


def test_capture_note_without_snapshot(corpus):
    # B/thresh/th1000.run1.txt is the single line the capture wrote when no window reached
    # tracing_thresh: no window, the line kept as a marker, nothing skipped.
    path = corpus / KB / "B/thresh/th1000.run1.txt"
    assert latency.sniff(path.read_text()) > 0
    df, ctx = run(path)
    assert ctx.windows == []
    assert df["kind"].to_list() == [Kind.MARKER]
    assert not ctx.skipped


def test_v2626_latency_trace_layout(fixtures_dir):
    # fixtures/latency/v2.6.26_latency_trace.txt: irqsoff "latency: 12 us, #3/3, CPU#1" then
    # wakeup "latency: 4 us, #2/2, CPU#1" (Documentation/ftrace.txt, 2.6.28).
    df, ctx = run(fixtures_dir / "latency" / "v2.6.26_latency_trace.txt")
    ws = ctx.windows
    assert [(w["tracer"], w["latency_ns"], w["cpu"], w["comm"], w["pid"]) for w in ws] == [
        ("irqsoff", 12_000, 1, "bash", 3730),
        ("wakeup", 4_000, 1, "sleep", 4901),
    ]
    assert [(w["entries_shown"], w["entries_total"]) for w in ws] == [(3, 3), (2, 2)]
    assert (ws[0]["started_at"], ws[0]["ended_at"]) == ("sys_setpgid", "sys_setpgid")
    assert ws[1]["started_at"] is None and ws[1]["ended_at"] is None
    assert [w["kernel"] for w in ws] == ["2.6.26", "2.6.26-rc8"]
    assert any("several kernels" in m for m in ctx.warnings)
    assert df["window"].to_list() == [0, 0, 0, 1, 1]
    assert df["func"].to_list() == [
        "_write_lock_irq", "_write_unlock_irq", "trace_hardirqs_on", "try_to_wake_up", "schedule"
    ]
    assert df["parent"].to_list() == [
        "sys_setpgid", "sys_setpgid", "sys_setpgid", "wake_up_process", "cpu_idle"
    ]
    assert df["ts_ns"].to_list() == [0, 1_000, 14_000, 0, 4_000]
    assert df["flags"].to_list() == ["d...", "d..1", "d..2", "d.h4", "d..4"]
    assert df["comm"].to_list()[3] == "<idle>"


def test_display_graph(fixtures_dir):
    # fixtures/latency/display_graph_irqsoff_4.20.txt (ftrace.rst): grep -c '();' -> 6 leaves,
    # grep -c '() {' -> 5 entries, one closing brace, one "[...]" elision line.
    df, ctx = run(fixtures_dir / "latency" / "display_graph_irqsoff_4.20.txt")
    assert ctx.meta["span_source"] == "function_graph"
    counts = dict(df.group_by("kind").agg(pl.len()).iter_rows())
    assert counts == {Kind.LEAF: 6, Kind.ENTRY: 5, Kind.EXIT: 1, Kind.STACK: 1}
    assert ctx.skipped == {"elided line ([...])": 1}
    w = ctx.windows[0]
    assert (w["latency_ns"], w["entries_shown"], w["preempt_model"]) == (3_751_000, 274, "desktop")
    trylock = df.filter(pl.col("func") == "do_raw_spin_trylock")
    assert trylock["dur_ns"].to_list() == [378]  # "0.378 us"
    assert trylock["depth"].to_list() == [1]
    assert df.filter(pl.col("func") == "get_stack_info")["depth"].to_list() == [5]
    assert df.filter(pl.col("kind") == Kind.EXIT)["dur_ns"].to_list() == [1_107]
    assert df.filter(pl.col("func") == "tracer_hardirqs_on")["ts_ns"].to_list() == [3_764_000]
    chain = df.filter(pl.col("kind") == Kind.STACK)["callchain"][0].to_list()
    assert len(chain) == 14 and "exit_mmap" in chain
    assert chain[10] == "__do_execve_file"  # printed "__do_execve_file.isra.32"
    assert set(df["pid"].to_list()) == {1507}


def test_wakeup_rt_lines(fixtures_dir):
    df, ctx = run(fixtures_dir / "latency" / "wakeup_rt_3.8.txt")
    assert ctx.windows[0]["latency_ns"] == 5_000 and ctx.windows[0]["pid"] == 2389
    assert df["event"].to_list() == ["sched_wakeup", None, None, "sched_switch"]
    clone = df.filter(pl.col("func") == "ttwu_do_activate")
    assert clone["raw_func"].to_list() == ["ttwu_do_activate.constprop.87"]


def test_preempt_rt_eight_column_header(fixtures_dir):
    # A 6.5 PREEMPT_RT header names 8 columns: CPU# and 7 flags (need-resched-lazy and
    # preempt-lazy-depth in addition); "0dn.h413" is CPU 0 and flags "dn.h413".
    df, ctx = run(fixtures_dir / "latency" / "wakeup_rt_preempt_rt_6.5.txt")
    cols = ctx.meta["lat_flag_columns"]
    assert len(cols) == 7 and cols[2] == "need-resched-lazy"
    assert ctx.windows[0]["preempt_model"] == "preempt_rt"
    assert ctx.windows[0]["latency_ns"] == 1_689_000
    assert df["flags"].str.len_chars().unique().to_list() == [7]
    assert df["cpu"].unique().to_list() == [0]
    decoded = df.select(latency.decode_lat_flags(pl.col("flags"), cols).alias("d")).unnest("d")
    first = decoded.row(0, named=True)
    assert first == {
        "irqs_off": True, "need_resched": "n", "context": "hardirq", "preempt_depth": 4,
        "migrate_disable": 3,
    }
    # grep -c '^ => ' -> 35 frames: 15 under the first <stack trace>, 20 under the second.
    stacks = df.filter(pl.col("kind") == Kind.STACK)["callchain"].to_list()
    assert [len(s) for s in stacks] == [15, 20]
    assert "tlb_flush_mmu" in stacks[1] and "do_vmi_align_munmap" in stacks[1]
    assert not ctx.skipped


def test_verbose_line(fixtures_dir):
    # "bash  4000 1 0 00000000 00010a95 [58127d26] 1720.415ms (+0.000ms): simple_strtoul (kstrtoul)"
    df, ctx = run(fixtures_dir / "latency" / "verbose_doc.txt")
    r = df.row(0, named=True)
    assert (r["comm"], r["pid"], r["cpu"], r["ts_ns"]) == ("bash", 4000, 1, 1_720_415_000)
    assert (r["func"], r["parent"], r["kind"]) == ("simple_strtoul", "kstrtoul", Kind.FUNCTION)


def test_timerlat_kept_as_events(fixtures_dir):
    path = fixtures_dir / "latency" / "timerlat_5.14.txt"
    assert latency.sniff(path.read_text()) >= 90
    df, ctx = run(path)
    assert ctx.meta["tracer"] == "timerlat"
    assert ctx.windows == []
    assert df["kind"].to_list() == [Kind.EVENT] * 4
    assert df["event"].to_list() == ["timerlat"] * 4
    assert df["ts_ns"].to_list() == [54_029_328_000, 54_029_339_000, 54_029_346_000, 54_029_353_000]
    assert df["pid"].to_list() == [0, 867, 0, 868]
    assert df["body"][1] == "#1     context thread timer_latency     11700 ns"


def test_sniff(corpus, fixtures_dir):
    assert latency.sniff((corpus / KB / "A/latency_irqsoff.txt").read_text()) >= 90
    assert latency.sniff((fixtures_dir / "latency" / "v2.6.26_latency_trace.txt").read_text()) >= 90
    assert latency.sniff((corpus / KB / "A/function.txt").read_text()[:65536]) == 0


def test_bad_lines_are_counted_not_fatal(corpus):
    data = (corpus / KB / "A/latency_irqsoff.txt").read_bytes().replace(
        b"pgtfree2-374       0d....    1us#", b"this is not a trace line at all"
    )
    df, ctx = run(data)
    assert ctx.skipped == {"unrecognised latency-trace line": 1}
    assert ctx.windows[0]["latency_ns"] == 4_045_000
    assert df.filter(pl.col("kind") == Kind.FUNCTION).height == 2


# --- property: lat_print_generic() + lat_print_timestamp() lines of any comm --------------
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(
    # (a comm starting with "#" in column 0 would read as a header line: left out)
    comm=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="#"),
                 min_size=1, max_size=16),
    pid=st.integers(0, 4_194_304),
    cpu=st.integers(0, 511),
    flags=st.text(alphabet="dDbX.NnpLlBhHsSzZ0123456789abcdef", min_size=4, max_size=7).filter(
        lambda f: not f[0].isdigit()
    ),
    usecs=st.integers(0, 10**9),
    mark=st.sampled_from(" !+#*@$"),
)
def test_lat_line_round_trip(comm, pid, cpu, flags, usecs, mark):
    # The kernel's formats: "%8.8s-%-7d %3d" + flags + " %4lldus%c: " + "func <-parent"
    # (the first flag column, irqs-off, is never a digit).
    line = f"{comm[:8]:>8}-{pid:<7d} {cpu:3d}{flags} {usecs:4d}us{mark}: unmap_vmas <-exit_mmap\n"
    df, ctx = run(line.encode())
    assert not ctx.skipped
    r = df.row(0, named=True)
    assert (r["comm"], r["pid"], r["cpu"], r["flags"]) == (comm[:8].strip(), pid, cpu, flags)
    assert r["ts_ns"] == usecs * 1000
    assert (r["func"], r["parent"], r["kind"]) == ("unmap_vmas", "exit_mmap", Kind.FUNCTION)


def test_comm_holding_dash_digits():
    # A comm such as "a-1 2" (8 characters) must not end at its own "-1".
    df, ctx = run(b"a-1 2-4711       3dN..   12us : unmap_vmas <-exit_mmap\n")
    r = df.row(0, named=True)
    assert (r["comm"], r["pid"], r["cpu"], r["flags"], r["ts_ns"]) == ("a-1 2", 4711, 3, "dN..", 12_000)


def test_hwlat_kept_as_events(fixtures_dir):
    # fixtures/latency/hwlat_4.13.txt: two "#N inner/outer(us)" lines (ftrace.rst).
    df, ctx = run(fixtures_dir / "latency" / "hwlat_4.13.txt")
    assert ctx.meta["tracer"] == "hwlat" and ctx.windows == [] and not ctx.skipped
    assert df["event"].to_list() == ["hwlat", "hwlat"]
    assert df["cpu"].to_list() == [1, 3]
    assert df["ts_ns"].to_list() == [19_452_055_471_000, 19_454_071_354_000]
    assert df["body"][0] == "#1     inner/outer(us):   12/14    ts:1499801089.066141940"
    # hwlat_entries.txt: "# entries-in-buffer/entries-written: 1/1   #P:32"
    df, ctx = run(fixtures_dir / "latency" / "hwlat_entries.txt")
    assert (ctx.meta["entries_in_buffer"], ctx.meta["entries_written"], ctx.meta["ncpus"]) == (1, 1, 32)
    assert df.height == 1 and df["cpu"][0] == 10


def test_trace_cmd_report_preamble(corpus):
    # trace-cmd report of a latency recording prints the kernel's text after its own
    # "version = 6" / "CPU N is empty" / "cpus=N" lines (docs/formats.md#trace-cmd-report):
    # kept as markers.
    data = b"version = 6\nCPU 1 is empty\ncpus=2\n" + (corpus / KB / "A/latency_irqsoff.txt").read_bytes()
    df, ctx = run(data)
    assert not ctx.skipped
    assert ctx.windows[0]["latency_ns"] == 4_045_000
    assert df.filter(pl.col("kind") == Kind.MARKER)["body"].to_list()[:3] == [
        "version = 6", "CPU 1 is empty", "cpus=2"
    ]


def test_osnoise_kept_as_events(fixtures_dir):
    # fixtures/latency/osnoise_5.14.txt: 8 per-CPU period lines (osnoise-tracer.rst).
    df, ctx = run(fixtures_dir / "latency" / "osnoise_5.14.txt")
    assert ctx.meta["tracer"] == "osnoise" and ctx.windows == [] and not ctx.skipped
    assert df.height == 8 and df["cpu"].to_list() == list(range(8))
    assert df["event"].unique().to_list() == ["osnoise"]
    assert df["body"][2] == "1000000       5675  99.43250     202      6      0   1013     25     21"
    # the legend's column titles ("MAX") are not flag names
    assert ctx.meta["lat_flag_columns"] == ["irqs-off", "need-resched", "hardirq/softirq", "preempt-depth"]


def test_run_config_names_the_preemption_model_as_the_kernel_does_elsewhere(corpus, tmp_path):
    """print_trace_header() prints M:preempt for preempt_model_full(): the run's config says
    full, as tracekit capture's --preempt and debugfs sched/preempt do, so latency runs and
    the other traces of a boot land in one report group; the window keeps the header's word."""
    import json

    import tracekit

    path = corpus / "kbuild-x86_64-6.1.192" / "A" / "latency_preemptoff.run1.txt"
    r = tracekit.ingest([str(path)], store=str(tmp_path / "s"), arch="x86_64", preempt="full")[0]
    st = tracekit.open_store(tmp_path / "s")
    cfg = json.loads(st.runs().collect()["config"][0])
    assert cfg["preempt_model"] == "full"
    assert st.windows().collect()["preempt_model"].to_list() == ["preempt"]
    assert r.run_id
