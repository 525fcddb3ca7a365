"""Traces as others publish them (kernel documentation, trace-cmd's man pages, list posts):
each case is the smallest input that showed a defect, then real published excerpts of the
same kind from corpus/wild (read in place; see its PROVENANCE.md).

Expected values are read off the lines by hand (the arithmetic is in the comments), never
taken from tracekit's output.
"""

from __future__ import annotations

import polars as pl
import pytest

from tests.helpers import ingest_text

WILD = "wild"


def _events(store) -> pl.DataFrame:
    return store.events().collect().sort("line")


# -- perf script without callchains --------------------------------------------------------


def test_perf_script_without_callchains_is_detected(tmp_path):
    """perf right-aligns the comm to 16 columns (``%16s``), so every line starts with
    blanks: the kprobe pair is still one span of ktask_run, 155865.157207 - 155865.157116
    = 91 us."""
    text = (
        "            bash 60728 [087] 155865.157116:                   probe:ktask_run: (ffffffffb7ee7a80)\n"
        "            bash 60728 [087] 155865.157207:       probe:ktask_run__return: (ffffffffb7ee7a80 <- ffffffffb7ee7b7b)\n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    assert res.format == "perf_script"
    sp = store.spans().collect()
    assert sp.select("func", "pid", "dur_ns", "complete").rows() == [("ktask_run", 60728, 91_000, True)]


# -- header-less stack traces -------------------------------------------------------------


def test_headerless_stack_trace_longer_than_its_records(tmp_path, corpus):
    """The kernel's timerlat print_stack example: one record and four ``=>`` frames, no
    header.  The frames belong to the record; it is read as ftrace text."""
    text = (
        "            bash-946   [003] ....   676.984929: <stack trace>\n"
        " => copy_process\n"
        " => _do_fork\n"
        " => sys_clone\n"
        " => ret_fast_syscall\n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    assert res.format == "ftrace"
    ev = _events(store)
    assert ev["func"].drop_nulls().to_list() == ["copy_process", "_do_fork", "sys_clone", "ret_fast_syscall"]
    assert ev.filter(pl.col("line") == 1).select("pid", "cpu", "ts_ns").row(0) == (946, 3, 676_984_929_000)
    assert res.counts["skipped_lines"] == 0


def test_timerlat_print_stack_tail_from_the_documentation(tmp_path, corpus):
    """Documentation/trace/timerlat-tracer.rst's ``tail -21 per_cpu/cpu7/trace``: 6 records
    (three irq_noise, one thread_noise, two timerlat) and 14 frames, no header."""
    path = corpus / WILD / "kdoc-6.x/timerlat-print_stack-tail.txt"
    res, store = ingest_text(tmp_path, path.read_text())
    assert res.error is None, res.error
    ev = _events(store)
    assert ev.filter(pl.col("body").str.starts_with("=>")).height == 14
    assert sorted(ev["event"].drop_nulls().to_list()) == ["irq_noise"] * 3 + ["thread_noise"] + ["timerlat"] * 2
    assert res.counts["skipped_lines"] == 0


# -- timerlat, osnoise, hwlat numbers -----------------------------------------------------

_TIMERLAT = (
    "        <idle>-0       [000] d.h1    54.029328: #1     context    irq timer_latency       932 ns\n"
    "         <...>-867     [000] ....    54.029339: #1     context thread timer_latency     11700 ns\n"
)
_TIMERLAT_HEADER = (
    "# tracer: timerlat\n"
    "#\n"
    "#                              _-----=> irqs-off\n"
    "#                             / _----=> need-resched\n"
    "#                            | / _---=> hardirq/softirq\n"
    "#                            || / _--=> preempt-depth\n"
    "#                            || /\n"
    "#                            ||||             ACTIVATION\n"
    "#         TASK-PID      CPU# ||||   TIMESTAMP    ID            CONTEXT                LATENCY\n"
    "#            | |         |   ||||      |         |                  |                       |\n"
)


@pytest.mark.parametrize("header", [True, False], ids=["with-header", "trace_pipe"])
def test_timerlat_records_one_kind_with_or_without_header(tmp_path, header):
    """trace_timerlat_print(): ``#%-5u context %6s timer_latency %9llu ns``.  The same two
    records are timerlat events with their numbers whether the tracer's header is there
    (documentation's ``cat trace``) or not (a trace_pipe excerpt)."""
    res, store = ingest_text(tmp_path, (_TIMERLAT_HEADER if header else "") + _TIMERLAT)
    assert res.error is None, res.error
    ev = _events(store)
    assert ev.select("kind", "event", "seqnum", "timer_context", "latency_ns").rows() == [
        ("event", "timerlat", 1, "irq", 932),
        ("event", "timerlat", 1, "thread", 11_700),
    ]


def test_osnoise_summary_columns(tmp_path, corpus):
    """trace_osnoise_print(): runtime, noise, % available, max single noise (all us) and the
    hw, nmi, irq, softirq, thread counters; the first record of the documentation's
    example, ``1000000        190  99.98100       9     18      0   1007     18      1``."""
    res, store = ingest_text(tmp_path, (corpus / WILD / "kdoc-6.x/osnoise-tracer.txt").read_text())
    assert res.error is None, res.error
    ev = _events(store)
    assert ev.height == 8 and set(ev["event"]) == {"osnoise"}
    first = ev.row(0, named=True)
    assert (first["runtime_ns"], first["noise_ns"], first["max_noise_ns"]) == (1_000_000_000, 190_000, 9_000)
    assert first["interference"] == {"hw": 18, "nmi": 0, "irq": 1007, "softirq": 18, "thread": 1}
    # the same line without its header reads the same
    line = [ln for ln in (corpus / WILD / "kdoc-6.x/osnoise-tracer.txt").read_text().splitlines() if "81.637220" in ln]
    res2, store2 = ingest_text(tmp_path, line[0] + "\n", name="pipe.txt")
    assert res2.error is None, res2.error
    again = _events(store2).row(0, named=True)
    assert {k: again[k] for k in ("event", "runtime_ns", "noise_ns", "max_noise_ns", "interference")} == {
        k: first[k] for k in ("event", "runtime_ns", "noise_ns", "max_noise_ns", "interference")
    }


def test_hwlat_inner_outer(tmp_path, corpus):
    """trace_hwlat_print(): ``#%-5u inner/outer(us): %4llu/%-5llu ts:...``; the first record
    of Documentation/trace/ftrace.rst's hwlat example is #1, 12/14 us."""
    res, store = ingest_text(tmp_path, (corpus / WILD / "kdoc-5.4/hwlat.txt").read_text())
    assert res.error is None, res.error
    ev = _events(store)
    assert ev.select("event", "seqnum", "latency_ns", "outer_latency_ns").row(0) == ("hwlat", 1, 12_000, 14_000)


def test_osnoise_tracepoint_durations(tmp_path, corpus):
    """The osnoise:* tracepoints print ``... duration %llu ns``: 1845, 2848, 3068 and 8812 ns
    in Documentation/trace/osnoise-tracer.rst's example."""
    res, store = ingest_text(tmp_path, (corpus / WILD / "kdoc-6.x/osnoise-events.txt").read_text())
    assert res.error is None, res.error
    ev = _events(store)
    assert ev.select("event", "noise_ns").rows() == [
        ("irq_noise", 1845), ("irq_noise", 2848), ("thread_noise", 3068), ("sample_threshold", 8812),
    ]


# -- trace-cmd 1.x, trace_printk, printed names --------------------------------------------


def test_tracecmd_v1_function_lines(tmp_path, corpus):
    """trace-cmd 1.x report: ``function: f <-- parent`` (libtraceevent's function plugin;
    the kernel prints ``<-``), no flags column.  Read as trace-cmd's function records."""
    text = (
        "              ls-13587 [002] 106467.860310: function: hrtick_start_fair <-- pick_next_task_fair\n"
        "       trace-cmd-13586 [003] 106467.860314: function:             up_read <-- do_page_fault\n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    assert res.format == "tracecmd_report"
    ev = _events(store)
    assert ev.select("kind", "func", "parent", "pid", "cpu").rows() == [
        ("function", "hrtick_start_fair", "pick_next_task_fair", 13587, 2),
        ("function", "up_read", "do_page_fault", 13586, 3),
    ]
    # the man page's whole example: 7 function records and one sched_switch (counted by hand)
    res, store = ingest_text(tmp_path, (corpus / WILD / "tracecmd-doc/record-function-sched_switch-old.txt").read_text(),
                             name="man.txt")
    kinds = _events(store)["kind"].to_list()
    assert (kinds.count("function"), kinds.count("event"), res.counts["skipped_lines"]) == (7, 1, 0)


def test_printed_parent_kept_beside_canonical(tmp_path):
    """``sym-offset`` prints ``+0x../0x..`` after both names, and compiler clones carry
    ``.part.5``: func and parent are canonical, raw_func and raw_parent as printed."""
    text = "            bash-2181  [001] ....  9537.645900: copy_process.part.5+0x14/0x1b08 <-_do_fork+0xd8/0x438\n"
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    row = _events(store).row(0, named=True)
    assert (row["func"], row["raw_func"]) == ("copy_process", "copy_process.part.5+0x14/0x1b08")
    assert (row["parent"], row["raw_parent"]) == ("_do_fork", "_do_fork+0xd8/0x438")


def test_trace_printk_with_symbol_offset_is_an_event(tmp_path):
    """trace_bprint_print() prints the caller with seq_print_ip_sym(), so under sym-offset
    a trace_printk line reads ``caller+0x28/0x6c: text``: a bprint event, the caller as its
    function."""
    text = (
        "             cat-884   [002] d...   333.875361: rpi_get_interrupt_info+0x28/0x6c: "
        "[cat] 17: 3f00b880.mailbox, irq_handler: bcm2835_mbox_irq+0x0/0x94 \n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    row = _events(store).row(0, named=True)
    assert (row["kind"], row["event"], row["func"], row["raw_func"]) == (
        "event", "bprint", "rpi_get_interrupt_info", "rpi_get_interrupt_info+0x28/0x6c")
    assert row["body"].startswith("rpi_get_interrupt_info+0x28/0x6c: [cat] 17: 3f00b880.mailbox")


@pytest.mark.parametrize("elision", ["[...]", "...", "            ...."])
def test_editor_elisions_are_named(tmp_path, elision):
    """Editors cut published traces with ``[...]`` or dots: not trace lines, and said so."""
    text = (
        "            bash-1977  [000] .... 17284.993652: sys_close <-system_call_fastpath\n"
        f"{elision}\n"
        "            bash-1977  [000] .... 17284.993653: __close_fd <-sys_close\n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    assert res.skipped == {"elided line ([...])": 1}


# -- trace-cmd record -T stacks --------------------------------------------------------------


def test_tracecmd_kernel_stack_frames_are_the_callchain(tmp_path, corpus):
    """trace-cmd record -T: a kernel_stack record, then ``=> func (addr)`` frames from the
    first column (trace-cmd-record.1.txt's example).  The frames are the record's
    callchain, innermost first; nothing is skipped."""
    path = corpus / WILD / "tracecmd-doc/record-T-kernel_stack.txt"
    res, store = ingest_text(tmp_path, path.read_text())
    assert res.error is None, res.error
    assert res.format == "tracecmd_report"
    ev = _events(store)
    st = ev.filter(pl.col("event") == "kernel_stack").row(0, named=True)
    assert st["kind"] == "stack"
    assert st["callchain"] == ["schedule", "cpu_idle", "start_secondary"]
    assert res.counts["skipped_lines"] == 0


def test_tracecmd_stack_split_across_chunks(tmp_path):
    """A stack whose frames fall into the next chunk still belongs to its record."""
    from tracekit.parsers import tracecmd_report
    from tracekit.parsers.base import LineChunk, ParseContext

    lines = [
        "          <idle>-0     [003] 58549.289091: sched_switch:         kworker/0:1:0 [120] R ==> trace-cmd:2603 [120]",
        "          <idle>-0     [003] 58549.289092: kernel_stack:         <stack trace>",
        "=> schedule (ffffffff814b260e)",
        "=> cpu_idle (ffffffff8100a38c)",
        "=> start_secondary (ffffffff814ab828)",
    ]
    chunks = [
        LineChunk(1, pl.Series("text", lines[:3]), is_last=False),
        LineChunk(4, pl.Series("text", lines[3:]), is_last=True),
    ]
    ctx = ParseContext("t.txt")
    out = pl.concat(list(tracecmd_report.parse(iter(chunks), ctx)))
    assert out.filter(pl.col("line") == 2)["callchain"].to_list() == [["schedule", "cpu_idle", "start_secondary"]]
    assert not ctx.skipped


# -- the 2.6.2x sched_switch tracer ----------------------------------------------------------


def test_sched_switch_tracer_records(tmp_path, corpus):
    """The sched_switch tracer of 2.6.27 printed TRACE_CTX / TRACE_WAKE records as
    ``prev_pid:prio:state ==> next_pid:prio:state`` (a switch) or with ``+`` (a wakeup):
    sched_switch and sched_wakeup events.  Documentation/ftrace.txt's example has 5
    wakeups and 10 switches (counted by hand) and one ``[...]``."""
    text = (
        "# tracer: sched_switch\n#\n"
        "#           TASK-PID   CPU#    TIMESTAMP  FUNCTION\n"
        "#              | |      |          |         |\n"
        "            bash-3997  [01]   240.132281:   3997:120:R   +  4055:120:R\n"
        "            bash-3997  [01]   240.132284:   3997:120:R ==>  4055:120:R\n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    ev = _events(store)
    assert ev.select("kind", "event", "pid", "cpu", "body").rows() == [
        ("event", "sched_wakeup", 3997, 1, "3997:120:R   +  4055:120:R"),
        ("event", "sched_switch", 3997, 1, "3997:120:R ==>  4055:120:R"),
    ]
    res, store = ingest_text(tmp_path, (corpus / WILD / "kdoc-2.6.35/sched_switch-tracer.txt").read_text(), name="doc.txt")
    assert res.error is None, res.error
    events = _events(store)["event"].to_list()
    assert (events.count("sched_wakeup"), events.count("sched_switch")) == (5, 10)
    assert res.skipped == {"elided line ([...])": 1}


# -- trace-cmd report of several files ---------------------------------------------------------


def test_report_of_two_files_is_two_runs(tmp_path, corpus):
    """``trace-cmd report -i trace.dat -i trace-guest.dat`` (trace-cmd-record.1.txt): every
    line carries its file's name right-aligned to the longest (print_handle_file(),
    ``"%*s: "``) and each file has its ``cpus=`` line.  One run per file, with its own CPU
    count and records; the file names are not comms; line numbers are the file's."""
    import tracekit

    path = corpus / WILD / "tracecmd-doc/report-two-files.txt"
    store = tracekit.open_store(tmp_path / "store")
    results = tracekit.ingest([str(path)], store=store, on_error="collect")
    assert [r.error for r in results] == [None, None]
    assert [r.path for r in results] == [f"{path} (trace.dat)", f"{path} (trace-guest.dat)"]
    runs = {r.run_id: r for r in results}
    assert len(runs) == 2
    ev = store.events().collect()
    rows = store.runs().collect()
    by_input = {}
    for row in rows.iter_rows(named=True):
        import json

        name = json.loads(row["meta"])["report_input"]
        mine = ev.filter(pl.col("run_id") == row["run_id"]).sort("line")
        by_input[name] = (row["ncpus"], mine["line"].to_list(), sorted(set(mine["comm"])))
    # host: lines 3 (ping) and 10 (sudo); guest: lines 4 to 9, all <idle>
    assert by_input == {
        "trace.dat": (28, [3, 10], ["ping", "sudo"]),
        "trace-guest.dat": (1, [4, 5, 6, 7, 8, 9], ["<idle>"]),
    }
    again = tracekit.ingest([str(path)], store=store, on_error="collect")
    assert [r.status for r in again] == ["duplicate", "duplicate"]


@pytest.mark.parametrize("rel,what", [
    ("kdoc-5.4/stack_trace.txt", "stack tracer"),
    ("kdoc-5.4/stack_trace.indented.txt", "stack tracer"),
    ("kdoc-5.4/hist-netif_receive_skb.txt", "hist trigger"),
])
def test_tracing_files_that_are_not_traces_are_named(tmp_path, corpus, rel, what):
    """The documentation's stack_trace table and a hist file are tracefs output, not
    traces: the error says which file it is."""
    res, _ = ingest_text(tmp_path, (corpus / WILD / rel).read_text())
    assert res.error and "not a trace" in res.error and what in res.error


def test_kernel_stack_trace_callchain_across_chunks():
    """The kernel's ``<stack trace>`` record carries its frames as its callchain (as the
    latency and trace-cmd readers give it), also when the frames fall into the next chunk."""
    from tracekit.parsers import ftrace_text
    from tracekit.parsers.base import LineChunk, ParseContext

    lines = [
        "            bash-946   [003] ....   676.984928: sys_clone <-ret_fast_syscall",
        "            bash-946   [003] ....   676.984929: <stack trace>",
        " => copy_process",
        " => _do_fork",
        " => sys_clone",
    ]
    chunks = [
        LineChunk(1, pl.Series("text", lines[:3]), is_last=False),
        LineChunk(4, pl.Series("text", lines[3:]), is_last=True),
    ]
    ctx = ParseContext("t.txt")
    out = pl.concat(list(ftrace_text.parse(iter(chunks), ctx))).sort("line")
    assert out.filter(pl.col("line") == 2)["callchain"].to_list() == [["copy_process", "_do_fork", "sys_clone"]]
    assert out["line"].to_list() == [1, 2, 3, 4, 5]
    assert not ctx.skipped


def test_noise_records_as_their_format_files_render_them():
    """Readers of the binary records see hwlat / osnoise / timerlat through the events'
    format files (kernel/trace/trace_entries.h): as F_printk prints them
    (``seq:%u\\tcontext:%d\\ttimer_latency:%llu``, ``noise:%llu\\tmax_sample:%llu\\thw:%u...``,
    ``seq:%u\\tts:...\\tinner:%llu\\touter:%llu...``) or as ``field=value``.  The numbers
    are the same columns as the kernel text's, in ns (hwlat and osnoise fields are us)."""
    from tracekit.parsers.noise import noise_columns

    bodies = pl.DataFrame({
        "event": ["timerlat", "timerlat", "hwlat", "osnoise", "osnoise"],
        "body": [
            "seq:1\tcontext:1\ttimer_latency:11700",
            "seqnum=2 context=0 timer_latency=769",
            "seq:3\tts:1499801089.0066141940\tinner:12\touter:14\tcount:6\tnmi-ts:0\tnmi-count:0",
            "noise:190\tmax_sample:9\thw:18\tnmi:0\tirq:1007\tsoftirq:18\tthread:1",
            "noise=656 runtime=1000000 max_sample=74 hw_count=23 nmi_count=0 irq_count=1006 softirq_count=16 thread_count=3",
        ],
    })
    out = bodies.select(**noise_columns(pl.col("body"), pl.col("event")))
    assert out.select("noise_event", "seqnum", "latency_ns", "outer_latency_ns", "timer_context").rows() == [
        ("timerlat", 1, 11_700, None, "thread"),
        ("timerlat", 2, 769, None, "irq"),
        ("hwlat", 3, 12_000, 14_000, None),
        ("osnoise", None, None, None, None),
        ("osnoise", None, None, None, None),
    ]
    assert out.select("runtime_ns", "noise_ns", "max_noise_ns").rows()[3:] == [
        (None, 190_000, 9_000), (1_000_000_000, 656_000, 74_000)]
    assert out["interference"].to_list()[3:] == [
        {"hw": 18, "nmi": 0, "irq": 1007, "softirq": 18, "thread": 1},
        {"hw": 23, "nmi": 0, "irq": 1006, "softirq": 16, "thread": 3},
    ]


def test_tracecmd_report_timerlat_record(tmp_path):
    """trace-cmd report prints the timerlat record with its format's F_printk."""
    text = (
        "cpus=2\n"
        "          <idle>-0     [000]    54.029328: timerlat:             seq:1\tcontext:0\ttimer_latency:932\n"
    )
    res, store = ingest_text(tmp_path, text)
    assert res.error is None, res.error
    row = _events(store).row(0, named=True)
    assert (row["event"], row["seqnum"], row["timer_context"], row["latency_ns"]) == ("timerlat", 1, "irq", 932)
