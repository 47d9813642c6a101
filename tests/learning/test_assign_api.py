"""Manual assigns (people, team, location, role) within the caller's scope, withdrawals, gap rule
validation, triggers, org B's 404s and list query counts, through /api/v1/."""

from __future__ import annotations

import pytest

from cem import models as m
from cem.tenancy import tenant_context
from learning import models as lm
from tests import factories as f
from tests.learning.factories import AssignmentFactory, LearningPathFactory, LessonFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/learning-assignments/"
RULES = "/api/v1/gap-rules/"
TRIGGERS = "/api/v1/gap-triggers/"


@pytest.fixture
def lesson(world):
    return LessonFactory(organization=world.a.org, title="acme api lesson")


def _extra(world, store="a-n1", **kw):
    return f.EmployeeFactory(organization=world.a.org, current_location=world.a.locations[store], **kw)


def _open(world, **kw):
    with tenant_context(world.a.org):
        return list(lm.Assignment.objects.filter(status__in=lm.Assignment.OPEN, **kw).order_by("pk"))


def test_trainer_assigns_a_location_and_repeats_are_skipped_with_reasons(world, api, lesson):
    extra = _extra(world, name="Extra Person")
    client = api(world.users["trainer"])
    body = {"lesson": lesson.pk, "location": world.a.locations["a-n1"].pk, "due_at": "2099-01-31"}
    resp = client.post(URL, body, format="json")
    assert resp.status_code == 201, resp.content
    created = resp.json()["created"]
    assert {a["employee"] for a in created} == {world.a.employees["a-n1"].pk, extra.pk}
    assert created[0]["due_at"].startswith("2099-01-31") and created[0]["source"] == "manual"
    assert resp.json()["skipped"] == []
    with tenant_context(world.a.org):
        assert m.OutboxEvent.objects.filter(event_type="LessonAssigned").count() == 2
        assert m.AuditLog.objects.filter(action="learning.assign").count() == 1
    again = client.post(URL, body, format="json").json()
    assert again["created"] == [] and {s["reason"] for s in again["skipped"]} == {"already has it open"}


def test_assign_by_role_team_and_people(world, api, lesson):
    loc = world.a.locations["a-n2"]
    boss = _extra(world, "a-n2", role="store_manager")
    team = f.TeamFactory(organization=world.a.org, location=loc, name="acme tills")
    mate = _extra(world, "a-n2", current_team=team)
    client = api(world.users["trainer"])
    resp = client.post(URL, {"lesson": lesson.pk, "role": "store_manager"}, format="json")
    assert [a["employee"] for a in resp.json()["created"]] == [boss.pk]
    resp = client.post(URL, {"lesson": lesson.pk, "team": team.pk}, format="json")
    assert [a["employee"] for a in resp.json()["created"]] == [mate.pk]
    path = LearningPathFactory(organization=world.a.org, name="acme onboarding")
    emp = world.a.employees["a-s1"]
    resp = client.post(URL, {"path": path.pk, "employees": [emp.pk]}, format="json")
    assert resp.status_code == 201 and resp.json()["created"][0]["path"] == path.pk


def test_store_manager_assigns_only_within_their_store(world, api, lesson):
    client = api(world.users["manager"])  # store a-n1
    other_store = world.a.locations["a-n2"]
    resp = client.post(URL, {"lesson": lesson.pk, "location": other_store.pk}, format="json")
    assert resp.status_code == 400 and "location" in resp.json()
    resp = client.post(URL, {"lesson": lesson.pk, "employees": [world.a.employees["a-n2"].pk]}, format="json")
    assert resp.status_code == 400 and "employees" in resp.json()
    _extra(world, "a-n2", role="store_manager")
    mine = _extra(world, "a-n1", role="store_manager")
    resp = client.post(URL, {"lesson": lesson.pk, "role": "store_manager"}, format="json")
    assert [a["employee"] for a in resp.json()["created"]] == [mine.pk]
    # Their list shows their store only.
    AssignmentFactory(organization=world.a.org, employee=world.a.employees["a-s1"], lesson=lesson)
    listed = client.get(URL).json()["results"]
    assert {a["location"] for a in listed} == {world.a.locations["a-n1"].pk}


def test_regional_manager_reaches_their_region(world, api, lesson):
    client = api(world.users["regional"])  # north: a-n1, a-n2
    resp = client.post(URL, {"lesson": lesson.pk, "location": world.a.locations["a-n2"].pk}, format="json")
    assert resp.status_code == 201
    resp = client.post(URL, {"lesson": lesson.pk, "location": world.a.locations["a-s1"].pk}, format="json")
    assert resp.status_code == 400 and "location" in resp.json()


def test_cap_on_open_assignments(world, api, lesson):
    emp = world.a.employees["a-n1"]
    with tenant_context(world.a.org):
        lm.LearningSettings.objects.create(organization=world.a.org, max_open_assignments=1)
    AssignmentFactory(organization=world.a.org, employee=emp)
    resp = api(world.users["trainer"]).post(URL, {"lesson": lesson.pk, "employees": [emp.pk]}, format="json")
    [skip] = resp.json()["skipped"]
    assert skip["employee_id"] == emp.pk and "1 open assignments" in skip["reason"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"location": "LOC"}, "lesson"),
        ({"lesson": "LESSON", "path": "PATH", "location": "LOC"}, "lesson"),
        ({"lesson": "LESSON"}, "employees"),
        ({"lesson": "LESSON", "location": "LOC", "due_at": "2001-01-01"}, "due_at"),
        ({"lesson": "LESSON", "location": "LOC", "due_at": "soon"}, "due_at"),
        ({"lesson": "LESSON", "role": "pilot"}, "role"),
        ({"lesson": "DRAFT", "location": "LOC"}, "lesson"),
        ({"lesson": 999999, "location": "LOC"}, "lesson"),
    ],
)
def test_manual_assign_validation_names_the_field(world, api, lesson, body, field):
    draft = LessonFactory(organization=world.a.org, title="acme draft", status="draft")
    path = LearningPathFactory(organization=world.a.org)
    subst = {"LESSON": lesson.pk, "PATH": path.pk, "LOC": world.a.locations["a-n1"].pk, "DRAFT": draft.pk}
    body = {k: subst.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    resp = api(world.users["trainer"]).post(URL, body, format="json")
    assert resp.status_code == 400 and field in resp.json(), resp.content
    assert _open(world) == []


def test_withdraw_with_a_note(world, api, lesson):
    a = AssignmentFactory(organization=world.a.org, employee=world.a.employees["a-n1"], lesson=lesson)
    client = api(world.users["manager"])
    resp = client.post(f"{URL}{a.pk}/withdraw/", {}, format="json")
    assert resp.status_code == 400 and "note" in resp.json()
    resp = client.post(f"{URL}{a.pk}/withdraw/", {"note": "Moved to the warehouse."}, format="json")
    assert resp.status_code == 200 and resp.json()["status"] == "withdrawn"
    assert resp.json()["withdrawn_note"] == "Moved to the warehouse."
    resp = client.post(f"{URL}{a.pk}/withdraw/", {"note": "again"}, format="json")
    assert resp.status_code == 400 and "status" in resp.json()
    with tenant_context(world.a.org):
        assert m.OutboxEvent.objects.filter(event_type="AssignmentWithdrawn").count() == 1
    # Employees may read their own, not assign or withdraw.
    employee = api(world.users["employee"])
    assert employee.get(URL).status_code == 200
    assert employee.post(URL, {"lesson": lesson.pk, "employees": [1]}, format="json").status_code == 403


def test_list_filters_and_overdue(world, api, lesson):
    from django.utils import timezone

    emp = world.a.employees["a-n1"]
    late = AssignmentFactory(
        organization=world.a.org,
        employee=emp,
        lesson=lesson,
        due_at=timezone.now() - timezone.timedelta(days=1),
    )
    AssignmentFactory(organization=world.a.org, employee=world.a.employees["a-n2"], source="rule")
    client = api(world.users["trainer"])
    assert [a["id"] for a in client.get(URL, {"overdue": "true"}).json()["results"]] == [late.pk]
    assert client.get(URL, {"overdue": "true"}).json()["results"][0]["overdue"] is True
    assert len(client.get(URL, {"source": "rule"}).json()["results"]) == 1
    assert [a["id"] for a in client.get(URL, {"lesson": lesson.pk}).json()["results"]] == [late.pk]
    assert len(client.get(URL, {"location": world.a.locations["a-n2"].pk}).json()["results"]) == 1
    assert len(client.get(URL, {"employee": emp.pk, "status": "assigned"}).json()["results"]) == 1


def test_org_b_gets_404s(world, api, lesson):
    a = AssignmentFactory(organization=world.a.org, employee=world.a.employees["a-n1"], lesson=lesson)
    with tenant_context(world.a.org):
        rule = lm.GapRule.objects.create(
            organization=world.a.org, name="acme r", standard=world.a.standard, threshold=50, lesson=lesson
        )
    outsider = api(world.users["outsider"])
    assert outsider.get(f"{URL}{a.pk}/").status_code == 404
    assert outsider.post(f"{URL}{a.pk}/withdraw/", {"note": "x"}, format="json").status_code == 404
    assert outsider.get(f"{RULES}{rule.pk}/").status_code == 404
    assert outsider.patch(f"{RULES}{rule.pk}/", {"active": False}, format="json").status_code == 404
    resp = outsider.post(URL, {"lesson": lesson.pk, "location": world.a.locations["a-n1"].pk}, format="json")
    assert resp.status_code == 400 and "lesson" in resp.json()
    with tenant_context(world.b.org):
        lesson_b = LessonFactory(organization=world.b.org, title="beta lesson")
    resp = outsider.post(
        URL, {"lesson": lesson_b.pk, "employees": [world.a.employees["a-n1"].pk]}, format="json"
    )
    assert resp.status_code == 400 and "employees" in resp.json()
    assert _open(world, lesson=lesson) == [a]


def test_gap_rule_crud_and_validation(world, api, lesson):
    client = api(world.users["trainer"])
    good = {
        "name": "acme greet",
        "standard": world.a.standard.pk,
        "subject": "location",
        "target": "location",
    }
    good |= {"threshold": "60", "lesson": lesson.pk}
    resp = client.post(RULES, good, format="json")
    assert resp.status_code == 201, resp.content
    rule_id = resp.json()["id"]
    assert resp.json()["cooldown_days"] == 28 and resp.json()["holdout_share"] == "0.100"
    path = LearningPathFactory(organization=world.a.org)
    for patch, field in (
        ({"threshold": "150"}, "threshold"),
        ({"threshold": "-1"}, "threshold"),
        ({"path": path.pk}, "lesson"),  # both
        ({"lesson": None}, "lesson"),  # neither
        ({"target": "employee"}, "target"),
        ({"holdout_share": "1.5"}, "holdout_share"),
        ({"window_days": 0}, "window_days"),
    ):
        resp = client.patch(f"{RULES}{rule_id}/", patch, format="json")
        assert resp.status_code == 400 and field in resp.json(), (patch, resp.content)
    resp = client.patch(f"{RULES}{rule_id}/", {"lesson": None, "path": path.pk}, format="json")
    assert resp.status_code == 200 and resp.json()["path"] == path.pk
    assert client.get(RULES).json()["results"][0]["id"] == rule_id
    with tenant_context(world.a.org):
        lm.GapTrigger.objects.create(
            organization=world.a.org,
            rule_id=rule_id,
            standard=world.a.standard,
            subject="location",
            location=world.a.locations["a-n1"],
            score=40,
            points=5,
            outcome="skipped",
            created_at=lesson.created_at,
        )
    resp = client.delete(f"{RULES}{rule_id}/")
    assert resp.status_code == 400 and "active" in resp.json()
    triggers = client.get(TRIGGERS, {"rule": rule_id}).json()["results"]
    assert len(triggers) == 1 and triggers[0]["rule_name"] == "acme greet"
    # Managers follow training but do not write rules or see the gaps list.
    assert api(world.users["manager"]).get(RULES).status_code == 403
    assert api(world.users["manager"]).get(TRIGGERS).status_code == 403


def test_list_query_counts_do_not_grow(world, api, lesson, django_assert_max_num_queries):
    client = api(world.users["trainer"])
    for _i in range(3):
        AssignmentFactory(organization=world.a.org, employee=_extra(world), lesson=lesson)
    with django_assert_max_num_queries(12):
        small = client.get(URL)
    for _i in range(30):
        AssignmentFactory(organization=world.a.org, employee=_extra(world), lesson=lesson)
    with django_assert_max_num_queries(12):
        big = client.get(URL)
    assert small.json()["count"] == 3 and big.json()["count"] == 33
    with django_assert_max_num_queries(12):
        assert client.get(TRIGGERS).status_code == 200
    with django_assert_max_num_queries(12):
        assert client.get(RULES).status_code == 200
