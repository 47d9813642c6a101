"""Alignment score pages and API: the methods page, a score's explanation, the settings page and
API (4xx naming the field, admins only, audit-logged, scores recomputed), the scores API scoped by
the viewer (a store manager sees only their store's rows; org B 404s), filters, OpenAPI, queries."""

from __future__ import annotations

import pytest
from django.template.defaultfilters import floatformat
from django.urls import reverse

from alignment import scores
from alignment.models import AlignmentScore, AlignmentSettings, Link
from cem.models import AuditLog
from cem.tenancy import tenant_context
from tests.alignment.score_world import DAY, ScoreWorld

URL = "/api/v1/alignment/scores/"
SETTINGS_URL = "/api/v1/alignment/settings/"


@pytest.fixture
def sw(world):
    sw = ScoreWorld(world)
    std = sw.standard(expectation=sw.expectation(4), message=sw.message(title="acme promise"))
    sw.questions(std)
    sw.standard(expectation=sw.expectation(2))  # no lesson, no question: missing pieces to list
    for code in ("a-n1", "a-n2", "a-s1"):
        sw.put("std_feedback", [60, 90] * 20, standard=std, location=code, employee=code)
    with tenant_context(sw.org):
        scores.recompute_touched(
            sw.org, {(DAY, sw.t.locations[c].pk, sw.t.employees[c].pk) for c in ("a-n1", "a-n2", "a-s1")}
        )
    return sw


def score_of(sw, scope, scope_id, link=Link.MESSAGE_EXPECTATION, period="month") -> AlignmentScore:
    with tenant_context(sw.org):
        return AlignmentScore.objects.get(scope=scope, scope_id=scope_id, period=period, link=link)


def login(client, world, persona):
    client.force_login(world.users[persona])
    return client


# --- pages ---------------------------------------------------------------------------------------


def test_methods_page_documents_every_link_and_the_uncertainty(sw, client):
    login(client, sw.world, "manager")
    resp = client.get(reverse("alignment_methods"))
    assert resp.status_code == 200
    html = resp.content.decode()
    for link in ("message_expectation", "expectation_standard", "standard_training", "training_execution"):
        assert f'data-testid="method-{link}"' in html
    assert 'data-testid="method-execution_incentive"' in html
    assert "Wilson" in html and "Student" in html and "not rankable" in html
    assert 'data-testid="min-sample">30<' in html
    assert reverse("alignment_settings") not in html.split("method-weights")[1].split("</section>")[0]


def test_explanation_page_shows_inputs_missing_interval_and_ranking(sw, client):
    loc = sw.t.locations["a-n1"]
    score = score_of(sw, "location", loc.pk)
    login(client, sw.world, "manager")
    resp = client.get(reverse("alignment_score_explain", args=[score.pk]))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "Brand message ↔ customer expectations" in html and loc.name in html
    assert 'data-testid="input-row"' in html and "acme promise" in html
    assert f"{floatformat(score.low, 1)} – {floatformat(score.high, 1)}" in html
    assert "Rankable" in html
    assert 'data-kind="standard_without_question"' not in html  # the promised standard is asked
    coverage = score_of(sw, "location", loc.pk, Link.EXPECTATION_STANDARD)
    html = client.get(reverse("alignment_score_explain", args=[coverage.pk])).content.decode()
    assert 'data-kind="standard_without_question"' in html
    assert "1 standard(s) asked by no question of an active survey: acme-std-" in html  # named
    overall = score_of(sw, "location", loc.pk, Link.OVERALL)
    html = client.get(reverse("alignment_score_explain", args=[overall.pk])).content.decode()
    assert html.count('data-testid="input-row"') == 5


def test_explanation_page_is_scoped(sw, client):
    other_store = score_of(sw, "location", sw.t.locations["a-s1"].pk)
    own_employee = score_of(sw, "employee", sw.t.employees["a-n1"].pk)
    org = score_of(sw, "organization", 0)
    login(client, sw.world, "manager")
    assert client.get(reverse("alignment_score_explain", args=[other_store.pk])).status_code == 404
    assert client.get(reverse("alignment_score_explain", args=[org.pk])).status_code == 404
    assert client.get(reverse("alignment_score_explain", args=[own_employee.pk])).status_code == 200
    login(client, sw.world, "employee")
    assert client.get(reverse("alignment_score_explain", args=[own_employee.pk])).status_code == 200
    assert client.get(reverse("alignment_score_explain", args=[other_store.pk])).status_code == 404
    login(client, sw.world, "outsider")
    assert client.get(reverse("alignment_score_explain", args=[own_employee.pk])).status_code == 404


def test_settings_page_admin_changes_with_field_errors_others_read_only(
    sw, client, django_capture_on_commit_callbacks
):
    url = reverse("alignment_settings")
    login(client, sw.world, "manager")
    page = client.get(url)
    assert page.status_code == 200 and "disabled" in page.content.decode()
    assert client.post(url, {"min_sample": 5}).status_code == 403

    login(client, sw.world, "admin")
    good = {
        "min_sample": 10,
        "alert_threshold": "55",
        "category_critical": "3",
        "category_stabilizing": "1",
        "category_planned": "1",
        "link_message_expectation": "2",
        "link_expectation_standard": "1",
        "link_standard_training": "1",
        "link_training_execution": "1",
        "link_execution_incentive": "1",
    }
    bad = client.post(url, {**good, "category_critical": "-1", "min_sample": "lots"})
    assert bad.status_code == 400
    html = bad.content.decode()
    assert 'data-testid="error-category_critical"' in html and 'data-testid="error-min_sample"' in html
    zero = client.post(url, {**good, **{k: "0" for k in good if k.startswith("link_")}})
    assert zero.status_code == 400 and "Link weights: At least one link" in zero.content.decode()
    with tenant_context(sw.org):
        assert AlignmentSettings.objects.get().min_sample == 30  # nothing stored from bad input

    with django_capture_on_commit_callbacks(execute=True):
        saved = client.post(url, good)
    assert saved.status_code == 302
    with tenant_context(sw.org):
        row = AlignmentSettings.objects.get()
        assert row.min_sample == 10 and row.category_weights["critical"] == 3
        assert AuditLog.objects.filter(object_type="alignment.AlignmentSettings", action="update").exists()
        # the recompute ran with the new settings
        assert AlignmentScore.objects.filter(link=Link.OVERALL)[0].inputs["min_sample"] == 10


# --- API -----------------------------------------------------------------------------------------


def _ids(resp) -> set[int]:
    assert resp.status_code == 200, resp.content
    return {r["id"] for r in resp.json()["results"]}


def test_api_store_manager_sees_only_their_store(sw, api):
    t = sw.t
    rows = api(sw.world.users["manager"]).get(URL, {"page_size": 1000}).json()["results"]
    assert rows and {(r["location"]) for r in rows} == {t.locations["a-n1"].pk}
    assert {r["scope"] for r in rows} == {"location", "employee"}
    regional = api(sw.world.users["regional"]).get(URL, {"page_size": 1000}).json()["results"]
    assert {r["region"] for r in regional} == {t.regions["north"].pk}
    assert {r["scope"] for r in regional} == {"region", "location", "employee"}
    admin = api(sw.world.users["admin"]).get(URL, {"page_size": 1000}).json()["results"]
    assert {r["scope"] for r in admin} == {"organization", "region", "location", "employee"}
    mine = api(sw.world.users["employee"]).get(URL, {"page_size": 1000}).json()["results"]
    assert {(r["scope"], r["scope_id"]) for r in mine} == {("employee", t.employees["a-n1"].pk)}


def test_api_org_b_gets_404_and_sees_nothing(sw, api):
    score = score_of(sw, "location", sw.t.locations["a-n1"].pk)
    outsider = api(sw.world.users["outsider"])
    assert outsider.get(f"{URL}{score.pk}/").status_code == 404
    assert outsider.get(URL).json()["results"] == []
    assert api(key=sw.world.b.api_key).get(f"{URL}{score.pk}/").status_code == 404


def test_api_explanation_fields_and_filters(sw, api):
    client = api(sw.world.users["admin"])
    loc = sw.t.locations["a-n1"]
    score = score_of(sw, "location", loc.pk, Link.EXPECTATION_STANDARD)
    body = client.get(f"{URL}{score.pk}/").json()
    assert body["rankable"] is True and body["inputs"]["exact"] is True
    assert (
        body["link_label"] == "Customer expectations ↔ service standards"
        and body["period_label"] == "2025-03"
    )
    assert any(
        m["kind"] == "standard_without_question" and "asked by no question" in m["text"]
        for m in body["missing"]
    )
    assert body["explanation_url"] == reverse("alignment_score_explain", args=[score.pk])

    filtered = client.get(
        URL,
        {
            "scope": "location",
            "location": loc.pk,
            "period": "month",
            "link": "overall",
            "period_start": "2025-03-01",
        },
    ).json()["results"]
    assert [r["scope_id"] for r in filtered] == [loc.pk]
    in_range = client.get(
        URL,
        {
            "scope": "organization",
            "period": "day",
            "period_start_after": "2025-03-12",
            "period_start_before": "2025-03-12",
        },
    ).json()["results"]
    assert len(in_range) == 6
    assert client.get(URL, {"period_start_after": "2025-03-13"}).json()["results"] == []
    assert client.get(URL, {"scope": "galaxy"}).status_code == 400
    ranked = client.get(URL, {"rankable": "false", "scope": "location", "period": "month"}).json()["results"]
    assert {r["link"] for r in ranked} == {
        "training_execution",
        "execution_incentive",
    }  # no value: never ranked


def test_api_list_query_count_is_flat(sw, api, django_assert_max_num_queries):
    client = api(sw.world.users["admin"])
    with django_assert_max_num_queries(12):
        resp = client.get(URL, {"page_size": 500})
    assert len(resp.json()["results"]) > 100


def test_api_settings_read_and_admin_patch_naming_the_field(sw, api, django_capture_on_commit_callbacks):
    manager, admin = api(sw.world.users["manager"]), api(sw.world.users["admin"])
    [row] = manager.get(SETTINGS_URL).json()["results"]
    assert row["min_sample"] == 30 and row["category_weights"]["critical"] == 2
    detail = f"{SETTINGS_URL}{row['id']}/"
    assert manager.patch(detail, {"min_sample": 5}, format="json").status_code == 403

    for body, field in (
        ({"category_weights": {"critical": -1, "stabilizing": 1, "planned": 1}}, "category_weights"),
        ({"category_weights": {"critical": 2, "vip": 1}}, "category_weights"),
        (
            {
                "link_weights": dict.fromkeys(
                    (
                        "message_expectation",
                        "expectation_standard",
                        "standard_training",
                        "training_execution",
                        "execution_incentive",
                    ),
                    0,
                )
            },
            "link_weights",
        ),
        ({"min_sample": "lots"}, "min_sample"),
        ({"min_sample": 0}, "min_sample"),
        ({"alert_threshold": 101}, "alert_threshold"),
    ):
        resp = admin.patch(detail, body, format="json")
        assert resp.status_code == 400, (body, resp.content)
        assert field in resp.json(), resp.json()
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin.patch(
            detail,
            {"alert_threshold": "70", "category_weights": {"critical": 4, "stabilizing": 1, "planned": 0.5}},
            format="json",
        )
    assert resp.status_code == 200, resp.content
    assert resp.json()["alert_threshold"] == "70.00" and resp.json()["category_weights"]["planned"] == 0.5
    assert api(sw.world.users["outsider"]).patch(detail, {"min_sample": 3}, format="json").status_code == 404


def test_openapi_documents_the_alignment_score_routes(client):
    text = client.get("/api/schema/").content.decode()
    for route in (
        "/api/v1/alignment/scores/",
        "/api/v1/alignment/scores/{id}/",
        "/api/v1/alignment/settings/",
        "/api/v1/alignment/settings/{id}/",
    ):
        assert f"{route}:" in text, route
    assert "period_start_after" in text and "MissingPiece" in text
