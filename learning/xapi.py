"""xAPI 1.0.3 statements for learning events, and their forwarding to an external LRS.

One statement per event: a learner experienced (opened) a lesson, completed it, passed or failed
a quiz. Each is written in the transaction of the event it describes, with an id derived from
the event (uuid5), so a replay writes nothing new. Every statement is checked against
learning/xapi_schema.json before it is stored; an invalid one raises ``StatementInvalid`` and
nothing of the event is stored.

The actor is an xAPI account ({homePage: SITE_URL, name: "employee-12"}), never an email.

Forwarding: when the organization set ``LearningSettings.lrs_url``, the statements go to
``<lrs_url>/statements`` after commit (learning.xapi_tasks), signed with HMAC-SHA256 over
``"<timestamp>.<body>"`` with ``lrs_secret`` (headers ``X-CEM-Timestamp``, ``X-CEM-Signature:
sha256=<hex>``), retried with backoff; each try counts in ``forward_attempts``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from functools import cache
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from jsonschema import Draft202012Validator

from cem import webhooks
from learning.models import Assignment, LearningSettings, Lesson, Quiz, QuizAttempt, Statement

logger = logging.getLogger(__name__)

XAPI_VERSION = "1.0.3"
VERB_BASE = "http://adlnet.gov/expapi/verbs/"
VERBS = ("experienced", "completed", "passed", "failed")
ACTIVITY_LESSON = "http://adlnet.gov/expapi/activities/lesson"
ACTIVITY_ASSESSMENT = "http://adlnet.gov/expapi/activities/assessment"
ACTIVITY_COURSE = "http://adlnet.gov/expapi/activities/course"
EXT_ORGANIZATION = "/xapi/extensions/organization"
FORWARD_TIMEOUT = 10
FORWARD_ERROR_MAX = 300


class StatementInvalid(ValueError):
    """A statement failed the xAPI schema; the message lists every error with its path."""


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads((Path(__file__).with_name("xapi_schema.json")).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def validate(body: dict) -> None:
    errors = sorted(_validator().iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        raise StatementInvalid(
            "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '(statement)'}: {e.message}" for e in errors)
        )


def site_url() -> str:
    return settings.SITE_URL.rstrip("/")


def _uuid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{site_url()}/{name}"))


def registration_of(assignment: Assignment | None) -> str | None:
    return (
        _uuid(f"learning/assignments/{assignment.pk}") if assignment is not None and assignment.pk else None
    )


def actor_of(*, employee_id: int | None, user_id: int | None, name: str = "") -> dict:
    account = f"employee-{employee_id}" if employee_id else f"user-{user_id}"
    actor = {"objectType": "Agent", "account": {"homePage": site_url(), "name": account}}
    if name:
        actor["name"] = name
    return actor


def lesson_activity(lesson: Lesson, language: str = "en") -> dict:
    return {
        "objectType": "Activity",
        "id": f"{site_url()}/learning/lessons/{lesson.pk}",
        "definition": {"name": {language or "en": lesson.title}, "type": ACTIVITY_LESSON},
    }


def quiz_activity(quiz: Quiz, language: str = "en") -> dict:
    return {
        "objectType": "Activity",
        "id": f"{site_url()}/learning/quizzes/{quiz.pk}",
        "definition": {"name": {language or "en": quiz.title}, "type": ACTIVITY_ASSESSMENT},
    }


def path_activity(path_id: int, name: str) -> dict:
    return {
        "objectType": "Activity",
        "id": f"{site_url()}/learning/paths/{path_id}",
        "definition": {"name": {"en": name}, "type": ACTIVITY_COURSE},
    }


def build(
    *,
    statement_id: str,
    verb: str,
    actor: dict,
    activity: dict,
    when,
    organization_id: int,
    registration: str | None = None,
    result: dict | None = None,
    language: str = "en",
    parents: list[dict] | None = None,
    groupings: list[dict] | None = None,
) -> dict:
    if verb not in VERBS:
        raise StatementInvalid(f"verb: {verb!r} is not one of {', '.join(VERBS)}")
    context: dict = {
        "platform": "CEM",
        "language": language or "en",
        "extensions": {site_url() + EXT_ORGANIZATION: {"id": organization_id}},
    }
    if registration:
        context["registration"] = registration
    activities = {}
    if parents:
        activities["parent"] = parents
    if groupings:
        activities["grouping"] = groupings
    if activities:
        context["contextActivities"] = activities
    body = {
        "id": statement_id,
        "version": XAPI_VERSION,
        "actor": actor,
        "verb": {"id": VERB_BASE + verb, "display": {"en-US": verb}},
        "object": activity,
        "context": context,
        "timestamp": when.isoformat().replace("+00:00", "Z"),
    }
    if result is not None:
        body["result"] = result
    return body


def store(
    *, organization_id: int, verb: str, body: dict, employee_id, user_id, location_id, when
) -> Statement | None:
    """Validate and store one statement; None when a statement with its id exists (a replay)."""
    validate(body)
    if Statement.objects.filter(statement_id=body["id"]).exists():
        return None
    try:
        with transaction.atomic():
            statement = Statement.objects.create(
                organization_id=organization_id,
                statement_id=body["id"],
                verb=verb,
                employee_id=employee_id,
                user_id=None if employee_id else user_id,
                location_id=location_id,
                body=body,
                timestamp=when,
            )
    except IntegrityError:
        return None
    _forward_after_commit(organization_id, statement.pk)
    return statement


def _forward_after_commit(organization_id: int, statement_id: int) -> None:
    lrs = (
        LearningSettings.objects.filter(organization_id=organization_id)
        .values_list("lrs_url", flat=True)
        .first()
    )
    if not lrs:
        return

    def kick():
        from learning.xapi_tasks import xapi_forward

        try:
            xapi_forward.delay(organization_id, [statement_id])
        except OSError:
            # The broker is down: the statement stays unforwarded (forwarded_at null) for a resend.
            logger.warning("broker unavailable; xAPI statement %s not queued", statement_id)

    transaction.on_commit(kick)


def _path_context(assignment: Assignment) -> list[dict] | None:
    if not assignment.path_id:
        return None
    from learning.models import LearningPath

    name = LearningPath.objects.filter(pk=assignment.path_id).values_list("name", flat=True).first() or ""
    return [path_activity(assignment.path_id, name)]


def _learner_row(learner, assignment: Assignment | None) -> dict:
    return {
        "employee_id": learner.employee_id,
        "user_id": learner.user_id,
        "location_id": (assignment.location_id if assignment else None) or learner.location_id,
    }


def record_experienced(*, organization, learner, assignment: Assignment, lesson: Lesson, when, language="en"):
    org_id = getattr(organization, "pk", organization)
    body = build(
        statement_id=_uuid(f"xapi/{org_id}/experienced/assignment/{assignment.pk}/lesson/{lesson.pk}"),
        verb="experienced",
        actor=actor_of(employee_id=learner.employee_id, user_id=learner.user_id, name=learner.name),
        activity=lesson_activity(lesson, language),
        when=when,
        organization_id=org_id,
        registration=registration_of(assignment),
        groupings=_path_context(assignment),
    )
    return store(
        organization_id=org_id, verb="experienced", body=body, when=when, **_learner_row(learner, assignment)
    )


def record_completed(*, organization, learner, assignment: Assignment, lesson: Lesson, when, language="en"):
    org_id = getattr(organization, "pk", organization)
    body = build(
        statement_id=_uuid(f"xapi/{org_id}/completed/assignment/{assignment.pk}/lesson/{lesson.pk}"),
        verb="completed",
        actor=actor_of(employee_id=learner.employee_id, user_id=learner.user_id, name=learner.name),
        activity=lesson_activity(lesson, language),
        when=when,
        organization_id=org_id,
        registration=registration_of(assignment),
        result={"completion": True},
        groupings=_path_context(assignment),
    )
    return store(
        organization_id=org_id, verb="completed", body=body, when=when, **_learner_row(learner, assignment)
    )


def record_quiz_result(*, organization, learner, attempt: QuizAttempt, quiz: Quiz, when, language="en"):
    org_id = getattr(organization, "pk", organization)
    verb = "passed" if attempt.passed else "failed"
    score = float(attempt.score)
    parents = None
    if quiz.lesson_id:
        lesson = Lesson.objects.filter(pk=quiz.lesson_id).only("id", "title").first()
        parents = [lesson_activity(lesson, language)] if lesson else None
    assignment = Assignment(pk=attempt.assignment_id) if attempt.assignment_id else None
    body = build(
        statement_id=_uuid(f"xapi/{org_id}/{verb}/attempt/{attempt.pk}"),
        verb=verb,
        actor=actor_of(employee_id=learner.employee_id, user_id=learner.user_id, name=learner.name),
        activity=quiz_activity(quiz, language),
        when=when,
        organization_id=org_id,
        registration=registration_of(assignment),
        result={
            "score": {"scaled": round(score / 100, 4), "raw": score, "min": 0, "max": 100},
            "success": bool(attempt.passed),
            "completion": True,
        },
        parents=parents,
    )
    row = {"employee_id": learner.employee_id, "user_id": learner.user_id, "location_id": attempt.location_id}
    return store(organization_id=org_id, verb=verb, body=body, when=when, **row)


# --- forwarding ---------------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def http_post(url: str, data: bytes, headers: dict, timeout: float) -> int:
    """POST and return the status; the transport tests replace.

    Sent through the outgoing webhooks' transport, because an LRS URL is typed by an org admin
    exactly like a webhook URL: only http(s), in production only public addresses (checked when
    connecting, so DNS rebinding cannot reach the internal network), no redirects (urllib would
    follow a 302 to anywhere), no proxies from the environment. Its own timeouts (3 s to
    connect, 10 s to answer) stand in for ``timeout``.
    """
    try:
        return webhooks.http_post(url, data, headers).status_code
    except webhooks.DeliveryError as exc:
        raise OSError(str(exc)) from exc


def forward(statement_ids: list[int], *, transport=None) -> list[int]:
    """Send the unforwarded ones of these statements to the organization's LRS in one POST (an
    array, as xAPI allows). Returns the ids still unforwarded (to retry); [] when done or when no
    LRS is configured."""
    transport = transport or http_post
    config = LearningSettings.objects.first()
    if config is None or not config.lrs_url:
        return []
    pending = list(Statement.objects.filter(pk__in=statement_ids, forwarded_at__isnull=True).order_by("pk"))
    if not pending:
        return []
    ids = [s.pk for s in pending]
    if not config.lrs_secret:
        Statement.objects.filter(pk__in=ids).update(
            forward_attempts=F("forward_attempts") + 1, forward_error="The LRS secret is not set."
        )
        return []  # retrying cannot help until an admin sets it
    body = json.dumps([s.body for s in pending], separators=(",", ":"), sort_keys=True).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Experience-API-Version": XAPI_VERSION,
        "X-CEM-Timestamp": stamp,
        "X-CEM-Signature": "sha256=" + sign(config.lrs_secret, stamp, body),
    }
    url = config.lrs_url.rstrip("/") + "/statements"
    try:
        status = transport(url, body, headers, FORWARD_TIMEOUT)
        error = "" if 200 <= status < 300 else f"The LRS answered HTTP {status}."
    except (OSError, ValueError) as exc:  # URLError, timeouts and refused connections are OSErrors
        error = f"{type(exc).__name__}: {exc}"
    if error:
        Statement.objects.filter(pk__in=ids).update(
            forward_attempts=F("forward_attempts") + 1, forward_error=error[:FORWARD_ERROR_MAX]
        )
        return ids
    Statement.objects.filter(pk__in=ids).update(
        forward_attempts=F("forward_attempts") + 1, forward_error="", forwarded_at=timezone.now()
    )
    return []
