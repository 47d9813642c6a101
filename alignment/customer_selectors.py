"""Experience data joined to CRM data: how customers split by a CRM condition rated each standard.

"Customers whose average purchase was under 100 rated Greeting 2.0/5 (n=14) vs 4.3/5 (n=52) for
the rest." The respondents of a period are split by one condition:

- **amount**: each customer's purchases in the same period (``CustomerTransaction.occurred_on``
  within the period's dates) summarised by ``basis`` — ``average`` (mean purchase, the default),
  ``total`` (spend in the period) or ``max`` (largest purchase, so "under X" means every purchase
  was) — compared with the threshold: under it is the group, at or above it is the rest;
- **segment**: the customer's segment *now* (``Customer.segment``, as the segment rules last set
  it): in the segment is the group, every other known customer is the rest.

Answers without a customer (anonymous links, the widget) or of customers with no purchase in the
period belong to neither side and are counted as ``unmatched``. The answers are those linked to a
standard (``Answer.standard``) submitted in the period whose type has a scale (NPS, CSAT, CES,
FCR, rating), read through the caller's scope (a store manager sees their store's answers; the
CRM side of the split is the customer's, wherever they bought).

Per standard and side the mean is given on 0-100 (each answer mapped from its scale as in
``feedback.selectors.standard_points``) and, when every answer on the standard shares one scale,
on that scale ("2.0/5"). The difference of the 0-100 means carries a Welch 95 % interval (normal
approximation); ``enough_data`` is false while either side has fewer answers than the
organization's minimum sample (``AlignmentSettings.min_sample``).

One aggregate query answers all standards: answers (index ``answer_org_std_submitted``, bounded by
the period, at most 366 days) joined to their response for the customer, grouped by standard,
side and scale, with the split as a semi-join on the period's transactions grouped per customer
(index ``crm_tx_org_customer``) — never a loop over customers.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.db.models import Avg, Case, CharField, Count, F, Max, Subquery, Sum, When
from django.db.models import Value as V

from alignment.models import AlignmentSettings, CustomerTransaction
from cem.models import Segment, Standard
from cem.params import id_of
from feedback.models import Answer
from feedback.selectors import GAP_TYPES, Caller, gap_scale, org_tz

BASES = {"average": "average purchase", "total": "total spend", "max": "largest purchase"}
_AGGREGATES = {"average": Avg, "total": Sum, "max": Max}
DEFAULT_DAYS = 90
MAX_DAYS = 366
DEFAULT_MIN_SAMPLE = 30


class ComparisonQueryError(ValueError):
    """Bad input naming the parameter at fault (pages and the API answer 400 with it)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True)
class ComparisonQuery:
    split: str = "amount"  # amount | segment
    basis: str = "average"
    threshold: Decimal = Decimal(100)
    segment: Segment | None = None
    start: dt.date | None = None  # inclusive, the organization's local dates
    end: dt.date | None = None  # inclusive
    standard_ids: tuple[int, ...] = field(default_factory=tuple)

    @property
    def group_label(self) -> str:
        if self.split == "segment":
            return f"Customers in {self.segment.name}"
        return f"Customers whose {BASES[self.basis]} was under {_amount(self.threshold)}"

    @property
    def rest_label(self) -> str:
        if self.split == "segment":
            return "other customers"
        return f"{BASES[self.basis]} {_amount(self.threshold)} or more"

    def as_params(self) -> dict:
        out = {"split": self.split, "from": self.start.isoformat(), "to": self.end.isoformat()}
        if self.split == "segment":
            out["segment"] = self.segment.pk
        else:
            out.update(basis=self.basis, amount_lt=str(self.threshold))
        if self.standard_ids:
            out["standard"] = ",".join(map(str, self.standard_ids))
        return out


def _amount(value: Decimal) -> str:
    return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.2f}"


def _date(params, name: str) -> dt.date | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ComparisonQueryError(name, "Must be a date (YYYY-MM-DD).") from None


def parse_comparison_query(params, organization, *, today: dt.date | None = None) -> ComparisonQuery:
    """The comparison asked for by query parameters: split, basis, amount_lt, segment, from, to,
    standard (ids, comma-separated). Defaults: the amount split at 100 on the average purchase,
    over the last 90 days."""
    today = today or dt.datetime.now(org_tz(organization)).date()
    split = (params.get("split") or ("segment" if params.get("segment") else "amount")).strip()
    if split not in ("amount", "segment"):
        raise ComparisonQueryError("split", "Must be amount or segment.")
    end = _date(params, "to") or today
    start = _date(params, "from") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise ComparisonQueryError("from", "Must not be after to.")
    if (end - start).days + 1 > MAX_DAYS:
        raise ComparisonQueryError("from", f"The period may span at most {MAX_DAYS} days.")
    standard_ids = []
    for part in (params.get("standard") or "").split(","):
        if part.strip():
            ident = id_of(part)
            if ident is None:
                raise ComparisonQueryError("standard", "Must be standard ids, comma-separated.")
            standard_ids.append(ident)
    base = {"start": start, "end": end, "standard_ids": tuple(sorted(set(standard_ids)))}
    if split == "segment":
        ident = id_of(params.get("segment"))
        segment = Segment.objects.filter(pk=ident).first() if ident is not None else None
        if segment is None:
            raise ComparisonQueryError("segment", "Name one of your segments by id.")
        return ComparisonQuery(split="segment", segment=segment, **base)
    basis = (params.get("basis") or "average").strip()
    if basis not in BASES:
        raise ComparisonQueryError("basis", f"Must be one of {', '.join(BASES)}.")
    raw = (params.get("amount_lt") or "100").strip()
    try:
        threshold = Decimal(raw)
        if not threshold.is_finite() or not 0 < threshold < Decimal("10000000000"):
            raise InvalidOperation
    except InvalidOperation:
        raise ComparisonQueryError("amount_lt", "Must be a positive amount.") from None
    return ComparisonQuery(split="amount", basis=basis, threshold=threshold, **base)


def _side(query: ComparisonQuery):
    """The SQL expression putting each answer in "group", "rest" or "unmatched"."""
    if query.split == "segment":
        return Case(
            When(response__customer__segment_id=query.segment.pk, then=V("group")),
            When(response__customer_id__isnull=False, then=V("rest")),
            default=V("unmatched"),
            output_field=CharField(),
        )
    per_customer = (
        CustomerTransaction.objects.filter(occurred_on__gte=query.start, occurred_on__lte=query.end)
        .order_by()
        .values("customer_id")
        .annotate(figure=_AGGREGATES[query.basis]("amount"))
    )
    under = per_customer.filter(figure__lt=query.threshold).values("customer_id")
    rest = per_customer.filter(figure__gte=query.threshold).values("customer_id")
    return Case(
        When(response__customer_id__in=Subquery(under), then=V("group")),
        When(response__customer_id__in=Subquery(rest), then=V("rest")),
        default=V("unmatched"),
        output_field=CharField(),
    )


@dataclass
class _Side:
    n: int = 0
    points: float = 0.0  # sum of answers on 0-100
    points_sq: float = 0.0
    native_total: float = 0.0
    scales: set = field(default_factory=set)

    def add(self, *, n: int, total: float, sumsq: float, low: int, high: int) -> None:
        k = 100 / (high - low)
        self.n += n
        self.points += (total - n * low) * k
        self.points_sq += k * k * (sumsq - 2 * low * total + n * low * low)
        self.native_total += total
        self.scales.add((low, high))

    @property
    def mean(self) -> float | None:
        return self.points / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        if self.n < 2:
            return None
        return max(0.0, (self.points_sq - self.points * self.points / self.n) / (self.n - 1))


def _shown(side: _Side, scale) -> dict:
    out = {"n": side.n, "mean": None if side.mean is None else round(side.mean, 1)}
    if scale is not None and side.n:
        low, high = scale
        native = side.native_total / side.n
        out.update(
            native_mean=round(native, 2), scale_low=low, scale_high=high, text=_native_text(native, scale)
        )
    elif side.n:
        out["text"] = f"{side.mean:.0f}/100"
    else:
        out["text"] = "no answers"
    return out


def _native_text(native: float, scale) -> str:
    low, high = scale
    if (low, high) == (0, 1):
        return f"{native * 100:.0f}% yes"
    return f"{native:.1f}/{high}"


def _difference(group: _Side, rest: _Side) -> dict:
    if not group.n or not rest.n:
        return {"points": None, "low": None, "high": None}
    diff = group.mean - rest.mean
    if group.variance is None or rest.variance is None:
        return {"points": round(diff, 1), "low": None, "high": None}
    se = math.sqrt(group.variance / group.n + rest.variance / rest.n)
    return {"points": round(diff, 1), "low": round(diff - 1.96 * se, 1), "high": round(diff + 1.96 * se, 1)}


def min_sample() -> int:
    found = AlignmentSettings.objects.values_list("min_sample", flat=True).first()
    return found if found is not None else DEFAULT_MIN_SAMPLE


def customer_comparison(*, organization, caller: Caller, query: ComparisonQuery) -> dict:
    """Per standard, the group's and the rest's scores with n; see the module doc. Three queries."""
    tz = org_tz(organization)
    since = dt.datetime.combine(query.start, dt.time.min, tzinfo=tz)
    until = dt.datetime.combine(query.end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    answers = Answer.objects.filter(
        submitted_at__gte=since,
        submitted_at__lt=until,
        standard_id__isnull=False,
        question_type__in=GAP_TYPES,
        number__isnull=False,
    )
    if query.standard_ids:
        answers = answers.filter(standard_id__in=query.standard_ids)
    rows = (
        caller.scoped(answers)
        .annotate(side=_side(query))
        .order_by()
        .values("standard_id", "side", "question_type", "question__scale_min", "question__scale_max")
        .annotate(n=Count("number"), total=Sum("number"), sumsq=Sum(F("number") * F("number")))
    )
    sides: dict[int, dict[str, _Side]] = {}
    for row in rows:
        low, high = gap_scale(row["question_type"], row["question__scale_min"], row["question__scale_max"])
        if low is None or not row["n"]:
            continue  # a rating without a usable scale cannot be compared
        by_side = sides.setdefault(
            row["standard_id"], {"group": _Side(), "rest": _Side(), "unmatched": _Side()}
        )
        by_side[row["side"]].add(
            n=row["n"], total=float(row["total"]), sumsq=float(row["sumsq"]), low=low, high=high
        )
    standards = {
        s["pk"]: s for s in Standard.objects.filter(pk__in=list(sides)).values("pk", "code", "title")
    }
    minimum = min_sample()
    results = []
    for standard_id, by_side in sides.items():
        group, rest, unmatched = by_side["group"], by_side["rest"], by_side["unmatched"]
        scales = group.scales | rest.scales
        scale = next(iter(scales)) if len(scales) == 1 else None
        standard = standards.get(standard_id, {"code": "", "title": f"Standard {standard_id}"})
        shown_group, shown_rest = _shown(group, scale), _shown(rest, scale)
        results.append(
            {
                "standard": standard_id,
                "code": standard["code"],
                "title": standard["title"],
                "group": shown_group,
                "rest": shown_rest,
                "unmatched": {"n": unmatched.n},
                "difference": _difference(group, rest),
                "enough_data": group.n >= minimum and rest.n >= minimum,
                "text": f"{query.group_label}: {standard['title']} {shown_group['text']} (n={group.n}) "
                f"vs {shown_rest['text']} (n={rest.n}) for the rest",
            }
        )
    results.sort(
        key=lambda r: (r["difference"]["points"] is None, r["difference"]["points"] or 0, r["title"])
    )
    return {
        "split": query.split,
        "group_label": query.group_label,
        "rest_label": query.rest_label,
        "from": query.start.isoformat(),
        "to": query.end.isoformat(),
        "min_sample": minimum,
        "standards": results,
    }
