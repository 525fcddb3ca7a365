"""The ``tracekit`` command line: a thin layer over the library.

Every command parses its options and calls one library function (``tracekit.ingest``,
``tracekit.open_store``, ...).  Commands that live with their subsystem (report, model,
replay, capture) register themselves from the modules named in :data:`EXTENSIONS`, each of
which defines ``register(app)``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperGroup

from tracekit.errors import TracekitError

__all__ = ["app", "main", "run", "EXTENSIONS", "die"]

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def keep_examples(help_text: str) -> str:
    """``help_text`` with its indented paragraphs (the examples) marked so that the help
    formatter prints them as written: a command re-wrapped onto two lines would drop the
    options of the second when its first line is pasted."""
    paragraphs = inspect.cleandoc(help_text).split("\n\n")
    marked = [
        "\b\n" + p if p.strip() and all(line.startswith(" ") for line in p.splitlines() if line.strip()) else p
        for p in paragraphs
    ]
    return "\n\n".join(marked)


class _Commands(TyperGroup):
    """The command group: a :class:`TracekitError` from any command is one line on stderr
    and its exit status (2), under the console script and typer's test runner alike; every
    command's examples are printed as written (:func:`keep_examples`)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except TracekitError as e:
            raise die(str(e), e.exit_code) from None

    def get_command(self, ctx, cmd_name):
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None and cmd.help and "\b" not in cmd.help:
            cmd.help = keep_examples(cmd.help)
        return cmd


app = typer.Typer(
    cls=_Commands,
    name="tracekit",
    help=(
        "Ingest kernel traces (ftrace, trace-cmd, perf) into a Parquet store, look at them "
        "(sql, spans, export, flame graphs), compare them per patch, and model the page-table "
        "teardown path."
    ),
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

#: Modules that add their own commands with ``register(app)``.
EXTENSIONS: tuple[str, ...] = (
    "tracekit.data_cli", "tracekit.capture.cli", "tracekit.reports.cli", "tracekit.model.cli",
)


def die(message: str, code: int = 2) -> "typer.Exit":
    """Print ``tracekit: error: message`` to stderr and return the Exit to raise."""
    err.print(f"tracekit: error: {message}", markup=False)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from tracekit import __version__

        out.print(f"tracekit {__version__}", markup=False)
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", help="Print tracekit's version and exit.", callback=_version, is_eager=True)] = False,
) -> None:
    """The options of tracekit itself, before a command."""


StoreOpt = Annotated[
    Optional[str],
    typer.Option(
        "--store",
        help="Store: a directory or a URL (s3://bucket/prefix, gs://..., file://...); credentials "
        "and endpoint from the environment (AWS_ENDPOINT_URL, ...).  Default: $TRACEKIT_STORE, else ./tracekit-store.",
        show_default=False,
    ),
]


@app.command()
def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(help="Trace files (plain, .gz, .xz, .zst), or - for standard input.", show_default=False),
    ],
    store: StoreOpt = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture, when the trace does not say (x86_64, i386, ia64, ppc64, ppc64le).")] = None,
    kernel: Annotated[Optional[str], typer.Option(help="Kernel release, when the trace does not say.")] = None,
    patch: Annotated[str, typer.Option(help="Name of the patch under test this run belongs to.")] = "none",
    label: Annotated[str, typer.Option(help="Side of the comparison: before, after, or any label.")] = "none",
    boot: Annotated[Optional[str], typer.Option(help="The boot (or iteration) these traces were recorded in: traces of one boot are one unit of replication in a report; without it each trace is its own unit.")] = None,
    format: Annotated[Optional[str], typer.Option("--format", help="Input format; detected from content when omitted (see tracekit formats).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Re-ingest a trace that is already in the store.")] = False,
    clock_hz: Annotated[Optional[float], typer.Option("--clock-hz", help="Frequency of a counter trace clock (x86-tsc, ppc-tb), to convert ticks to ns.")] = None,
    preempt: Annotated[Optional[str], typer.Option(help="Preemption model of the traced kernel (none, voluntary, full, lazy, rt), when the trace does not say.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Ingest this many files in parallel.")] = 1,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="Ingest on a dask.distributed cluster: the scheduler's address (tcp://host:8786).  The workers write straight into --store, which they must reach (s3://..., or a directory they all mount).  Needs tracekit[cluster].", show_default=False)] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Read traces into the store: spans, events and latency windows, one run per file.

    Example:

        tracekit ingest trace-before.txt --patch pgfree-lat --label before --arch x86_64

    The format, arch and kernel are taken from the trace where it says so.  The same trace
    twice is one run: for another patch or label it is added to them, its data not stored
    again; for the same, the ingest says so (--replace re-ingests it).  Exit status: 0 on
    success (warnings allowed), 2 on input that cannot be read.
    """
    from tracekit.pipeline import IngestOptions, ingest as do_ingest
    from tracekit.summary import print_summary

    options = IngestOptions(
        arch=arch, kernel=kernel, patch=patch, label=label, boot=boot, format=format, replace=replace,
        clock_hz=clock_hz, preempt=preempt, jobs=jobs, scheduler=scheduler,
        progress=sys.stderr.isatty() and not json_out and scheduler is None,
    )
    results = do_ingest(paths, store, options, on_error="collect")
    failed = [r for r in results if r.error]
    if json_out:
        out.print(json.dumps([r.as_dict() for r in results], indent=2), markup=False)
    else:
        print_summary(results, out, err)
    if failed:
        raise typer.Exit(2)


@app.command()
def runs(
    store: StoreOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
    patch: Annotated[Optional[str], typer.Option(help="Only runs of this patch.")] = None,
) -> None:
    """List the runs in the store: one line per ingested trace.

    Example:

        tracekit runs --store ./tracekit-store --json
    """
    from tracekit.summary import print_runs
    from tracekit.store import StoreError, open_store

    try:
        st = open_store(store, create=False)
        df = st.runs().collect()
    except (StoreError, OSError) as e:
        raise die(str(e))
    if patch is not None:
        df = df.filter(df["patch"] == patch)
    if json_out:
        rows = df.with_columns(df["ingested_at"].dt.to_string("%Y-%m-%dT%H:%M:%S%.6fZ")).to_dicts()
        for r in rows:
            for k in ("config", "skipped", "meta", "spans_by_source"):
                if r.get(k):
                    r[k] = json.loads(r[k])
        out.print(json.dumps(rows, indent=2), markup=False)
    else:
        print_runs(df, out)


@app.command()
def forget(
    run: Annotated[str, typer.Argument(help="The run id (or a prefix of it that names one run).", show_default=False)],
    patch: Annotated[str, typer.Option(help="The patch to take the run out of.", show_default=False)],
    label: Annotated[str, typer.Option(help="The label to take the run out of.", show_default=False)],
    store: StoreOpt = None,
) -> None:
    """Take a run out of one patch and label (a trace ingested under the wrong label).  Its
    data stays for the other patches and labels it belongs to.

    Example:

        tracekit forget 5282ac9b --patch pgfree-lat --label before
    """
    from tracekit.store import StoreError, open_store

    try:
        st = open_store(store, create=False)
        hits = sorted(r for r in st.run_ids() if r.startswith(run))
        if len(hits) != 1:
            raise die(f"run {run!r}: {'no such run' if not hits else 'ambiguous prefix'} in the store (see tracekit runs)")
        if not st.remove_membership(hits[0], patch, label):
            raise die(f"run {hits[0]} is not in patch {patch}, label {label} (see tracekit runs)")
    except (StoreError, OSError) as e:
        raise die(str(e))
    members = st.memberships()
    left = members.filter(members["run_id"] == hits[0])
    where = "; ".join(f"patch {p}, label {lab}" for p, lab in sorted(left.select("patch", "label").iter_rows()))
    out.print(f"run {hits[0]}: no longer in patch {patch}, label {label}"
              + (f"; still in {where}" if where else "; in no patch now (invisible; ingest it again to add it back)"),
              markup=False)


@app.command()
def gc(
    store: StoreOpt = None,
    grace: Annotated[Optional[float], typer.Option("--grace", help="On object storage, keep orphans younger than this many seconds (a writer may still be at work); default 6 hours.  On a local store, a live writer's lock keeps what it writes.")] = None,
) -> None:
    """Remove what interrupted ingests left: parts no run commits, memberships of runs
    never committed, work files of dead processes.  Nothing visible changes.

    Example:

        tracekit gc --store s3://ci-traces/store --grace 3600
    """
    from tracekit.store import StoreError, open_store

    try:
        st = open_store(store, create=False)
        n = st.gc(grace)
    except (StoreError, OSError) as e:
        raise die(str(e))
    out.print(f"{st.url}: removed {n} orphaned attempt(s), membership(s) and work file(s)", markup=False)


@app.command()
def formats() -> None:
    """List the input formats tracekit reads, with one real example line of each.

    Example:

        tracekit formats
    """
    from tracekit import parsers

    for mod in parsers.formats():
        f = mod.FORMAT
        out.print(f"{f.name:<18} {f.kind:<6} {f.description}", markup=False)
        out.print(f"{'':<25} e.g. {f.example}", markup=False)


def _register_extensions() -> None:
    for name in EXTENSIONS:
        importlib.import_module(name).register(app)


_register_extensions()


def run() -> int:
    """Run the command line in ``sys.argv``; its exit status.  Never a traceback for user
    errors: a :class:`TracekitError` is one line and its status (2), a bug one line naming
    it (TRACEKIT_DEBUG=1 shows where)."""
    try:
        app(prog_name="tracekit")
    except SystemExit as e:  # (typer ends every command so, with its status)
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        err.print(str(e.code), markup=False)
        return 1
    except TracekitError as e:  # raised outside a command (while completing, say)
        err.print(f"tracekit: error: {e}", markup=False)
        return e.exit_code
    except KeyboardInterrupt:
        err.print("tracekit: interrupted", markup=False)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug: say so in one line; TRACEKIT_DEBUG=1 shows the traceback
        import os

        if os.environ.get("TRACEKIT_DEBUG"):
            raise
        err.print(f"tracekit: internal error: {type(e).__name__}: {e} (TRACEKIT_DEBUG=1 shows where)", markup=False)
        return 1
    return 0


def main() -> None:
    """Entry point of the ``tracekit`` console script: :func:`run`, then the process ends
    as soon as its output is flushed, without the interpreter's teardown (freeing numba's
    and polars' objects one by one took 0.4 s of CPU, a third of a short ingest:
    ``benchmarks/bench_formats.py --startup``).  Every command has finished its writes
    when it returns: the store's files are closed and renamed into place, a cluster's
    client is closed."""
    import os

    code = run()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # (a reader that went away, as 'tracekit ... | head')
            pass
    os._exit(code)
