"""Certification assignments: a learner without an Employee row (a mystery shopper) is given a
certification path to take on the portal.

The audits app decides who must certify and for which programme (audits.certification); this
module only writes the assignment, the way every other assignment is written (one open
assignment per learner and path, enforced by the partial unique index, so a double click or two
handlers at once end with the same row), with its LessonAssigned event.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from cem.events import emit
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from learning.models import Assignment, Audience, ContentStatus, LearningPath

DEFAULT_DUE_DAYS = 30
LEARNER_AUDIENCES = (Audience.SHOPPERS, Audience.EVERYONE)


def open_certification(*, user_id: int, path_id: int) -> Assignment | None:
    return (
        Assignment.objects.filter(
            user_id=user_id, employee__isnull=True, path_id=path_id, status__in=Assignment.OPEN
        )
        .order_by("pk")
        .first()
    )


def certification_assign(
    *,
    organization,
    actor: Actor,
    user_id: int,
    path: LearningPath,
    reason: str,
    due_days: int = DEFAULT_DUE_DAYS,
    now: dt.datetime | None = None,
) -> tuple[Assignment, bool]:
    """The user's open assignment of the path, created (source "certification") when they have
    none. Returns (assignment, created)."""
    org_id = _check_tenant(organization)
    if path.status != ContentStatus.PUBLISHED:
        raise ValidationError({"path": "This certification path is not published."})
    if path.audience not in LEARNER_AUDIENCES:
        raise ValidationError({"path": "This path is not meant for shoppers."})
    existing = open_certification(user_id=user_id, path_id=path.pk)
    if existing is not None:
        return existing, False
    now = now or timezone.now()
    try:
        with transaction.atomic():
            assignment = Assignment.objects.create(
                organization_id=org_id,
                path=path,
                user_id=user_id,
                source=Assignment.Source.CERTIFICATION,
                reason=reason[:400],
                assigned_at=now,
                due_at=now + dt.timedelta(days=due_days),
                assigned_by_id=actor.user_id,
            )
            audit_log_write(
                organization=org_id, actor=actor, action="learning.certification_assign", instance=assignment
            )
            emit(
                organization=org_id,
                event_type="LessonAssigned",
                aggregate=assignment,
                payload={
                    "assignment_id": assignment.pk,
                    "lesson_id": None,
                    "path_id": path.pk,
                    "employee_id": None,
                    "user_id": user_id,
                    "location_id": None,
                    "source": assignment.source,
                    "rule_id": None,
                    "due_at": assignment.due_at.isoformat(),
                },
            )
    except IntegrityError:
        # Assigned concurrently (the open-assignment unique index): that row is the answer.
        existing = open_certification(user_id=user_id, path_id=path.pk)
        if existing is None:
            raise
        return existing, False
    return assignment, True
