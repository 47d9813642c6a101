"""Reads for the learner's portal (API and pages): one's own assignments, attempts and certificates."""

from __future__ import annotations

import datetime as dt

from django.db.models import Exists, OuterRef, Prefetch, Q
from django.utils import timezone

from learning.models import Assignment, ContentStatus, LessonVersion, PathStep, Quiz

DUE_SOON = dt.timedelta(days=3)


def own_q(membership, prefix: str = "") -> Q:
    """The caller's own learning rows: by employee for staff, by user for everyone else (as
    learning.progress.Learner matches them)."""
    if membership.employee_id:
        return Q(**{f"{prefix}employee_id": membership.employee_id})
    return Q(**{f"{prefix}user_id": membership.user_id, f"{prefix}employee__isnull": True})


def my_assignments(queryset):
    """Assignments with what a list shows, in a fixed number of queries."""
    quiz = Quiz.objects.filter(lesson_id=OuterRef("lesson_id"), status=ContentStatus.PUBLISHED)
    return (
        queryset.select_related("lesson", "path")
        .prefetch_related(
            Prefetch("path__steps", queryset=PathStep.objects.select_related("lesson").order_by("position"))
        )
        .annotate(has_quiz=Exists(quiz))
        .order_by("due_at", "pk")
    )


def portal_sections(queryset, now=None) -> dict[str, list[Assignment]]:
    """My learning, grouped: overdue, due soon, the rest of the open ones, completed (latest first)."""
    now = now or timezone.now()
    sections = {"overdue": [], "due_soon": [], "assigned": [], "completed": []}
    for a in queryset.exclude(status=Assignment.Status.WITHDRAWN):
        if a.status == Assignment.Status.COMPLETED:
            sections["completed"].append(a)
        elif a.due_at < now:
            sections["overdue"].append(a)
        elif a.due_at <= now + DUE_SOON:
            sections["due_soon"].append(a)
        else:
            sections["assigned"].append(a)
    sections["completed"].sort(key=lambda a: a.completed_at or a.assigned_at, reverse=True)
    return sections


def localised(version: LessonVersion, language: str | None) -> dict:
    """A version's title and body in the language asked for, falling back to the lesson's own."""
    tr = (version.translations or {}).get(language or "") or {}
    return {
        "title": tr.get("title") or version.title,
        "body_html": tr.get("body_html") or version.body_html,
        "language": language if tr.get("body_html") else None,
    }
