"""Ranking of locations with confidence: who is really ahead, and who has too little data to say.

Method (also shown on the executive and region dashboards):

1. **The figure** of each location over the dashboard's filters, read from the rollup (never raw
   responses): NPS (% promoters - % detractors), CSAT and FCR (% top box / % yes), CES (mean,
   1-7, 7 = easy), audit and monitoring score (mean, 0-100), or the overall alignment score of
   the period (``AlignmentScore``, link ``overall``; its own interval and sample as stored).
   ``n`` is the figure's sample: answers, audits, evaluations; for alignment the score's ``n``.
2. **A 95 % interval** around it, by the figure's kind:

   - *NPS*: each answer is +1 (promoter), 0 or -1 (detractor), so the variance of one answer is
     ``p + q - (p - q)²`` (p, q: promoter and detractor shares). The spread is taken with one
     pseudo-answer added to each of the three groups (``(top+1)/(n+3)`` …), so three promoters out
     of three do not get a zero-width interval; the centre stays the plain NPS the dashboards
     show. Half-width ``1.96 · 100 · √(var / n)``, clipped to -100 … 100.
   - *CSAT, FCR* (shares): the Wilson score interval, which stays inside 0-100 and behaves at
     small n and at 0 % / 100 %.
   - *CES, audit, monitoring* (means): mean ± t(0.975, n-1) · s / √n with the sample standard
     deviation ``s`` from the rollup's sum of squares; clipped to the scale. One value gives no
     spread: the interval is the whole scale.

3. **Ranked only with enough data**: locations whose ``n`` is below the organization's minimum
   sample (``AlignmentSettings.min_sample``, 30 when the organization has not set one) are listed
   after the ranking as "not ranked — n below minimum", with their figure and interval, never
   given a rank. A store with 3 responses therefore never sits above one with 300.
4. **Order and ties**: ranked locations sort by figure (higher is better for every figure here),
   then by larger ``n``. Equal figures at the shown precision (one decimal) share a rank
   (competition ranking: 1, 2, 2, 4) and are marked tied. Each ranked row also lists the ranks
   whose interval overlaps its own: overlapping intervals mean the data cannot tell the two apart
   at 95 %, so "#2" and "#3" with overlapping intervals are shown as statistically level.
   (Overlap is a conservative test — two intervals can overlap slightly while the difference is
   still significant — which errs on the side of not over-reading a ranking.)

Only locations in the viewer's scope are read or listed (``alignment.scope_selectors``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from statistics import NormalDist

from alignment.models import Measure

CONFIDENCE = 0.95
Z = NormalDist().inv_cdf(1 - (1 - CONFIDENCE) / 2)  # 1.96
DEFAULT_MIN_SAMPLE = 30
DISPLAY_PLACES = 1

NPS, SHARE, MEAN, SCORE = "nps", "share", "mean", "score"


@dataclass(frozen=True)
class RankMetric:
    key: str
    label: str
    kind: str
    measure: str | None  # None: read from AlignmentScore
    low: float
    high: float
    sample_label: str

    def as_dict(self) -> dict:
        return {"key": self.key, "label": self.label, "range": [self.low, self.high]}


RANK_METRICS = {
    m.key: m
    for m in (
        RankMetric("nps", "NPS", NPS, Measure.NPS, -100, 100, "answers"),
        RankMetric("csat", "CSAT (% top two boxes)", SHARE, Measure.CSAT, 0, 100, "answers"),
        RankMetric("ces", "CES (mean, 7 = easy)", MEAN, Measure.CES, 1, 7, "answers"),
        RankMetric("fcr", "FCR (% resolved first time)", SHARE, Measure.FCR, 0, 100, "answers"),
        RankMetric("audit", "Audit score", MEAN, Measure.AUDIT, 0, 100, "audits"),
        RankMetric("monitoring", "Monitoring score", MEAN, Measure.MONITORING, 0, 100, "evaluations"),
        RankMetric("alignment", "Overall alignment", SCORE, None, 0, 100, "data points"),
    )
}
DEFAULT_METRIC = "nps"


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None
    high: float | None
    n: int


def t_quantile(df: int) -> float:
    """Two-sided 95 % Student t quantile: exact for df 1-2, Cornish-Fisher (within 0.01) above."""
    if df <= 0:
        return math.inf
    if df == 1:
        return 12.7062
    if df == 2:
        return 4.3027
    z = Z
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def _clip(x: float, low: float, high: float) -> float:
    return float(max(low, min(high, x)))


def nps_interval(*, n: int, promoters: int, detractors: int) -> Estimate:
    if not n:
        return Estimate(None, None, None, 0)
    value = 100 * (promoters - detractors) / n
    p, q = (promoters + 1) / (n + 3), (detractors + 1) / (n + 3)
    half = Z * 100 * math.sqrt(max(p + q - (p - q) ** 2, 0) / n)
    return Estimate(value, _clip(value - half, -100, 100), _clip(value + half, -100, 100), n)


def wilson_interval(*, n: int, hits: int) -> Estimate:
    if not n:
        return Estimate(None, None, None, 0)
    p = hits / n
    denom = 1 + Z**2 / n
    centre = (p + Z**2 / (2 * n)) / denom
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n)) / denom
    return Estimate(100 * p, _clip(100 * (centre - half), 0, 100), _clip(100 * (centre + half), 0, 100), n)


def mean_interval(*, n: int, total, sumsq, low: float, high: float) -> Estimate:
    if not n:
        return Estimate(None, None, None, 0)
    total, sumsq = float(total or 0), float(sumsq or 0)
    mean = total / n
    if n == 1:
        return Estimate(mean, low, high, 1)
    variance = max((sumsq - total * total / n) / (n - 1), 0.0)
    half = t_quantile(n - 1) * math.sqrt(variance / n)
    return Estimate(mean, _clip(mean - half, low, high), _clip(mean + half, low, high), n)


def estimate(metric: RankMetric, sums) -> Estimate:
    """The figure and its interval from summed rollup values (``n, total, sumsq, top, bottom``)."""
    if sums is None:
        return Estimate(None, None, None, 0)
    if metric.kind == NPS:
        return nps_interval(n=sums.n, promoters=sums.top, detractors=sums.bottom)
    if metric.kind == SHARE:
        return wilson_interval(n=sums.n, hits=sums.top)
    if metric.kind == MEAN:
        return mean_interval(n=sums.n, total=sums.total, sumsq=sums.sumsq, low=metric.low, high=metric.high)
    raise ValueError(f"{metric.key} is not read from the rollup")


def score_estimate(score) -> Estimate:
    """An AlignmentScore row as an estimate (its stored interval; the whole scale when it has none)."""
    if score is None or score.value is None:
        return Estimate(None, None, None, getattr(score, "n", 0) or 0)

    def f(x: Decimal | None, default: float) -> float:
        return default if x is None else float(x)

    return Estimate(float(score.value), f(score.low, 0.0), f(score.high, 100.0), score.n)


@dataclass
class RankedRow:
    location_id: int
    location: str
    region_id: int | None
    region: str
    value: float | None
    low: float | None
    high: float | None
    n: int
    rank: int | None = None
    tied: bool = False
    overlaps: list[int] = field(default_factory=list)
    note: str = ""

    @property
    def ranked(self) -> bool:
        return self.rank is not None

    def as_dict(self) -> dict:
        out = asdict(self)
        for key in ("value", "low", "high"):
            if out[key] is not None:
                out[key] = round(out[key], 2)
        out["ranked"] = self.ranked
        return out


@dataclass
class Ranking:
    metric: RankMetric
    min_sample: int
    rows: list[RankedRow]

    @property
    def ranked(self) -> list[RankedRow]:
        return [r for r in self.rows if r.ranked]

    @property
    def unranked(self) -> list[RankedRow]:
        return [r for r in self.rows if not r.ranked]

    def as_dict(self) -> dict:
        return {
            "metric": self.metric.as_dict(),
            "confidence": CONFIDENCE,
            "min_sample": self.min_sample,
            "results": [r.as_dict() for r in self.rows],
        }


def _shown(value: float) -> float:
    return round(value, DISPLAY_PLACES)


def rank(metric: RankMetric, rows: list[RankedRow], *, min_sample: int) -> Ranking:
    """Rank rows with at least ``min_sample``; mark ties and overlapping intervals; list the rest."""
    eligible = [r for r in rows if r.value is not None and r.n >= min_sample]
    others = [r for r in rows if r not in eligible]
    eligible.sort(key=lambda r: (-_shown(r.value), -r.n, r.location, r.location_id))
    for position, row in enumerate(eligible, start=1):
        previous = eligible[position - 2] if position > 1 else None
        if previous is not None and _shown(previous.value) == _shown(row.value):
            row.rank, row.tied, previous.tied = previous.rank, True, True
        else:
            row.rank = position
    for row in eligible:
        row.overlaps = sorted(
            {
                other.rank
                for other in eligible
                if other is not row and other.low <= row.high and row.low <= other.high
            }
        )
    for row in others:
        if row.n == 0 or row.value is None:
            row.note = "not ranked — no data"
        else:
            row.note = f"not ranked — n below minimum ({row.n} < {min_sample})"
    others.sort(key=lambda r: (-r.n, r.location, r.location_id))
    return Ranking(metric=metric, min_sample=min_sample, rows=eligible + others)
