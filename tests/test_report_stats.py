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
    assert e.n == 0 and e.median_ns is None and e.max_ns is None
    one = stats.side_stats([7])
    assert (one.n, one.median_ns, one.p99_ns, one.stddev_ns) == (1, 7.0, 7.0, 0.0)


def test_change_and_regression_verdict_by_hand():
    sb, sa, ch = stats.compare_samples(BEFORE, AFTER, seed=1)
    # median: (95 - 35) / 35 = +171.428571...%; p99: (119.5 - 59.5) / 59.5 = +100.840336...%
    assert ch.median_pct == pytest.approx(60 / 35 * 100)
    assert ch.p99_pct == pytest.approx(60 / 59.5 * 100)
    # Every after value exceeds every before value: U = 0, and the exact two-sided p is
    # 2 / C(12, 6) = 2 / 924 = 0.0021645...
    assert ch.p_value == pytest.approx(2 / 924)
    # Any resample's after median is >= 70 and before median <= 60: the change is at
    # least (70 - 60) / 60 = +16.7% in every replicate, so the interval excludes 0.
    lo, hi = ch.median_ci
    assert lo >= 100 * (70 - 60) / 60 and hi <= 100 * (120 - 10) / 10
    assert ch.verdict == stats.REGRESSION and ch.significant


def test_improvement_is_the_mirror():
    _, _, ch = stats.compare_samples(AFTER, BEFORE, seed=1)
    assert ch.median_pct == pytest.approx((35 - 95) / 95 * 100)  # -63.157...%
    assert ch.p_value == pytest.approx(2 / 924)
    assert ch.verdict == stats.IMPROVEMENT


def test_too_few_samples():
    # 5 calls a side: the order-statistic interval of the median covers it with
    # probability 1 - 2 / 2**5 = 0.9375 < 0.95, so no verdict.
    _, _, ch = stats.compare_samples(BEFORE[:5], AFTER, seed=1)
    assert ch.verdict == stats.TOO_FEW
    assert stats.verdict(6, 6, 50.0, (10.0, 90.0), 0.001) == stats.REGRESSION
    assert stats.verdict(6, 5, 50.0, (10.0, 90.0), 0.001) == stats.TOO_FEW


def test_min_effect_blocks_a_tiny_significant_shift():
    # 1000 calls uniformly 1000..1999 ns, then the same plus 45 ns: medians 1499.5 and
    # 1544.5, a +3.0% change (below the 5% minimum effect).  The shift is 4.5% of the
    # range, so U differs from its mean by about 0.045 * 1e6 = 45000 against a standard
    # deviation sqrt(1000*1000*2001/12) = 12913: z ~ 3.5, p ~ 5e-4 < 0.05.
    b = np.arange(1000, 2000)
    a = b + 45
    _, _, ch = stats.compare_samples(b, a)
    assert ch.median_pct == pytest.approx(45 / 1499.5 * 100)
    assert ch.p_value < 0.01
    assert ch.verdict == stats.NO_CHANGE and not ch.significant


def test_identical_sides_are_no_change():
    _, _, ch = stats.compare_samples(BEFORE, BEFORE)
    assert ch.median_pct == 0.0
    assert ch.p_value == pytest.approx(1.0)
    assert ch.verdict == stats.NO_CHANGE


def test_verdict_needs_interval_excluding_zero():
    assert stats.verdict(50, 50, -20.0, (-30.0, 2.0), 0.01) == stats.NO_CHANGE
    assert stats.verdict(50, 50, -20.0, (-30.0, -2.0), 0.01) == stats.IMPROVEMENT
    assert stats.verdict(50, 50, -20.0, (-30.0, -2.0), 0.06) == stats.NO_CHANGE


def test_percent_change_undefined():
    assert stats.percent_change(0.0, 5.0) is None
    assert stats.percent_change(None, 5.0) is None
    assert stats.percent_change(200.0, 150.0) == pytest.approx(-25.0)


def test_bootstrap_is_seeded_and_row_independent():
    rng = np.random.default_rng(3)
    b, a = rng.lognormal(10, 1, 300), rng.lognormal(10.2, 1, 300)
    seed = stats.row_seed("x86_64", "free_pgtables")
    one = stats.bootstrap_change_ci(b, a, seed=seed)
    two = stats.bootstrap_change_ci(b, a, seed=seed)
    assert one == two
    assert stats.row_seed("x86_64", "free_pgtables") != stats.row_seed("x86_64", "exit_mmap")
    assert stats.bootstrap_change_ci(b, a, seed=seed + 1) != one


def test_bootstrap_order_statistics_match_brute_force_resampling():
    # The bootstrap draws resample quantiles from Beta order statistics instead of
    # materialising resamples; its distribution must match plain resampling.
    rng = np.random.default_rng(11)
    x = rng.lognormal(0, 1, 37)
    reps = 100_000
    idx = np.random.default_rng(5).integers(0, x.size, size=(reps, x.size))
    brute = np.quantile(x[idx], [0.5, 0.99], axis=1).T
    fast = stats._boot_quantiles(x, [0.5, 0.99], reps, np.random.default_rng(6))
    from scipy.stats import ks_2samp

    for col in range(2):
        # Largest gap between the two empirical CDFs: about 0.006 from noise alone at this
        # size (1.36 * sqrt(2 / 1e5) at 95%); a wrong Beta parameter shifts it far more.
        # (Rounded: the distributions are discrete, and numpy's interpolation differs from
        # ours in the last bit, which would split each atom in two.)
        assert ks_2samp(brute[:, col].round(9), fast[:, col].round(9)).statistic < 0.01
        assert brute[:, col].mean() == pytest.approx(fast[:, col].mean(), rel=0.01)


def test_bootstrap_cost_does_not_grow_with_n():
    import time

    rng = np.random.default_rng(2)
    b, a = rng.lognormal(10, 1, 2_000_000), rng.lognormal(10.05, 1, 2_000_000)
    t = time.perf_counter()
    ci = stats.bootstrap_change_ci(b, a)
    assert time.perf_counter() - t < 10
    lo, hi = ci["median"]
    true = (np.exp(10.05) - np.exp(10)) / np.exp(10) * 100  # +5.13% between the medians
    assert lo < true < hi


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_durations = st.lists(st.integers(min_value=1, max_value=10**9), min_size=6, max_size=60)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(_durations, _durations, st.integers(min_value=2, max_value=1000))
def test_properties(before, after, k):
    sb, sa, ch = stats.compare_samples(before, after, seed=7)
    # Quantiles are ordered and bounded by the extremes.
    for s, x in ((sb, before), (sa, after)):
        assert min(x) <= s.median_ns <= s.p90_ns <= s.p99_ns <= s.p999_ns <= s.max_ns == max(x)
    lo, hi = ch.median_ci
    assert lo <= hi
    # Changes in per cent do not depend on the time unit: scale both sides by k.
    _, _, scaled = stats.compare_samples([v * k for v in before], [v * k for v in after], seed=7)
    assert scaled.median_pct == pytest.approx(ch.median_pct)
    assert scaled.p_value == pytest.approx(ch.p_value)
    assert scaled.median_ci == pytest.approx(ch.median_ci)  # same seed, same resamples
    # Swapping the sides swaps improvement and regression.
    _, _, swapped = stats.compare_samples(after, before, seed=7)
    assert swapped.p_value == pytest.approx(ch.p_value)
    flip = {stats.IMPROVEMENT: stats.REGRESSION, stats.REGRESSION: stats.IMPROVEMENT}
    if ch.verdict in flip and swapped.significant:
        assert swapped.verdict == flip[ch.verdict]
