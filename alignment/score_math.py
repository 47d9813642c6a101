"""The statistics behind the alignment scores, as pure functions over rollup sums.

The rollup keeps, for any group of data points on the 0-100 scale, ``n``, ``total`` (sum) and
``sumsq`` (sum of squares), and for yes/no facts ``top`` / ``bottom`` counts. Everything here is
computed from those sums, never from the data points themselves.

**Weighted means (reliability and category weights).** A group ``g`` of ``n_g`` points with sum
``t_g`` and sum of squares ``q_g`` may carry a weight ``w_g`` (the weight of the interaction
category the points came from). Then

    W = Σ w_g n_g,    mean = Σ w_g t_g / W,
    SS = Σ w_g (q_g - 2·mean·t_g + mean²·n_g)            (weighted squared deviations)
    n_eff = W² / Σ w_g² n_g                               (Kish's effective sample size)
    s² = SS / W · n_eff / (n_eff - 1),   SE = max(s, S_FLOOR) / √n_eff

and the 95 % interval is ``mean ± t(0.975, n_eff - 1) · SE`` clipped to 0-100, with Student's t
(learning.effectiveness.t_quantile), so 3 points get a multiplier of 4.3 where 300 get 1.97.
The spread is floored at ``S_FLOOR`` points: three identical answers do not prove a score exact.
Fewer than 2 effective points say nothing about spread: the interval is the whole 0-100.

**Proportions** (completions on time, gaps followed by training, …): p = top / (top + bottom)
(weighted like a mean when groups carry weights) with the **Wilson score interval** at 95 %
on the effective sample size, which stays inside 0-1 and behaves at p = 0 or 1 and small n.

**Reliability of a per-standard figure.** Where a link averages per-standard figures, a
standard resting on few points counts less: its weight is multiplied by its reliability
``r = n_eff / (n_eff + RELIABILITY_K)`` — the reliability of a mean of n points when the
between-standard share of variance is 1 / (1 + K) (K = 10: a standard with 10 points counts half,
with 90 points 90 %). The combined interval propagates each standard's SE: SE² = Σ v² SE_s² / (Σ v)².

**Before vs after** (link 4): the *common-language effect size* (McGraw & Wong 1992),
CL = Φ(Δ / √(s_a² + s_b²)), the probability that a random point after training beats a random
point before it: 50 = no change, 100 = every point after is better. Δ's uncertainty is Welch's
(SE² = s_a²/n_a + s_b²/n_b); the interval maps Δ ± t·SE through the same Φ.

**Correlation** (link 5): Spearman's rank correlation (average ranks for ties; robust to the skew
of points), with the Fisher-z interval using Fieller, Hartley & Pearson's variance 1.06 / (m - 3)
for rank correlations; it needs at least ``MIN_MEMBERS`` members.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

from learning.effectiveness import t_quantile

Z95 = NormalDist().inv_cdf(0.975)
S_FLOOR = 5.0
RELIABILITY_K = 10.0
MIN_MEMBERS = 5
_PHI = NormalDist()


@dataclass
class Agg:
    """Sums of one group of data points (a slice of rollup rows)."""

    n: float = 0
    total: float = 0.0
    sumsq: float = 0.0
    top: float = 0
    bottom: float = 0

    def add(self, n=0, total=0, sumsq=0, top=0, bottom=0) -> Agg:
        # Database sums arrive as Decimal (numeric); everything here is int or float.
        self.n += int(n)
        self.total += float(total)
        self.sumsq += float(sumsq)
        self.top += int(top)
        self.bottom += int(bottom)
        return self

    def merge(self, other: Agg) -> Agg:
        return self.add(other.n, other.total, other.sumsq, other.top, other.bottom)

    def as_tuple(self) -> tuple:
        return (self.n, round(self.total, 4), round(self.sumsq, 4), self.top, self.bottom)


@dataclass(frozen=True)
class Estimate:
    """A figure on 0-100 with its 95 % interval and what it rests on."""

    value: float | None
    low: float | None
    high: float | None
    n: float  # data points (unweighted)
    n_eff: float = 0.0
    se: float | None = None
    sd: float | None = None  # spread of single points, where meaningful
    exact: bool = False  # a census of reference data: no sampling error

    @property
    def ok(self) -> bool:
        return self.value is not None


NONE = Estimate(None, None, None, 0)


def clip(x: float, lo: float = 0.0, hi: float = 100.0) -> float:
    return max(lo, min(hi, x))


def weighted_mean(groups: Iterable[tuple[float, Agg]]) -> Estimate:
    """Weighted mean of 0-100 points from ``(weight, sums)`` groups, with its t interval."""
    groups = [(float(w), a) for w, a in groups if a.n and w > 0]
    n = sum(a.n for _, a in groups)
    weight = sum(w * a.n for w, a in groups)
    if not groups or weight <= 0:
        return Estimate(None, None, None, n)
    mean = sum(w * a.total for w, a in groups) / weight
    ss = sum(w * (a.sumsq - 2 * mean * a.total + mean * mean * a.n) for w, a in groups)
    n_eff = weight * weight / sum(w * w * a.n for w, a in groups)
    mean = clip(mean)
    if n_eff < 2:
        return Estimate(mean, 0.0, 100.0, n, n_eff, None, None)
    s2 = max(ss, 0.0) / weight * n_eff / (n_eff - 1)
    sd = math.sqrt(s2)
    se = max(sd, S_FLOOR) / math.sqrt(n_eff)
    half = t_quantile(0.975, n_eff - 1) * se
    return Estimate(mean, clip(mean - half), clip(mean + half), n, n_eff, se, sd)


def wilson(hits: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (0-1)."""
    if n <= 0:
        return 0.0, 1.0
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(groups: Iterable[tuple[float, float, float]]) -> Estimate:
    """Weighted share (0-100) from ``(weight, hits, trials)`` groups, with a Wilson interval."""
    groups = [(float(w), h, m) for w, h, m in groups if m and w > 0]
    trials = sum(m for _, _, m in groups)
    weight = sum(w * m for w, _, m in groups)
    if not groups or weight <= 0:
        return Estimate(None, None, None, trials)
    p = sum(w * h for w, h, _ in groups) / weight
    n_eff = weight * weight / sum(w * w * m for w, _, m in groups)
    lo, hi = wilson(p * n_eff, n_eff)
    se = math.sqrt(p * (1 - p) / n_eff) * 100 if n_eff else None
    return Estimate(100 * p, 100 * lo, 100 * hi, trials, n_eff, se, None)


def exact(value: float | None, n: float) -> Estimate:
    """A census figure (coverage of reference data): no sampling error."""
    if value is None:
        return Estimate(None, None, None, n)
    return Estimate(clip(value), clip(value), clip(value), n, n, 0.0, None, exact=True)


def reliability(n_eff: float, k: float = RELIABILITY_K) -> float:
    return n_eff / (n_eff + k) if n_eff > 0 else 0.0


def combine_independent(parts: Sequence[tuple[float, Estimate]]) -> Estimate:
    """Weighted mean of independent estimates (per-standard figures), SEs propagated."""
    parts = [(float(v), e) for v, e in parts if e.ok and v > 0]
    if not parts:
        return NONE
    total = sum(v for v, _ in parts)
    value = sum(v * e.value for v, e in parts) / total
    var = sum((v * (e.se if e.se is not None else 50.0)) ** 2 for v, e in parts) / total**2
    n = sum(e.n for _, e in parts)
    n_eff = sum(e.n_eff for _, e in parts)
    se = math.sqrt(var)
    mult = t_quantile(0.975, n_eff - 1) if n_eff >= 2 else 12.71
    return Estimate(clip(value), clip(value - mult * se), clip(value + mult * se), n, n_eff, se, None)


def combine_bounds(parts: Sequence[tuple[float, Estimate]], *, weakest: bool) -> Estimate:
    """Weighted mean of estimates of *different* things (components of a link, links of the overall).

    Their errors may be correlated, so the bounds are the weighted means of the bounds — never
    narrower than the components justify. ``n``: with ``weakest`` the smallest sample among the
    sampled parts (the links of the overall: each is a separate claim, and the weakest decides
    how far the whole can be trusted), otherwise their sum (the parts of one link are evidence
    on the same question). Census parts count only when nothing was sampled.
    """
    parts = [(float(v), e) for v, e in parts if e.ok and v > 0]
    if not parts:
        return NONE
    total = sum(v for v, _ in parts)
    value = sum(v * e.value for v, e in parts) / total
    low = sum(v * e.low for v, e in parts) / total
    high = sum(v * e.high for v, e in parts) / total
    sampled = [e for _, e in parts if not e.exact]
    if not sampled:
        n = sum(e.n for _, e in parts)
    else:
        n = min(e.n for e in sampled) if weakest else sum(e.n for e in sampled)
    return Estimate(clip(value), clip(low), clip(high), n, exact=not sampled)


def common_language(before: Estimate, after: Estimate, drift: float = 0.0) -> Estimate:
    """P(random point after > random point before) x 100, drift-corrected, with a Welch interval."""
    if not (before.ok and after.ok) or before.n_eff < 2 or after.n_eff < 2:
        return NONE
    sb = max(before.sd or 0.0, S_FLOOR)
    sa = max(after.sd or 0.0, S_FLOOR)
    spread = math.sqrt(sa * sa + sb * sb)
    delta = after.value - before.value - drift
    se = math.sqrt(sa * sa / after.n_eff + sb * sb / before.n_eff)
    # Welch-Satterthwaite degrees of freedom for the difference.
    va, vb = sa * sa / after.n_eff, sb * sb / before.n_eff
    df = (va + vb) ** 2 / (va * va / (after.n_eff - 1) + vb * vb / (before.n_eff - 1))
    half = t_quantile(0.975, df) * se
    value = 100 * _PHI.cdf(delta / spread)
    low = 100 * _PHI.cdf((delta - half) / spread)
    high = 100 * _PHI.cdf((delta + half) / spread)
    # SE of CL by the delta method, for combining standards.
    se_cl = 100 * _PHI.pdf(delta / spread) * se / spread
    n_diff = 1 / (1 / after.n_eff + 1 / before.n_eff)
    return Estimate(value, low, high, before.n + after.n, n_diff, se_cl, None)


def ranks(values: Sequence[float]) -> list[float]:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            out[order[k]] = rank
        i = j + 1
    return out


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    m = len(xs)
    if m < 2:
        return None
    mx, my = sum(xs) / m, sum(ys) / m
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / math.sqrt(sxx * syy)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """(rho, low, high): Spearman's rank correlation with a Fisher-z 95 % interval."""
    m = len(xs)
    if m < MIN_MEMBERS:
        return None, None, None
    rho = pearson(ranks(xs), ranks(ys))
    if rho is None:
        return None, None, None
    r = max(-0.999999, min(0.999999, rho))
    se = math.sqrt(1.06 / (m - 3))
    z = math.atanh(r)
    return rho, math.tanh(z - Z95 * se), math.tanh(z + Z95 * se)
