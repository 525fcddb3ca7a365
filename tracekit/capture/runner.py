"""Running a capture end to end: provision, boot, bring the results back, ingest, summarise.

:func:`capture` is what ``tracekit capture`` calls.  Each phase is reported to an
``on_phase(name, detail)`` callback (the CLI draws it as a rich progress display).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tracekit.capture import provision
from tracekit.capture.guest import guest_init_script
from tracekit.capture.plan import CaptureError, CapturePlan, arch_info
from tracekit.capture.qemu import (
    QemuResult,
    qemu_command,
    run_qemu,
    unpack_serial_results,
)

__all__ = [
    "CaptureResult",
    "capture",
    "read_capture_env",
    "read_workload_meta",
    "trace_files",
    "ingest_capture",
    "summarise",
    "PREEMPT_FROM_DEBUGFS",
    "new_boot_id",
    "host_load",
    "preempt_mode",
]

PhaseCallback = Callable[[str, str], None]


@dataclass
class CaptureResult:
    """What one boot produced: where its files are, what the guest said about itself, and
    what was ingested."""

    tag: str
    run_dir: Path
    kernel_release: str = ""
    preempt: str | None = None
    clock: str | None = None
    qemu: QemuResult | None = None
    outmode: str = ""
    files: list[str] = field(default_factory=list)
    ingested: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    workload: list[dict] = field(default_factory=list)
    boot_id: str = ""

    def as_dict(self) -> dict:
        d = asdict(self)
        d["run_dir"] = str(self.run_dir)
        return d


def read_capture_env(path: Path) -> dict[str, str]:
    """The guest's ``capture.env``: ``key=value`` lines (uname, preempt mode, clock...)."""
    env: dict[str, str] = {}
    if not path.exists():
        return env
    for line in path.read_text(errors="replace").splitlines():
        key, eq, value = line.partition("=")
        if eq:
            env[key.strip()] = value.strip()
    return env


#: /sys/kernel/debug/sched/preempt prints the modes with the active one in parentheses.
PREEMPT_FROM_DEBUGFS = re.compile(r"\((none|voluntary|full)\)")


def preempt_mode(env: dict[str, str], requested: str | None, config: str = "") -> str | None:
    """The preemption model the guest kernel ran with.

    A PREEMPT_DYNAMIC kernel says it in debugfs ``sched/preempt`` (the active mode in
    parentheses).  Otherwise the build decides: ``CONFIG_PREEMPT_RT``, ``CONFIG_PREEMPT``,
    ``CONFIG_PREEMPT_VOLUNTARY`` or ``CONFIG_PREEMPT_NONE`` from the kernel's config when it
    is known, else the ``uname -v`` banner (``PREEMPT_RT``, ``PREEMPT``).
    """
    m = PREEMPT_FROM_DEBUGFS.search(env.get("preempt", ""))
    if m:
        return m.group(1)
    for option, mode in (
        ("CONFIG_PREEMPT_RT", "rt"),
        ("CONFIG_PREEMPT", "full"),
        ("CONFIG_PREEMPT_VOLUNTARY", "voluntary"),
        ("CONFIG_PREEMPT_NONE", "none"),
    ):
        if re.search(rf"^{option}=y$", config, flags=re.M):
            return mode
    banner = env.get("uname_v", "").split()
    if "PREEMPT_RT" in banner:
        return "rt"
    if "PREEMPT" in banner:
        return "full"
    return requested


def _trace_clock(env: dict[str, str]) -> str | None:
    m = re.search(r"\[([^\]]+)\]", env.get("trace_clock", ""))
    return m.group(1) if m else None


def read_workload_meta(path: Path) -> list[dict]:
    """The workload's per-child lines (``child=0 pid=.. VmPTE_kB=..``) as dicts of ints."""
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text(errors="replace").splitlines():
        row = {}
        for item in line.split():
            k, eq, v = item.partition("=")
            if eq and re.fullmatch(r"-?\d+", v):
                row[k] = int(v)
        if row:
            rows.append(row)
    return rows


#: Result files that are traces, as the guest names them, in ingest order.
_TRACE_GLOBS = (
    "fgraph_exit_mmap.txt",
    "fgraph_teardown.txt",
    "function.txt",
    "events.txt",
    "kprobes.txt",
    "latency_*.run*.txt",
    "trace.dat",
    "perf.script.txt",
)
#: Latency runs recorded with function tracing on (``--latency-path``): the path through
#: the worst window, its length stretched by the tracing.
_PATH_GLOBS = ("latency_*.path.txt",)


def trace_files(run_dir: Path, globs: tuple[str, ...] = _TRACE_GLOBS) -> list[Path]:
    """The trace files of a run directory worth ingesting (empty traces left out); with
    ``globs=_PATH_GLOBS``, the latency path runs."""
    out: list[Path] = []
    for pattern in globs:
        for p in sorted(run_dir.glob(pattern)):
            if p.name.endswith((".max.txt", ".workload.txt", ".stats.txt")):
                continue
            if p.stat().st_size > 0:
                out.append(p)
    return out


def new_boot_id(tag: str) -> str:
    """A boot's id: the run's tag and 8 random hex digits (every trace of one boot of the
    guest kernel carries it; two boots never share one)."""
    return f"{tag}-{uuid.uuid4().hex[:8]}"


def ingest_capture(
    run_dir: Path, store: Path | None = None, patch: str = "none", label: str | None = None
) -> list[dict]:
    """Ingest the traces of a captured run directory with the metadata its
    ``capture.json`` records (arch, kernel release, preempt mode, boot id) and the
    workload's mm record; one result dict per trace file.  Latency path runs (function
    tracing on) are ingested apart, their runs' meta saying ``latency: path``."""
    import tracekit

    meta = json.loads((run_dir / "capture.json").read_text())
    workload = read_workload_meta(run_dir / "workload.meta.txt")
    config = {"thp": meta.get("thp")}
    page = re.search(r"page=(\d+)", _read(run_dir / "workload_meta.workload.txt"))
    if page:
        config["page_size"] = int(page.group(1))
    common = dict(
        store=store,
        arch=meta["arch"],
        kernel=meta.get("kernel_release") or None,
        patch=patch,
        label=label or f"preempt-{meta.get('preempt') or 'default'}",
        preempt=meta.get("preempt"),
        on_error="collect",
    )
    if meta.get("boot_id"):
        common["boot"] = meta["boot_id"]
    extra = {
        "config": {k: v for k, v in config.items() if v is not None},
        "clock": meta.get("clock"),
        "capture": meta,
        "workload_mm": workload[:64],
    }
    results = tracekit.ingest([str(p) for p in trace_files(run_dir)], extra_meta=extra, **common)
    paths = trace_files(run_dir, _PATH_GLOBS)
    if paths:
        extra = {**extra, "latency": "path: recorded with function tracing on"}
        results += tracekit.ingest([str(p) for p in paths], extra_meta=extra, **common)
    return [r.as_dict() for r in results]


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


#: The teardown functions the capture summary reports.
SUMMARY_FUNCS = ("exit_mmap", "unmap_region", "unmap_vmas", "free_pgtables", "tlb_finish_mmu")


def summarise(store: Path | None, run_ids: list[str]) -> list[dict]:
    """Per teardown function over the spans of ``run_ids``: source, calls, median and max
    duration (ns).  Read lazily from the store."""
    import polars as pl

    import tracekit

    ids = [r for r in run_ids if r]
    if not ids:
        return []
    spans = tracekit.open_store(store, create=False).spans()
    df = (
        spans.filter(pl.col("run_id").is_in(ids) & pl.col("func").is_in(SUMMARY_FUNCS))
        .filter(pl.col("dur_ns").is_not_null())
        .group_by("source", "func")
        .agg(
            pl.len().alias("calls"),
            pl.col("dur_ns").median().cast(pl.Int64).alias("median_ns"),
            pl.col("dur_ns").max().alias("max_ns"),
        )
        .sort("source", "func")
        .collect()
    )
    return df.to_dicts()


def host_load() -> dict[str, float | int] | None:
    """The host's load averages and CPU count when the boot ended: under TCG the guest's
    clock is host time, so other work on the host stretches every measured window."""
    try:
        one, five, fifteen = (float(x) for x in Path("/proc/loadavg").read_text().split()[:3])
    except (OSError, ValueError):
        return None
    import os

    return {"load1": one, "load5": five, "load15": fifteen, "host_cpus": os.cpu_count() or 0}


def _noop(name: str, detail: str) -> None:  # noqa: ARG001
    pass


def capture(
    plan: CapturePlan,
    kernel: str,
    out_dir: Path | None = None,
    store: Path | None = None,
    patch: str = "none",
    label: str | None = None,
    timeout_s: float = 900.0,
    ingest: bool = True,
    on_phase: PhaseCallback = _noop,
    kernel_config: Path | None = None,
    boot_id: str | None = None,
) -> CaptureResult:
    """Boot ``kernel`` under QEMU for ``plan``, record, bring the files back into
    ``out_dir/<tag>/`` and (when ``ingest``) ingest the traces into ``store``.

    ``kernel`` is a Debian package name or ABI release (downloaded and unpacked in the
    cache), ``default`` for the newest, or a kernel image path.  Metadata given to ingest:
    arch, kernel release from the guest's ``uname -r``, the preemption mode the kernel
    reports (debugfs ``sched/preempt``, else the requested one), ``patch`` and ``label``
    (default: ``preempt-<mode>``).  ``kernel_config`` is the .config of a kernel image
    given by path (to tell its preemption model).  ``boot_id`` names this boot in the
    store (default: :func:`new_boot_id`), shared by every trace it records.
    """
    arch = arch_info(plan.arch)
    cache = provision.cache_dir()
    out_dir = Path(out_dir) if out_dir else cache / "out"
    provision.require_tool(arch.qemu)

    on_phase("kernel", kernel)
    image, modules_root, release = provision.provision_kernel(kernel, arch, cache)
    want_tools = any(t in plan.tracers for t in ("trace-cmd", "perf"))
    on_phase("tools", "busybox-static" + (", trace-cmd, linux-perf" if want_tools else ""))
    tools_root = provision.provision_tools(arch, cache, want_tools)
    on_phase("workload", plan.workload.spec())
    workload_bin = provision.build_workload(arch, cache, plan.workload)
    on_phase("initramfs", release or image.name)
    base, warnings = provision.build_initramfs(
        arch, cache, tools_root, workload_bin, modules_root, release, want_tools
    )

    run_dir = out_dir / plan.tag
    if run_dir.exists():
        for p in run_dir.iterdir():
            if p.is_file():
                p.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    script = guest_init_script(plan)
    (run_dir / "init.sh").write_text(script)
    initrd = provision.init_overlay(script, base, cache / "initramfs" / f"run-{plan.tag}.cpio.gz")
    boot_dir = run_dir / "boot"
    cmd = qemu_command(plan, image, initrd, boot_dir, share_dir=out_dir.resolve())
    boot_dir.mkdir(parents=True, exist_ok=True)
    (boot_dir / "qemu-cmdline.txt").write_text(" ".join(cmd) + "\n")

    on_phase("boot", f"{arch.qemu} (TCG, timeout {timeout_s:.0f} s)")
    result = CaptureResult(tag=plan.tag, run_dir=run_dir, warnings=list(warnings))
    with provision.machine_lock(cache, "booting"):
        qres = run_qemu(cmd, boot_dir, timeout_s, on_step=lambda s: on_phase("guest", s))
    result.qemu = qres

    on_phase("collect", str(run_dir))
    if not (run_dir / "capture.env").exists():
        unpack_serial_results(boot_dir / "dataport.log", out_dir)
    env = read_capture_env(run_dir / "capture.env")
    if not env:
        tail = (boot_dir / "console.log").read_text(errors="replace").splitlines()[-15:] if (
            boot_dir / "console.log"
        ).exists() else []
        why = "timed out" if qres.timed_out else f"QEMU exited with {qres.returncode}"
        raise CaptureError(
            f"the guest brought no results back ({why}); last console lines:\n  "
            + "\n  ".join(tail)
        )
    if not qres.guest_done:
        result.warnings.append(
            "the guest did not finish every step"
            + (f" (timed out after {timeout_s:.0f} s)" if qres.timed_out else "")
        )
    result.kernel_release = env.get("uname_r", release)
    config = ""
    if modules_root is not None and release:
        cfg = modules_root / "boot" / f"config-{release}"
        config = cfg.read_text(errors="replace") if cfg.exists() else ""
    elif kernel_config is not None and kernel_config.exists():
        config = kernel_config.read_text(errors="replace")
    result.preempt = preempt_mode(env, plan.preempt, config)
    result.clock = _trace_clock(env)
    result.outmode = env.get("outmode", "")
    result.workload = read_workload_meta(run_dir / "workload.meta.txt")
    # a guest tool that could not run leaves its log and an empty (or no) output file
    for tool, out_name, log_name in (
        ("perf", "perf.script.txt", "perf.record.log"),
        ("trace-cmd", "trace.dat", "tracecmd.record.log"),
    ):
        log, produced = run_dir / log_name, run_dir / out_name
        if log.exists() and (not produced.exists() or produced.stat().st_size == 0):
            first = log.read_text(errors="replace").strip().splitlines()[:1]
            result.warnings.append(f"{tool} recorded nothing: {first[0] if first else '(empty log)'}")
    errors = run_dir / "errors.txt"
    if errors.exists() and errors.read_text().strip():
        result.warnings += [f"guest: {ln}" for ln in errors.read_text().splitlines()[:5]]
    result.boot_id = boot_id or new_boot_id(plan.tag)
    meta = {
        "tag": plan.tag,
        "boot_id": result.boot_id,
        "arch": arch.name,
        "kernel_package": kernel,
        "kernel_release": result.kernel_release,
        "preempt": result.preempt,
        "clock": result.clock,
        "thp": plan.thp,
        "workload": plan.workload.spec(),
        "tracers": list(plan.tracers),
        "latency_runs": plan.latency_runs,
        "latency_function_trace": "off (options/function-trace 0)",
        "latency_path": plan.latency_path,
        "icount_shift": plan.icount,
        "host_load": host_load(),
        "outmode": result.outmode,
        "qemu_wall_s": round(qres.wall_s, 1),
        "qemu_returncode": qres.returncode,
        "captured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (run_dir / "capture.json").write_text(json.dumps(meta, indent=2) + "\n")
    files = trace_files(run_dir) + trace_files(run_dir, _PATH_GLOBS)
    result.files = [p.name for p in files]

    if ingest and files:
        on_phase("ingest", f"{len(files)} files")
        result.ingested = ingest_capture(run_dir, store=store, patch=patch, label=label)
        result.summary = summarise(store, [d.get("run_id") for d in result.ingested])
    on_phase("done", plan.tag)
    return result
