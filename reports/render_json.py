"""report.json: the comparison for machines (CI jobs, dashboards), with a versioned schema.

Top level: ``schema_version``, ``tool``, ``patch`` (name, and what the patch file said),
``before_label``, ``after_label``, ``functions`` (requested, from, missing), ``method``
(alpha, minimum effect, minimum samples, bootstrap replicates, confidence, seed),
``any_regression`` and ``groups``: one per arch (and configuration), each with ``arch``,
``config``, ``runs`` (before/after lists), ``kernels``, ``results`` (one record per
function: ``function``, ``before`` and ``after`` with ``n``, ``median_ns``, ``p90_ns``,
``p99_ns``, ``p999_ns``, ``max_ns``, ``mean_ns``, ``stddev_ns``; ``median_change_pct``,
``median_change_ci_pct``, ``p99_change_pct``, ``p99_change_ci_pct``, ``p_value``,
``verdict``, ``significant``), ``windows``, ``events`` and ``prediction``.
Durations are in ns, changes in per cent of the before value.
"""

from __future__ import annotations

import json
import math
from typing import Any

from tracekit import __version__
from tracekit.reports import stats as _stats
from tracekit.reports.compare import ArchGroup, Comparison

__all__ = ["SCHEMA_VERSION", "report_dict", "render_json"]

#: Bumped when a field changes meaning or disappears (adding fields keeps the version).
SCHEMA_VERSION = 1


def _clean(obj: Any) -> Any:
    """JSON has no NaN or infinity: those become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _side(s: _stats.SideStats, runs: int) -> dict:
    d = s.as_dict()
    d["runs"] = runs
    return d


def _group(g: ArchGroup) -> dict:
    results = []
    for f in g.functions:
        ch = f.change
        results.append(
            {
                "function": f.function,
                "source": f.source,
                "before": _side(f.before, f.runs_before),
                "after": _side(f.after, f.runs_after),
                "median_change_pct": ch.median_pct,
                "median_change_ci_pct": list(ch.median_ci) if ch.median_ci else None,
                "p99_change_pct": ch.p99_pct,
                "p99_change_ci_pct": list(ch.p99_ci) if ch.p99_ci else None,
                "p_value": ch.p_value,
                "verdict": ch.verdict,
                "significant": ch.significant,
            }
        )
    return {
        "arch": g.arch,
        "config": json.loads(g.config) if g.config else None,
        "config_note": g.config_note,
        "kernels": {"before": g.kernels("before"), "after": g.kernels("after")},
        "runs": {
            "before": [r.as_dict() for r in g.runs_before],
            "after": [r.as_dict() for r in g.runs_after],
        },
        "results": results,
        "windows": [
            {
                "tracer": w.tracer,
                "before": w.before.as_dict() if w.before else None,
                "after": w.after.as_dict() if w.after else None,
                "worst_change_pct": w.change_pct,
                "change": w.change.as_dict() if w.change else None,
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
            "before_label": c.before_label,
            "after_label": c.after_label,
            "functions": {
                "requested": c.functions_requested,
                "from": c.functions_from,
                "missing": c.functions_missing,
            },
            "method": {
                "alpha": _stats.ALPHA,
                "min_effect_pct": _stats.MIN_EFFECT_PCT,
                "min_samples": _stats.MIN_SAMPLES,
                "bootstrap_replicates": _stats.BOOTSTRAP_REPLICATES,
                "confidence": _stats.CONFIDENCE,
                "seed": _stats.BASE_SEED,
                "quantiles": "linear interpolation (Hyndman-Fan type 7)",
                "test": "Mann-Whitney U, two-sided",
            },
            "any_regression": c.any_regression,
            "groups": [_group(g) for g in c.groups],
        }
    )


def render_json(c: Comparison) -> str:
    """The whole report.json."""
    return json.dumps(report_dict(c), indent=2, sort_keys=False) + "\n"
