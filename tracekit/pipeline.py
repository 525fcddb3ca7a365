"""Ingest: trace files in, runs in the store out (``tracekit ingest`` and ``tracekit.ingest()`` are this module).

For each input: hash its decompressed content (the run's identity), detect its format (or
take ``--format``), stream it through the format's parser in bounded chunks, pair calls into
spans (:mod:`tracekit.spans`), write spans, events and windows into the store, and publish
the run atomically with its metadata and counts.  Nothing read is dropped silently: lines a
parser does not understand are counted by reason in the run's ``skipped`` column and in the
summary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from tracekit import __version__
from tracekit import parsers
from tracekit.errors import OptionError, TracekitError
from tracekit.jit import SMALL_TEXT_BYTES, interpreted
from tracekit.arch import arch_from_kernel_release, arch_from_symbols, canonical_arch
from tracekit.io import InputError, binary_file_type, compression_of, content_sha256, iter_line_chunks, looks_binary, read_head, spool_stdin
from tracekit.parsers import tracecmd_report
from tracekit.parsers.base import LineChunk, ParseContext, ParseError
from tracekit.pasted import Paste, Rejoined, find_paste, strip_head, unpaste, wraps_in
from tracekit.schema import COUNT_FIELDS, WINDOW_SCHEMA, conform
from tracekit.spans import SpanBuilder
from tracekit.store import Store, StoreError, encode_name, ingested_by, open_store

__all__ = ["ingest", "ingest_file", "ingest_one", "IngestOptions", "IngestResult", "IngestError", "PREEMPT_MODELS"]


class IngestError(TracekitError):
    """An ingest that cannot start at all (bad store, bad option)."""


@dataclass
class IngestResult:
    """What happened to one input: ``status`` is ingested, replaced, added (the run was in
    the store and now also belongs to this patch and label), duplicate (it already did) or
    failed.  ``memberships``: every (patch, label) the run belongs to afterwards."""

    path: str
    status: str = "failed"
    run_id: str | None = None
    format: str | None = None
    tracer: str | None = None
    arch: str | None = None
    kernel: str | None = None
    patch: str | None = None
    label: str | None = None
    boot_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    spans_by_source: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    bytes: int = 0
    memberships: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The preemption models a kernel can be booted with (``preempt=`` and the CONFIG_PREEMPT_*
#: choices: kernel/sched/core.c sched_dynamic_mode(), kernel/Kconfig.preempt), ``rt`` for
#: PREEMPT_RT.
PREEMPT_MODELS: tuple[str, ...] = ("none", "voluntary", "full", "lazy", "rt")


@dataclass(frozen=True)
class IngestOptions:
    """What the user says of every input of one ingest, and how to run it; the same object
    reaches the local ``--jobs`` workers and the cluster's (it pickles).

    The trace's own word wins where it speaks (arch, kernel, preemption model, clock
    frequency); these fill in the rest.  ``boot`` names the boot (or iteration) the traces
    were recorded in: traces of one boot are one unit of replication in a report, and
    without it each trace is its own unit.  ``extra_meta`` is what a caller knows of every
    input and the traces may not say (``config``: a dict merged into the run's
    configuration, ``clock``: the trace clock, anything else: kept in the run's ``meta``).
    ``jobs`` files are ingested at a time by processes of this machine; with ``scheduler``
    (a dask.distributed scheduler's address) the cluster's workers ingest them instead.
    :meth:`validated` checks every value.
    """

    arch: str | None = None
    kernel: str | None = None
    patch: str = "none"
    label: str = "none"
    boot: str | None = None
    format: str | None = None
    replace: bool = False
    clock_hz: float | None = None
    preempt: str | None = None
    jobs: int = 1
    scheduler: str | None = None
    progress: bool = False
    extra_meta: dict[str, Any] | None = None

    def validated(self) -> "IngestOptions":
        """These options with the arch spelled canonically and the boot stripped;
        :class:`OptionError` naming the option for a value outside what it accepts."""
        arch = self.arch
        if arch is not None:
            arch = canonical_arch(arch)
            if arch is None:
                raise OptionError(f"--arch {self.arch!r}: unknown architecture")
        if self.format is not None:
            try:
                parsers.get(self.format)
            except KeyError as e:
                raise OptionError(str(e.args[0])) from None
        if self.clock_hz is not None and not (math.isfinite(self.clock_hz) and self.clock_hz > 0):
            raise OptionError(f"--clock-hz {self.clock_hz:g}: a clock frequency is a positive number of Hz")
        if self.preempt is not None and self.preempt not in PREEMPT_MODELS:
            raise OptionError(f"--preempt {self.preempt!r}: one of {', '.join(PREEMPT_MODELS)}")
        if isinstance(self.jobs, bool) or not isinstance(self.jobs, int) or self.jobs < 1:
            raise OptionError(f"--jobs {self.jobs}: at least 1 file at a time")
        for what, name in (("--patch", self.patch), ("--label", self.label)):
            try:
                encode_name(name)
            except StoreError as e:
                raise OptionError(f"{what}: {e}") from None
        boot = self.boot.strip() if self.boot else None
        return dataclasses.replace(self, arch=arch, boot=boot or None)


def ingest(
    paths: list[str] | str,
    store: str | os.PathLike | Store | None = None,
    options: IngestOptions | None = None,
    *,
    on_error: str = "raise",
    **fields: Any,
) -> list[IngestResult]:
    """Ingest ``paths`` into ``store``; one :class:`IngestResult` per run made.

    The options are ``options`` with any :class:`IngestOptions` field given as a keyword on
    top (``ingest(paths, store, patch="pgfree-lat", label="before", arch="x86_64")``).
    ``on_error="raise"`` raises the error of the first input (in the order given) that
    cannot be read, as it was raised (a :class:`ParseError` keeps its file and line), and
    ingests nothing after it; ``"collect"`` records it in that input's result and goes on.
    With ``scheduler`` the cluster's workers ingest straight into ``store``, which they
    must reach too (object storage, or a directory every worker mounts).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [str(paths)]
    if on_error not in ("raise", "collect"):
        raise OptionError(f"on_error={on_error!r}: 'raise' or 'collect'")
    try:
        opts = dataclasses.replace(options or IngestOptions(), **fields).validated()
    except TypeError as e:  # a keyword that is no option
        raise OptionError(f"ingest(): {e}") from None
    try:
        # the store is made here, whether given by location or as a Store opened for reading
        st = open_store(store.url if isinstance(store, Store) else store, create=True)
        st.recover()
    except (StoreError, OSError) as e:
        raise IngestError(str(e)) from None
    raising = on_error == "raise"
    if opts.scheduler is not None:
        from tracekit.cluster import ingest_on_cluster

        per_path = ingest_on_cluster(opts.scheduler, paths, st, dataclasses.replace(opts, progress=False), raising=raising)
    elif opts.jobs > 1 and len(paths) > 1 and "-" not in paths:
        per_path = _ingest_parallel(paths, st, dataclasses.replace(opts, progress=False), raising)
    else:
        per_path = [ingest_file(p, st, opts, raising=raising) for p in paths]
    return [r for rs in per_path for r in rs]


def _ingest_parallel(paths: list[str], store: Store, opts: IngestOptions, raising: bool) -> list[list[IngestResult]]:
    """Ingest ``paths`` in ``opts.jobs`` processes of this machine; with ``raising``, the
    first input's error (in the order given) is raised as it was made, and inputs not yet
    started are not started."""
    first = _compile_once(paths, opts)
    # spawned, not forked: a fork of a process whose polars threads run may deadlock
    with ProcessPoolExecutor(max_workers=opts.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {i: pool.submit(_ingest_worker, paths[i], store.url, opts, raising) for i in first}
        try:
            failed = [i for i in first if futures[i].exception() is not None]  # (done: its loops are cached)
            end = min(failed) if raising and failed else len(paths)  # (not past the first error raised)
            futures.update({i: pool.submit(_ingest_worker, paths[i], store.url, opts, raising)
                            for i in range(end) if i not in futures})
            return [futures[i].result() for i in range(len(paths))]
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def _compile_once(paths: list[str], opts: IngestOptions) -> list[int]:
    """Compile the loops that ingesting ``paths`` runs once, before the ``--jobs`` workers
    start, so that each worker loads them from numba's cache (``cache=True``) instead of
    compiling its own copy beside the others: on a fresh install every worker would pay
    the whole compile.  The head of the first text input of each format (the 64 KiB read
    for detection, whole lines) is ingested here into a throwaway store, which compiles
    or loads what that format's ingest runs.  Returns the inputs to ingest alone first:
    the first binary input of each format (a trace.dat cut short is no trace.dat), whose
    worker compiles for the others."""
    import tempfile

    first: dict[tuple[str, str], int] = {}  # (format, kind): its first input
    heads: dict[int, bytes] = {}
    for i, path in enumerate(paths):
        try:
            head = read_head(path)
            paste = find_paste(head)
            mod = parsers.get(opts.format) if opts.format else parsers.detect(
                strip_head(head, paste) if paste else head)
        except (TracekitError, OSError):
            continue  # (its worker says why)
        if mod is None or _small(Path(path), mod):
            continue  # (a small input is read with the loops interpreted: nothing to compile)
        if first.setdefault((mod.FORMAT.name, mod.FORMAT.kind), i) == i:
            heads[i] = head
    alone = [i for (_, kind), i in first.items() if kind != "text"]
    with tempfile.TemporaryDirectory(prefix="tracekit-compile-") as tmp:
        quiet = dataclasses.replace(opts, progress=False, replace=False)
        _compiling.on = True  # (the sample is small, but compiling is what it is read for)
        try:
            for n, i in enumerate(i for i in first.values() if i not in alone):
                head = heads[i]
                sample = Path(tmp) / f"sample{n}.txt"
                sample.write_bytes(head[: head.rfind(b"\n") + 1] or head)
                ingest_file(str(sample), open_store(Path(tmp) / f"store{n}", create=True), quiet)
        finally:
            _compiling.on = False
    return alone


_MALLOC_TUNED = False


def _reuse_freed_memory() -> None:
    """Keep memory that numpy frees for reuse in this process (glibc only).

    Ingest makes and frees arrays of about a megabyte (one value per line of a chunk) and
    buffers of a chunk's size thousands of times.  glibc's defaults give blocks over 128 KiB
    back to the kernel (mmap, or trimming the heap's top) as soon as they are freed, so every
    new array faults its pages in again: a third of the page faults of an ingest.  Raising
    the two thresholds keeps those blocks in the heap.  A threshold the user set in the
    environment (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``) is left alone."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 64 << 20)
    mallopt(m_trim_threshold, 256 << 20)


def _ingest_worker(path: str, url: str, opts: IngestOptions, raising: bool) -> list[IngestResult]:
    return ingest_file(path, Store(url), opts, raising=raising)


def ingest_file(path: str, store: Store, options: IngestOptions | None = None, *, raising: bool = False,
                display: str | None = None, recorded_path: str | None = None) -> list[IngestResult]:
    """Ingest one input (``-`` for standard input): one run, or one run per input of a
    ``trace-cmd report -i a.dat -i b.dat`` text (each input's lines carry its name; see
    :func:`tracekit.parsers.tracecmd_report.report_inputs`).  Errors and names as
    :func:`ingest_one`."""
    opts = options or IngestOptions()
    if path == "-":
        spooled = spool_stdin(store.scratch())
        try:
            return ingest_file(str(spooled), store, opts, raising=raising, display="<stdin>", recorded_path=recorded_path)
        finally:
            spooled.unlink(missing_ok=True)
    named = dict(raising=raising, display=display, recorded_path=recorded_path)
    inputs = None
    if opts.format in (None, tracecmd_report.FORMAT.name) and Path(path).is_file():
        try:
            inputs = tracecmd_report.report_inputs(read_head(Path(path)))
        except (InputError, OSError):
            inputs = None  # ingest_one says why the file cannot be read
    if inputs is None:
        return [ingest_one(path, store, opts, **named)]
    return [ingest_one(path, store, opts, report_input=(inputs, name), **named) for name in inputs.names]


def _progress_bar(path: str, total: int | None):
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    prog = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = prog.add_task(os.path.basename(path), total=total)
    return prog, task


def ingest_one(
    path: str,
    store: Store,
    options: IngestOptions | None = None,
    *,
    raising: bool = False,
    display: str | None = None,
    report_input: tuple[tracecmd_report.ReportInputs, str] | None = None,
    recorded_path: str | None = None,
) -> IngestResult:
    """Ingest one trace file (``-`` for standard input) into ``store``.  ``display`` is the
    name to show for it (the path by default); ``report_input`` selects one input of a
    several-input trace-cmd report (:func:`ingest_file` makes one run of each);
    ``recorded_path`` is the path the run records, when ``path`` is a copy (a cluster
    worker's) of the trace the user named (by default, ``display`` made absolute).

    An input that cannot be read is recorded in the result's ``error``; with ``raising``
    its error is raised as it was made instead (an :class:`OSError` as an
    :class:`InputError` naming the file, the OSError kept as its cause)."""
    opts = options or IngestOptions()
    patch, label, boot = opts.patch, opts.label, opts.boot
    _reuse_freed_memory()
    t0 = time.monotonic()
    display = display or ("<stdin>" if path == "-" else str(path))
    shown = f"{display} ({report_input[1]})" if report_input else display
    res = IngestResult(path=shown, patch=patch, label=label, boot_id=boot)
    spooled: Path | None = None
    if recorded_path is None:
        recorded_path = os.path.abspath(display) if display != "<stdin>" else display
    try:
        if path == "-":
            spooled = spool_stdin(store.scratch())
            real = spooled
        else:
            real = Path(path)
            if not real.exists():
                raise InputError(f"{display}: no such file")
            if real.is_dir():
                raise InputError(f"{display}: is a directory")
        head = read_head(real)
        if report_input:
            head = _input_head(head, *report_input)
        paste = find_paste(head)
        if paste:
            head = strip_head(head, paste)
        if opts.format:
            mod = parsers.get(opts.format)
        else:
            mod = parsers.detect(head)
            if mod is None:
                raise _not_a_trace(display, head)
        res.format = mod.FORMAT.name
        own_line = getattr(mod, "OWN_LINE_RE", None)
        if own_line and (paste or wraps_in(head, own_line)):
            paste = Paste(paste.quote_depth, paste.indent, rejoin=own_line, quoted_printable=paste.quoted_printable)
        gate = _Gate(store, real, opts.replace, res, part=report_input[1] if report_input else None, boot=boot)
        try:
            with interpreted(_small(real, mod)):
                _run(mod, real, display, recorded_path, store, gate, res, paste, report_input, opts)
        except _Duplicate as d:
            existing = d.row
            before = _memberships_of(store, res.run_id)
            added = store.add_membership(res.run_id, patch, label)
            res.status = "added" if added else "duplicate"
            res.memberships = sorted(set(before) | {(patch, label)})
            res.boot_id = existing.get("boot_id")
            res.arch, res.kernel = existing["arch"], existing["kernel"]
            res.tracer, res.format = existing["tracer"], existing["format"]
            res.counts = dict(existing["counts"] or {})
            return res
        finally:
            gate.close()
    except TracekitError as e:
        res.status, res.error = "failed", str(e)
        if raising:
            raise
    except OSError as e:
        res.status, res.error = "failed", f"{display}: {e.strerror or e}"
        if raising:
            raise InputError(res.error) from e
    except Exception as e:  # a bug must not look like a traceback to a user of the CLI
        if raising:
            raise
        res.status = "failed"
        res.error = f"{display}: internal error: {type(e).__name__}: {e}"
        if os.environ.get("TRACEKIT_DEBUG"):
            traceback.print_exc()
    finally:
        if spooled is not None:
            spooled.unlink(missing_ok=True)
        res.seconds = time.monotonic() - t0
    return res


#: ``on`` while :func:`_compile_once` reads its samples, which must run compiled
_compiling = threading.local()


def _small(real: Path, mod) -> bool:
    """Whether ``real`` is small enough that its compiled loops run faster interpreted than
    numba starts (:mod:`tracekit.jit`): uncompressed text of at most SMALL_TEXT_BYTES.  The
    results are the same either way."""
    if getattr(_compiling, "on", False):
        return False
    return mod.FORMAT.kind == "text" and real.stat().st_size <= SMALL_TEXT_BYTES and compression_of(real) is None


def _run(mod, real: Path, display: str, recorded_path: str, store: Store, gate: _Gate, res: IngestResult, paste: Paste,
         report_input: tuple[tracecmd_report.ReportInputs, str] | None, opts: IngestOptions) -> None:
    """Parse ``real`` with ``mod``, pair its calls into spans and publish the run (the body
    of :func:`ingest_one`, which says why an input cannot be read)."""
    arch, kernel, patch, label, boot = opts.arch, opts.kernel, opts.patch, opts.label, opts.boot
    clock_hz, preempt, extra_meta = opts.clock_hz, opts.preempt, dict(opts.extra_meta or {})
    ctx = ParseContext(res.path, options={"clock_hz": clock_hz})
    if report_input:
        ctx.meta["report_input"] = report_input[1]
    writer = None
    stream: _Ahead | None = None
    builder: SpanBuilder | None = None
    nbytes = 0
    nlines = 0
    prog = None
    try:
        if opts.progress:
            total = real.stat().st_size if not str(real).endswith((".gz", ".xz", ".zst")) else None
            prog, task = _progress_bar(display, total)
            prog.start()

        def on_progress(n: int) -> None:
            nonlocal nbytes
            nbytes = n
            if prog is not None:
                prog.update(task, completed=n)

        rejoined = Rejoined()
        if mod.FORMAT.kind == "binary":
            frames = mod.parse_file(str(real), ctx)
            nbytes = real.stat().st_size
        else:
            chunks = iter_line_chunks(real, on_progress=on_progress)
            if report_input:  # the run's lines are its input's
                chunks = tracecmd_report.one_input(chunks, *report_input)

            def counted(chunks):
                nonlocal nlines
                for chunk in chunks:
                    nlines += chunk.n_lines
                    yield chunk

            chunks = counted(chunks)
            if paste:
                chunks = unpaste(chunks, paste, rejoined)
            frames = mod.parse(chunks, ctx)

        # the clock conversion and the chunk's own share of the pairing run ahead in the
        # parsing thread, which starts now, beside the content hash; the main thread applies
        # what earlier chunks carry
        # text call graphs are paired by nesting as the kernel prints them; records with
        # a stated depth (trace.dat) by that depth
        nesting = mod.FORMAT.kind == "text"
        stream = _Ahead(SpanBuilder.prepare(_convert_clock(df, ctx, clock_hz), nesting) for df in frames)
        run_id, sha, replacing = gate.open()
        writer = store.begin_run(run_id)
        sym_sample: list[str] = []
        with _WriteBehind(writer) as parts:
            for prep in stream:
                if builder is None:
                    builder = SpanBuilder(source=ctx.meta.get("span_source", mod.FORMAT.name), nesting=nesting)
                if len(sym_sample) < 2000:
                    sym_sample.extend(prep.events["raw_func"].drop_nulls().head(2000).to_list())
                out = builder.feed(prep, source=ctx.meta.get("span_source"))
                parts.write("spans", out.spans)
                parts.write("events", out.events)
            if builder is not None:
                out = builder.finish()
                parts.write("spans", out.spans)
                parts.write("events", out.events)
                if builder.indent_disagreements:
                    at = builder.first_disagreement_line
                    ctx.warn(f"{display}: {builder.indent_disagreements} call line(s) indented at another depth than "
                             f"their nesting; paired by nesting, as the kernel emits calls"
                             + (f" (first at line {at})" if at else ""))
        if ctx.windows:
            wins = conform(pl.DataFrame(ctx.windows, infer_schema_length=None), WINDOW_SCHEMA)
            writer.write("windows", wins)
        _require_something_read(ctx, writer.rows, display, mod.FORMAT.name, given=bool(opts.format))

        if paste:
            _note_paste(ctx, display, paste, rejoined)
        meta = dict(ctx.meta)
        trace_arch = meta.pop("arch", None)
        found_arch = canonical_arch(trace_arch) if trace_arch else None
        if found_arch is None:
            found_arch = arch_from_kernel_release(meta.get("kernel")) or arch_from_symbols(pl.Series(sym_sample, dtype=pl.String))
        if found_arch and arch and found_arch != arch:
            raise ParseError(display, None, f"the trace says arch {found_arch}, but --arch says {arch}")
        final_arch = found_arch or arch
        if final_arch is None:
            final_arch = "unknown"
            ctx.warn(f"{display}: the trace does not say its architecture and --arch was not given: arch is 'unknown'")
        trace_kernel = meta.pop("kernel", None)
        if trace_kernel and kernel and trace_kernel != kernel:
            ctx.warn(f"{display}: the trace says kernel {trace_kernel}; --kernel {kernel} ignored")
        final_kernel = trace_kernel or kernel or "unknown"
        config = {k: meta.pop(k) for k in ("preempt_model", "page_size") if k in meta}
        if preempt:
            config.setdefault("preempt_model", preempt)
        config.update(extra_meta.pop("config", None) or {})
        # what the caller knows and the trace does not say (tracekit capture: the clock)
        given_clock = extra_meta.pop("clock", None)
        if ctx.skipped:
            first = meta.get("first_skipped_line")
            where = f" (first at line {first})" if first else ""
            ctx.warn(f"{display}: {sum(ctx.skipped.values())} line(s) not understood and skipped{where}")
        counts = {
            "lines": nlines,
            "events": writer.rows["events"],
            "spans": writer.rows["spans"],
            "windows": writer.rows["windows"],
            "lost_events": int(ctx.lost_events),
            "skipped_lines": int(sum(ctx.skipped.values())),
        }
        assert set(counts) == set(COUNT_FIELDS)
        spans_by_source = dict(builder.counts) if builder else {}
        tracer = meta.pop("tracer", None)
        clock = meta.pop("clock", None) or given_clock
        hz = meta.pop("clock_hz", None) or clock_hz
        time_unit = "ns" if meta.pop("time_unit_converted_from", None) else meta.pop("time_unit", "ns")
        meta.pop("time_unit", None)
        ncpus = meta.pop("ncpus", None)
        meta.pop("span_source", None)
        meta.update({k: v for k, v in extra_meta.items()})
        meta["ingested_by"] = ingested_by()
        row = {
            "run_id": run_id,
            "path": recorded_path,
            "sha256": sha,
            "format": mod.FORMAT.name,
            "tracer": tracer,
            "arch": final_arch,
            "kernel": final_kernel,
            "patch": patch,
            "label": label,
            "boot_id": boot,
            "partition": None,
            "config": json.dumps(config, sort_keys=True),
            "clock": clock,
            "clock_hz": float(hz) if hz else None,
            "time_unit": time_unit,
            "ncpus": int(ncpus) if ncpus is not None else None,
            "counts": counts,
            "spans_by_source": json.dumps(spans_by_source, sort_keys=True),
            "skipped": json.dumps(dict(ctx.skipped), sort_keys=True),
            "warnings": list(ctx.warnings),
            "meta": json.dumps(meta, sort_keys=True, default=str),
            "tracekit_version": __version__,
            "ingested_at": datetime.now(timezone.utc),
        }
        writer.commit(row, replace=replacing)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if stream is not None:
            stream.close()
        if prog is not None:
            prog.stop()
    res.status = "replaced" if replacing else "ingested"
    res.memberships = _memberships_of(store, run_id) if replacing else [(patch, label)]
    res.tracer, res.arch, res.kernel = tracer, final_arch, final_kernel
    res.counts, res.spans_by_source = counts, spans_by_source
    res.skipped = dict(ctx.skipped)
    res.warnings = list(ctx.warnings)
    res.bytes = nbytes


def _memberships_of(store: Store, run_id: str) -> list[tuple[str, str]]:
    m = store.memberships().filter(pl.col("run_id") == run_id)
    return sorted(m.select("patch", "label").iter_rows())


def _require_something_read(ctx: ParseContext, rows: dict[str, int], display: str, fmt: str, given: bool) -> None:
    """A run in which lines were read but none understood (no span, event or window) is
    input in another format than the one it was read as, not an empty trace: raise."""
    if any(rows.values()) or not ctx.skipped:
        return
    n = sum(ctx.skipped.values())
    reason, _ = max(ctx.skipped.items(), key=lambda kv: kv[1])
    hint = "leave out --format to detect it, or see 'tracekit formats'" if given else "see 'tracekit formats'"
    raise ParseError(display, ctx.meta.get("first_skipped_line"),
                     f"nothing read as {fmt}: all {n} line(s) not understood (mostly: {reason}); {hint}")


class _Ahead:
    """Run the parser one or two chunks ahead in a thread, from the moment this is made:
    polars and numpy release the GIL in their kernels, so parsing overlaps the content hash,
    pairing and writing.  Memory stays bounded by ``depth`` chunks; an exception in the
    parser is raised to the consumer; :meth:`close` stops the parser."""

    _DONE = object()

    def __init__(self, frames: Iterator, depth: int = 2) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._frames = frames
        self._worker = threading.Thread(target=self._run, name="tracekit-parse", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        try:
            for df in self._frames:
                if self._stop.is_set():
                    return
                self._q.put((df, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._q.put((None, e))
            return
        self._q.put((self._DONE, None))

    def __iter__(self) -> Iterator:
        while True:
            item, err = self._q.get()
            if err is not None:
                raise err
            if item is self._DONE:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                self._q.get(timeout=0.05)
            except queue.Empty:
                pass
        self._worker.join()


def run_identity(sha256: str, part: str | None = None, boot: str | None = None) -> str:
    """A run's id (docs/store.md, runs): the first 16 hex digits of its content's SHA-256;
    for one input of a several-input report, or a trace recorded in a named boot, those of
    the SHA-256 of the content's hash with the input's name and the boot id."""
    if part is None and boot is None:
        return sha256[:16]
    key = sha256 if part is None else f"{sha256}\0{part}"
    if boot is not None:
        key = f"{key}\0boot\0{boot}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class _Duplicate(Exception):
    """The trace is in the store already (and --replace was not given)."""

    def __init__(self, row: dict) -> None:
        self.row = row


class _Gate:
    """The run's identity and lock, taken when the content hash is done: the content is
    hashed while the parser already works on the first chunks.  A ``part`` of a file (one
    input of a several-input report) is a run of its own, and so is a trace recorded in a
    named ``boot``: the same bytes recorded in two boots (a deterministic guest under QEMU
    -icount writes them) are two observations, not one trace ingested twice."""

    def __init__(self, store: Store, real: Path, replace: bool, res: IngestResult, part: str | None = None,
                 boot: str | None = None) -> None:
        self.store, self.real, self.replace, self.res = store, real, replace, res
        self.part, self.boot = part, boot
        self._stack = ExitStack()

    def open(self) -> tuple[str, str, bool]:
        """(run_id, sha256, replacing) with the run's lock held; :class:`_Duplicate` when
        the run exists and is not to be replaced."""
        sha = content_sha256(self.real)
        run_id = run_identity(sha, self.part, self.boot)
        self.res.run_id = run_id
        self._stack.enter_context(self.store.lock(run_id))
        existing = self.store.run_row(run_id)
        if existing is not None and not self.replace:
            raise _Duplicate(existing)
        return run_id, sha, existing is not None

    def close(self) -> None:
        self._stack.close()


class _WriteBehind:
    """Write Parquet parts in a thread while the next chunk is paired (the encoder and
    compressor release the GIL).  Small frames of a table are gathered until they make a
    part of ``part_rows`` rows (a trace's few events would otherwise make one tiny file per
    chunk).  At most ``depth`` parts wait; leaving the ``with`` block writes what is
    gathered, waits for every part and raises the first error the writer met."""

    def __init__(self, writer, depth: int = 2, part_rows: int = 1 << 16) -> None:
        self._writer = writer
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tracekit-write", daemon=True)
        self._part_rows = part_rows
        self._gathered: dict[str, list[pl.DataFrame]] = {}

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            if self._error is None:
                try:
                    table, frames = item
                    self._writer.write(table, frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=False))
                except BaseException as e:  # noqa: BLE001 - raised in the ingesting thread
                    self._error = e

    def write(self, table: str, df: pl.DataFrame) -> None:
        if self._error is not None:
            raise self._error
        if not df.height:
            return
        frames = self._gathered.setdefault(table, [])
        frames.append(df)
        if sum(f.height for f in frames) >= self._part_rows:
            self._flush(table)

    def _flush(self, table: str) -> None:
        frames = self._gathered.pop(table, None)
        if frames:
            self._q.put((table, frames))

    def __enter__(self) -> "_WriteBehind":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            for table in list(self._gathered):
                self._flush(table)
        self._q.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error


def _input_head(head: bytes, inputs: tracecmd_report.ReportInputs, name: str) -> bytes:
    """The first bytes of one input of a several-input report, without the prefix."""
    whole = head[: head.rfind(b"\n") + 1] or head
    (part,) = tracecmd_report.one_input(iter([LineChunk(1, raw=whole)]), inputs, name)
    return part.raw


def _note_paste(ctx: ParseContext, display: str, paste: Paste, rejoined: Rejoined) -> None:
    """Say what was undone to read a pasted trace (quote prefix, indentation, wrapped lines)."""
    if paste.quote_depth or paste.indent or paste.quoted_printable:
        ctx.meta["pasted_prefix"] = {"quote_depth": paste.quote_depth, "indent": paste.indent,
                                     "quoted_printable": paste.quoted_printable}
        ctx.warn(f"{display}: the trace is pasted from mail or a document; undone before reading it: {paste.describe()}")
    if rejoined.joined or rejoined.orphans:
        ctx.meta["wrapped_lines"] = {"rejoined": rejoined.joined, "not_rejoined": rejoined.orphans}
        msg = f"{display}: {rejoined.joined} line(s) broken by a mail client were joined back onto the line before"
        if rejoined.orphans:
            msg += f"; {rejoined.orphans} line(s) that cannot begin a line of this format could not be rejoined"
        ctx.warn(msg)


def _not_a_trace(display: str, head: bytes) -> ParseError:
    """The error for an input no format recognises: what it is when that can be told (a
    binary file by type, files that travel with traces by content), else its first line
    (or first bytes, for binary data)."""
    if not head.strip():
        return ParseError(display, 1, "empty input: no trace in it")
    what = binary_file_type(head) or _known_non_trace(head)
    if what:
        return ParseError(display, 1, f"not a trace: {what}")
    if looks_binary(head):
        shown = f"binary data, first bytes {head[:8].hex(' ')}"
    else:
        first = head.split(b"\n", 1)[0][:80].decode("latin-1")
        shown = f"first line: {first!r}"
    return ParseError(display, 1, f"not a trace format tracekit knows ({shown}); see 'tracekit formats', or give --format")


def _known_non_trace(head: bytes) -> str | None:
    """Name the files that travel with traces but are not traces, so that the message says
    what to do with them instead of only that the format is unknown."""
    import re

    text = head.decode("latin-1")
    if re.search(r"^(?:From [0-9a-f]{40} |diff --git |--- a/)", text, re.M) and re.search(r"^(?:Subject:|@@ )", text, re.M):
        return "a patch (git format-patch or mbox): give it to 'tracekit report --patch-file'"
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if lines and all(re.match(r"^(?:CONFIG_\w+=|# CONFIG_\w+ is not set)", ln) for ln in lines[:50]):
        return "a kernel configuration fragment (CONFIG_...= lines); ingest the traces of the kernel built with it"
    if lines and all(re.match(r"^[\w-]+:[\w.-]+$", ln) for ln in lines[:50]):
        return "a list of trace events (tracefs set_event), not their records"
    # the stack tracer's table (kernel/trace/trace_stack.c, "Depth    Size   Location")
    if re.search(r"^\s*Depth\s+Size\s+Location\s+\(\d+ entries\)", text, re.M):
        return "the stack tracer's stack_trace table (the deepest stack seen), not a trace of events"
    # a hist trigger's file (kernel/trace/trace_events_hist.c, "# event histogram")
    if re.match(r"\s*# event histogram", text):
        return "a hist trigger's histogram (events/*/hist), not a trace of events"
    return None


def _convert_clock(df: pl.DataFrame, ctx: ParseContext, clock_hz: float | None) -> pl.DataFrame:
    """Counter clocks (x86-tsc, ppc-tb, counter) print ticks: convert them to ns when the
    frequency is known (from the trace, or --clock-hz); otherwise keep ticks and say so."""
    if ctx.meta.get("time_unit") != "ticks":
        return df
    hz = ctx.meta.get("clock_hz") or clock_hz
    if not hz:
        ctx.warn(f"{ctx.path}: timestamps are clock ticks and no frequency is known (give --clock-hz): times are kept in ticks")
        return df
    ctx.meta["clock_hz"] = hz
    ctx.meta["time_unit_converted_from"] = "ticks"
    out = df.with_columns((pl.col("ts_ns").cast(pl.Float64) * (1e9 / hz)).round(0).cast(pl.Int64).alias("ts_ns"))
    return out
