"""Business-metric and CRM-transaction imports: JSON and CSV, idempotent upserts, per-row errors
naming the row and the field, the 10,000-row limit, events and the audit log."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

from django.test import override_settings

from alignment import business
from alignment.models import BusinessMetric, CustomerTransaction
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests.alignment.business_data import METRICS, TRANSACTIONS, metric_row, tx_row


def _metrics(world):
    with tenant_context(world.a.org):
        return {
            (r.location.code, r.period, r.period_start.isoformat(), r.kind): r.value
            for r in BusinessMetric.objects.select_related("location")
        }


def _statuses(body):
    return [r["status"] for r in body["results"]]


# --- business metrics ---------------------------------------------------------------------------


def test_metrics_json_import_is_idempotent_and_updates_changed_values(world, api):
    client = api(key=world.a.api_key)
    rows = [
        metric_row("a-n1", "sales", "12000.50"),
        metric_row("a-n1", "transactions", "400"),
        metric_row("a-n2", "retention_rate", "62.5", period="quarter"),
        metric_row("a-s1", "complaints", "3", period="week", period_start="2026-01-05"),
        metric_row("a-s1", "returns", "7", period="day", period_start="2026-01-07"),
        metric_row(None, "average_purchase", "30.00", location_id=world.a.locations["a-n1"].pk),
    ]
    first = client.post(f"{METRICS}bulk/", rows, format="json")
    assert first.status_code == 200, first.content
    assert first.json()["created"] == 6 and _statuses(first.json()) == ["created"] * 6
    stored = _metrics(world)
    assert stored[("a-n1", "month", "2026-01-01", "sales")] == Decimal("12000.50")
    assert stored[("a-n2", "quarter", "2026-01-01", "retention_rate")] == Decimal("62.50")

    again = client.post(f"{METRICS}bulk/", rows, format="json")
    assert _statuses(again.json()) == ["unchanged"] * 6
    assert [r["id"] for r in again.json()["results"]] == [r["id"] for r in first.json()["results"]]
    assert len(_metrics(world)) == 6

    rows[0]["value"] = "12500.00"
    changed = client.post(f"{METRICS}bulk/", rows, format="json").json()
    assert _statuses(changed) == ["updated"] + ["unchanged"] * 5
    assert changed["results"][0]["id"] == first.json()["results"][0]["id"]
    assert _metrics(world)[("a-n1", "month", "2026-01-01", "sales")] == Decimal("12500.00")
    assert len(_metrics(world)) == 6


def test_metrics_csv_upload_and_csv_body(world, api):
    client = api(key=world.a.api_key)
    csv_text = (
        "location,period,period_start,kind,value,source\n"
        "a-n1,month,2026-02-01,sales,5000,pos\n"
        "a-n2,,2026-02-01,sales,4000,\n"  # period defaults to month, source to csv
        "a-n2,month,2026-02-15,sales,1,\n"  # not the first of a month
    )
    upload = io.BytesIO(csv_text.encode())
    upload.name = "metrics.csv"
    resp = client.post(f"{METRICS}bulk/", {"file": upload}, format="multipart")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert _statuses(body) == ["created", "created", "error"]
    assert body["results"][2]["row"] == 2
    assert body["results"][2]["errors"] == {"period_start": ["A month starts on its first day (2026-02-01)."]}
    with tenant_context(world.a.org):
        sources = dict(BusinessMetric.objects.values_list("location__code", "source"))
    assert sources == {"a-n1": "pos", "a-n2": "csv"}

    body_csv = client.post(f"{METRICS}bulk/", data=csv_text.encode(), content_type="text/csv").json()
    assert _statuses(body_csv) == ["unchanged", "unchanged", "error"]


def test_metrics_per_row_errors_name_row_and_field_and_keep_valid_rows(world, api):
    rows = [
        metric_row("a-n1", "sales", "100"),
        metric_row("nowhere", "sales", "100"),
        metric_row("b-1", "sales", "100"),  # org B's store is unknown here
        metric_row("a-n1", "profit", "100"),
        metric_row("a-n1", "sales", "-5", period_start="2026-03-01"),
        metric_row("a-n1", "retention_rate", "140"),
        metric_row("a-n1", "sales", "lots", period_start="2026-04-01"),
        metric_row("a-n1", "sales", "1", period="quarter", period_start="2026-02-01"),
        metric_row("a-n1", "sales", "1", period="week", period_start="2026-01-07"),
        metric_row("a-n1", "sales", "1", period="year"),
        metric_row("a-n1", "sales", "1", period_start="01/02/2026"),
        {**metric_row("a-n2", "sales", "1"), "colour": "red"},
        "not an object",
        metric_row("a-n1", "sales", "100"),  # repeats row 0: a duplicate
        metric_row("a-n1", "sales", "999"),  # same key as row 0 with another value
        metric_row(None, "sales", "1"),
        metric_row("a-n2", "sales", "1", location_id=world.a.locations["a-n1"].pk),
    ]
    resp = api(key=world.a.api_key).post(f"{METRICS}bulk/", rows, format="json")
    assert resp.status_code == 200
    body = resp.json()
    results = body["results"]
    assert [r["row"] for r in results] == list(range(len(rows)))
    errors = {r["row"]: r.get("errors") for r in results if r["status"] == "error"}
    assert set(errors) == set(range(1, 13)) | {14, 15, 16}
    assert errors[1] == {"location": ["Unknown location 'nowhere'."]}
    assert errors[2] == {"location": ["Unknown location 'b-1'."]}
    assert list(errors[3]) == ["kind"]
    assert errors[4] == {"value": ["Must not be negative."]}
    assert errors[5] == {"value": ["A retention rate is a percentage (0-100)."]}
    assert errors[6] == {"value": ["Must be a number."]}
    assert "quarter starts" in errors[7]["period_start"][0]
    assert errors[8] == {"period_start": ["A week starts on a Monday (that week: 2026-01-05)."]}
    assert list(errors[9]) == ["period"]
    assert list(errors[10]) == ["period_start"]
    assert errors[11] == {"non_field_errors": ["Unknown field(s): colour."]}
    assert errors[12] == {"non_field_errors": ["Each row must be an object."]}
    assert results[13]["status"] == "duplicate" and results[13]["id"] == results[0]["id"]
    assert "Row 0" in errors[14]["value"][0]
    assert "location" in errors[15]
    assert errors[16] == {"location": ["location and location_id name different locations."]}
    assert (body["created"], body["duplicate"], body["error"]) == (1, 1, 15)
    assert _metrics(world) == {("a-n1", "month", "2026-01-01", "sales"): Decimal("100.00")}


def test_metrics_single_post_and_idempotency_key(world, api):
    client = api(key=world.a.api_key)
    row = metric_row("a-n1", "sales", "10")
    first = client.post(METRICS, row, format="json", HTTP_IDEMPOTENCY_KEY="acme-metric-1")
    assert first.status_code == 201, first.content
    assert first.json()["location_code"] == "a-n1" and first.json()["value"] == "10.00"
    replay = client.post(METRICS, row, format="json", HTTP_IDEMPOTENCY_KEY="acme-metric-1")
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    same = client.post(METRICS, row, format="json")
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"]
    changed = client.post(METRICS, {**row, "value": "11"}, format="json")
    assert changed.status_code == 200 and changed.json()["value"] == "11.00"
    bad = client.post(METRICS, {**row, "kind": "profit", "period_start": "x"}, format="json")
    assert bad.status_code == 400 and set(bad.json()) == {"kind", "period_start"}
    assert client.post(METRICS, [row], format="json").status_code == 400


def test_metrics_import_emits_one_event_and_writes_the_audit_log(world):
    org = world.a.org
    with tenant_context(org):
        rows = [metric_row("a-n1", "sales", "1"), metric_row("a-n2", "sales", "2")]
        business.business_metrics_import(organization=org, actor=Actor.system(), rows=rows)
        business.business_metrics_import(organization=org, actor=Actor.system(), rows=rows)  # unchanged
        events = list(m.OutboxEvent.objects.filter(event_type="BusinessMetricsImported"))
        logs = list(m.AuditLog.objects.filter(action="business_metrics.import").order_by("pk"))
    assert len(events) == 1
    assert len(events[0].payload["metric_ids"]) == 2 and events[0].payload["kinds"] == ["sales"]
    assert [(log.changes["created"], log.changes["unchanged"]) for log in logs] == [(2, 0), (0, 2)]


@override_settings(BULK_INGEST_MAX_ROWS=10_000)
def test_metrics_bulk_over_the_limit_is_refused(world, api):
    rows = [metric_row("a-n1", "sales", "1")] * 10_001
    resp = api(key=world.a.api_key).post(f"{METRICS}bulk/", rows, format="json")
    assert resp.status_code == 413 and resp.json()["max_rows"] == 10_000
    assert _metrics(world) == {}
    with tenant_context(world.a.org):
        try:
            business.business_metrics_import(organization=world.a.org, actor=Actor.system(), rows=rows)
        except business.TooManyRows:
            pass
        else:
            raise AssertionError("10,001 rows must be refused")


def test_metrics_bulk_of_10000_rows_goes_in_set_based(world, api, django_assert_max_num_queries):
    start = dt.date(2000, 1, 1)
    rows = [
        metric_row(
            "a-n1", "sales", str(i), period="day", period_start=(start + dt.timedelta(days=i)).isoformat()
        )
        for i in range(10_000)
    ]
    client = api(key=world.a.api_key)
    with django_assert_max_num_queries(40):
        resp = client.post(f"{METRICS}bulk/", rows, format="json")
    assert resp.status_code == 200 and resp.json()["created"] == 10_000


def test_writes_need_business_data_add(world, api):
    for persona in ("manager", "regional", "executive"):
        resp = api(world.users[persona]).post(METRICS, metric_row(), format="json")
        assert resp.status_code == 403, persona
        assert (
            api(world.users[persona]).post(f"{METRICS}bulk/", [metric_row()], format="json").status_code
            == 403
        )
    assert api(world.users["admin"]).post(METRICS, metric_row(), format="json").status_code == 201


# --- CRM transactions ---------------------------------------------------------------------------


def test_transactions_import_creates_unknown_customers_and_is_idempotent(world, api):
    client = api(key=world.a.api_key)
    rows = [
        tx_row("acme-tx-1", customer="acme-cust-1", amount="80.00"),  # the fixture's customer
        tx_row("acme-tx-2", customer="acme-crm-new", amount="120.00"),
        tx_row("acme-tx-3", customer="acme-crm-new", amount="20.00", location=None),
    ]
    first = client.post(f"{TRANSACTIONS}bulk/", rows, format="json")
    assert first.status_code == 200, first.content
    body = first.json()
    assert _statuses(body) == ["created"] * 3 and body["customers_created"] == 1
    with tenant_context(world.a.org):
        new = m.Customer.objects.get(external_id="acme-crm-new")
        assert (new.email, new.consent_email, new.consent_sms) == ("", False, False)
        stored = {t.external_id: t for t in CustomerTransaction.objects.all()}
    assert stored["acme-tx-1"].customer_id == world.a.customer.pk
    assert stored["acme-tx-3"].location_id is None and stored["acme-tx-2"].amount == Decimal("120.00")

    again = client.post(f"{TRANSACTIONS}bulk/", rows, format="json").json()
    assert _statuses(again) == ["unchanged"] * 3 and again["customers_created"] == 0
    rows[1]["amount"] = "125.00"
    changed = client.post(f"{TRANSACTIONS}bulk/", rows, format="json").json()
    assert _statuses(changed) == ["unchanged", "updated", "unchanged"]
    with tenant_context(world.a.org):
        assert CustomerTransaction.objects.count() == 3
        assert CustomerTransaction.objects.get(external_id="acme-tx-2").amount == Decimal("125.00")
        assert m.Customer.objects.filter(external_id="acme-crm-new").count() == 1
        events = m.OutboxEvent.objects.filter(event_type="CustomerTransactionsImported").count()
    assert events == 2  # the first import and the correction; the unchanged replay emits nothing


def test_transactions_per_row_errors_name_row_and_field(world, api):
    future = (dt.date.today() + dt.timedelta(days=5)).isoformat()
    rows = [
        tx_row("acme-ok"),
        tx_row("acme-future", occurred_on=future),
        tx_row("acme-bad-amount", amount="12abc"),
        tx_row("acme-no-customer", customer=""),
        tx_row("acme-bad-loc", location="zz"),
        tx_row("", amount="1"),
        tx_row("acme-ok"),  # duplicate of row 0
        tx_row("acme-ok", amount="99"),  # same external id, other values
        tx_row("acme-bad-date", occurred_on="yesterday"),
    ]
    body = api(key=world.a.api_key).post(f"{TRANSACTIONS}bulk/", rows, format="json").json()
    errors = {r["row"]: r["errors"] for r in body["results"] if r["status"] == "error"}
    assert errors == {
        1: {"occurred_on": ["Lies in the future."]},
        2: {"amount": ["Must be a number."]},
        3: {"customer": ["This field is required."]},
        4: {"location": ["Unknown location 'zz'."]},
        5: {"external_id": ["This field is required."]},
        7: {"external_id": ["Row 0 has the same external_id with other values."]},
        8: {"occurred_on": ["Not an ISO 8601 date: 'yesterday'."]},
    }
    assert body["results"][6]["status"] == "duplicate"
    with tenant_context(world.a.org):
        assert list(CustomerTransaction.objects.values_list("external_id", flat=True)) == ["acme-ok"]
        # No customer was created for the rows that failed.
        assert (
            not m.Customer.objects.filter(external_id="acme-crm-1")
            .exclude(pk__in=CustomerTransaction.objects.values("customer_id"))
            .exists()
        )


def test_transactions_csv_upload_and_single_post(world, api):
    client = api(key=world.a.api_key)
    text = "external_id,customer,occurred_on,amount,location\nacme-c1,acme-crm-9,2026-01-03,19.99,a-s1\n"
    upload = io.BytesIO(text.encode())
    upload.name = "crm.csv"
    resp = client.post(f"{TRANSACTIONS}bulk/", {"file": upload}, format="multipart")
    assert resp.status_code == 200 and _statuses(resp.json()) == ["created"], resp.content
    one = client.post(TRANSACTIONS, tx_row("acme-c2", customer="acme-crm-9"), format="json")
    assert one.status_code == 201 and one.json()["customer_external_id"] == "acme-crm-9"
    assert (
        client.post(TRANSACTIONS, tx_row("acme-c2", customer="acme-crm-9"), format="json").status_code == 200
    )
    bad = client.post(TRANSACTIONS, tx_row("acme-c3", amount=None), format="json")
    assert bad.status_code == 400 and bad.json() == {"amount": ["This field is required."]}
    not_utf8 = io.BytesIO(b"external_id\n\xff\xfe")
    not_utf8.name = "x.csv"
    resp = client.post(f"{TRANSACTIONS}bulk/", {"file": not_utf8}, format="multipart")
    assert resp.status_code == 400 and "file" in resp.json()


def test_transactions_bulk_over_the_limit_is_refused(world, api):
    rows = [tx_row(f"acme-{i}") for i in range(10_001)]
    resp = api(key=world.a.api_key).post(f"{TRANSACTIONS}bulk/", rows, format="json")
    assert resp.status_code == 413
    with tenant_context(world.a.org):
        assert not CustomerTransaction.objects.exists()


def test_values_of_the_wrong_type_are_field_errors_not_server_errors(world, api):
    rows = [
        {"location": 10**30, "period": ["month"], "period_start": 20260101, "kind": {"k": 1}, "value": [1]},
        {
            "location": world.a.locations["a-n1"].pk,
            "location_id": world.a.locations["a-n2"].pk,
            **metric_row(),
        },
        {**metric_row(), "location": world.a.locations["a-n1"].pk},  # a number names the id
        {**metric_row(kind="returns"), "location": True},
    ]
    body = api(key=world.a.api_key).post(f"{METRICS}bulk/", rows, format="json").json()
    assert set(body["results"][0]["errors"]) == {"location", "period", "period_start", "kind", "value"}
    assert body["results"][1]["errors"] == {
        "location": ["location and location_id name different locations."]
    }
    assert body["results"][2]["status"] == "created"
    assert list(body["results"][3]["errors"]) == ["location"]
    txs = [
        {"external_id": ["x"], "customer": {"a": 1}, "occurred_on": 5, "amount": {"v": 1}, "location": 1.5}
    ]
    body = api(key=world.a.api_key).post(f"{TRANSACTIONS}bulk/", txs, format="json").json()
    assert set(body["results"][0]["errors"]) == {
        "external_id",
        "customer",
        "occurred_on",
        "amount",
        "location",
    }
