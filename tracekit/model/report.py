"""The replay model's prediction beside a measured before/after comparison: the hook
``tracekit report`` calls (``reports/compare.py``, ``model_prediction``).

A prediction needs to know what the patch changes in model terms and what the traced
process tore down, which no trace says.  Both come from a *report profile*, a JSON file
named by ``$TRACEKIT_MODEL_PROFILE``, one entry per arch::

    {"x86_64": {"before": "v2622", "after": "modern", "preempt": true,
                "workload": "anon:256MiB,anon:64GiB:density=0.001953125",
                "costs": "costs.json"}}

``costs`` is a cost profile file (``tracekit calibrate --out``, relative to the report
profile) or an inline table; omitted, the defaults.  Without a report profile for the arch
there is no prediction, and the report says nothing of one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tracekit.model import simulate
from tracekit.model.costs import CostProfile, load_costs

__all__ = ["PROFILE_ENV", "load_report_profile", "predict_for_report"]

PROFILE_ENV = "TRACEKIT_MODEL_PROFILE"


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
        raise ValueError(f"{f}: cannot read the model report profile: {e}") from None
    entry = data.get(arch) if isinstance(data, dict) else None
    if not isinstance(entry, dict):
        return None
    for key in ("before", "after", "workload"):
        if key not in entry:
            raise ValueError(f"{f}: {arch}: the model report profile needs {key!r}")
    costs = entry.get("costs")
    if isinstance(costs, str):
        profile = load_costs((f.parent / costs) if not Path(costs).is_absolute() else costs)
    elif isinstance(costs, dict):
        try:
            profile = CostProfile(**{k: int(v) for k, v in costs.items()})
        except (TypeError, ValueError) as e:
            raise ValueError(f"{f}: {arch}: bad inline costs: {e}") from None
    else:
        profile = CostProfile()
    return entry, profile, f


def predict_for_report(arch: str, functions: list[str], runs_before: list[dict], runs_after: list[dict],
                       patch_info: Any) -> dict[str, Any] | None:
    """The model's before/after prediction for ``arch``: per function the mean simulated
    time per call under the profile's before and after strategies, and the longest
    preempt-off window (PREEMPT) or resched gap (!PREEMPT).

    Only functions called as often under both strategies are predicted: a per-call mean of
    tlb_finish_mmu, called once per ZAP_BLOCK in 2.6.22 and once per teardown from 3.0,
    compares different things."""
    found = load_report_profile(arch)
    if found is None:
        return None
    entry, costs, f = found
    preempt = bool(entry.get("preempt", True))
    kw = {k: entry[k] for k in ("op", "online_cpus", "other_cpus", "lazy_cpus") if k in entry}
    before = simulate(arch, entry["before"], preempt=preempt, workload=entry["workload"], costs=costs, **kw)
    after = simulate(arch, entry["after"], preempt=preempt, workload=entry["workload"], costs=costs, **kw)
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
    tracer = "preemptoff" if preempt else "resched_gap"
    return {
        "model": f"tracekit.model {entry['before']} -> {entry['after']}",
        "note": (f"replay of {entry['workload']} ({'CONFIG_PREEMPT' if preempt else '!CONFIG_PREEMPT'}), "
                 f"costs from {f.name}; TLB flushes {before.tlb_flushes:,} -> {after.tlb_flushes:,}"),
        "rows": rows,
        "windows": [{"tracer": tracer, "before_ns": before.max_window_ns, "after_ns": after.max_window_ns}],
    }
