"""Record a large real trace.dat for ``bench_formats.py --tracedat``, under QEMU.

The corpus trace.dat files are small (the largest about 4 MB, a few thousand events); the
speed of the binary reader shows on a recording of hundreds of thousands to millions of
events.  This boots a Debian kernel with ``tracekit capture``'s machinery (the kernel,
busybox, trace-cmd and the pgtfree workload fetched and cached as for any capture) and
runs one guest step: ``trace-cmd record`` of the function_graph tracer below ``exit_mmap``
with the sched, kmem, tlb and irq event systems on, around one run of the workload.  The
file stays outside the repository (default ``/tmp/tracekit-bench/capture/<tag>/trace.dat``).

Usage:
    python benchmarks/record_tracedat.py [--kernel 6.1.0-56] [--workload pgtfree:forks=10,mb=64,loops=5]
                                         [--file-version 7] [--compression zstd] [--out DIR]
    python benchmarks/bench_formats.py --formats '' --tracedat /tmp/tracekit-bench/capture/bench-tracedat/trace.dat

Under TCG on a 2-core host the boot and recording take a few minutes; the default
workload gives about a million records (6-10 MB with zstd).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from tracekit.capture import guest
from tracekit.capture.plan import CapturePlan, parse_workload
from tracekit.capture.runner import capture

#: The guest step: trace-cmd records into the guest's RAM, then the file is copied out.
#: GRAPH_DEPTH and WORKLOAD are the init script's settings; FILE_OPTS is filled below.
STEP = r"""
step_tracecmd() {
  if ! which trace-cmd > /dev/null; then echo "trace-cmd is not in the initramfs" > $O/tracecmd.unavailable.txt; return; fi
  reset_tracing; cd /tmp
  TCEV=""
  for s in sched kmem tlb irq; do [ -d $T/events/$s ] && TCEV="$TCEV -e $s"; done
  trace-cmd record -q FILE_OPTS -o /tmp/trace.dat -p function_graph -g exit_mmap --max-graph-depth $GRAPH_DEPTH $TCEV \
    $WORKLOAD > $O/tracecmd.record.log 2>&1
  echo "rc=$?" >> $O/tracecmd.record.log
  cp /tmp/trace.dat $O/trace.dat
  rm -f /tmp/trace.dat*; cd /
}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default="6.1.0-56", help="Debian kernel ABI release or package")
    ap.add_argument("--workload", default="pgtfree:forks=10,mb=64,loops=5")
    ap.add_argument("--file-version", default="7", choices=["6", "7"])
    ap.add_argument("--compression", default="zstd", help="v7 only: zstd, zlib or none")
    ap.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "tracekit-bench" / "capture"))
    ap.add_argument("--tag", default="bench-tracedat")
    ap.add_argument("--timeout", type=float, default=1800.0)
    a = ap.parse_args()
    opts = f"--file-version {a.file_version}"
    if a.file_version == "7":
        opts += f" --compression {a.compression}"
    guest._STEPS["tracecmd"] = STEP.replace("FILE_OPTS", opts)
    plan = CapturePlan(arch="x86_64", tag=a.tag, preempt="full", tracers=("trace-cmd",),
                       workload=parse_workload(a.workload), thp="never", buffer_kb=65536)
    res = capture(plan, a.kernel, out_dir=Path(a.out), ingest=False, timeout_s=a.timeout,
                  on_phase=lambda name, detail: print(f"{name}: {detail}", flush=True))
    for w in res.warnings:
        print("warning:", w)
    dat = res.run_dir / "trace.dat"
    print(f"{dat}: {os.path.getsize(dat) if dat.exists() else 0} bytes")


if __name__ == "__main__":
    main()
