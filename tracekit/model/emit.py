"""Synthetic traces from the replay model (docs/model.md#synthetic-traces), in the text
formats tracekit's parsers read, with a JSON ground-truth sidecar that says exactly what a
reader must recover.

Formats (layouts from docs/formats.md; kernel functions named are the printers in
``kernel/trace/``):

* ``function_graph`` -- the ``trace`` file of the function_graph tracer
  (``print_graph_prologue``, ``print_graph_duration``, ``trace_print_graph_duration``):
  options abstime, proc, cpu, overhead marks (modern ``$@*#!+`` or the old ``!+``), tail
  comments ``} /* func */``.
* ``function`` -- the function tracer, irq-info header (``trace_print_context`` +
  ``print_fn_trace``): ``func <-parent``.
* ``preemptoff`` -- the latency snapshot of the longest preempt-off window, modern layout
  (``print_trace_header``, ``lat_print_generic``, ``lat_print_timestamp``).
* ``events`` -- ``tlb:tlb_flush`` tracepoint lines, ``pages:%ld reason:%s (%d)``.

Any arch: ppc64 prints ELFv1 dot symbols (``.free_pgtables``).  Durations are exact to the
nanosecond where the kernel prints them so (under 10 ms); the sidecar states the value as
printed, so a reader that recovers the trace recovers the sidecar exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from tracekit.errors import ModelError
from tracekit.model import ModelResult, simulate
from tracekit.model.arch import Arch, get_arch

__all__ = [
    "EmitOptions",
    "emit",
    "function_graph_text",
    "function_text",
    "preemptoff_text",
    "tlb_flush_text",
    "FORMATS",
    "TEXT_FORMATS",
]

FORMATS = ("function_graph", "function", "preemptoff", "events", "tracedat", "tracedat_swapped")
#: Text formats written by default (trace.dat on request).
TEXT_FORMATS = ("function_graph", "function", "preemptoff", "events")

#: x86 ``enum tlb_flush_reason`` as the tlb_flush event prints it.
TLB_LOCAL_MM_SHOOTDOWN = ("local mm shootdown", 3)
TLB_REMOTE_SEND_IPI = ("remote ipi send", 4)


@dataclass
class EmitOptions:
    """The traced task, the clock origin, and the tracer options to print with."""

    comm: str = "memhog"
    pid: int = 4242
    cpu: int = 1
    ncpus: int = 4
    t0_ns: int = 5_123_456_789_000  # 5123.456789 s after boot: the first event
    abstime: bool = False  # funcgraph-abstime
    proc: bool = False  # funcgraph-proc
    cpu_column: bool = True  # funcgraph-cpu
    overhead: bool = True  # funcgraph-overhead
    tail: bool = False  # funcgraph-tail
    old_marks: bool = False  # kernels before ~4.x: only '!' and '+'
    kernel: str = "6.1.0-tracekit"
    root_parent: str = "mmput"
    #: function_graph: print a task-switch block (``memhog-4242 => kworker-77`` and back)
    #: after every Nth preempt-off window end, where a PREEMPT kernel would preempt (0: none)
    switch_every: int = 0
    switch_to: tuple[str, int] = ("kworker/1:1", 77)
    #: function tracer: drop ``lost_run`` lines out of every ``lost_every`` and print the
    #: kernel's ``CPU:N [LOST k EVENTS]`` line in their place (0: nothing lost)
    lost_every: int = 0
    lost_run: int = 3
    #: function_graph: the same teardown on this many CPUs at once (cpu, cpu+1, ... with
    #: pids pid, pid+1, ...), started ``stagger_ns`` apart; lines interleave by time
    copies: int = 1
    stagger_ns: int = 333


def _events_frame(result: ModelResult) -> pl.DataFrame:
    sim = result.sim
    if sim is None:
        raise ModelError("emitters need a result simulated with record=True")
    rows = [e for e in sim.events if e[0] in ("entry", "exit")]
    return pl.DataFrame(
        {
            "type": [e[0] for e in rows],
            "ts": [e[1] for e in rows],
            "func": [e[2] for e in rows],
            "depth": [e[3] for e in rows],
            "parent": [e[4] if e[0] == "entry" else None for e in rows],
            "dur": [e[4] if e[0] == "exit" else None for e in rows],
        },
        schema={"type": pl.String, "ts": pl.Int64, "func": pl.String, "depth": pl.Int32,
                "parent": pl.String, "dur": pl.Int64},
    )


def _mark(dur: pl.Expr, old: bool) -> pl.Expr:
    """``trace_find_mark``: the overhead / delay mark for a duration in ns (strictly greater)."""
    if old:
        return pl.when(dur > 100_000).then(pl.lit("!")).when(dur > 10_000).then(pl.lit("+")).otherwise(pl.lit(" "))
    e = pl.when(dur > 1_000_000_000).then(pl.lit("$"))
    for limit, ch in ((100_000_000, "@"), (10_000_000, "*"), (1_000_000, "#"), (100_000, "!"), (10_000, "+")):
        e = e.when(dur > limit).then(pl.lit(ch))
    return e.otherwise(pl.lit(" "))


def _graph_duration(dur: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """``trace_print_graph_duration``: (text of width >= 8 + " us " padding, the ns it states).

    usecs, then "." and as many digits of the 3-digit nsecs as keep the number within 7
    digits (3 up to 9999 us, 2, 1, none from 7 integer digits), " us ", spaces to 8."""
    usecs = (dur // 1000).cast(pl.String)
    nsecs = (dur % 1000).cast(pl.String).str.pad_start(3, "0")
    ulen = usecs.str.len_chars()
    keep = pl.when(ulen >= 7).then(0).otherwise(pl.min_horizontal(pl.lit(3), 7 - ulen))
    frac = nsecs.str.slice(0, keep)
    num = pl.when(keep > 0).then(pl.concat_str(usecs, pl.lit("."), frac)).otherwise(usecs)
    text = pl.concat_str(num, pl.lit(" us "), pl.lit(" ").repeat_by((8 - num.str.len_chars()).clip(0, 8)).list.join(""))
    scale = pl.when(keep == 3).then(1).when(keep == 2).then(10).when(keep == 1).then(100).otherwise(1000)
    stated = (dur // 1000) * 1000 + pl.when(keep > 0).then(frac.cast(pl.Int64, strict=False).fill_null(0) * scale).otherwise(0)
    return text, stated


def _abstime(ts_abs: pl.Expr) -> pl.Expr:
    """``%5lu.%06lu`` seconds.microseconds."""
    return pl.concat_str(
        (ts_abs // 1_000_000_000).cast(pl.String).str.pad_start(5),
        pl.lit("."),
        ((ts_abs % 1_000_000_000) // 1000).cast(pl.String).str.pad_start(6, "0"),
    )


def _proc(comm: str, pid: int) -> str:
    """``print_graph_proc``: comm cut to 7 characters, "-pid", centred in 14 columns."""
    s = f"{comm[:7]}-{pid}"
    spaces = max(0, 14 - len(s))
    return " " * (spaces // 2) + s + " " * (spaces - spaces // 2)


def function_graph_text(result: ModelResult, arch: Arch, opt: EmitOptions) -> tuple[str, dict[str, Any]]:
    """The function_graph ``trace`` file of the simulated teardown, and its ground truth:
    per function, the calls and the sum of the durations the trace states."""
    ev = _events_frame(result)
    nxt_type = pl.col("type").shift(-1)
    nxt_depth = pl.col("depth").shift(-1)
    prv_type = pl.col("type").shift(1)
    prv_depth = pl.col("depth").shift(1)
    ev = ev.with_columns(
        leaf=(pl.col("type") == "entry") & (nxt_type == "exit") & (nxt_depth == pl.col("depth")),
        leaf_exit=(pl.col("type") == "exit") & (prv_type == "entry") & (prv_depth == pl.col("depth")),
        next_dur=pl.col("dur").shift(-1),
    )
    ev = ev.filter(~pl.col("leaf_exit")).with_columns(
        kind=pl.when(pl.col("leaf")).then(pl.lit("leaf")).otherwise(pl.col("type")),
        dur=pl.when(pl.col("leaf")).then(pl.col("next_dur")).otherwise(pl.col("dur")),
    )
    dtext, stated = _graph_duration(pl.col("dur"))
    sym = pl.lit(arch.symbol_prefix) + pl.col("func")
    body = (
        pl.when(pl.col("kind") == "leaf").then(pl.concat_str(sym, pl.lit("();")))
        .when(pl.col("kind") == "entry").then(pl.concat_str(sym, pl.lit("() {")))
        .otherwise(pl.concat_str(pl.lit("} /* "), sym, pl.lit(" */")) if opt.tail else pl.lit("}"))
    )
    indent = pl.lit(" ").repeat_by(pl.col("depth") * 2).list.join("")
    mark = _mark(pl.col("dur"), opt.old_marks) if opt.overhead else pl.lit(" ")
    durcol = (
        pl.when(pl.col("kind") == "entry").then(pl.lit(" " * 14 + "|  "))
        .otherwise(pl.concat_str(mark, pl.lit(" "), dtext, pl.lit("|  ")))
    )
    width = len(str(max(opt.ncpus - 1, opt.cpu + opt.copies - 1, 0)))
    copies = []
    for k in range(max(1, opt.copies)):
        cpu_k, pid_k, shift = opt.cpu + k, opt.pid + k, k * opt.stagger_ns
        parts: list[pl.Expr] = []
        if opt.abstime:
            parts.append(pl.concat_str(_abstime(pl.col("ts") + opt.t0_ns + shift), pl.lit(" |  ")))
        if opt.cpu_column:
            parts.append(pl.lit(f" {cpu_k:>{width}d}) "))
        if opt.proc:
            parts.append(pl.lit(_proc(opt.comm, pid_k) + " | "))
        parts += [durcol, indent, body]
        one = ev.with_columns(line=pl.concat_str(parts), stated=stated, copy=pl.lit(k),
                              order=pl.int_range(pl.len()), t=pl.col("ts") + shift)
        if opt.switch_every and result.sim is not None and result.sim.window_list:
            # verif_pid's block, after the line that ends every Nth window, and back again
            ends = [w[1] for w in result.sim.window_list][opt.switch_every - 1 :: opt.switch_every]
            cpu = f" {cpu_k:>{width}d}) "
            me, other = _proc(opt.comm, pid_k), _proc(opt.switch_to[0], opt.switch_to[1] + k)
            rule = " ------------------------------------------"
            block = (f"\n{rule}\n{cpu}{me} => {other}\n{rule}\n"
                     f"\n{rule}\n{cpu}{other} => {me}\n{rule}\n")
            last_at_end = (pl.col("ts").is_in(ends) & (pl.col("ts").shift(-1) != pl.col("ts")).fill_null(True))
            one = one.with_columns(line=pl.when(last_at_end).then(pl.concat_str(pl.col("line"), pl.lit(block)))
                                   .otherwise(pl.col("line")))
        copies.append(one)
    # the trace iterator merges the per-CPU buffers by timestamp
    out = pl.concat(copies).sort(["t", "copy", "order"])
    header = ["# tracer: function_graph", "#"]
    h1, h2 = "#", "#"
    if opt.abstime:
        h1 += "     TIME       "
        h2 += "      |         "
    if opt.cpu_column:
        h1 += " CPU"
        h2 += " |  "
    if opt.proc:
        h1 += "  TASK/PID       "
        h2 += "   |    |        "
    h1 += "  DURATION                  FUNCTION CALLS"
    h2 += "   |   |                     |   |   |   |"
    header += [h1, h2]
    text = "\n".join(header + out["line"].to_list()) + "\n"
    stated_calls = out.filter(pl.col("kind") != "entry").group_by("func").agg(
        calls=pl.len(), dur_ns_sum=pl.col("stated").sum()).sort("func")
    truth = {
        r["func"]: {"calls": int(r["calls"]), "dur_ns_sum": int(r["dur_ns_sum"])}
        for r in stated_calls.iter_rows(named=True)
    }
    return text, {"functions": truth, "lines": text.count("\n")}


def _context(opt: EmitOptions, ts_abs: pl.Expr, flags: pl.Expr | str) -> pl.Expr:
    """``trace_print_context`` with irq-info: comm-pid, [cpu], flags, secs.usecs, ": "."""
    f = pl.lit(flags) if isinstance(flags, str) else flags
    return pl.concat_str(
        pl.lit(f"{opt.comm:>16}-{opt.pid:<7} [{opt.cpu:03d}] "), f, pl.lit(" "), _abstime(ts_abs), pl.lit(": "),
    )


_FUNC_HEADER = [
    "#                              _-----=> irqs-off",
    "#                             / _----=> need-resched",
    "#                            | / _---=> hardirq/softirq",
    "#                            || / _--=> preempt-depth",
    "#                            ||| /     delay",
    "#           TASK-PID   CPU#  ||||    TIMESTAMP  FUNCTION",
    "#              | |       |   ||||       |         |",
]


def function_text(result: ModelResult, arch: Arch, opt: EmitOptions) -> tuple[str, dict[str, Any]]:
    """The function tracer's ``trace`` file: one ``func <-parent`` line per call."""
    ev = _events_frame(result).filter(pl.col("type") == "entry").with_row_index("i")
    p = arch.symbol_prefix
    ev = ev.with_columns(line=pl.concat_str(
        _context(opt, pl.col("ts") + opt.t0_ns, "...."),
        pl.lit(p) + pl.col("func"), pl.lit(" <-"), pl.lit(p) + pl.col("parent").fill_null(opt.root_parent),
    ))
    written = ev.height
    lost = 0
    if opt.lost_every and opt.lost_run:
        # overwritten events: the reader sees a LOST line before the next event of the CPU
        pos = pl.col("i") % opt.lost_every
        ev = ev.with_columns(dropped=(pos >= 1) & (pos <= opt.lost_run))
        ev = ev.with_columns(
            line=pl.when(pos == opt.lost_run + 1)
            .then(pl.concat_str(pl.lit(f"CPU:{opt.cpu} [LOST {opt.lost_run} EVENTS]\n"), pl.col("line")))
            .otherwise(pl.col("line")))
        # a run that reaches the end of the trace has no next event to report it
        ev = ev.with_columns(dropped=pl.col("dropped") & (pl.col("i") - pos + opt.lost_run + 1 < written))
        lost = int(ev["dropped"].sum())
        ev = ev.filter(~pl.col("dropped"))
    n = ev.height
    header = ["# tracer: function", "#", f"# entries-in-buffer/entries-written: {n}/{written}   #P:{opt.ncpus}", "#"]
    header += _FUNC_HEADER
    counts = ev.group_by("func").agg(pl.len().alias("n")).sort("func")
    truth = {"calls": dict(zip(counts["func"].to_list(), (int(x) for x in counts["n"]))), "lost_events": lost}
    return "\n".join(header + ev["line"].to_list()) + "\n", truth


def tlb_flush_text(result: ModelResult, arch: Arch, opt: EmitOptions) -> tuple[str, dict[str, Any]]:
    """``tlb:tlb_flush`` event lines, one ``local mm shootdown`` per flush and a ``remote
    ipi send`` when the flush sent IPIs (x86 ``flush_tlb_mm_range`` /
    ``native_flush_tlb_multi``)."""
    sim = result.sim
    assert sim is not None
    fl = [e for e in sim.events if e[0] == "tlb_flush"]
    df = pl.DataFrame({"ts": [e[1] for e in fl], "ipis": [e[4] for e in fl]}, schema={"ts": pl.Int64, "ipis": pl.Int64})
    local = df.with_columns(reason=pl.lit(f"{TLB_LOCAL_MM_SHOOTDOWN[0]} ({TLB_LOCAL_MM_SHOOTDOWN[1]})"), o=pl.lit(0))
    remote = df.filter(pl.col("ipis") > 0).with_columns(
        reason=pl.lit(f"{TLB_REMOTE_SEND_IPI[0]} ({TLB_REMOTE_SEND_IPI[1]})"), o=pl.lit(1))
    allr = pl.concat([local, remote]).sort(["ts", "o"])
    lines = allr.select(pl.concat_str(
        _context(opt, pl.col("ts") + opt.t0_ns, "d..2"), pl.lit("tlb_flush: pages:-1 reason:"), pl.col("reason"),
    ).alias("l"))["l"]
    n = allr.height
    header = ["# tracer: nop", "#", f"# entries-in-buffer/entries-written: {n}/{n}   #P:{opt.ncpus}", "#"]
    header += _FUNC_HEADER
    truth = {
        "total": n,
        "by_reason": {TLB_LOCAL_MM_SHOOTDOWN[0]: local.height, TLB_REMOTE_SEND_IPI[0]: remote.height},
    }
    return "\n".join(header + lines.to_list()) + "\n", truth


def preemptoff_text(result: ModelResult, arch: Arch, opt: EmitOptions) -> tuple[str, dict[str, Any]]:
    """The ``preemptoff`` latency snapshot of the longest window: the header of
    ``print_trace_header`` and one ``lat_print_generic`` line per function entered in the
    window, ending with ``trace_preempt_on <-<ended at>``."""
    sim = result.sim
    assert sim is not None
    if not sim.window_list:
        raise ModelError("no preempt-off window to snapshot (a !PREEMPT simulation has resched gaps)")
    start, end, started_in, ended_in = max(sim.window_list, key=lambda w: (w[1] - w[0], -w[0]))
    p = arch.symbol_prefix
    ev = _events_frame(result).filter((pl.col("type") == "entry") & pl.col("ts").is_between(start, end))
    ev = pl.concat([
        ev.select("ts", "func", "parent"),
        pl.DataFrame({"ts": [end], "func": ["trace_preempt_on"], "parent": [ended_in]},
                     schema={"ts": pl.Int64, "func": pl.String, "parent": pl.String}),
    ])
    rel = pl.col("ts") - start
    delay = (pl.col("ts").shift(-1) - pl.col("ts")).fill_null(0)
    lines = ev.select(pl.concat_str(
        pl.lit(f"{opt.comm[:8]:>8}-{opt.pid:<7} {opt.cpu:3d}...1"),
        pl.lit(" "), (rel // 1000).cast(pl.String).str.pad_start(4), pl.lit("us"), _mark(delay, opt.old_marks),
        pl.lit(": "), pl.lit(p) + pl.col("func"), pl.lit(" <-"), pl.lit(p) + pl.col("parent").fill_null(opt.root_parent),
    ).alias("l"))["l"]
    n = ev.height
    latency_us = (end - start) // 1000
    header = [
        "# tracer: preemptoff",
        "#",
        f"# preemptoff latency trace v1.1.5 on {opt.kernel}",
        "# --------------------------------------------------------------------",
        f"# latency: {latency_us} us, #{n}/{n}, CPU#{opt.cpu} | (M:preempt VP:0, KP:0, SP:0 HP:0 #P:{opt.ncpus})",
        "#    -----------------",
        f"#    | task: {opt.comm}-{opt.pid} (uid:0 nice:0 policy:0 rt_prio:0)",
        "#    -----------------",
        f"#  => started at: {p}{started_in}",
        f"#  => ended at:   {p}{ended_in}",
        "#",
        "#",
        "#                  _------=> CPU#            ",
        "#                 / _-----=> irqs-off        ",
        "#                | / _----=> need-resched    ",
        "#                || / _---=> hardirq/softirq ",
        "#                ||| / _--=> preempt-depth   ",
        "#                |||| /     delay             ",
        "#  cmd     pid   ||||| time  |   caller      ",
        "#     \\   /      |||||  \\    |   /           ",
    ]
    truth = {
        "latency_us": latency_us,
        "latency_ns": latency_us * 1000,
        "window_ns": end - start,
        "started_at": started_in,
        "ended_at": ended_in,
        "entries": n,
        "cpu": opt.cpu,
        "comm": opt.comm,
        "pid": opt.pid,
    }
    return "\n".join(header + lines.to_list()) + "\n", truth


def emit(
    out_dir: str | Path,
    *,
    arch: str = "x86_64",
    strategy: str = "v2622",
    preempt: bool = True,
    workload: str = "anon:8MiB",
    op: str = "exit_mmap",
    formats: tuple[str, ...] = TEXT_FORMATS,
    options: EmitOptions | None = None,
    **model_kw: Any,
) -> dict[str, Any]:
    """Simulate a (small) teardown and write one trace per format into ``out_dir``, plus
    ``ground-truth.json``.  Returns the ground truth (file names under "files")."""
    opt = options or EmitOptions()
    a = get_arch(arch)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ModelError(f"unknown emitter format(s) {sorted(unknown)}; known: {', '.join(FORMATS)}")
    result = simulate(a, strategy, preempt=preempt, workload=workload, op=op, record=True,
                      online_cpus=opt.ncpus, **model_kw)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = f"{a.name}-{strategy}-{'preempt' if preempt else 'nopreempt'}"
    truth: dict[str, Any] = {
        "arch": a.name, "strategy": strategy, "preempt": preempt, "workload": workload, "op": op,
        "options": asdict(opt), "files": {},
        "model": {k: v for k, v in result.as_dict().items()
                  if k in ("tlb_flushes", "flushes_by_cause", "pages_freed", "pagetable_pages_freed", "ipis")},
        "windows": [
            {"start_ns": s + opt.t0_ns, "end_ns": e + opt.t0_ns, "dur_ns": e - s, "started_at": f, "ended_at": g}
            for s, e, f, g in (result.sim.window_list if result.sim else [])
        ],
    }
    writers = {
        "function_graph": function_graph_text,
        "function": function_text,
        "preemptoff": preemptoff_text,
        "events": tlb_flush_text,
    }
    for fmt in formats:
        if fmt == "preemptoff" and not preempt:
            continue
        if fmt.startswith("tracedat"):
            from tracekit.model.emit_tracedat import write_tracedat

            be = a.big_endian if fmt == "tracedat" else not a.big_endian
            name = f"{tag}.{'be' if be else 'le'}.trace.dat"
            truth[fmt] = write_tracedat(out / name, result, a, comm=opt.comm, pid=opt.pid, cpu=opt.cpu,
                                        ncpus=opt.ncpus, t0_ns=opt.t0_ns, kernel=opt.kernel, big_endian=be)
            truth["files"][fmt] = name
            continue
        text, t = writers[fmt](result, a, opt)
        name = f"{tag}.{fmt}.txt"
        (out / name).write_text(text)
        truth["files"][fmt] = name
        truth[fmt] = t
    (out / f"{tag}.ground-truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
    truth["files"]["ground_truth"] = f"{tag}.ground-truth.json"
    return truth
