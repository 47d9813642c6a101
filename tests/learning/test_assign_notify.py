"""Reminders before the due date, overdue notices and escalation to the store's managers, with the
clock moved forward: each sent once (HTML + text), through the beat tasks too."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from cem.tenancy import tenant_context
from learning import assignment_tasks
from learning import assignments as services
from learning import models as lm
from tests.learning.factories import AssignmentFactory, LessonFactory

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0)


def notify(world, now):
    with tenant_context(world.a.org):
        return services.assignments_notify(organization=world.a.org, now=now)


def test_reminder_overdue_and_escalation_are_each_sent_once(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    emp = world.a.employees["a-n1"]  # store a-n1 has manager@acme.test
    lesson = LessonFactory(organization=world.a.org, title="acme safe lifting")
    a = AssignmentFactory(
        organization=world.a.org,
        employee=emp,
        lesson=lesson,
        assigned_at=T0,
        due_at=T0 + dt.timedelta(days=7),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert notify(world, T0) == {"reminded": [], "overdue": [], "escalated": []}
        # Two days before the due date (the default): a reminder, once.
        assert notify(world, T0 + dt.timedelta(days=5, hours=1))["reminded"] == [a.pk]
        assert notify(world, T0 + dt.timedelta(days=5, hours=2))["reminded"] == []
    [reminder] = mailoutbox
    assert (
        reminder.to == [emp.email]
        and "acme safe lifting" in reminder.subject
        and "Reminder" in reminder.subject
    )
    assert reminder.alternatives and "acme safe lifting" in reminder.alternatives[0][0]
    with django_capture_on_commit_callbacks(execute=True):
        # Past the due date: the overdue notice, once; no escalation yet (3 days by default).
        done = notify(world, T0 + dt.timedelta(days=8))
        assert done["overdue"] == [a.pk] and done["escalated"] == []
        assert notify(world, T0 + dt.timedelta(days=9))["overdue"] == []
        # Three days overdue: the store's manager hears about it, once.
        assert notify(world, T0 + dt.timedelta(days=10, hours=1))["escalated"] == [a.pk]
        assert notify(world, T0 + dt.timedelta(days=12))["escalated"] == []
    assert [m.to for m in mailoutbox] == [[emp.email], [emp.email], ["manager@acme.test"]]
    assert "Overdue" in mailoutbox[1].subject and emp.name in mailoutbox[2].subject
    assert "3 days overdue" in mailoutbox[2].body and mailoutbox[2].alternatives
    assert "/learning/assign/" in mailoutbox[2].body and "/learning/" in mailoutbox[0].body
    with tenant_context(world.a.org):
        a.refresh_from_db()
    assert a.reminder_sent_at and a.overdue_notified_at and a.escalated_at


def test_settings_change_the_timing_and_finished_work_is_left_alone(world, mailoutbox):
    with tenant_context(world.a.org):
        lm.LearningSettings.objects.create(
            organization=world.a.org, reminder_days_before_due=0, escalate_days_overdue=1
        )
    emp = world.a.employees["a-n2"]  # no manager at a-n2: escalation marked, nobody to mail
    a = AssignmentFactory(organization=world.a.org, employee=emp, due_at=T0 + dt.timedelta(hours=1))
    done = AssignmentFactory(
        organization=world.a.org, employee=emp, due_at=T0 - dt.timedelta(days=5), status="completed"
    )
    assert notify(world, T0)["reminded"] == []
    result = notify(world, T0 + dt.timedelta(days=2))
    assert result["overdue"] == [a.pk] and result["escalated"] == [a.pk]
    assert done.pk not in result["overdue"]


def test_beat_dispatch_runs_per_tenant(world, mailoutbox, django_capture_on_commit_callbacks):
    AssignmentFactory(
        organization=world.a.org,
        employee=world.a.employees["a-n1"],
        due_at=timezone.now() - dt.timedelta(hours=1),
    )
    with tenant_context(world.b.org):
        AssignmentFactory(
            organization=world.b.org,
            employee=world.b.employees["b-1"],
            due_at=timezone.now() - dt.timedelta(hours=1),
        )
    with django_capture_on_commit_callbacks(execute=True):
        assert assignment_tasks.assignments_notify_dispatch() == 2
    assert sorted(m.to[0] for m in mailoutbox) == sorted(
        [world.a.employees["a-n1"].email, world.b.employees["b-1"].email]
    )
    with django_capture_on_commit_callbacks(execute=True):
        assignment_tasks.assignments_notify_dispatch()
    assert len(mailoutbox) == 2
