"""xAPI statements: one per learning event, valid against the schema; LRS forwarding signed and retried."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.conf import settings
from django.utils import timezone

from cem.tenancy import tenant_context
from learning import models as lm
from learning import progress, quizzes, xapi, xapi_tasks
from tests.learning import factories as lf
from tests.learning.portal_helpers import actor_of, assign, learner_of, quiz_with, right_answers


def _events(world):
    """One lesson opened and completed, one quiz failed then passed."""
    org = world.a.org
    lesson = lf.LessonFactory(organization=org, title="acme greeting")
    quiz = quiz_with(org, n=2, lesson=lesson)
    a = assign(world, lesson)
    ctx = {"organization": org, "actor": actor_of(world), "learner": learner_of(world)}
    with tenant_context(org):
        progress.lesson_start(assignment=a, **ctx)
        progress.lesson_start(assignment=a, **ctx)  # opened again: no second statement
        attempt = quizzes.attempt_start(quiz=quiz, **ctx)
        quizzes.attempt_submit(attempt=attempt, answers={}, **ctx)
        attempt = quizzes.attempt_start(quiz=quiz, **ctx)
        quizzes.attempt_submit(attempt=attempt, answers=right_answers(attempt), **ctx)
        quizzes.attempt_submit(attempt=attempt, answers={}, **ctx)  # double submit
        progress.lesson_complete(assignment=a, **ctx)  # already completed by the pass
    return lesson, quiz, a


def test_one_valid_statement_per_event(world):
    lesson, quiz, a = _events(world)
    with tenant_context(world.a.org):
        statements = list(lm.Statement.objects.order_by("timestamp", "pk"))
    assert [s.verb for s in statements] == ["experienced", "failed", "passed", "completed"]
    for s in statements:
        xapi.validate(s.body)
        assert s.body["id"] == str(s.statement_id)
        assert s.employee_id == world.a.employees["a-n1"].pk
    by_verb = {s.verb: s.body for s in statements}
    site = settings.SITE_URL.rstrip("/")
    assert by_verb["completed"]["object"]["id"] == f"{site}/learning/lessons/{lesson.pk}"
    assert by_verb["passed"]["object"]["id"] == f"{site}/learning/quizzes/{quiz.pk}"
    assert by_verb["passed"]["verb"]["id"] == "http://adlnet.gov/expapi/verbs/passed"
    assert by_verb["passed"]["result"]["score"] == {"scaled": 1.0, "raw": 100.0, "min": 0, "max": 100}
    assert by_verb["passed"]["result"]["success"] is True
    assert by_verb["failed"]["result"]["success"] is False
    assert by_verb["completed"]["context"]["registration"] == xapi.registration_of(a)
    actor = by_verb["experienced"]["actor"]
    assert actor["account"] == {"homePage": site, "name": f"employee-{world.a.employees['a-n1'].pk}"}
    assert "mbox" not in actor and "@" not in json.dumps(actor)


def test_invalid_statement_raises_and_is_not_stored(world):
    body = xapi.build(
        statement_id=xapi._uuid("x/1"),
        verb="completed",
        actor=xapi.actor_of(employee_id=1, user_id=None),
        activity={"objectType": "Activity", "id": "not an iri"},
        when=timezone.now(),
        organization_id=world.a.org.pk,
    )
    with pytest.raises(xapi.StatementInvalid) as exc, tenant_context(world.a.org):
        xapi.store(
            organization_id=world.a.org.pk,
            verb="completed",
            body=body,
            employee_id=None,
            user_id=world.users["employee"].pk,
            location_id=None,
            when=timezone.now(),
        )
    assert "object/id" in str(exc.value)
    with tenant_context(world.a.org):
        assert not lm.Statement.objects.exists()
    bad = {
        **body,
        "object": {"objectType": "Activity", "id": "https://x.test/a"},
        "verb": {"id": "http://x/y"},
    }
    with pytest.raises(xapi.StatementInvalid):
        xapi.validate(bad)
    with pytest.raises(xapi.StatementInvalid):
        xapi.validate({**bad, "verb": body["verb"], "result": {"score": {"scaled": 2}}})


class FakeLRS:
    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.calls = []

    def __call__(self, url, data, headers, timeout):
        self.calls.append((url, data, headers))
        status = self.statuses.pop(0)
        if isinstance(status, Exception):
            raise status
        return status


def _with_lrs(world, secret="s3cret"):  # noqa: S107 - a test secret
    with tenant_context(world.a.org):
        lm.LearningSettings.objects.create(
            organization=world.a.org, lrs_url="https://lrs.acme.test/xapi/", lrs_secret=secret
        )


def test_forwarding_is_signed_and_marks_forwarded(world, monkeypatch, django_capture_on_commit_callbacks):
    _with_lrs(world)
    lrs = FakeLRS([200])
    monkeypatch.setattr(xapi, "http_post", lrs)
    a = assign(world, lf.LessonFactory(organization=world.a.org))
    with tenant_context(world.a.org), django_capture_on_commit_callbacks(execute=True):
        progress.lesson_start(
            organization=world.a.org, actor=actor_of(world), learner=learner_of(world), assignment=a
        )
    with tenant_context(world.a.org):
        statement = lm.Statement.objects.get()
    # Eager Celery in tests: the on-commit task already ran.
    assert len(lrs.calls) == 1
    url, data, headers = lrs.calls[0]
    assert url == "https://lrs.acme.test/xapi/statements"
    assert headers["X-Experience-API-Version"] == "1.0.3"
    expected = hmac.new(
        b"s3cret", headers["X-CEM-Timestamp"].encode() + b"." + data, hashlib.sha256
    ).hexdigest()
    assert headers["X-CEM-Signature"] == f"sha256={expected}"
    assert json.loads(data)[0]["id"] == str(statement.statement_id)
    assert statement.forwarded_at is not None and statement.forward_attempts == 1


def test_forwarding_failure_is_recorded_and_retried(world, monkeypatch):
    _with_lrs(world)
    lrs = FakeLRS([503, OSError("connection refused"), 200])
    monkeypatch.setattr(xapi, "http_post", lrs)
    retries = []

    def fake_retry(*, args, countdown):
        retries.append(countdown)
        return RuntimeError("retry scheduled")

    monkeypatch.setattr(xapi_tasks.xapi_forward, "retry", fake_retry)
    monkeypatch.setattr(xapi, "_forward_after_commit", lambda *a, **k: None)
    a = assign(world, lf.LessonFactory(organization=world.a.org))
    with tenant_context(world.a.org):
        progress.lesson_start(
            organization=world.a.org, actor=actor_of(world), learner=learner_of(world), assignment=a
        )
        statement = lm.Statement.objects.get()
    for expected_error in ("HTTP 503", "connection refused"):
        with pytest.raises(RuntimeError):
            xapi_tasks.xapi_forward.apply(args=(world.a.org.pk, [statement.pk]), throw=True)
        with tenant_context(world.a.org):
            statement.refresh_from_db()
        assert statement.forwarded_at is None and expected_error in statement.forward_error
    assert statement.forward_attempts == 2
    assert retries and retries[0] == xapi_tasks.backoff(0)
    assert xapi_tasks.xapi_forward.apply(args=(world.a.org.pk, [statement.pk])).get() == 1
    with tenant_context(world.a.org):
        statement.refresh_from_db()
    assert (
        statement.forwarded_at is not None
        and statement.forward_error == ""
        and statement.forward_attempts == 3
    )
    # Already forwarded: nothing is sent again.
    assert xapi_tasks.xapi_forward.apply(args=(world.a.org.pk, [statement.pk])).get() == 1
    assert len(lrs.calls) == 3


def test_backoff_grows():
    assert [xapi_tasks.backoff(n) for n in range(4)] == [15, 30, 60, 120]
    assert xapi_tasks.backoff(20) == xapi_tasks.BACKOFF_MAX


def test_no_lrs_no_forwarding(world, monkeypatch):
    lrs = FakeLRS([])
    monkeypatch.setattr(xapi, "http_post", lrs)
    a = assign(world, lf.LessonFactory(organization=world.a.org))
    with tenant_context(world.a.org):
        progress.lesson_start(
            organization=world.a.org, actor=actor_of(world), learner=learner_of(world), assignment=a
        )
        assert lm.Statement.objects.get().forward_attempts == 0
    assert lrs.calls == []


def test_sweep_requeues_old_unforwarded_statements(world, monkeypatch):
    import datetime as dt

    _with_lrs(world)
    monkeypatch.setattr(xapi, "_forward_after_commit", lambda *a, **k: None)
    a = assign(world, lf.LessonFactory(organization=world.a.org))
    with tenant_context(world.a.org):
        progress.lesson_start(
            organization=world.a.org, actor=actor_of(world), learner=learner_of(world), assignment=a
        )
        lm.Statement.objects.update(stored=timezone.now() - dt.timedelta(hours=3))
    sent = []
    monkeypatch.setattr(
        xapi_tasks.xapi_forward, "delay", lambda tenant_id, ids: sent.append((tenant_id, ids))
    )
    assert xapi_tasks.xapi_forward_sweep() == 1
    assert sent[0][0] == world.a.org.pk
