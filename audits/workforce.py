"""The shopper workforce: applications, approval (with a login), certification and location blocks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audits.models import Certification, LocationBlock, Program, Shopper
from cem.events import emit
from cem.models import Membership, Role
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write, membership_create

APPLICATION_FIELDS = (
    "name",
    "email",
    "phone",
    "home_area",
    "latitude",
    "longitude",
    "radius_km",
    "languages",
    "demographics",
    "availability",
    "employer_organization_names",
)
REASON_MAX = 300
DEFAULT_PASS_MARK = Decimal(80)


def _reason(value, *, required: bool) -> str:
    text = (value or "").strip()
    if required and not text:
        raise ValidationError({"reason": "This field is required."})
    if len(text) > REASON_MAX:
        raise ValidationError({"reason": f"At most {REASON_MAX} characters."})
    return text


@transaction.atomic
def shopper_apply(*, organization, actor: Actor, data: dict, consent: bool) -> Shopper:
    """Record an application (status applied). Consent to the shopper terms is mandatory."""
    org_id = _check_tenant(organization)
    if not consent:
        raise ValidationError({"consent": "You must accept the terms to apply."})
    fields = {k: v for k, v in data.items() if k in APPLICATION_FIELDS}
    fields["email"] = (fields.get("email") or "").strip().lower()
    shopper = Shopper(
        organization_id=org_id, status=Shopper.Status.APPLIED, consent_at=timezone.now(), **fields
    )
    shopper.full_clean()
    shopper.save()
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="shopper.apply",
        instance=shopper,
        changes={"email": shopper.email},
    )
    emit(
        organization=org_id,
        event_type="ShopperApplied",
        aggregate=shopper,
        payload={"shopper_id": shopper.pk},
    )
    return shopper


@transaction.atomic
def shopper_approve(*, organization, actor: Actor, shopper: Shopper, reason: str = "") -> Shopper:
    """Approve an applicant and give them a login: link the user with that email, creating the
    user and a shopper membership when they have none in this organization."""
    org_id = _check_tenant(organization)
    reason = _reason(reason, required=False)
    shopper = Shopper.objects.select_for_update().get(pk=shopper.pk)
    if shopper.status not in (Shopper.Status.APPLIED, Shopper.Status.SUSPENDED, Shopper.Status.REJECTED):
        raise ValidationError(
            {"status": f"A shopper who is {shopper.get_status_display().lower()} cannot be approved."}
        )
    user = get_user_model().objects.filter(username=shopper.email.lower()).first()
    if user is None or not Membership.objects.filter(user=user).exists():
        user = membership_create(
            organization=org_id, actor=actor, email=shopper.email, role=Role.SHOPPER
        ).user
    before = shopper.status
    shopper.status = Shopper.Status.APPROVED
    shopper.user = user
    shopper.decision_reason = reason
    shopper.save(update_fields=["status", "user", "decision_reason"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="shopper.approve",
        instance=shopper,
        changes={"status": {"before": before, "after": shopper.status}, "user": user.pk, "reason": reason},
    )
    emit(
        organization=org_id,
        event_type="ShopperApproved",
        aggregate=shopper,
        payload={"shopper_id": shopper.pk, "user_id": user.pk},
    )
    return shopper


@transaction.atomic
def shopper_reject(*, organization, actor: Actor, shopper: Shopper, reason: str) -> Shopper:
    org_id = _check_tenant(organization)
    reason = _reason(reason, required=True)
    shopper = Shopper.objects.select_for_update().get(pk=shopper.pk)
    if shopper.status != Shopper.Status.APPLIED:
        state = shopper.get_status_display().lower()
        raise ValidationError({"status": f"Only applications can be rejected; this shopper is {state}."})
    before = shopper.status
    shopper.status = Shopper.Status.REJECTED
    shopper.decision_reason = reason
    shopper.save(update_fields=["status", "decision_reason"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="shopper.reject",
        instance=shopper,
        changes={"status": {"before": before, "after": shopper.status}, "reason": reason},
    )
    return shopper


@transaction.atomic
def shopper_certify(
    *,
    organization,
    actor: Actor,
    shopper: Shopper,
    program: Program,
    score: Decimal,
    pass_mark: Decimal = DEFAULT_PASS_MARK,
    now=None,
) -> Certification:
    """Record a passed certification test for one programme.

    Interim: until the learning app delivers certification courses and tests, an admin records
    the result of a test taken elsewhere. The learning app is expected to call this same service
    when a shopper passes its test, so eligibility (audits.jobs) need not change.
    """
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    score, pass_mark = Decimal(score), Decimal(pass_mark)
    if not Decimal(0) <= score <= Decimal(100):
        raise ValidationError({"score": "A score is a percentage from 0 to 100."})
    if score < pass_mark:
        raise ValidationError({"score": f"{score} is below the pass mark of {pass_mark}."})
    if shopper.status != Shopper.Status.APPROVED:
        raise ValidationError({"status": "Only approved shoppers can be certified."})
    if program.organization_id != org_id:
        raise ValidationError({"program": "Unknown programme."})
    certification = Certification.objects.create(
        organization_id=org_id,
        shopper=shopper,
        program=program,
        passed_at=now,
        expires_at=now + dt.timedelta(days=program.certification_valid_days),
        score=score,
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="shopper.certify",
        instance=certification,
        changes={"shopper": shopper.pk, "program": program.pk, "score": str(score)},
    )
    return certification


@transaction.atomic
def shopper_block_location(
    *, organization, actor: Actor, shopper: Shopper, location, reason: str
) -> LocationBlock:
    """Keep a shopper away from one location (e.g. the store refused or recognised them)."""
    org_id = _check_tenant(organization)
    reason = _reason(reason, required=True)
    block, _ = LocationBlock.objects.update_or_create(
        organization_id=org_id, shopper=shopper, location=location, defaults={"reason": reason}
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="shopper.block_location",
        instance=block,
        changes={"shopper": shopper.pk, "location": location.pk, "reason": reason},
    )
    return block


__all__ = [
    "shopper_apply",
    "shopper_approve",
    "shopper_block_location",
    "shopper_certify",
    "shopper_reject",
]
