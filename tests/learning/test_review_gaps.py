"""Gaps closed in the issue 6 review: the xAPI statements in the browser (viewable, exportable as
JSON with the page's filter) and the organization's learning settings page (assignment cap,
reminder and escalation timing, the external LRS and its signing secret)."""

from __future__ import annotations

import json

import pytest

from cem.models import AuditLog
from cem.tenancy import tenant_context
from learning import assignments
from learning import models as lm
from tests import factories as f
from tests.learning import factories as lf
from tests.learning.portal_helpers import assign

pytestmark = pytest.mark.django_db


def _statements(world, api):
    mine = assign(world, lf.LessonFactory(organization=world.a.org, title="acme xapi lesson"))
    learner = api(world.users["employee"])
    learner.post(f"/api/v1/my-learning/{mine.pk}/start/", {})
    learner.post(f"/api/v1/my-learning/{mine.pk}/complete/", {})


def test_statements_page_shows_each_statement_and_exports_json(
    world, api, client, django_assert_max_num_queries
):
    _statements(world, api)
    client.force_login(world.users["trainer"])
    with django_assert_max_num_queries(15):
        page = client.get("/learning/analytics/statements/")
    body = page.content.decode()
    assert page.status_code == 200 and body.count('data-testid="statement-row"') == 2
    assert "&quot;version&quot;: &quot;1.0.3&quot;" in body and "experienced" in body
    assert 'href="/api/v1/xapi-statements/?format=json"' in body
    assert 'data-testid="statements-link"' in body  # reachable from the analytics tabs

    only = client.get("/learning/analytics/statements/?verb=completed").content.decode()
    assert only.count('data-testid="statement-row"') == 1
    assert 'href="/api/v1/xapi-statements/?format=json&amp;verb=completed"' in only
    # The download link works with the browser session, and keeps the filter.
    export = client.get("/api/v1/xapi-statements/?format=json&verb=completed")
    assert export.status_code == 200 and "attachment" in export["Content-Disposition"]
    rows = json.loads(b"".join(export.streaming_content))
    assert [r["verb"]["id"].rsplit("/", 1)[-1] for r in rows] == ["completed"]
    # An unknown verb is ignored, not an error.
    assert client.get("/learning/analytics/statements/?verb=bogus").status_code == 200


def test_statements_page_scope_and_roles(world, api, client):
    _statements(world, api)
    client.force_login(world.users["employee"])
    assert client.get("/learning/analytics/statements/").status_code == 403
    client.force_login(world.users["outsider"])
    page = client.get("/learning/analytics/statements/")
    assert page.status_code in (200, 403)
    if page.status_code == 200:
        assert 'data-testid="statement-row"' not in page.content.decode()
    client.force_login(world.users["manager"])  # the learner's store manager
    rows = client.get("/learning/analytics/statements/").content.decode()
    assert rows.count('data-testid="statement-row"') == 2


def test_settings_page_saves_limits_and_the_lrs_keeping_the_secret(world, client):
    client.force_login(world.users["trainer"])
    assert client.get("/learning/assign/settings/").status_code == 200
    form = {
        "max_open_assignments": "3",
        "reminder_days_before_due": "1",
        "escalate_days_overdue": "5",
        "lrs_url": "http://lrs.acme.test/xapi/",
        "lrs_secret": "",
    }
    plain = client.post("/learning/assign/settings/", form).content.decode()
    assert 'data-testid="error-lrs_url"' in plain and "https" in plain
    form["lrs_url"] = "https://lrs.acme.test/xapi/"
    unsigned = client.post("/learning/assign/settings/", form).content.decode()
    assert 'data-testid="error-lrs_secret"' in unsigned
    form["lrs_secret"] = "acme-top-secret"
    assert client.post("/learning/assign/settings/", form).status_code == 302
    with tenant_context(world.a.org):
        row = assignments.learning_settings(world.a.org.pk)
        timing = (row.max_open_assignments, row.reminder_days_before_due, row.escalate_days_overdue)
        assert timing == (3, 1, 5)
        assert row.lrs_url == "https://lrs.acme.test/xapi/" and row.lrs_secret == "acme-top-secret"
        logged = list(AuditLog.objects.filter(action="learning.settings").values_list("changes", flat=True))
    assert logged and "acme-top-secret" not in json.dumps(logged)
    page = client.get("/learning/assign/settings/").content.decode()
    assert "acme-top-secret" not in page and "A signing secret is stored." in page
    # Saving again with the secret left empty keeps it; removing it with an LRS set is refused.
    form.update(lrs_secret="", max_open_assignments="4")
    assert client.post("/learning/assign/settings/", form).status_code == 302
    with tenant_context(world.a.org):
        row = assignments.learning_settings(world.a.org.pk)
        assert row.max_open_assignments == 4 and row.lrs_secret == "acme-top-secret"
    refused = client.post("/learning/assign/settings/", {**form, "clear_lrs_secret": "on"}).content.decode()
    assert 'data-testid="error-lrs_secret"' in refused
    form.update(lrs_url="", clear_lrs_secret="on")
    assert client.post("/learning/assign/settings/", form).status_code == 302
    with tenant_context(world.a.org):
        row = lm.LearningSettings.objects.get()
        assert row.lrs_url == "" and row.lrs_secret == ""
    assert client.post("/learning/assign/settings/", {**form, "max_open_assignments": "0"}).status_code == 200


def test_settings_page_is_for_trainers_and_admins(world, client):
    for who, status in (("manager", 403), ("employee", 403), ("executive", 403), ("admin", 200)):
        client.force_login(world.users[who])
        assert client.get("/learning/assign/settings/").status_code == status, who


# --- the catalogue: libraries, skills and learning paths for learners --------------------------------


def _catalogue(world):
    org = world.a.org
    skill = f.SkillCategoryFactory(organization=org, name="acme courtesy")
    greeting = lf.LessonFactory(organization=org, title="acme greeting basics")
    closing = lf.LessonFactory(organization=org, title="acme closing the sale")
    lf.LessonFactory(organization=org, title="acme shopper briefing", audience=lm.Audience.SHOPPERS)
    with tenant_context(org):
        lm.LessonSkillCategory.objects.create(organization=org, lesson=greeting, skill_category=skill)
        library = lm.Library.objects.create(organization=org, name="acme sales library")
        lm.LibraryLesson.objects.create(organization=org, library=library, lesson=closing)
    onboarding = lf.LearningPathFactory(organization=org, name="acme onboarding", description="first week")
    for position, lesson in enumerate((greeting, closing), start=1):
        lf.PathStepFactory(organization=org, path=onboarding, lesson=lesson, position=position)
    draft = lf.LearningPathFactory(organization=org, name="acme draft path", status=lm.ContentStatus.DRAFT)
    lf.PathStepFactory(organization=org, path=draft, lesson=greeting, position=1)
    shoppers = lf.LearningPathFactory(
        organization=org, name="acme shopper path", audience=lm.Audience.SHOPPERS
    )
    lf.PathStepFactory(organization=org, path=shoppers, lesson=greeting, position=1)
    return skill, library, onboarding, draft, shoppers


def test_catalogue_searches_libraries_and_skills_and_offers_paths(
    world, client, django_assert_max_num_queries
):
    skill, library, onboarding, _draft, _shoppers = _catalogue(world)
    client.force_login(world.users["employee"])
    with django_assert_max_num_queries(20):
        html = client.get("/learning/catalogue/").content.decode()
    assert "acme greeting basics" in html and "acme closing the sale" in html
    assert "acme shopper briefing" not in html  # another audience
    assert f'data-testid="path-{onboarding.pk}"' in html and "acme draft path" not in html
    assert "acme shopper path" not in html
    by_library = client.get(f"/learning/catalogue/?library={library.pk}").content.decode()
    assert "acme closing the sale" in by_library and "acme greeting basics" not in by_library
    by_skill = client.get(f"/learning/catalogue/?skill={skill.pk}").content.decode()
    assert "acme greeting basics" in by_skill and "acme closing the sale" not in by_skill
    # Free text reaches the skill category too, and the paths by name.
    assert "acme greeting basics" in client.get("/learning/catalogue/?q=courtesy").content.decode()
    found = client.get("/learning/catalogue/?q=onboarding").content.decode()
    assert f'data-testid="path-{onboarding.pk}"' in found and 'data-testid="catalogue-lesson"' not in found


def test_employee_starts_a_path_and_takes_its_first_lesson(world, client):
    _skill, _library, onboarding, draft, shoppers = _catalogue(world)
    client.force_login(world.users["employee"])
    resp = client.post(f"/learning/paths/{onboarding.pk}/start/")
    with tenant_context(world.a.org):
        a = lm.Assignment.objects.get(path=onboarding)
    assert resp.status_code == 302 and resp["Location"] == f"/learning/assignments/{a.pk}/"
    assert a.source == "self" and a.employee_id == world.a.employees["a-n1"].pk and "yourself" in a.reason
    take = client.get(resp["Location"]).content.decode()
    assert "acme greeting basics" in take
    # Starting it again opens the same assignment; it shows on My learning.
    assert client.post(f"/learning/paths/{onboarding.pk}/start/")["Location"] == resp["Location"]
    assert f'data-testid="assignment-{a.pk}"' in client.get("/learning/").content.decode()
    assert client.post(f"/learning/paths/{draft.pk}/start/").status_code == 404
    refused = client.post(f"/learning/paths/{shoppers.pk}/start/", follow=True).content.decode()
    assert "not for your audience" in refused
    with tenant_context(world.a.org):
        assert not lm.Assignment.objects.filter(path__in=[draft, shoppers]).exists()


def test_self_start_a_path_over_the_api(world, api):
    _skill, _library, onboarding, _draft, _shoppers = _catalogue(world)
    learner = api(world.users["employee"])
    resp = learner.post("/api/v1/my-learning/self-start/", {"path": onboarding.pk}, format="json")
    assert resp.status_code == 201 and resp.json()["source"] == "self"
    again = learner.post("/api/v1/my-learning/self-start/", {"path": onboarding.pk}, format="json")
    assert again.json()["id"] == resp.json()["id"]
    lesson = lf.LessonFactory(organization=world.a.org)
    both = learner.post(
        "/api/v1/my-learning/self-start/", {"path": onboarding.pk, "lesson": lesson.pk}, format="json"
    )
    assert both.status_code == 400 and "lesson" in json.dumps(both.json())
    assert learner.post("/api/v1/my-learning/self-start/", {}, format="json").status_code == 400


# --- escalation reaches a manager even where the store has none -------------------------------------


def test_overdue_escalation_goes_to_the_regional_manager_when_the_store_has_none(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    import datetime as dt

    from django.utils import timezone

    now = timezone.now()
    # a-n2 (north) has no store manager; a-n1 (north) has one; both are overdue past escalation.
    lesson = lf.LessonFactory(organization=world.a.org, title="acme escalated lesson")
    for store in ("a-n1", "a-n2"):
        lf.AssignmentFactory(
            organization=world.a.org,
            employee=world.a.employees[store],
            location=world.a.locations[store],
            lesson=lesson,
            assigned_at=now - dt.timedelta(days=20),
            due_at=now - dt.timedelta(days=10),
            overdue_notified_at=now - dt.timedelta(days=9),
        )
    with django_capture_on_commit_callbacks(execute=True), tenant_context(world.a.org):
        done = assignments.assignments_notify(organization=world.a.org, now=now)
    assert len(done["escalated"]) == 2
    escalations = {tuple(m.to): m.subject for m in mailoutbox if m.subject.startswith("Overdue training")}
    assert escalations.keys() == {("manager@acme.test",), ("regional@acme.test",)}
    assert world.a.employees["a-n2"].name in escalations[("regional@acme.test",)]


def test_shoppers_get_reminders_and_overdue_notices_but_no_escalation(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    import datetime as dt

    from django.utils import timezone

    now = timezone.now()
    shopper = world.users["shopper"]
    path = lf.LearningPathFactory(organization=world.a.org, name="acme certification", audience="shoppers")
    a = lf.AssignmentFactory(
        organization=world.a.org,
        lesson=None,
        path=path,
        employee=None,
        user=shopper,
        location=None,
        source="certification",
        assigned_at=now - dt.timedelta(days=30),
        due_at=now + dt.timedelta(days=1),
    )
    with django_capture_on_commit_callbacks(execute=True), tenant_context(world.a.org):
        assert assignments.assignments_notify(organization=world.a.org, now=now)["reminded"] == [a.pk]
        later = now + dt.timedelta(days=20)
        done = assignments.assignments_notify(organization=world.a.org, now=later)
    assert done["overdue"] == [a.pk] and done["escalated"] == []
    assert [m.to for m in mailoutbox] == [[shopper.email], [shopper.email]]
    assert "acme certification" in mailoutbox[0].subject and "Overdue" in mailoutbox[1].subject
    name = shopper.get_full_name() or shopper.get_username()
    assert f"Hello {name}," in mailoutbox[0].body
