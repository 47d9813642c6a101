"""Driver analyses over the API and on the page: stored snapshots read (scoped, newest per
scope), recompute queued and run by the named task, bad periods a 400 naming the field, org B
404, query counts flat; the page draws the ranked chart, effects with intervals and n, R², the
value per point, the refusal message, the recompute button and the last computed time."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alignment import drivers
from alignment.models import DriverAnalysis
from cem import models as m
from cem.tenancy import tenant_context
from tests.alignment.driver_data import DriverWorld, business_panel


@pytest.fixture
def dw(world):
    return DriverWorld(world)


def computed(dw, respondents=300, *, panel=False):
    if panel:
        business_panel(dw)
    dw.respondents(respondents)
    with tenant_context(dw.org):
        drivers.drivers_compute(organization=dw.org)


def fake_snapshot(org, *, location=None, outcome="nps", days_ago=0, n=100):
    today = timezone.now().date()
    with tenant_context(org):
        return DriverAnalysis.objects.create(
            organization=org,
            location=location,
            outcome=outcome,
            period_start=today - dt.timedelta(days=179 + days_ago),
            period_end=today - dt.timedelta(days=days_ago),
            method="acme method",
            n=n,
            drivers=[],
            value_per_point={
                "status": "not_enough_data",
                "message": "acme",
                "notes": [],
                "caveats": [],
                "values": [],
            },
            computed_at=timezone.now() - dt.timedelta(days=days_ago),
        )


# --- API --------------------------------------------------------------------------------------------


def test_list_and_detail_carry_the_ranked_drivers(dw, api):
    computed(dw, panel=True)
    client = api(dw.world.users["admin"])
    resp = client.get("/api/v1/driver-analyses/?scope=organization&outcome=nps")
    assert resp.status_code == 200, resp.content
    [row] = resp.json()["results"]
    assert row["location"] is None and row["n"] == 300 and row["r_squared"] > 0.5
    top = row["drivers"][0]
    assert top["standard_id"] == dw.std_a.pk and top["low"] > 0 and top["items"][0]["key"] == "greet"
    assert (
        row["value_per_point"]["status"] == "ok" and row["value_per_point"]["values"][0]["outcome"] == "sales"
    )
    assert client.get(f"/api/v1/driver-analyses/{row['id']}/").json() == row
    loc = dw.world.a.locations["a-n1"].pk
    rows = client.get(f"/api/v1/driver-analyses/?location={loc}").json()["results"]
    assert {r["outcome"] for r in rows} == {"nps", "sales", "retention_rate"}


def test_latest_keeps_the_newest_per_scope_and_outcome(world, api):
    org = world.a.org
    old = fake_snapshot(org, days_ago=3)
    new = fake_snapshot(org)
    store = fake_snapshot(org, location=world.a.locations["a-n1"])
    resp = api(world.users["admin"]).get("/api/v1/driver-analyses/?latest=true")
    ids = [r["id"] for r in resp.json()["results"]]
    assert set(ids) == {new.pk, store.pk} and old.pk not in ids


def test_store_manager_sees_only_their_stores_snapshots(world, api):
    org = world.a.org
    fake_snapshot(org)
    mine = fake_snapshot(org, location=world.a.locations["a-n1"])
    fake_snapshot(org, location=world.a.locations["a-s1"])
    rows = api(world.users["manager"]).get("/api/v1/driver-analyses/").json()["results"]
    assert [r["id"] for r in rows] == [mine.pk]
    regional = api(world.users["regional"]).get("/api/v1/driver-analyses/").json()["results"]
    assert [r["id"] for r in regional] == [mine.pk]  # a-s1 is in the south


def test_recompute_is_queued_runs_the_named_task_and_is_logged(dw, api, django_capture_on_commit_callbacks):
    dw.respondents(150)
    client = api(dw.world.users["admin"])
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post("/api/v1/driver-analyses/recompute/", {}, format="json")
    assert resp.status_code == 202 and resp.json()["queued"] is True
    with tenant_context(dw.org):
        snap = DriverAnalysis.objects.get(outcome="nps", location__isnull=True)
        assert snap.n == 150 and snap.drivers
        assert m.AuditLog.objects.filter(action="driver_analysis.recompute").count() == 1


def test_recompute_for_a_period(dw, api, django_capture_on_commit_callbacks):
    dw.respondents(120, days_ago=20)
    end = timezone.now().date()
    start = end - dt.timedelta(days=30)
    with django_capture_on_commit_callbacks(execute=True):
        resp = api(dw.world.users["admin"]).post(
            "/api/v1/driver-analyses/recompute/",
            {"period_start": start.isoformat(), "period_end": end.isoformat()},
            format="json",
        )
    assert resp.status_code == 202
    with tenant_context(dw.org):
        assert DriverAnalysis.objects.filter(outcome="nps", period_start=start, period_end=end).exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"period_start": "2026-02-01", "period_end": "2026-01-01"}, "period_end"),
        ({"period_start": "2026-02-01"}, "period_end"),
        ({"period_end": "2026-02-01"}, "period_start"),
        ({"period_start": "2020-01-01", "period_end": "2026-01-01"}, "period_start"),
        ({"period_start": "first of may", "period_end": "2026-01-01"}, "period_start"),
    ],
)
def test_recompute_bad_period_is_a_400_naming_the_field(world, api, payload, field):
    resp = api(world.users["admin"]).post("/api/v1/driver-analyses/recompute/", payload, format="json")
    assert resp.status_code == 400 and field in resp.json(), resp.content


def test_recompute_needs_change_rights_and_reads_need_view(world, api):
    assert api(world.users["executive"]).post("/api/v1/driver-analyses/recompute/", {}).status_code == 403
    assert api(world.users["manager"]).post("/api/v1/driver-analyses/recompute/", {}).status_code == 403
    assert api(world.users["trainer"]).get("/api/v1/driver-analyses/").status_code == 403
    assert api(world.users["employee"]).get("/api/v1/driver-analyses/").status_code == 403
    assert api(key=world.a.api_key).get("/api/v1/driver-analyses/").status_code == 200


def test_org_b_gets_404(world, api):
    snap = fake_snapshot(world.a.org)
    for client in (api(world.users["outsider"]), api(key=world.b.api_key)):
        assert client.get(f"/api/v1/driver-analyses/{snap.pk}/").status_code == 404
        assert client.get("/api/v1/driver-analyses/").json()["results"] == []


def _count(client, url):
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return len(ctx)


def test_list_endpoint_and_page_queries_do_not_grow(world, api, client):
    org = world.a.org
    admin = api(world.users["admin"])
    client.force_login(world.users["admin"])
    fake_snapshot(org)
    urls = ["/api/v1/driver-analyses/", "/api/v1/driver-analyses/?latest=true"]
    before = [_count(admin, u) for u in urls] + [_count(client, "/alignment/drivers/")]
    for i in range(1, 6):
        fake_snapshot(org, days_ago=i)
        fake_snapshot(org, location=world.a.locations["a-n1"], days_ago=i)
    after = [_count(admin, u) for u in urls] + [_count(client, "/alignment/drivers/")]
    assert after == before


# --- page ---------------------------------------------------------------------------------------------


def test_page_shows_the_ranked_chart_effects_value_and_method(dw, client):
    computed(dw, panel=True)
    client.force_login(dw.world.users["executive"])
    resp = client.get("/alignment/drivers/")
    body = resp.content.decode()
    assert resp.status_code == 200
    for marker in (
        "chart-drivers",
        "chart-effects",
        "r-squared",
        "driver-row",
        "value-row",
        "caveats",
        "method",
    ):
        assert f'data-testid="{marker}"' in body, marker
    assert body.index("Acme greeting") < body.index("Acme tidiness")  # ranked
    assert 'data-testid="recompute"' not in body  # executives read only
    assert "Computed " in body
    csv = client.get("/alignment/drivers/?format=csv")
    assert csv["Content-Type"].startswith("text/csv") and "acme-drv-a" in csv.content.decode()
    resp = client.get("/alignment/drivers/?outcome=sales")
    assert resp.status_code == 200 and 'data-testid="driver-row"' in resp.content.decode()


def test_page_says_not_enough_data_with_the_count(dw, client):
    computed(dw, respondents=37)
    client.force_login(dw.world.users["admin"])
    body = client.get("/alignment/drivers/").content.decode()
    assert 'data-testid="driver-refusal"' in body and "37 respondents" in body
    assert 'data-testid="chart-drivers"' not in body


def test_page_recompute_button_queues_for_admins(
    world, client, monkeypatch, django_capture_on_commit_callbacks
):
    from alignment import driver_tasks

    queued = []
    monkeypatch.setattr(driver_tasks.drivers_compute_task, "delay", lambda *a: queued.append(a))
    client.force_login(world.users["admin"])
    assert 'data-testid="recompute"' in client.get("/alignment/drivers/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        resp = client.post("/alignment/drivers/", {"next_query": "outcome=sales&location=&evil=//x"})
    assert resp.status_code == 302 and resp["Location"] == "/alignment/drivers/?outcome=sales&location="
    assert queued == [(world.a.org.pk,)]
    client.force_login(world.users["executive"])
    assert client.post("/alignment/drivers/").status_code == 403


def test_page_scope_and_bad_parameters(world, client):
    org = world.a.org
    fake_snapshot(org)
    n1 = fake_snapshot(org, location=world.a.locations["a-n1"], n=77)
    client.force_login(world.users["manager"])
    body = client.get("/alignment/drivers/").content.decode()  # defaults to their own store
    assert "Not enough data" not in body or "acme" in body
    assert f'<option value="{n1.location_id}" selected' in body
    assert "Whole organization" not in body
    other = world.a.locations["a-s1"].pk
    assert client.get(f"/alignment/drivers/?location={other}").status_code == 404
    resp = client.get("/alignment/drivers/?outcome=profit")
    assert resp.status_code == 400 and b"outcome" in resp.content
    resp = client.get("/alignment/drivers/?location=north")
    assert resp.status_code == 400 and b"location" in resp.content
    client.force_login(world.users["outsider"])
    assert client.get(f"/alignment/drivers/?location={n1.location_id}").status_code == 404
    assert b"acme" not in client.get("/alignment/drivers/").content.lower()
