"""The guest side of a capture: the ``/init`` script that runs inside the booted kernel.

:func:`guest_init_script` is a pure function of a :class:`~tracekit.capture.plan.CapturePlan`.
The script (busybox ``sh``) mounts proc, sysfs, devtmpfs, tracefs and debugfs, loads the
virtio/9p modules shipped in the initramfs and mounts the host's result share; records what
the kernel offers (``info.txt`` and the machine-readable ``capture.env``); runs the workload
once untraced to record its mm (VmPTE, smaps before exit); then one step per requested
tracer, each around one run of the workload, writing each step's trace to its own file;
and powers off.  Without the share it packs the results as ``tar | gzip | base64`` between
``TK-TAR-BEGIN`` / ``TK-TAR-END`` on the second serial port.  Console lines starting with
``### TK-`` tell the host where the guest is (see :data:`STEP_MARK`).

Knowledge the script encodes (6.1 kernels, Debian builds):

* the teardown functions ftrace can see: ``zap_pte_range``, ``zap_pmd_range``,
  ``free_pte_range`` and ``tlb_flush_mmu_tlbonly`` are inlined, so the filter list is checked
  against ``available_filter_functions`` in the guest and only the present ones are set;
* ``tlb:tlb_flush`` exists on x86 only; kprobe events work on both arches;
* ``max_graph_depth`` bounds function_graph below ``exit_mmap`` so the trace stays small.
"""

from __future__ import annotations

import shlex

from tracekit.capture.plan import LATENCY_TRACERS, CapturePlan, arch_info

__all__ = [
    "TEARDOWN_FUNCS",
    "GRAPH_ROOTS",
    "TRACEPOINTS",
    "KPROBE_FUNCS",
    "MODULES_9P",
    "STEP_MARK",
    "SHARE_TAG",
    "steps",
    "guest_init_script",
]

#: The page-table teardown path, as named in mm/memory.c and mm/mmu_gather.c (6.1).
#: ``__tlb_remove_page_size`` is left out: it runs once per freed page, and would make the
#: trace grow with the workload's memory rather than with its page tables.
TEARDOWN_FUNCS: tuple[str, ...] = (
    "exit_mmap",
    "unmap_region",
    "unmap_vmas",
    "unmap_single_vma",
    "unmap_page_range",
    "zap_pud_range",
    "zap_pmd_range",
    "zap_pte_range",
    "free_pgtables",
    "free_pgd_range",
    "free_pte_range",
    "tlb_gather_mmu",
    "tlb_gather_mmu_fullmm",
    "tlb_finish_mmu",
    "tlb_flush_mmu",
    "tlb_flush_mmu_tlbonly",
    "tlb_remove_table",
    "tlb_table_flush",
)

#: function_graph roots: process exit and munmap of a live process.
GRAPH_ROOTS: tuple[str, ...] = ("exit_mmap", "unmap_region")

#: Tracepoints of the ``events`` step (each enabled only where the kernel has it).
TRACEPOINTS: tuple[str, ...] = (
    "tlb/tlb_flush",
    "kmem/mm_page_free_batched",
    "mmap/exit_mmap",
    "sched/sched_process_fork",
    "sched/sched_process_exit",
    "syscalls/sys_enter_munmap",
    "syscalls/sys_exit_munmap",
)

#: Functions given a kprobe/kretprobe pair in the ``kprobes`` step.
KPROBE_FUNCS: tuple[str, ...] = ("exit_mmap", "unmap_vmas", "free_pgtables", "tlb_finish_mmu")

#: Modules (paths under /lib/modules/<release>/kernel, without .ko) that give a Debian
#: kernel its virtio-pci transport and 9p filesystem, in load order.
MODULES_9P: tuple[str, ...] = (
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci",
    "net/9p/9pnet",
    "net/9p/9pnet_virtio",
    "fs/netfs/netfs",
    "fs/fscache/fscache",
    "fs/9p/9p",
)

#: Console marker prefix: ``### TK-STEP <name> start|done <uptime>``, ``### TK-DONE``...
STEP_MARK = "### TK-"

#: The 9p mount tag of the result share.
SHARE_TAG = "tkout"


def steps(plan: CapturePlan) -> list[str]:
    """The guest steps a plan runs, in order (each writes ``<step>.txt`` and friends)."""
    out = ["info", "workload_meta"]
    t = set(plan.tracers)
    if "function_graph" in t:
        out += ["fgraph_exit_mmap", "fgraph_teardown"]
    if "function" in t:
        out.append("function")
    if "events" in t:
        out.append("events")
    if "kprobes" in t:
        out.append("kprobes")
    out += [f"latency_{tr}" for tr in LATENCY_TRACERS if tr in t]
    if "trace-cmd" in t:
        out.append("tracecmd")
    if "perf" in t:
        out.append("perf")
    return out


_PRELUDE = r"""#!/bin/sh
# tracekit capture: guest /init (generated; see tracekit/capture/guest.py)
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=/lib:/usr/lib
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp /out
mount -t tmpfs tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
T=/sys/kernel/tracing
now() { cut -d' ' -f1 /proc/uptime; }
echo "### TK-BOOTED $(now) tag=$TAG"

KREL=$(uname -r)
for m in $MODULES_9P; do
  [ -f /lib/modules/$KREL/kernel/$m.ko ] && insmod /lib/modules/$KREL/kernel/$m.ko 2>/dev/null
done
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 $SHARE /out 2>/dev/null; then
  OUTMODE=9p; O=/out/$TAG
else
  OUTMODE=serial; O=/tmp/out/$TAG
fi
mkdir -p $O
echo "### TK-OUTMODE $OUTMODE"

w() { echo "$2" > $T/$1 2>/dev/null || echo "write '$2' > $1 failed" >> $O/errors.txt; }
reset_tracing() {
  echo 0 > $T/tracing_on
  echo nop > $T/current_tracer
  echo > $T/set_ftrace_filter
  echo > $T/set_graph_function
  echo 0 > $T/max_graph_depth 2>/dev/null
  echo 0 > $T/tracing_thresh 2>/dev/null
  echo 0 > $T/events/enable
  echo > $T/kprobe_events 2>/dev/null
  for o in funcgraph-proc funcgraph-abstime; do echo 0 > $T/options/$o 2>/dev/null; done
  echo 1 > $T/options/function-trace 2>/dev/null
  echo $BUFKB > $T/buffer_size_kb
  echo > $T/trace
}
# run the workload with tracing on; its own output goes to <step>.workload.txt
traced() {
  echo 1 > $T/tracing_on
  $WORKLOAD > $O/$1.workload.txt 2>&1
  echo 0 > $T/tracing_on
}
save_trace() {
  cat $T/trace > $O/$1.txt
  cat $T/per_cpu/cpu*/stats > $O/$1.stats.txt 2>/dev/null
}
avail() { grep -qE "^$1( |$)" $T/available_filter_functions; }
# the teardown functions this kernel lets ftrace see (the others are inlined)
FUNCS=""
for f in $TEARDOWN; do avail $f && FUNCS="$FUNCS $f"; done
"""

_STEPS: dict[str, str] = {
    "info": r"""
step_info() {
  {
    echo "uname: $(uname -a)"
    echo "cmdline: $(cat /proc/cmdline)"
    echo "nproc: $(nproc)"
    grep -E 'MemTotal|PageTables' /proc/meminfo
    echo "preempt: $(cat /sys/kernel/debug/sched/preempt 2>&1)"
    echo "available_tracers: $(cat $T/available_tracers)"
    echo "trace_clock: $(cat $T/trace_clock)"
    echo "traceable teardown functions:$FUNCS"
    echo "event systems: $(ls $T/events | tr '\n' ' ')"
    echo "tools: trace-cmd=$(which trace-cmd) perf=$(which perf)"
  } > $O/info.txt 2>&1
  {
    echo "uname_r=$KREL"
    echo "uname_m=$(uname -m)"
    echo "uname_v=$(uname -v)"
    echo "ncpus=$(nproc)"
    echo "preempt=$(cat /sys/kernel/debug/sched/preempt 2>/dev/null)"
    echo "trace_clock=$(cat $T/trace_clock)"
    echo "available_tracers=$(cat $T/available_tracers)"
    echo "teardown_funcs=$FUNCS"
    echo "thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
    echo "outmode=$OUTMODE"
  } > $O/capture.env
}
""",
    "workload_meta": r"""
step_workload_meta() {
  $WORKLOAD $O > $O/workload_meta.workload.txt 2>&1
}
""",
    "fgraph_exit_mmap": r"""
step_fgraph_exit_mmap() {
  reset_tracing
  for f in $GRAPH_ROOTS; do avail $f && echo $f >> $T/set_graph_function; done
  w max_graph_depth $GRAPH_DEPTH
  w options/funcgraph-proc 1; w options/funcgraph-abstime 1
  w current_tracer function_graph
  traced fgraph_exit_mmap; save_trace fgraph_exit_mmap
}
""",
    "fgraph_teardown": r"""
step_fgraph_teardown() {
  reset_tracing
  w set_ftrace_filter "$FUNCS"
  w options/funcgraph-proc 1; w options/funcgraph-abstime 1
  w current_tracer function_graph
  traced fgraph_teardown; save_trace fgraph_teardown
}
""",
    "function": r"""
step_function() {
  reset_tracing
  w set_ftrace_filter "$FUNCS"
  w current_tracer function
  traced function; save_trace function
}
""",
    "events": r"""
step_events() {
  reset_tracing
  for e in $TRACEPOINTS; do [ -d $T/events/$e ] && echo 1 > $T/events/$e/enable; done
  cat $T/set_event > $O/events.enabled.txt
  traced events; save_trace events
}
""",
    "kprobes": r"""
step_kprobes() {
  reset_tracing
  for f in $KPROBES; do
    avail $f || continue
    echo "p:tk/${f} $f" >> $T/kprobe_events
    echo "r:tk/${f}_ret $f ret=\$retval" >> $T/kprobe_events
  done 2>> $O/errors.txt
  [ -d $T/events/tk ] && echo 1 > $T/events/tk/enable
  cat $T/kprobe_events > $O/kprobes.enabled.txt
  traced kprobes; save_trace kprobes
}
""",
    "latency": r"""
# one max-latency snapshot per workload run, tracing_max_latency reset before each, with
# function tracing off: the window's length is the latency alone, not the tracer's own
# cost of recording every function called inside it (four times longer on a TCG guest)
latency_tracer() {
  if ! grep -qw $1 $T/available_tracers; then
    echo "$1 is not in available_tracers: $(cat $T/available_tracers)" > $O/latency_$1.unavailable.txt
    return
  fi
  i=1
  while [ $i -le $LATENCY_RUNS ]; do
    reset_tracing
    echo 0 > $T/tracing_max_latency
    w options/function-trace 0
    w current_tracer $1
    traced latency_$1.run$i; save_trace latency_$1.run$i
    echo "max_latency_us=$(cat $T/tracing_max_latency)" >> $O/latency_$1.run$i.max.txt
    i=$((i + 1))
  done
}
# the path: one more run with function tracing on, so the worst window lists what ran
# in it (its length is stretched by the tracing; the .run files hold the latency)
latency_path() {
  grep -qw $1 $T/available_tracers || return
  reset_tracing
  echo 0 > $T/tracing_max_latency
  w options/function-trace 1
  w current_tracer $1
  traced latency_$1.path; save_trace latency_$1.path
  echo "max_latency_us=$(cat $T/tracing_max_latency)" >> $O/latency_$1.path.max.txt
}
""",
    "tracecmd": r"""
step_tracecmd() {
  if ! which trace-cmd > /dev/null; then echo "trace-cmd is not in the initramfs" > $O/tracecmd.unavailable.txt; return; fi
  reset_tracing; cd /tmp
  TCEV=""
  for e in tlb:tlb_flush sched:sched_process_exit; do [ -d $T/events/${e%%:*}/${e#*:} ] && TCEV="$TCEV -e $e"; done
  trace-cmd record -q -o /tmp/trace.dat -p function_graph -g exit_mmap --max-graph-depth $GRAPH_DEPTH $TCEV \
    $WORKLOAD > $O/tracecmd.record.log 2>&1
  echo "rc=$?" >> $O/tracecmd.record.log
  cp /tmp/trace.dat $O/trace.dat
  trace-cmd report -i /tmp/trace.dat > $O/tracecmd.report.txt 2>> $O/tracecmd.record.log
  rm -f /tmp/trace.dat*; cd /
}
""",
    "perf": r"""
step_perf() {
  if ! which perf > /dev/null; then echo "perf is not in the initramfs" > $O/perf.unavailable.txt; return; fi
  reset_tracing; cd /tmp
  perf --version > $O/perf.record.log 2>&1
  PEV=""
  [ -d $T/events/tlb/tlb_flush ] && PEV="-e tlb:tlb_flush"
  PEV="$PEV -e sched:sched_process_exit"
  if perf probe -a free_pgtables -a 'free_pgtables%return' >> $O/perf.record.log 2>&1; then
    PEV="$PEV -e probe:free_pgtables -e probe:free_pgtables__return"
  fi
  perf record -o /tmp/perf.data -a -g $PEV -- $WORKLOAD >> $O/perf.record.log 2>&1
  echo "record rc=$?" >> $O/perf.record.log
  perf script --header -i /tmp/perf.data > $O/perf.script.txt 2>> $O/perf.record.log
  perf probe -d 'probe:*' >> $O/perf.record.log 2>&1
  rm -f /tmp/perf.data*; cd /
}
""",
}

_EPILOGUE = r"""
for s in $STEPS; do
  echo "### TK-STEP $s start $(now)"
  t0=$(now)
  step_$s
  echo "$s $(echo "$(now) $t0" | awk '{printf "%.2f", $1 - $2}')" >> $O/step_times.txt
  echo "### TK-STEP $s done $(now)"
done
reset_tracing
echo "### TK-DONE $(now)"
if [ $OUTMODE = serial ]; then
  stty -F $DATAPORT raw -echo 2>/dev/null
  { echo "TK-TAR-BEGIN"; tar czf - -C /tmp/out $TAG | base64; echo "TK-TAR-END"; } > $DATAPORT
fi
sync
umount /out 2>/dev/null
echo "### TK-POWEROFF"
# a reboot, not a poweroff: QEMU runs with -no-reboot, so a guest reboot ends it, while a
# kernel without ACPI (tinyconfig) only halts on poweroff and QEMU would wait forever
reboot -f
"""


def guest_init_script(plan: CapturePlan, graph_depth: int = 3) -> str:
    """The guest's ``/init`` for ``plan``: a busybox ``sh`` script, as text.

    Settings come first as shell variables (so a reader sees what this run records), then
    the helpers, one function per step, and the loop that runs the steps and ships the
    results.  Latency tracers the kernel lacks leave a ``latency_<tracer>.unavailable.txt``
    saying so instead of failing the run.
    """
    arch = arch_info(plan.arch)
    wanted = steps(plan)
    latency = [s.removeprefix("latency_") for s in wanted if s.startswith("latency_")]
    settings = {
        "TAG": plan.tag,
        "SHARE": SHARE_TAG,
        "DATAPORT": arch.dataport,
        "BUFKB": str(plan.buffer_kb),
        "GRAPH_DEPTH": str(graph_depth),
        "LATENCY_RUNS": str(plan.latency_runs),
        "WORKLOAD": " ".join(plan.workload.argv()),
        "MODULES_9P": " ".join(MODULES_9P),
        "TEARDOWN": " ".join(TEARDOWN_FUNCS),
        "GRAPH_ROOTS": " ".join(GRAPH_ROOTS),
        "TRACEPOINTS": " ".join(TRACEPOINTS),
        "KPROBES": " ".join(KPROBE_FUNCS),
        "STEPS": " ".join(wanted),
    }
    head = _PRELUDE.split("\n", 2)
    lines = [head[0], head[1]]
    for key, value in settings.items():
        lines.append(f"{key}={shlex.quote(value)}")
    body = [head[2]]
    for step in wanted:
        if step.startswith("latency_"):
            continue
        body.append(_STEPS[step])
    if latency:
        body.append(_STEPS["latency"])
        for tr in latency:
            path = f" latency_path {tr};" if plan.latency_path else ""
            body.append(f"step_latency_{tr}() {{ latency_tracer {tr};{path} }}\n")
    body.append(_EPILOGUE)
    return "\n".join(lines) + "\n" + "".join(body)
