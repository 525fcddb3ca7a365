"""The replay model's prediction beside a measured before/after comparison: the hook
``tracekit report`` calls (``reports/compare.py``, ``model_prediction``).

A prediction needs to know what the patch changes in model terms and what the traced
process tore down, which no trace says.  Both come from a *report profile* entry::

    {"before": "v2622", "after": "modern", "preempt": true,
     "workload": "anon:256MiB,anon:64GiB:density=0.001953125",
     "model_arch": "x86_64", "costs": {"pte_anon": 45, ...}}

``costs`` is an inline table or a cost profile file (relative to the profile); omitted, the
defaults.  ``model_arch`` is the model's arch when the runs' arch is not one (``ppc64le``
runs replayed as ``ppc64-64k``); omitted, the runs' arch.  ``op``, ``online_cpus``,
``other_cpus`` and ``lazy_cpus`` are passed to the model when present.

Where the hook finds one, first match wins:

1. ``$TRACEKIT_MODEL_PROFILE``, a JSON file of entries keyed by arch
   (``{"x86_64": {...}}``): an override for any store;
2. the store the report reads, written by ``tracekit calibrate``::

       <store>/model/<patch>/<arch>.json    one entry (as above) plus where it came from:
                                            "patch", "arch", "calibrated_from" {run_id,
                                            label, strategy, exits, scales, measured_ns,
                                            fitted_ns}, "workload_from", "written_at"

   ``<patch>`` and ``<arch>`` are the runs' partition values (``tracekit.store``'s
   sanitised names).  The file is replaced atomically (written beside, fsync'd, renamed),
   so a report never reads half a profile.

The store is the one given to the hook, else ``$TRACEKIT_STORE``, else ``./tracekit-store``,
and is used only when it holds the compared runs.  Without a profile for the arch there is
no prediction, and the report says nothing of one.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tracekit.errors import ModelError
from tracekit.model import simulate
from tracekit.model.costs import CostProfile, load_costs

__all__ = ["PROFILE_ENV", "PROFILE_DIR", "load_report_profile", "store_profile_path", "save_store_profile",
           "find_store_profile", "predict_for_report", "window_of", "error_pct"]

PROFILE_ENV = "TRACEKIT_MODEL_PROFILE"
#: The store's directory of report profiles.
PROFILE_DIR = "model"


def load_report_profile(arch: str, path: str | os.PathLike | None = None) -> tuple[dict[str, Any], CostProfile, Path] | None:
    """(entry, costs, file) of ``arch`` in the report profile, or None when there is none.
    Raises ValueError for a profile that cannot be read."""
    p = path or os.environ.get(PROFILE_ENV)
    if not p:
        return None
    f = Path(p)
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{f}: cannot read the model report profile: {e}") from None
    entry = data.get(arch) if isinstance(data, dict) else None
    if not isinstance(entry, dict):
        return None
    return _checked_entry(entry, arch, f)


def _checked_entry(entry: dict[str, Any], arch: str, f: Path) -> tuple[dict[str, Any], CostProfile, Path]:
    """(entry, costs, file) of a profile entry read from ``f``; ValueError when it lacks a
    key the prediction needs or its costs cannot be read."""
    for key in ("before", "after", "workload"):
        if key not in entry:
            raise ModelError(f"{f}: {arch}: the model report profile needs {key!r}")
    costs = entry.get("costs")
    if isinstance(costs, str):
        profile = load_costs((f.parent / costs) if not Path(costs).is_absolute() else costs)
    elif isinstance(costs, dict):
        try:
            profile = CostProfile(**{k: int(v) for k, v in costs.items()})
        except (TypeError, ValueError) as e:
            raise ModelError(f"{f}: {arch}: bad inline costs: {e}") from None
    else:
        profile = CostProfile()
    return entry, profile, f


def store_profile_path(store: str | os.PathLike, patch: str, arch: str) -> Path:
    """``<store>/model/<patch>/<arch>.json``, with the store's partition spelling of both."""
    from tracekit.store import sanitize_partition

    return Path(store) / PROFILE_DIR / sanitize_partition(patch) / f"{sanitize_partition(arch)}.json"


def save_store_profile(store: str | os.PathLike, patch: str, arch: str, entry: dict[str, Any]) -> Path:
    """Write the report profile ``entry`` of (patch, arch) into the store, atomically; the
    path written.  Raises OSError when the store cannot be written."""
    for key in ("before", "after", "workload"):
        if key not in entry:
            raise ModelError(f"a report profile needs {key!r}")
    path = store_profile_path(store, patch, arch)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {**entry, "patch": patch, "arch": arch,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(body, indent=1) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _run_patches(store: Path, run_ids: list[str]) -> list[str] | None:
    """The patch partition values of ``run_ids`` in the store at ``store``; None when the
    store does not hold every one of them (it is not the store the report reads)."""
    import polars as pl

    from tracekit.store import open_store

    if not (store / "runs").is_dir():
        return None
    try:
        runs = (open_store(store, create=False).runs().filter(pl.col("run_id").is_in(run_ids))
                .select("run_id", "patch", "partition").collect())
    except Exception:  # noqa: BLE001 - an unreadable store has no profile to offer
        return None
    if runs["run_id"].n_unique() != len(set(run_ids)):  # a run is one row per membership
        return None
    parts = runs["partition"].struct.field("patch") if runs.schema["partition"] != pl.Null else runs["patch"]
    runs = runs.with_columns(part=parts.fill_null(runs["patch"]))
    # a run shared by several patches (the same trace ingested for each) belongs to all of
    # them: the compared runs' patch is the one every run belongs to
    common = None
    for _, group in runs.group_by("run_id"):
        mine = set(group["part"].to_list())
        common = mine if common is None else common & mine
    return sorted(common) if common else sorted(set(runs["part"].to_list()))


def find_store_profile(arch: str, run_ids: list[str], store: str | os.PathLike | None = None
                       ) -> tuple[dict[str, Any], CostProfile, Path] | None:
    """(entry, costs, file) of the store profile for the runs' patch and ``arch``, or None.
    ``store`` defaults to ``$TRACEKIT_STORE``, else ``./tracekit-store``."""
    from tracekit.store import default_store_path

    if not run_ids:
        return None
    root = Path(store) if store is not None else default_store_path()
    patches = _run_patches(root, run_ids)
    for patch in patches or []:
        f = store_profile_path(root, patch, arch)
        if f.is_file():
            try:
                entry = json.loads(f.read_text())
            except (OSError, ValueError) as e:
                raise ModelError(f"{f}: cannot read the model report profile: {e}") from None
            if not isinstance(entry, dict):
                raise ModelError(f"{f}: a model report profile is a JSON object")
            return _checked_entry(entry, arch, f)
    return None


def window_of(result: Any) -> dict[str, Any]:
    """The worst window a simulated teardown predicts, as the report shows it: its length
    (``worst_ns``), the function it ended in and the page-table pages freed inside it."""
    w = result.worst_window or {}
    comp = w.get("composition") or {}
    return {"worst_ns": int(result.max_window_ns), "ended_in": w.get("ended_in"),
            "pagetable_pages_freed": int(comp.get("pagetable_pages_freed", 0)),
            "pages_freed": int(comp.get("pages_freed", 0))}


def error_pct(predicted: float | None, measured: float | None) -> float | None:
    """The prediction's error in percent of the measurement (None when either is missing)."""
    if predicted is None or not measured:
        return None
    return round(100.0 * (predicted - measured) / measured, 1)


def _costs_origin(entry: dict[str, Any], f: Path) -> str:
    """Where a profile's costs came from, for the report's note."""
    cal = entry.get("calibrated_from")
    if isinstance(cal, dict) and cal.get("run_id"):
        label = f" ({cal['label']})" if cal.get("label") else ""
        ids = str(cal["run_id"]).split(",")
        runs = f"run {ids[0][:8]}" if len(ids) == 1 else f"{len(ids)} runs ({', '.join(i[:8] for i in ids)})"
        source = f" {cal['source']} spans," if cal.get("source") else ""
        return f"fitted to{source} {runs}{label}, {f.parent.name}/{f.name}"
    return f"from {f.name}"


def predict_for_report(arch: str, functions: list[str], runs_before: list[dict], runs_after: list[dict],
                       patch_info: Any, store: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The model's before/after prediction for ``arch`` beside what the runs measured.

    The profile is ``$TRACEKIT_MODEL_PROFILE``'s entry for ``arch``, else the one
    ``tracekit calibrate`` stored for the runs' patch and ``arch`` in ``store`` (default
    ``$TRACEKIT_STORE``, else ``./tracekit-store``); None when there is neither.  Returned:

    * ``rows``: per function, the mean simulated time per call under the profile's before
      and after strategies (only functions called as often under both: a per-call mean of
      tlb_finish_mmu, once per ZAP_BLOCK in 2.6.22 and once per teardown from 3.0,
      compares different things);
    * ``functions``: ``{function: {side: {predicted_ns, measured_ns, error_pct}}}``, the
      measurement being the mean per call of the calls directly under the workload's
      exit_mmap calls (:func:`tracekit.model.calibrate.measure`: kprobe spans when the
      side has them), over the side's runs;
    * ``windows``: ``{tracer: {side: {worst_ns, ended_in, pagetable_pages_freed,
      measured_worst_ns, boots, error_pct}}}``: the model's worst preempt-off window
      (``preemptoff``; ``resched_gap`` on !PREEMPT, which no tracer measures) against the
      median over the side's boots of each boot's worst window (one boot: a run's
      ``boot_id``, else the boot id its capture recorded in ``meta``, else the run), and
      where those windows started and ended (``measured_where``: a window outside the
      modelled path is not the model's to predict)."""
    found = load_report_profile(arch)
    if found is None:
        ids = [r["run_id"] for r in runs_before + runs_after if r.get("run_id")]
        found = find_store_profile(arch, ids, store)
    if found is None:
        return None
    entry, costs, f = found
    preempt = bool(entry.get("preempt", True))
    model_arch = entry.get("model_arch") or arch
    kw = {k: entry[k] for k in ("op", "online_cpus", "other_cpus", "lazy_cpus") if k in entry}
    model = {side: simulate(model_arch, entry[side], preempt=preempt, workload=entry["workload"], costs=costs, **kw)
             for side in ("before", "after")}
    before, after = model["before"], model["after"]
    rows = []
    for fn in functions:
        nb, na = before.calls_by_function.get(fn, 0), after.calls_by_function.get(fn, 0)
        if not nb or nb != na:
            continue
        rows.append({
            "function": fn,
            "before_ns": before.time_by_function_ns[fn] / nb,
            "after_ns": after.time_by_function_ns[fn] / na,
        })
    runs = {"before": runs_before, "after": runs_after}
    measured = _Measured(store, entry)
    tracer = "preemptoff" if preempt else "resched_gap"
    windows: dict[str, Any] = {tracer: {}}
    for side, res in model.items():
        got = measured.windows(runs[side], tracer)
        windows[tracer][side] = {"strategy": entry[side], **window_of(res), **got,
                                 "error_pct": error_pct(res.max_window_ns, got.get("measured_worst_ns"))}
    per_function: dict[str, Any] = {}
    for row in rows:
        fn = row["function"]
        per_function[fn] = {}
        for side in ("before", "after"):
            m = measured.mean_per_call(runs[side], fn)
            per_function[fn][side] = {"predicted_ns": row[f"{side}_ns"], "measured_ns": m,
                                      "error_pct": error_pct(row[f"{side}_ns"], m)}
    return {
        "model": f"tracekit.model {entry['before']} -> {entry['after']}"
                 + (f" ({model_arch})" if model_arch != arch else ""),
        "note": (f"replay of {entry['workload']} ({'CONFIG_PREEMPT' if preempt else '!CONFIG_PREEMPT'}), "
                 f"costs {_costs_origin(entry, f)}; TLB flushes {before.tlb_flushes:,} -> {after.tlb_flushes:,}"),
        "rows": rows,
        "functions": per_function,
        "windows": windows,
    }


class _Measured:
    """What the compared runs measured, read from the store for the prediction's columns."""

    def __init__(self, store: str | os.PathLike | None, entry: dict[str, Any]):
        from tracekit.store import default_store_path

        self.root = Path(store) if store is not None else default_store_path()
        self.entry = entry
        self._st = None

    def _store(self):
        if self._st is None:
            from tracekit.store import open_store

            if not (self.root / "runs").is_dir():
                return None
            self._st = open_store(self.root, create=False)
        return self._st

    def windows(self, runs: list[dict], tracer: str) -> dict[str, Any]:
        """Median over boots of each boot's worst ``tracer`` window, and the boots."""
        import polars as pl

        st = self._store()
        ids = [r["run_id"] for r in runs if r.get("run_id")]
        if st is None or not ids:
            return {"measured_worst_ns": None, "boots": 0}
        w = st.windows().filter(pl.col("run_id").is_in(ids) & (pl.col("tracer") == tracer)).select(
            "run_id", "latency_ns", "started_at", "ended_at").collect()
        if not w.height:
            return {"measured_worst_ns": None, "boots": 0}
        boots = st.runs().filter(pl.col("run_id").is_in(ids)).collect()
        if self.entry.get("patch") and self.entry["patch"] in boots["patch"].to_list():
            boots = boots.filter(pl.col("patch") == self.entry["patch"])  # this patch's memberships
        # one row per (run, boot): a trace recorded identically by two boots is in both
        pairs = pl.DataFrame(
            [{"run_id": r["run_id"], "boot": r.get("boot_id") or _boot_id(r["meta"]) or r["run_id"]}
             for r in boots.iter_rows(named=True)],
            schema={"run_id": pl.String, "boot": pl.String},
        ).unique()
        per_boot = (w.join(pairs, on="run_id", how="left").with_columns(pl.col("boot").fill_null(pl.col("run_id")))
                    .sort("latency_ns", descending=True).group_by("boot", maintain_order=True)
                    .agg(worst=pl.col("latency_ns").first(), started=pl.col("started_at").first(),
                         ended=pl.col("ended_at").first()))
        where = sorted({f"{a} .. {b}" for a, b in zip(per_boot["started"], per_boot["ended"])})
        return {"measured_worst_ns": int(per_boot["worst"].median()), "boots": per_boot.height,
                "measured_worst_by_boot_ns": sorted(int(x) for x in per_boot["worst"]),
                "measured_where": where}

    def mean_per_call(self, runs: list[dict], fn: str) -> float | None:
        """Mean time per call of ``fn`` directly under the runs' exit_mmap calls."""
        import polars as pl

        from tracekit.model.calibrate import ExitSelection, mean_per_call, measure
        from tracekit.model.captured import captured_workload, is_pgtfree_spec

        st = self._store()
        ids = [r["run_id"] for r in runs if r.get("run_id")]
        if st is None or not ids:
            return None
        spans = st.spans().filter(pl.col("run_id").is_in(ids))
        select = None
        src = (self.entry.get("workload_from") or "").removeprefix("capture ")
        if is_pgtfree_spec(src):
            cw = captured_workload({"capture": {"workload": src}}, self.entry.get("model_arch") or "x86_64")
            select = ExitSelection(cw.comm, cw.exits)
        try:
            m = measure(spans, select=select)
        except ValueError:
            return None
        return mean_per_call(m, fn)


def _boot_id(meta: str | None) -> str | None:
    """The boot a run came from, as tracekit capture recorded it in the run's meta."""
    try:
        cap = json.loads(meta or "{}").get("capture")
    except (ValueError, AttributeError):
        return None
    return cap.get("boot_id") if isinstance(cap, dict) else None
