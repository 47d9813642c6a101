"""Business data pages: the metric and CRM lists (filters, scope, query counts), CSV uploads with
the per-row report, the segment rule editor and apply, the comparison page and the nav entry."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.test import override_settings
from django.urls import reverse

from alignment.models import BusinessMetric, CustomerTransaction
from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f
from tests.alignment.business_data import Survey, customer, metric, purchase

PAGE = "/alignment/business/"


def _login(client, world, persona):
    client.force_login(world.users[persona])
    return client


def _upload(client, url, text, name="data.csv"):
    upload = io.BytesIO(text.encode())
    upload.name = name
    return client.post(url, {"file": upload})


@pytest.fixture
def metrics(world):
    for store in ("a-n1", "a-n2", "a-s1"):
        metric(world.a, store, "sales", 1000, start=dt.date(2026, 1, 1))
        metric(world.a, store, "returns", 7, start=dt.date(2026, 2, 1))
    return world


def test_metrics_page_lists_and_filters(metrics, world, client):
    _login(client, world, "admin")
    resp = client.get(PAGE)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert html.count('data-testid="metric-row"') == 6
    assert 'data-testid="metric-upload"' in html and 'data-testid="transaction-upload"' in html
    loc = world.a.locations["a-n2"].pk
    html = client.get(PAGE, {"location": loc, "kind": "returns"}).content.decode()
    assert html.count('data-testid="metric-row"') == 1 and "Returns" in html
    html = client.get(PAGE, {"from": "2026-02-01"}).content.decode()
    assert html.count('data-testid="metric-row"') == 3
    bad = client.get(PAGE, {"from": "someday", "kind": "profit"})
    assert bad.status_code == 400
    assert b"<strong>from</strong>" in bad.content and b"<strong>kind</strong>" in bad.content


def test_store_manager_sees_only_their_store_and_cannot_upload(metrics, world, client):
    _login(client, world, "manager")
    html = client.get(PAGE).content.decode()
    assert html.count('data-testid="metric-row"') == 2 and "a-n2" not in html.split("metric-list")[1]
    assert 'data-testid="metric-upload"' not in html
    resp = _upload(client, reverse("alignment_business_metrics_import"), "location,period_start,kind,value\n")
    assert resp.status_code == 403
    regional = _login(client, world, "regional").get(PAGE).content.decode()
    assert regional.count('data-testid="metric-row"') == 4
    assert _login(client, world, "employee").get(PAGE).status_code == 403


def test_metric_csv_upload_reports_rows_in_error_and_stores_the_rest(world, client):
    _login(client, world, "admin")
    text = (
        "location,period,period_start,kind,value\n"
        "a-n1,month,2026-03-01,sales,1500\n"
        "a-n2,month,2026-03-15,sales,1\n"
        "zz,month,2026-03-01,profit,x\n"
        "a-s1,quarter,2026-01-01,retention_rate,61.5\n"
    )
    url = reverse("alignment_business_metrics_import")
    resp = _upload(client, url, text)
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'data-testid="count-created">2<' in html and 'data-testid="count-error">2<' in html
    errors = html.split('data-testid="import-errors"')[1]
    # Row 1 is on CSV line 3 (after the header); each field at fault is named.
    assert '<td data-label="Row">1</td><td data-label="CSV line">3</td>' in errors
    assert "<code>period_start</code>" in errors and "A month starts on its first day (2026-03-01)." in errors
    for field in ("location", "kind", "value"):
        assert f"<code>{field}</code>" in errors
    with tenant_context(world.a.org):
        assert BusinessMetric.objects.count() == 2
    again = _upload(client, url, text).content.decode()
    assert 'data-testid="count-unchanged">2<' in again
    with tenant_context(world.a.org):
        assert BusinessMetric.objects.count() == 2


def test_upload_problems_are_400_naming_the_file(world, client):
    _login(client, world, "admin")
    url = reverse("alignment_business_metrics_import")
    resp = client.post(url, {})
    assert resp.status_code == 400 and b"Choose a CSV file" in resp.content
    assert _upload(client, url, "location,kind\n").status_code == 400
    with override_settings(BULK_INGEST_MAX_ROWS=2):
        resp = _upload(client, url, "location,period_start,kind,value\n" + "a-n1,2026-01-01,sales,1\n" * 3)
    assert resp.status_code == 400 and b"At most 2 rows per file; this one has 3." in resp.content
    assert client.get(url).status_code == 405


def test_transactions_page_and_upload(world, client):
    _login(client, world, "admin")
    text = (
        "external_id,customer,occurred_on,amount,location\n"
        "acme-p1,acme-crm-7,2026-01-02,25.00,a-n1\n"
        "acme-p2,acme-crm-8,2026-01-02,abc,a-s1\n"
    )
    resp = _upload(client, reverse("alignment_business_transactions_import"), text)
    html = resp.content.decode()
    assert 'data-testid="count-created">1<' in html and 'data-testid="count-customers">1<' in html
    assert "<code>amount</code>" in html and "Must be a number." in html
    page = client.get(reverse("alignment_business_transactions")).content.decode()
    assert page.count('data-testid="transaction-row"') == 1 and "acme-crm-7" in page
    assert (
        client.get(reverse("alignment_business_transactions"), {"customer": "nobody"})
        .content.decode()
        .count('data-testid="transaction-row"')
        == 0
    )
    _login(client, world, "manager")
    assert "acme-crm-7" in client.get(reverse("alignment_business_transactions")).content.decode()
    _login(client, world, "regional")  # a-n1 is in the north region
    assert "acme-crm-7" in client.get(reverse("alignment_business_transactions")).content.decode()


def test_segment_rule_editor_validates_saves_and_applies(world, client):
    buyer = customer(world.a, "acme-buyer")
    purchase(world.a, buyer, 30)
    seg = f.SegmentFactory(organization=world.a.org, name="acme low", rule=[])
    _login(client, world, "admin")
    url = reverse("alignment_business_segment", args=[seg.pk])
    assert client.get(url).status_code == 200
    bad = client.post(
        url,
        {
            "field_0": "total_spend",
            "op_0": "lt",
            "value_0": "cheap",
            "field_1": "shoe",
            "op_1": "eq",
            "value_1": "9",
        },
    )
    assert bad.status_code == 400
    html = bad.content.decode()
    assert "Condition 1 value: Field &#x27;total_spend&#x27;: must be a number." in html
    assert "Condition 2 field: Unknown field &#x27;shoe&#x27;" in html
    ok = client.post(
        url, {"field_0": "total_spend", "op_0": "lt", "value_0": "100", "field_1": "", "value_1": ""}
    )
    assert ok.status_code == 302
    with tenant_context(world.a.org):
        seg.refresh_from_db()
    assert seg.rule == [{"field": "total_spend", "op": "lt", "value": 100}]
    page = client.get(url).content.decode()
    assert 'data-testid="rule-matches">2<' in page  # acme-buyer and the fixture's customer
    listing = client.get(reverse("alignment_business_segments")).content.decode()
    assert "total_spend lt 100" in listing and 'data-testid="apply"' in listing
    applied = client.post(reverse("alignment_business_segment_apply", args=[seg.pk]), follow=True)
    assert b"acme low: 2 customers now (2 added, 0 removed)." in applied.content
    with tenant_context(world.a.org):
        assert m.Customer.objects.filter(segment=seg).count() == 2
    # Managers read the rules, but cannot change or apply them.
    _login(client, world, "manager")
    assert client.get(url).status_code == 200
    assert client.post(url, {"field_0": "total_spend", "op_0": "lt", "value_0": "1"}).status_code == 403
    assert client.post(reverse("alignment_business_segment_apply", args=[seg.pk])).status_code == 403


def test_comparison_page_shows_the_sentence(world, client):
    standard = f.StandardFactory(organization=world.a.org, code="acme-greet", title="Greeting")
    survey = Survey(world.a, standard)
    for i, (amount, rating) in enumerate([(20, 2), (30, 2), (500, 4), (300, 5)]):
        c = customer(world.a, f"acme-c{i}")
        purchase(world.a, c, amount)
        survey.answer(c, rating)
    _login(client, world, "executive")
    html = client.get(reverse("alignment_business_compare")).content.decode()
    assert (
        "Customers whose average purchase was under 100: Greeting 2.0/5 (n=2) vs 4.5/5 (n=2) for the rest"
        in html
    )
    bad = client.get(reverse("alignment_business_compare"), {"amount_lt": "x"})
    assert bad.status_code == 400 and b"<strong>amount_lt</strong>" in bad.content


def test_nav_entry_follows_business_data_view(world, client):
    assert b'href="/alignment/business/"' in _login(client, world, "manager").get("/").content
    assert b'href="/alignment/business/"' not in _login(client, world, "employee").get("/").content
    assert b'href="/alignment/business/"' not in _login(client, world, "trainer").get("/").content


@pytest.mark.parametrize(
    "url",
    [
        PAGE,
        "/alignment/business/transactions/",
        "/alignment/business/segments/",
    ],
)
def test_pages_run_a_fixed_number_of_queries(world, client, url, django_assert_max_num_queries):
    def grow(n):
        for i in range(n):
            c = customer(world.a, f"acme-q-{url}-{len(str(n))}-{i}")
            purchase(world.a, c, 10 + i)
            metric(
                world.a,
                "a-n1",
                "sales",
                i,
                period="day",
                start=dt.date(2026, 1, 1) + dt.timedelta(days=i + n),
            )
            f.SegmentFactory(organization=world.a.org, name=f"acme seg {url} {n} {i}")

    _login(client, world, "admin")
    grow(2)
    client.get(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    grow(20)
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).status_code == 200
    assert len(many) == len(few), [q["sql"][:120] for q in many]
    with django_assert_max_num_queries(12):
        client.get(url)


def test_api_lists_run_a_fixed_number_of_queries(world, api):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api(key=world.a.api_key)
    client.get("/api/v1/business-metrics/")  # the key's first use is recorded once
    counts = []
    for n in (2, 25):
        for i in range(n):
            c = customer(world.a, f"acme-api-{n}-{i}")
            purchase(world.a, c, 5 + i, ref=f"acme-api-tx-{n}-{i}")
            day = dt.date(2025, 1, 1) + dt.timedelta(days=i + n)
            metric(world.a, "a-s1", "sales", i, period="day", start=day)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/api/v1/business-metrics/").status_code == 200
            assert client.get("/api/v1/crm-transactions/").status_code == 200
        # The key's cached verification and last-use stamp come and go with time; the reads of
        # the lists themselves are what must not grow with the rows.
        counts.append([q["sql"] for q in ctx if "alignment_" in q["sql"] or "cem_customer" in q["sql"]])
    assert len(counts[0]) == len(counts[1]) == 4, counts
    with tenant_context(world.a.org):
        assert CustomerTransaction.objects.count() == 27


def test_metric_list_scope_and_other_tenant_in_the_api(metrics, world, api):
    manager = api(world.users["manager"]).get("/api/v1/business-metrics/").json()
    assert {r["location_code"] for r in manager["results"]} == {"a-n1"}
    with tenant_context(world.a.org):
        other = BusinessMetric.objects.filter(location__code="a-s1").first()
        mine = BusinessMetric.objects.filter(location__code="a-n1").first()
    assert api(world.users["manager"]).get(f"/api/v1/business-metrics/{other.pk}/").status_code == 404
    assert api(world.users["manager"]).get(f"/api/v1/business-metrics/{mine.pk}/").status_code == 200
    assert api(world.users["outsider"]).get(f"/api/v1/business-metrics/{mine.pk}/").status_code == 404
    assert api(world.users["outsider"]).get("/api/v1/business-metrics/").json()["count"] == 0
    filtered = api(world.users["admin"]).get(
        "/api/v1/business-metrics/", {"kind": "returns", "location_code": "a-s1"}
    )
    assert filtered.json()["count"] == 1
