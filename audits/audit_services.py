"""Writes on filled audits: storing scores, publishing, disputes and rescoring.

Keyword-only, organization first, atomic, audited. Submission (shopper workflow) and evaluations
call :func:`audit_score_compute` and :func:`audit_publish`; the rules themselves live in
audits/scoring.py, so every path scores the same way.

Stored scores: ``Audit.score`` (after a critical failure zeroes or caps it), ``raw_score``,
``critical_failed``, ``section_scores`` (``{section key: {"score", "earned", "possible"}}``, decimals
as strings so JSON keeps them exact) and one StandardScore row per standard, which dashboards read.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audits.models import Audit, AuditAnswer, Dispute, FormItem, ScoreChange, StandardScore
from audits.scoring import Item, ItemType, ScoringError, item_fraction, score_audit
from cem.events import emit
from cem.principals import Actor
from cem.scoping import scope_level
from cem.services import _check_tenant, audit_log_write

AUDIT_PUBLISHED = "AuditPublished"
AUDIT_RESCORED = "AuditRescored"
EVALUATION_PUBLISHED = "EvaluationPublished"
_MILLI = Decimal("0.001")


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _points(value: Decimal) -> str:
    # The precision of StandardScore.earned/possible, so both places show the same figures.
    return str(value.quantize(_MILLI))


def scoring_item(item: FormItem, section_key: str) -> Item:
    return Item(
        key=item.key,
        type=item.type,
        weight=Decimal(item.weight),
        section=section_key,
        standard_id=item.standard_id,
        critical=item.critical,
        required=item.required,
        scale_min=item.scale_min,
        scale_max=item.scale_max,
        target_min=item.target_min,
        target_max=item.target_max,
        choice_points={str(c.get("value")): Decimal(str(c.get("points", "0"))) for c in item.choices or []},
        pass_fraction=Decimal(item.pass_fraction),
    )


def scoring_items(version_id: int) -> list[Item]:
    rows = FormItem.objects.filter(version_id=version_id).select_related("section")
    return [scoring_item(i, i.section.key) for i in rows.order_by("section__position", "position", "id")]


def _answers(audit: Audit) -> dict[str, str | None]:
    rows = AuditAnswer.objects.filter(audit=audit).values_list("item__key", "value")
    # An empty value is an unanswered item, which the rules treat as not applicable.
    return {key: (value if value != "" else None) for key, value in rows}


@transaction.atomic
def audit_score_compute(*, organization, actor: Actor, audit: Audit) -> Audit:
    """Score the audit from its stored answers and store the result (replacing any earlier one)."""
    org_id = _check_tenant(organization)
    audit = Audit.objects.select_for_update(of=("self",)).select_related("version__form").get(pk=audit.pk)
    form = audit.version.form
    try:
        result = score_audit(
            scoring_items(audit.version_id),
            _answers(audit),
            critical_policy=form.critical_policy,
            critical_cap=Decimal(form.critical_cap),
        )
    except ScoringError as exc:
        raise ValidationError({f"answers.{exc.key}": exc.message}) from None
    before = {"score": _str(audit.score), "critical_failed": audit.critical_failed}
    audit.score = result.total
    audit.raw_score = result.raw_total
    audit.critical_failed = result.critical_failed
    audit.section_scores = {
        key: {"score": _str(s.value), "earned": _points(s.earned), "possible": _points(s.possible)}
        for key, s in result.sections.items()
    }
    audit.save(update_fields=["score", "raw_score", "critical_failed", "section_scores", "updated_at"])
    # A rescore of a published audit stays published: dashboards must not lose it for a moment.
    StandardScore.objects.filter(audit=audit).delete()
    StandardScore.objects.bulk_create(
        [
            StandardScore(
                organization_id=org_id,
                audit=audit,
                standard_id=standard_id,
                location_id=audit.location_id,
                employee_id=audit.employee_id,
                earned=s.earned,
                possible=s.possible,
                value=s.value,
                published_at=audit.published_at,
            )
            for standard_id, s in sorted(result.standards.items())
        ]
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="audit.score",
        instance=audit,
        changes={
            "before": before,
            "after": {"score": _str(audit.score), "critical_failed": audit.critical_failed},
            "failed_items": list(result.failed_items),
        },
    )
    return audit


def _standard_ids(audit: Audit) -> list[int]:
    return sorted(StandardScore.objects.filter(audit=audit).values_list("standard_id", flat=True))


@transaction.atomic
def audit_publish(*, organization, actor: Actor, audit: Audit) -> Audit:
    """Score and publish; publishing an already published audit changes nothing and emits nothing."""
    org_id = _check_tenant(organization)
    audit = Audit.objects.select_for_update().get(pk=audit.pk)
    if audit.published_at is not None:
        return audit
    audit = audit_score_compute(organization=org_id, actor=actor, audit=audit)
    now = timezone.now()
    audit.status = Audit.Status.PUBLISHED
    audit.published_at = now
    audit.save(update_fields=["status", "published_at", "updated_at"])
    StandardScore.objects.filter(audit=audit).update(published_at=now)
    standard_ids = _standard_ids(audit)
    # One event per published audit, named for what it is: a monitored call or chat is an
    # evaluation, everything else (shop visits) an audit; listeners of both never count twice.
    is_evaluation = audit.assignment_id is None and audit.interaction_id is not None
    emit(
        organization=org_id,
        event_type=EVALUATION_PUBLISHED if is_evaluation else AUDIT_PUBLISHED,
        payload={
            "audit_id": audit.pk,
            "location_id": audit.location_id,
            "employee_id": audit.employee_id,
            "standard_ids": standard_ids,
            "score": _str(audit.score),
        },
        aggregate=audit,
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="audit.publish",
        instance=audit,
        changes={"published_at": now.isoformat(), "score": _str(audit.score)},
    )
    return audit


# --- disputes -----------------------------------------------------------------------------------


def _may_dispute(membership, audit: Audit) -> bool:
    """Disputes come from the people an audit scores: the location's managers, or the agent.

    Decided on the member's scope level (cem.permissions.ROLE_SCOPE), not on role names, so the
    permission data stays the one place roles are described.
    """
    if membership is None:
        return False
    level = scope_level(membership.role)
    if level == "location":
        return audit.location_id is not None and membership.location_id == audit.location_id
    if level == "region":
        return (
            audit.location_id is not None
            and membership.region_id is not None
            and audit.location.region_id == membership.region_id
        )
    if level == "employee":
        # Agents dispute their evaluations; a mystery-shop visit scores the store, not them.
        return (
            audit.assignment_id is None
            and audit.employee_id is not None
            and membership.employee_id == audit.employee_id
        )
    return False


@transaction.atomic
def dispute_open(
    *,
    organization,
    actor: Actor,
    audit: Audit,
    item_key: str,
    reason: str,
    proposed_value: str,
    membership,
) -> Dispute:
    org_id = _check_tenant(organization)
    # "of self": the location is a nullable outer join, which Postgres refuses to lock.
    audit = Audit.objects.select_for_update(of=("self",)).select_related("location").get(pk=audit.pk)
    if not _may_dispute(membership, audit):
        raise PermissionDenied("Only the audited location's managers or the evaluated agent may dispute.")
    if audit.published_at is None:
        raise ValidationError({"audit": "Only published audits can be disputed."})
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the item should be scored differently."})
    item = (
        FormItem.objects.filter(version_id=audit.version_id, key=item_key).select_related("section").first()
    )
    if item is None:
        raise ValidationError({"item": f"The audit's form has no item {item_key!r}."})
    if item.type not in ItemType.SCORED:
        raise ValidationError({"item": "Only scored items can be disputed."})
    proposed_value = (proposed_value or "").strip()
    if not proposed_value:
        raise ValidationError({"proposed_value": "This field is required."})
    if len(proposed_value) > 200:
        raise ValidationError({"proposed_value": "At most 200 characters."})
    try:
        item_fraction(scoring_item(item, item.section.key), proposed_value)
    except ScoringError as exc:
        raise ValidationError({"proposed_value": exc.message}) from None
    current = AuditAnswer.objects.filter(audit=audit, item=item).values_list("value", flat=True).first()
    if current is not None and current.strip().lower() == proposed_value.lower():
        raise ValidationError({"proposed_value": "That is already the answer."})
    if Dispute.objects.filter(audit=audit, item=item, status=Dispute.Status.OPEN).exists():
        raise ValidationError({"item": "This item already has an open dispute."})
    try:
        with transaction.atomic():
            dispute = Dispute.objects.create(
                organization_id=org_id,
                audit=audit,
                item=item,
                raised_by_id=actor.user_id,
                reason=reason,
                proposed_value=proposed_value,
            )
    except IntegrityError:
        # The partial unique index is the last word when two requests race past the check above.
        raise ValidationError({"item": "This item already has an open dispute."}) from None
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="dispute.open",
        instance=dispute,
        changes={"audit": audit.pk, "item": item.key, "proposed_value": proposed_value},
    )
    return dispute


def _lock_open(dispute: Dispute) -> Dispute:
    dispute = Dispute.objects.select_for_update(of=("self",)).select_related("item").get(pk=dispute.pk)
    if dispute.status != Dispute.Status.OPEN:
        raise ValidationError({"status": f"This dispute is already {dispute.status}."})
    return dispute


@transaction.atomic
def dispute_accept(*, organization, actor: Actor, dispute: Dispute, resolution: str = "") -> Dispute:
    """Set the answer to the proposed value, rescore, and keep the change in the score history."""
    org_id = _check_tenant(organization)
    dispute = _lock_open(dispute)
    audit = Audit.objects.select_for_update().get(pk=dispute.audit_id)
    old_score = audit.score
    answer, _ = AuditAnswer.objects.get_or_create(
        audit=audit, item=dispute.item, defaults={"organization_id": org_id}
    )
    old_value = answer.value
    answer.value = dispute.proposed_value
    answer.save(update_fields=["value"])
    audit = audit_score_compute(organization=org_id, actor=actor, audit=audit)
    now = timezone.now()
    dispute.status = Dispute.Status.ACCEPTED
    dispute.resolution = (resolution or "").strip()
    dispute.resolved_by_id = actor.user_id
    dispute.resolved_at = now
    dispute.save(update_fields=["status", "resolution", "resolved_by", "resolved_at"])
    change = ScoreChange.objects.create(
        organization_id=org_id,
        audit=audit,
        old_score=old_score,
        new_score=audit.score,
        reason=f"Dispute {dispute.pk} accepted ({dispute.item.key}): {dispute.reason}"[:300],
        changed_by_id=actor.user_id,
    )
    emit(
        organization=org_id,
        event_type=AUDIT_RESCORED,
        payload={
            "audit_id": audit.pk,
            "dispute_id": dispute.pk,
            "score_change_id": change.pk,
            "location_id": audit.location_id,
            "employee_id": audit.employee_id,
            "standard_ids": _standard_ids(audit),
            "old_score": _str(old_score),
            "new_score": _str(audit.score),
        },
        aggregate=audit,
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="dispute.accept",
        instance=dispute,
        changes={
            "item": dispute.item.key,
            "value": {"before": old_value, "after": dispute.proposed_value},
            "score": {"before": _str(old_score), "after": _str(audit.score)},
        },
    )
    return dispute


@transaction.atomic
def dispute_reject(*, organization, actor: Actor, dispute: Dispute, resolution: str) -> Dispute:
    org_id = _check_tenant(organization)
    resolution = (resolution or "").strip()
    if not resolution:
        raise ValidationError({"resolution": "Explain why the score stands."})
    dispute = _lock_open(dispute)
    dispute.status = Dispute.Status.REJECTED
    dispute.resolution = resolution
    dispute.resolved_by_id = actor.user_id
    dispute.resolved_at = timezone.now()
    dispute.save(update_fields=["status", "resolution", "resolved_by", "resolved_at"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="dispute.reject",
        instance=dispute,
        changes={"item": dispute.item.key, "resolution": resolution},
    )
    return dispute
