"""The sentences every renderer prints for a verdict, a tracer choice and the method, so
that report.txt, report.md and report.html say the same thing in the same words."""

from __future__ import annotations

from tracekit.reports import fmt
from tracekit.reports import stats as _stats
from tracekit.reports.compare import ArchGroup, Comparison, FunctionResult, RunRef, WindowResult

__all__ = ["unit_word", "units_text", "need_text", "verdict_text", "window_text", "source_text", "method_note"]


def unit_word(runs: list[RunRef], n: int | None = None) -> str:
    """What a unit of these runs is: a boot where every run says which, else a run."""
    boots = all(r.boot_id for r in runs) if runs else False
    word = "boot" if boots else ("run" if not any(r.boot_id for r in runs) else "unit")
    return word if n == 1 else word + "s"


def units_text(g: ArchGroup, side: str) -> str:
    """``3 boots (4 runs)`` or ``4 runs`` for one side of a group."""
    runs = g.runs[side]
    units = len({r.unit for r in runs})
    text = f"{units} {unit_word(runs, units)}"
    return text + f" ({len(runs)} runs)" if units != len(runs) else text


def need_text(ch: _stats.Change, word: str) -> str:
    """Why a row has no verdict, and how many units a side would give one."""
    tests = max(ch.compared, 1)
    family = f" ({tests} compared, Holm)" if tests > 1 else ""
    need = f"a verdict needs at least {ch.units_needed} {word}s a side{family}"
    if min(ch.units_before, ch.units_after) < _stats.MIN_UNITS:
        return (f"One {word} a side cannot tell the patch from {word}-to-{word} variation: "
                f"{need}.")
    return (f"The exact rank test on {ch.units_before} against {ch.units_after} {word}s cannot "
            f"reach p<{_stats.ALPHA:g} however far apart they are: {need}.")


def verdict_text(f: FunctionResult, g: ArchGroup, c: Comparison) -> str:
    """One function's verdict as a sentence, with what it is drawn from."""
    ch = f.change
    word = unit_word(g.runs[g.side_names[0]] + g.runs[f.against or g.side_names[1]], 2)[:-1]
    units = f"{ch.units_before}+{ch.units_after} {word}s, {f.before.n}+{f.after.n} calls"
    med = f"median {fmt.ns(ch.unit_median_before_ns)} -> {fmt.ns(ch.unit_median_after_ns)}, {fmt.pct(ch.median_pct)}"
    if ch.verdict == _stats.TOO_FEW:
        return f"no verdict ({units}): {med}."
    p = f"{fmt.p_eq(ch.p_adjusted)}" + (" Holm-adjusted" if ch.tests > 1 else "")
    tag = ch.verdict if ch.significant else "~ no significant change"
    return f"{tag}: {med} {fmt.ci(ch.median_ci)}, p99 {fmt.pct(ch.p99_pct)} ({p}; {units})."


def window_text(w: WindowResult, g: ArchGroup) -> str:
    """The change of the units' worst windows of one tracer, as a sentence."""
    ch = w.change
    if ch is None:
        return ""
    word = unit_word(g.runs[g.side_names[0]] + g.runs[w.against], 2)[:-1]
    med = (f"median of the {word}s' worst windows {fmt.ns(ch.unit_median_before_ns)} -> "
           f"{fmt.ns(ch.unit_median_after_ns)}, {fmt.pct(ch.median_pct)}")
    if ch.verdict == _stats.TOO_FEW:
        return f"no verdict ({ch.units_before}+{ch.units_after} {word}s): {med}. {need_text(ch, word)}"
    tag = ch.verdict if ch.significant else "~ no significant change"
    p = f"{fmt.p_eq(ch.p_adjusted)}" + (" Holm-adjusted" if ch.tests > 1 else "")
    return f"{tag}: {med} {fmt.ci(ch.median_ci)} ({p}, exact rank test on {ch.units_before}+{ch.units_after} {word}s)."


def source_text(f: FunctionResult) -> str:
    """Which tracer the calls of a function come from, why, and what the others say."""
    text = f"{f.function}: {f.source} ({f.source_reason})"
    for o in f.other_sources:
        parts = ", ".join(f"{side} {o.calls[side]} calls in {o.units[side]} unit{'' if o.units[side] == 1 else 's'}, "
                          f"median {fmt.ns(o.median_ns[side])}" for side in o.calls)
        text += f"; {o.source} also traced it ({parts}), not compared"
    return text + "."


def method_note() -> str:
    return (
        "Method: the unit of replication is the boot (the run, where no boot "
        "was recorded): calls of one boot are not independent samples. Each unit "
        "is summarised by the median, p99 and max of its calls. Changes are "
        "those of the median over units of the unit medians (and p99s), with 95% "
        "intervals from a hierarchical bootstrap (units, then calls within units; "
        f"{_stats.BOOTSTRAP_REPLICATES} resamples, seeded). p is an exact (or "
        "permutation) rank test on the unit medians, Holm-adjusted over the "
        "functions compared. A regression or improvement needs an adjusted p "
        f"below {_stats.ALPHA:g}, an interval excluding 0 and a change of at "
        f"least {_stats.MIN_EFFECT_PCT:g}%; a smaller significant change is "
        f"said to be below the {_stats.MIN_EFFECT_PCT:g}% threshold; '~' marks "
        "no significant change. Latency windows: each unit's worst window. "
        "The call tables pool every call of a side (descriptive only). "
        "Durations are as traced, tracer overhead included: compare them as "
        "ratios. docs/statistics.md says what each number is drawn from."
    )
