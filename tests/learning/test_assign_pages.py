"""Assignment pages: the assign form with its result, the scoped list with overdue highlighted and
withdraw, the gap rules list and editor, and the gaps found with their evidence."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from cem.tenancy import tenant_context
from learning import models as lm
from tests import factories as f
from tests.learning.factories import AssignmentFactory, LearningPathFactory, LessonFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def lesson(world):
    return LessonFactory(organization=world.a.org, title="acme page lesson")


def _login(client, world, who):
    client.force_login(world.users[who])
    return client


def test_due_dates_show_the_day_chosen_in_the_organizations_time_zone(world, client, lesson):
    """A due date is the end of that day where the organization is: west of UTC that is already the
    next day in UTC, which the pages must not show."""
    org = world.a.org
    org.time_zone = "America/New_York"
    with tenant_context(org):
        org.save(update_fields=["time_zone"])
    due = (timezone.now() + dt.timedelta(days=10)).date().isoformat()
    _login(client, world, "manager")
    resp = client.post(
        "/learning/assign/new/",
        {"lesson": lesson.pk, "employees": [world.a.employees["a-n1"].pk], "due_at": due},
    )
    assert f"due {due}</li>" in resp.content.decode()
    listed = client.get("/learning/assign/").content.decode()
    assert f'<td data-label="Due">{due}' in listed
    client.force_login(world.users["employee"])
    day = dt.date.fromisoformat(due)
    assert f"Due {day.day} {day:%b %Y}" in client.get("/learning/").content.decode()


def test_assign_form_shows_who_was_assigned_and_who_was_skipped(world, client, lesson):
    emp = world.a.employees["a-n1"]
    AssignmentFactory(organization=world.a.org, employee=emp, lesson=lesson)
    extra = f.EmployeeFactory(
        organization=world.a.org, name="Ada Newhire", current_location=world.a.locations["a-n1"]
    )
    _login(client, world, "manager")
    page = client.get("/learning/assign/new/")
    assert page.status_code == 200
    # Only the manager's own people are offered.
    assert "Ada Newhire" in page.content.decode()
    assert world.a.employees["a-s1"].name not in page.content.decode()
    due = (timezone.now() + dt.timedelta(days=10)).date().isoformat()
    resp = client.post(
        "/learning/assign/new/",
        {"lesson": lesson.pk, "location": world.a.locations["a-n1"].pk, "due_at": due},
    )
    body = resp.content.decode()
    assert resp.status_code == 200 and 'data-testid="assign-result"' in body
    assert "1 assigned, 1 skipped" in body and "Ada Newhire" in body and "already has it open" in body
    with tenant_context(world.a.org):
        assert lm.Assignment.objects.get(employee=extra).due_at.date().isoformat() == due
    # Another store is not the manager's to choose: the form refuses it.
    resp = client.post(
        "/learning/assign/new/", {"lesson": lesson.pk, "location": world.a.locations["a-s1"].pk}
    )
    assert 'data-testid="error-location"' in resp.content.decode()
    resp = client.post("/learning/assign/new/", {"location": world.a.locations["a-n1"].pk})
    assert 'data-testid="error-lesson"' in resp.content.decode()


def test_list_is_scoped_highlights_overdue_and_withdraws(
    world, client, lesson, django_assert_max_num_queries
):
    late = AssignmentFactory(
        organization=world.a.org,
        employee=world.a.employees["a-n1"],
        lesson=lesson,
        due_at=timezone.now() - dt.timedelta(days=2),
        reason="acme late reason",
    )
    AssignmentFactory(organization=world.a.org, employee=world.a.employees["a-s1"], lesson=lesson)
    _login(client, world, "manager")
    with django_assert_max_num_queries(20):
        page = client.get("/learning/assign/")
    body = page.content.decode()
    assert body.count('data-testid="assignment-row"') == 1 and 'data-overdue="true"' in body
    assert "acme late reason" in body
    for _ in range(20):
        AssignmentFactory(
            organization=world.a.org,
            employee=f.EmployeeFactory(organization=world.a.org, current_location=world.a.locations["a-n1"]),
            lesson=lesson,
        )
    with django_assert_max_num_queries(20):
        page = client.get("/learning/assign/")
    assert page.content.decode().count('data-testid="assignment-row"') == 21
    assert '<small class="muted" data-testid="assignment-total">21</small>' in page.content.decode()
    page = client.get("/learning/assign/", {"status": "overdue"})
    assert page.content.decode().count('data-testid="assignment-row"') == 1
    resp = client.post(f"/learning/assign/{late.pk}/withdraw/", {"note": "Left the company."})
    assert resp.status_code == 302
    with tenant_context(world.a.org):
        late.refresh_from_db()
    assert late.status == "withdrawn" and late.withdrawn_note == "Left the company."
    # Someone else's store: 404.
    other = AssignmentFactory(
        organization=world.a.org,
        employee=world.a.employees["a-s1"],
        lesson=LessonFactory(organization=world.a.org),
    )
    assert client.post(f"/learning/assign/{other.pk}/withdraw/", {"note": "x"}).status_code == 404


def test_employees_use_the_portal_not_this_list(world, client):
    _login(client, world, "employee")
    assert client.get("/learning/assign/").status_code == 403
    assert client.get("/learning/assign/rules/").status_code == 403


def test_rule_editor_creates_and_validates(world, client, lesson):
    _login(client, world, "trainer")
    form = {
        "name": "acme greeting below 60",
        "standard": world.a.standard.pk,
        "subject": "location",
        "target": "location",
        "source": "any",
        "threshold": "60",
        "window_days": 30,
        "min_points": 5,
        "lesson": lesson.pk,
        "cooldown_days": 28,
        "due_days": 7,
        "holdout_share": "0.1",
        "active": "on",
    }
    path = LearningPathFactory(organization=world.a.org, name="acme page path")
    bad = client.post("/learning/assign/rules/new/", {**form, "path": path.pk, "threshold": "120"})
    body = bad.content.decode()
    assert 'data-testid="error-lesson"' in body and 'data-testid="error-threshold"' in body
    bad = client.post("/learning/assign/rules/new/", {**form, "target": "employee"})
    assert 'data-testid="error-target"' in bad.content.decode()
    assert client.post("/learning/assign/rules/new/", form).status_code == 302
    with tenant_context(world.a.org):
        rule = lm.GapRule.objects.get(name="acme greeting below 60")
    assert rule.threshold == Decimal(60) and rule.holdout_share == Decimal("0.1")
    resp = client.post(f"/learning/assign/rules/{rule.pk}/", {**form, "threshold": "55"})
    assert resp.status_code == 302
    with tenant_context(world.a.org):
        rule.refresh_from_db()
    assert rule.threshold == Decimal(55)
    page = client.get("/learning/assign/rules/")
    assert "acme greeting below 60" in page.content.decode()
    assert client.get(f"/learning/assign/rules/{rule.pk}/").status_code == 200


def test_gaps_found_show_their_evidence(world, client, lesson, django_assert_max_num_queries):
    with tenant_context(world.a.org):
        rule = lm.GapRule.objects.create(
            organization=world.a.org,
            name="acme r",
            standard=world.a.standard,
            threshold=60,
            lesson=lesson,
            subject="location",
            target="location",
        )
        for i in range(5):
            lm.GapTrigger.objects.create(
                organization=world.a.org,
                rule=rule,
                standard=world.a.standard,
                subject="location",
                location=world.a.locations["a-n1"],
                score=Decimal("41.5"),
                points=14,
                evidence={"feedback": {"n": 14, "mean": 27.5, "native": "2.1/5"}, "window_days": 30},
                outcome="holdout" if i == 0 else "assigned",
                holdout_until=timezone.now() + dt.timedelta(days=28) if i == 0 else None,
                created_at=timezone.now(),
            )
    _login(client, world, "trainer")
    with django_assert_max_num_queries(20):
        page = client.get("/learning/assign/gaps/")
    body = page.content.decode()
    assert body.count('data-testid="trigger-row"') == 5
    assert "Surveys: 2.1/5 (14 answers" in body and "Held out" in body
    page = client.get("/learning/assign/gaps/", {"outcome": "holdout"})
    assert page.content.decode().count('data-testid="trigger-row"') == 1
