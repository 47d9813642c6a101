"""GET /api/v1/metrics/: exact values, grouping, time zones, scope, tenancy and 400s."""

import datetime as dt

import pytest

from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback import models as fm
from feedback.services import Dimensions, response_record
from tests import factories as f
from tests.feedback.metric_data import NOW, Spec, bulk_answers, scores

URL = "/api/v1/metrics/"


def _get(client, **params):
    resp = client.get(URL, params)
    assert resp.status_code == 200, resp.content
    return resp.json()


def _by(results, dim):
    return {r["group"][dim]: (r["value"], r["n"]) for r in results}


@pytest.fixture
def data(sw):
    a = sw.world.a
    # a-n1: 20 % detractors, 10 % passives, 70 % promoters → 50; a-n2: [1,7,7,8,9,10] → 16.67
    bulk_answers(sw, scores("nps", [3] * 2 + [7] * 1 + [10] * 7, location="a-n1"))
    bulk_answers(sw, scores("nps", [1, 7, 7, 8, 9, 10], location="a-n2"))
    bulk_answers(sw, scores("csat", [1, 2, 3, 4, 5], location="a-n1"))
    bulk_answers(sw, scores("ces", [1, 2, 7], location="a-s1"))
    bulk_answers(sw, scores("fcr", [1, 1, 0], location="a-s1"))
    # Org B has data too; it must never appear in org A's figures or vice versa.
    bulk_answers(sw, scores("nps", [0, 0, 0], location="b-1"), tenant=sw.world.b)
    return a


def test_vectors_by_location(data, api, sw):
    client = api(sw.world.users["admin"])
    body = _get(client, metric="nps", group_by="location")
    assert body["metric"] == "nps"
    a = sw.world.a
    assert _by(body["results"], "location") == {
        a.locations["a-n1"].pk: (50.0, 10),
        a.locations["a-n2"].pk: (16.67, 6),
    }
    assert _get(client, metric="csat")["results"] == [{"group": {}, "value": 40.0, "n": 5}]
    assert _get(client, metric="ces")["results"] == [{"group": {}, "value": 3.33, "n": 3}]
    assert _get(client, metric="fcr")["results"] == [{"group": {}, "value": 66.67, "n": 3}]
    # Overall NPS over both stores: 7+2 promoters, 2+1 detractors of 16 → 37.5
    assert _get(client)["results"] == [{"group": {}, "value": 37.5, "n": 16}]


def test_skipped_questions_are_excluded(sw, api):
    a = sw.world.a
    with tenant_context(a.org):
        for values in ({"nps": 10}, {"nps": 0, "csat": 5}, {"nps": 9, "csat": ""}):
            response_record(
                organization=a.org,
                actor=Actor.system(),
                survey=sw.survey,
                values=values,
                source="api",
                dimensions=Dimensions.from_interaction(a.interactions["a-n1"]),
            )
    client = api(sw.world.users["admin"])
    assert _get(client, metric="nps")["results"] == [{"group": {}, "value": 33.33, "n": 3}]
    assert _get(client, metric="csat")["results"] == [{"group": {}, "value": 100.0, "n": 1}]
    assert _get(client, metric="fcr")["results"] == [{"group": {}, "value": None, "n": 0}]


def test_empty_set_is_null(sw, api):
    client = api(sw.world.users["admin"])
    for metric in ("nps", "csat", "ces", "fcr", "complaint_rate", "resolution_rate"):
        assert _get(client, metric=metric)["results"] == [{"group": {}, "value": None, "n": 0}], metric
    assert _get(client, metric="nps", group_by="location")["results"] == []


def test_month_in_the_organization_time_zone(sw, api):
    a = sw.world.a
    with tenant_context(a.org):
        m.Organization.objects.filter(pk=a.org.pk).update(time_zone="Europe/Madrid")
    late_march_utc = dt.datetime(2026, 3, 31, 22, 30, tzinfo=dt.UTC)  # 00:30 on 1 April in Madrid
    bulk_answers(
        sw, [Spec("nps", 10, when=late_march_utc), Spec("nps", 0, when=late_march_utc.replace(day=15))]
    )
    body = _get(api(sw.world.users["admin"]), metric="nps", group_by="month")
    assert body["results"] == [
        {"group": {"month": "2026-03-01"}, "value": -100.0, "n": 1},
        {"group": {"month": "2026-04-01"}, "value": 100.0, "n": 1},
    ]
    # A date bound covers the whole local day: "to=2026-03-31" stops at Madrid's midnight.
    body = _get(api(sw.world.users["admin"]), metric="nps", **{"from": "2026-03-01", "to": "2026-03-31"})
    assert body["results"] == [{"group": {}, "value": -100.0, "n": 1}]
    body = _get(api(sw.world.users["admin"]), metric="nps", **{"from": "2026-04-01"})
    assert body["results"] == [{"group": {}, "value": 100.0, "n": 1}]
    body = _get(api(sw.world.users["admin"]), metric="nps", group_by="day,location")
    assert [r["group"]["day"] for r in body["results"]] == ["2026-03-15", "2026-04-01"]


def test_group_by_standard_segment_employee_team_region_and_combined(sw, api):
    a = sw.world.a
    segment = f.SegmentFactory(organization=a.org, name="gold")
    team = f.TeamFactory(organization=a.org, name="floor", location=a.locations["a-n1"])
    with tenant_context(a.org):
        m.Employee.objects.filter(pk=a.employees["a-n1"].pk).update(current_team=team)
    std = a.standard
    bulk_answers(sw, scores("csat", [5, 5, 1], location="a-n1", extra={"standard": std, "segment": segment}))
    bulk_answers(sw, scores("csat", [1], location="a-n2"))
    bulk_answers(sw, scores("csat", [4, 4], location="a-s1", when=NOW - dt.timedelta(days=40)))
    client = api(sw.world.users["admin"])
    assert _by(_get(client, metric="csat", group_by="standard")["results"], "standard") == {
        std.pk: (66.67, 3),
        None: (66.67, 3),
    }
    assert _by(_get(client, metric="csat", group_by="segment")["results"], "segment")[segment.pk] == (
        66.67,
        3,
    )
    assert _by(_get(client, metric="csat", group_by="employee")["results"], "employee") == {
        a.employees["a-n1"].pk: (66.67, 3),
        a.employees["a-n2"].pk: (0.0, 1),
        a.employees["a-s1"].pk: (100.0, 2),
    }
    assert _by(_get(client, metric="csat", group_by="team")["results"], "team") == {
        team.pk: (66.67, 3),
        None: (66.67, 3),
    }
    assert _by(_get(client, metric="csat", group_by="region")["results"], "region") == {
        a.regions["north"].pk: (50.0, 4),
        a.regions["south"].pk: (100.0, 2),
    }
    combined = _get(client, metric="csat", group_by="location,month")["results"]
    assert len(combined) == 3
    assert {tuple(r["group"]) for r in combined} == {("location", "month")}
    n1 = [r for r in combined if r["group"]["location"] == a.locations["a-n1"].pk]
    assert n1 == [
        {
            "group": {"location": a.locations["a-n1"].pk, "month": n1[0]["group"]["month"]},
            "value": 66.67,
            "n": 3,
        }
    ]
    # Filters narrow the same query.
    region_north = _get(client, metric="csat", region=str(a.regions["north"].pk))["results"]
    assert region_north == [{"group": {}, "value": 50.0, "n": 4}]
    two = f"{a.locations['a-n2'].pk},{a.locations['a-s1'].pk}"
    assert _get(client, metric="csat", location=two)["results"] == [{"group": {}, "value": 66.67, "n": 3}]
    assert _get(client, metric="csat", question="csat", survey=str(sw.survey.pk))["results"][0]["n"] == 6
    assert _get(client, metric="csat", question="nps")["results"][0]["n"] == 0


def test_store_manager_sees_only_their_store(data, api, sw):
    a = sw.world.a
    manager = api(sw.world.users["manager"])
    assert _get(manager, metric="nps")["results"] == [{"group": {}, "value": 50.0, "n": 10}]
    assert _by(_get(manager, metric="nps", group_by="location")["results"], "location") == {
        a.locations["a-n1"].pk: (50.0, 10)
    }
    # Asking for another store by id finds nothing rather than widening the scope.
    other = _get(manager, metric="nps", location=str(a.locations["a-n2"].pk))
    assert other["results"] == [{"group": {}, "value": None, "n": 0}]
    regional = api(sw.world.users["regional"])
    assert _get(regional, metric="nps")["results"] == [{"group": {}, "value": 37.5, "n": 16}]
    assert _get(regional, metric="fcr")["results"] == [{"group": {}, "value": None, "n": 0}]
    employee = api(sw.world.users["employee"])
    assert _get(employee, metric="nps")["results"] == [{"group": {}, "value": 50.0, "n": 10}]
    assert api(sw.world.users["shopper"]).get(URL).status_code == 403


def test_outsider_sees_nothing_of_org_a(data, api, sw):
    for client in (api(sw.world.users["outsider"]), api(key=sw.world.b.api_key)):
        assert _get(client, metric="nps")["results"] == [{"group": {}, "value": -100.0, "n": 3}]
        grouped = _get(client, metric="nps", group_by="location")["results"]
        assert _by(grouped, "location") == {sw.world.b.locations["b-1"].pk: (-100.0, 3)}
        by_a = _get(client, metric="nps", location=str(sw.world.a.locations["a-n1"].pk))
        assert by_a["results"] == [{"group": {}, "value": None, "n": 0}]
    # Org A's integrator key sees org A.
    assert _get(api(key=sw.world.a.api_key), metric="nps")["results"][0]["n"] == 16


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"metric": "happiness"}, "metric"),
        ({"group_by": "planet"}, "group_by"),
        ({"group_by": "day,month"}, "group_by"),
        ({"group_by": "location,location"}, "group_by"),
        ({"metric": "resolution_rate", "group_by": "channel"}, "group_by"),
        ({"metric": "complaint_rate", "standard": "1"}, "standard"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-02-30"}, "to"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),
        ({"location": "abc"}, "location"),
        ({"survey": "-1"}, "survey"),
    ],
)
def test_bad_input_is_400_naming_the_parameter(sw, api, params, param):
    resp = api(sw.world.users["admin"]).get(URL, params)
    assert resp.status_code == 400, resp.content
    assert param in resp.json(), resp.json()


def test_detail_route_does_not_exist(data, api, sw):
    assert api(sw.world.users["admin"]).get(f"{URL}1/").status_code == 404


def _case(a, response, *, due, resolved=None):
    return fm.Case.objects.create(
        organization=a.org,
        response=response,
        title="acme case",
        location=response.location,
        employee=response.employee,
        sla_due_at=due,
        resolved_at=resolved,
        status=fm.Case.Status.RESOLVED if resolved else fm.Case.Status.OPEN,
    )


def test_complaint_and_resolution_rates(sw, api):
    a = sw.world.a
    answers = bulk_answers(
        sw, scores("nps", [0] * 4, location="a-n1") + scores("nps", [10] * 2, location="a-n2")
    )
    past = NOW - dt.timedelta(hours=1)
    with tenant_context(a.org):
        r = [x.response for x in answers]
        _case(a, r[0], due=past, resolved=past - dt.timedelta(minutes=5))  # within SLA
        _case(a, r[1], due=past, resolved=past + dt.timedelta(minutes=5))  # late
        _case(a, r[2], due=past)  # overdue, open
        _case(a, r[3], due=NOW + dt.timedelta(days=1))  # not due yet: no outcome
    client = api(sw.world.users["admin"])
    rates = _by(_get(client, metric="complaint_rate", group_by="location")["results"], "location")
    assert rates == {a.locations["a-n1"].pk: (100.0, 4), a.locations["a-n2"].pk: (0.0, 2)}
    assert _get(client, metric="complaint_rate")["results"] == [{"group": {}, "value": 66.67, "n": 6}]
    res = _get(client, metric="resolution_rate", group_by="location,month")["results"]
    assert [(r["value"], r["n"]) for r in res] == [(33.33, 3)]
    assert res[0]["group"]["location"] == a.locations["a-n1"].pk
    manager_view = _get(api(sw.world.users["manager"]), metric="complaint_rate")["results"]
    assert manager_view == [{"group": {}, "value": 100.0, "n": 4}]
    outsider = _get(api(sw.world.users["outsider"]), metric="resolution_rate")["results"]
    assert outsider == [{"group": {}, "value": None, "n": 0}]


def test_comments_list_filters_and_scope(sw, api):
    a = sw.world.a
    bulk_answers(
        sw,
        [
            Spec(
                "text",
                None,
                location="a-n1",
                extra={"text": "rude", "sentiment": "negative", "topics": ["rude"]},
            ),
            Spec(
                "text", None, location="a-n2", extra={"text": "lovely", "sentiment": "positive", "topics": []}
            ),
        ],
    )
    admin = api(sw.world.users["admin"])
    body = admin.get("/api/v1/answers/").json()
    assert {c["text"] for c in body["results"]} == {"rude", "lovely"}
    assert [
        c["text"] for c in admin.get("/api/v1/answers/", {"sentiment": "negative"}).json()["results"]
    ] == ["rude"]
    assert [c["text"] for c in admin.get("/api/v1/answers/", {"topic": "rude"}).json()["results"]] == ["rude"]
    assert admin.get("/api/v1/answers/", {"from": "2999-01-01"}).json()["results"] == []
    assert admin.get("/api/v1/answers/", {"from": "nope"}).status_code == 400
    manager = api(sw.world.users["manager"]).get("/api/v1/answers/").json()
    assert [c["location"] for c in manager["results"]] == [a.locations["a-n1"].pk]
    assert api(sw.world.users["outsider"]).get("/api/v1/answers/").json()["results"] == []


def test_schema_documents_the_metrics_endpoint(sw, api):
    resp = api(sw.world.users["admin"]).get("/api/schema/", {"format": "json"})
    assert resp.status_code == 200
    op = resp.json()["paths"]["/api/v1/metrics/"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert {"metric", "group_by", "from", "to", "survey", "question", "location", "region"} <= names


def test_an_escalated_case_never_counts_as_resolved_within_sla(sw, api):
    """Escalation moves sla_due_at on; the case had already missed its first deadline."""
    a = sw.world.a
    answers = bulk_answers(sw, scores("nps", [0, 0], location="a-n1"))
    past = NOW - dt.timedelta(hours=1)
    with tenant_context(a.org):
        on_time = _case(a, answers[0].response, due=past, resolved=past - dt.timedelta(minutes=5))
        late = _case(a, answers[1].response, due=past, resolved=past - dt.timedelta(minutes=5))
        fm.Case.objects.filter(pk=late.pk).update(escalation_level=1)
    assert on_time.pk != late.pk
    body = _get(api(sw.world.users["admin"]), metric="resolution_rate")
    assert body["results"] == [{"group": {}, "value": 50.0, "n": 2}]
