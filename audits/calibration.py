"""Calibration: several evaluators score the same interaction blind; how far does each stray?

Per item, ``disagreement`` is the share of evaluators whose answer differs from the session's
final (consensus) answer. Per evaluator, ``alignment`` is
``100 * (1 - mean |fraction_evaluator - fraction_final|)`` over the items either side scored,
where a fraction is the share of the item's weight the answer earns (audits.scoring), and an
item one side marked N/A and the other scored counts as a full disagreement (1). Alignment is
100 for an evaluator who matches the final score on every item and 0 for one who is opposite on
every yes/no item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from audits.scoring import Item, ItemType, item_fraction

_CENT = Decimal("0.01")


@dataclass(frozen=True)
class CalibrationResult:
    alignment: dict[str, Decimal | None]  # evaluator -> 0..100
    disagreement: dict[str, Decimal]  # item key -> share of evaluators differing (0..100)
    # evaluator -> the item keys where they differ from the final answer (the cells to highlight)
    differs: dict[str, frozenset[str]] = field(default_factory=dict)


def calibrate(
    items: Iterable[Item], final: Mapping[str, object], evaluations: Mapping[str, Mapping[str, object]]
) -> CalibrationResult:
    scored = [i for i in items if i.type in ItemType.SCORED]
    final_fraction = {i.key: item_fraction(i, final.get(i.key)) for i in scored}
    alignment: dict[str, Decimal | None] = {}
    differing: dict[str, int] = dict.fromkeys((i.key for i in scored), 0)
    differs: dict[str, frozenset[str]] = {}
    for evaluator, answers in evaluations.items():
        gaps, mine_differ = [], set()
        for item in scored:
            mine, agreed = item_fraction(item, answers.get(item.key)), final_fraction[item.key]
            if mine is None and agreed is None:
                continue
            gap = Decimal(1) if mine is None or agreed is None else abs(mine - agreed)
            gaps.append(gap)
            if gap:
                differing[item.key] += 1
                mine_differ.add(item.key)
        differs[evaluator] = frozenset(mine_differ)
        alignment[evaluator] = (
            (100 * (1 - sum(gaps) / len(gaps))).quantize(_CENT, rounding=ROUND_HALF_UP) if gaps else None
        )
    count = len(evaluations) or 1
    disagreement = {
        key: (Decimal(100) * n / count).quantize(_CENT, rounding=ROUND_HALF_UP)
        for key, n in differing.items()
    }
    return CalibrationResult(alignment=alignment, disagreement=disagreement, differs=differs)
