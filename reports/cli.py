"""``tracekit report``: the before/after report of one patch, from the store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

__all__ = ["register", "report"]


def report(
    patch: Annotated[str, typer.Option("--patch", help="The patch whose runs are compared (as given to tracekit ingest --patch); several, comma-separated, compare each one's --compare sides with the first one's baseline.", show_default=False)],
    store: Annotated[Optional[str], typer.Option("--store", help="Store: a directory or a URL (s3://bucket/prefix, ...) (default: $TRACEKIT_STORE, else ./tracekit-store).", show_default=False)] = None,
    patch_file: Annotated[Optional[Path], typer.Option("--patch-file", help="The patch as git format-patch output or an mbox from the list: subject, author, Message-ID and the functions it touches.", show_default=False)] = None,
    before: Annotated[str, typer.Option("--before", help="Label of the runs before the patch.")] = "before",
    after: Annotated[str, typer.Option("--after", help="Label of the runs after the patch.")] = "after",
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="Label of the baseline runs (the same as --before).", show_default=False)] = None,
    compare_: Annotated[Optional[str], typer.Option("--compare", help="Comma-separated labels each compared with the baseline, in one table (PATCH:LABEL names another patch's runs); instead of --after.", show_default=False)] = None,
    under: Annotated[Optional[str], typer.Option("--under", help="Only calls made (at any depth) inside this caller, e.g. exit_mmap or unmap_region.", show_default=False)] = None,
    functions: Annotated[Optional[str], typer.Option("--functions", help="Comma-separated functions to compare, instead of those the patch touches plus the page-table teardown path.", show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", help="Directory the report files and plots are written to.")] = Path("tracekit-report"),
    formats: Annotated[str, typer.Option("--format", help="Outputs: any of text,md,html,json.")] = "text,md,html,json",
    fail_on_regression: Annotated[bool, typer.Option("--fail-on-regression", help="Exit 1 when any function's verdict is a regression.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Do not print report.txt.")] = False,
) -> None:
    """Compare the before and after runs of a patch: per arch and function, latency
    statistics with boots as the unit of replication, confidence intervals, a rank test
    and a verdict; the worst latency windows; TLB-flush and page-free counts.  Writes
    report.txt (plain text for a reply on the list, printed too), report.md, report.html,
    report.json and plots (replacing those of an earlier report in --out).

    Example:

        tracekit report --patch pgfree-lat --patch-file 0001-mm-foo.patch --out ./review

        tracekit report --patch pgfree-lat --baseline before --compare v1,v2 --under exit_mmap

    Exit status: 0; 1 with --fail-on-regression when a verdict is a regression; 2 when the
    report cannot be made (unknown patch, empty store, unreadable patch file).
    """
    from tracekit.cli import die
    from tracekit.reports.compare import ReportError
    from tracekit.reports.patch import PatchError
    from tracekit.reports.report import write_report

    funcs = [f.strip() for f in functions.split(",") if f.strip()] if functions else None
    patches = [p.strip() for p in patch.split(",") if p.strip()]
    sides = [c.strip() for c in compare_.split(",") if c.strip()] if compare_ else [after]
    try:
        result = write_report(
            patches if len(patches) > 1 else patches[0],
            store=store,
            patch_file=patch_file,
            before=baseline or before,
            after=sides,
            functions=funcs,
            under=under,
            out_dir=out,
            formats=formats,
        )
    except (ReportError, PatchError) as e:
        raise die(str(e))
    if result.text is not None and not quiet:
        sys.stdout.write(result.text)
        sys.stdout.flush()
    written = ", ".join(str(p) for p in result.files.values())
    extra = f" and {len(result.plots)} plot files" if result.plots else ""
    typer.echo(f"tracekit: wrote {written}{extra}", err=True)
    if fail_on_regression and result.any_regression:
        regressed = [
            f"{g.key}: {f.function}" + (f" ({f.against})" if len(g.side_names) > 2 else "")
            for g in result.comparison.groups
            for f in g.functions
            if f.verdict == "regression"
        ]
        typer.echo(f"tracekit: regression in {', '.join(regressed)}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to the tracekit CLI."""
    app.command(name="report")(report)
