"""``tracekit capture``: boot a real kernel under QEMU, trace the workload, ingest.

A thin layer over :func:`tracekit.capture.runner.capture` (and, with ``--kernel-source``,
:func:`tracekit.capture.kbuild.build_pair`): it parses options, draws the phases as a rich
progress display on a terminal, and prints a summary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

__all__ = ["register", "capture_command"]

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


class _Phases:
    """Shows each capture phase as a line on stderr (a live status spinner on a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.status = None
        self.tty = sys.stderr.isatty()

    def __enter__(self) -> "_Phases":
        if self.tty and not self.quiet:
            self.status = err.status("capture: starting")
            self.status.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.status is not None:
            self.status.__exit__(*exc)

    def __call__(self, name: str, detail: str) -> None:
        if self.quiet:
            return
        text = f"capture: {name:<9} {detail}"
        if self.status is not None:
            self.status.update(text)
        if name != "guest" or not self.tty:
            err.print(text, markup=False)
        else:
            err.print(f"capture:   guest step {detail}", markup=False)


def _print_summary(res, json_out: bool) -> None:
    if json_out:
        out.print(json.dumps(res.as_dict(), indent=2, default=str), markup=False)
        return
    q = res.qemu
    out.print(
        f"{res.tag}: kernel {res.kernel_release}, preempt {res.preempt}, clock {res.clock}, "
        f"results over {res.outmode or '?'}, QEMU {q.wall_s:.0f} s, boot {res.boot_id}",
        markup=False,
    )
    if res.workload:
        ptes = sorted(r.get("VmPTE_kB", -1) for r in res.workload)
        out.print(
            f"  workload: {len(res.workload)} children, VmPTE before exit "
            f"{ptes[0]}..{ptes[-1]} kB",
            markup=False,
        )
    out.print(f"  files in {res.run_dir}: {', '.join(res.files) or '(no traces)'}", markup=False)
    for d in res.ingested:
        name = Path(str(d.get("path", "?"))).name
        if d.get("error"):
            out.print(f"  {name}: not ingested: {d['error']}", markup=False)
            continue
        counts = d.get("counts") or {}
        spans = counts.get("spans", d.get("spans", "?"))
        events = counts.get("events", d.get("events", "?"))
        windows = counts.get("windows", d.get("windows", "?"))
        out.print(
            f"  {name}: {d.get('status', '?')}, format {d.get('format', '?')}, {spans} spans, {events} events, "
            f"{windows} windows",
            markup=False,
        )
    if res.summary:
        out.print(f"  {'source':<15} {'function':<15} {'calls':>6} {'median us':>10} {'max us':>10}", markup=False)
        for r in res.summary:
            out.print(
                f"  {r['source']:<15} {r['func']:<15} {r['calls']:>6} "
                f"{r['median_ns'] / 1000:>10.1f} {r['max_ns'] / 1000:>10.1f}",
                markup=False,
            )
    for w in res.warnings:
        err.print(f"  warning: {w}", markup=False)


def capture_command(
    arch: Annotated[str, typer.Option(help="Guest architecture: x86_64 or ppc64le.")] = "x86_64",
    kernel: Annotated[
        Optional[str],
        typer.Option(
            help="Debian kernel package (linux-image-6.1.0-56-amd64), its ABI release "
            "(6.1.0-56), 'default' for the newest, or a kernel image path."
        ),
    ] = None,
    preempt: Annotated[
        Optional[str], typer.Option(help="Boot with preempt=none|voluntary|full (PREEMPT_DYNAMIC kernels).")
    ] = None,
    tracers: Annotated[
        str,
        typer.Option(
            help="Comma list: function_graph, function, events, kprobes, trace-cmd, perf, "
            "preemptoff, irqsoff, preemptirqsoff, wakeup, wakeup_rt, wakeup_dl, latency (all "
            "latency tracers the kernel has)."
        ),
    ] = "function_graph,function,events,kprobes",
    workload: Annotated[
        str,
        typer.Option(
            help="pgtfree:forks=N,mb=M,sparse=G,loops=L: N children each populating M MiB (half "
            "munmapped alive) and G GiB mapped NORESERVE with one page per 2 MiB, then L "
            "mmap/munmap rounds of M MiB in the parent.  Recorded with the run; calibrate, "
            "replay and model --workload take the same spelling."
        ),
    ] = "pgtfree:forks=20,mb=64,loops=5",
    repeat: Annotated[
        int,
        typer.Option(
            help="Boot each kernel this many times (with --kernel-source: before and after "
            "alternating); each boot is one unit of the report's statistics."
        ),
    ] = 1,
    latency_runs: Annotated[
        int, typer.Option(help="Workload runs per latency tracer per boot (the worst window of each is kept).")
    ] = 3,
    latency_path: Annotated[
        bool,
        typer.Option(
            "--latency-path",
            help="Also record each latency tracer once with function tracing on (the path "
            "through the window; its length is stretched by the tracing).",
        ),
    ] = False,
    icount: Annotated[
        Optional[int],
        typer.Option(
            help="QEMU -icount shift N: the guest clock counts instructions, 2**N ns each, so "
            "other work on the host does not stretch the measured windows (times are then "
            "instruction counts, not any real CPU's).",
        ),
    ] = None,
    thp: Annotated[Optional[str], typer.Option(help="transparent_hugepage= boot value (never to measure PTE-level teardown).")] = None,
    patch: Annotated[str, typer.Option(help="Name of the patch under test, in the store.")] = "none",
    label: Annotated[Optional[str], typer.Option(help="Side of the comparison (default preempt-<mode>).")] = None,
    store: Annotated[Optional[str], typer.Option(help="Store: a directory or a URL (s3://bucket/prefix, ...) (default: $TRACEKIT_STORE, else ./tracekit-store).")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Where the run's files go (default: the cache's out/).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before QEMU is stopped.")] = 900.0,
    tag: Annotated[Optional[str], typer.Option(help="Name of the run directory (default <arch>-<release-or-image>-<label>).")] = None,
    kernel_source: Annotated[
        Optional[str],
        typer.Option("--kernel-source", help="Build the kernels from this Debian source package (linux-source-6.1).")
    ] = None,
    patch_file: Annotated[
        Optional[Path], typer.Option("--patch-file", help="With --kernel-source: the patch; builds and captures before and after.")
    ] = None,
    no_ingest: Annotated[bool, typer.Option("--no-ingest", help="Only capture; do not ingest.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Boot a kernel under QEMU (TCG, one vCPU), trace the pgtfree workload, ingest.

    Example:

        tracekit capture --kernel 6.1.0-56 --preempt full --thp never --label after

    Kernel packages, busybox, trace-cmd and perf are fetched with apt-get download and
    unpacked in the cache ($TRACEKIT_CACHE, else ~/.cache/tracekit), never installed.  With
    --kernel-source and --patch-file, the unpatched and patched kernels are built
    (tinyconfig plus a tracing fragment, cached) and both are captured and ingested as
    labels before and after.  QEMU never outlives the command, Ctrl-C included.
    """
    from tracekit.capture.plan import CaptureError, CapturePlan, parse_tracers, parse_workload
    from tracekit.capture.qemu import Terminated
    from tracekit.capture.runner import capture

    try:
        wl = parse_workload(workload)
        trs = parse_tracers(tracers)
        if kernel_source:
            from tracekit.capture.kbuild import capture_patch_pair

            if patch_file is None:
                raise CaptureError("--kernel-source needs --patch-file (the patch under test)")
            with _Phases(json_out) as phases:
                results = capture_patch_pair(
                    source_package=kernel_source,
                    patch_file=patch_file,
                    arch=arch,
                    tracers=trs,
                    workload=wl,
                    thp=thp,
                    patch=patch if patch != "none" else patch_file.stem,
                    store=store,
                    out_dir=out_dir,
                    timeout_s=timeout,
                    ingest=not no_ingest,
                    on_phase=phases,
                    latency_runs=latency_runs,
                    repeat=repeat,
                    latency_path=latency_path,
                    icount=icount,
                )
            for res in results:
                _print_summary(res, json_out)
            return
        if not kernel:
            raise CaptureError("--kernel is needed (a Debian package, a release, 'default' or an image path)")
        side = label or f"preempt-{preempt or 'default'}"
        ktag = Path(kernel).name.removeprefix("linux-image-")
        run_tag = tag or f"{arch}-{ktag}-{side}"
        if repeat < 1:
            raise CaptureError(f"--repeat must be at least 1, not {repeat}")
        results = []
        with _Phases(json_out) as phases:
            for i in range(1, repeat + 1):
                plan = CapturePlan(
                    arch=arch, tag=run_tag + (f"-b{i}" if repeat > 1 else ""), preempt=preempt,
                    tracers=trs, workload=wl, thp=thp, latency_runs=latency_runs, latency_path=latency_path,
                    icount=icount,
                )  # fmt: skip
                results.append(
                    capture(
                        plan,
                        kernel,
                        out_dir=out_dir,
                        store=store,
                        patch=patch,
                        label=label,
                        timeout_s=timeout,
                        ingest=not no_ingest,
                        on_phase=phases,
                    )
                )
    except CaptureError as e:
        err.print(f"tracekit: error: {e}", markup=False)
        raise typer.Exit(2)
    except KeyboardInterrupt:
        err.print("tracekit: capture interrupted (QEMU stopped)", markup=False)
        raise typer.Exit(130)
    except Terminated:
        err.print("tracekit: capture terminated (QEMU stopped)", markup=False)
        raise typer.Exit(143)
    for res in results:
        _print_summary(res, json_out)


def register(app: typer.Typer) -> None:
    """Add ``tracekit capture`` to the command line."""
    app.command("capture")(capture_command)
