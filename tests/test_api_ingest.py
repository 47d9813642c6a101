"""Single and bulk interaction ingest: per-row results, idempotent on external_id, all-or-nothing writes."""

import io

import pytest
from django.test import override_settings

from cem import models as m
from cem.tenancy import tenant_context


def _row(external_id, **over):
    row = {
        "external_id": external_id,
        "occurred_at": "2026-03-01T10:00:00+00:00",
        "location": "a-n1",
        "channel": "in_store",
        "touchpoint": "checkout",
        "customer": "cust-new-1",
        "employees": ["acme-emp-a-n1"],
        "amount": "42.50",
        "attributes": {"basket": 3},
    }
    row.update(over)
    return row


def _count(world):
    with tenant_context(world.a.org):
        return m.Interaction.objects.count()


def test_single_create_then_duplicate(world, api):
    client = api(key=world.a.api_key)
    first = client.post("/api/v1/interactions/", _row("single-1"), format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["location"] == "a-n1" and body["employees"] == ["acme-emp-a-n1"]
    assert body["category"] == "critical" and body["amount"] == "42.50"
    again = client.post("/api/v1/interactions/", _row("single-1", amount="1.00"), format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert again.json()["amount"] == "42.50"  # stored data is never overwritten by a replay


def test_single_create_field_errors(world, api):
    client = api(key=world.a.api_key)
    resp = client.post(
        "/api/v1/interactions/", _row("bad-1", occurred_at="yesterday", location="nowhere"), format="json"
    )
    assert resp.status_code == 400
    assert set(resp.json()) == {"occurred_at", "location"}
    assert client.post("/api/v1/interactions/", [1, 2], format="json").status_code == 400


def test_bulk_per_row_results(world, api):
    before = _count(world)
    rows = [
        _row("bulk-ok-1"),
        _row("bulk-bad-date", occurred_at="2026-13-45T99:00"),
        _row("bulk-unknown-loc", location="zz-999"),
        _row("bulk-other-tenant", location="b-1"),  # org B's store: invisible, so unknown
        _row("acme-int-a-n1"),  # already stored by the fixture
        _row("bulk-ok-1"),  # duplicate inside the batch
        _row("bulk-ok-2", employees="acme-emp-a-n1;acme-emp-a-n2", touchpoint=None, category="planned"),
        _row("bulk-bad-cat", touchpoint=None, category="urgent"),
        _row("bulk-bad-amount", amount="12abc"),
        "not an object",
        _row("bulk-unknown-emp", employees=["nobody"]),
        _row("bulk-future", occurred_at="2099-01-01T00:00:00Z"),
        {**_row("bulk-extra"), "colour": "red"},
    ]
    resp = api(key=world.a.api_key).post("/api/v1/interactions/bulk/", rows, format="json")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    statuses = [(r["external_id"], r["status"]) for r in body["results"]]
    assert statuses == [
        ("bulk-ok-1", "created"),
        ("bulk-bad-date", "error"),
        ("bulk-unknown-loc", "error"),
        ("bulk-other-tenant", "error"),
        ("acme-int-a-n1", "duplicate"),
        ("bulk-ok-1", "duplicate"),
        ("bulk-ok-2", "created"),
        ("bulk-bad-cat", "error"),
        ("bulk-bad-amount", "error"),
        (None, "error"),
        ("bulk-unknown-emp", "error"),
        ("bulk-future", "error"),
        ("bulk-extra", "error"),
    ]
    results = body["results"]
    assert "occurred_at" in results[1]["errors"]
    assert results[2]["errors"] == {"location": ["Unknown location 'zz-999'."]}
    assert results[3]["errors"] == {"location": ["Unknown location 'b-1'."]}
    assert results[4]["id"] == world.a.interactions["a-n1"].pk
    assert results[5]["id"] == results[0]["id"]
    assert "category" in results[7]["errors"] and "amount" in results[8]["errors"]
    assert "employees" in results[10]["errors"] and "occurred_at" in results[11]["errors"]
    assert "non_field_errors" in results[12]["errors"]
    assert (body["created"], body["duplicate"], body["error"]) == (2, 2, 9)
    assert _count(world) == before + 2
    with tenant_context(world.a.org):
        two = m.Interaction.objects.get(external_id="bulk-ok-2")
        assert sorted(e.external_id for e in two.employees.all()) == ["acme-emp-a-n1", "acme-emp-a-n2"]
        assert two.category == "planned"
        assert m.Customer.objects.filter(external_id="cust-new-1").count() == 1
        [event] = m.OutboxEvent.objects.filter(event_type="InteractionRecorded")
        assert sorted(event.payload["interaction_ids"]) == sorted([results[0]["id"], results[6]["id"]])


def test_bulk_rejects_more_than_the_limit(world, api):
    rows = [_row(f"too-many-{i}") for i in range(10_001)]
    resp = api(key=world.a.api_key).post("/api/v1/interactions/bulk/", rows, format="json")
    assert resp.status_code == 413
    assert resp.json()["max_rows"] == 10_000
    assert _count(world) == 3


def test_bulk_accepts_exactly_the_limit(world, api):
    rows = [_row(f"limit-{i}", customer=f"c-{i % 50}") for i in range(10_000)]
    resp = api(key=world.a.api_key).post("/api/v1/interactions/bulk/", rows, format="json")
    assert resp.status_code == 200
    assert resp.json()["created"] == 10_000
    assert _count(world) == 10_003


def test_bulk_csv_upload(world, api):
    csv_text = (
        "external_id,occurred_at,location,channel,touchpoint,employees,amount,store_weather\n"
        "csv-1,2026-03-02T08:00:00,a-n1,in_store,checkout,acme-emp-a-n1,10.00,rain\n"
        "csv-2,not-a-date,a-n1,in_store,checkout,,,\n"
    )
    client = api(key=world.a.api_key)
    upload = io.BytesIO(csv_text.encode())
    upload.name = "interactions.csv"
    resp = client.post("/api/v1/interactions/bulk/", {"file": upload}, format="multipart")
    assert resp.status_code == 200, resp.content
    assert [r["status"] for r in resp.json()["results"]] == ["created", "error"]
    resp = client.post(
        "/api/v1/interactions/bulk/", csv_text.replace("csv-1", "csv-3"), content_type="text/csv"
    )
    assert [r["status"] for r in resp.json()["results"]] == ["created", "error"]
    with tenant_context(world.a.org):
        one = m.Interaction.objects.get(external_id="csv-1")
        assert one.attributes == {"store_weather": "rain"}
        # No offset in the CSV: read in the organization's time zone (UTC here).
        assert one.occurred_at.isoformat() == "2026-03-02T08:00:00+00:00"


def test_bulk_is_all_or_nothing_on_failure(world, api, monkeypatch):
    """A failure after validation (e.g. the database) leaves nothing half-written."""
    from cem import ingest

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ingest, "audit_log_write", boom)
    client = api(key=world.a.api_key)
    client.raise_request_exception = False
    resp = client.post("/api/v1/interactions/bulk/", [_row("atomic-1"), _row("atomic-2")], format="json")
    assert resp.status_code == 500
    assert _count(world) == 3
    with tenant_context(world.a.org):
        assert not m.Customer.objects.filter(external_id="cust-new-1").exists()
        assert not m.OutboxEvent.objects.exists()


@pytest.mark.parametrize("payload", [{"rows": []}, "text", None])
def test_bulk_needs_an_array(world, api, payload):
    resp = api(key=world.a.api_key).post("/api/v1/interactions/bulk/", payload, format="json")
    assert resp.status_code == 400


@override_settings(BULK_INGEST_MAX_ROWS=10_000)
def test_scopes_limit_api_keys(world, api):
    from cem import services
    from cem.principals import Actor

    with tenant_context(world.a.org):
        _, read_only = services.api_key_create(
            organization=world.a.org, actor=Actor.system(), name="ro", scopes=["core:read"]
        )
    client = api(key=read_only)
    assert client.get("/api/v1/interactions/").status_code == 200
    assert client.post("/api/v1/interactions/", _row("ro-1"), format="json").status_code == 403


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "1969-12-31T23:59:59Z"])
def test_ancient_dates_are_a_field_error_not_a_server_error(world, api, when):
    resp = api(key=world.a.api_key).post(
        "/api/v1/interactions/", _row("ancient", occurred_at=when), format="json"
    )
    assert resp.status_code == 400 and "occurred_at" in resp.json()


def test_non_ascii_digit_ids_in_filters_are_not_server_errors(world, client):
    client.force_login(world.users["admin"])
    for url in ("/interactions/?location=²", "/feedback/cases/?location=²", "/manage/teams/?location=²"):
        assert client.get(url).status_code < 500, url
