"""Reads behind the case pages. Callers pass querysets already scoped to the member."""

from __future__ import annotations

import datetime as dt
from collections import Counter

from django.db.models import Count, Q

from cem.params import id_of
from feedback.cases import ACTIVE_STATUSES
from feedback.models import Answer, Case, Question

# Oldest and most critical first: priority (Critical interactions were raised a level), then age.
WORK_ORDER = ("-priority", "created_at", "pk")

STATUS_VIEWS = {
    "active": ("Open and in progress", Q(status__in=ACTIVE_STATUSES)),
    "overdue": ("Overdue", None),  # needs "now"; built in cases_for_list
    "resolved": ("Resolved", Q(status=Case.Status.RESOLVED)),
    "closed": ("Closed", Q(status=Case.Status.CLOSED)),
    "all": ("All", Q()),
}
RECENT_DAYS = 30


def overdue_q(now: dt.datetime) -> Q:
    return Q(status__in=ACTIVE_STATUSES, sla_due_at__lt=now)


def cases_for_list(scoped_qs, *, params, now: dt.datetime):
    view = params.get("status") or "active"
    if view not in STATUS_VIEWS:
        view = "active"
    qs = scoped_qs.filter(overdue_q(now) if view == "overdue" else STATUS_VIEWS[view][1])
    location = params.get("location") or ""
    if (location_id := id_of(location)) is not None:
        qs = qs.filter(location_id=location_id)
    return qs.select_related("location", "assignee", "employee").order_by(*WORK_ORDER), view


def open_cases(scoped_qs, *, location_id: int | None = None, limit: int = 10) -> list[Case]:
    """The most urgent open and in-progress cases (work order), optionally of one location; one query."""
    qs = scoped_qs.filter(status__in=ACTIVE_STATUSES)
    if location_id is not None:
        qs = qs.filter(location_id=location_id)
    return list(qs.select_related("location").order_by(*WORK_ORDER)[:limit])


def case_counts(scoped_qs, *, now: dt.datetime) -> dict:
    return scoped_qs.aggregate(
        active=Count("pk", filter=Q(status__in=ACTIVE_STATUSES)),
        overdue=Count("pk", filter=overdue_q(now)),
    )


def _display(answer: Answer) -> str:
    if answer.text:
        return answer.text
    if answer.choices:
        return ", ".join(answer.choices)
    if answer.number is None:
        return ""
    if answer.question_type == "fcr":
        return "Yes" if answer.number else "No"
    return f"{answer.number.normalize():f}"


def _label(question: Question | None, key: str, locale: str) -> str:
    text = question.text if question is not None and isinstance(question.text, dict) else {}
    return text.get(locale) or text.get("en") or next(iter(text.values()), "") or key


def case_answers(case: Case) -> list[dict]:
    """The response's answers with their question text, in the order the survey asked them."""
    answers = list(Answer.objects.filter(response_id=case.response_id).select_related("question"))
    answers.sort(key=lambda a: (a.question.page, a.question.position, a.pk) if a.question else (0, 0, a.pk))
    locale = case.response.locale if case.response_id else "en"
    return [
        {
            "key": a.question_key,
            "type": a.question_type,
            "label": _label(a.question, a.question_key, locale),
            "value": _display(a),
            "sentiment": a.sentiment,
            "topics": a.topics,
        }
        for a in answers
    ]


def complaint_review(scoped_qs, *, now: dt.datetime, limit: int = 100) -> dict:
    """Org-wide open cases and the last 30 days' cases, with a count of their themes."""
    since = now - dt.timedelta(days=RECENT_DAYS)
    related = ("location", "assignee")
    open_cases = list(
        scoped_qs.filter(status__in=ACTIVE_STATUSES).select_related(*related).order_by(*WORK_ORDER)[:limit]
    )
    recent = list(
        scoped_qs.filter(created_at__gte=since)
        .exclude(status__in=ACTIVE_STATUSES)
        .select_related(*related)
        .order_by(*WORK_ORDER)[:limit]
    )
    window = scoped_qs.filter(
        Q(status__in=ACTIVE_STATUSES) | Q(created_at__gte=since) | Q(resolved_at__gte=since)
    )
    # Cases are few next to responses; counting themes in Python keeps the SQL plain.
    themes = Counter(t for row in window.values_list("themes", flat=True).iterator() for t in row)
    counts = window.aggregate(
        active=Count("pk", filter=Q(status__in=ACTIVE_STATUSES)),
        overdue=Count("pk", filter=overdue_q(now)),
        opened_recently=Count("pk", filter=Q(created_at__gte=since)),
        resolved_recently=Count("pk", filter=Q(resolved_at__gte=since)),
        escalated=Count("pk", filter=Q(status__in=ACTIVE_STATUSES, escalated_at__isnull=False)),
    )
    return {
        "open_cases": open_cases,
        "recent_cases": recent,
        "themes": themes.most_common(10),
        "counts": counts,
        "days": RECENT_DAYS,
    }
