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
