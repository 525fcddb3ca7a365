"""Before/after statistics of latencies, with the boot as the unit of replication.

Calls of one boot are not independent samples: they share the boot's caches, memory
layout and host noise (under TCG, all of the host's).  A thousand calls from one boot say
much about that boot and little about the kernel.  So every statistic that decides a
verdict is drawn from *units*, and a unit is a boot: the boot id a run records
(``tracekit capture``, ``tracekit ingest --boot``), else the run itself (one trace file).

For one function, each unit is summarised by the median, p99, max and count of its calls
(:class:`Units`).  Between two sides:

* the change of the median (and of the p99) is the change of the *median over units of
  each unit's median* (p99), in per cent of the "before" value;
* its 95% interval comes from a hierarchical percentile bootstrap
  (:func:`hierarchical_change_ci`): units are resampled with replacement, then the calls
  within each drawn unit, :data:`BOOTSTRAP_REPLICATES` times per side, seeded;
* the p-value is that of an exact rank test on the unit medians (:func:`rank_test`): the
  Mann-Whitney U statistic (mid-ranks for ties) against every way of splitting the pooled
  unit medians into the two sides, or :data:`PERMUTATIONS` random splits when there are
  more than :data:`EXACT_LIMIT`;
* p-values of the functions compared in one group are corrected by Holm's step-down
  method (:func:`holm`), and those of the latency tracers compared likewise;
* the verdict (:func:`verdict`): with fewer than :data:`MIN_UNITS` units on a side, or so
  few that even fully separated sides could not reach a corrected p below :data:`ALPHA`
  (:func:`units_needed`), there is none, only the numbers.  Otherwise *improvement* or *regression* when the corrected p is
  below :data:`ALPHA`, the median's interval excludes 0 and the median moved by at least
  :data:`MIN_EFFECT_PCT` per cent; *significant, below the 5% threshold* when the first two
  hold and the change is smaller; *no significant change* (``~``) otherwise.

Latency windows are compared the same way, each unit summarised by its worst window.

The pooled numbers of a side (n, median, p90, p99, p99.9, max, mean and stddev of all its
calls, :func:`side_stats`) describe the data; they decide nothing.  Percentiles interpolate
linearly between order statistics (Hyndman and Fan type 7, numpy's default).
docs/statistics.md says what each number of the report is drawn from.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field, replace
from itertools import combinations

import numpy as np

__all__ = [
    "ALPHA",
    "MIN_EFFECT_PCT",
    "MIN_UNITS",
    "BOOTSTRAP_REPLICATES",
    "PERMUTATIONS",
    "EXACT_LIMIT",
    "CONFIDENCE",
    "BASE_SEED",
    "IMPROVEMENT",
    "REGRESSION",
    "NO_CHANGE",
    "BELOW_THRESHOLD",
    "TOO_FEW",
    "SideStats",
    "Units",
    "UnitSummary",
    "Change",
    "side_stats",
    "percent_change",
    "rank_test",
    "min_p_value",
    "units_needed",
    "holm",
    "hierarchical_change_ci",
    "verdict",
    "compare_units",
    "decide",
    "row_seed",
]

#: Significance level, after Holm's correction.
ALPHA = 0.05
#: Smallest change of the median, in per cent of "before", that makes a regression or an
#: improvement; a significant change below it is reported as such.
MIN_EFFECT_PCT = 5.0
#: Fewest units (boots) per side for a verdict.  With one a side nothing separates the
#: patch from the boot; the rank test needs more still (:func:`units_needed`).
MIN_UNITS = 2
#: Bootstrap resamples, and the confidence level of the intervals.
BOOTSTRAP_REPLICATES = 2000
CONFIDENCE = 0.95
#: The rank test enumerates every split of the units when there are at most this many,
#: and draws this many random splits otherwise.
EXACT_LIMIT = 200_000
PERMUTATIONS = 20_000
#: Seed of the bootstrap and of the permutations; each row mixes in its group and function
#: (:func:`row_seed`), so a row's numbers do not depend on the other rows of the report.
BASE_SEED = 20070716

IMPROVEMENT = "improvement"
REGRESSION = "regression"
NO_CHANGE = "no significant change"
BELOW_THRESHOLD = f"significant, below the {MIN_EFFECT_PCT:g}% threshold"
TOO_FEW = "too few units"


@dataclass(frozen=True)
class SideStats:
    """Summary of all calls of one side, pooled, in ns (floats; None when n is 0)."""

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


def side_stats(dur_ns) -> SideStats:
    """Summarise the durations of one side (ns), every call pooled."""
    x = _clean(dur_ns)
    n = int(x.size)
    if n == 0:
        return SideStats(0, None, None, None, None, None, None, None)
    q = np.quantile(x, [0.5, 0.9, 0.99, 0.999])
    sd = float(np.std(x, ddof=1)) if n > 1 else 0.0
    return SideStats(n, float(q[0]), float(q[1]), float(q[2]), float(q[3]), float(x.max()), float(x.mean()), sd)


def _clean(values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).ravel()
    return a[np.isfinite(a)]


@dataclass(frozen=True)
class UnitSummary:
    """One unit's calls: how many, their median, p99 and max (ns)."""

    unit: str
    n: int
    median_ns: float
    p99_ns: float
    max_ns: float


@dataclass
class Units:
    """The values of one side grouped by unit: ``values[offsets[i]:offsets[i+1]]`` are the
    values of unit ``names[i]``, sorted."""

    names: list[str]
    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_arrays(cls, unit, values) -> "Units":
        """Group ``values`` by the parallel array ``unit`` (any hashable labels)."""
        v = np.asarray(values, dtype=np.float64)
        u = np.asarray(unit)
        keep = np.isfinite(v)
        v, u = v[keep], u[keep]
        if v.size == 0:
            return cls([], np.empty(0), np.zeros(1, dtype=np.int64))
        names, codes = np.unique(u, return_inverse=True)
        order = np.lexsort((v, codes))
        counts = np.bincount(codes, minlength=len(names))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls([str(x) for x in names], v[order], offsets)

    @classmethod
    def from_codes(cls, codes: np.ndarray, values: np.ndarray, names: dict[int, str]) -> "Units":
        """Group ``values`` by the parallel array of small non-negative integers ``codes``;
        ``names`` maps a code to its unit's name.  Integer durations below 2**44 ns (4.9
        hours) are sorted as one packed key, code in the high bits, which is many times
        faster than sorting pairs."""
        v = np.asarray(values)
        c = np.asarray(codes, dtype=np.int64)
        if v.dtype.kind in "iu" and v.size and int(v.min()) >= 0 and int(v.max()) < (1 << 44) and int(c.max()) < (1 << 19):
            key = np.sort((c << 44) | v.astype(np.int64))
            c, v = key >> 44, (key & ((1 << 44) - 1)).astype(np.float64)
        else:
            v = v.astype(np.float64)
            keep = np.isfinite(v)
            v, c = v[keep], c[keep]
            order = np.lexsort((v, c))
            v, c = v[order], c[order]
        starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]]) if c.size else np.empty(0, dtype=np.int64)
        offsets = np.append(starts, c.size).astype(np.int64)
        return cls([names[int(k)] for k in c[starts]], v, offsets)

    @classmethod
    def from_groups(cls, groups: dict[str, np.ndarray]) -> "Units":
        names = sorted(groups)
        parts = [np.sort(_clean(groups[k])) for k in names]
        keep = [i for i, p in enumerate(parts) if p.size]
        names, parts = [names[i] for i in keep], [parts[i] for i in keep]
        offsets = np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)
        return cls(names, np.concatenate(parts) if parts else np.empty(0), offsets)

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def quantile(self, q: float) -> np.ndarray:
        """Each unit's type-7 q-quantile, one value per unit."""
        n = self.sizes
        h = (n - 1) * q
        j = np.floor(h).astype(np.int64)
        frac = h - j
        lo = self.values[self.offsets[:-1] + j]
        hi = self.values[self.offsets[:-1] + np.minimum(j + 1, n - 1)]
        return lo + frac * (hi - lo)

    def summaries(self) -> list[UnitSummary]:
        med, p99 = self.quantile(0.5), self.quantile(0.99)
        mx = self.values[self.offsets[1:] - 1]
        return [UnitSummary(nm, int(k), float(a), float(b), float(c))
                for nm, k, a, b, c in zip(self.names, self.sizes, med, p99, mx)]


def percent_change(before: float | None, after: float | None) -> float | None:
    """(after - before) / before in per cent; None when before is 0 or either is missing."""
    if before is None or after is None or before == 0:
        return None
    return (after - before) / before * 100.0


def row_seed(*parts: str, base: int = BASE_SEED) -> int:
    """A stable seed for one report row (group, function, ...), independent of Python's
    per-process string hashing."""
    return (base ^ zlib.crc32("/".join(parts).encode())) & 0xFFFFFFFF


def midranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``x``, tied values sharing the mean of the ranks they span."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.append(starts[1:], xs.size)
    mean_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _u_statistic(ranks: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Mann-Whitney U of the first side for each row of ``first`` (indices into ranks)."""
    m = first.shape[-1]
    return ranks[first].sum(axis=-1) - m * (m + 1) / 2.0


def rank_test(before, after, *, seed: int = BASE_SEED) -> tuple[float | None, str]:
    """Two-sided rank test of two samples of unit summaries: the p-value and how it was
    computed.  The statistic is Mann-Whitney's U with mid-ranks for ties; its null
    distribution is that of U over every split of the pooled values into groups of the two
    sizes (exact, ties included), or over :data:`PERMUTATIONS` random splits (p counted
    as (1 + hits) / (1 + draws)) when there are more than :data:`EXACT_LIMIT`."""
    b, a = _clean(before), _clean(after)
    m, n = b.size, a.size
    if m == 0 or n == 0:
        return None, "none"
    ranks = midranks(np.concatenate([b, a]))
    centre = m * n / 2.0
    observed = abs(_u_statistic(ranks, np.arange(m)) - centre)
    eps = 1e-9
    if math.comb(m + n, m) <= EXACT_LIMIT:
        splits = np.array(list(combinations(range(m + n), m)), dtype=np.int64).reshape(-1, m)
        u = np.abs(_u_statistic(ranks, splits) - centre)
        return float(np.mean(u >= observed - eps)), "exact"
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, PERMUTATIONS, 2000):
        k = min(2000, PERMUTATIONS - start)
        perm = np.argsort(rng.random((k, m + n)), axis=1)[:, :m]
        hits += int(np.sum(np.abs(_u_statistic(ranks, perm) - centre) >= observed - eps))
    return (1 + hits) / (1 + PERMUTATIONS), f"permutation ({PERMUTATIONS} random splits)"


def min_p_value(m: int, n: int) -> float:
    """The smallest two-sided p the exact rank test can give with m and n units: two of the
    C(m+n, m) splits are as extreme as complete separation."""
    return min(1.0, 2.0 / math.comb(m + n, m))


def units_needed(tests: int = 1, alpha: float = ALPHA) -> int:
    """Units per side the rank test needs to reach p < alpha / tests even with the two
    sides fully separated: 4 a side for one test at 0.05, 6 for nine (Holm's first step)."""
    k = MIN_UNITS
    while min_p_value(k, k) >= alpha / max(tests, 1):
        k += 1
    return k


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment: the i-th smallest of m p-values becomes
    max over j <= i of min(1, (m - j + 1) p_(j)).  None stays None and does not count."""
    idx = [i for i, p in enumerate(p_values) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def _draw_unit_quantiles(u: Units, q: float, reps: int, rng: np.random.Generator) -> np.ndarray:
    """One hierarchical resample per row: units drawn with replacement, then each drawn
    unit's q-quantile of a resample of its own calls, shape (reps, units).

    The within-unit resample is never materialised: a resample of n values from the sorted
    sample xs is xs[floor(n U_i)] for iid uniform U_i, a monotone map, so its j-th order
    statistic (1-based) is xs[floor(n U_(j))], and U_(j) follows Beta(j, n + 1 - j).  The
    type-7 quantile also needs the next order statistic: given U_(j) = v, the other n - j
    uniforms are iid on (v, 1), so U_(j+1) = v + (1 - v) B with B ~ Beta(1, n - j).  The
    cost is that of the units drawn, whatever the number of calls."""
    picks = rng.integers(0, u.count, size=(reps, u.count))
    n = u.sizes[picks]
    base = u.offsets[:-1][picks]
    h = (n - 1) * q
    j = np.floor(h).astype(np.int64)
    frac = h - j
    u1 = rng.beta(j + 1, n - j)
    val = u.values[base + np.minimum((n * u1).astype(np.int64), n - 1)]
    nxt = (frac > 0) & (j + 1 < n)
    u2 = u1 + (1.0 - u1) * rng.beta(1, np.maximum(n - j - 1, 1))
    val2 = u.values[base + np.minimum((n * u2).astype(np.int64), n - 1)]
    return np.where(nxt, val + frac * (val2 - val), val)


def hierarchical_change_ci(
    before: Units,
    after: Units,
    *,
    seed: int = BASE_SEED,
    reps: int = BOOTSTRAP_REPLICATES,
    confidence: float = CONFIDENCE,
) -> dict[str, tuple[float, float] | None]:
    """Percentile-bootstrap intervals of the per-cent change of the median over units of
    each unit's median, and of each unit's p99 (``{"median": (lo, hi), "p99": ...}``).

    Each replicate resamples each side hierarchically (:func:`_draw_unit_quantiles`) and
    gives (s_after* - s_before*) / s_before* * 100, s being the median over the drawn
    units; the interval is the central ``confidence`` part of the replicates.  None where
    a side has no unit or the before statistic is 0 in more than a tenth of them."""
    if before.count == 0 or after.count == 0:
        return {"median": None, "p99": None}
    rng = np.random.default_rng(seed)
    tail = (1.0 - confidence) / 2.0 * 100.0
    out: dict[str, tuple[float, float] | None] = {}
    for name, q in (("median", 0.5), ("p99", 0.99)):
        sb = np.median(_draw_unit_quantiles(before, q, reps, rng), axis=1)
        sa = np.median(_draw_unit_quantiles(after, q, reps, rng), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ch = (sa - sb) / sb * 100.0
        ch = ch[np.isfinite(ch)]
        if ch.size < reps * 0.9:
            out[name] = None
            continue
        lo, hi = np.percentile(ch, [tail, 100.0 - tail])
        out[name] = (float(lo), float(hi))
    return out


@dataclass
class Change:
    """How one side differs from the baseline, from the units of both.

    ``median_pct`` / ``p99_pct``: change of the median over units of each unit's median
    (p99), in per cent of the baseline value; ``*_ci``: its hierarchical-bootstrap 95%
    interval (None with fewer than :data:`MIN_UNITS` units a side).  ``p_value``: the rank
    test on the unit medians; ``p_adjusted``: after Holm's correction over the
    ``tests`` rows of its family.  ``units_needed``: units a side that would let a verdict
    be drawn at all with that many tests."""

    units_before: int
    units_after: int
    unit_median_before_ns: float | None
    unit_median_after_ns: float | None
    median_pct: float | None
    median_ci: tuple[float, float] | None
    p99_pct: float | None
    p99_ci: tuple[float, float] | None
    p_value: float | None
    test: str
    p_adjusted: float | None = None
    tests: int = 1
    compared: int = 1  # rows of the family, with or without a test
    verdict: str = TOO_FEW
    units_needed: int = field(default_factory=units_needed)

    @property
    def significant(self) -> bool:
        return self.verdict in (IMPROVEMENT, REGRESSION, BELOW_THRESHOLD)

    @property
    def has_verdict(self) -> bool:
        return self.verdict != TOO_FEW

    def as_dict(self) -> dict:
        d = asdict(self)
        d["median_ci"] = list(self.median_ci) if self.median_ci else None
        d["p99_ci"] = list(self.p99_ci) if self.p99_ci else None
        d["significant"] = self.significant
        return d


def verdict(
    units_before: int,
    units_after: int,
    median_pct: float | None,
    median_ci: tuple[float, float] | None,
    p_adjusted: float | None,
    *,
    tests: int = 1,
    alpha: float = ALPHA,
    min_effect_pct: float = MIN_EFFECT_PCT,
) -> str:
    """The verdict of one row (see the module docstring for the rule).  Too few units also
    when even fully separated sides could not pass Holm's first step over ``tests`` rows:
    then "no significant change" would only say that the test had no power."""
    if units_before < MIN_UNITS or units_after < MIN_UNITS:
        return TOO_FEW
    if min_p_value(units_before, units_after) * max(tests, 1) >= alpha:
        return TOO_FEW
    if median_pct is None or median_ci is None or p_adjusted is None:
        return NO_CHANGE
    lo, hi = median_ci
    if not (p_adjusted < alpha and (lo > 0 or hi < 0)):
        return NO_CHANGE
    if abs(median_pct) < min_effect_pct:
        return BELOW_THRESHOLD
    return REGRESSION if median_pct > 0 else IMPROVEMENT


def compare_units(before: Units, after: Units, *, seed: int = BASE_SEED) -> Change:
    """The change from ``before`` to ``after`` before any correction: point estimates,
    intervals and the rank test's p (the verdict is drawn by :func:`decide`)."""
    mb = float(np.median(before.quantile(0.5))) if before.count else None
    ma = float(np.median(after.quantile(0.5))) if after.count else None
    pb = float(np.median(before.quantile(0.99))) if before.count else None
    pa = float(np.median(after.quantile(0.99))) if after.count else None
    enough = before.count >= MIN_UNITS and after.count >= MIN_UNITS
    ci = hierarchical_change_ci(before, after, seed=seed) if enough else {"median": None, "p99": None}
    p, how = rank_test(before.quantile(0.5), after.quantile(0.5), seed=seed) if enough else (None, "none")
    return Change(before.count, after.count, mb, ma, percent_change(mb, ma), ci["median"],
                  percent_change(pb, pa), ci["p99"], p, how)


def decide(changes: list[Change]) -> list[Change]:
    """Correct the p-values of one family of rows (Holm) and draw each row's verdict."""
    adjusted = holm([c.p_value for c in changes])
    tests = sum(p is not None for p in adjusted)
    need = units_needed(len(changes))
    return [
        replace(c, p_adjusted=pa, tests=tests, compared=len(changes), units_needed=need,
                verdict=verdict(c.units_before, c.units_after, c.median_pct, c.median_ci, pa, tests=tests))
        for c, pa in zip(changes, adjusted)
    ]
