"""report.json: the comparison for machines (CI jobs, dashboards), with a versioned schema
(docs/report.schema.json, a JSON Schema every report validates against).

Top level: ``schema_version``, ``tool``, ``patch`` (name, and what the patch file said),
``sides`` (the baseline first, then each compared side: patch, label, name),
``before_label`` / ``after_label`` (the baseline and the first compared side), ``functions``
(requested, from, missing, under), ``method`` and ``groups``: one per arch (and
configuration), each with ``runs`` and ``units`` per side, ``results`` (one record per
function and compared side: ``function``, ``against``, ``source`` and why, what the other
sources say, the ``selection`` the numbers are drawn from, ``before`` / ``after`` with the
pooled ``n``, ``median_ns``, ``p90_ns``, ``p99_ns``, ``p999_ns``, ``max_ns``, ``mean_ns``,
``stddev_ns``, ``runs``, ``units`` and each unit's summary; the change, its interval, the
rank test's p, Holm's adjusted p, ``verdict`` and ``significant``), ``windows``, ``events``
and ``prediction`` (open: the model adds its block there).  Durations are in ns, changes
in per cent of the baseline value.  docs/statistics.md says what each number is drawn from.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from tracekit import __version__
from tracekit.reports import stats as _stats
from tracekit.reports.compare import ArchGroup, Comparison, FunctionResult

__all__ = ["SCHEMA_VERSION", "report_dict", "render_json"]

#: Bumped when a field changes meaning or disappears (adding fields keeps the version).
SCHEMA_VERSION = 2


def _clean(obj: Any) -> Any:
    """JSON has no NaN or infinity: those become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _side(s: _stats.SideStats, runs: int, units: list[_stats.UnitSummary], unit_median: float | None) -> dict:
    d = s.as_dict()
    d["runs"] = runs
    d["units"] = len(units)
    d["unit_median_ns"] = unit_median
    d["unit_summaries"] = [asdict(u) for u in units]
    return d


def _change(ch: _stats.Change) -> dict:
    return {
        "median_change_pct": ch.median_pct,
        "median_change_ci_pct": list(ch.median_ci) if ch.median_ci else None,
        "p99_change_pct": ch.p99_pct,
        "p99_change_ci_pct": list(ch.p99_ci) if ch.p99_ci else None,
        "p_value": ch.p_value,
        "p_adjusted": ch.p_adjusted,
        "test": ch.test,
        "tests": ch.tests,
        "units_needed": ch.units_needed,
        "verdict": ch.verdict,
        "significant": ch.significant,
    }


def _result(f: FunctionResult, g: ArchGroup, c: Comparison) -> dict:
    ch = f.change
    base, side = g.side_names[0], f.against
    return {
        "function": f.function,
        "against": side,
        "source": f.source,
        "source_reason": f.source_reason,
        "other_sources": [o.as_dict() for o in f.other_sources],
        "selection": {
            "function": f.function,
            "under": f.under,
            "source": f.source,
            "complete_calls_only": True,
            "runs": {s: [r.run_id for r in g.runs[s]] for s in (base, side)},
            "units": {s: sorted({r.unit for r in g.runs[s]}) for s in (base, side)},
        },
        "before": _side(f.before, f.runs_before, f.units_before, ch.unit_median_before_ns),
        "after": _side(f.after, f.runs_after, f.units_after, ch.unit_median_after_ns),
        **_change(ch),
    }


def _group(g: ArchGroup, c: Comparison) -> dict:
    return {
        "arch": g.arch,
        "config": json.loads(g.config) if g.config else None,
        "config_note": g.config_note,
        "kernels": {"before": g.kernels("before"), "after": g.kernels("after"),
                    **{s: g.kernels(s) for s in g.side_names}},
        "runs": {"before": [r.as_dict() for r in g.runs_before], "after": [r.as_dict() for r in g.runs_after],
                 **{s: [r.as_dict() for r in g.runs[s]] for s in g.side_names}},
        "units": {"before": g.units("before"), "after": g.units("after"),
                  **{s: g.units(s) for s in g.side_names}},
        "results": [_result(f, g, c) for f in g.functions],
        "windows": [
            {
                "tracer": w.tracer,
                "against": w.against,
                "before": w.before.as_dict() if w.before else None,
                "after": w.after.as_dict() if w.after else None,
                "worst_change_pct": w.change_pct,
                "change": _change(w.change) if w.change else None,
            }
            for w in g.windows
        ],
        "events": [e.as_dict() for e in g.events],
        "prediction": g.prediction,
    }


def report_dict(c: Comparison) -> dict:
    """The report as plain JSON-able data."""
    return _clean(
        {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "tracekit", "version": __version__},
            "patch": {"name": c.patch, **(c.patch_info.as_dict() if c.patch_info else {})},
            "sides": [{"patch": s.patch, "label": s.label, "name": s.name,
                       "role": "baseline" if i == 0 else "compared"} for i, s in enumerate(c.sides)],
            "before_label": c.before_label,
            "after_label": c.after_label,
            "functions": {
                "requested": c.functions_requested,
                "from": c.functions_from,
                "missing": c.functions_missing,
                "under": c.under,
            },
            "method": {
                "unit": "boot (boot_id of the run), else the run itself",
                "alpha": _stats.ALPHA,
                "min_effect_pct": _stats.MIN_EFFECT_PCT,
                "min_units": _stats.MIN_UNITS,
                "bootstrap": "hierarchical: units with replacement, then calls within each unit",
                "bootstrap_replicates": _stats.BOOTSTRAP_REPLICATES,
                "confidence": _stats.CONFIDENCE,
                "seed": _stats.BASE_SEED,
                "quantiles": "linear interpolation (Hyndman-Fan type 7)",
                "statistic": "median over units of each unit's median (p99)",
                "test": "two-sided rank test (Mann-Whitney U) on the unit medians, exact over every split "
                        f"up to {_stats.EXACT_LIMIT} splits, else {_stats.PERMUTATIONS} random splits",
                "correction": "Holm, over the functions (and over the latency tracers) compared with each side",
                "windows": "each unit's worst window",
            },
            "any_regression": c.any_regression,
            "groups": [_group(g, c) for g in c.groups],
        }
    )


def render_json(c: Comparison) -> str:
    """The whole report.json."""
    return json.dumps(report_dict(c), indent=2, sort_keys=False) + "\n"
