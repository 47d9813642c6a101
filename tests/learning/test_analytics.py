"""Trainer analytics: most-sent lessons (manual vs automatic), completion and on-time rates, quiz
scores and attempts — per lesson, location, team and period; the viewer's scope; the pages and API
(filters, query bounds, org B), the effectiveness page and its recompute, the nav link."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from cem.tenancy import tenant_context
from learning import analytics
from learning import models as lm
from tests import factories as f
from tests.learning.factories import AssignmentFactory, LessonFactory, QuizFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


class Data:
    def __init__(self, world):
        a = world.a
        self.org = a.org
        self.e1, self.e2, self.e3 = a.employees["a-n1"], a.employees["a-n2"], a.employees["a-s1"]
        self.loc = a.locations
        self.team = f.TeamFactory(organization=self.org, location=a.locations["a-n1"], name="acme floor")
        self.l1 = LessonFactory(organization=self.org, title="acme greeting lesson")
        self.l2 = LessonFactory(organization=self.org, title="acme checkout lesson")
        self.quiz = QuizFactory(organization=self.org, lesson=self.l1, title="acme greeting quiz")

        def assign(lesson, emp, source, *, assigned=10, due, completed=None, status=None, team=None):
            return AssignmentFactory(
                organization=self.org,
                lesson=lesson,
                employee=emp,
                team=team,
                source=source,
                assigned_at=ago(assigned),
                due_at=ago(due),
                completed_at=ago(completed) if completed is not None else None,
                status=status or ("completed" if completed is not None else "assigned"),
            )

        # Lesson 1: two manual (one on time, one late), two automatic (one overdue, one not yet
        # due), one manual withdrawn.
        self.m1 = assign(self.l1, self.e1, "manual", due=3, completed=5, team=self.team)
        assign(self.l1, self.e2, "manual", due=3, completed=1)
        assign(self.l1, self.e3, "rule", due=2)
        assign(self.l1, self.e1, "rule", due=-5, assigned=2, team=self.team)
        assign(self.l1, self.e2, "manual", due=4, status="withdrawn")
        # Lesson 2: one automatic, done on time; one manual from long ago (outside 90 days).
        assign(self.l2, self.e1, "rule", due=-1, completed=2, team=self.team)
        assign(self.l2, self.e3, "manual", assigned=200, due=190, completed=195)
        # Quiz attempts at lesson 1's quiz: e1 fails then passes, e2 passes at once.
        with tenant_context(self.org):
            for emp, number, score, assignment in (
                (self.e1, 1, 60, self.m1),
                (self.e1, 2, 90, self.m1),
                (self.e2, 1, 100, None),
            ):
                lm.QuizAttempt.objects.create(
                    organization=self.org,
                    quiz=self.quiz,
                    assignment=assignment,
                    employee=emp,
                    location=emp.current_location,
                    number=number,
                    seed=number,
                    score=score,
                    passed=score >= 80,
                    started_at=ago(4),
                    submitted_at=ago(4),
                )


@pytest.fixture
def data(world):
    return Data(world)


def _caller(world, persona):
    from cem.models import Membership

    with tenant_context(world.a.org):
        membership = Membership.objects.get(user=world.users[persona])
    return analytics.Caller.of_membership(membership)


def _stats(world, persona="trainer", **params):
    with tenant_context(world.a.org):
        query = analytics.parse_query(params, world.a.org)
        caller = _caller(world, persona)
        return analytics.totals(caller=caller, query=query), analytics.stats(caller=caller, query=query)


def test_per_lesson_counts_and_rates(world, data):
    totals, rows = _stats(world)
    by = {r["key"]: r for r in rows}
    l1, l2 = by[data.l1.pk], by[data.l2.pk]
    assert [r["key"] for r in rows] == [data.l1.pk, data.l2.pk]  # most sent first
    assert l1["name"] == "acme greeting lesson"
    assert (l1["sent"], l1["manual"], l1["automatic"], l1["withdrawn"], l1["completed"]) == (5, 3, 2, 1, 2)
    assert l1["completion_rate"] == 50.0  # 2 of the 4 not withdrawn
    assert (l1["due"], l1["on_time"], l1["on_time_rate"]) == (3, 1, 33.3)  # the open, not-yet-due one is out
    assert l1["quiz"] == {
        "attempts": 3,
        "learners": 2,
        "attempts_per_learner": 1.5,
        "avg_score": 83.3,
        "pass_rate": 66.7,
    }
    assert (l2["sent"], l2["automatic"], l2["completion_rate"], l2["on_time_rate"]) == (1, 1, 100.0, 100.0)
    assert l2["quiz"]["attempts"] == 0 and l2["quiz"]["avg_score"] is None
    assert (totals["sent"], totals["manual"], totals["automatic"], totals["completed"]) == (6, 3, 3, 3)
    assert totals["quiz"]["attempts"] == 3

    _, everything = _stats(world, period="all")
    assert {r["key"]: r["sent"] for r in everything}[data.l2.pk] == 2


def test_by_location_team_and_period(world, data):
    _, rows = _stats(world, group_by="location")
    by = {r["key"]: r for r in rows}
    n1, n2, s1 = (by[data.loc[c].pk] for c in ("a-n1", "a-n2", "a-s1"))
    assert (n1["sent"], n1["manual"], n1["automatic"], n1["completion_rate"], n1["on_time_rate"]) == (
        3,
        1,
        2,
        66.7,
        100.0,
    )
    assert n1["quiz"]["avg_score"] == 75.0 and n1["quiz"]["attempts_per_learner"] == 2.0
    assert (n2["sent"], n2["withdrawn"], n2["completion_rate"], n2["on_time_rate"]) == (2, 1, 100.0, 0.0)
    assert n2["quiz"]["avg_score"] == 100.0
    assert (s1["sent"], s1["completion_rate"], s1["on_time_rate"]) == (1, 0.0, 0.0)
    assert n1["name"] == data.loc["a-n1"].name

    _, rows = _stats(world, group_by="team")
    by = {r["key"]: r for r in rows}
    assert by[data.team.pk]["sent"] == 3 and by[data.team.pk]["name"] == "acme floor"
    assert by[None]["sent"] == 3 and by[None]["name"] == "No team"
    assert by[data.team.pk]["quiz"]["attempts"] == 2  # the attempts made on the team's assignment

    _, rows = _stats(world, team=str(data.team.pk))
    assert {r["key"]: r["sent"] for r in rows} == {data.l1.pk: 2, data.l2.pk: 1}

    for period in ("week", "month"):
        _, rows = _stats(world, group_by=period, period="all")
        keys = [r["key"] for r in rows]
        assert keys == sorted(keys) and all(len(k) == 10 for k in keys)
        assert sum(r["sent"] for r in rows) == 7 and len(rows) >= 2
        assert rows[0]["sent"] == 1  # the old manual assignment's own period


def test_scope_store_manager_sees_only_their_store(world, data):
    totals, rows = _stats(world, "manager")
    assert totals["sent"] == 3 and totals["quiz"]["attempts"] == 2
    assert {r["key"]: r["sent"] for r in rows} == {data.l1.pk: 2, data.l2.pk: 1}
    _, by_location = _stats(world, "manager", group_by="location")
    assert [r["key"] for r in by_location] == [data.loc["a-n1"].pk]
    regional, _ = _stats(world, "regional")
    assert regional["sent"] == 5  # north: a-n1 and a-n2
    with tenant_context(world.a.org):
        options = analytics.filter_options(caller=_caller(world, "manager"))
    assert [pk for pk, _ in options["locations"]] == [data.loc["a-n1"].pk]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "7"}, "period"),
        ({"group_by": "colour"}, "group_by"),
        ({"location": "x1"}, "location"),
        ({"from": "2026-13-01"}, "from"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "to"),
    ],
)
def test_bad_parameters_name_the_field(world, api, params, field):
    resp = api(world.users["trainer"]).get("/api/v1/learning-analytics/lessons/", params)
    assert resp.status_code == 400 and field in resp.json(), resp.content


def test_api_lessons_matches_selectors_with_query_bound(world, data, api, django_assert_max_num_queries):
    client = api(world.users["trainer"])
    with django_assert_max_num_queries(14):
        resp = client.get("/api/v1/learning-analytics/lessons/", {"period": "90"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["group_by"] == "lesson" and body["totals"]["sent"] == 6
    row = body["results"][0]
    assert row["key"] == str(data.l1.pk) and row["manual"] == 3 and row["quiz"]["avg_score"] == 83.3
    resp = client.get("/api/v1/learning-analytics/lessons/", {"group_by": "location", "lesson": data.l1.pk})
    assert {r["key"]: r["sent"] for r in resp.json()["results"]} == {
        str(data.loc["a-n1"].pk): 2,
        str(data.loc["a-n2"].pk): 2,
        str(data.loc["a-s1"].pk): 1,
    }
    resp = api(world.users["manager"]).get("/api/v1/learning-analytics/lessons/")
    assert resp.json()["totals"]["sent"] == 3
    assert api(world.users["employee"]).get("/api/v1/learning-analytics/lessons/").status_code == 403
    outsider = api(world.users["outsider"]).get("/api/v1/learning-analytics/lessons/").json()
    assert outsider["totals"]["sent"] == 0 and outsider["results"] == []


def _effects(world):
    org, std = world.a.org, world.a.standard
    rows = {}
    for title, verdict, diff, low, high, nt, nc in (
        ("acme good lesson", "effective", 12.0, 6.5, 17.5, 30, 10),
        ("acme flat lesson", "ineffective", 0.8, -3.1, 4.7, 40, 12),
        ("acme new lesson", "insufficient data", None, None, None, 3, 0),
    ):
        lesson = LessonFactory(organization=org, title=title)
        with tenant_context(org):
            rows[verdict] = lm.LessonEffect.objects.create(
                organization=org,
                lesson=lesson,
                standard=std,
                computed_at=NOW,
                treated_n=nt,
                control_n=nc,
                difference=diff,
                ci_low=low,
                ci_high=high,
                verdict=verdict,
            )
    return rows


def test_lesson_effects_api_list_filter_and_org_b_404(world, api, django_assert_max_num_queries):
    rows = _effects(world)
    client = api(world.users["trainer"])
    with django_assert_max_num_queries(10):
        resp = client.get("/api/v1/lesson-effects/")
    assert resp.status_code == 200
    results = resp.json()["results"]
    assert len(results) == 3
    assert {r["verdict"] for r in results} == {"effective", "ineffective", "insufficient data"}
    flat = client.get("/api/v1/lesson-effects/", {"verdict": "ineffective"}).json()["results"]
    assert [r["lesson_title"] for r in flat] == ["acme flat lesson"] and flat[0]["ci_low"] == -3.1
    pk = rows["effective"].pk
    assert api(world.users["manager"]).get(f"/api/v1/lesson-effects/{pk}/").status_code == 200
    assert api(world.users["outsider"]).get(f"/api/v1/lesson-effects/{pk}/").status_code == 404
    assert api(key=world.b.api_key).get(f"/api/v1/lesson-effects/{pk}/").status_code in (403, 404)
    assert api(world.users["employee"]).get("/api/v1/lesson-effects/").status_code == 403


def test_recompute_api_queues_for_trainers_only(world, api, monkeypatch, django_capture_on_commit_callbacks):
    from learning import analytics_tasks

    queued = []
    monkeypatch.setattr(analytics_tasks.lesson_effects_compute, "delay", lambda tid: queued.append(tid))
    assert api(world.users["manager"]).post("/api/v1/lesson-effects/recompute/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        resp = api(world.users["trainer"]).post("/api/v1/lesson-effects/recompute/")
    assert resp.status_code == 202 and queued == [world.a.org.pk]


def test_overview_page_charts_tables_filters_and_query_bound(
    world, data, client, django_assert_max_num_queries
):
    client.force_login(world.users["trainer"])
    with django_assert_max_num_queries(22):
        resp = client.get("/learning/analytics/", {"by": "location"})
    assert resp.status_code == 200
    html = resp.content.decode()
    for testid in ("chart-most-sent", "chart-quiz", "chart-rates", "lesson-stats", "breakdown-stats"):
        assert f'data-testid="{testid}"' in html
    assert f'data-lesson="{data.l1.pk}" data-sent="5" data-manual="3" data-automatic="2"' in html
    assert "<script>" not in html  # charts go as JSON, drawn by static/feedback/charts.js
    assert 'type="application/json"' in html
    # The filters live in the URL: a location narrows every figure.
    resp = client.get("/learning/analytics/", {"location": data.loc["a-s1"].pk, "by": "team"})
    assert 'data-testid="kpi-sent" data-value="1"' in resp.content.decode()
    resp = client.get("/learning/analytics/", {"by": "month"}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 200 and "<html" not in resp.content.decode()
    resp = client.get("/learning/analytics/", {"period": "weird"})
    assert resp.status_code == 200 and "period:" in resp.content.decode()


def test_overview_page_scope_and_roles(world, data, client):
    client.force_login(world.users["manager"])
    html = client.get("/learning/analytics/").content.decode()
    assert 'data-testid="kpi-sent" data-value="3"' in html
    assert data.loc["a-s1"].name not in html
    client.force_login(world.users["employee"])
    assert client.get("/learning/analytics/").status_code == 403
    assert client.get("/learning/analytics/effectiveness/").status_code == 403


def test_effectiveness_page_flags_ineffective_and_explains_the_method(
    world, client, monkeypatch, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    _effects(world)
    client.force_login(world.users["trainer"])
    with django_assert_max_num_queries(12):
        resp = client.get("/learning/analytics/effectiveness/")
    html = resp.content.decode()
    assert resp.status_code == 200
    assert 'data-testid="ineffective-flag"' in html and "acme flat lesson" in html
    verdicts = [part.split('"')[0] for part in html.split('data-verdict="')[1:]]
    assert verdicts == ["ineffective", "effective", "insufficient data"]
    assert "-3.1 to 4.7" in html and "n = 40" in html
    assert 'data-testid="chart-effects"' in html and 'data-testid="method"' in html
    assert "held out" in html.lower() and "Welch" in html
    assert 'data-testid="recompute"' in html

    from learning import analytics_tasks

    queued = []
    monkeypatch.setattr(analytics_tasks.lesson_effects_compute, "delay", lambda tid: queued.append(tid))
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post("/learning/analytics/effectiveness/")
    assert resp.status_code == 302 and queued == [world.a.org.pk]

    client.force_login(world.users["manager"])
    html = client.get("/learning/analytics/effectiveness/").content.decode()
    assert "acme flat lesson" in html and 'data-testid="recompute"' not in html
    assert client.post("/learning/analytics/effectiveness/").status_code == 403

    client.force_login(world.users["outsider"])
    html = client.get("/learning/analytics/effectiveness/").content.decode()
    assert "acme" not in html.lower()


def test_nav_links_trainers_and_managers_to_analytics(world, client):
    for persona in ("trainer", "manager"):
        client.force_login(world.users[persona])
        assert 'href="/learning/analytics/"' in client.get("/").content.decode()
    client.force_login(world.users["employee"])
    html = client.get("/").content.decode()
    assert 'href="/learning/analytics/"' not in html
