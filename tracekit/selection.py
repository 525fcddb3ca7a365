"""Selections of calls from a store: the query behind every number of a report, for anyone
to run.

``calls(store, "free_pgtables", under="exit_mmap", patch="pgfree-lat")`` is a polars
LazyFrame of the completed calls of free_pgtables made (at any depth) inside a call of
exit_mmap, one row per call and membership, with the columns of the spans table plus
``boot_id`` and ``unit``: the unit of replication of the run, its boot id where one was
recorded (``tracekit capture``, ``tracekit ingest --boot``), else the run id itself.
``tracekit report`` draws its statistics from exactly this selection (docs/statistics.md).

Invariants: a selection never pools tracer sources unless asked (``source=``); calls whose
entry or exit is missing (``complete`` false) or whose duration the trace does not state
are left out, as the report leaves them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import polars as pl

__all__ = ["TableSource", "unit_of_runs", "calls", "UNIT"]

#: The unit of replication of a run: its boot, else the run itself.
UNIT = pl.coalesce(pl.col("boot_id"), pl.col("run_id")).alias("unit")


class TableSource(Protocol):
    """The store's tables as LazyFrames (spans carry patch, arch, label and run_id)."""

    def runs(self) -> pl.LazyFrame: ...
    def spans(self) -> pl.LazyFrame: ...


def _listed(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def unit_of_runs(src: TableSource) -> pl.LazyFrame:
    """run_id, boot_id and unit of every run (one row per run)."""
    runs = src.runs()
    if "boot_id" not in runs.collect_schema().names():
        runs = runs.with_columns(pl.lit(None, pl.String).alias("boot_id"))
    return runs.select("run_id", "boot_id").unique("run_id", keep="first").with_columns(UNIT)


def _where(lf: pl.LazyFrame, **columns: list[str] | None) -> pl.LazyFrame:
    for name, values in columns.items():
        if values is not None:
            lf = lf.filter(pl.col(name).is_in(values))
    return lf


def _inside(spans: pl.LazyFrame, targets: pl.DataFrame, caller: str) -> pl.DataFrame:
    """The (run_id, span_id) of ``targets`` that have a call of ``caller`` among their
    ancestors, found by climbing parent_id one level a round (as deep as the call stack)."""
    key = ["run_id", "span_id"]
    runs_with_caller = spans.filter(pl.col("func") == caller).select("run_id").unique()
    tree = (
        spans.join(runs_with_caller, on="run_id", how="semi")
        .select("run_id", "span_id", "parent_id", "func")
        .unique(key, keep="first")
        .collect()
    )
    frontier = targets.select(*key, pl.col("parent_id").alias("up")).filter(pl.col("up").is_not_null())
    found = [targets.clear().select(key)]
    while frontier.height:
        step = frontier.join(tree, left_on=["run_id", "up"], right_on=key, how="inner")
        hit = step["func"] == caller
        found.append(step.filter(hit).select(key))
        frontier = step.filter(~hit & pl.col("parent_id").is_not_null()).select(*key, pl.col("parent_id").alias("up"))
    return pl.concat(found).unique()


def calls(
    src: TableSource,
    func: str | Sequence[str],
    *,
    under: str | None = None,
    patch: str | Sequence[str] | None = None,
    label: str | Sequence[str] | None = None,
    arch: str | Sequence[str] | None = None,
    run_id: str | Sequence[str] | None = None,
    source: str | Sequence[str] | None = None,
) -> pl.LazyFrame:
    """The completed calls of ``func`` (a name or several), optionally only those made
    inside a call of ``under`` (exit_mmap against munmap's unmap_region), of these patches,
    labels, arches, runs and tracer sources; with ``boot_id`` and ``unit`` columns."""
    spans = _where(src.spans(), patch=_listed(patch), label=_listed(label), arch=_listed(arch), run_id=_listed(run_id))
    lf = spans.filter(
        pl.col("func").is_in(_listed(func)) & pl.col("complete").fill_null(False) & pl.col("dur_ns").is_not_null()
    )
    lf = _where(lf, source=_listed(source))
    if under is not None:
        targets = lf.select("run_id", "span_id", "parent_id").unique(["run_id", "span_id"]).collect()
        inside = _inside(spans, targets, under)
        lf = lf.join(inside.lazy(), on=["run_id", "span_id"], how="semi")
    return _with_units(lf, src)


def _with_units(lf: pl.LazyFrame, src: TableSource) -> pl.LazyFrame:
    """Add boot_id and unit by run_id: a lookup in the (small) runs table, not a join."""
    runs = unit_of_runs(src).collect()
    boots = dict(zip(runs["run_id"].to_list(), runs["boot_id"].to_list()))
    boot = pl.col("run_id").replace_strict(boots, default=None, return_dtype=pl.String) if boots else pl.lit(None, pl.String)
    return lf.with_columns(boot.alias("boot_id")).with_columns(UNIT)
