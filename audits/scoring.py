"""Audit scoring: weighted percentage of applicable points, per section and per standard.

Pure functions over plain data so the same rules score a mystery-shop visit, a monitored call,
a calibration session's consensus and a rescore after a dispute.

Rules (documented for reviewers and store managers alike):

- Every scored item carries a weight (> 0). Its earned fraction (0..1) times its weight gives
  points; the audit score is ``100 * sum(points) / sum(weights of applicable items)``.
- N/A answers and unanswered optional items are not applicable: they leave the denominator.
- yes/no and yes/no/N-A: yes earns the full weight, no earns nothing.
- scale: linear between the item's min (0) and max (full weight).
- numeric and time: earn the full weight when the value is within the item's target
  (``target_max`` — e.g. "greeted within 30 s" — and/or ``target_min``), nothing otherwise.
- choice: each option states the fraction of the weight it earns (0..1).
- text and photo items are never scored.
- An item *fails* when it earns less than its pass mark (``pass_fraction``, default: full
  points). A failed **critical** item fails the whole audit: the score becomes 0, or is capped at
  the form's ``critical_cap`` when the form says so, whatever the other items earned.
- Section and standard scores use the same formula over their own items; a critical failure
  caps the audit total only (a section still shows what was earned in it).
- Scores are rounded half-up to two decimals; a scope with no applicable item scores ``None``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

NA = "n/a"
HUNDRED = Decimal(100)
_CENT = Decimal("0.01")


class ItemType:
    YES_NO = "yes_no"
    YES_NO_NA = "yes_no_na"
    SCALE = "scale"
    NUMERIC = "numeric"
    TIME = "time"
    CHOICE = "choice"
    TEXT = "text"
    PHOTO = "photo"

    SCORED = frozenset({YES_NO, YES_NO_NA, SCALE, NUMERIC, TIME, CHOICE})
    ALL = SCORED | {TEXT, PHOTO}


class CriticalPolicy:
    ZERO = "zero"
    CAP = "cap"


@dataclass(frozen=True)
class Item:
    key: str
    type: str
    weight: Decimal = Decimal(1)
    section: str = ""
    standard_id: int | None = None
    critical: bool = False
    required: bool = True
    scale_min: int = 1
    scale_max: int = 5
    target_min: Decimal | None = None
    target_max: Decimal | None = None
    # choice value -> fraction of the weight it earns
    choice_points: Mapping[str, Decimal] = field(default_factory=dict)
    pass_fraction: Decimal = Decimal(1)


@dataclass(frozen=True)
class ItemResult:
    key: str
    applicable: bool
    earned: Decimal  # points, not fraction
    possible: Decimal
    failed: bool


@dataclass(frozen=True)
class Score:
    value: Decimal | None
    earned: Decimal
    possible: Decimal


@dataclass(frozen=True)
class AuditScore:
    total: Decimal | None
    raw_total: Decimal | None  # before a critical failure zeroes or caps it
    critical_failed: bool
    failed_items: tuple[str, ...]
    sections: dict[str, Score]
    standards: dict[int, Score]
    items: dict[str, ItemResult]


class ScoringError(ValueError):
    """An answer that cannot be scored; ``key`` names the item."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def _pct(earned: Decimal, possible: Decimal) -> Decimal | None:
    if possible <= 0:
        return None
    return (HUNDRED * earned / possible).quantize(_CENT, rounding=ROUND_HALF_UP)


def _number(item: Item, value) -> Decimal:
    if isinstance(value, bool):
        raise ScoringError(item.key, "must be a number")
    try:
        number = Decimal(str(value).strip())
    except ArithmeticError:
        raise ScoringError(item.key, "must be a number") from None
    if not number.is_finite():
        raise ScoringError(item.key, "must be a number")
    return number


def _yes_no(item: Item, value) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in {"yes", "y", "true", "1"}:
        return True
    if word in {"no", "n", "false", "0"}:
        return False
    raise ScoringError(item.key, "answer yes or no")


def item_fraction(item: Item, value) -> Decimal | None:
    """The fraction (0..1) of the weight an answer earns; None when not applicable."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().lower() == NA:
        if item.type != ItemType.YES_NO_NA:
            raise ScoringError(item.key, "N/A is not an option for this item")
        return None
    if item.type in (ItemType.YES_NO, ItemType.YES_NO_NA):
        return Decimal(1) if _yes_no(item, value) else Decimal(0)
    if item.type == ItemType.SCALE:
        number = _number(item, value)
        if number != number.to_integral_value() or not item.scale_min <= number <= item.scale_max:
            raise ScoringError(item.key, f"must be a whole number from {item.scale_min} to {item.scale_max}")
        return (number - item.scale_min) / Decimal(item.scale_max - item.scale_min)
    if item.type in (ItemType.NUMERIC, ItemType.TIME):
        number = _number(item, value)
        if item.type == ItemType.TIME and number < 0:
            raise ScoringError(item.key, "a duration cannot be negative")
        within = (item.target_min is None or number >= item.target_min) and (
            item.target_max is None or number <= item.target_max
        )
        return Decimal(1) if within else Decimal(0)
    if item.type == ItemType.CHOICE:
        key = str(value)
        if key not in item.choice_points:
            raise ScoringError(item.key, f"not an option: {key}")
        return Decimal(item.choice_points[key])
    return None  # text, photo: never scored


def score_audit(
    items: Iterable[Item],
    answers: Mapping[str, object],
    *,
    critical_policy: str = CriticalPolicy.ZERO,
    critical_cap: Decimal = Decimal(0),
) -> AuditScore:
    """Score one audit. ``answers`` maps item key to the raw answer (``"n/a"`` for N/A)."""
    results: dict[str, ItemResult] = {}
    sections: dict[str, list[ItemResult]] = {}
    standards: dict[int, list[ItemResult]] = {}
    failed: list[str] = []
    critical_failed = False
    for item in items:
        if item.type not in ItemType.SCORED:
            continue
        if item.weight <= 0:
            raise ScoringError(item.key, "a scored item needs a positive weight")
        fraction = item_fraction(item, answers.get(item.key))
        if fraction is None:
            result = ItemResult(item.key, False, Decimal(0), Decimal(0), False)
        else:
            is_failed = fraction < item.pass_fraction
            result = ItemResult(item.key, True, fraction * item.weight, item.weight, is_failed)
            if is_failed:
                failed.append(item.key)
                critical_failed = critical_failed or item.critical
        results[item.key] = result
        sections.setdefault(item.section, []).append(result)
        if item.standard_id is not None:
            standards.setdefault(item.standard_id, []).append(result)

    def summary(group: list[ItemResult]) -> Score:
        earned = sum((r.earned for r in group), Decimal(0))
        possible = sum((r.possible for r in group), Decimal(0))
        return Score(_pct(earned, possible), earned, possible)

    overall = summary(list(results.values()))
    total = overall.value
    if critical_failed and total is not None:
        cap = Decimal(0) if critical_policy == CriticalPolicy.ZERO else Decimal(critical_cap)
        total = min(total, cap.quantize(_CENT, rounding=ROUND_HALF_UP))
    return AuditScore(
        total=total,
        raw_total=overall.value,
        critical_failed=critical_failed,
        failed_items=tuple(failed),
        sections={key: summary(group) for key, group in sections.items()},
        standards={key: summary(group) for key, group in standards.items()},
        items=results,
    )


def failed_without_comment(score: AuditScore, comments: Mapping[str, str]) -> list[str]:
    """Keys of failed items without the comment a failure requires (checked at submit)."""
    return [key for key in score.failed_items if not (comments.get(key) or "").strip()]
