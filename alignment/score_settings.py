"""The organization's alignment settings: read them (defaults stored the first time asked) and
change them (validated field by field, audit-logged, and every score recomputed after commit,
since weights, the minimum sample and the threshold all change what is stored)."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from alignment.models import AlignmentSettings, Link
from cem.models import InteractionCategory
from cem.principals import Actor
from cem.services import _check_tenant, record_update

CATEGORIES = tuple(InteractionCategory.values)
LINKS = tuple(link for link in Link.values if link != Link.OVERALL)
MAX_WEIGHT = 100
MAX_MIN_SAMPLE = 100_000
FIELDS = ("category_weights", "link_weights", "min_sample", "alert_threshold")


def settings_for(org) -> AlignmentSettings:
    org_id = _check_tenant(org)
    found = AlignmentSettings.objects.filter(organization_id=org_id).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return AlignmentSettings.objects.create(organization_id=org_id)
    except IntegrityError:  # created meanwhile by a concurrent first reader
        return AlignmentSettings.objects.get(organization_id=org_id)


def stored_category_weights(organization_id: int) -> dict | None:
    """The stored interaction-category weights, or None (read-only: nothing is created). The
    reader behind ``cem.category_weights`` (registered in ``AlignmentConfig.ready``), through
    which feedback raises the priority of cases from the heaviest category."""
    return (
        AlignmentSettings.objects.filter(organization_id=organization_id)
        .values_list("category_weights", flat=True)
        .first()
    )


def _weights(value, *, keys: tuple[str, ...], what: str) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ValueError(f"An object mapping each {what} to a weight, e.g. {{{keys[0]!r}: 2}}.")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise ValueError(f"Unknown {what}: {', '.join(map(str, unknown))}. Use: {', '.join(keys)}.")
    missing = [k for k in keys if k not in value]
    if missing:
        raise ValueError(f"Give a weight for every {what}; missing: {', '.join(missing)}.")
    out = {}
    for key in keys:
        raw = value[key]
        if isinstance(raw, bool) or not isinstance(raw, int | float | str | Decimal):
            raise ValueError(f"The weight of {key} must be a number.")
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"The weight of {key} must be a number.") from None
        if not math.isfinite(number) or number < 0 or number > MAX_WEIGHT:
            raise ValueError(f"The weight of {key} must be between 0 and {MAX_WEIGHT}.")
        out[key] = number
    if not any(out.values()):
        raise ValueError(f"At least one {what} needs a weight above 0.")
    return out


def clean(data: dict) -> dict:
    """The validated changes, or ValidationError naming every bad field."""
    errors, out = {}, {}
    unknown = sorted(set(data) - set(FIELDS))
    for name in unknown:
        errors[name] = "Not a setting of the alignment scores."
    if "category_weights" in data:
        try:
            out["category_weights"] = _weights(
                data["category_weights"], keys=CATEGORIES, what="interaction category"
            )
        except ValueError as exc:
            errors["category_weights"] = str(exc)
    if "link_weights" in data:
        try:
            out["link_weights"] = _weights(data["link_weights"], keys=LINKS, what="link")
        except ValueError as exc:
            errors["link_weights"] = str(exc)
    if "min_sample" in data:
        raw = data["min_sample"]
        try:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            number = int(str(raw).strip()) if isinstance(raw, str) else int(raw)
        except (TypeError, ValueError):
            errors["min_sample"] = "A whole number of data points."
        else:
            if not 1 <= number <= MAX_MIN_SAMPLE:
                errors["min_sample"] = f"Between 1 and {MAX_MIN_SAMPLE}."
            else:
                out["min_sample"] = number
    if "alert_threshold" in data:
        raw = data["alert_threshold"]
        try:
            if isinstance(raw, bool):
                raise InvalidOperation
            number = Decimal(str(raw).strip())
        except (InvalidOperation, ValueError):
            errors["alert_threshold"] = "A score between 0 and 100."
        else:
            if not number.is_finite() or not 0 <= number <= 100:
                errors["alert_threshold"] = "A score between 0 and 100."
            else:
                out["alert_threshold"] = number.quantize(Decimal("0.01"))
    if errors:
        raise ValidationError(errors)
    return out


@transaction.atomic
def settings_update(*, organization, actor: Actor, data: dict) -> AlignmentSettings:
    """Change the settings (only the fields given); scores are recomputed once this commits."""
    org_id = _check_tenant(organization)
    changes = clean(data)
    row = settings_for(org_id)
    row = AlignmentSettings.objects.select_for_update().get(pk=row.pk)
    if not changes:
        return row
    row = record_update(organization=org_id, actor=actor, instance=row, data=changes)

    def queue():
        from alignment.score_tasks import scores_recompute

        scores_recompute.delay(org_id)

    transaction.on_commit(queue)
    return row
