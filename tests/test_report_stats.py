"""Statistics of the before/after report, against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracekit.reports import stats

# Hand computation for BEFORE = 10, 20, ..., 60 (n = 6), type-7 quantiles at h = (n-1)q:
#   median: h = 2.5   -> x[2] + 0.5 (x[3] - x[2])   = 30 + 5      = 35
#   p90:    h = 4.5   -> x[4] + 0.5 (x[5] - x[4])   = 50 + 5      = 55
#   p99:    h = 4.95  -> 50 + 0.95 * 10                            = 59.5
#   p99.9:  h = 4.995 -> 50 + 0.995 * 10                           = 59.95
#   mean 210 / 6 = 35; squared deviations 625+225+25+25+225+625 = 1750,
#   sample variance 1750 / 5 = 350, stddev sqrt(350) = 18.7082869...
BEFORE = [60, 10, 40, 20, 50, 30]  # unsorted on purpose
# AFTER = 70, ..., 120: median 95, p99 = 110 + 0.95 * 10 = 119.5
AFTER = [70, 80, 90, 100, 110, 120]


def test_side_stats_by_hand():
    s = stats.side_stats(BEFORE)
    assert s.n == 6
    assert s.median_ns == pytest.approx(35.0)
    assert s.p90_ns == pytest.approx(55.0)
    assert s.p99_ns == pytest.approx(59.5)
    assert s.p999_ns == pytest.approx(59.95)
    assert s.max_ns == 60.0
    assert s.mean_ns == pytest.approx(35.0)
    assert s.stddev_ns == pytest.approx(math.sqrt(350.0))


def test_side_stats_empty_and_single():
    e = stats.side_stats([])
    assert e.n == 0 and e.median_ns is None
    one = stats.side_stats([7])
    assert one.n == 1 and one.median_ns == one.max_ns == 7.0 and one.stddev_ns == 0.0


def test_unit_summaries_by_hand():
    # unit a: 4, 1, 3, 2 -> sorted 1..4: median h = 1.5 -> 2.5; p99 h = 2.97 -> 3 + 0.97 = 3.97
    # unit b: one call of 10: every quantile 10
    u = stats.Units.from_arrays(["a", "b", "a", "a", "a"], [4, 10, 1, 3, 2])
    assert u.names == ["a", "b"] and list(u.sizes) == [4, 1]
    a, b = u.summaries()
    assert (a.n, a.median_ns, a.max_ns) == (4, 2.5, 4.0) and a.p99_ns == pytest.approx(3.97)
    assert (b.n, b.median_ns, b.p99_ns, b.max_ns) == (1, 10.0, 10.0, 10.0)


def test_rank_test_fully_separated_five_a_side():
    # Only 2 of the C(10, 5) = 252 splits are as extreme as complete separation.
    p, how = stats.rank_test([10, 11, 12, 13, 14], [1, 2, 3, 4, 5])
    assert how == "exact" and p == pytest.approx(2 / 252)
    assert stats.min_p_value(5, 5) == pytest.approx(2 / 252)
    assert stats.min_p_value(3, 3) == pytest.approx(0.1)  # 2 / C(6, 3)


def test_rank_test_with_ties_by_hand():
    # pooled 1, 2, 2, 2, 3, 4: mid-ranks 1, 3, 3, 3, 5, 6; before = {1, 2, 2}: rank sum 7,
    # U = 7 - 3*4/2 = 1, |U - 4.5| = 3.5.  Of the 20 splits, rank sums <= 7 (1 with two of
    # the three 3s: 3 ways) or >= 14 (5 and 6 with any 3: 3 ways) are as extreme: p = 6/20.
    p, how = stats.rank_test([1, 2, 2], [2, 3, 4])
    assert how == "exact" and p == pytest.approx(0.3)
    assert stats.rank_test([1, 2, 3], [1, 2, 3])[0] == pytest.approx(1.0)


def test_rank_test_permutation_when_too_many_splits():
    rng = np.random.default_rng(3)
    b, a = rng.normal(10, 1, 15), rng.normal(10, 1, 15)  # C(30, 15) splits: 155 million
    p, how = stats.rank_test(b, a, seed=1)
    assert how.startswith("permutation")
    from scipy.stats import mannwhitneyu

    assert p == pytest.approx(mannwhitneyu(b, a, method="exact").pvalue, abs=0.02)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04: 3 * 0.01 = 0.03; 2 * 0.03 = 0.06; max(0.06, 1 * 0.04) = 0.06
    assert stats.holm([0.01, 0.04, None, 0.03]) == pytest.approx([0.03, 0.06, None, 0.06])
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]  # 2 * 0.5, then max(1.0, 0.9)


def test_units_needed():
    assert stats.units_needed(1) == 4  # 2/70 = 0.029 < 0.05; 2/20 = 0.1 is not
    assert stats.units_needed(6) == 5  # 2/252 = 0.0079 < 0.05/6 = 0.0083
    assert stats.units_needed(9) == 6  # 0.0079 > 0.05/9; 2/924 = 0.0022


def test_verdict_rules():
    v = stats.verdict
    assert v(5, 5, -20.0, (-30.0, -10.0), 0.01) == stats.IMPROVEMENT
    assert v(5, 5, 20.0, (10.0, 30.0), 0.01) == stats.REGRESSION
    assert v(5, 5, 1.8, (0.9, 2.5), 0.001) == stats.BELOW_THRESHOLD == "significant, below the 5% threshold"
    assert v(5, 5, -20.0, (-30.0, 2.0), 0.01) == stats.NO_CHANGE  # interval holds 0
    assert v(5, 5, -20.0, (-30.0, -2.0), 0.06) == stats.NO_CHANGE
    assert v(1, 1, -90.0, (-95.0, -85.0), None) == stats.TOO_FEW
    assert v(3, 3, -90.0, (-95.0, -85.0), 0.1) == stats.TOO_FEW  # 0.1 is the best 3+3 can do
    assert v(4, 4, 20.0, (5.0, 30.0), 0.029) == stats.REGRESSION
    assert v(4, 4, 20.0, (5.0, 30.0), 0.057, tests=2) == stats.TOO_FEW  # 2 * 2/70 >= 0.05


def _constant_units(values: list[float], calls: int = 200) -> stats.Units:
    return stats.Units.from_groups({f"boot{i}": np.full(calls, v) for i, v in enumerate(values)})


def test_one_boot_a_side_has_no_verdict_however_many_calls():
    # The pseudo-replication case: thousands of calls of one boot a side, clearly apart.
    rng = np.random.default_rng(4)
    b = stats.Units.from_groups({"b": rng.normal(100, 5, 5000)})
    a = stats.Units.from_groups({"a": rng.normal(174, 5, 5000)})
    [ch] = stats.decide([stats.compare_units(b, a)])
    assert ch.verdict == stats.TOO_FEW and not ch.significant
    assert ch.p_value is None and ch.median_ci is None
    assert ch.median_pct == pytest.approx((np.median(a.values) - np.median(b.values)) / np.median(b.values) * 100)
    assert ch.units_needed == 4


def test_five_boots_a_side_fully_separated_is_significant():
    b = _constant_units([10.0, 11.0, 12.0, 11.5, 10.5])  # unit medians, median 11
    a = _constant_units([0.3, 1.4, 0.7, 0.5, 0.9])  # median 0.7
    [ch] = stats.decide([stats.compare_units(b, a)])
    assert ch.p_value == pytest.approx(2 / 252) and ch.p_adjusted == pytest.approx(2 / 252)
    assert ch.median_pct == pytest.approx((0.7 - 11.0) / 11.0 * 100)
    assert ch.verdict == stats.IMPROVEMENT and ch.significant


def test_interval_reflects_the_spread_between_boots():
    # Five boots a side with the same unit medians 90..110 and no spread within a boot: a
    # bootstrap of the calls would say the median is exactly 100 on both sides; resampling
    # the boots gives medians of five draws from 90..110 on each side.
    b = _constant_units([90.0, 95.0, 100.0, 105.0, 110.0])
    a = _constant_units([90.0, 95.0, 100.0, 105.0, 110.0])
    [ch] = stats.decide([stats.compare_units(b, a)])
    lo, hi = ch.median_ci
    assert ch.median_pct == 0.0 and lo < -5.0 and hi > 5.0
    assert ch.verdict == stats.NO_CHANGE
    # Every boot identical: the interval is the point.
    same = stats.compare_units(_constant_units([100.0] * 4), _constant_units([80.0] * 4))
    assert same.median_ci == pytest.approx((-20.0, -20.0))


def test_holm_over_a_family_of_functions():
    b = _constant_units([10.0, 11.0, 12.0, 11.5, 10.5])
    a = _constant_units([5.0, 5.5, 6.0, 6.5, 7.0])
    rows = stats.decide([stats.compare_units(b, a), stats.compare_units(b, a)])
    # 2/252 each; Holm: 2 * 2/252 = 0.0159 for both, still below 0.05.
    assert [r.p_adjusted for r in rows] == pytest.approx([4 / 252, 4 / 252])
    assert all(r.verdict == stats.IMPROVEMENT and r.tests == 2 for r in rows)
    nine = stats.decide([stats.compare_units(b, a) for _ in range(9)])
    assert all(r.verdict == stats.TOO_FEW and r.units_needed == 6 for r in nine)


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(8)
    b = stats.Units.from_groups({f"b{i}": rng.normal(100, 10, 50) for i in range(5)})
    a = stats.Units.from_groups({f"a{i}": rng.normal(90, 10, 50) for i in range(5)})
    one = stats.hierarchical_change_ci(b, a, seed=3)
    assert stats.hierarchical_change_ci(b, a, seed=3) == one
    assert stats.hierarchical_change_ci(b, a, seed=4) != one
    assert stats.row_seed("x86_64", "free_pgtables") != stats.row_seed("x86_64", "exit_mmap")


def test_within_unit_draws_match_brute_force_resampling():
    # The bootstrap draws a unit's resampled quantile from Beta order statistics instead of
    # materialising resamples; with one unit its distribution must match plain resampling.
    rng = np.random.default_rng(11)
    x = rng.lognormal(0, 1, 37)
    reps = 100_000
    idx = np.random.default_rng(5).integers(0, x.size, size=(reps, x.size))
    from scipy.stats import ks_2samp

    u = stats.Units.from_groups({"one": x})
    for q in (0.5, 0.99):
        brute = np.quantile(x[idx], q, axis=1)
        fast = stats._draw_unit_quantiles(u, q, reps, np.random.default_rng(6))[:, 0]
        # Largest gap between the empirical CDFs: about 0.006 from noise alone at this size.
        assert ks_2samp(brute.round(9), fast.round(9)).statistic < 0.01
        assert brute.mean() == pytest.approx(fast.mean(), rel=0.01)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_units = st.lists(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=20), min_size=2, max_size=6)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(_units, _units, st.integers(min_value=2, max_value=1000))
def test_properties(before, after, k):
    def units(groups, scale=1):
        return stats.Units.from_groups({f"u{i}": np.array(g, dtype=float) * scale for i, g in enumerate(groups)})

    ch = stats.compare_units(units(before), units(after), seed=7)
    lo, hi = ch.median_ci
    assert lo <= hi
    # Changes in per cent do not depend on the time unit: scale both sides by k.
    scaled = stats.compare_units(units(before, k), units(after, k), seed=7)
    assert scaled.median_pct == pytest.approx(ch.median_pct)
    assert scaled.p_value == pytest.approx(ch.p_value)
    assert scaled.median_ci == pytest.approx(ch.median_ci)
    # Swapping the sides gives the same p.
    swapped = stats.compare_units(units(after), units(before), seed=7)
    assert swapped.p_value == pytest.approx(ch.p_value)
