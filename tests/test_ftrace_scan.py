"""The compiled reader of ftrace text (function tracer, trace events, k(ret)probes, stack
traces, the OS-noise tracers' records) checked against the general path's regular
expressions on random and damaged lines.

Lines are printed as the kernel prints them: ``trace_print_context()``
(kernel/trace/trace_output.c: ``%16s-%-7d`` comm-pid, ``%16s-%-5d`` before 4.13, the
record-tgid column ``(%7d)`` or ``(-------)``, ``[%03d]``, the irq-info flags of
``trace_print_lat_fmt()``: 4 characters before 5.13, 5 after, or none with noirq-info, then
``%5lu.%06lu: `` or a counter clock's ``%12llu: ``), then the body: ``print_fn_trace()``'s
``func <-parent`` (with sym-offset ``+0x1a/0x40``, sym-addr `` <ffffffff81234567>``,
`` [module]``, ppc64 ``.dot`` symbols), an event's ``name: fields``, kprobe ``(func+0x0/0x150)``
and kretprobe ``(caller+0xd4/0x310 <- func) arg1=0x0``, ``<stack trace>`` and its `` => func``
frames, hwlat / osnoise / timerlat records, the syscall tracer's, and records the compiled path leaves to the
general one (trace_printk under sym-offset, the sched_switch tracer's records, lost events).  Some lines are then damaged (bytes
replaced, inserted, cut).  Whatever the compiled path takes must read exactly as the
general path reads it; every line printed undamaged in a shape it knows must be taken;
nothing is dropped; no input makes it fail.
"""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import assert_general_reads_as_taken, damage, taken_as_printed
from tracekit.parsers import ftrace_text as ft
from tracekit.parsers.base import LineChunk, ParseContext

COLUMNS = ("cpu", "pid", "comm", "ts_ns", "kind", "func", "raw_func", "parent", "raw_parent", "flags", "event", "body",
           "_ts_dot", "seqnum", "latency_ns", "outer_latency_ns", "runtime_ns", "noise_ns", "max_noise_ns", "timer_context",
           "interference")
COMMS = st.sampled_from(["bash", "kworker/1:2", "Web Content", "systemd-journal", "<idle>", "a-1", "x -2 [3]"])
SYMBOLS = st.sampled_from(["exit_mmap", "zap_pte_range.isra.0", ".free_pgtables", "do_wp_page.cold", "f"])
FLAGS = st.sampled_from([None, "....", "d..2", "dNs1", "d..2.", "....1", "dNhs2", "D.h.3."])


def _context(draw) -> tuple[str, dict]:
    comm, pid, cpu = draw(COMMS), draw(st.integers(0, 4194304)), draw(st.integers(0, 4096))
    out = f"{comm:>16}-{pid:<{draw(st.sampled_from([5, 7]))}d} "
    tgid = draw(st.sampled_from([None, "num", "none"]))
    if tgid == "num":
        out += f"({draw(st.integers(1, 4194304)):7d}) "
    elif tgid == "none":
        out += "(-------) "
    out += f"[{cpu:03d}] "
    flags = draw(FLAGS)
    if flags:
        out += flags + " "
    ns = draw(st.integers(0, 10**14))
    if draw(st.booleans()):
        out += f"{ns // 10**9:5d}.{ns % 10**9 // 1000:06d}: "
        ts = ns // 1000 * 1000
    else:  # a counter clock
        out += f"{ns:12d}: "
        ts = ns
    comm = comm.strip()
    return out, {"comm": comm, "pid": pid, "cpu": cpu, "flags": flags, "ts_ns": ts}


def _symbol(draw) -> tuple[str, str]:
    """A symbol as %ps / %pS print it under the sym-offset and sym-addr options: (text,
    canonical name)."""
    name = draw(SYMBOLS)
    text = name + (f"+0x{draw(st.integers(0, 4096)):x}/0x{draw(st.integers(1, 8192)):x}" if draw(st.booleans()) else "")
    canon = name.lstrip(".").split(".")[0]
    return text, canon


@st.composite
def _line(draw) -> tuple[str, dict | None]:
    """A line and what the compiled path must read from it (None: the general path's)."""
    head, want = _context(draw)
    shape = draw(st.sampled_from(["function", "function", "event", "kprobe", "kretprobe", "stack", "frame", "hwlat",
                                  "osnoise", "timerlat", "syscall", "printk", "ctxwake", "marker", "lost"]))
    if shape == "function":
        (f, fc), (p, pc) = _symbol(draw), _symbol(draw)
        mod = draw(st.sampled_from(["", " [ext4]"]))
        addr = draw(st.sampled_from(["", " <ffffffff81234567>"]))
        body = f"{f}{mod}{addr} <-{p}{addr}" if draw(st.booleans()) else f"{f}{mod}{addr}"
        want.update(kind="function", func=fc, event="function")
        if " <-" in body:
            want["parent"] = pc
    elif shape == "event":
        name = draw(st.sampled_from(["sched_switch", "tlb_flush", "tracing_mark_write", "irq:irq_handler_entry"]))
        fields = draw(st.sampled_from(["prev_comm=a b prev_pid=1 ==> next_comm=c next_pid=2", "pages:-1 reason:x (3)",
                                       "", "(not a probe"]))
        body = f"{name}: {fields}"
        want = dict(want, kind="event", event=name, body=fields) if fields else None  # ("name:" alone is a marker)
    elif shape == "kprobe":
        f = draw(SYMBOLS)
        body = f"p_{f.strip('.')}_0: ({f}+0x{draw(st.integers(0, 15)):x}/0x150) arg1=0x1"
        want.update(kind="kprobe_entry", func=f.lstrip(".").split(".")[0])
    elif shape == "kretprobe":
        f = draw(SYMBOLS)
        body = f"r_{f.strip('.')}_0: (exit_mmap+0xd4/0x310 <- {f}) ret=0x0"
        want.update(kind="kprobe_exit", func=f.lstrip(".").split(".")[0])
    elif shape == "stack":
        body = draw(st.sampled_from(["<stack trace>", "<user stack trace>"]))
        want.update(kind="stack", body=body, event=None)
    elif shape == "frame":  # trace_stack_print()
        f = draw(SYMBOLS)
        return f" => {f}", {"kind": "stack", "func": f.lstrip(".").split(".")[0], "body": f"=> {f}", "pid": None}
    elif shape == "syscall":  # print_syscall_enter() / print_syscall_exit()
        name, rest = draw(st.sampled_from(["sys_close", "sys_munmap"])), draw(st.sampled_from(
            ["(fd: 3)", "(addr: 7f8f972d4000, len: 2000000)", " -> 0x0", " -> 0xfffffffffffffff2"]))
        body = name + rest
        want.update(kind="event", event=name, body=rest)
    elif shape in ("hwlat", "osnoise", "timerlat"):
        body, noise = draw(_noise(shape))
        want.update(kind="event", event=shape, body=body, **noise)
    else:
        body = {
            "printk": "pgtfree_begin+0x28/0x6c: hello",
            "marker": "something odd: ",
            "ctxwake": "  415:120:S ==> [000]   416:120:R pgtfree",
        }.get(shape)
        want = None
        if shape == "lost":
            return f"CPU:{draw(st.integers(0, 64))} [LOST {draw(st.integers(1, 10**6))} EVENTS]", None
    return head + body, want


@st.composite
def _noise(draw, tracer: str) -> tuple[str, dict]:
    """A record of an OS-noise tracer as it prints it (kernel/trace/trace_output.c:
    trace_hwlat_print(), trace_osnoise_print(), trace_timerlat_print()), and its numbers."""
    seq = draw(st.integers(0, 10**6))
    if tracer == "hwlat":
        inner, outer = draw(st.integers(0, 10**5)), draw(st.integers(0, 10**5))
        body = f"#{seq:<5d} inner/outer(us): {inner:4d}/{outer:<5d} ts:1499801089.066141940"
        body += draw(st.sampled_from(["", " count:6", " count:6 nmi-total:4 nmi-count:1"]))
        return body, {"seqnum": seq, "latency_ns": inner * 1000, "outer_latency_ns": outer * 1000}
    if tracer == "timerlat":
        ctx, lat = draw(st.sampled_from(["irq", "thread", "user-ret"])), draw(st.integers(0, 10**9))
        return f"#{seq:<5d} context {ctx:>6s} timer_latency {lat:9d} ns", {"seqnum": seq, "latency_ns": lat,
                                                                            "timer_context": ctx}
    runtime, noise, mx = draw(st.integers(0, 10**7)), draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))
    counts = [draw(st.integers(0, 10**5)) for _ in range(5)]
    body = f"{runtime} {noise:10d} {draw(st.integers(0, 100)):3d}.{draw(st.integers(0, 99999)):05d} {mx:7d}"
    body += "".join(f" {c:6d}" for c in counts)
    return body, {"runtime_ns": runtime * 1000, "noise_ns": noise * 1000, "max_noise_ns": mx * 1000,
                  "interference": dict(zip(("hw", "nmi", "irq", "softirq", "thread"), counts))}


def _damage(draw, text: str) -> str:
    return damage(draw, text, b" -[]().:<>+/#0123456789x\t\x00\xa0\xc2\xff", least=1)


@st.composite
def _chunk(draw) -> tuple[list[str], list[dict | None]]:
    lines, wants = [], []
    for _ in range(draw(st.integers(1, 30))):
        text, want = draw(_line())
        if draw(st.integers(0, 3)) == 0:
            damaged = _damage(draw, text)
            if damaged != text:
                text, want = damaged, None
        lines.append(text)
        wants.append(want)
    return lines, wants


def _both(lines: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    raw = ("\n".join(lines) + "\n").encode("latin-1")
    chunk = LineChunk(1, raw=raw)
    good, rest = ft._parse_fast(chunk)
    general = ft._parse_general(pl.DataFrame({"line": chunk.line_numbers, "text": chunk.lines}), ParseContext("t"))
    return good, rest, general


@settings(max_examples=300, deadline=None)
@given(_chunk())
def test_compiled_lines_read_as_the_regular_expressions_read_them(case):
    lines, wants = case
    good, rest, general = _both(lines)
    assert_general_reads_as_taken(general, good, "seq", COLUMNS)
    taken = taken_as_printed(good, lines, wants)
    # and nothing is lost: every line but the header and blank lines is taken or handed back
    said = {i for i, ln in enumerate(lines, 1) if ln.strip() and not ln.startswith("#")}
    assert set(taken) | set(rest["line"].to_list()) >= said
    assert not set(taken) & set(rest["line"].to_list())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_are_scanned_without_failing(data):
    ft.scan_bytes(data)
    chunk = LineChunk(1, raw=data)
    good, rest = ft._parse_fast(chunk)
    assert good.height + rest.height <= chunk.n_lines


def test_the_compiled_path_takes_the_generated_benchmark_lines():
    """Every line of benchmarks/gen_text.py's function and events text, with each of its
    trace options, is read by the compiled path."""
    import importlib.util
    import sys
    from pathlib import Path

    import numpy as np

    spec = importlib.util.spec_from_file_location("gen_text", Path(__file__).parents[1] / "benchmarks" / "gen_text.py")
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen
    spec.loader.exec_module(gen)
    rng = np.random.default_rng(3)
    for opt in (gen.Options(), gen.Options(tgid=True, counter_clock=True, sym_offset=True),
                gen.Options(irq_info=False, pid_width=5)):
        for fmt in ("function", "events"):
            lines = [gen.LINES[fmt](rng, 50 * 10**9 + i * 1000, 4, opt).rstrip("\n") for i in range(300)]
            good, rest, general = _both(lines)
            assert good.height == len(lines) and rest.height == 0, (fmt, opt)
            assert good.drop("seq").equals(general.drop("seq").select(good.drop("seq").columns)), (fmt, opt)
