"""Benchmark: the replay model on a large exit, under every strategy, PREEMPT and not.

Usage: python benchmarks/bench_model.py [--workload anon:64GiB] [--arch x86_64]

Prints, per strategy and preemption model, the wall time of one simulated teardown, the TLB
flushes and the longest window, then the total.  The walk counts per page-table page and
multiplies ZAP_BLOCKs and flush cycles that repeat exactly, so a 64 GiB exit takes seconds.
"""

from __future__ import annotations

import argparse
import time

from tracekit.model import STRATEGIES, simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="anon:64GiB")
    ap.add_argument("--arch", default="x86_64")
    ap.add_argument("--op", default="exit_mmap")
    args = ap.parse_args()
    t_all = time.monotonic()
    print(f"{'strategy':<10} {'preempt':<8} {'seconds':>8} {'flushes':>12} {'max window':>14}")
    for strategy in STRATEGIES:
        for preempt in (True, False):
            t = time.monotonic()
            r = simulate(args.arch, strategy, preempt=preempt, workload=args.workload, op=args.op)
            dt = time.monotonic() - t
            print(f"{strategy:<10} {str(preempt):<8} {dt:>8.2f} {r.tlb_flushes:>12,} {r.max_window_ns:>11,} ns")
    print(f"total {time.monotonic() - t_all:.1f} s for {args.workload} on {args.arch}")


if __name__ == "__main__":
    main()
