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

from tracekit.errors import ReportError
from tracekit.reports import stats as _stats
from tracekit.reports.patch import PatchInfo

__all__ = [
    "TEARDOWN_FUNCTIONS",
    "ReportError",
    "ReportSource",
    "FrameSource",
    "open_source",
    "Side",
    "SourceNote",
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


def default_store_path(store: str | os.PathLike | None) -> str:
    """--store (a directory or a URL), else $TRACEKIT_STORE, else ./tracekit-store."""
    if store is not None:
        return os.fspath(store)
    return os.environ.get("TRACEKIT_STORE") or "tracekit-store"


def open_source(store: str | os.PathLike | None) -> ReportSource:
    """Open the store at ``store`` (see :func:`default_store_path`) for reading."""
    from tracekit.store import StoreError, open_store

    location = default_store_path(store)
    try:
        st = open_store(location, create=False)
        present = st.has_table("runs")
    except (StoreError, OSError) as e:
        raise ReportError(f"{location}: cannot open the store: {e}") from None
    if not present:
        raise ReportError(f"{location}: no store here (no runs ingested); run 'tracekit ingest' first")
    return st


@dataclass(frozen=True)
class Side:
    """One column of the comparison: the runs of ``patch`` labelled ``label``."""

    patch: str
    label: str
    name: str  # as the report prints it: the label, or patch:label when patches differ


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
    boot_id: str | None = None
    patch: str | None = None

    @property
    def name(self) -> str:
        return Path(self.path).name if self.path else self.run_id

    @property
    def unit(self) -> str:
        """The unit of replication: the boot the trace was recorded in, else the run."""
        return self.boot_id or self.run_id

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "patch": self.patch,
            "label": self.label,
            "boot_id": self.boot_id,
            "unit": self.unit,
            "arch": self.arch,
            "kernel": self.kernel,
            "path": self.path,
            "format": self.format,
            "tracer": self.tracer,
            "config": _config_dict(self.config),
        }


@dataclass
class SourceNote:
    """What a tracer source that was not compared says of a function, side by side."""

    source: str
    calls: dict[str, int]  # side name -> calls
    units: dict[str, int]  # side name -> units
    median_ns: dict[str, float | None]  # side name -> median over units of unit medians

    def as_dict(self) -> dict:
        return {"source": self.source, "calls": self.calls, "units": self.units, "unit_median_ns": self.median_ns}


@dataclass
class FunctionResult:
    """One function's statistics in one group: a compared side against the baseline."""

    function: str
    before: _stats.SideStats
    after: _stats.SideStats
    change: _stats.Change
    runs_before: int
    runs_after: int
    #: the span source (tracer) the durations come from: one per function, never pooled
    #: across tracers whose overheads differ (function_graph against kprobe)
    source: str | None = None
    source_reason: str | None = None
    other_sources: list[SourceNote] = field(default_factory=list)
    against: str | None = None  # the compared side's name (the baseline is the group's first)
    units_before: list[_stats.UnitSummary] = field(default_factory=list)
    units_after: list[_stats.UnitSummary] = field(default_factory=list)
    under: str | None = None  # only calls made inside this caller

    @property
    def verdict(self) -> str:
        return self.change.verdict


@dataclass
class WindowSide:
    """The latency windows of one tracer on one side: every unit's worst, and the worst."""

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
    unit_worst_ns: dict[str, int] = field(default_factory=dict)  # unit -> its worst window

    def as_dict(self) -> dict:
        return {
            "windows": len(self.latencies_ns),
            "runs": self.runs,
            "units": len(self.unit_worst_ns),
            "unit_worst_ns": self.unit_worst_ns,
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
    """Latency windows of one tracer: the baseline against one compared side."""

    tracer: str
    before: WindowSide | None
    after: WindowSide | None
    change: _stats.Change | None = None  # of the units' worst windows
    against: str | None = None

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
    per_side: dict[str, list[int]]  # side name -> count per run, the baseline first

    @property
    def before(self) -> list[int]:
        return list(self.per_side.values())[0]

    @property
    def after(self) -> list[int]:
        return list(self.per_side.values())[1]

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
            "per_side": self.per_side,
        }


@dataclass
class ArchGroup:
    """One architecture (and kernel configuration, where that splits the runs)."""

    arch: str
    config: str | None  # the configuration this group is restricted to, when split by it
    runs: dict[str, list[RunRef]]  # side name -> its runs, the baseline first
    functions: list[FunctionResult] = field(default_factory=list)
    windows: list[WindowResult] = field(default_factory=list)
    events: list[EventCount] = field(default_factory=list)
    samples: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # func -> side -> durations
    config_note: str | None = None  # when configurations differ between the sides
    prediction: dict[str, Any] | None = None  # from tracekit.model, when it has a profile

    @property
    def side_names(self) -> list[str]:
        return list(self.runs)

    @property
    def runs_before(self) -> list[RunRef]:
        return self.runs[self.side_names[0]]

    @property
    def runs_after(self) -> list[RunRef]:
        return self.runs[self.side_names[1]] if len(self.runs) > 1 else []

    def units(self, side: str) -> list[str]:
        return sorted({r.unit for r in self.runs[self._side(side)]})

    def _side(self, side: str) -> str:
        if side in self.runs:
            return side
        return self.side_names[0] if side == "before" else self.side_names[1]

    @property
    def key(self) -> str:
        return f"{self.arch} ({_config_text(self.config)})" if self.config else self.arch

    @property
    def slug(self) -> str:
        """A file-name-safe name of the group, for plot files."""
        s = self.key
        return "".join(c if c.isalnum() or c in "._-" else "_" for c in s).strip("_")[:60]

    def kernels(self, side: str) -> list[str]:
        return sorted({r.kernel for r in self.runs[self._side(side)] if r.kernel and r.kernel != "unknown"})

    def sources(self, side: str) -> list[str]:
        return _describe_runs(self.runs[self._side(side)])


@dataclass
class Comparison:
    """The whole report's content, before rendering: the baseline side and the sides
    compared with it, per group."""

    patch: str
    sides: list[Side]
    patch_info: PatchInfo | None
    groups: list[ArchGroup]
    functions_requested: list[str]
    functions_from: str  # where the list came from, as a phrase for the reader
    functions_missing: list[str]  # requested with --functions but absent from the data
    under: str | None = None

    @property
    def before_label(self) -> str:
        return self.sides[0].name

    @property
    def after_label(self) -> str:
        return self.sides[1].name

    @property
    def compared(self) -> list[Side]:
        return self.sides[1:]

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


def _sides(patches: list[str], baseline: str, compared: list[str]) -> list[Side]:
    """The baseline (of the first patch) and each compared side: ``L`` is label L of every
    patch given, ``P:L`` label L of patch P."""
    out = [(patches[0], baseline)]
    for item in compared:
        if ":" in item:
            p, lab = item.split(":", 1)
            out.append((p, lab))
        else:
            out += [(p, item) for p in patches]
    out = list(dict.fromkeys(out))
    several = len({p for p, _ in out}) > 1
    return [Side(p, lab, f"{p}:{lab}" if several else lab) for p, lab in out]


def _select_runs(src: ReportSource, sides: list[Side]) -> pl.DataFrame:
    """The runs of every side, one row per run and side (column ``side``); ReportError
    naming what exists when a patch or a side has no runs."""
    runs = src.runs()
    try:
        cols = runs.collect_schema().names()
    except Exception as e:  # an unreadable or empty store
        raise ReportError(f"cannot read the runs table: {e}") from None
    all_runs = runs.select("run_id", "patch", "label").collect()
    if all_runs.height == 0:
        raise ReportError("the store is empty: no runs ingested yet ('tracekit ingest ... --patch P --label before')")
    for patch in dict.fromkeys(s.patch for s in sides):
        mine = all_runs.filter(pl.col("patch") == patch)
        if mine.height == 0:
            known = all_runs.group_by("patch").agg(pl.col("run_id").n_unique().alias("runs")).sort("patch")
            listing = ", ".join(f"{p} ({n} runs)" for p, n in known.iter_rows())
            raise ReportError(f"no runs of patch {patch!r} in the store; patches there: {listing}")
        labels = sorted(set(mine["label"].to_list()))
        for side in (s for s in sides if s.patch == patch):
            if side.label not in labels:
                raise ReportError(
                    f"patch {patch!r} has no runs labelled {side.label!r}; its labels: {', '.join(labels)}"
                    " (choose with --before/--after, or --baseline/--compare)"
                )
    want = [c for c in ("run_id", "path", "format", "tracer", "arch", "kernel", "patch", "label", "boot_id", "config") if c in cols]
    picked = runs.select(want).collect()
    if "boot_id" not in picked.columns:
        picked = picked.with_columns(pl.lit(None, pl.String).alias("boot_id"))
    frames = [
        picked.filter((pl.col("patch") == s.patch) & (pl.col("label") == s.label)).with_columns(pl.lit(s.name).alias("side"))
        for s in sides
    ]
    return pl.concat(frames).unique(["run_id", "side"], keep="first", maintain_order=True).sort(["arch", "path"])


def _group_runs(runs: pl.DataFrame, sides: list[str]) -> list[tuple[str, str | None, str | None, pl.DataFrame]]:
    """(arch, config or None, note, runs) per group.

    One group per arch, split by kernel configuration only where it is a real split: a
    configuration key (preempt model, page size, ...) that every run of the arch states,
    with more than one value, each value having runs on every side.  A run that does not
    state a key (a function_graph trace says nothing of the preempt model) does not split.
    When the sides differ in a key, the group stays whole and carries a note saying so.
    """
    out = []
    if "config" not in runs.columns:
        runs = runs.with_columns(pl.lit(None, pl.String).alias("config"))
    for arch in sorted(set(runs["arch"].fill_null("unknown").to_list())):
        sub = runs.filter(pl.col("arch").fill_null("unknown") == arch)
        cfgs = [(_config_dict(c) or {}, side) for c, side in zip(sub["config"].to_list(), sub["side"].to_list())]
        keys = sorted({k for d, _ in cfgs for k, v in d.items() if v is not None})
        split_keys, notes = [], []
        for k in keys:
            per = {sd: {str(d[k]) for d, s in cfgs if s == sd and d.get(k) is not None} for sd in sides}
            stated = [v for v in per.values() if v]
            stated_by_all = all(d.get(k) is not None for d, _ in cfgs)
            same = all(v == stated[0] for v in stated)
            if stated and len(set().union(*stated)) > 1 and same and len(stated) == len(sides) and stated_by_all:
                split_keys.append(k)
            elif len(stated) > 1 and not same:
                notes.append(f"{k}: " + ", ".join(f"{sd} {', '.join(sorted(v))}" for sd, v in per.items() if v))
        note = ("configuration differs between the sides: " + "; ".join(notes)) if notes else None
        if not split_keys:
            out.append((arch, None, note, sub))
            continue
        part_key = [json.dumps({k: d.get(k) for k in split_keys}, sort_keys=True) for d, _ in cfgs]
        sub = sub.with_columns(pl.Series("_cfg", part_key))
        for cfg in sorted(set(part_key)):
            out.append((arch, cfg, note, sub.filter(pl.col("_cfg") == cfg).drop("_cfg")))
    return out


def _run_refs(df: pl.DataFrame, side: str) -> list[RunRef]:
    return [
        RunRef(
            run_id=r["run_id"], label=r["label"], arch=r.get("arch") or "unknown", kernel=r.get("kernel"),
            path=r.get("path"), format=r.get("format"), tracer=r.get("tracer"), config=r.get("config"),
            boot_id=r.get("boot_id"), patch=r.get("patch"),
        )
        for r in df.filter(pl.col("side") == side).to_dicts()
    ]


def _scan(lf: pl.LazyFrame, runs: pl.DataFrame) -> pl.LazyFrame:
    """Restrict a partitioned table to these runs and memberships: partition pruning on
    patch and label, then run_id; the ``side`` column says which side a row belongs to."""
    pairs = runs.select("patch", "label", "run_id", "side").unique()
    names = lf.collect_schema().names()
    if "patch" in names:
        lf = lf.filter(pl.col("patch").is_in(pairs["patch"].unique().to_list())
                       & pl.col("label").is_in(pairs["label"].unique().to_list()))
    return lf.filter(pl.col("run_id").is_in(pairs["run_id"].unique().to_list())).join(
        pairs.lazy(), on=["patch", "label", "run_id"], how="inner")


def _calls(src: ReportSource, runs: pl.DataFrame, funcs: list[str], under: str | None) -> pl.DataFrame:
    """side, ucode (the number of the run's unit, see :func:`_unit_names`), run_id, func,
    source, dur_ns of the calls the report compares: the selection of
    tracekit.selection.calls, restricted to the runs of each side."""
    from tracekit.selection import calls

    schema = {"side": pl.String, "run_id": pl.String, "func": pl.String,
              "source": pl.String, "dur_ns": pl.Int64, "ucode": pl.Int64}
    if not funcs:
        return pl.DataFrame(schema=schema)
    lf = calls(src, funcs, under=under, patch=runs["patch"].unique().to_list(),
               label=runs["label"].unique().to_list(), run_id=runs["run_id"].unique().to_list())
    side = pl.lit(None, pl.String)
    for patch, label, sname in runs.select("patch", "label", "side").unique().iter_rows():
        side = pl.when((pl.col("patch") == patch) & (pl.col("label") == label)).then(pl.lit(sname)).otherwise(side)
    # Units are numbered (an integer sort is many times faster than one of names).
    unit_of = dict(runs.select("run_id", pl.coalesce("boot_id", "run_id")).unique("run_id").iter_rows())
    number = {u: i for i, u in enumerate(_unit_names(runs))}
    code_of_run = {r: number[u] for r, u in unit_of.items()}
    return (lf.with_columns(side.alias("side"))
            .filter(pl.col("side").is_not_null())
            .select("side", "run_id", "func", pl.col("source").fill_null("unknown"), "dur_ns",
                    pl.col("run_id").replace_strict(code_of_run, return_dtype=pl.Int64).alias("ucode"))
            .collect())


def _pick_source(fd: pl.DataFrame, sides: list[str]) -> tuple[str | None, str | None]:
    """The tracer whose calls of one function are compared, and why: of those that traced
    it on every side, the one with the most calls (function_graph first on a tie)."""
    if fd.is_empty():
        return None, None
    per = fd.group_by("source").agg(pl.len().alias("n"), pl.col("side").n_unique().alias("sides"))
    both = per.filter(pl.col("sides") == len(sides))
    pick = (both if both.height else per).with_columns(fg=pl.col("source") == "function_graph")
    pick = pick.sort(["n", "fg", "source"], descending=[True, True, False])
    chosen = pick["source"][0]
    if per.height == 1:
        why = "the only tracer of it"
    elif both.height == 0:
        why = "no tracer recorded it on every side; the one with the most calls"
    elif both.height == 1:
        why = "the only tracer of it on every side"
    else:
        why = "traced on every side, with the most calls"
    return chosen, why


def _unit_names(runs: pl.DataFrame) -> list[str]:
    """The units of these runs, in the order of their numbers (``ucode``)."""
    return sorted(set(runs.select(pl.coalesce("boot_id", "run_id")).to_series().to_list()))


def _units(sd: pl.DataFrame | None, names: list[str]) -> _stats.Units:
    """The calls of one side (rows of :func:`_calls`) grouped by unit."""
    if sd is None or sd.is_empty():
        return _stats.Units([], np.empty(0), np.zeros(1, dtype=np.int64))
    return _stats.Units.from_codes(sd["ucode"].to_numpy(), sd["dur_ns"].to_numpy(), dict(enumerate(names)))


def _by_side(fd: pl.DataFrame) -> dict[str, pl.DataFrame]:
    return {k[0]: v for k, v in fd.partition_by("side", as_dict=True).items()} if fd.height else {}


def _source_note(fd: pl.DataFrame, source: str, sides: list[str], names: list[str]) -> SourceNote:
    parts = _by_side(fd.filter(pl.col("source") == source))
    calls, units, med = {}, {}, {}
    for side in sides:
        u = _units(parts.get(side), names)
        calls[side] = int(u.values.size)
        units[side] = u.count
        med[side] = float(np.median(u.quantile(0.5))) if u.count else None
    return SourceNote(source, calls, units, med)


def _function_rows(fd: pl.DataFrame, func: str, sides: list[str], names: list[str], key: str, seed: int,
                   under: str | None) -> tuple[list[FunctionResult], dict[str, np.ndarray]]:
    """One row per compared side for ``func`` from its calls ``fd`` (verdicts drawn later,
    per family)."""
    source, why = _pick_source(fd, sides)
    others = sorted(set(fd["source"].unique().to_list()) - {source}) if source else []
    notes = [_source_note(fd, o, sides, names) for o in others]
    if source is not None and others:
        fd = fd.filter(pl.col("source") == source)
    parts = _by_side(fd)
    runs_of = {s: (parts[s]["run_id"].n_unique() if s in parts else 0) for s in sides}
    base = _units(parts.get(sides[0]), names)
    samples = {sides[0]: base.values}
    rows = []
    for side in sides[1:]:
        other = _units(parts.get(side), names)
        samples[side] = other.values
        ch = _stats.compare_units(base, other, seed=_stats.row_seed(key, func, side, base=seed))
        rows.append(FunctionResult(
            func, _stats.side_stats(base.values), _stats.side_stats(other.values), ch, runs_of[sides[0]],
            runs_of[side], source, why, notes, side, base.summaries(), other.summaries(), under,
        ))
    return rows, samples


def _decide_functions(rows: list[FunctionResult], sides: list[str]) -> None:
    """Holm over the functions compared with each side, then every row's verdict."""
    for side in sides[1:]:
        mine = [r for r in rows if r.against == side]
        for r, ch in zip(mine, _stats.decide([r.change for r in mine])):
            r.change = ch


def _window_side(wins: pl.DataFrame, runs: list[RunRef], src: ReportSource, runs_df: pl.DataFrame) -> WindowSide | None:
    if wins.height == 0:
        return None
    worst = wins.sort(["latency_ns", "run_id", "window"], descending=[True, False, False], nulls_last=True).row(0, named=True)
    ref = {r.run_id: r for r in runs}.get(worst["run_id"])
    per_unit = wins.group_by("unit").agg(pl.col("latency_ns").max()).sort("unit")
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
        events=_window_events(src, runs_df, worst),
        unit_worst_ns={u: int(v) for u, v in per_unit.iter_rows()},
    )


def _window_events(src: ReportSource, runs_df: pl.DataFrame, worst: dict) -> pl.DataFrame | None:
    """The worst window's own trace lines, in source order."""
    if worst.get("window") is None:
        return None
    try:
        ev = _scan(src.events(), runs_df.filter(pl.col("run_id") == worst["run_id"]))
        ev = ev.filter(pl.col("window") == worst["window"])
        cols = [c for c in ("seq", "ts_ns", "cpu", "pid", "comm", "kind", "func", "parent", "flags", "event", "body")
                if c in ev.collect_schema().names()]
        return ev.select(cols).unique("seq", keep="first").collect().sort("seq" if "seq" in cols else cols[0])
    except (pl.exceptions.PolarsError, OSError):
        return None


def _windows(src: ReportSource, runs_df: pl.DataFrame, group: ArchGroup, seed: int) -> list[WindowResult]:
    """Per latency tracer and compared side: the worst windows, and the change of the
    units' worst windows (each unit, a boot or a run, counts once: by its worst)."""
    try:
        wins = _scan(src.windows(), runs_df).filter(pl.col("latency_ns").is_not_null()).collect()
    except (pl.exceptions.PolarsError, OSError):
        return []
    if wins.height == 0:
        return []
    unit = runs_df.select("run_id", pl.coalesce("boot_id", "run_id").alias("unit")).unique("run_id")
    wins = wins.join(unit, on="run_id").with_columns(pl.col("tracer").fill_null("latency"))
    sides = group.side_names
    out = []
    for tracer in sorted(set(wins["tracer"].to_list())):
        tw = wins.filter(pl.col("tracer") == tracer)
        ws = {s: _window_side(tw.filter(pl.col("side") == s), group.runs[s], src, runs_df) for s in sides}
        for side in sides[1:]:
            wb, wa = ws[sides[0]], ws[side]
            change = None
            if wb is not None and wa is not None:
                ub = _stats.Units.from_groups({u: np.array([v]) for u, v in wb.unit_worst_ns.items()})
                ua = _stats.Units.from_groups({u: np.array([v]) for u, v in wa.unit_worst_ns.items()})
                change = _stats.compare_units(ub, ua, seed=_stats.row_seed(group.key, "window", tracer, side, base=seed))
            out.append(WindowResult(tracer=tracer, before=wb, after=wa, change=change, against=side))
    for side in sides[1:]:
        mine = [w for w in out if w.against == side and w.change is not None]
        for w, ch in zip(mine, _stats.decide([w.change for w in mine])):
            w.change = ch
    return out


def _event_counts(src: ReportSource, runs_df: pl.DataFrame, sides: list[str]) -> list[EventCount]:
    """Per-run counts of tlb_flush by reason and of mm_page_free* events."""
    try:
        short = pl.col("event").str.replace(r"^.*:", "")  # "tlb:tlb_flush" (perf) -> "tlb_flush"
        counted = (
            _scan(src.events(), runs_df)
            .filter(pl.col("event").is_not_null())
            .with_columns(short.alias("ev"))
            .filter((pl.col("ev") == TLB_FLUSH_EVENT) | pl.col("ev").str.starts_with(PAGE_FREE_PREFIX))
            .with_columns(
                pl.when(pl.col("ev") == TLB_FLUSH_EVENT)
                .then(pl.col("body").str.extract(r"reason:\s*(.*?)\s*(?:\(\d+\))?\s*$", 1))
                .otherwise(None)
                .alias("detail")
            )
            .group_by("side", "run_id", "ev", "detail")
            .agg(pl.len().alias("n"))
            .collect()
        )
    except (pl.exceptions.PolarsError, OSError):
        return []
    if counted.height == 0:
        return []
    # A run counts for an event only if it recorded that event at all.
    recorded = counted.group_by("ev").agg(pl.struct("side", "run_id").unique().alias("runs"))
    runs_of = {ev: sorted((r["side"], r["run_id"]) for r in rs) for ev, rs in recorded.iter_rows()}
    out = []
    keys = counted.select("ev", "detail").unique().sort(["ev", "detail"], nulls_last=False)
    for ev, detail in keys.iter_rows():
        sub = counted.filter((pl.col("ev") == ev) & pl.col("detail").eq_missing(detail))
        n_by_run = {(s, r): n for s, r, n in zip(sub["side"].to_list(), sub["run_id"].to_list(), sub["n"].to_list())}
        per = {s: [] for s in sides}
        for key in runs_of[ev]:
            per[key[0]].append(int(n_by_run.get(key, 0)))
        out.append(EventCount(ev, detail, per))
    return out


def _functions_wanted(functions: list[str] | None, patch_info: PatchInfo | None) -> tuple[list[str], str]:
    if functions:
        return list(dict.fromkeys(functions)), "given with --functions"
    touched = list(patch_info.functions) if patch_info else []
    wanted = list(dict.fromkeys(touched + list(TEARDOWN_FUNCTIONS)))
    return wanted, ("touched by the patch, and the teardown path" if touched else "the teardown path")


def compare(
    src: ReportSource,
    patch: str | list[str],
    *,
    before: str = "before",
    after: str | list[str] = "after",
    functions: list[str] | None = None,
    under: str | None = None,
    patch_info: PatchInfo | None = None,
    seed: int = _stats.BASE_SEED,
    keep_samples: bool = True,
) -> Comparison:
    """Compare the runs of ``patch`` labelled ``before`` (the baseline) with those of each
    label in ``after`` (a label, or several; ``P:L`` names label L of patch P).  ``patch``
    may name several patches: each one's ``after`` sides are compared with the baseline
    of the first."""
    patches = [patch] if isinstance(patch, str) else list(patch)
    sides = _sides(patches, before, [after] if isinstance(after, str) else list(after))
    if len(sides) < 2:
        raise ReportError(f"nothing to compare with the baseline {before!r}: give another label")
    runs = _select_runs(src, sides)
    wanted, functions_from = _functions_wanted(functions, patch_info)
    calls = _calls(src, runs, wanted, under)
    units = _unit_names(runs)
    present = set(calls["func"].unique().to_list())
    funcs = wanted if functions else [f for f in wanted if f in present]
    missing = [f for f in wanted if f not in present] if functions else []
    names = [s.name for s in sides]
    comp = Comparison(patch=",".join(patches), sides=sides, patch_info=patch_info, groups=[],
                      functions_requested=wanted, functions_from=functions_from, functions_missing=missing,
                      under=under)
    for arch, cfg, note, gruns in _group_runs(runs, names):
        group = ArchGroup(arch=arch, config=cfg, runs={s: _run_refs(gruns, s) for s in names}, config_note=note)
        ids = gruns["run_id"].unique()
        gd = calls if ids.len() == runs["run_id"].n_unique() else calls.filter(pl.col("run_id").is_in(ids.to_list()))
        per_func = {k[0]: v for k, v in gd.partition_by("func", as_dict=True).items()} if gd.height else {}
        for func in funcs:
            if not functions and func not in per_func:
                continue
            fd = per_func.get(func, gd.clear())
            rows, samples = _function_rows(fd, func, names, units, group.key, seed, under)
            group.functions += rows
            if keep_samples:
                group.samples[func] = samples
        _decide_functions(group.functions, names)
        group.windows = _windows(src, gruns, group, seed)
        group.events = _event_counts(src, gruns, names)
        group.prediction = model_prediction(group, comp, store=getattr(src, "root", None))
        comp.groups.append(group)
    return comp
