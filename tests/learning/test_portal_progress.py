"""Taking lessons: start, self-start, progress, complete (idempotent, on time), paths and certificates."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from cem.models import OutboxEvent
from cem.tenancy import tenant_context
from learning import models as lm
from learning import progress
from tests.learning import factories as lf
from tests.learning.portal_helpers import actor_of, assign, learner_of, quiz_with

S = lm.Assignment.Status


def _call(world, service, persona="employee", **kw):
    with tenant_context(world.a.org):
        return service(
            organization=world.a.org, actor=actor_of(world, persona), learner=learner_of(world, persona), **kw
        )


def test_start_marks_in_progress_once(world):
    a = assign(world, lf.LessonFactory(organization=world.a.org))
    _call(world, progress.lesson_start, assignment=a)
    with tenant_context(world.a.org):
        a.refresh_from_db()
        started = a.started_at
    assert a.status == S.IN_PROGRESS and started is not None
    _call(world, progress.lesson_start, assignment=a)
    with tenant_context(world.a.org):
        a.refresh_from_db()
        assert a.started_at == started
        assert lm.Statement.objects.filter(verb="experienced").count() == 1


def test_someone_elses_assignment_is_refused(world):
    from django.core.exceptions import PermissionDenied

    other = lf.AssignmentFactory(
        organization=world.a.org,
        lesson=lf.LessonFactory(organization=world.a.org),
        employee=world.a.employees["a-n2"],
    )
    with pytest.raises(PermissionDenied):
        _call(world, progress.lesson_start, assignment=other)


def test_progress_only_grows_and_stays_below_complete(world):
    a = assign(world, lf.LessonFactory(organization=world.a.org))
    _call(world, progress.progress_save, assignment=a, percent=60)
    _call(world, progress.progress_save, assignment=a, percent=30)
    row = _call(world, progress.progress_save, assignment=a, percent=100)
    assert row.progress == 99 and row.status == S.IN_PROGRESS
    with pytest.raises(ValidationError):
        _call(world, progress.progress_save, assignment=a, percent=101)


def test_complete_is_idempotent_and_on_time(world):
    lesson = lf.LessonFactory(organization=world.a.org)
    a = assign(world, lesson)
    first = _call(world, progress.lesson_complete, assignment=a)
    second = _call(world, progress.lesson_complete, assignment=a)
    assert first.status == "completed" and second.status == "already"
    assert second.completion.pk == first.completion.pk
    with tenant_context(world.a.org):
        a.refresh_from_db()
        assert a.status == S.COMPLETED and a.progress == 100 and a.completed_at is not None
        completion = lm.Completion.objects.get()
        assert completion.on_time is True
        assert completion.version_id == lesson.current_version_id
        assert completion.employee_id == world.a.employees["a-n1"].pk
        events = list(OutboxEvent.objects.filter(event_type="LessonCompleted"))
        assert len(events) == 1 and events[0].payload["on_time"] is True
        assert lm.Statement.objects.filter(verb="completed").count() == 1


def test_late_completion_is_not_on_time(world):
    a = assign(
        world,
        lf.LessonFactory(organization=world.a.org),
        assigned_at=timezone.now() - dt.timedelta(days=10),
        due_at=timezone.now() - dt.timedelta(days=1),
    )
    result = _call(world, progress.lesson_complete, assignment=a)
    assert result.completion.on_time is False


def test_lesson_with_quiz_completes_on_pass_only(world):
    lesson = lf.LessonFactory(organization=world.a.org)
    quiz = quiz_with(world.a.org, lesson=lesson)
    a = assign(world, lesson)
    result = _call(world, progress.lesson_complete, assignment=a)
    assert result.status == "quiz_required" and result.quiz.pk == quiz.pk
    with tenant_context(world.a.org):
        assert not lm.Completion.objects.exists()
        a.refresh_from_db()
        assert a.status == S.IN_PROGRESS


def test_withdrawn_assignment_refuses(world):
    a = assign(world, lf.LessonFactory(organization=world.a.org), status=S.WITHDRAWN)
    with pytest.raises(progress.Conflict):
        _call(world, progress.lesson_complete, assignment=a)


def test_self_start_creates_one_self_assignment(world):
    lesson = lf.LessonFactory(organization=world.a.org)
    a = _call(world, progress.lesson_self_start, lesson=lesson)
    b = _call(world, progress.lesson_self_start, lesson=lesson)
    assert a.pk == b.pk and a.source == lm.Assignment.Source.SELF and a.status == S.IN_PROGRESS
    draft = lf.LessonFactory(organization=world.a.org, status=lm.ContentStatus.DRAFT)
    with pytest.raises(ValidationError):
        _call(world, progress.lesson_self_start, lesson=draft)
    shoppers_only = lf.LessonFactory(organization=world.a.org, audience=lm.Audience.SHOPPERS)
    with pytest.raises(ValidationError):
        _call(world, progress.lesson_self_start, lesson=shoppers_only)


def test_shopper_learns_as_user(world):
    lesson = lf.LessonFactory(organization=world.a.org, audience=lm.Audience.SHOPPERS)
    a = _call(world, progress.lesson_self_start, persona="shopper", lesson=lesson)
    result = _call(world, progress.lesson_complete, persona="shopper", assignment=a)
    assert result.completion.user_id == world.users["shopper"].pk and result.completion.employee_id is None


def _path(world, n=2):
    org = world.a.org
    path = lf.LearningPathFactory(organization=org, name="acme onboarding")
    lessons = [lf.LessonFactory(organization=org) for _ in range(n)]
    for i, lesson in enumerate(lessons):
        lf.PathStepFactory(organization=org, path=path, lesson=lesson, position=i + 1)
    return path, lessons


def test_path_progress_and_certificate(world):
    path, (l1, l2) = _path(world)
    a = assign(world, path=path)
    with pytest.raises(ValidationError):
        _call(world, progress.lesson_complete, assignment=a)  # which lesson of the path?
    r1 = _call(world, progress.lesson_complete, assignment=a, lesson_id=l1.pk)
    assert r1.status == "completed" and r1.certificate is None
    with tenant_context(world.a.org):
        a.refresh_from_db()
    assert a.completed_lesson_ids == [l1.pk] and a.progress == 50 and a.status == S.IN_PROGRESS
    row = _call(world, progress.progress_save, assignment=a, percent=50, lesson_id=l2.pk)
    assert row.progress == 75  # one step done, half of the second read
    r2 = _call(world, progress.lesson_complete, assignment=a, lesson_id=l2.pk)
    assert r2.certificate is not None and r2.certificate.learner_name == world.a.employees["a-n1"].name
    again = _call(world, progress.lesson_complete, assignment=a, lesson_id=l2.pk)
    assert again.status == "already"
    with tenant_context(world.a.org):
        a.refresh_from_db()
        assert a.status == S.COMPLETED and a.progress == 100
        assert lm.PathCertificate.objects.count() == 1
        assert OutboxEvent.objects.filter(event_type="PathCompleted").count() == 1
        assert OutboxEvent.objects.filter(event_type="LessonCompleted").count() == 2


def test_path_refuses_a_lesson_outside_it(world):
    path, _ = _path(world)
    a = assign(world, path=path)
    stranger = lf.LessonFactory(organization=world.a.org)
    with pytest.raises(ValidationError) as exc:
        _call(world, progress.lesson_complete, assignment=a, lesson_id=stranger.pk)
    assert "lesson" in exc.value.message_dict
