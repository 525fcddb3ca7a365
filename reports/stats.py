"""Before/after statistics of call latencies: what a reviewer needs to trust a number.

For one function on one architecture, the durations (``dur_ns``) of every completed call
before the patch and after it are summarised (n, median, p90, p99, p99.9, max, mean,
stddev), and compared:

* the change of the median and of the p99, in per cent of the "before" value, each with a
  95% percentile-bootstrap confidence interval (:data:`BOOTSTRAP_REPLICATES` resamples of
  each side, seeded so that the same data always gives the same interval);
* the two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``): do calls after the
  patch tend to take longer or shorter than before?  It assumes nothing about the shape of
  the distribution, which matters for latencies (long right tails, several modes);
* a verdict.  A row is an *improvement* or a *regression* only when all three agree:
  p < :data:`ALPHA`, the median's 95% interval excludes zero, and the median moved by at
  least :data:`MIN_EFFECT_PCT` per cent.  Otherwise it is *no significant change*, printed
  ``~`` as benchstat does.  A change smaller than the minimum effect is not reported as a
  verdict even when the test detects it: on a few thousand calls a 1% shift is
  "significant" and meaningless next to run-to-run noise of a traced kernel.
* below :data:`MIN_SAMPLES` calls on either side there is no verdict, only
  "too few samples".

Percentiles interpolate linearly between order statistics (Hyndman and Fan type 7, numpy's
default): for sorted x[0..n-1] the q-quantile is at position h = (n-1)q, x[floor h] +
(h - floor h)(x[floor h + 1] - x[floor h]).  The standard deviation is the sample one
(n-1 in the denominator).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _sps

__all__ = [
    "ALPHA",
    "MIN_EFFECT_PCT",
    "MIN_SAMPLES",
    "BOOTSTRAP_REPLICATES",
    "CONFIDENCE",
    "BASE_SEED",
    "IMPROVEMENT",
    "REGRESSION",
    "NO_CHANGE",
    "TOO_FEW",
    "SideStats",
    "Change",
    "side_stats",
    "percent_change",
    "bootstrap_change_ci",
    "mann_whitney_p",
    "verdict",
    "compare_samples",
    "row_seed",
]

#: Significance level of the Mann-Whitney U test.
ALPHA = 0.05
#: Smallest change of the median, in per cent of "before", that gets a verdict.
MIN_EFFECT_PCT = 5.0
#: Fewest calls per side for a verdict: 6 is the smallest n for which a distribution-free
#: 95% interval of the median exists (order statistics x(1)..x(n) cover it with probability
#: 1 - 2 * 0.5**n, 0.969 for n = 6 and 0.938 for n = 5); benchstat uses the same bound.
MIN_SAMPLES = 6
#: Bootstrap resamples per side, and the confidence level of the intervals.
BOOTSTRAP_REPLICATES = 2000
CONFIDENCE = 0.95
#: Seed of the bootstrap; each row mixes in its arch and function (:func:`row_seed`), so a
#: row's interval does not depend on which other rows are in the report.
BASE_SEED = 20070716

IMPROVEMENT = "improvement"
REGRESSION = "regression"
NO_CHANGE = "no significant change"
TOO_FEW = "too few samples"

@dataclass(frozen=True)
class SideStats:
    """Summary of one side's call durations, in ns (floats; None when n is 0)."""

    n: int
    median_ns: float | None
    p90_ns: float | None
    p99_ns: float | None
    p999_ns: float | None
    max_ns: float | None
    mean_ns: float | None
    stddev_ns: float | None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Change:
    """How "after" differs from "before" for one function.

    ``median_pct`` / ``p99_pct``: (after - before) / before * 100, None when undefined
    (a side is empty, or the before value is 0).  ``*_ci``: the 95% bootstrap interval of
    that change, (low, high) in per cent, None when it cannot be computed.
    """

    median_pct: float | None
    median_ci: tuple[float, float] | None
    p99_pct: float | None
    p99_ci: tuple[float, float] | None
    p_value: float | None
    verdict: str

    @property
    def significant(self) -> bool:
        return self.verdict in (IMPROVEMENT, REGRESSION)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["median_ci"] = list(self.median_ci) if self.median_ci else None
        d["p99_ci"] = list(self.p99_ci) if self.p99_ci else None
        d["significant"] = self.significant
        return d


def _clean(values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


def side_stats(dur_ns) -> SideStats:
    """Summarise the durations of one side (ns)."""
    x = _clean(dur_ns)
    n = int(x.size)
    if n == 0:
        return SideStats(0, None, None, None, None, None, None, None)
    q = np.quantile(x, [0.5, 0.9, 0.99, 0.999])
    sd = float(np.std(x, ddof=1)) if n > 1 else 0.0
    return SideStats(
        n=n,
        median_ns=float(q[0]),
        p90_ns=float(q[1]),
        p99_ns=float(q[2]),
        p999_ns=float(q[3]),
        max_ns=float(x.max()),
        mean_ns=float(x.mean()),
        stddev_ns=sd,
    )


def percent_change(before: float | None, after: float | None) -> float | None:
    """(after - before) / before in per cent; None when before is 0 or either is missing."""
    if before is None or after is None or before == 0:
        return None
    return (after - before) / before * 100.0


def row_seed(*parts: str, base: int = BASE_SEED) -> int:
    """A stable seed for one report row (arch, function, ...), independent of Python's
    per-process string hashing."""
    return (base ^ zlib.crc32("/".join(parts).encode())) & 0xFFFFFFFF


def _boot_quantiles(x: np.ndarray, qs: list[float], reps: int, rng: np.random.Generator) -> np.ndarray:
    """Quantiles ``qs`` of ``reps`` resamples (with replacement) of ``x``: shape (reps, len(qs)).

    Drawn without materialising the resamples, so the cost does not grow with n: a resample
    of n values from the sorted sample xs is xs[floor(n U_i)] for iid uniform U_i, a monotone
    map, so its j-th order statistic (1-based) is xs[floor(n U_(j))], and U_(j) follows
    Beta(j, n + 1 - j).  The type-7 quantile also needs the next order statistic: given
    U_(j) = u, the other n - j uniforms are iid on (u, 1), so U_(j+1) = u + (1 - u) B with
    B ~ Beta(1, n - j).  Each quantile's bootstrap distribution is thereby exact.
    """
    xs = np.sort(x)
    n = xs.size
    out = np.empty((reps, len(qs)))
    for col, q in enumerate(qs):
        h = (n - 1) * q
        j = int(math.floor(h))  # 0-based order statistic below the quantile
        frac = h - j
        u1 = rng.beta(j + 1, n - j, size=reps)
        k1 = np.minimum((n * u1).astype(np.int64), n - 1)
        val = xs[k1]
        if frac > 0 and j + 1 < n:
            u2 = u1 + (1.0 - u1) * rng.beta(1, n - j - 1, size=reps)
            k2 = np.minimum((n * u2).astype(np.int64), n - 1)
            val = val + frac * (xs[k2] - val)
        out[:, col] = val
    return out


def bootstrap_change_ci(
    before_ns,
    after_ns,
    *,
    seed: int = BASE_SEED,
    reps: int = BOOTSTRAP_REPLICATES,
    confidence: float = CONFIDENCE,
) -> dict[str, tuple[float, float] | None]:
    """Percentile-bootstrap intervals of the per-cent change of the median and of the p99.

    Each side is resampled with replacement ``reps`` times, independently (the calls
    before and after the patch are not paired); each replicate gives
    (q_after* - q_before*) / q_before* * 100, and the interval is the central
    ``confidence`` part of those replicates.  Returns ``{"median": (lo, hi), "p99": ...}``,
    None where a side is empty or a before replicate is 0.
    """
    b = _clean(before_ns)
    a = _clean(after_ns)
    if b.size == 0 or a.size == 0:
        return {"median": None, "p99": None}
    rng = np.random.default_rng(seed)
    qs = [0.5, 0.99]
    qb = _boot_quantiles(b, qs, reps, rng)
    qa = _boot_quantiles(a, qs, reps, rng)
    tail = (1.0 - confidence) / 2.0 * 100.0
    result: dict[str, tuple[float, float] | None] = {}
    for j, name in enumerate(("median", "p99")):
        with np.errstate(divide="ignore", invalid="ignore"):
            ch = (qa[:, j] - qb[:, j]) / qb[:, j] * 100.0
        ch = ch[np.isfinite(ch)]
        if ch.size < reps * 0.9:  # the before value is 0 in too many replicates
            result[name] = None
            continue
        lo, hi = np.percentile(ch, [tail, 100.0 - tail])
        result[name] = (float(lo), float(hi))
    return result


def mann_whitney_p(before_ns, after_ns) -> float | None:
    """Two-sided Mann-Whitney U p-value (scipy chooses the exact distribution for small
    samples without ties, the normal approximation with tie correction otherwise)."""
    b = _clean(before_ns)
    a = _clean(after_ns)
    if b.size == 0 or a.size == 0:
        return None
    res = _sps.mannwhitneyu(b, a, alternative="two-sided")
    p = float(res.pvalue)
    return 1.0 if math.isnan(p) else p


def verdict(
    n_before: int,
    n_after: int,
    median_pct: float | None,
    median_ci: tuple[float, float] | None,
    p_value: float | None,
    *,
    alpha: float = ALPHA,
    min_effect_pct: float = MIN_EFFECT_PCT,
    min_samples: int = MIN_SAMPLES,
) -> str:
    """The row's verdict: improvement (calls got shorter), regression (longer), no
    significant change, or too few samples (see the module docstring for the rule)."""
    if n_before < min_samples or n_after < min_samples:
        return TOO_FEW
    if median_pct is None or median_ci is None or p_value is None:
        return NO_CHANGE
    lo, hi = median_ci
    if p_value < alpha and abs(median_pct) >= min_effect_pct and (lo > 0 or hi < 0):
        return REGRESSION if median_pct > 0 else IMPROVEMENT
    return NO_CHANGE


def compare_samples(before_ns, after_ns, *, seed: int = BASE_SEED) -> tuple[SideStats, SideStats, Change]:
    """Summaries of both sides and the change between them, with its verdict."""
    sb = side_stats(before_ns)
    sa = side_stats(after_ns)
    med = percent_change(sb.median_ns, sa.median_ns)
    p99 = percent_change(sb.p99_ns, sa.p99_ns)
    if sb.n and sa.n:
        ci = bootstrap_change_ci(before_ns, after_ns, seed=seed)
        p = mann_whitney_p(before_ns, after_ns)
    else:
        ci, p = {"median": None, "p99": None}, None
    v = verdict(sb.n, sa.n, med, ci["median"], p)
    return sb, sa, Change(med, ci["median"], p99, ci["p99"], p, v)
