"""The compiled reader of latency lines (tracekit.parsers.latency._scan_lat) against the
general path's regular expressions, line by line, on lines printed the way the kernel
prints them (kernel/trace/trace_output.c: ``lat_print_generic()``'s ``%8.8s-%-7d %3d``,
``trace_print_lat_fmt()``'s flag columns, ``lat_print_timestamp()``'s `` %4lldus%c: `` or
the counter clock's `` %4lld: ``, then ``print_fn_trace()``'s ``%ps <-%ps`` or an event)
and on the same lines damaged.
"""

from __future__ import annotations

import polars as pl
from helpers import damage
from hypothesis import given, settings
from hypothesis import strategies as st

from tracekit.parsers import latency as lat
from tracekit.parsers.base import LineChunk, ParseContext

COMMS = st.sampled_from(["pgtfree2", "bash", "<idle>", "kworker/0:1", "systemd-journal", "a b", "x-1", "12", "cmd"])
BODIES = st.sampled_from(["exit_mmap <-exit_mmap", "tracer_preempt_on <-exit_mmap", "<stack trace>",
                          "sched_switch: prev_comm=bash prev_pid=1 ==> next_comm=a next_pid=2", "0",
                          "do_wp_page.cold <-handle_mm_fault", "x (y)"])
MARKS = st.sampled_from(" !+#*@$")
FLAGS = st.sampled_from(["d...", "d..1", "...1.", "dNh2.", "d.s.1", "dnHb2..1"])


@st.composite
def lat_lines(draw) -> tuple[str, dict]:
    """One lat_print_generic() + lat_print_timestamp() line and the fields it was printed
    from."""
    comm, pid, cpu = draw(COMMS), draw(st.integers(0, 4194304)), draw(st.integers(0, 511))
    flags, t, body = draw(FLAGS), draw(st.integers(0, 10**9)), draw(BODIES)
    counter = draw(st.integers(0, 9)) == 0
    stamp = f" {t:4d}: " if counter else f" {t:4d}us{draw(MARKS)}: "
    line = f"{comm[:8]:>8}-{pid:<7d} {cpu:3d}{flags}{stamp}{body}"
    want = {"comm": comm[:8].strip(), "pid": pid, "cpu": cpu, "flags": flags, "time": t,
            "unit": None if counter else "us", "rest": body}
    if " <-" in body:  # print_fn_trace()
        want["f"], want["p1"] = body.split(" <-")
    return line, want


_CLAIMS = (lat._TRACER_RE, lat._VERSION_RE, lat._LATENCY_RE, lat._LATENCY10_RE, lat._TASK_RE, lat._STARTED_RE,
           lat._ENDED_RE, lat._LEGEND_RE, lat._HELP_RE, r"^\s*$", lat._FRAME_RE, lat._VERBOSE_RE, lat._GRAPH_RE)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(lat_lines(), st.integers(0, 2)), min_size=1, max_size=30), st.data())
def test_compiled_lines_read_as_the_regular_expressions_read_them(cases, data):
    lines, wants = [], []
    for (line, want), harm in cases:
        if harm == 0:
            damaged = damage(data.draw, line, b" -:.#|(+u0123456789s=_\\/\t\x00\xb5\xff", least=1)
            if damaged != line:
                line, want = damaged, None
        lines.append(line)
        wants.append(want)
    df = lat._scan_chunk(pl.DataFrame({"line": range(len(lines)), "text": lines}))
    t = pl.col("text")
    general = df.select(t.str.extract_groups(lat._LAT_RE).alias("g"),
                        *[t.str.contains(rx).alias(f"claim{i}") for i, rx in enumerate(_CLAIMS)]).unnest("g")
    for i, row in enumerate(df.iter_rows(named=True)):
        g = general.row(i, named=True)
        if row["fast"]:  # read as the general path reads it, and claimed by no other grammar
            assert not any(g[f"claim{k}"] for k in range(len(_CLAIMS))), lines[i]
            assert g["rtype"] is None and g["pid"] is not None, lines[i]
            assert (row["comm"], row["pid"], row["cpu"], row["flags"], row["time"], row["unit"], row["rest"]) == (
                g["comm"].strip(), int(g["pid"]), int(g["cpu"]), g["flags"], int(g["time"]), g["unit"],
                g["rest"].strip()), lines[i]
        if row["fn"]:  # a "func <-parent" body: as the body's expressions read it
            body = pl.select(pl.lit(row["rest"]).str.extract_groups(lat._FUNC_PARENT_RE).alias("b")).unnest("b").row(0, named=True)
            assert (row["f"], row["p1"], body["p2"]) == (body["f"], body["p1"], None), lines[i]
            assert not pl.select(pl.lit(row["rest"]).str.contains(lat._EVENT_RE)).item(), lines[i]
        if wants[i] is not None:  # every line printed the kernel's way is taken, as printed
            assert row["fast"], lines[i]
            assert {k: row[k] for k in wants[i]} == wants[i], lines[i]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_scanned_without_failing(data):
    lat.scan_bytes(data)


def test_scan_bytes_reads_a_snapshot():
    text = (b"# tracer: preemptoff\n# latency: 11574 us, #2/2, CPU#0 | (M:preempt VP:0, KP:0, SP:0 HP:0 #P:1)\n"
            b"pgtfree2-153       0...1.    0us*: exit_mmap <-exit_mmap\n"
            b"pgtfree2-153       0...1. 11568us : exit_mmap <-exit_mmap\n")
    lat.scan_bytes(text)
    ctx = ParseContext("t")
    (df,) = list(lat.parse(iter([LineChunk(1, raw=text)]), ctx))
    assert df["ts_ns"].to_list() == [0, 11_568_000] and df["func"].to_list() == ["exit_mmap"] * 2


HEADER = [
    "# tracer: {tracer}", "#", "# {tracer} latency trace v1.1.5 on 6.1.192-tkA",
    "# --------------------------------------------------------------------",
    "# latency: {lat} us, #{n}/{n}, CPU#{cpu} | (M:preempt VP:0, KP:0, SP:0 HP:0 #P:2)",
    "#    -----------------", "#    | task: {comm}-{pid} (uid:0 nice:0 policy:0 rt_prio:0)",
    "#    -----------------", "#  => started at: {f}", "#  => ended at:   {f}", "#", "#",
    "#                    _------=> CPU#            ", "#                   / _-----=> irqs-off/BH-disabled",
    "#                  | / _----=> need-resched    ", "#                  || / _---=> hardirq/softirq ",
    "#                  ||| / _--=> preempt-depth   ", "#                  |||| / _-=> migrate-disable ",
    "#                  ||||| /     delay           ", "#  cmd     pid     |||||| time  |   caller     ",
    "#     \\   /        ||||||  \\    |    /       ",
]
FRAMES = st.sampled_from([" => mmput", " => do_exit", " => __x64_sys_exit_group+0x14/0x20", " => <stack trace>",
                          "  =>  zap_pte_range.isra.0  ", " => 0xffffffff81000000"])
TRACERS = st.sampled_from(["preemptoff", "irqsoff", "wakeup_rt"])


@st.composite
def snapshots(draw) -> str:
    """One latency snapshot as print_trace_header() and the line printers write it: the
    header, lat_print_generic() lines, a "<stack trace>" line with its frames, the capture
    script's note, blank lines."""
    n = draw(st.integers(0, 8))
    out = [ln.format(tracer=draw(TRACERS), lat=draw(st.integers(0, 20000)), n=n + 1, cpu=draw(st.integers(0, 3)),
                     comm=draw(COMMS), pid=draw(st.integers(0, 99999)), f="exit_mmap")
           for ln in HEADER if draw(st.integers(0, 15))]
    out += [draw(lat_lines())[0] for _ in range(n)]
    if draw(st.booleans()):
        out.append("pgtfree2-153       0...1. 11642us : " + draw(st.sampled_from(["<stack trace>", "<user stack trace>"])))
        out += draw(st.lists(FRAMES, max_size=5))
    out += draw(st.lists(st.sampled_from(["", "   ", "max_latency_us=11574", " => orphan"]), max_size=2))
    return "\n".join(out)


def _parsed(text: str, per_chunk: int, compiled: bool):
    lines = text.split("\n")
    chunks = [LineChunk(i + 1, pl.Series("text", lines[i:i + per_chunk], dtype=pl.String),
                        is_last=i + per_chunk >= len(lines)) for i in range(0, len(lines), per_chunk)]
    ctx = ParseContext("t")
    frames = list(lat.parse(iter(chunks), ctx, compiled=compiled))
    return (pl.concat(frames) if frames else None), ctx


@settings(max_examples=30, deadline=None)
@given(st.lists(snapshots(), min_size=1, max_size=4), st.integers(1, 40), st.data())
def test_compiled_path_reads_files_as_the_general_path(snaps, per_chunk, data):
    """Headers, windows, stack traces and rows of whole files (some lines damaged) read by
    the compiled reader and frame assembly are what the general path reads."""
    lines = "\n".join(snaps).split("\n")
    for k in data.draw(st.lists(st.integers(0, len(lines) - 1), max_size=3)):
        lines[k] = damage(data.draw, lines[k], b" -:.#|(+u0123456789s=_<>\\/\t\xb5", least=1)
    text = "\n".join(lines)
    fast, fctx = _parsed(text, per_chunk, True)
    slow, sctx = _parsed(text, per_chunk, False)
    assert (fast is None) == (slow is None)
    if fast is not None:
        assert fast.equals(slow), text
    assert fctx.windows == sctx.windows
    assert fctx.meta == sctx.meta
    assert fctx.skipped == sctx.skipped
