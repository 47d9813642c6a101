"""Mystery-shopping jobs: who may take one (eligibility and lockouts), the board, and the workflow.

State machine of an Assignment (``TRANSITIONS``)::

    open → assigned → in_progress → submitted → in_review → approved → published
                                        ↑            │
                                        └─ returned ←┘   (revision window: returned past
                                                          revision_due_at → in_review)
    open / assigned / in_progress → cancelled;  submitted / in_review → rejected
    assigned / in_progress past window_end → open again (the beat releases it)
    open past program.auto_assign_after_hours → assigned by the scheduler (nearest eligible, load balanced)

Every write is a service here: keyword-only, organization first, one transaction, an audit-log
row, and an outbox event where another app cares.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from audits import payments, scoring, workforce
from audits.audit_services import audit_publish, scoring_item
from audits.models import (
    Assignment,
    Audit,
    AuditAnswer,
    AuditFormVersion,
    AuditPhoto,
    Certification,
    FormItem,
    LocationBlock,
    Shopper,
)
from cem.events import emit
from cem.models import AuditLog, Organization
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write

S = Assignment.Status

TRANSITIONS: dict[str, frozenset[str]] = {
    S.OPEN: frozenset({S.ASSIGNED, S.CANCELLED}),
    S.ASSIGNED: frozenset({S.IN_PROGRESS, S.OPEN, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.SUBMITTED, S.OPEN, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.IN_REVIEW, S.RETURNED, S.APPROVED, S.REJECTED}),
    S.IN_REVIEW: frozenset({S.RETURNED, S.APPROVED, S.REJECTED}),
    S.RETURNED: frozenset({S.SUBMITTED, S.IN_REVIEW}),
    S.APPROVED: frozenset({S.PUBLISHED}),
    S.PUBLISHED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
}

# The shopper still owes work on these; they count against Program.max_open_jobs.
OPEN_JOB_STATUSES = (S.ASSIGNED, S.IN_PROGRESS, S.RETURNED)
# A visit happened (or is under way): these count for the location lockout.
VISITED_STATUSES = (S.ASSIGNED, S.IN_PROGRESS, S.SUBMITTED, S.IN_REVIEW, S.RETURNED, S.APPROVED, S.PUBLISHED)
DRAFTABLE_STATUSES = (S.ASSIGNED, S.IN_PROGRESS, S.RETURNED)
REASON_MAX = 300
REMINDER_BEFORE = dt.timedelta(hours=24)
EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Reason:
    code: str
    message: str

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


# --- eligibility ---------------------------------------------------------------------------------


def haversine_km(lat1, lon1, lat2, lon2) -> float:
    p1, p2 = math.radians(float(lat1)), math.radians(float(lat2))
    dp, dl = p2 - p1, math.radians(float(lon2) - float(lon1))
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _organization_name(organization_id: int) -> str:
    return Organization.objects.filter(pk=organization_id).values_list("name", flat=True).first() or ""


@dataclass(frozen=True)
class ShopperFacts:
    """What eligibility needs to know about one shopper, read once (the board checks many jobs)."""

    shopper: Shopper
    certifications: dict[int, dt.datetime]  # program id → latest expiry
    open_jobs: frozenset[int]  # assignment ids counting against max_open_jobs
    visits: tuple[tuple[int, int, dt.datetime], ...]  # (assignment id, location id, when)
    blocks: dict[int, str]  # location id → reason
    rejected: dict[int, str]  # location id → the reviewer's reason for rejecting a visit there
    employers: frozenset[str]
    organization_name: str  # compared with employers; jobs are always in the shopper's organization

    @classmethod
    def of(cls, shopper: Shopper) -> ShopperFacts:
        certifications: dict[int, dt.datetime] = {}
        for program_id, expires_at in Certification.objects.filter(shopper=shopper).values_list(
            "program_id", "expires_at"
        ):
            certifications[program_id] = max(expires_at, certifications.get(program_id, expires_at))
        mine = Assignment.objects.filter(
            shopper=shopper, status__in=(*VISITED_STATUSES, S.REJECTED)
        ).annotate(at=Coalesce("submitted_at", "assigned_at", "window_start"))
        rows = list(mine.values_list("pk", "location_id", "at", "status", "status_reason"))
        rejected = {loc: reason for _, loc, _, status, reason in rows if status == S.REJECTED}
        return cls(
            shopper=shopper,
            certifications=certifications,
            open_jobs=frozenset(pk for pk, _, _, status, _ in rows if status in OPEN_JOB_STATUSES),
            visits=tuple((pk, loc, at) for pk, loc, at, status, _ in rows if status != S.REJECTED),
            blocks=dict(LocationBlock.objects.filter(shopper=shopper).values_list("location_id", "reason")),
            rejected=rejected,
            employers=frozenset(
                name.strip().casefold() for name in shopper.employer_organization_names if name.strip()
            ),
            organization_name=_organization_name(shopper.organization_id).strip().casefold()
            if shopper.employer_organization_names
            else "",
        )


def eligibility(
    shopper: Shopper, assignment: Assignment, *, now=None, facts: ShopperFacts | None = None
) -> tuple[bool, list[Reason]]:
    """May this shopper take this job? Every rule that refuses adds a Reason (all are reported).

    Radius: the great-circle (haversine) distance from the shopper's home to the location must be
    within ``shopper.radius_km``. When either side has no coordinates the check is skipped: many
    applicants give only a home area, and refusing them every job would make coordinates
    mandatory through the back door; admins see the missing coordinates on the profile.

    Open jobs: assigned, in progress and returned jobs count against ``program.max_open_jobs``
    (submitted ones are the reviewer's to move).

    Lockout: a job of theirs at the same location visited (or held) within
    ``program.lockout_days``, a LocationBlock or a rejected visit there (both for good), or the
    location belongs to an organization they declared as an employer (names compared
    case-insensitively, whitespace trimmed).
    """
    now = now or timezone.now()
    facts = facts or ShopperFacts.of(shopper)
    program, location = assignment.program, assignment.location
    reasons: list[Reason] = []
    if shopper.status != Shopper.Status.APPROVED:
        reasons.append(
            Reason("not_approved", f"Your shopper profile is {shopper.get_status_display().lower()}.")
        )
    expires_at = facts.certifications.get(program.pk)
    if expires_at is None:
        reasons.append(Reason("not_certified", f"You are not certified for {program.name}."))
    elif expires_at <= now:
        reasons.append(Reason("certification_expired", f"Your certification for {program.name} has expired."))
    if None not in (shopper.latitude, shopper.longitude, location.latitude, location.longitude):
        distance = haversine_km(shopper.latitude, shopper.longitude, location.latitude, location.longitude)
        if distance > shopper.radius_km:
            reasons.append(
                Reason(
                    "out_of_radius",
                    f"The location is {distance:.0f} km away, beyond your {shopper.radius_km} km radius.",
                )
            )
    open_jobs = len(facts.open_jobs - {assignment.pk})
    if open_jobs >= program.max_open_jobs:
        reasons.append(
            Reason(
                "too_many_open_jobs",
                f"You already have {open_jobs} open jobs (limit {program.max_open_jobs}).",
            )
        )
    since = now - dt.timedelta(days=program.lockout_days)
    if any(pk != assignment.pk and loc == location.pk and at >= since for pk, loc, at in facts.visits):
        reasons.append(
            Reason(
                "location_lockout",
                f"You shopped {location.name} within the last {program.lockout_days} days.",
            )
        )
    if location.pk in facts.blocks:
        reasons.append(
            Reason("location_blocked", f"You may not audit {location.name}: {facts.blocks[location.pk]}")
        )
    if location.pk in facts.rejected and location.pk not in facts.blocks:
        why = facts.rejected[location.pk]
        reasons.append(
            Reason(
                "rejected_visit", f"Your visit to {location.name} was rejected" + (f": {why}" if why else ".")
            )
        )
    if facts.organization_name and facts.organization_name in facts.employers:
        reasons.append(Reason("employer_conflict", "You declared this organization as your employer."))
    return not reasons, reasons


def shopper_for_user(user) -> Shopper | None:
    """The caller's shopper profile in the current tenant (None for API keys and non-shoppers)."""
    user_id = getattr(user, "pk", None)
    if user_id is None:
        return None
    return Shopper.objects.filter(user_id=user_id).first()


def job_board(*, organization, shopper: Shopper | None, with_reasons: bool = False, now=None) -> list[dict]:
    """Open jobs this shopper may take; with ``with_reasons`` also the others, with why not.

    The hierarchy scope hides unassigned jobs from shoppers (they see only their own), so the
    board is computed here: explicitly within the tenant, then filtered by eligibility.
    """
    _check_tenant(organization)
    if shopper is None:
        return []
    now = now or timezone.now()
    jobs = (
        Assignment.objects.filter(
            status=S.OPEN, window_end__gt=now, program__active=True, scenario__active=True
        )
        .select_related("program", "scenario", "location")
        .order_by("window_start", "pk")
    )
    facts = ShopperFacts.of(shopper)
    board = []
    for job in jobs:
        ok, reasons = eligibility(shopper, job, now=now, facts=facts)
        if ok or with_reasons:
            board.append({"assignment": job, "eligible": ok, "reasons": [r.as_dict() for r in reasons]})
    return board


# --- workflow helpers ----------------------------------------------------------------------------


def _locked(assignment: Assignment) -> Assignment:
    return Assignment.objects.select_for_update().select_related("program", "location").get(pk=assignment.pk)


def _move(assignment: Assignment, to: str) -> str:
    before = assignment.status
    if to not in TRANSITIONS[before]:
        allowed = ", ".join(sorted(TRANSITIONS[before])) or "nothing (it is final)"
        state = assignment.get_status_display().lower()
        raise ValidationError({"status": f"A job that is {state} can move to {allowed}, not {to}."})
    assignment.status = to
    return before


def _reason(value, *, required: bool = True) -> str:
    text = (value or "").strip()
    if required and not text:
        raise ValidationError({"reason": "This field is required."})
    if len(text) > REASON_MAX:
        raise ValidationError({"reason": f"At most {REASON_MAX} characters."})
    return text


def _log(org_id, actor, action, assignment, before, **extra):
    audit_log_write(
        organization=org_id,
        actor=actor,
        action=action,
        instance=assignment,
        changes={"status": {"before": before, "after": assignment.status}, **extra},
    )


def _own(assignment: Assignment, shopper: Shopper | None) -> None:
    if shopper is None or assignment.shopper_id != shopper.pk:
        raise ValidationError({"shopper": "This job is not assigned to you."})


def _not_own_review(assignment: Assignment, actor: Actor) -> None:
    # A person who shops for the organization and also reviews must never review their own visit.
    if (
        actor.user_id is not None
        and assignment.shopper_id is not None
        and Shopper.objects.filter(pk=assignment.shopper_id, user_id=actor.user_id).exists()
    ):
        raise ValidationError({"reviewer": "You cannot review your own visit."})


def _current_audit(assignment: Assignment) -> Audit | None:
    return Audit.objects.filter(assignment=assignment).order_by("-created_at", "-pk").first()


class DraftConflict(ValidationError):
    """The draft changed since the revision the client based its save on (another tab or device, or a
    save the client never heard back about): applying the older answers would overwrite newer ones."""


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def draft_revision(audit: Audit | None) -> str:
    """An opaque token that changes with every draft save ("" before the first one). Whole
    microseconds since the epoch, so it round-trips through HTML and localStorage exactly."""
    if audit is None:
        return ""
    return str((audit.updated_at - _EPOCH) // dt.timedelta(microseconds=1))


def _latest_version(assignment: Assignment) -> AuditFormVersion:
    version = AuditFormVersion.objects.filter(form_id=assignment.program.form_id).order_by("-number").first()
    if version is None:
        raise ValidationError({"program": "The programme's form has no version to fill in."})
    return version


# --- services --------------------------------------------------------------------------------------


@transaction.atomic
def assignment_create(*, organization, actor: Actor, data: dict) -> Assignment:
    org_id = _check_tenant(organization)
    data = dict(data)
    data.pop("status", None)
    data.pop("shopper", None)
    scenario, program = data.get("scenario"), data.get("program")
    if scenario is not None and program is not None and scenario.program_id != program.pk:
        raise ValidationError({"scenario": "The scenario belongs to another programme."})
    assignment = Assignment(organization_id=org_id, status=S.OPEN, **data)
    assignment.full_clean()
    assignment.save()
    audit_log_write(organization=org_id, actor=actor, action="assignment.create", instance=assignment)
    emit(
        organization=org_id,
        event_type="AssignmentCreated",
        aggregate=assignment,
        payload={
            "assignment_id": assignment.pk,
            "program_id": assignment.program_id,
            "location_id": assignment.location_id,
        },
    )
    return assignment


@transaction.atomic
def assignment_take(
    *, organization, actor: Actor, shopper: Shopper, assignment: Assignment, now=None
) -> Assignment:
    """Self-assign an open job. Rows are locked (shopper, then job) so two shoppers cannot take
    one job and one shopper cannot exceed the open-job cap with parallel takes."""
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    shopper = Shopper.objects.select_for_update().get(pk=shopper.pk)
    assignment = _locked(assignment)
    if assignment.status != S.OPEN:
        raise ValidationError({"status": "This job has already been taken."})
    if assignment.window_end <= now:
        raise ValidationError({"window_end": "The visit window of this job has closed."})
    ok, reasons = eligibility(shopper, assignment, now=now)
    if not ok:
        raise ValidationError({"eligibility": [f"{r.code}: {r.message}" for r in reasons]})
    before = _move(assignment, S.ASSIGNED)
    assignment.shopper = shopper
    assignment.assigned_at = now
    assignment.status_reason = ""
    assignment.save(update_fields=["status", "shopper", "assigned_at", "status_reason"])
    _log(org_id, actor, "assignment.take", assignment, before, shopper=shopper.pk)
    emit(
        organization=org_id,
        event_type="AssignmentTaken",
        aggregate=assignment,
        payload={"assignment_id": assignment.pk, "shopper_id": shopper.pk},
    )
    return assignment


@transaction.atomic
def assignment_start(
    *, organization, actor: Actor, shopper: Shopper | None, assignment: Assignment
) -> Assignment:
    org_id = _check_tenant(organization)
    assignment = _locked(assignment)
    _own(assignment, shopper)
    before = _move(assignment, S.IN_PROGRESS)
    assignment.save(update_fields=["status"])
    _log(org_id, actor, "assignment.start", assignment, before)
    return assignment


@transaction.atomic
def assignment_draft_save(
    *,
    organization,
    actor: Actor,
    shopper: Shopper | None,
    assignment: Assignment,
    answers: list[dict],
    visited_at=None,
    base_revision: str | None = None,
    reimbursement=None,
) -> Audit:
    """Autosave: upsert the given answers on the job's draft audit (created on first save).

    Values are not validated here (a half-typed draft must save); submit validates everything.
    A valid ``reimbursement`` claim is kept on the job like an answer, so the form shows it again
    after a reload (a photo upload reloads the page); an invalid one is left for submit to refuse.
    With ``base_revision`` (the ``draft_revision`` the client last saw) a save built on an older
    draft raises DraftConflict instead of overwriting: an offline phone replaying its queue must
    not undo answers saved since from elsewhere. Checked under the assignment's row lock.
    """
    org_id = _check_tenant(organization)
    assignment = _locked(assignment)
    _own(assignment, shopper)
    if assignment.status not in DRAFTABLE_STATUSES:
        raise ValidationError(
            {"status": f"A job that is {assignment.get_status_display().lower()} cannot be edited."}
        )
    audit = _current_audit(assignment)
    if base_revision is not None and base_revision != draft_revision(audit):
        raise DraftConflict(
            {"revision": "The report was saved from elsewhere since these answers were made; reload it."}
        )
    if audit is None:
        audit = Audit.objects.create(
            organization_id=org_id,
            version=_latest_version(assignment),
            assignment=assignment,
            location=assignment.location,
            status=Audit.Status.DRAFT,
        )
    items = {i.key: i for i in FormItem.objects.filter(version_id=audit.version_id)}
    unknown = sorted({str(a.get("item")) for a in answers} - set(items))
    if unknown:
        raise ValidationError({"answers": f"Not items of this form: {', '.join(unknown)}."})
    for answer in answers:
        fields = {
            name: str(answer[name]) if answer[name] is not None else ""
            for name in ("value", "text", "comment")
            if name in answer
        }
        if len(fields.get("value", "")) > 200:
            raise ValidationError({f"answers.{answer['item']}": "At most 200 characters."})
        AuditAnswer.objects.update_or_create(
            organization_id=org_id, audit=audit, item=items[answer["item"]], defaults=fields
        )
    if visited_at is not None:
        audit.visited_at = visited_at
    audit.save()
    try:
        claim = payments.reimbursement_amount(reimbursement, cap=assignment.reimbursement_cap)
    except ValidationError:
        claim = None
    if claim is not None and claim != assignment.reimbursement:
        assignment.reimbursement = claim
        assignment.save(update_fields=["reimbursement"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="assignment.draft",
        instance=assignment,
        changes={"audit": audit.pk, "items": sorted(str(a["item"]) for a in answers)},
    )
    return audit


def submission_errors(assignment: Assignment, audit: Audit | None) -> dict[str, str]:
    """Everything that stops a visit report from being submitted, keyed by field / ``answers.<item>``."""
    if audit is None:
        return {"answers": "Nothing has been filled in yet."}
    errors: dict[str, str] = {}
    if audit.visited_at is None:
        errors["visited_at"] = "Say when you visited."
    elif not assignment.window_start <= audit.visited_at <= assignment.window_end:
        errors["visited_at"] = "The visit must fall inside the job's window."
    elif audit.visited_at > timezone.now():
        errors["visited_at"] = "The visit cannot be in the future."
    items = list(
        FormItem.objects.filter(version_id=audit.version_id)
        .select_related("section")
        .order_by("position", "pk")
    )
    answers = {a.item_id: a for a in AuditAnswer.objects.filter(audit=audit)}
    photos = set(AuditPhoto.objects.filter(audit=audit).values_list("item_id", flat=True))
    values, comments = {}, {}
    for item in items:
        answer = answers.get(item.pk)
        value = answer.value.strip() if answer else ""
        comments[item.key] = answer.comment if answer else ""
        if item.type == FormItem.Type.PHOTO:
            if item.required and item.pk not in photos:
                errors[f"answers.{item.key}"] = "A photo is required."
            continue
        if item.type == FormItem.Type.TEXT:
            if item.required and not (value or (answer and answer.text.strip())):
                errors[f"answers.{item.key}"] = "This item is required."
            continue
        if not value:
            if item.required:
                errors[f"answers.{item.key}"] = "This item is required."
            continue
        if item.type == FormItem.Type.TIME and item.plausible_max is not None:
            try:
                too_long = Decimal(value) > item.plausible_max
            except ArithmeticError:
                too_long = False  # scoring reports the non-number below
            if too_long:
                errors[f"answers.{item.key}"] = (
                    f"{value} s is not plausible (at most {item.plausible_max} s)."
                )
                continue
        values[item.key] = value
    if errors:
        return errors
    form = assignment.program.form
    try:
        score = scoring.score_audit(
            [scoring_item(i, i.section.key) for i in items],
            values,
            critical_policy=form.critical_policy,
            critical_cap=form.critical_cap,
        )
    except scoring.ScoringError as exc:
        return {f"answers.{exc.key}": exc.message}
    needs_comment = {i.key for i in items if i.comment_required_on_fail}
    for key in scoring.failed_without_comment(score, comments):
        if key in needs_comment:
            errors[f"answers.{key}"] = "A failed item needs a comment saying what happened."
    return errors


def _rate(org_id, actor, assignment, rating, rating_comment) -> None:
    if rating is not None:
        workforce.shopper_rate(
            organization=org_id, actor=actor, assignment=assignment, score=rating, comment=rating_comment
        )


@transaction.atomic
def assignment_submit(
    *,
    organization,
    actor: Actor,
    shopper: Shopper | None,
    assignment: Assignment,
    reimbursement=None,
) -> Assignment:
    """Submit the visit report; ``reimbursement`` is what the shopper claims (≤ the job's cap;
    blank keeps the previous claim). The job's Payable is pending until approval."""
    org_id = _check_tenant(organization)
    assignment = _locked(assignment)
    _own(assignment, shopper)
    if assignment.status not in (S.IN_PROGRESS, S.RETURNED):
        _move(assignment, S.SUBMITTED)  # raises the status error
    audit = _current_audit(assignment)
    errors = submission_errors(assignment, audit)
    claim = None
    try:
        claim = payments.reimbursement_amount(reimbursement, cap=assignment.reimbursement_cap)
    except ValidationError as exc:
        errors.update({k: " ".join(v) for k, v in exc.message_dict.items()})
    if errors:
        raise ValidationError(errors)
    before = _move(assignment, S.SUBMITTED)
    assignment.submitted_at = timezone.now()
    assignment.revision_due_at = None
    if claim is not None:
        assignment.reimbursement = claim
    assignment.save(update_fields=["status", "submitted_at", "revision_due_at", "reimbursement"])
    payments.payable_on_submit(org_id=org_id, actor=actor, assignment=assignment)
    audit.status = Audit.Status.SUBMITTED
    audit.save(update_fields=["status", "updated_at"])
    _log(
        org_id,
        actor,
        "assignment.submit",
        assignment,
        before,
        audit=audit.pk,
        reimbursement=str(assignment.reimbursement),
    )
    emit(
        organization=org_id,
        event_type="AssignmentSubmitted",
        aggregate=assignment,
        payload={"assignment_id": assignment.pk, "audit_id": audit.pk, "location_id": assignment.location_id},
    )
    return assignment


@transaction.atomic
def assignment_review(*, organization, actor: Actor, assignment: Assignment) -> Assignment:
    """A reviewer picks a submitted visit up (submitted → in_review)."""
    org_id = _check_tenant(organization)
    assignment = _locked(assignment)
    _not_own_review(assignment, actor)
    before = _move(assignment, S.IN_REVIEW)
    assignment.reviewer_id = actor.user_id
    assignment.save(update_fields=["status", "reviewer"])
    _log(org_id, actor, "assignment.review", assignment, before)
    return assignment


@transaction.atomic
def assignment_return(
    *,
    organization,
    actor: Actor,
    assignment: Assignment,
    reason: str,
    now=None,
    rating=None,
    rating_comment: str = "",
) -> Assignment:
    org_id = _check_tenant(organization)
    reason = _reason(reason)
    now = now or timezone.now()
    assignment = _locked(assignment)
    _not_own_review(assignment, actor)
    before = _move(assignment, S.RETURNED)
    assignment.status_reason = reason
    assignment.revision_due_at = now + dt.timedelta(hours=assignment.program.revision_window_hours)
    assignment.reviewer_id = actor.user_id or assignment.reviewer_id
    assignment.save(update_fields=["status", "status_reason", "revision_due_at", "reviewer"])
    audit = _current_audit(assignment)
    if audit is not None:
        audit.status = Audit.Status.DRAFT
        audit.save(update_fields=["status", "updated_at"])
    _log(org_id, actor, "assignment.return", assignment, before, reason=reason)
    _rate(org_id, actor, assignment, rating, rating_comment)
    emit(
        organization=org_id,
        event_type="AssignmentReturned",
        aggregate=assignment,
        payload={"assignment_id": assignment.pk, "revision_due_at": assignment.revision_due_at.isoformat()},
    )
    return assignment


@transaction.atomic
def assignment_approve(
    *,
    organization,
    actor: Actor,
    assignment: Assignment,
    reimbursement=None,
    rating=None,
    rating_comment: str = "",
) -> Assignment:
    """Approve the visit, then score and publish its audit (approved → published).

    The job's fee and reimbursement become payable; ``reimbursement`` is the reviewer's adjustment
    of the shopper's claim (≤ the cap; blank keeps the claim).
    """
    org_id = _check_tenant(organization)
    assignment = _locked(assignment)
    _not_own_review(assignment, actor)
    before = _move(assignment, S.APPROVED)
    audit = _current_audit(assignment)
    if audit is None:
        raise ValidationError({"audit": "The job has no visit report."})
    adjusted = payments.reimbursement_amount(reimbursement, cap=assignment.reimbursement_cap)
    claimed = assignment.reimbursement
    if adjusted is not None:
        assignment.reimbursement = adjusted
    assignment.reviewer_id = actor.user_id or assignment.reviewer_id
    assignment.revision_due_at = None
    assignment.save(update_fields=["status", "reviewer", "revision_due_at", "reimbursement"])
    extra = {}
    if adjusted is not None:
        extra["reimbursement"] = {"before": str(claimed), "after": str(adjusted)}
    _log(org_id, actor, "assignment.approve", assignment, before, audit=audit.pk, **extra)
    payments.payable_on_approve(org_id=org_id, actor=actor, assignment=assignment)
    emit(
        organization=org_id,
        event_type="AssignmentApproved",
        aggregate=assignment,
        payload={"assignment_id": assignment.pk, "audit_id": audit.pk, "shopper_id": assignment.shopper_id},
    )
    audit_publish(organization=org_id, actor=actor, audit=audit)
    before = _move(assignment, S.PUBLISHED)
    assignment.save(update_fields=["status"])
    _log(org_id, actor, "assignment.publish", assignment, before, audit=audit.pk)
    _rate(org_id, actor, assignment, rating, rating_comment)
    return assignment


@transaction.atomic
def assignment_reject(
    *,
    organization,
    actor: Actor,
    assignment: Assignment,
    reason: str,
    rating=None,
    rating_comment: str = "",
) -> Assignment:
    org_id = _check_tenant(organization)
    reason = _reason(reason)
    assignment = _locked(assignment)
    _not_own_review(assignment, actor)
    before = _move(assignment, S.REJECTED)
    assignment.status_reason = reason
    assignment.reviewer_id = actor.user_id or assignment.reviewer_id
    assignment.save(update_fields=["status", "status_reason", "reviewer"])
    _log(org_id, actor, "assignment.reject", assignment, before, reason=reason)
    payments.payable_on_cancel(org_id=org_id, actor=actor, assignment=assignment)
    _rate(org_id, actor, assignment, rating, rating_comment)
    emit(
        organization=org_id,
        event_type="AssignmentRejected",
        aggregate=assignment,
        payload={"assignment_id": assignment.pk, "shopper_id": assignment.shopper_id},
    )
    return assignment


@transaction.atomic
def assignment_cancel(*, organization, actor: Actor, assignment: Assignment, reason: str) -> Assignment:
    org_id = _check_tenant(organization)
    reason = _reason(reason)
    assignment = _locked(assignment)
    before = _move(assignment, S.CANCELLED)
    assignment.status_reason = reason
    assignment.save(update_fields=["status", "status_reason"])
    _log(org_id, actor, "assignment.cancel", assignment, before, reason=reason)
    payments.payable_on_cancel(org_id=org_id, actor=actor, assignment=assignment)
    return assignment


# --- periodic work (beat) ------------------------------------------------------------------------
# Each function re-checks its condition on a locked row, so a dispatcher running twice at once or
# a redelivered task changes nothing twice.


def overdue_jobs(now) -> list[tuple[int, int]]:
    """(tenant_id, id) of taken jobs whose window closed; call inside unscoped()."""
    return list(
        Assignment.objects.filter(status__in=(S.ASSIGNED, S.IN_PROGRESS), window_end__lt=now)
        .order_by("organization_id", "pk")
        .values_list("organization_id", "pk")
    )


def expired_revisions(now) -> list[tuple[int, int]]:
    return list(
        Assignment.objects.filter(status=S.RETURNED, revision_due_at__lt=now)
        .order_by("organization_id", "pk")
        .values_list("organization_id", "pk")
    )


def reminders_due(now) -> list[tuple[int, int]]:
    return list(
        Assignment.objects.filter(
            status__in=(S.ASSIGNED, S.IN_PROGRESS), window_end__gt=now, window_end__lte=now + REMINDER_BEFORE
        )
        .order_by("organization_id", "pk")
        .values_list("organization_id", "pk")
    )


@transaction.atomic
def assignments_release_overdue(*, organization, ids: list[int] | None = None, now=None) -> list[int]:
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    released = []
    qs = Assignment.objects.select_for_update(skip_locked=True).filter(
        status__in=(S.ASSIGNED, S.IN_PROGRESS), window_end__lt=now
    )
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    for assignment in qs.order_by("pk"):
        before, shopper_id = _move(assignment, S.OPEN), assignment.shopper_id
        assignment.shopper = None
        assignment.assigned_at = None
        assignment.status_reason = "Released: the visit window ended before the report was submitted."
        assignment.save(update_fields=["status", "shopper", "assigned_at", "status_reason"])
        # The half-filled report belonged to the shopper who let the job lapse.
        Audit.objects.filter(assignment=assignment, status=Audit.Status.DRAFT).delete()
        _log(org_id, Actor.system(), "assignment.release", assignment, before, shopper=shopper_id)
        emit(
            organization=org_id,
            event_type="AssignmentReleased",
            aggregate=assignment,
            payload={"assignment_id": assignment.pk, "shopper_id": shopper_id},
        )
        released.append(assignment.pk)
    return released


@transaction.atomic
def assignments_expire_revisions(*, organization, ids: list[int] | None = None, now=None) -> list[int]:
    """Returned jobs the shopper did not fix in time go back to the reviewer as they are."""
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    moved = []
    qs = Assignment.objects.select_for_update(skip_locked=True).filter(
        status=S.RETURNED, revision_due_at__lt=now
    )
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    for assignment in qs.order_by("pk"):
        before = _move(assignment, S.IN_REVIEW)
        assignment.status_reason = "The revision window ended without a resubmission."
        assignment.revision_due_at = None
        assignment.save(update_fields=["status", "status_reason", "revision_due_at"])
        Audit.objects.filter(assignment=assignment, status=Audit.Status.DRAFT).update(
            status=Audit.Status.SUBMITTED
        )
        _log(org_id, Actor.system(), "assignment.revision_expired", assignment, before)
        moved.append(assignment.pk)
    return moved


def auto_assign_due(now) -> list[tuple[int, int]]:
    """(tenant_id, id) of open jobs left on the board past their programme's
    ``auto_assign_after_hours``; call inside unscoped()."""
    rows = (
        Assignment.objects.filter(
            status=S.OPEN,
            window_end__gt=now,
            program__active=True,
            scenario__active=True,
            program__auto_assign_after_hours__isnull=False,
        )
        .order_by("organization_id", "pk")
        .values_list("organization_id", "pk", "created_at", "program__auto_assign_after_hours")
    )
    return [(org, pk) for org, pk, at, hours in rows if at + dt.timedelta(hours=hours) <= now]


def _distance_km(shopper: Shopper, assignment: Assignment) -> float:
    location = assignment.location
    if None in (shopper.latitude, shopper.longitude, location.latitude, location.longitude):
        return math.inf  # eligible (radius unchecked) but never preferred over a known distance
    return haversine_km(shopper.latitude, shopper.longitude, location.latitude, location.longitude)


def assignments_auto_assign(
    *, organization, actor: Actor | None = None, ids: list[int] | None = None, now=None
) -> list[tuple[int, int]]:
    """The scheduler's alternative to the board: give each open job to an eligible shopper.

    Every approved shopper is checked with the same ``eligibility`` as a self-assign (certified,
    within radius, under the open-job cap, no lockout), so the scheduler never assigns what the
    shopper could not have taken. Among the eligible, the one with the fewest open jobs wins (load
    balancing: a shopper living next to ten stores does not get all ten), then the nearest, then
    the lowest id. Jobs go earliest window first; each is one transaction with the shopper's and
    the job's rows locked, as in ``assignment_take``, and eligibility re-read under the lock.
    Returns (assignment id, shopper id) for each job assigned; jobs nobody may take stay open.
    """
    org_id = _check_tenant(organization)
    actor = actor or Actor.system()
    now = now or timezone.now()
    jobs_qs = Assignment.objects.filter(
        status=S.OPEN, window_end__gt=now, program__active=True, scenario__active=True
    ).select_related("program", "scenario", "location")
    if ids is not None:
        jobs_qs = jobs_qs.filter(pk__in=ids)
    shoppers = list(Shopper.objects.filter(status=Shopper.Status.APPROVED).order_by("pk"))
    facts = {s.pk: ShopperFacts.of(s) for s in shoppers}
    done: list[tuple[int, int]] = []
    for job in jobs_qs.order_by("window_start", "pk"):
        ranked = sorted(
            (
                (len(facts[s.pk].open_jobs), _distance_km(s, job), s.pk, s)
                for s in shoppers
                if eligibility(s, job, now=now, facts=facts[s.pk])[0]
            ),
            key=lambda row: row[:3],
        )
        for _, _, _, shopper in ranked:
            with transaction.atomic():
                locked_shopper = Shopper.objects.select_for_update().get(pk=shopper.pk)
                locked = (
                    Assignment.objects.select_for_update(skip_locked=True)
                    .select_related("program", "location", "scenario")
                    .filter(pk=job.pk, status=S.OPEN)
                    .first()
                )
                if locked is None:
                    break  # taken from the board meanwhile
                fresh = ShopperFacts.of(locked_shopper)
                facts[shopper.pk] = fresh
                if not eligibility(locked_shopper, locked, now=now, facts=fresh)[0]:
                    continue
                before = _move(locked, S.ASSIGNED)
                locked.shopper = locked_shopper
                locked.assigned_at = now
                locked.status_reason = "Assigned by the scheduler."
                locked.save(update_fields=["status", "shopper", "assigned_at", "status_reason"])
                _log(org_id, actor, "assignment.auto_assign", locked, before, shopper=locked_shopper.pk)
                emit(
                    organization=org_id,
                    event_type="AssignmentTaken",
                    aggregate=locked,
                    payload={"assignment_id": locked.pk, "shopper_id": locked_shopper.pk, "automatic": True},
                )
                start = timezone.localtime(locked.window_start).strftime("%Y-%m-%d %H:%M")
                end = timezone.localtime(locked.window_end).strftime("%Y-%m-%d %H:%M %Z")
                transaction.on_commit(
                    lambda a=locked, s=locked_shopper, start=start, end=end: send_mail(
                        subject=f"New job assigned to you: {a.location.name}",
                        message=(
                            f'Hello {s.name},\n\nThe job "{a.scenario.title}" at {a.location.name} has been '
                            f"assigned to you. Visit between {start} and {end} and submit your report by "
                            "then; after that it is released to other shoppers.\n"
                        ),
                        from_email=None,
                        recipient_list=[s.email],
                    )
                )
                facts[shopper.pk] = ShopperFacts.of(locked_shopper)
                done.append((locked.pk, locked_shopper.pk))
                break
    return done


def assignments_remind(*, organization, ids: list[int] | None = None, now=None) -> list[int]:
    """Email shoppers whose window ends within REMINDER_BEFORE; once per job and window.

    The audit-log row is the "sent" mark, written under the job's row lock, so two runs at once
    send one email.
    """
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    sent = []
    qs = Assignment.objects.filter(
        status__in=(S.ASSIGNED, S.IN_PROGRESS), window_end__gt=now, window_end__lte=now + REMINDER_BEFORE
    )
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    for pk in qs.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            assignment = (
                Assignment.objects.select_for_update()
                .select_related("shopper", "location", "scenario")
                .filter(pk=pk, status__in=(S.ASSIGNED, S.IN_PROGRESS), shopper__isnull=False)
                .first()
            )
            if assignment is None:
                continue
            marker = f"{assignment.window_end.isoformat()}:{assignment.shopper_id}"
            if AuditLog.objects.filter(
                action="assignment.remind",
                object_type=assignment._meta.label,
                object_id=str(pk),
                changes__marker=marker,
            ).exists():
                continue
            audit_log_write(
                organization=org_id,
                actor=Actor.system(),
                action="assignment.remind",
                instance=assignment,
                changes={"marker": marker},
            )
            end = timezone.localtime(assignment.window_end).strftime("%Y-%m-%d %H:%M %Z")
            transaction.on_commit(
                lambda a=assignment, end=end: send_mail(
                    subject=f"Reminder: your visit to {a.location.name} is due by {end}",
                    message=(
                        f'Hello {a.shopper.name},\n\nYour job "{a.scenario.title}" at {a.location.name} '
                        f"must be visited and submitted by {end}. After that it is released to other "
                        "shoppers.\n"
                    ),
                    from_email=None,
                    recipient_list=[a.shopper.email],
                )
            )
            sent.append(pk)
    return sent


__all__ = [
    "TRANSITIONS",
    "DraftConflict",
    "Reason",
    "ShopperFacts",
    "assignment_approve",
    "assignment_cancel",
    "assignment_create",
    "assignment_draft_save",
    "assignment_return",
    "assignment_review",
    "assignment_start",
    "assignment_submit",
    "assignment_take",
    "assignments_auto_assign",
    "assignments_expire_revisions",
    "assignments_release_overdue",
    "assignments_remind",
    "draft_revision",
    "eligibility",
    "haversine_km",
    "job_board",
    "shopper_for_user",
    "submission_errors",
]
