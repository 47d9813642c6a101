"""The exact definitions of the feedback metrics, as pure functions.

Definitions (every figure comes with its sample size ``n``):

- **NPS** (0-10): % promoters (9-10) - % detractors (0-6); range -100 … 100.
- **CSAT** (1-5): % of answers in the top two boxes (4 or 5); range 0 … 100.
- **CES** (1-7): the mean score; range 1 … 7.
- **FCR** (stored 1 yes / 0 no): % yes; range 0 … 100.

Skipped or unanswered questions (``None``) are not in the denominator: ``n`` counts answered
questions only. An empty set has no value — ``None`` (JSON null), never 0, because "no data"
and "a score of zero" must never look alike on a dashboard. Values are rounded to two decimals
half-up (-16.665 → -16.67, away from zero at ties) with Decimal, so no binary-float drift makes
the API and the page disagree in the last digit.

The SQL side (feedback.selectors) counts in the database and hands the counts to the
``*_from_counts`` functions here, so both sides round the same way by construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

TWO_PLACES = Decimal("0.01")

PROMOTER_MIN = 9
DETRACTOR_MAX = 6
CSAT_TOP_BOX_MIN = 4
FCR_YES = 1

METRICS = ("nps", "csat", "ces", "fcr")


@dataclass(frozen=True)
class Metric:
    value: Decimal | None
    n: int

    def as_dict(self) -> dict:
        return {"value": None if self.value is None else float(self.value), "n": self.n}


def _round(value: Decimal) -> Decimal:
    return value.quantize(TWO_PLACES, rounding=ROUND_HALF_UP)


def _ratio(numerator: int | Decimal, denominator: int) -> Decimal:
    # Decimal division keeps 28 significant digits; a quotient k/n with n < 10^12 can only sit
    # on a rounding tie exactly, never within 10^-26 of one, so quantizing afterwards is exact.
    return _round(Decimal(numerator) / Decimal(denominator))


def _answered(values: Iterable) -> list[Decimal]:
    return [Decimal(str(v)) for v in values if v is not None]


# --- from counts (what the database returns) ---------------------------------------------------


def nps_from_counts(*, promoters: int, detractors: int, n: int) -> Metric:
    if not n:
        return Metric(None, 0)
    return Metric(_ratio(100 * (promoters - detractors), n), n)


def percent_from_counts(*, hits: int, n: int) -> Metric:
    if not n:
        return Metric(None, 0)
    return Metric(_ratio(100 * hits, n), n)


def mean_from_sum(*, total: Decimal | int | None, n: int) -> Metric:
    if not n:
        return Metric(None, 0)
    return Metric(_ratio(Decimal(total or 0), n), n)


# --- from values (None = skipped) -------------------------------------------------------------


def nps(scores: Iterable) -> Metric:
    answered = _answered(scores)
    return nps_from_counts(
        promoters=sum(1 for s in answered if s >= PROMOTER_MIN),
        detractors=sum(1 for s in answered if s <= DETRACTOR_MAX),
        n=len(answered),
    )


def csat(scores: Iterable) -> Metric:
    answered = _answered(scores)
    return percent_from_counts(hits=sum(1 for s in answered if s >= CSAT_TOP_BOX_MIN), n=len(answered))


def ces(scores: Iterable) -> Metric:
    answered = _answered(scores)
    return mean_from_sum(total=sum(answered, Decimal(0)), n=len(answered))


def fcr(values: Iterable) -> Metric:
    answered = _answered(values)
    return percent_from_counts(hits=sum(1 for v in answered if v == FCR_YES), n=len(answered))


def compute(metric: str, values: Iterable) -> Metric:
    return {"nps": nps, "csat": csat, "ces": ces, "fcr": fcr}[metric](values)
