"""How much each interaction category (Stabilizing / Critical / Planned) weighs in an organization.

One setting, two effects, so an organization tunes them together:

- the weights weight every data point of the alignment scores (``alignment.scores``): with the
  defaults a Critical interaction counts twice in the overall scores;
- the heaviest category raises the priority of the cases its interactions open by one level
  (``feedback.cases.case_priority``): :func:`raises_priority`.

The weights are edited with the alignment settings (``/alignment/scores/settings/``,
``PATCH /api/v1/alignment/settings/``) and stored there (``AlignmentSettings.category_weights``).
Apps below alignment (feedback) must not import it, so this core module owns the question and
alignment answers it: ``AlignmentConfig.ready`` calls :func:`register_reader`. Without a reader
or a stored row the defaults apply — the same values alignment stores for a new organization.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from cem.models import InteractionCategory

DEFAULT_WEIGHTS: dict[str, float] = {
    InteractionCategory.STABILIZING.value: 1.0,
    InteractionCategory.CRITICAL.value: 2.0,
    InteractionCategory.PLANNED.value: 1.0,
}

# reader(organization_id) -> the stored {category: weight}, or None when nothing is stored.
_reader: Callable[[int], Mapping | None] | None = None


def register_reader(reader: Callable[[int], Mapping | None]) -> None:
    """Called once by the app that stores the weights (alignment) when it loads."""
    global _reader
    _reader = reader


def category_weights(organization_id: int) -> dict[str, float]:
    """The organization's weight of every category (defaults filled in). At most one query;
    call it once per batch, inside the organization's tenant context."""
    stored = _reader(organization_id) if _reader is not None else None
    weights = dict(DEFAULT_WEIGHTS)
    for category, weight in (stored or {}).items():
        if category in weights:
            weights[category] = float(weight)
    return weights


def raises_priority(weights: Mapping[str, float], category: str) -> bool:
    """Whether cases from an interaction of ``category`` are raised a level: it is the heaviest
    category (ties included) and weighs more than the lightest. Critical by default; when an
    organization weighs every category the same, none is raised."""
    if category not in weights:
        return False
    heaviest, lightest = max(weights.values()), min(weights.values())
    return weights[category] == heaviest and heaviest > lightest
