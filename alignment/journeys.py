"""Customer journey maps, the writes: a journey per customer segment is an ordered list of
touchpoints (steps), each optionally naming the customer expectation it must meet.

Every function takes the organization first and keyword-only arguments, runs in one transaction
and writes an audit-log row. Positions are 1..n without gaps. The unique constraint on (journey,
position) is DEFERRABLE INITIALLY DEFERRED, so a reorder rewrites every position in one UPDATE
(two steps swap places without a temporary slot); :func:`_check_positions` then has PostgreSQL
check the constraint before the service returns, so a broken order fails inside the service, not
at some later commit. The journey row is locked first, so two editors of the same journey take
turns instead of interleaving their position updates.

No event is emitted: nothing in the product reacts to a journey edit (the expected-vs-actual
figures are read live from the rollup by alignment.journey_selectors).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from alignment.models import JourneyMap, JourneyStep
from cem.principals import Actor
from cem.services import _check_tenant, _snapshot, audit_log_write

JOURNEY_FIELDS = ("name", "segment", "description")
STEP_FIELDS = ("touchpoint", "expectation", "note")
POSITION_CONSTRAINT = "journey_step_position_uniq"


def _check_positions() -> None:
    """Have PostgreSQL check the deferred position constraint now (and defer it again)."""
    with connection.cursor() as cur:
        cur.execute(f"SET CONSTRAINTS {POSITION_CONSTRAINT} IMMEDIATE")
        cur.execute(f"SET CONSTRAINTS {POSITION_CONSTRAINT} DEFERRED")


def _own(org_id: int, name: str, obj):
    """A related row must be the organization's own (callers resolve ids through scoped managers;
    this keeps a service called from elsewhere from linking another tenant's row)."""
    if obj is not None and getattr(obj, "organization_id", org_id) != org_id:
        raise ValidationError({name: "Unknown for this organization."})
    return obj


def _locked(journey: JourneyMap) -> JourneyMap:
    return JourneyMap.objects.select_for_update().get(pk=journey.pk)


def _order(journey: JourneyMap) -> list[int]:
    return list(JourneyStep.objects.filter(journey=journey).order_by("position").values_list("pk", flat=True))


def _journey_values(org_id: int, journey: JourneyMap, data: dict) -> None:
    for name in JOURNEY_FIELDS:
        if name in data:
            setattr(journey, name, data[name] if name != "description" else (data[name] or ""))
    _own(org_id, "segment", journey.segment)
    name = (journey.name or "").strip()
    if not name:
        raise ValidationError({"name": "A journey needs a name."})
    journey.name = name
    clash = JourneyMap.objects.filter(name__iexact=name).exclude(pk=journey.pk)
    if clash.exists():
        raise ValidationError({"name": f"A journey map named “{name}” already exists."})
    journey.full_clean(validate_unique=False, validate_constraints=False)


def _step_snapshot(step: JourneyStep) -> dict:
    return {
        "id": step.pk,
        "position": step.position,
        "touchpoint": step.touchpoint_id,
        "expectation": step.expectation_id,
        "note": step.note,
    }


def _clean_steps(org_id: int, steps: list[dict]) -> list[dict]:
    seen = {}
    out = []
    for index, raw in enumerate(steps):
        touchpoint = raw.get("touchpoint")
        if touchpoint is None:
            raise ValidationError({"steps": f"Step {index + 1}: a touchpoint is required."})
        _own(org_id, "steps", touchpoint)
        _own(org_id, "steps", raw.get("expectation"))
        if touchpoint.pk in seen:
            raise ValidationError(
                {"steps": f"Step {index + 1}: {touchpoint.name} is already step {seen[touchpoint.pk] + 1}."}
            )
        seen[touchpoint.pk] = index
        note = raw.get("note") or ""
        if len(note) > JourneyStep._meta.get_field("note").max_length:
            raise ValidationError({"steps": f"Step {index + 1}: the note is too long."})
        out.append({"touchpoint": touchpoint, "expectation": raw.get("expectation"), "note": note})
    return out


def _set_steps(org_id: int, journey: JourneyMap, steps: list[dict]) -> None:
    """Make the journey's steps exactly ``steps`` in order; a touchpoint already on the journey
    keeps its step row (its id), updated in place."""
    steps = _clean_steps(org_id, steps)
    existing = {s.touchpoint_id: s for s in JourneyStep.objects.filter(journey=journey)}
    wanted = {s["touchpoint"].pk for s in steps}
    JourneyStep.objects.filter(journey=journey).exclude(touchpoint_id__in=wanted).delete()
    update, create = [], []
    for position, spec in enumerate(steps, 1):
        step = existing.get(spec["touchpoint"].pk)
        if step is None:
            create.append(
                JourneyStep(
                    organization_id=org_id,
                    journey=journey,
                    touchpoint=spec["touchpoint"],
                    expectation=spec["expectation"],
                    note=spec["note"],
                    position=position,
                )
            )
        else:
            step.position, step.expectation, step.note = position, spec["expectation"], spec["note"]
            update.append(step)
    JourneyStep.objects.bulk_update(update, ["position", "expectation", "note"])
    JourneyStep.objects.bulk_create(create)
    _check_positions()


@transaction.atomic
def journey_create(*, organization, actor: Actor, data: dict) -> JourneyMap:
    """A new journey map (name, segment, description) and, optionally, its ``steps`` in order
    (``[{touchpoint, expectation, note}]``)."""
    org_id = _check_tenant(organization)
    journey = JourneyMap(organization_id=org_id)
    _journey_values(org_id, journey, data)
    journey.save()
    if data.get("steps"):
        _set_steps(org_id, journey, data["steps"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="journey_map.create",
        instance=journey,
        changes={"after": _snapshot(journey), "steps": [_step_snapshot(s) for s in journey.steps.all()]},
    )
    return journey


@transaction.atomic
def journey_update(*, organization, actor: Actor, journey: JourneyMap, data: dict) -> JourneyMap:
    """Change name, segment or description; ``steps`` (when given) replaces the steps in order."""
    org_id = _check_tenant(organization)
    journey = _locked(journey)
    before = _snapshot(journey)
    steps_before = [_step_snapshot(s) for s in journey.steps.all()]
    _journey_values(org_id, journey, data)
    journey.save()
    changes = {
        k: {"before": before.get(k), "after": v} for k, v in _snapshot(journey).items() if before.get(k) != v
    }
    if "steps" in data and data["steps"] is not None:
        _set_steps(org_id, journey, data["steps"])
        steps_after = [_step_snapshot(s) for s in journey.steps.all()]
        if steps_after != steps_before:
            changes["steps"] = {"before": steps_before, "after": steps_after}
    audit_log_write(
        organization=org_id, actor=actor, action="journey_map.update", instance=journey, changes=changes
    )
    return journey


@transaction.atomic
def journey_delete(*, organization, actor: Actor, journey: JourneyMap) -> None:
    org_id = _check_tenant(organization)
    journey = _locked(journey)
    before = _snapshot(journey) | {"steps": [_step_snapshot(s) for s in journey.steps.all()]}
    pk = journey.pk
    journey.delete()
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="journey_map.delete",
        object_type=JourneyMap._meta.label,
        object_id=pk,
        changes={"before": before},
    )


@transaction.atomic
def step_add(
    *,
    organization,
    actor: Actor,
    journey: JourneyMap,
    touchpoint,
    expectation=None,
    note: str = "",
    position: int | None = None,
) -> JourneyStep:
    """Insert a touchpoint at ``position`` (1-based; default: the end); later steps move down."""
    org_id = _check_tenant(organization)
    journey = _locked(journey)
    _own(org_id, "touchpoint", touchpoint)
    _own(org_id, "expectation", expectation)
    if touchpoint is None:
        raise ValidationError({"touchpoint": "A touchpoint is required."})
    count = JourneyStep.objects.filter(journey=journey).count()
    if position is None:
        position = count + 1
    if not 1 <= position <= count + 1:
        raise ValidationError({"position": f"Must be between 1 and {count + 1}."})
    if JourneyStep.objects.filter(journey=journey, touchpoint=touchpoint).exists():
        raise ValidationError({"touchpoint": f"{touchpoint.name} is already on this journey."})
    note = note or ""
    if len(note) > JourneyStep._meta.get_field("note").max_length:
        raise ValidationError({"note": "Too long."})
    JourneyStep.objects.filter(journey=journey, position__gte=position).update(position=F("position") + 1)
    step = JourneyStep.objects.create(
        organization_id=org_id,
        journey=journey,
        touchpoint=touchpoint,
        expectation=expectation,
        note=note,
        position=position,
    )
    _check_positions()
    JourneyMap.objects.filter(pk=journey.pk).update(updated_at=timezone.now())
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="journey_step.add",
        instance=step,
        changes={"after": _step_snapshot(step), "journey": journey.pk},
    )
    return step


@transaction.atomic
def step_update(*, organization, actor: Actor, step: JourneyStep, data: dict) -> JourneyStep:
    """Change a step's touchpoint, expectation or note (its place changes only by reordering)."""
    org_id = _check_tenant(organization)
    _locked(step.journey)
    step = JourneyStep.objects.select_for_update().get(pk=step.pk)
    before = _step_snapshot(step)
    if "touchpoint" in data:
        touchpoint = _own(org_id, "touchpoint", data["touchpoint"])
        if touchpoint is None:
            raise ValidationError({"touchpoint": "A touchpoint is required."})
        clash = JourneyStep.objects.filter(journey_id=step.journey_id, touchpoint=touchpoint).exclude(
            pk=step.pk
        )
        if clash.exists():
            raise ValidationError({"touchpoint": f"{touchpoint.name} is already on this journey."})
        step.touchpoint = touchpoint
    if "expectation" in data:
        step.expectation = _own(org_id, "expectation", data["expectation"])
    if "note" in data:
        step.note = data["note"] or ""
    step.full_clean(exclude=["journey", "organization"], validate_unique=False, validate_constraints=False)
    step.save()
    JourneyMap.objects.filter(pk=step.journey_id).update(updated_at=timezone.now())
    after = _step_snapshot(step)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="journey_step.update",
        instance=step,
        changes={k: {"before": before[k], "after": v} for k, v in after.items() if before[k] != v},
    )
    return step


@transaction.atomic
def step_remove(*, organization, actor: Actor, step: JourneyStep) -> None:
    """Remove a step; the steps after it move up, so positions stay 1..n."""
    org_id = _check_tenant(organization)
    journey = _locked(step.journey)
    step = JourneyStep.objects.get(pk=step.pk)
    before = _step_snapshot(step)
    step.delete()
    JourneyStep.objects.filter(journey=journey, position__gt=before["position"]).update(
        position=F("position") - 1
    )
    _check_positions()
    JourneyMap.objects.filter(pk=journey.pk).update(updated_at=timezone.now())
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="journey_step.remove",
        object_type=JourneyStep._meta.label,
        object_id=before["id"],
        changes={"before": before, "journey": journey.pk},
    )


@transaction.atomic
def journey_reorder(*, organization, actor: Actor, journey: JourneyMap, steps: list) -> JourneyMap:
    """Put the steps in the order of ``steps`` (each of the journey's step ids exactly once)."""
    org_id = _check_tenant(organization)
    journey = _locked(journey)
    current = _order(journey)
    try:
        wanted = [int(getattr(s, "pk", s)) for s in steps]
    except (TypeError, ValueError):
        wanted = None
    if wanted is None or sorted(wanted) != sorted(current) or len(set(wanted)) != len(wanted):
        raise ValidationError(
            {"steps": "Must list each of the journey's step ids exactly once, in the new order."}
        )
    if wanted != current:
        rows = list(JourneyStep.objects.filter(journey=journey))
        position = {pk: i for i, pk in enumerate(wanted, 1)}
        for row in rows:
            row.position = position[row.pk]
        # One UPDATE for every row: the deferred constraint sees only the final positions.
        JourneyStep.objects.bulk_update(rows, ["position"])
        _check_positions()
        JourneyMap.objects.filter(pk=journey.pk).update(updated_at=timezone.now())
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="journey_map.reorder",
        instance=journey,
        changes={"before": current, "after": wanted},
    )
    return journey


@transaction.atomic
def step_move(*, organization, actor: Actor, step: JourneyStep, direction: str) -> JourneyMap:
    """Swap a step with its neighbour above (``up``) or below (``down``); at an end, nothing moves."""
    if direction not in ("up", "down"):
        raise ValidationError({"direction": "Either up or down."})
    order = _order(_locked(step.journey))
    i = order.index(step.pk)
    j = i - 1 if direction == "up" else i + 1
    if 0 <= j < len(order):
        order[i], order[j] = order[j], order[i]
    return journey_reorder(organization=organization, actor=actor, journey=step.journey, steps=order)
