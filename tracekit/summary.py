"""Human summaries of ingests and of the runs in a store (what ``tracekit ingest`` and
``tracekit runs`` print)."""

from __future__ import annotations

import json

import polars as pl
from rich.console import Console

from tracekit.pipeline import IngestResult

__all__ = ["print_summary", "print_runs"]


def _fmt_counts(r: IngestResult) -> str:
    c = r.counts
    spans = f"{c.get('spans', 0)} spans"
    if r.spans_by_source:
        spans += " (" + ", ".join(f"{k} {v}" for k, v in sorted(r.spans_by_source.items())) + ")"
    parts = [f"{c.get('lines', 0)} lines", f"{c.get('events', 0)} events", spans]
    if c.get("windows"):
        parts.append(f"{c['windows']} latency windows")
    parts.append(f"{c.get('lost_events', 0)} lost events")
    skipped = c.get("skipped_lines", 0)
    if skipped:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(r.skipped.items()))
        parts.append(f"{skipped} lines skipped ({why})")
    else:
        parts.append("0 lines skipped")
    return ", ".join(parts)


def print_summary(results: list[IngestResult], out: Console, err: Console) -> None:
    """One paragraph per input: what it became, its counts, its warnings; errors to err."""
    for r in results:
        if r.status == "failed":
            err.print(f"tracekit: error: {r.error}", markup=False)
            continue
        if r.status in ("duplicate", "added"):
            others = [m for m in r.memberships if m != (r.patch, r.label)]
            where = "; ".join(f"patch {p}, label {lab}" for p, lab in others)
            if r.status == "added":
                out.print(
                    f"{r.path}: already in the store as run {r.run_id} ({where}); "
                    f"added to patch {r.patch}, label {r.label} (its data is not stored again)",
                    markup=False,
                )
            else:
                out.print(
                    f"{r.path}: already in the store as run {r.run_id} in patch {r.patch}, label {r.label}"
                    + (f" (and {where})" if where else "") + "; nothing to do (--replace re-ingests)",
                    markup=False,
                )
            continue
        verb = "re-ingested" if r.status == "replaced" else "ingested"
        rate = f", {r.bytes / 1e6 / r.seconds:.1f} MB/s" if r.seconds > 0 and r.bytes > 1e6 else ""
        out.print(
            f"{r.path}: {verb} as run {r.run_id}: {r.format}"
            + (f" ({r.tracer})" if r.tracer and r.tracer != r.format else "")
            + f", arch {r.arch}, kernel {r.kernel}, patch {r.patch}, label {r.label}"
            + (f", boot {r.boot_id}" if r.boot_id else "")
            + f" [{r.seconds:.2f} s{rate}]",
            markup=False,
        )
        out.print("  " + _fmt_counts(r), markup=False)
        for w in r.warnings:
            err.print(f"tracekit: warning: {w}", markup=False)
    ok = sum(r.status in ("ingested", "replaced") for r in results)
    added = sum(r.status == "added" for r in results)
    dup = sum(r.status == "duplicate" for r in results)
    bad = sum(r.status == "failed" for r in results)
    if len(results) > 1:
        also = f"{added} added to this patch and label, " if added else ""
        out.print(f"{ok} ingested, {also}{dup} already present, {bad} failed", markup=False)


def print_runs(df: pl.DataFrame, out: Console) -> None:
    """The runs of a store as a plain table (never truncated, so it pipes and greps)."""
    if df.is_empty():
        out.print("no runs in the store", markup=False)
        return
    head = ("run_id", "patch", "label", "boot", "arch", "kernel", "format", "tracer", "spans", "events", "windows", "skipped", "file")
    rows = []
    for r in df.sort(["patch", "arch", "label", "ingested_at"]).iter_rows(named=True):
        c = r["counts"] or {}
        rows.append((
            r["run_id"], r["patch"], r["label"], r.get("boot_id") or "-", r["arch"], r["kernel"], r["format"], r["tracer"] or "-",
            str(c.get("spans", 0)), str(c.get("events", 0)), str(c.get("windows", 0)),
            str(c.get("skipped_lines", 0)), (r["path"] or "").rsplit("/", 1)[-1],
        ))
    widths = [max(len(h), *(len(x[i]) for x in rows)) for i, h in enumerate(head)]
    for line in (head, *rows):
        out.print("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip(), markup=False, overflow="ignore", crop=False)
