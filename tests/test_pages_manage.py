"""Org-admin pages: hierarchy, standards, users, API keys, audit log (cem/views_manage.py).

Every page: the admin can list / create / edit; a store manager cannot write (403) and sees only
their store; org B's admin gets 404 on org A's object URLs and none of A's rows in lists; bad
input shows field errors and creates nothing; list pages run a bounded number of queries.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from cem import models as m
from cem import services
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f

LIST_PAGES = [
    "regions", "locations", "teams", "employees", "channels", "touchpoints", "skill_categories",
    "expectations", "brand_messages", "standards", "members", "api_keys", "audit_log",
]


def _html(resp) -> str:
    assert resp.status_code == 200, (resp.status_code, resp.content[:500])
    return resp.content.decode()


def _login(client, world, persona="admin"):
    client.force_login(world.users[persona])
    return client


def _in_a(world):
    return tenant_context(world.a.org)


# --- the simple records: one table drives list / create / edit / bad input ----------------------


@dataclass
class Case:
    name: str  # URL-name stem
    plural: str
    model: type
    create: Callable[[Any], dict]  # world -> POST data
    created: dict  # lookup of the created row
    existing: Callable[[Any], Any]  # world -> an org A row to edit
    edit: Callable[[Any, Any], dict]  # (world, obj) -> POST data
    edited: dict  # field values after the edit
    bad: Callable[[Any], dict]  # world -> invalid POST data
    bad_field: str  # the field that must carry the error


def _team(w):
    return f.TeamFactory(organization=w.a.org, location=w.a.locations["a-n1"], name="Floor A")


def _brand(w):
    return f.BrandMessageFactory(organization=w.a.org, title="acme-brand")


CASES = [
    Case("region", "regions", m.Region,
         create=lambda w: {"name": "West", "code": "west"}, created={"code": "west"},
         existing=lambda w: w.a.regions["north"],
         edit=lambda w, o: {"name": "North-East", "code": o.code}, edited={"name": "North-East"},
         bad=lambda w: {"name": "Dup", "code": w.a.regions["north"].code}, bad_field="code"),
    Case("location", "locations", m.Location,
         create=lambda w: {"name": "Acme West", "code": "a-w1", "region": w.a.regions["south"].pk,
                           "kind": "store", "address": "1 Main St", "latitude": "51.5", "longitude": "-0.12",
                           "active": "on"},
         created={"code": "a-w1"},
         existing=lambda w: w.a.locations["a-n2"],
         edit=lambda w, o: {"name": "Acme Harbour", "code": o.code, "region": w.a.regions["south"].pk,
                            "kind": "branch", "address": "", "latitude": "", "longitude": "", "active": "on"},
         edited={"name": "Acme Harbour", "kind": "branch"},
         bad=lambda w: {"name": "Bad", "code": "bad", "region": w.a.regions["south"].pk, "kind": "store",
                        "latitude": "123"}, bad_field="latitude"),
    Case("team", "teams", m.Team,
         create=lambda w: {"location": w.a.locations["a-n1"].pk, "name": "Checkout crew"},
         created={"name": "Checkout crew"},
         existing=_team,
         edit=lambda w, o: {"location": o.location_id, "name": "Floor B"}, edited={"name": "Floor B"},
         # Org B's location id is not a valid choice in org A.
         bad=lambda w: {"location": w.b.locations["b-1"].pk, "name": "Smuggled"}, bad_field="location"),
    Case("channel", "channels", m.Channel,
         create=lambda w: {"name": "Phone line", "code": "phone", "kind": "phone"}, created={"code": "phone"},
         existing=lambda w: w.a.channel,
         edit=lambda w, o: {"name": "Shop floor", "code": o.code, "kind": "in_store"},
         edited={"name": "Shop floor"},
         bad=lambda w: {"name": "x", "code": "not a slug!", "kind": "phone"}, bad_field="code"),
    Case("touchpoint", "touchpoints", m.Touchpoint,
         create=lambda w: {"name": "Greeting", "code": "greet", "channel": w.a.channel.pk,
                           "category": "planned", "journey_order": "1"},
         created={"code": "greet", "category": "planned"},
         existing=lambda w: w.a.touchpoint,
         edit=lambda w, o: {"name": "Paying", "code": o.code, "channel": o.channel_id,
                            "category": "stabilizing", "journey_order": "5"},
         edited={"name": "Paying", "category": "stabilizing", "journey_order": 5},
         bad=lambda w: {"name": "x", "code": "x1", "channel": w.a.channel.pk, "category": "urgent",
                        "journey_order": "1"}, bad_field="category"),
    Case("skill_category", "skill_categories", m.SkillCategory,
         create=lambda w: {"name": "Listening", "description": "Hear the customer out"},
         created={"name": "Listening"},
         existing=lambda w: w.a.standard.skill_category,
         edit=lambda w, o: {"name": "Empathy", "description": ""}, edited={"name": "Empathy"},
         bad=lambda w: {"name": "", "description": "no name"}, bad_field="name"),
    Case("expectation", "expectations", m.CustomerExpectation,
         create=lambda w: {"name": "Quick answer", "description": "", "importance": "4"},
         created={"name": "Quick answer", "importance": 4},
         existing=lambda w: w.a.standard.expectation,
         edit=lambda w, o: {"name": o.name, "description": "Now", "importance": "5"},
         edited={"importance": 5},
         bad=lambda w: {"name": "Too important", "importance": "9"}, bad_field="importance"),
    Case("brand_message", "brand_messages", m.BrandMessage,
         create=lambda w: {"title": "We listen", "text": "Always"}, created={"title": "We listen"},
         existing=_brand,
         edit=lambda w, o: {"title": "We listen harder", "text": ""}, edited={"title": "We listen harder"},
         bad=lambda w: {"title": _brand(w).title, "text": ""}, bad_field="title"),
    Case("standard", "standards", m.Standard,
         create=lambda w: {"code": "greet-10s", "title": "Greet within 10 seconds", "description": "",
                           "skill_category": w.a.standard.skill_category_id, "expectation": "",
                           "brand_message": "", "category": "critical", "active": "on"},
         created={"code": "greet-10s", "category": "critical"},
         existing=lambda w: w.a.standard,
         edit=lambda w, o: {"code": o.code, "title": "Smile", "skill_category": o.skill_category_id,
                            "expectation": o.expectation_id, "brand_message": "", "category": "",
                            "active": ""},
         edited={"title": "Smile", "active": False},
         bad=lambda w: {"code": "no-skill", "title": "No skill", "category": "", "active": "on"},
         bad_field="skill_category"),
]


CASE_IDS = [c.name for c in CASES]


def _count(world, model, **lookup) -> int:
    with _in_a(world):
        return model.objects.filter(**lookup).count()


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_admin_can_list_create_and_edit(world, client, case):
    _login(client, world)
    with _in_a(world):
        existing = case.existing(world)
        edit_data = case.edit(world, existing)
        create_data = case.create(world)
    html = _html(client.get(reverse(case.plural)))
    assert 'data-testid="create-link"' in html
    assert f'data-id="{existing.pk}"' in html

    form_html = _html(client.get(reverse(f"{case.name}_create")))
    assert "csrfmiddlewaretoken" in form_html and 'data-testid="record-form"' in form_html

    resp = client.post(reverse(f"{case.name}_create"), create_data)
    assert resp.status_code == 302, resp.content.decode()[:3000]
    assert resp["Location"] == reverse(case.plural)
    with _in_a(world):
        created = case.model.objects.get(**case.created)
        assert m.AuditLog.objects.filter(action="create", object_type=case.model._meta.label,
                                         object_id=str(created.pk), actor_user=world.users["admin"]).exists()

    assert _html(client.get(reverse(f"{case.name}_edit", args=[existing.pk])))
    resp = client.post(reverse(f"{case.name}_edit", args=[existing.pk]), edit_data)
    assert resp.status_code == 302, resp.content.decode()[:3000]
    with _in_a(world):
        existing.refresh_from_db()
        for field, value in case.edited.items():
            assert getattr(existing, field) == value
        entry = m.AuditLog.objects.get(action="update", object_type=case.model._meta.label,
                                       object_id=str(existing.pk))
    # The audit diff is real (the service got an unmodified instance to compare against).
    assert set(case.edited) <= set(entry.changes), entry.changes
    assert "Saved" in _html(client.get(resp["Location"]))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bad_input_shows_field_errors_and_creates_nothing(world, client, case):
    _login(client, world)
    with _in_a(world):
        data = case.bad(world)
    before = _count(world, case.model)
    audit_before = _count(world, m.AuditLog)
    resp = client.post(reverse(f"{case.name}_create"), data)
    html = _html(resp)
    assert f'data-testid="error-{case.bad_field}"' in html, html
    assert 'aria-invalid="true"' in html
    assert _count(world, case.model) == before
    assert _count(world, m.AuditLog) == audit_before


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_store_manager_cannot_write(world, client, case):
    _login(client, world, "manager")
    with _in_a(world):
        existing = case.existing(world)
        data = case.create(world)
    before = _count(world, case.model)
    assert client.get(reverse(f"{case.name}_create")).status_code == 403
    assert client.post(reverse(f"{case.name}_create"), data).status_code == 403
    assert client.get(reverse(f"{case.name}_edit", args=[existing.pk])).status_code == 403
    assert client.post(reverse(f"{case.name}_edit", args=[existing.pk]), data).status_code == 403
    assert client.post(reverse(f"{case.name}_delete", args=[existing.pk])).status_code == 403
    assert _count(world, case.model) == before
    # The list is readable but offers no write buttons.
    html = _html(client.get(reverse(case.plural)))
    assert 'data-testid="create-link"' not in html
    assert 'data-testid="edit-link"' not in html and 'data-testid="delete-link"' not in html


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_outsider_gets_404_on_org_a_objects(world, client, case):
    _login(client, world, "outsider")
    with _in_a(world):
        existing = case.existing(world)
        data = case.edit(world, existing)
        snapshot = case.model.objects.filter(pk=existing.pk).values().get()
    for url_name in (f"{case.name}_edit", f"{case.name}_delete"):
        url = reverse(url_name, args=[existing.pk])
        assert client.get(url).status_code == 404, url
        assert client.post(url, data).status_code == 404, url
    with _in_a(world):
        assert case.model.objects.filter(pk=existing.pk).values().get() == snapshot
    html = _html(client.get(reverse(case.plural)))
    assert f'data-id="{existing.pk}"' not in html
    assert "acme" not in html.lower()


def test_delete_unused_record_and_refuse_a_referenced_one(world, client):
    _login(client, world)
    with _in_a(world):
        brand = _brand(world)
    assert "Delete brand message" in _html(client.get(reverse("brand_message_delete", args=[brand.pk])))
    resp = client.post(reverse("brand_message_delete", args=[brand.pk]))
    assert resp.status_code == 302
    assert _count(world, m.BrandMessage, pk=brand.pk) == 0
    assert _count(world, m.AuditLog, action="delete", object_id=str(brand.pk)) == 1

    north = world.a.regions["north"]
    resp = client.post(reverse("region_delete", args=[north.pk]), follow=True)
    html = _html(resp)
    assert "still used by 2 locations" in html
    assert _count(world, m.Region, pk=north.pk) == 1


# --- scope -----------------------------------------------------------------------------------


def test_store_manager_sees_only_their_store(world, client):
    _login(client, world, "manager")
    html = _html(client.get(reverse("locations")))
    assert "Acme a-n1" in html and "Acme a-n2" not in html and "Acme a-s1" not in html
    html = _html(client.get(reverse("regions")))
    assert f'data-id="{world.a.regions["north"].pk}"' in html
    assert f'data-id="{world.a.regions["south"].pk}"' not in html
    html = _html(client.get(reverse("employees")))
    assert "acme-emp-a-n1" in html and "acme-emp-a-n2" not in html and "acme-emp-a-s1" not in html
    # The filter offers only their store; another store's id as a filter shows nothing of it.
    assert "Acme a-n2" not in html
    html = _html(client.get(reverse("employees") + f"?location={world.a.locations['a-n2'].pk}"))
    assert "acme-emp-a-n2" not in html
    # Detail of an employee elsewhere is a 404, their own is readable (without a move form).
    assert client.get(reverse("employee_detail", args=[world.a.employees["a-n2"].pk])).status_code == 404
    html = _html(client.get(reverse("employee_detail", args=[world.a.employees["a-n1"].pk])))
    assert 'data-testid="move-form"' not in html and 'data-testid="edit-link"' not in html
    # Users, API keys and the audit log are not theirs to see.
    for name in ("members", "api_keys", "audit_log"):
        assert client.get(reverse(name)).status_code == 403, name


def test_regional_manager_sees_their_region(world, client):
    _login(client, world, "regional")
    html = _html(client.get(reverse("locations")))
    assert "Acme a-n1" in html and "Acme a-n2" in html and "Acme a-s1" not in html


def test_trainer_edits_standards_but_not_hierarchy(world, client):
    _login(client, world, "trainer")
    assert client.get(reverse("standard_create")).status_code == 200
    assert client.get(reverse("region_create")).status_code == 403
    assert 'data-testid="create-link"' not in _html(client.get(reverse("regions")))


def test_shopper_cannot_see_hierarchy(world, client):
    _login(client, world, "shopper")
    assert client.get(reverse("employees")).status_code == 403
    assert client.get(reverse("standards")).status_code == 200


# --- employees -------------------------------------------------------------------------------


def test_employee_create_with_start_location_and_team(world, client):
    _login(client, world)
    with _in_a(world):
        team = _team(world)
    resp = client.post(reverse("employee_create"), {
        "name": "Dana New", "external_id": "acme-emp-new", "email": "dana@acme.test", "role": "agent",
        "active": "on", "location": world.a.locations["a-n1"].pk, "team": team.pk, "start_date": "2026-02-01",
    })
    assert resp.status_code == 302, resp.content.decode()[:3000]
    with _in_a(world):
        employee = m.Employee.objects.get(external_id="acme-emp-new")
        assert employee.current_location_id == world.a.locations["a-n1"].pk
        assert employee.current_team_id == team.pk
        assignment = employee.assignments.get()
        assert str(assignment.start_date) == "2026-02-01" and assignment.end_date is None
    assert resp["Location"] == reverse("employee_detail", args=[employee.pk])
    html = _html(client.get(resp["Location"]))
    assert "Floor A" in html and 'data-testid="assignment"' in html


def test_employee_create_rejects_a_team_of_another_location(world, client):
    _login(client, world)
    with _in_a(world):
        team = _team(world)  # at a-n1
    before = _count(world, m.Employee)
    html = _html(client.post(reverse("employee_create"), {
        "name": "X", "external_id": "acme-x", "role": "agent", "location": world.a.locations["a-s1"].pk,
        "team": team.pk,
    }))
    assert 'data-testid="error-team"' in html
    assert _count(world, m.Employee) == before


def test_employee_list_filters_by_location_and_role(world, client):
    _login(client, world)
    with _in_a(world):
        f.EmployeeFactory(organization=world.a.org, external_id="acme-sup", role="supervisor",
                          current_location=world.a.locations["a-s1"])
    html = _html(client.get(reverse("employees") + f"?location={world.a.locations['a-s1'].pk}"))
    assert "acme-sup" in html and "acme-emp-a-s1" in html and "acme-emp-a-n1" not in html
    html = _html(client.get(reverse("employees") + "?role=supervisor"))
    assert "acme-sup" in html and "acme-emp-a-s1" not in html
    html = _html(client.get(reverse("employees") + "?q=acme-sup"))
    assert "acme-sup" in html and "acme-emp-a-s1" not in html
    # An htmx filter request gets the page; the client swaps #results.
    html = _html(client.get(reverse("employees") + "?role=supervisor", headers={"HX-Request": "true"}))
    assert 'id="results"' in html


def test_employee_edit_keeps_placement(world, client):
    _login(client, world)
    employee = world.a.employees["a-n1"]
    resp = client.post(reverse("employee_edit", args=[employee.pk]),
                       {"name": "Renamed", "external_id": employee.external_id, "email": "",
                        "role": "supervisor", "active": "on"})
    assert resp.status_code == 302
    with _in_a(world):
        employee.refresh_from_db()
    assert employee.name == "Renamed" and employee.current_location_id == world.a.locations["a-n1"].pk


def test_move_employee_keeps_history(world, client):
    _login(client, world)
    employee = world.a.employees["a-n1"]
    detail = reverse("employee_detail", args=[employee.pk])
    html = _html(client.get(detail))
    assert 'data-testid="move-form"' in html
    assert _html(client.get(reverse("employee_move", args=[employee.pk])))

    target = world.a.locations["a-s1"]
    resp = client.post(reverse("employee_move", args=[employee.pk]),
                       {"location": target.pk, "team": "", "start_date": "2026-03-01"})
    assert resp.status_code == 302 and resp["Location"] == detail
    with _in_a(world):
        history = list(employee.assignments.order_by("-start_date").values_list("location_id", "end_date"))
        assert m.AuditLog.objects.filter(action="employee.move", object_id=str(employee.pk)).exists()
    assert [(loc, str(end) if end else None) for loc, end in history] == [
        (target.pk, None), (world.a.locations["a-n1"].pk, "2026-03-01")
    ]
    html = _html(client.get(detail))
    assert html.count('data-testid="assignment"') == 2
    assert "Acme a-s1" in html and "2026-03-01" in html

    # A start before the open assignment is a field error from the service; nothing changes.
    html = _html(client.post(reverse("employee_move", args=[employee.pk]),
                             {"location": world.a.locations["a-n2"].pk, "start_date": "2020-01-01"}))
    assert 'data-testid="error-start_date"' in html
    assert _count(world, m.EmployeeAssignment, employee=employee) == 2


def test_move_rejects_team_of_other_location_and_missing_location(world, client):
    _login(client, world)
    employee = world.a.employees["a-n1"]
    with _in_a(world):
        team = _team(world)
    html = _html(client.post(reverse("employee_move", args=[employee.pk]),
                             {"location": world.a.locations["a-s1"].pk, "team": team.pk}))
    assert 'data-testid="error-team"' in html
    html = _html(client.post(reverse("employee_move", args=[employee.pk]), {"location": ""}))
    assert 'data-testid="error-location"' in html
    assert _count(world, m.EmployeeAssignment, employee=employee) == 1


def test_team_options_for_htmx(world, client):
    _login(client, world)
    with _in_a(world):
        team = _team(world)
        other = f.TeamFactory(organization=world.a.org, location=world.a.locations["a-s1"], name="South crew")
    html = _html(client.get(reverse("team_options") + f"?location={world.a.locations['a-n1'].pk}"))
    assert "Floor A" in html and "South crew" not in html and f'value="{team.pk}"' in html
    html = _html(client.get(reverse("employee_create")))
    assert f'hx-get="{reverse("team_options")}"' in html and f'value="{other.pk}"' in html


def test_outsider_gets_404_on_employee_pages(world, client):
    _login(client, world, "outsider")
    employee = world.a.employees["a-n1"]
    data = {"location": world.b.locations["b-1"].pk, "name": "x"}
    for name in ("employee_detail", "employee_edit", "employee_move"):
        url = reverse(name, args=[employee.pk])
        assert client.get(url).status_code == 404, url
        # The detail page is GET-only (405); the write pages 404 before reading the form.
        assert client.post(url, data).status_code == (405 if name == "employee_detail" else 404), url
    assert _count(world, m.EmployeeAssignment, employee=employee) == 1
    html = _html(client.get(reverse("employees")))
    assert "acme" not in html.lower() and "beta-emp-b-1" in html
    html = _html(client.get(reverse("team_options")))
    assert "acme" not in html.lower()


# --- standards -------------------------------------------------------------------------------


def test_standards_grouped_and_filtered_by_skill_category(world, client):
    _login(client, world)
    with _in_a(world):
        listening = f.SkillCategoryFactory(organization=world.a.org, name="Listening")
        f.StandardFactory(organization=world.a.org, code="listen-1", title="Let them finish",
                          skill_category=listening)
        own_skill = world.a.standard.skill_category
    html = _html(client.get(reverse("standards")))
    assert html.count('data-testid="skill-group"') == 2
    assert "Listening" in html and own_skill.name in html
    html = _html(client.get(reverse("standards") + f"?skill={listening.pk}"))
    assert html.count('data-testid="skill-group"') == 1 and "listen-1" in html
    assert world.a.standard.code not in html


def test_touchpoints_show_and_filter_category(world, client):
    _login(client, world)
    html = _html(client.get(reverse("touchpoints")))
    assert 'class="badge critical"' in html
    html = _html(client.get(reverse("touchpoints") + "?category=planned"))
    assert 'data-testid="empty"' in html
    # An unknown filter value is ignored rather than an error.
    assert 'class="badge critical"' in _html(client.get(reverse("touchpoints") + "?category=bogus"))


# --- users -----------------------------------------------------------------------------------


def _member_data(**overrides):
    data = {"email": "new@acme.test", "role": "trainer", "password": "", "region": "", "location": "",
            "employee": ""}
    data.update(overrides)
    return data


def test_admin_creates_member_with_password(world, client):
    _login(client, world)
    html = _html(client.get(reverse("members")))
    assert "admin@acme.test" in html and 'data-testid="create-link"' in html
    assert "membership-form" in _html(client.get(reverse("member_create")))
    resp = client.post(reverse("member_create"), _member_data(
        email="New.Manager@Acme.test", role="store_manager", password="a-long-enough-password-42",
        location=world.a.locations["a-n2"].pk, region=world.a.regions["south"].pk,
    ))
    assert resp.status_code == 302, resp.content.decode()[:3000]
    with _in_a(world):
        membership = m.Membership.objects.select_related("user").get(user__username="new.manager@acme.test")
    assert membership.role == "store_manager" and membership.location_id == world.a.locations["a-n2"].pk
    assert membership.region_id is None  # fields the role doesn't use are cleared
    assert membership.user.check_password("a-long-enough-password-42")
    # The new manager can sign in and sees their store only.
    client.force_login(membership.user)
    html = _html(client.get(reverse("locations")))
    assert "Acme a-n2" in html and "Acme a-n1" not in html


@pytest.mark.parametrize(("role", "field"), [
    ("regional_manager", "region"), ("store_manager", "location"), ("employee", "employee"),
])
def test_member_role_needs_its_scope(world, client, role, field):
    _login(client, world)
    before = _count(world, m.Membership)
    html = _html(client.post(reverse("member_create"), _member_data(role=role)))
    assert f'data-testid="error-{field}"' in html
    assert _count(world, m.Membership) == before


def test_member_create_rejects_duplicates_weak_passwords_and_foreign_scope(world, client):
    _login(client, world)
    before = _count(world, m.Membership)
    html = _html(client.post(reverse("member_create"), _member_data(email="exec@acme.test")))
    assert 'data-testid="error-email"' in html
    html = _html(client.post(reverse("member_create"), _member_data(password="123")))
    assert 'data-testid="error-password"' in html
    html = _html(client.post(reverse("member_create"), _member_data(
        role="store_manager", location=world.b.locations["b-1"].pk)))
    assert 'data-testid="error-location"' in html
    html = _html(client.post(reverse("member_create"), _member_data(email="not-an-email")))
    assert 'data-testid="error-email"' in html
    assert _count(world, m.Membership) == before


def test_admin_changes_role_and_scope(world, client):
    _login(client, world)
    with _in_a(world):
        membership = m.Membership.objects.get(user=world.users["manager"])
    url = reverse("member_edit", args=[membership.pk])
    assert "manager@acme.test" in _html(client.get(url))
    html = _html(client.post(url, {"role": "regional_manager", "location": world.a.locations["a-n1"].pk}))
    assert 'data-testid="error-region"' in html
    resp = client.post(url, {"role": "regional_manager", "region": world.a.regions["south"].pk})
    assert resp.status_code == 302
    with _in_a(world):
        membership.refresh_from_db()
        entry = m.AuditLog.objects.get(action="update", object_type="cem.Membership",
                                       object_id=str(membership.pk))
    assert membership.role == "regional_manager" and membership.region_id == world.a.regions["south"].pk
    assert membership.location_id is None
    assert entry.changes["role"] == {"before": "store_manager", "after": "regional_manager"}


def test_deactivate_and_reactivate_member(world, client):
    _login(client, world)
    with _in_a(world):
        membership = m.Membership.objects.get(user=world.users["trainer"])
    url = reverse("member_deactivate", args=[membership.pk])
    assert 'data-testid="confirm-button"' in _html(client.get(url))
    assert client.post(url).status_code == 302
    with _in_a(world):
        membership.refresh_from_db()
    assert membership.is_active is False
    html = _html(client.get(reverse("members") + "?status=inactive"))
    assert "trainer@acme.test" in html and 'data-testid="reactivate-button"' in html
    assert "exec@acme.test" not in html
    # A deactivated member no longer gets into the organization.
    other = Client()
    other.force_login(world.users["trainer"])
    assert other.get(reverse("standards")).status_code == 404

    assert client.post(reverse("member_reactivate", args=[membership.pk])).status_code == 302
    assert client.get(reverse("member_reactivate", args=[membership.pk])).status_code == 405
    with _in_a(world):
        membership.refresh_from_db()
    assert membership.is_active is True


def test_admin_cannot_lock_themselves_out(world, client):
    _login(client, world)
    with _in_a(world):
        own = m.Membership.objects.get(user=world.users["admin"])
    html = _html(client.get(reverse("members")))
    assert f'href="{reverse("member_deactivate", args=[own.pk])}"' not in html
    html = _html(client.post(reverse("member_deactivate", args=[own.pk]), follow=True))
    assert "can&#x27;t deactivate yourself" in html
    html = _html(client.post(reverse("member_edit", args=[own.pk]), {"role": "trainer"}))
    assert 'data-testid="error-role"' in html
    with _in_a(world):
        own.refresh_from_db()
    assert own.is_active and own.role == "org_admin"


def test_users_pages_need_membership_permissions(world, client):
    _login(client, world, "executive")
    with _in_a(world):
        membership = m.Membership.objects.get(user=world.users["trainer"])
    assert client.get(reverse("members")).status_code == 403
    assert client.get(reverse("member_create")).status_code == 403
    assert client.post(reverse("member_deactivate", args=[membership.pk])).status_code == 403


def test_outsider_gets_404_on_member_pages(world, client):
    _login(client, world, "outsider")
    with _in_a(world):
        membership = m.Membership.objects.get(user=world.users["trainer"])
    for name in ("member_edit", "member_deactivate", "member_reactivate"):
        url = reverse(name, args=[membership.pk])
        assert client.post(url, {"role": "org_admin"}).status_code == 404, url
    for name in ("member_edit", "member_deactivate"):
        assert client.get(reverse(name, args=[membership.pk])).status_code == 404
    with _in_a(world):
        membership.refresh_from_db()
    assert membership.is_active and membership.role == "trainer"
    html = _html(client.get(reverse("members")))
    assert "acme" not in html.lower() and "admin@beta.test" in html


# --- API keys --------------------------------------------------------------------------------


def test_api_key_is_shown_once(world, client):
    _login(client, world)
    html = _html(client.get(reverse("api_key_create")))
    assert html.count('type="checkbox" name="scopes"') == 12
    resp = client.post(reverse("api_key_create"), {
        "name": "POS export", "scopes": ["core:read", "feedback:write"], "rate_limit_per_minute": "120",
    })
    html = _html(resp)
    assert resp["Cache-Control"] == "no-store"
    assert "Copy it now, it will not be shown again" in html
    secret = re.search(r'data-testid="api-key-secret">(cem_[0-9a-f]+_[^<]+)</textarea>', html).group(1)
    with _in_a(world):
        key = m.ApiKey.objects.get(name="POS export")
    assert key.scopes == ["core:read", "feedback:write"] and key.rate_limit_per_minute == 120
    assert key.hashed_key == m.ApiKey.hash_secret(secret) and secret not in key.hashed_key
    assert key.created_by_id == world.users["admin"].pk

    listing = _html(client.get(reverse("api_keys")))
    assert "POS export" in listing and key.prefix in listing
    assert secret not in listing and secret.split("_", 2)[2] not in listing
    assert _html(client.get(reverse("api_key_revoke", args=[key.pk]))).count(secret) == 0
    # The key works on the API.
    assert client.get("/api/v1/locations/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code == 200


def test_api_key_bad_input_creates_nothing(world, client):
    _login(client, world)
    before = _count(world, m.ApiKey)
    html = _html(client.post(reverse("api_key_create"), {"name": "x", "scopes": []}))
    assert 'data-testid="error-scopes"' in html and "cem_" not in html.split('data-testid="record-form"')[1]
    html = _html(client.post(reverse("api_key_create"), {"name": "", "scopes": ["god:mode"],
                                                         "rate_limit_per_minute": "0"}))
    for field in ("name", "scopes", "rate_limit_per_minute"):
        assert f'data-testid="error-{field}"' in html
    assert _count(world, m.ApiKey) == before


def test_revoke_api_key(world, client):
    _login(client, world)
    key = world.a.api_key_obj
    list_html = _html(client.get(reverse("api_keys")))
    assert f'href="{reverse("api_key_revoke", args=[key.pk])}"' in list_html
    html = _html(client.get(reverse("api_key_revoke", args=[key.pk])))
    assert 'data-testid="confirm-button"' in html and "csrfmiddlewaretoken" in html
    resp = client.post(reverse("api_key_revoke", args=[key.pk]), {"confirm": "yes"})
    assert resp.status_code == 302 and resp["Location"] == reverse("api_keys")
    with _in_a(world):
        key.refresh_from_db()
        assert m.AuditLog.objects.filter(action="api_key.revoke", object_id=str(key.pk)).count() == 1
    assert key.revoked_at is not None
    list_html = _html(client.get(reverse("api_keys")))
    assert "revoked" in list_html and f'href="{reverse("api_key_revoke", args=[key.pk])}"' not in list_html
    assert 'data-testid="row"' not in _html(client.get(reverse("api_keys") + "?status=active"))
    # Revoking again is harmless; the revoked key no longer authenticates.
    assert client.post(reverse("api_key_revoke", args=[key.pk])).status_code == 302
    with _in_a(world):
        assert m.AuditLog.objects.filter(action="api_key.revoke", object_id=str(key.pk)).count() == 1
    assert client.get("/api/v1/locations/", HTTP_AUTHORIZATION=f"Bearer {world.a.api_key}").status_code == 401


def test_api_key_pages_need_permissions(world, client):
    _login(client, world, "manager")
    key = world.a.api_key_obj
    assert client.get(reverse("api_keys")).status_code == 403
    assert client.post(reverse("api_key_create"), {"name": "x", "scopes": ["core:read"]}).status_code == 403
    assert client.post(reverse("api_key_revoke", args=[key.pk])).status_code == 403
    with _in_a(world):
        key.refresh_from_db()
    assert key.revoked_at is None


def test_outsider_cannot_revoke_org_a_key(world, client):
    _login(client, world, "outsider")
    key = world.a.api_key_obj
    assert client.get(reverse("api_key_revoke", args=[key.pk])).status_code == 404
    assert client.post(reverse("api_key_revoke", args=[key.pk])).status_code == 404
    with _in_a(world):
        key.refresh_from_db()
    assert key.revoked_at is None
    html = _html(client.get(reverse("api_keys")))
    assert f'data-id="{key.pk}"' not in html and f'data-id="{world.b.api_key_obj.pk}"' in html


# --- audit log -------------------------------------------------------------------------------


def test_audit_log_filters(world, client):
    _login(client, world)
    client.post(reverse("region_create"), {"name": "West", "code": "west"})
    client.post(reverse("channel_create"), {"name": "Chat", "code": "chat", "kind": "chat"})
    html = _html(client.get(reverse("audit_log")))
    assert 'data-testid="filter-action"' in html and 'data-testid="filter-object_type"' in html
    assert "cem.Region" in html and "cem.Channel" in html and "api_key.create" in html
    html = _html(client.get(reverse("audit_log") + "?object_type=cem.Region"))
    results = _results(html)
    assert "cem.Region" in results and "cem.Channel" not in results
    html = _html(client.get(reverse("audit_log") + "?action=api_key.create"))
    results = _results(html)
    assert results.count('data-testid="row"') == 1 and "cem.Region" not in results
    with _in_a(world):
        region = m.Region.objects.get(code="west")
    html = _html(client.get(reverse("audit_log") + f"?object_type=cem.Region&object_id={region.pk}"))
    assert _results(html).count('data-testid="row"') == 1
    # Read-only: no write routes, and the executive may read it but a manager may not.
    assert not any(name.startswith("audit_entry_") for name in _url_names())
    _login(client, world, "executive")
    assert client.get(reverse("audit_log")).status_code == 200
    _login(client, world, "manager")
    assert client.get(reverse("audit_log")).status_code == 403


def test_outsider_audit_log_shows_nothing_of_org_a(world, client):
    _login(client, world)
    client.post(reverse("region_create"), {"name": "acme-west", "code": "acme-west"})
    outsider = Client()
    _login(outsider, world, "outsider")
    html = _html(outsider.get(reverse("audit_log")))
    assert "acme" not in html.lower()


def _results(html: str) -> str:
    return html.split('<div id="results"')[1]


def _url_names():
    from cem import manage_urls

    return [p.name for p in manage_urls.urlpatterns]


# --- every page: CSRF, no inline script, outsider lists, bounded queries ------------------------


@pytest.mark.parametrize("name", LIST_PAGES)
def test_outsider_lists_show_nothing_of_org_a(world, client, name):
    _login(client, world, "outsider")
    html = _html(client.get(reverse(name)))
    assert "acme" not in html.lower()


def _form_pages(world):
    employee = world.a.employees["a-n1"]
    with _in_a(world):
        membership = m.Membership.objects.get(user=world.users["trainer"])
    return [
        reverse("region_create"), reverse("location_edit", args=[world.a.locations["a-n1"].pk]),
        reverse("employee_create"), reverse("employee_detail", args=[employee.pk]),
        reverse("employee_move", args=[employee.pk]), reverse("member_create"),
        reverse("member_edit", args=[membership.pk]), reverse("member_deactivate", args=[membership.pk]),
        reverse("api_key_create"), reverse("api_key_revoke", args=[world.a.api_key_obj.pk]),
        reverse("region_delete", args=[world.a.regions["north"].pk]), reverse("members"),
        *[reverse(name) for name in LIST_PAGES],
    ]


def test_every_post_form_has_csrf_and_no_inline_script(world, client):
    _login(client, world)
    for url in _form_pages(world):
        html = _html(client.get(url))
        posts = len(re.findall(r'<form[^>]*method="post"', html))
        assert posts == html.count('name="csrfmiddlewaretoken"'), url
        assert not re.findall(r"<script(?![^>]*\bsrc=)", html), f"inline script on {url}"
        assert not re.findall(r"\son[a-z]+=", html), f"inline event handler on {url}"
        assert 'name="viewport"' in html


def test_navigation_and_subnav_follow_the_role(world, client):
    _login(client, world)
    html = _html(client.get(reverse("regions")))
    assert 'data-testid="subnav"' in html and f'href="{reverse("teams")}"' in html
    _login(client, world, "shopper")
    html = _html(client.get(reverse("standards")))
    assert f'href="{reverse("touchpoints")}"' in html and f'href="{reverse("employees")}"' not in html


def _bulk(world, name):
    org = world.a.org
    n = 25
    with _in_a(world):
        if name == "regions":
            for _ in range(n):
                f.RegionFactory(organization=org)
        elif name == "locations":
            for i in range(n):
                f.LocationFactory(organization=org, region=world.a.regions["north" if i % 2 else "south"])
        elif name == "teams":
            for i in range(n):
                f.TeamFactory(organization=org, location=world.a.locations[["a-n1", "a-n2", "a-s1"][i % 3]])
        elif name == "employees":
            for i in range(n):
                loc = world.a.locations[["a-n1", "a-n2", "a-s1"][i % 3]]
                team = f.TeamFactory(organization=org, location=loc)
                f.EmployeeFactory(organization=org, current_location=loc, current_team=team)
        elif name == "channels":
            for _ in range(n):
                f.ChannelFactory(organization=org)
        elif name == "touchpoints":
            for _ in range(n):
                f.TouchpointFactory(organization=org)
        elif name == "skill_categories":
            for _ in range(n):
                f.SkillCategoryFactory(organization=org)
        elif name == "expectations":
            for _ in range(n):
                f.ExpectationFactory(organization=org)
        elif name == "brand_messages":
            for _ in range(n):
                f.BrandMessageFactory(organization=org)
        elif name == "standards":
            for _ in range(n):
                f.StandardFactory(organization=org, brand_message=f.BrandMessageFactory(organization=org))
        elif name == "members":
            for i in range(n):
                scope = [{"role": m.Role.STORE_MANAGER, "location": world.a.locations["a-n2"]},
                         {"role": m.Role.REGIONAL_MANAGER, "region": world.a.regions["south"]},
                         {"role": m.Role.EMPLOYEE, "employee": world.a.employees["a-s1"]}][i % 3]
                f.MembershipFactory(organization=org, user=f.UserFactory(), **scope)
        elif name == "api_keys":
            for i in range(n):
                services.api_key_create(organization=org, actor=Actor(user_id=world.users["admin"].pk),
                                        name=f"key {i}", scopes=["core:read"])
        elif name == "audit_log":
            for i in range(n):
                services.record_create(organization=org, actor=Actor(user_id=world.users["admin"].pk),
                                       model=m.Region, data={"name": f"R{i}", "code": f"bulk-{i}"})


@pytest.mark.parametrize("name", LIST_PAGES)
def test_list_pages_run_a_bounded_number_of_queries(world, client, django_assert_max_num_queries, name):
    _bulk(world, name)
    _login(client, world)
    client.get(reverse(name))  # warm the session
    with django_assert_max_num_queries(12):
        html = _html(client.get(reverse(name)))
    assert html.count('data-testid="row"') >= 20
