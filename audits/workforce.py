"""The shopper workforce: applications, approval (with a login), certification and location blocks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Avg
from django.utils import timezone

from audits.models import Assignment, Certification, LocationBlock, Program, Shopper, ShopperRating
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
RATING_COMMENT_MAX = 1000
# A rating follows a reviewer's decision on a submitted visit (return, approve, reject).
RATEABLE_STATUSES = (
    Assignment.Status.RETURNED,
    Assignment.Status.APPROVED,
    Assignment.Status.PUBLISHED,
    Assignment.Status.REJECTED,
)


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


def rating_score(value) -> int | None:
    """A 1-5 rating from a form or API body; blank means not rated."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        score = int(str(value).strip())
    except ValueError:
        raise ValidationError({"rating": "A rating is a whole number from 1 to 5."}) from None
    if not 1 <= score <= 5:
        raise ValidationError({"rating": "A rating is a whole number from 1 to 5."})
    return score


@transaction.atomic
def shopper_rate(
    *, organization, actor: Actor, assignment: Assignment, score, comment: str = ""
) -> ShopperRating:
    """Rate the shopper's work on one reviewed job (1-5); one rating per job, a later decision on
    the same job replaces it. Keeps Shopper.rating at the average of the shopper's ratings."""
    org_id = _check_tenant(organization)
    score = rating_score(score)
    if score is None:
        raise ValidationError({"rating": "This field is required."})
    comment = (comment or "").strip()
    if len(comment) > RATING_COMMENT_MAX:
        raise ValidationError({"rating_comment": f"At most {RATING_COMMENT_MAX} characters."})
    if assignment.shopper_id is None or assignment.status not in RATEABLE_STATUSES:
        raise ValidationError({"rating": "Only a reviewed visit can be rated."})
    # Lock the shopper first: two ratings at once must not both average without the other.
    shopper = Shopper.objects.select_for_update().get(pk=assignment.shopper_id)
    if actor.user_id is not None and shopper.user_id == actor.user_id:
        raise ValidationError({"rating": "You cannot rate your own visit."})
    rating, created = ShopperRating.objects.update_or_create(
        organization_id=org_id,
        assignment=assignment,
        defaults={"shopper": shopper, "score": score, "comment": comment, "rated_by_id": actor.user_id},
    )
    average = ShopperRating.objects.filter(shopper=shopper).aggregate(avg=Avg("score"))["avg"]
    shopper.rating = Decimal(average).quantize(Decimal("0.01")) if average is not None else None
    shopper.save(update_fields=["rating"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="shopper.rate",
        instance=rating,
        changes={
            "shopper": shopper.pk,
            "assignment": assignment.pk,
            "score": score,
            "created": created,
            "average": str(shopper.rating),
        },
    )
    return rating


__all__ = [
    "rating_score",
    "shopper_apply",
    "shopper_approve",
    "shopper_block_location",
    "shopper_certify",
    "shopper_rate",
    "shopper_reject",
]
