"""Taking lessons: start (or self-start), save progress, complete; path progress and certificates.

Every write locks the assignment row first (``select_for_update``), so a double click, two tabs
or a retried request serialise on it and the second sees what the first did; the unique
constraint on (assignment, lesson) completions is the last wall. A lesson ending with a
published quiz completes when the quiz is passed (learning.quizzes calls ``complete_locked``),
not when "complete" is clicked.

Learning events (LessonCompleted, PathCompleted) go to the outbox in the same transaction as
the change, and so does the xAPI statement of each (learning.xapi), so they exist exactly when
the change does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from cem.events import emit
from cem.models import Employee, Role
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from learning import xapi
from learning.models import (
    Assignment,
    Audience,
    Completion,
    ContentStatus,
    LearningPath,
    Lesson,
    PathCertificate,
    PathStep,
    Quiz,
    QuizAttempt,
)

S = Assignment.Status
SELF_START_DUE = dt.timedelta(days=30)


class Conflict(Exception):
    """The object's state does not allow the step (409); ``field`` names what is in the way."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Learner:
    """Who is learning: an employee (staff) or, for shoppers and members without an employee
    record, the user. Rows of an employee learner are matched by employee only, like the scope."""

    user_id: int
    employee_id: int | None
    location_id: int | None
    name: str
    audiences: tuple[str, ...]

    @classmethod
    def of(cls, membership, user=None) -> Learner:
        employee = None
        if membership.employee_id:
            employee = (
                Employee.objects.filter(pk=membership.employee_id)
                .only("id", "name", "current_location_id")
                .first()
            )
        user = user if user is not None and user.pk == membership.user_id else membership.user
        name = employee.name if employee is not None else user.get_full_name() or user.get_username()
        shopper = membership.role == Role.SHOPPER
        audiences = (
            (Audience.SHOPPERS, Audience.EVERYONE) if shopper else (Audience.EMPLOYEES, Audience.EVERYONE)
        )
        return cls(
            user_id=user.pk,
            employee_id=employee.pk if employee else None,
            location_id=employee.current_location_id if employee else None,
            name=name,
            audiences=audiences,
        )

    def q(self, prefix: str = "") -> Q:
        if self.employee_id:
            return Q(**{f"{prefix}employee_id": self.employee_id})
        return Q(**{f"{prefix}user_id": self.user_id, f"{prefix}employee__isnull": True})

    def owns(self, row) -> bool:
        if self.employee_id:
            return row.employee_id == self.employee_id
        return row.employee_id is None and row.user_id == self.user_id

    def learner_fields(self) -> dict:
        return {"employee_id": self.employee_id, "user_id": None if self.employee_id else self.user_id}


@dataclass(frozen=True)
class CompleteResult:
    status: str  # "completed" | "already" | "quiz_required"
    assignment: Assignment
    completion: Completion | None = None
    certificate: PathCertificate | None = None
    quiz: Quiz | None = None


def _locked(assignment: Assignment, learner: Learner) -> Assignment:
    row = Assignment.objects.select_for_update().filter(pk=assignment.pk).first()
    if row is None or not learner.owns(row):
        raise PermissionDenied("This is not your assignment.")
    return row


def path_lesson_ids(path_id: int) -> list[int]:
    return list(
        PathStep.objects.filter(path_id=path_id).order_by("position").values_list("lesson_id", flat=True)
    )


def lesson_of(assignment: Assignment, lesson_id: int | None = None) -> Lesson:
    """The lesson a step acts on: the assignment's own, or one step of its path."""
    if assignment.lesson_id:
        if lesson_id is not None and lesson_id != assignment.lesson_id:
            raise ValidationError({"lesson": "This assignment is for another lesson."})
        return Lesson.objects.select_related("current_version").get(pk=assignment.lesson_id)
    if lesson_id is None:
        raise ValidationError({"lesson": "Name the lesson of the path."})
    if lesson_id not in path_lesson_ids(assignment.path_id):
        raise ValidationError({"lesson": "This lesson is not a step of the assignment's path."})
    return Lesson.objects.select_related("current_version").get(pk=lesson_id)


def published_quiz(lesson_id: int) -> Quiz | None:
    return Quiz.objects.filter(lesson_id=lesson_id, status=ContentStatus.PUBLISHED).first()


def _mark_started(assignment: Assignment, now) -> bool:
    """assigned → in_progress, once (a conditional update: a concurrent start changes nothing)."""
    changed = Assignment.objects.filter(pk=assignment.pk, status=S.ASSIGNED).update(
        status=S.IN_PROGRESS, started_at=now
    )
    if changed:
        assignment.status, assignment.started_at = S.IN_PROGRESS, now
    return bool(changed)


def lesson_start(
    *, organization, actor: Actor, learner: Learner, assignment: Assignment, lesson_id: int | None = None
) -> Assignment:
    """The learner opened the lesson: the assignment is in progress, and an xAPI "experienced"
    statement records it (once per assignment and lesson)."""
    org_id = _check_tenant(organization)
    with transaction.atomic():
        row = _locked(assignment, learner)
        if row.status == S.WITHDRAWN:
            raise Conflict("status", "This assignment was withdrawn.")
        lesson = lesson_of(row, lesson_id)
        if lesson.current_version_id is None:
            raise Conflict("lesson", "This lesson has no published version yet.")
        now = timezone.now()
        if _mark_started(row, now):
            audit_log_write(organization=org_id, actor=actor, action="learning.lesson_start", instance=row)
        xapi.record_experienced(organization=org_id, learner=learner, assignment=row, lesson=lesson, when=now)
    return row


def _self_assignment(org_id: int, actor: Actor, learner: Learner, content: dict, reason: str, action: str):
    """The learner's own open assignment of this content, created (source "self") if none is open."""
    open_q = learner.q() & Q(**content, status__in=Assignment.OPEN)
    existing = Assignment.objects.filter(open_q).first()
    if existing is not None:
        return existing
    now = timezone.now()
    try:
        with transaction.atomic():
            existing = Assignment.objects.create(
                organization_id=org_id,
                **content,
                **learner.learner_fields(),
                location_id=learner.location_id,
                source=Assignment.Source.SELF,
                reason=reason,
                assigned_at=now,
                due_at=now + SELF_START_DUE,
            )
            audit_log_write(organization=org_id, actor=actor, action=action, instance=existing)
    except IntegrityError:
        # A concurrent click created it first (the open-assignment unique constraint).
        existing = Assignment.objects.filter(open_q).first()
        if existing is None:
            raise
    return existing


def lesson_self_start(*, organization, actor: Actor, learner: Learner, lesson: Lesson) -> Assignment:
    """A learner starts a published lesson nobody assigned: it becomes their own (source "self")
    assignment, or the open one they already have."""
    org_id = _check_tenant(organization)
    if lesson.status != ContentStatus.PUBLISHED or lesson.current_version_id is None:
        raise ValidationError({"lesson": "This lesson is not published."})
    if lesson.audience not in learner.audiences:
        raise ValidationError({"lesson": "This lesson is not for your audience."})
    existing = _self_assignment(
        org_id,
        actor,
        learner,
        {"lesson": lesson},
        "You started this lesson yourself.",
        "learning.lesson_self_start",
    )
    return lesson_start(organization=org_id, actor=actor, learner=learner, assignment=existing)


def path_self_start(*, organization, actor: Actor, learner: Learner, path: LearningPath) -> Assignment:
    """A learner starts a published learning path on their own, as they can a lesson; its lessons
    are then taken step by step (each opening records its "experienced" statement)."""
    org_id = _check_tenant(organization)
    if path.status != ContentStatus.PUBLISHED:
        raise ValidationError({"path": "This learning path is not published."})
    if path.audience not in learner.audiences:
        raise ValidationError({"path": "This learning path is not for your audience."})
    if not PathStep.objects.filter(path=path).exists():
        raise ValidationError({"path": "This learning path has no lessons yet."})
    return _self_assignment(
        org_id,
        actor,
        learner,
        {"path": path},
        "You started this learning path yourself.",
        "learning.path_self_start",
    )


def progress_save(
    *,
    organization,
    actor: Actor,
    learner: Learner,
    assignment: Assignment,
    percent: int,
    lesson_id: int | None = None,
) -> Assignment:
    """Remember how far the learner got (0-100 of the lesson). Progress only grows, so replays and
    out-of-order autosaves are harmless. Not audit-logged: it is written every few seconds."""
    _check_tenant(organization)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise ValidationError({"percent": "A whole number from 0 to 100."})
    with transaction.atomic():
        row = _locked(assignment, learner)
        if row.status not in Assignment.OPEN:
            return row
        lesson_of(row, lesson_id)
        if row.path_id:
            steps = path_lesson_ids(row.path_id)
            done = len(set(row.completed_lesson_ids) & set(steps))
            # Completing a lesson is what finishes a step; reading it moves the bar less than a step.
            overall = int((done + min(percent, 99) / 100) * 100 / max(len(steps), 1))
        else:
            overall = min(percent, 99)
        now = timezone.now()
        _mark_started(row, now)
        Assignment.objects.filter(pk=row.pk, status__in=Assignment.OPEN).update(
            progress=Greatest(F("progress"), overall)
        )
        row.refresh_from_db(fields=["progress", "status", "started_at"])
    return row


def lesson_complete(
    *, organization, actor: Actor, learner: Learner, assignment: Assignment, lesson_id: int | None = None
) -> CompleteResult:
    """The learner says they finished the lesson. With a published quiz, completion waits for a
    passed attempt in this assignment; without one, the lesson completes now. Repeat clicks
    answer "already"."""
    org_id = _check_tenant(organization)
    with transaction.atomic():
        row = _locked(assignment, learner)
        if row.status == S.WITHDRAWN:
            raise Conflict("status", "This assignment was withdrawn.")
        lesson = lesson_of(row, lesson_id)
        existing = Completion.objects.filter(assignment=row, lesson=lesson).first()
        if existing is not None:
            return CompleteResult("already", row, completion=existing)
        if lesson.current_version_id is None:
            raise Conflict("lesson", "This lesson has no published version yet.")
        now = timezone.now()
        _mark_started(row, now)
        quiz = published_quiz(lesson.pk)
        if quiz is not None:
            passed = QuizAttempt.objects.filter(quiz=quiz, assignment=row, passed=True).exists()
            if not passed:
                return CompleteResult("quiz_required", row, quiz=quiz)
        return complete_locked(
            organization=org_id, actor=actor, learner=learner, assignment=row, lesson=lesson
        )


def complete_locked(
    *, organization, actor: Actor, learner: Learner, assignment: Assignment, lesson: Lesson, now=None
) -> CompleteResult:
    """Record the completion; the caller holds the assignment's row lock inside its transaction."""
    org_id = getattr(organization, "pk", organization)
    now = now or timezone.now()
    existing = Completion.objects.filter(assignment=assignment, lesson=lesson).first()
    if existing is not None:
        return CompleteResult("already", assignment, completion=existing)
    location_id = assignment.location_id or learner.location_id
    completion = Completion.objects.create(
        organization_id=org_id,
        lesson=lesson,
        version_id=lesson.current_version_id,
        assignment=assignment,
        **learner.learner_fields(),
        location_id=location_id,
        completed_at=now,
        on_time=now <= assignment.due_at,
    )
    certificate = None
    if assignment.path_id:
        steps = path_lesson_ids(assignment.path_id)
        done = [i for i in assignment.completed_lesson_ids if i in steps]
        if lesson.pk not in done:
            done.append(lesson.pk)
        finished = set(steps) <= set(done)
        assignment.completed_lesson_ids = done
        assignment.progress = 100 if finished else int(len(done) * 100 / max(len(steps), 1))
        fields = ["completed_lesson_ids", "progress", "status", "started_at"]
        if finished:
            assignment.status, assignment.completed_at = S.COMPLETED, now
            fields.append("completed_at")
    else:
        finished = True
        assignment.status, assignment.completed_at, assignment.progress = S.COMPLETED, now, 100
        fields = ["status", "completed_at", "progress", "started_at"]
    if assignment.started_at is None:
        assignment.started_at = now
    if assignment.status == S.ASSIGNED:
        assignment.status = S.IN_PROGRESS
    assignment.save(update_fields=fields)
    audit_log_write(organization=org_id, actor=actor, action="learning.lesson_complete", instance=completion)
    emit(
        organization=org_id,
        event_type="LessonCompleted",
        aggregate=completion,
        payload={
            "completion_id": completion.pk,
            "assignment_id": assignment.pk,
            "lesson_id": lesson.pk,
            "version_id": completion.version_id,
            "employee_id": completion.employee_id,
            "user_id": completion.user_id,
            "location_id": location_id,
            "on_time": completion.on_time,
            "source": assignment.source,
        },
    )
    xapi.record_completed(
        organization=org_id, learner=learner, assignment=assignment, lesson=lesson, when=now
    )
    if assignment.path_id and finished:
        certificate = PathCertificate.objects.create(
            organization_id=org_id,
            path_id=assignment.path_id,
            assignment=assignment,
            **learner.learner_fields(),
            location_id=location_id,
            learner_name=learner.name,
            issued_at=now,
        )
        audit_log_write(
            organization=org_id, actor=actor, action="learning.path_certificate", instance=certificate
        )
        emit(
            organization=org_id,
            event_type="PathCompleted",
            aggregate=certificate,
            payload={
                "certificate_id": certificate.pk,
                "path_id": assignment.path_id,
                "employee_id": certificate.employee_id,
                "user_id": certificate.user_id,
                "location_id": location_id,
            },
        )
    return CompleteResult("completed", assignment, completion=completion, certificate=certificate)
