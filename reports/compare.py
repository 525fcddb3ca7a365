"""Build the before/after comparison of one patch from the store.

The runs of patch P labelled ``before`` and ``after`` (or the labels given) are grouped by
architecture, and by kernel configuration where runs of one arch differ in it on both sides
alike; the runs of one side of a group are pooled (their counts are shown).  For each group:

* per function of interest, the statistics of :mod:`tracekit.reports.stats` over the
  durations of the completed calls (spans with ``complete`` true);
* per latency tracer (preemptoff, irqsoff, ...), the worst window of each side with the
  function it started and ended in, and the events recorded inside it;
* per run, the count of TLB flushes by reason (``tlb_flush`` tracepoint, ``reason:...``)
  and of page frees (``kmem:mm_page_free*``), where the run recorded those events.

The functions of interest are those the patch touches (:mod:`tracekit.reports.patch`) plus
the page-table teardown path (:data:`TEARDOWN_FUNCTIONS`), wherever they occur in the data;
``functions=`` replaces that choice.  The store is read through lazy scans that select
only the runs, functions and columns the report needs.
"""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

from tracekit.reports import stats as _stats
from tracekit.reports.patch import PatchInfo

__all__ = [
    "TEARDOWN_FUNCTIONS",
    "ReportError",
    "ReportSource",
    "FrameSource",
    "open_source",
    "RunRef",
    "FunctionResult",
    "WindowSide",
    "WindowResult",
    "EventCount",
    "ArchGroup",
    "Comparison",
    "compare",
    "model_prediction",
]

#: The page-table teardown path of exit_mmap()/unmap_region() (mm/mmap.c, mm/memory.c,
#: mm/mmu_gather.c), always of interest where the data has it.
TEARDOWN_FUNCTIONS: tuple[str, ...] = (
    "exit_mmap",
    "unmap_vmas",
    "unmap_page_range",
    "zap_pte_range",
    "free_pgtables",
    "free_pgd_range",
    "tlb_gather_mmu",
    "tlb_finish_mmu",
    "tlb_flush_mmu",
)

#: Event names counted per run; tlb_flush is split by its ``reason:`` field.
TLB_FLUSH_EVENT = "tlb_flush"
PAGE_FREE_PREFIX = "mm_page_free"


class ReportError(Exception):
    """The report cannot be made (no such patch, empty store, no runs on a side): the
    message says why and what exists instead."""


class ReportSource(Protocol):
    """What the report reads: the store's four tables as polars LazyFrames.  spans, events
    and windows carry the hive partition columns patch, arch, label, run_id."""

    def runs(self) -> pl.LazyFrame: ...
    def spans(self) -> pl.LazyFrame: ...
    def events(self) -> pl.LazyFrame: ...
    def windows(self) -> pl.LazyFrame: ...


@dataclass
class FrameSource:
    """A :class:`ReportSource` over frames in memory (shaped as the store's tables)."""

    runs_lf: pl.LazyFrame
    spans_lf: pl.LazyFrame
    events_lf: pl.LazyFrame
    windows_lf: pl.LazyFrame

    def runs(self) -> pl.LazyFrame:
        return self.runs_lf

    def spans(self) -> pl.LazyFrame:
        return self.spans_lf

    def events(self) -> pl.LazyFrame:
        return self.events_lf

    def windows(self) -> pl.LazyFrame:
        return self.windows_lf


def default_store_path(store: str | os.PathLike | None) -> Path:
    """--store, else $TRACEKIT_STORE, else ./tracekit-store."""
    if store is not None:
        return Path(store)
    return Path(os.environ.get("TRACEKIT_STORE") or "tracekit-store")


def open_source(store: str | os.PathLike | None) -> ReportSource:
    """Open the store at ``store`` (see :func:`default_store_path`) for reading."""
    path = default_store_path(store)
    if not (path / "runs").exists():
        raise ReportError(f"{path}: no store here (no runs ingested); run 'tracekit ingest' first")
    from tracekit.store import open_store

    return open_store(path, create=False)


@dataclass
class RunRef:
    """One ingested trace taking part in the comparison."""

    run_id: str
    label: str
    arch: str
    kernel: str | None
    path: str | None
    format: str | None
    tracer: str | None
    config: str | None

    @property
    def name(self) -> str:
        return Path(self.path).name if self.path else self.run_id

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "label": self.label,
            "arch": self.arch,
            "kernel": self.kernel,
            "path": self.path,
            "format": self.format,
            "tracer": self.tracer,
            "config": _config_dict(self.config),
        }


@dataclass
class FunctionResult:
    """One function's before/after statistics in one group."""

    function: str
    before: _stats.SideStats
    after: _stats.SideStats
    change: _stats.Change
    runs_before: int
    runs_after: int
    #: the span source (tracer) the durations come from: one per function, never pooled
    #: across tracers whose overheads differ (function_graph against kprobe)
    source: str | None = None

    @property
    def verdict(self) -> str:
        return self.change.verdict


@dataclass
class WindowSide:
    """The latency windows of one tracer on one side: all their latencies and the worst."""

    latencies_ns: list[int]
    runs: int
    worst_latency_ns: int
    started_at: str | None
    ended_at: str | None
    comm: str | None
    pid: int | None
    cpu: int | None
    run_id: str
    window: int | None
    kernel: str | None
    run_name: str
    events: pl.DataFrame | None = None  # the worst window's own lines (ts_ns, cpu, func, ...)

    def as_dict(self) -> dict:
        return {
            "windows": len(self.latencies_ns),
            "runs": self.runs,
            "latencies_ns": self.latencies_ns,
            "worst_latency_ns": self.worst_latency_ns,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "comm": self.comm,
            "pid": self.pid,
            "cpu": self.cpu,
            "run_id": self.run_id,
            "run": self.run_name,
            "window": self.window,
            "kernel": self.kernel,
        }


@dataclass
class WindowResult:
    """Worst latency windows of one tracer, before and after."""

    tracer: str
    before: WindowSide | None
    after: WindowSide | None
    change: _stats.Change | None = None  # of the window latencies, all windows of each side

    @property
    def change_pct(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return _stats.percent_change(self.before.worst_latency_ns, self.after.worst_latency_ns)


@dataclass
class EventCount:
    """Per-run counts of one kind of event (``tlb_flush`` of one reason, a page free
    tracepoint), over the runs of each side that recorded that event at all."""

    event: str
    detail: str | None  # the tlb_flush reason
    before: list[int]
    after: list[int]

    @property
    def name(self) -> str:
        return f"{self.event}: {self.detail}" if self.detail else self.event

    @staticmethod
    def per_run(counts: list[int]) -> float | None:
        return float(np.mean(counts)) if counts else None

    def as_dict(self) -> dict:
        return {
            "event": self.event,
            "detail": self.detail,
            "before_per_run": self.before,
            "after_per_run": self.after,
            "before_mean": self.per_run(self.before),
            "after_mean": self.per_run(self.after),
        }


@dataclass
class ArchGroup:
    """One architecture (and kernel configuration, where that splits the runs)."""

    arch: str
    config: str | None  # the configuration this group is restricted to, when split by it
    runs_before: list[RunRef]
    runs_after: list[RunRef]
    functions: list[FunctionResult] = field(default_factory=list)
    windows: list[WindowResult] = field(default_factory=list)
    events: list[EventCount] = field(default_factory=list)
    samples: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    config_note: str | None = None  # when configurations differ between the sides
    prediction: dict[str, Any] | None = None  # from tracekit.model, when it has a profile

    @property
    def key(self) -> str:
        return f"{self.arch} ({_config_text(self.config)})" if self.config else self.arch

    @property
    def slug(self) -> str:
        """A file-name-safe name of the group, for plot files."""
        s = self.key
        return "".join(c if c.isalnum() or c in "._-" else "_" for c in s).strip("_")[:60]

    def kernels(self, side: str) -> list[str]:
        runs = self.runs_before if side == "before" else self.runs_after
        return sorted({r.kernel for r in runs if r.kernel and r.kernel != "unknown"})

    def sources(self, side: str) -> list[str]:
        runs = self.runs_before if side == "before" else self.runs_after
        return _describe_runs(runs)


@dataclass
class Comparison:
    """The whole report's content, before rendering."""

    patch: str
    before_label: str
    after_label: str
    patch_info: PatchInfo | None
    groups: list[ArchGroup]
    functions_requested: list[str]
    functions_from: str  # where the list came from, as a phrase for the reader
    functions_missing: list[str]  # requested with --functions but absent from the data

    @property
    def any_regression(self) -> bool:
        return any(f.verdict == _stats.REGRESSION for g in self.groups for f in g.functions)


def _config_dict(config: str | None) -> dict | None:
    if not config:
        return None
    try:
        d = json.loads(config)
    except ValueError:
        return {"config": config}
    return d if isinstance(d, dict) else {"config": d}


def _config_text(config: str | None) -> str:
    d = _config_dict(config)
    if not d:
        return ""
    return " ".join(f"{k}={v}" for k, v in sorted(d.items()) if v is not None)


def _describe_runs(runs: list[RunRef]) -> list[str]:
    """``name (format, tracer)`` per run, runs of the same kind and numbered names folded:
    ``latency_preemptoff.run{1,2,3}.txt (latency, preemptoff)``."""
    import re

    groups: dict[tuple[str, str, str], list[str]] = {}
    for r in runs:
        kind = ", ".join(dict.fromkeys(x for x in (r.format, r.tracer) if x)) or "?"
        m = re.match(r"^(.*?)(\d+)(\D*)$", r.name)
        key = (m.group(1), m.group(3), kind) if m else (r.name, "", kind)
        groups.setdefault(key, []).append(m.group(2) if m else "")
    out = []
    for (head, tail, kind), nums in groups.items():
        if len(nums) > 1:
            out.append(f"{head}{{{','.join(sorted(nums, key=lambda s: (len(s), s)))}}}{tail} ({kind})")
        else:
            out.append(f"{head}{nums[0]}{tail} ({kind})")
    return out


def model_prediction(group: ArchGroup, comparison: Comparison, store: Path | None = None) -> dict[str, Any] | None:
    """The replay model's prediction for a group, when tracekit.model provides one.

    The hook: a module ``tracekit.model.report`` with a function
    ``predict_for_report(arch, functions, runs_before, runs_after, patch_info, store)`` returning
    None (no cost profile for this arch) or a dict with ``model`` (a name), ``note`` (one
    sentence), and ``rows``: a list of ``{"function", "before_ns", "after_ns"}`` (predicted
    durations) and, optionally, ``windows``: ``{"tracer", "before_ns", "after_ns"}``.  The
    renderers print each predicted change beside the measured one.  Runs are passed as the
    dicts of :meth:`RunRef.as_dict`.
    """
    try:
        mod = importlib.import_module("tracekit.model.report")
    except ModuleNotFoundError as e:
        if e.name in ("tracekit.model", "tracekit.model.report"):
            return None  # no model hook yet
        raise
    fn = getattr(mod, "predict_for_report", None)
    if fn is None:
        return None
    try:
        return fn(
            arch=group.arch,
            functions=[f.function for f in group.functions],
            runs_before=[r.as_dict() for r in group.runs_before],
            runs_after=[r.as_dict() for r in group.runs_after],
            patch_info=comparison.patch_info,
            store=store,
        )
    except Exception as e:  # the measurement stands without the model
        return {"model": "tracekit.model", "note": f"no prediction: {type(e).__name__}: {e}", "rows": []}


def _partition_values(runs: pl.DataFrame, col: str) -> list[str]:
    """The sanitised partition values of ``col`` for these runs (the hive directory names),
    falling back to the raw values when the runs table has no partition struct."""
    if "partition" in runs.columns and runs.schema["partition"] != pl.Null:
        vals = runs.select(pl.col("partition").struct.field(col)).to_series()
        if vals.null_count() == 0:
            return sorted(set(vals.to_list()))
    return sorted(set(runs[col].to_list()))


def _select_runs(src: ReportSource, patch: str, before: str, after: str) -> pl.DataFrame:
    """The runs of ``patch`` labelled ``before`` or ``after``; ReportError when none."""
    runs = src.runs()
    try:
        cols = runs.collect_schema().names()
    except Exception as e:  # an unreadable or empty store
        raise ReportError(f"cannot read the runs table: {e}") from None
    all_runs = runs.select([c for c in ("run_id", "patch", "label") if c in cols]).collect()
    if all_runs.height == 0:
        raise ReportError("the store is empty: no runs ingested yet ('tracekit ingest ... --patch P --label before')")
    mine = all_runs.filter(pl.col("patch") == patch)
    if mine.height == 0:
        known = all_runs.group_by("patch").agg(pl.len().alias("runs")).sort("patch")
        listing = ", ".join(f"{p} ({n} runs)" for p, n in known.iter_rows())
        raise ReportError(f"no runs of patch {patch!r} in the store; patches there: {listing}")
    labels = sorted(set(mine["label"].to_list()))
    for side in (before, after):
        if side not in labels:
            raise ReportError(
                f"patch {patch!r} has no runs labelled {side!r}; its labels: {', '.join(labels)}"
                " (choose with --before/--after)"
            )
    want = [c for c in ("run_id", "path", "format", "tracer", "arch", "kernel", "patch", "label", "partition", "config") if c in cols]
    return (
        runs.filter((pl.col("patch") == patch) & pl.col("label").is_in([before, after]))
        .select(want)
        .collect()
        .sort(["arch", "label", "path"])
    )


def _group_runs(runs: pl.DataFrame, before: str, after: str) -> list[tuple[str, str | None, str | None, pl.DataFrame]]:
    """(arch, config or None, note, runs) per group.

    One group per arch, split by kernel configuration only where it is a real split: a
    configuration key (preempt model, page size, ...) that every run of the arch states,
    with more than one value, each value having runs on both sides.  A run that does not
    state a key (a function_graph trace says nothing of the preempt model) does not split.
    When the sides differ in a key, the group stays whole and carries a note saying so.
    """
    out = []
    if "config" not in runs.columns:
        runs = runs.with_columns(pl.lit(None, pl.String).alias("config"))
    for arch in sorted(set(runs["arch"].fill_null("unknown").to_list())):
        sub = runs.filter(pl.col("arch").fill_null("unknown") == arch)
        cfgs = [(_config_dict(c) or {}, lab) for c, lab in zip(sub["config"].to_list(), sub["label"].to_list())]
        keys = sorted({k for d, _ in cfgs for k, v in d.items() if v is not None})
        split_keys = []
        notes = []
        for k in keys:
            vb = {str(d[k]) for d, lab in cfgs if lab == before and d.get(k) is not None}
            va = {str(d[k]) for d, lab in cfgs if lab == after and d.get(k) is not None}
            stated_by_all = all(d.get(k) is not None for d, _ in cfgs)
            if len(vb | va) > 1 and vb == va and stated_by_all:
                split_keys.append(k)
            elif vb and va and vb != va:
                notes.append(f"{k}: {before} {', '.join(sorted(vb))}, {after} {', '.join(sorted(va))}")
        note = ("configuration differs between the sides: " + "; ".join(notes)) if notes else None
        if not split_keys:
            out.append((arch, None, note, sub))
            continue
        part_key = [json.dumps({k: d.get(k) for k in split_keys}, sort_keys=True) for d, _ in cfgs]
        sub = sub.with_columns(pl.Series("_cfg", part_key))
        for cfg in sorted(set(part_key)):
            out.append((arch, cfg, note, sub.filter(pl.col("_cfg") == cfg).drop("_cfg")))
    return out


def _run_refs(df: pl.DataFrame, label: str) -> list[RunRef]:
    rows = df.filter(pl.col("label") == label).to_dicts()
    return [
        RunRef(
            run_id=r["run_id"],
            label=r["label"],
            arch=r.get("arch") or "unknown",
            kernel=r.get("kernel"),
            path=r.get("path"),
            format=r.get("format"),
            tracer=r.get("tracer"),
            config=r.get("config"),
        )
        for r in rows
    ]


def _scan(lf: pl.LazyFrame, runs: pl.DataFrame) -> pl.LazyFrame:
    """Restrict a partitioned table to these runs: partition pruning on patch, then run_id."""
    names = lf.collect_schema().names()
    if "patch" in names:
        lf = lf.filter(pl.col("patch").is_in(_partition_values(runs, "patch")))
    return lf.filter(pl.col("run_id").is_in(runs["run_id"].to_list()))


def _functions_present(src: ReportSource, runs: pl.DataFrame, wanted: list[str]) -> set[str]:
    found = (
        _scan(src.spans(), runs)
        .filter(pl.col("func").is_in(wanted))
        .select(pl.col("func").unique())
        .collect()
    )
    return set(found["func"].to_list())


def _durations(src: ReportSource, runs: pl.DataFrame, funcs: list[str]) -> pl.DataFrame:
    """run_id, func, source, dur_ns of the completed calls of ``funcs`` in ``runs``."""
    if not funcs:
        return pl.DataFrame(schema={"run_id": pl.String, "func": pl.String, "source": pl.String, "dur_ns": pl.Int64})
    return (
        _scan(src.spans(), runs)
        .filter(pl.col("func").is_in(funcs) & pl.col("complete").fill_null(False) & pl.col("dur_ns").is_not_null())
        .select("run_id", "func", "source", "dur_ns")
        .collect()
    )


def _one_source(fd: pl.DataFrame, ids_b: set[str], ids_a: set[str]) -> str | None:
    """The tracer whose calls of one function are compared: of those that traced it on both
    sides, the one with the most calls (function_graph before kprobe on a tie)."""
    if fd.is_empty():
        return None
    per = fd.with_columns(side=pl.col("run_id").is_in(list(ids_b))).group_by("source").agg(
        pl.len().alias("n"), pl.col("side").any().alias("b"), (~pl.col("side")).any().alias("a")
    )
    both = per.filter(pl.col("a") & pl.col("b"))
    pick = both if both.height else per
    pick = pick.with_columns(fg=pl.col("source") == "function_graph").sort(["n", "fg"], descending=True)
    return pick["source"][0]


def _window_side(wins: pl.DataFrame, runs: list[RunRef], src: ReportSource, runs_df: pl.DataFrame) -> WindowSide | None:
    if wins.height == 0:
        return None
    worst = wins.sort(["latency_ns", "run_id", "window"], descending=[True, False, False], nulls_last=True).row(0, named=True)
    names = {r.run_id: r for r in runs}
    ref = names.get(worst["run_id"])
    events = None
    try:
        ev = _scan(src.events(), runs_df.filter(pl.col("run_id") == worst["run_id"]))
        if worst.get("window") is not None:
            ev = ev.filter(pl.col("window") == worst["window"])
            cols = [c for c in ("seq", "ts_ns", "cpu", "pid", "comm", "kind", "func", "parent", "flags", "event", "body") if c in ev.collect_schema().names()]
            events = ev.select(cols).collect().sort("seq" if "seq" in cols else cols[0])
    except (pl.exceptions.PolarsError, OSError):
        events = None
    return WindowSide(
        latencies_ns=sorted((int(x) for x in wins["latency_ns"].drop_nulls().to_list()), reverse=True),
        runs=wins["run_id"].n_unique(),
        worst_latency_ns=int(worst["latency_ns"]),
        started_at=worst.get("started_at"),
        ended_at=worst.get("ended_at"),
        comm=worst.get("comm"),
        pid=worst.get("pid"),
        cpu=worst.get("cpu"),
        run_id=worst["run_id"],
        window=worst.get("window"),
        kernel=worst.get("kernel") or (ref.kernel if ref else None),
        run_name=ref.name if ref else worst["run_id"],
        events=events,
    )


def _windows(src: ReportSource, runs_df: pl.DataFrame, group: ArchGroup, before: str, after: str) -> list[WindowResult]:
    try:
        lf = _scan(src.windows(), runs_df)
        wins = lf.filter(pl.col("latency_ns").is_not_null()).collect()
    except (pl.exceptions.PolarsError, OSError):
        return []
    if wins.height == 0:
        return []
    side = runs_df.select("run_id", "label")
    wins = wins.drop([c for c in ("label",) if c in wins.columns]).join(side, on="run_id")
    out = []
    for tracer in sorted(set(wins["tracer"].fill_null("latency").to_list())):
        tw = wins.filter(pl.col("tracer").fill_null("latency") == tracer)
        wb = _window_side(tw.filter(pl.col("label") == before), group.runs_before, src, runs_df)
        wa = _window_side(tw.filter(pl.col("label") == after), group.runs_after, src, runs_df)
        change = None
        if wb is not None and wa is not None:
            # The windows' latencies compared as the calls are (each run usually keeps only
            # its maximum, so this needs several runs a side to give a verdict).
            _, _, change = _stats.compare_samples(
                np.asarray(wb.latencies_ns, dtype=np.float64),
                np.asarray(wa.latencies_ns, dtype=np.float64),
                seed=_stats.row_seed(group.key, "window", tracer),
            )
        out.append(WindowResult(tracer=tracer, before=wb, after=wa, change=change))
    return out


def _event_counts(src: ReportSource, runs_df: pl.DataFrame, before: str, after: str) -> list[EventCount]:
    """Per-run counts of tlb_flush by reason and of mm_page_free* events."""
    try:
        lf = _scan(src.events(), runs_df)
        short = pl.col("event").str.replace(r"^.*:", "")  # "tlb:tlb_flush" (perf) -> "tlb_flush"
        counted = (
            lf.filter(pl.col("event").is_not_null())
            .with_columns(short.alias("ev"))
            .filter((pl.col("ev") == TLB_FLUSH_EVENT) | pl.col("ev").str.starts_with(PAGE_FREE_PREFIX))
            .with_columns(
                pl.when(pl.col("ev") == TLB_FLUSH_EVENT)
                .then(pl.col("body").str.extract(r"reason:\s*(.*?)\s*(?:\(\d+\))?\s*$", 1))
                .otherwise(None)
                .alias("detail")
            )
            .group_by("run_id", "ev", "detail")
            .agg(pl.len().alias("n"))
            .collect()
        )
    except (pl.exceptions.PolarsError, OSError):
        return []
    if counted.height == 0:
        return []
    side = dict(zip(runs_df["run_id"].to_list(), runs_df["label"].to_list()))
    # A run counts for an event only if it recorded that event at all.
    recorded = counted.group_by("ev").agg(pl.col("run_id").unique().alias("runs"))
    runs_of = {ev: sorted(r) for ev, r in recorded.iter_rows()}
    out = []
    keys = counted.select("ev", "detail").unique().sort(["ev", "detail"], nulls_last=False)
    for ev, detail in keys.iter_rows():
        sub = counted.filter((pl.col("ev") == ev) & pl.col("detail").eq_missing(detail))
        n_by_run = dict(zip(sub["run_id"].to_list(), sub["n"].to_list()))
        per = {before: [], after: []}
        for rid in runs_of[ev]:
            per.setdefault(side.get(rid, ""), []).append(int(n_by_run.get(rid, 0)))
        out.append(EventCount(ev, detail, per[before], per[after]))
    return out


def compare(
    src: ReportSource,
    patch: str,
    *,
    before: str = "before",
    after: str = "after",
    functions: list[str] | None = None,
    patch_info: PatchInfo | None = None,
    seed: int = _stats.BASE_SEED,
    keep_samples: bool = True,
) -> Comparison:
    """Compare the ``before`` and ``after`` runs of ``patch`` in ``src`` (a store)."""
    runs = _select_runs(src, patch, before, after)
    if functions:
        wanted = list(dict.fromkeys(functions))
        functions_from = "given with --functions"
    else:
        touched = list(patch_info.functions) if patch_info else []
        wanted = list(dict.fromkeys(touched + list(TEARDOWN_FUNCTIONS)))
        functions_from = "touched by the patch, and the teardown path" if touched else "the teardown path"
    present = _functions_present(src, runs, wanted)
    if functions:
        funcs = wanted
        missing = [f for f in wanted if f not in present]
    else:
        funcs = [f for f in wanted if f in present]
        missing = []
    durations = _durations(src, runs, [f for f in funcs if f in present])

    comp = Comparison(
        patch=patch,
        before_label=before,
        after_label=after,
        patch_info=patch_info,
        groups=[],
        functions_requested=wanted,
        functions_from=functions_from,
        functions_missing=missing,
    )
    for arch, cfg, note, gruns in _group_runs(runs, before, after):
        group = ArchGroup(
            arch=arch,
            config=cfg,
            runs_before=_run_refs(gruns, before),
            runs_after=_run_refs(gruns, after),
            config_note=note,
        )
        ids_b = set(r.run_id for r in group.runs_before)
        ids_a = set(r.run_id for r in group.runs_after)
        gd = durations.filter(pl.col("run_id").is_in(list(ids_b | ids_a)))
        for func in funcs:
            fd = gd.filter(pl.col("func") == func)
            source = _one_source(fd, ids_b, ids_a)
            if source is not None:
                fd = fd.filter(pl.col("source") == source)
            in_b = fd.filter(pl.col("run_id").is_in(list(ids_b)))
            in_a = fd.filter(pl.col("run_id").is_in(list(ids_a)))
            if in_b.height == 0 and in_a.height == 0 and not functions:
                continue
            xb = in_b["dur_ns"].to_numpy().astype(np.float64)
            xa = in_a["dur_ns"].to_numpy().astype(np.float64)
            sb, sa, ch = _stats.compare_samples(xb, xa, seed=_stats.row_seed(group.key, func, base=seed))
            group.functions.append(
                FunctionResult(func, sb, sa, ch, in_b["run_id"].n_unique(), in_a["run_id"].n_unique(), source)
            )
            if keep_samples:
                group.samples[func] = (xb, xa)
        group.windows = _windows(src, gruns, group, before, after)
        group.events = _event_counts(src, gruns, before, after)
        group.prediction = model_prediction(group, comp, store=getattr(src, "root", None))
        comp.groups.append(group)
    return comp
