"""``tracekit sql``, ``spans``, ``events``, ``windows``, ``export`` and ``flamegraph``: the
store from the terminal.  Each command parses its options, calls one library function
(:mod:`tracekit.sql`, :mod:`tracekit.rows`, :mod:`tracekit.export`,
:mod:`tracekit.flamegraph`) and prints what it returns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register"]

StoreOpt = Annotated[
    Optional[Path],
    typer.Option("--store", help="Store directory (default: $TRACEKIT_STORE, else ./tracekit-store).", show_default=False),
]
FormatOpt = Annotated[str, typer.Option("--format", help="table (fits the terminal; plain ASCII when piped), csv, or json (a list of row objects).")]


def _output_format(fmt: str) -> str:
    from tracekit.errors import OptionError
    from tracekit.tables import OUTPUT_FORMATS

    if fmt not in OUTPUT_FORMATS:
        raise OptionError(f"--format {fmt!r}: one of {', '.join(OUTPUT_FORMATS)}")
    return fmt


def sql(
    query: Annotated[str, typer.Argument(help="A DuckDB SQL query over the views runs, spans, events and windows.", show_default=False)],
    store: StoreOpt = None,
    format: FormatOpt = "table",
) -> None:
    """Run a SQL query (DuckDB) over the store.  The views runs, spans, events and windows
    hold every committed run; spans, events and windows have the partition columns patch,
    arch, label and run_id.  Times and durations are in ns (start_ns, dur_ns, ts_ns).

    Example:

        tracekit sql "SELECT func, count(*) AS calls, median(dur_ns) AS median_ns FROM spans WHERE complete GROUP BY func ORDER BY calls DESC LIMIT 10"

    Exit status: 0, or 2 for a query DuckDB refuses or a store that cannot be read.
    """
    from tracekit.cli import out
    from tracekit.sql import query as run_query
    from tracekit.store import open_store
    from tracekit.tables import print_frame

    fmt = _output_format(format)
    print_frame(run_query(open_store(store), query), fmt, out)


#: The columns a table shows of each kind of row (csv and json show every column).
_TABLE_COLUMNS = {
    "spans": ["run_id", "cpu", "pid", "comm", "depth", "func", "start_ns", "dur_ns", "context", "complete", "source"],
    "events": ["run_id", "cpu", "pid", "comm", "ts_ns", "kind", "event", "func", "body"],
    "windows": ["run_id", "window", "tracer", "latency_ns", "cpu", "pid", "comm", "started_at", "ended_at"],
}


def _list_rows(table: str, store, patch, label, run, func, comm, pid, cpu, under, min_dur, time, format, limit) -> None:
    from tracekit.cli import err, out
    from tracekit.errors import OptionError
    from tracekit.rows import RowFilter, select
    from tracekit.store import open_store
    from tracekit.tables import print_frame
    from tracekit.units import parse_duration_ns, parse_time_range_ns

    fmt = _output_format(format)
    if limit is not None and limit < 0:
        raise OptionError(f"--limit {limit}: 0 for every row, or a number of rows")
    f = RowFilter(
        patch=patch, label=label, run=run, func=func, comm=comm, pid=pid, cpu=cpu, under=under,
        min_dur_ns=parse_duration_ns(min_dur) if min_dur is not None else None,
        time_ns=parse_time_range_ns(time) if time is not None else None,
    )
    rows = select(open_store(store), table, f)
    shown = rows if not limit else rows.head(limit)
    if fmt == "table":
        import polars as pl

        shown = shown.with_columns(pl.col("run_id").str.slice(0, 8)).select(_TABLE_COLUMNS[table])
    print_frame(shown, fmt, out)
    if shown.height < rows.height:
        err.print(f"tracekit: {shown.height:,} of {rows.height:,} {table} shown (--limit 0 shows every one)", markup=False)
    elif rows.height == 0:
        err.print(f"tracekit: no {table} match", markup=False)


def _rows_command(table: str, what: str, example: str, applies: str):
    def command(
        store: StoreOpt = None,
        patch: Annotated[Optional[str], typer.Option("--patch", help="Only runs of this patch.", show_default=False)] = None,
        label: Annotated[Optional[str], typer.Option("--label", help="Only runs with this label (before, after, ...).", show_default=False)] = None,
        run: Annotated[Optional[str], typer.Option("--run", help="Only this run (its id, or a unique prefix of it).", show_default=False)] = None,
        func: Annotated[Optional[str], typer.Option("--func", help="Function names or globs, comma-separated (zap_*,free_pgtables).", show_default=False)] = None,
        comm: Annotated[Optional[str], typer.Option("--comm", help="Task names or globs, comma-separated.", show_default=False)] = None,
        pid: Annotated[Optional[int], typer.Option("--pid", help="Only this pid.", show_default=False)] = None,
        cpu: Annotated[Optional[int], typer.Option("--cpu", help="Only this CPU.", show_default=False)] = None,
        under: Annotated[Optional[str], typer.Option("--under", help="Only calls made (at any depth) from a call of this function.", show_default=False)] = None,
        min_dur: Annotated[Optional[str], typer.Option("--min-dur", help="Only calls (windows: latencies) at least this long: 250us, 1.5ms, 800ns.", show_default=False)] = None,
        time: Annotated[Optional[str], typer.Option("--time", help="FROM:TO, trace time in seconds as the trace prints it (either side may be empty).", show_default=False)] = None,
        format: FormatOpt = "table",
        limit: Annotated[Optional[int], typer.Option("--limit", help="At most this many rows (default: 100 in a table, all in csv and json; 0: all).", show_default=False)] = None,
    ) -> None:
        if limit is None:
            limit = 100 if format == "table" else 0
        _list_rows(table, store, patch, label, run, func, comm, pid, cpu, under, min_dur, time, format, limit)

    command.__doc__ = f"""{what}, in trace order, as a table or as csv or json.  {applies}

    Example:

        {example}

    Exit status: 0 (also when no row matches, which stderr says), or 2 for a bad option or a
    store that cannot be read.
    """
    return command


def export(
    run: Annotated[str, typer.Option("--run", help="The run (its id, or a unique prefix of it).", show_default=False)],
    format: Annotated[str, typer.Option("--format", help="perfetto (Chrome/Perfetto trace-event JSON) or folded (flame-graph stacks).", show_default=False)] = "perfetto",
    out_file: Annotated[Optional[Path], typer.Option("--out", help="File to write (default: standard output).", show_default=False)] = None,
    store: StoreOpt = None,
) -> None:
    """Export a run for other tools.  perfetto: trace-event JSON for ui.perfetto.dev (a
    process per CPU, a thread per task, a slice per completed call, an instant per event,
    latency windows as slices).  folded: one line per call path with the ns spent in its
    innermost function, for flamegraph.pl and other flame-graph tools.

    Example:

        tracekit export --run 5282ac9b --format perfetto --out trace.json

        tracekit export --run 5282ac9b --format folded --out run.folded

    Exit status: 0, or 2 for an unknown run or format, or a file that cannot be written.
    """
    from tracekit.cli import err
    from tracekit.errors import OptionError
    from tracekit.export import EXPORT_FORMATS, folded, perfetto
    from tracekit.store import open_store

    if format not in EXPORT_FORMATS:
        raise OptionError(f"--format {format!r}: one of {', '.join(EXPORT_FORMATS)}")
    st = open_store(store)
    result = perfetto(st, run) if format == "perfetto" else folded(st, run)
    _write(out_file, result.text)
    said = ", ".join(f"{v:,} {k}" for k, v in result.counts.items())
    left = "; left out: " + ", ".join(f"{v:,} {k}" for k, v in result.left_out.items()) if result.left_out else ""
    err.print(f"tracekit: wrote {out_file or 'standard output'}: {said}{left}", markup=False)


def _write(path: Optional[Path], text: str) -> None:
    """Write ``text`` to ``path`` (standard output when None); an unwritable path is an
    OptionError naming it."""
    import sys

    from tracekit.errors import OptionError

    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        path.write_text(text)
    except OSError as e:
        raise OptionError(f"--out {path}: cannot write: {e.strerror or e}") from e


def flamegraph_cmd(
    patch: Annotated[Optional[str], typer.Option("--patch", help="Draw the patch's after runs against its before runs (differential).", show_default=False)] = None,
    before: Annotated[str, typer.Option("--before", help="Label of the runs before the patch.")] = "before",
    after: Annotated[str, typer.Option("--after", help="Label of the runs after the patch.")] = "after",
    run: Annotated[Optional[str], typer.Option("--run", help="Draw one run (its id or a unique prefix), instead of --patch.", show_default=False)] = None,
    func: Annotated[Optional[str], typer.Option("--func", help="Only the call paths through this function, drawn from it up.", show_default=False)] = None,
    out_file: Annotated[Path, typer.Option("--out", help="SVG file to write.")] = Path("flamegraph.svg"),
    store: StoreOpt = None,
) -> None:
    """Draw a flame graph of the spans as a self-contained SVG.  With --patch: differential,
    widths from the before runs, each frame coloured by the change of its time per run
    after the patch (red grew, blue shrank); with --run: one run.

    Example:

        tracekit flamegraph --patch pgfree-lat --func exit_mmap --out exit_mmap-diff.svg

        tracekit flamegraph --run 5282ac9b --out run.svg

    Exit status: 0, or 2 when the runs or the function have no spans to draw.
    """
    from tracekit.cli import err
    from tracekit.errors import OptionError
    from tracekit.flamegraph import flamegraph
    from tracekit.store import open_store

    if patch is not None and run is not None:
        raise OptionError("give --patch (differential) or --run (one run), not both")
    svg = flamegraph(open_store(store), patch=patch, before=before, after=after, run=run, func=func)
    _write(out_file, svg)
    err.print(f"tracekit: wrote {out_file}", markup=False)


def register(app: typer.Typer) -> None:
    """Add sql, spans, events, windows, export and flamegraph to the tracekit CLI."""
    app.command(name="sql")(sql)
    app.command(name="export")(export)
    app.command(name="flamegraph")(flamegraph_cmd)
    app.command(name="spans")(_rows_command(
        "spans", "List spans (one per function call)",
        "tracekit spans --patch pgfree-lat --label after --under exit_mmap --func zap_pte_range --min-dur 20us",
        "Every filter applies."))
    app.command(name="events")(_rows_command(
        "events", "List events (tracepoints, function hits, samples, markers)",
        "tracekit events --run 5282ac9b --func tlb_flush* --cpu 1 --format csv",
        "--under and --min-dur do not apply to events; --func matches the function an event names."))
    app.command(name="windows")(_rows_command(
        "windows", "List latency-tracer windows (irqsoff, preemptoff, wakeup snapshots)",
        "tracekit windows --patch pgfree-lat --min-dur 100us --format json",
        "--min-dur keeps windows whose latency is at least that; --func, --under and --time do not apply."))
