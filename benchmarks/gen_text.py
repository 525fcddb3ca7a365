"""Generate realistic trace text of the formats other than function_graph, for benchmarks.

Each line follows the printf format of the program that prints it:

* ``function``: the kernel's function tracer with irq-info (``print_trace_fmt()``:
  ``%16s-%-7d [%03d] %s %5lu.%06lu: `` then ``%ps <-%ps``);
* ``events``: the kernel's trace file with sched_switch, sched_wakeup, tlb_flush and
  mm_page_free_batched records (each event's own ``print fmt``); for these two, the
  kernel's trace options ``--tgid`` (record-tgid: `` (%7d)`` after the pid, ``(-------)``
  for a task whose tgid was not recorded), ``--noirq-info`` (no flags column),
  ``--counter-clock`` (the x86-tsc / counter clocks' ``%12llu`` instead of ``%5lu.%06lu``),
  ``--sym-offset`` (``%pS``: ``func+0x1a/0x90``), ``--pid-width 5`` (the ``%-5d`` of
  kernels before 4.13);
* ``tracecmd``: ``trace-cmd report`` (``%16s-%-5d [%03d] %5lu.%06lu: %s:`` then the event's
  ``print fmt``), after its ``cpus=N`` line; ``--latency`` (``-l``), ``--nsec`` (``-t``),
  ``--ts-diff`` and ``--function SHARE`` (function tracer records among the events) give
  the layouts of those report options;
* ``perf``: ``perf script`` as perf_sample__fprintf_start() and process_event() print it
  (tools/perf/builtin-script.c: comm ``%16s``, ``%7d`` pid or ``%7d/%-7d`` pid/tid, ``[%03d]``,
  ``%5lu.%06lu:``, ``%10lu`` period, the event right-aligned to the longest event name),
  callchains as sample__fprintf_callchain() prints them (``\\t%16lx sym+0x%lx (dso)`` a
  frame, kernel and user-space DSOs, ``[unknown]`` symbols, a blank line after):
  kprobe/kretprobe hits with callchains; cycles samples of ``-F`` with pid/tid and period;
  tracepoints with their fields, some with callchains; cpu-clock samples without a
  callchain, the sampled ip's symbol on the line;
* ``latency``: preemptoff snapshots one after another, as a capture that reads the trace
  file at each new maximum (or with tracing_thresh) keeps them: ``print_trace_header()``
  and the flag legend, then ``lat_print_generic()`` + ``lat_print_timestamp()`` lines
  (``%8.8s-%-7d %3d``, the flags, `` %4lldus%c: ``, ``%ps <-%ps``) and the ``<stack trace>``
  with its `` => func`` frames.

Seeded: the same arguments give the same bytes.

Usage: python benchmarks/gen_text.py FORMAT OUT.txt --mib 100 [--seed 1] [--cpus 4]
       [--latency] [--nsec] [--ts-diff] [--function SHARE]   (tracecmd)
       [--tgid] [--noirq-info] [--counter-clock] [--sym-offset] [--pid-width 5]   (function, events)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import partial

import numpy as np

FUNCS = ["exit_mmap", "unmap_vmas", "unmap_page_range", "zap_pte_range", "page_remove_rmap",
         "free_pgtables", "tlb_finish_mmu", "free_pages_and_swap_cache", "release_pages",
         "__mod_lruvec_page_state", "flush_tlb_mm_range", "handle_mm_fault", "do_wp_page",
         "zap_pmd_range.isra.0", "__tlb_remove_page_size", "lru_add_drain_cpu"]
COMMS = ["bash", "pgtfree", "kworker/1:2", "systemd-journal", "swapper/0", "cc1"]
FLAGS = ["d..2.", "....1", "dN.2.", "d.h1.", "..s1.", "d..1."]



@dataclass(frozen=True)
class Options:
    """The trace options that shape a function / event line's context and symbols
    (trace_options)."""

    tgid: bool = False
    irq_info: bool = True
    counter_clock: bool = False
    sym_offset: bool = False
    pid_width: int = 7


def _task(rng) -> tuple[str, int]:
    return COMMS[rng.integers(len(COMMS))], int(rng.integers(1, 60000))


def _ts(t_ns: int) -> str:
    return f"{t_ns // 10**9:5d}.{t_ns % 10**9 // 1000:06d}"


def _context(rng, t, cpus, opt: Options) -> str:
    """trace_print_context(): comm-pid, the tgid, the CPU, the irq-info flags, the time."""
    comm, pid = _task(rng)
    out = f"{comm:>16}-{pid:<{opt.pid_width}d} "
    if opt.tgid:
        out += f"({pid - int(rng.integers(0, 3)):7d}) " if rng.integers(8) else "(-------) "
    out += f"[{rng.integers(cpus):03d}] "
    if opt.irq_info:
        out += FLAGS[rng.integers(len(FLAGS))]
    # trace_print_time(): " %5lu.%06lu", or " %12llu" of a counter clock (about 2.5 cycles per ns)
    return out + (f" {t * 5 // 2:12d}: " if opt.counter_clock else f" {_ts(t)}: ")


def _symbol(rng, opt: Options, caller: bool) -> str:
    """A function as %ps prints it, or %pS under sym-offset: the traced function at its
    mcount / fentry call (one offset a function), its caller at one of a few call sites."""
    k = int(rng.integers(len(FUNCS)))
    if not opt.sym_offset:
        return FUNCS[k]
    size = 0x80 + 0x58 * k
    at = 0x10 + int(rng.integers(4)) * (size // 5) if caller else 4
    return f"{FUNCS[k]}+0x{at:x}/0x{size:x}"


def _function(rng, t, cpus, opt: Options = Options()) -> str:
    ctx = _context(rng, t, cpus, opt)
    return f"{ctx}{_symbol(rng, opt, False)} <-{_symbol(rng, opt, True)}\n"


def _event_body(rng) -> tuple[str, str]:
    k = rng.integers(4)
    if k == 0:
        (a, ap), (b, bp) = _task(rng), _task(rng)
        return "sched_switch", (f"prev_comm={a} prev_pid={ap} prev_prio=120 prev_state=S ==> "
                                f"next_comm={b} next_pid={bp} next_prio=120")
    if k == 1:
        a, ap = _task(rng)
        return "sched_wakeup", f"comm={a} pid={ap} prio=120 target_cpu={rng.integers(4):03d}"
    if k == 2:
        return "tlb_flush", f"pages:{rng.integers(-1, 64)} reason:flush on task switch (0)"
    pfn = int(rng.integers(0x1000, 0x400000))
    return "mm_page_free_batched", f"page=0000000012345678 pfn=0x{pfn:x} order=0"


def _events(rng, t, cpus, opt: Options = Options()) -> str:
    ctx = _context(rng, t, cpus, opt)
    ev, body = _event_body(rng)
    return f"{ctx}{ev}: {body}\n"


class _TraceCmd:
    """``trace_show_data()`` of trace-cmd 3.x (tracecmd/trace-read.c): the task
    ``%16s-%-5d [%03d]`` (``%8.8s-%-5d %3d`` and the latency flags with ``-l``), the time
    `` %6.1000d:`` (`` %9.1d:`` with ``-t``), ``--ts-diff``'s `` %-8s`` of ``(+delta)``, then
    ``print_event_name()``'s `` %s: `` padded to 20 columns and the event's body; with
    ``function``, a share of the records are the function tracer's (libtraceevent's
    function plugin: ``func <-- parent``)."""

    def __init__(self, latency: bool = False, nsec: bool = False, ts_diff: bool = False, function: float = 0.0):
        self.latency, self.nsec, self.ts_diff, self.function = latency, nsec, ts_diff, function
        self.last: int | None = None

    def __call__(self, rng, t, cpus) -> str:
        comm, pid = _task(rng)
        cpu = int(rng.integers(cpus))
        if self.latency:
            out = f"{comm[:8]:>8}-{pid:<5d} {cpu:3d}{FLAGS[rng.integers(len(FLAGS))]}"
        else:
            out = f"{comm:>16}-{pid:<5d} [{cpu:03d}]"
        out += f" {t // 10**9:5d}.{t % 10**9:09d}:" if self.nsec else f" {_ts(t)}:"
        if self.ts_diff:
            now = t if self.nsec else (t + 500) // 1000
            out += f" {'' if self.last is None else f'(+{now - self.last})':<8s}"
            self.last = now
        if rng.random() < self.function:
            ev, body = "function", f"{FUNCS[rng.integers(len(FUNCS))]} <-- {FUNCS[rng.integers(len(FUNCS))]}"
        else:
            ev, body = _event_body(rng)
        return f"{out} {ev}: {' ' * max(0, 20 - len(ev))}{body}\n"


USER_FUNCS = ["__libc_start_main", "main", "malloc", "_int_free", "[unknown]", "std::vector<int, std::allocator<int> >::push_back(int const&)"]
USER_DSOS = ["/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/cc1", "/usr/lib/libstdc++.so.6.0.30 (deleted)"]
#: the width perf pads event names to: the longest name of the session (evlist__max_name_len())
PERF_EVENT_WIDTH = len("probe:free_pgtables__return")


def _perf_frames(rng, user: bool) -> str:
    out = ""
    for d in range(int(rng.integers(3, 9))):
        out += f"\t{0xffffffff81000000 + int(rng.integers(1 << 20)):16x} {FUNCS[(d * 5) % len(FUNCS)]}+0x{d * 16 + 4:x} ([kernel.kallsyms])\n"
    if user:
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(len(USER_FUNCS)))
            sym = USER_FUNCS[k] if USER_FUNCS[k] == "[unknown]" else f"{USER_FUNCS[k]}+0x{int(rng.integers(1, 400)):x}"
            out += f"\t{0x7f0000000000 + int(rng.integers(1 << 32)):16x} {sym} ({USER_DSOS[k % len(USER_DSOS)]})\n"
    return out + "\n"


def _perf(rng, t, cpus) -> str:
    comm, pid = _task(rng)
    when = f"[{rng.integers(cpus):03d}] {t // 10**9:5d}.{t % 10**9 // 1000:06d}:"
    k = rng.integers(10)
    if k < 4:  # perf probe -a free_pgtables -a 'free_pgtables%return'; record -g
        ret = rng.integers(2) == 1
        ev = "probe:free_pgtables__return" if ret else "probe:free_pgtables"
        addr = "(ffffffffb7ee7a80 <- ffffffffb7ee7b7b)" if ret else "(ffffffffb7ee7a80)"
        return f"{comm:>16} {pid:7d} {when} {ev:>{PERF_EVENT_WIDTH}}: {addr}\n" + _perf_frames(rng, False)
    if k < 7:  # -F comm,pid,tid,cpu,time,period,event,ip,sym,dso -g
        tid = pid + int(rng.integers(4))
        ev = "cycles:u" if rng.integers(3) == 0 else "cycles"
        return (f"{comm:>16} {pid:7d}/{tid:<7d} {when} {int(rng.integers(1, 10**7)):10d} {ev:>{PERF_EVENT_WIDTH}}: \n"
                + _perf_frames(rng, True))
    if k < 9:  # tracepoints, with their fields
        if rng.integers(2):
            ev, body = "tlb:tlb_flush", f"pages:{rng.integers(-1, 64)} reason:flush on task switch (0)"
        else:
            (a, ap), (b, bp) = _task(rng), _task(rng)
            ev, body = "sched:sched_switch", (f"prev_comm={a} prev_pid={ap} prev_prio=120 prev_state=S ==> "
                                              f"next_comm={b} next_pid={bp} next_prio=120")
        line = f"{comm:>16} {pid:7d} {when} {ev:>{PERF_EVENT_WIDTH}}: {body}\n"
        return line + (_perf_frames(rng, False) if rng.integers(2) else "")
    # cpu-clock without -g: the sampled ip on the sample line
    f = FUNCS[rng.integers(len(FUNCS))]
    return (f"{comm:>16} {pid:7d} {when} {'cpu-clock':>{PERF_EVENT_WIDTH}}:  "
            f"{0xffffffff81000000 + int(rng.integers(1 << 20)):16x} {f}+0x{int(rng.integers(1, 300)):x} ([kernel.kallsyms])\n")


LATENCY_LEGEND = (
    "#                    _------=> CPU#            \n"
    "#                   / _-----=> irqs-off/BH-disabled\n"
    "#                  | / _----=> need-resched    \n"
    "#                  || / _---=> hardirq/softirq \n"
    "#                  ||| / _--=> preempt-depth   \n"
    "#                  |||| / _-=> migrate-disable \n"
    "#                  ||||| /     delay           \n"
    "#  cmd     pid     |||||| time  |   caller     \n"
    "#     \\   /        ||||||  \\    |    /       \n"
)


def _find_mark(delta_us: int) -> str:
    """trace_find_mark() of the time to the next line."""
    for limit, mark in ((1_000_000, "$"), (100_000, "@"), (10_000, "*"), (1000, "#"), (100, "!"), (10, "+")):
        if delta_us > limit:
            return mark
    return " "


def _latency(rng, t, cpus) -> str:
    """One preemptoff snapshot of 20 to 300 entries."""
    comm, pid = _task(rng)
    cpu = int(rng.integers(cpus))
    n = int(rng.integers(20, 300))
    times = np.cumsum(rng.integers(0, 40, n))
    f0, f1 = FUNCS[rng.integers(len(FUNCS))], FUNCS[rng.integers(len(FUNCS))]
    out = [f"# tracer: preemptoff\n#\n# preemptoff latency trace v1.1.5 on 6.1.0-bench\n# {'-' * 68}\n"
           f"# latency: {int(times[-1])} us, #{n + 1}/{n + 1}, CPU#{cpu} | (M:preempt VP:0, KP:0, SP:0 HP:0 #P:{cpus})\n"
           f"#    -----------------\n#    | task: {comm}-{pid} (uid:0 nice:0 policy:0 rt_prio:0)\n"
           f"#    -----------------\n#  => started at: {f0}\n#  => ended at:   {f1}\n#\n#\n" + LATENCY_LEGEND]
    task = f"{comm[:8]:>8}-{pid:<7d} {cpu:3d}"
    for i in range(n):
        f, p = FUNCS[rng.integers(len(FUNCS))], FUNCS[rng.integers(len(FUNCS))]
        mark = _find_mark(int(times[i + 1] - times[i]) if i + 1 < n else 0)
        out.append(f"{task}{FLAGS[rng.integers(len(FLAGS))]} {int(times[i]):4d}us{mark}: {f} <-{p}\n")
    out.append(f"{task}{FLAGS[0]} {int(times[-1]):4d}us : <stack trace>\n")
    out.extend(f" => {FUNCS[(d * 7) % len(FUNCS)]}\n" for d in range(int(rng.integers(4, 12))))
    return "".join(out)


HEADERS = {
    "function": "# tracer: function\n#\n#                                _-----=> irqs-off/BH-disabled\n"
                "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n#              | |         |   |||||     |         |\n",
    "events": "# tracer: nop\n#\n#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n#              | |         |   |||||     |         |\n",
    "tracecmd": "cpus={cpus}\n",
    "perf": "",
    "latency": "",
}
LINES = {"function": _function, "events": _events, "tracecmd": _TraceCmd(), "perf": _perf, "latency": _latency}


def generate(fmt: str, out: str, mib: float, seed: int = 1, cpus: int = 4, line=None) -> None:
    """``mib`` MiB of format ``fmt`` into ``out``; ``line`` prints one record (default the
    format's own)."""
    rng = np.random.default_rng(seed)
    want = int(mib * (1 << 20))
    line = line or LINES[fmt]
    t = 50 * 10**9
    with open(out, "w") as f:
        n = f.write(HEADERS[fmt].format(cpus=cpus))
        block: list[str] = []
        size = 0
        while n < want:
            t += int(rng.integers(100, 3000))
            block.append(line(rng, t, cpus))
            size += len(block[-1])
            if size >= 1 << 20:  # (a record may be many lines: written by the MiB)
                n += f.write("".join(block))
                block, size = [], 0
        f.write("".join(block))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("format", choices=sorted(LINES))
    ap.add_argument("out")
    ap.add_argument("--mib", type=float, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cpus", type=int, default=4)
    ap.add_argument("--latency", action="store_true", help="tracecmd: report -l")
    ap.add_argument("--nsec", action="store_true", help="tracecmd: report -t")
    ap.add_argument("--ts-diff", action="store_true", help="tracecmd: report --ts-diff")
    ap.add_argument("--function", type=float, default=0.0, help="tracecmd: share of function tracer records")
    ap.add_argument("--tgid", action="store_true", help="function, events: the record-tgid column")
    ap.add_argument("--noirq-info", action="store_true", help="function, events: no irq-info flags column")
    ap.add_argument("--counter-clock", action="store_true", help="function, events: a counter clock's timestamps")
    ap.add_argument("--sym-offset", action="store_true", help="function: symbols with +offset/size")
    ap.add_argument("--pid-width", type=int, default=7, choices=(5, 7), help="function, events: %%-5d before 4.13")
    a = ap.parse_args()
    line = None
    if a.format == "tracecmd":
        line = _TraceCmd(a.latency, a.nsec, a.ts_diff, a.function)
    elif a.format in ("function", "events"):
        opt = Options(tgid=a.tgid, irq_info=not a.noirq_info, counter_clock=a.counter_clock, sym_offset=a.sym_offset,
                      pid_width=a.pid_width)
        line = partial(LINES[a.format], opt=opt)
    generate(a.format, a.out, a.mib, a.seed, a.cpus, line)


if __name__ == "__main__":
    main()
