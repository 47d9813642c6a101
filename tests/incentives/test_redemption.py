"""Redeeming through the API and the services: holds, fulfilment, approval, limits, visibility."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from incentives import ledger, redemptions
from incentives.models import (
    Account,
    CatalogItem,
    CatalogItemLocation,
    GiftCardCode,
    LedgerTransaction,
    Redemption,
)
from tests.incentives.redemption_helpers import balance, codes, employee_login, fund, item

S = Redemption.Status
URL = "/api/v1/redemptions/"


@pytest.fixture
def shop(world):
    """Employee a-n1 with 500 points; a gift card with two codes (auto), a mug needing approval."""
    org = world.a.org
    fund(org, world.a.employees["a-n1"], 500)
    card = item(org, name="acme card", kind="gift_card", cost=100, auto_approve=True)
    codes(org, card, "CARD-A", "CARD-B")
    mug = item(org, name="acme mug", cost=50, stock=3)
    return card, mug


def _status(org, pk):
    with tenant_context(org):
        return Redemption.objects.get(pk=pk).status


def test_auto_approve_reveals_a_code_only_to_the_redeemer_and_admins(world, api, shop):
    org = world.a.org
    card, _ = shop
    resp = api(world.users["employee"]).post(URL, {"item": card.pk}, format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["status"] == "fulfilled" and body["code"] == "CARD-A" and body["points"] == 100
    assert balance(org, world.a.employees["a-n1"]) == 400
    with tenant_context(org):
        red = Redemption.objects.get(pk=body["id"])
        assert red.settlement_id and not red.refund_id
        assert ledger.system_account(org=org, kind=Account.Kind.REDEEMED).balance == 100
        assert ledger.system_account(org=org, kind=Account.Kind.CLEARING).balance == 0
        kinds = set(
            m.OutboxEvent.objects.filter(aggregate_id=str(red.pk)).values_list("event_type", flat=True)
        )
        assert kinds == {"PointsRedeemed", "RedemptionDecided"}
        assert m.AuditLog.objects.filter(action="redemption.create", object_id=str(red.pk)).exists()
    admin = api(world.users["admin"]).get(f"{URL}{body['id']}/").json()
    assert admin["code"] == "CARD-A"
    manager = api(world.users["manager"]).get(f"{URL}{body['id']}/")
    assert manager.status_code == 200 and manager.json()["code"] is None
    # Managers and employees never list the pool.
    assert api(world.users["manager"]).get("/api/v1/gift-card-codes/").json()["count"] == 0
    assert api(world.users["employee"]).get("/api/v1/gift-card-codes/").json()["count"] == 0


def test_codes_are_never_shared_and_an_empty_pool_refunds(world, api, shop):
    org = world.a.org
    card, _ = shop
    other_user = employee_login(world, "a-n2", "two@acme.test")
    fund(org, world.a.employees["a-n2"], 500)
    first = api(world.users["employee"]).post(URL, {"item": card.pk}, format="json").json()
    second = api(other_user).post(URL, {"item": card.pk}, format="json").json()
    assert {first["code"], second["code"]} == {"CARD-A", "CARD-B"}
    # The second employee cannot read the first one's redemption (nor its code).
    assert api(other_user).get(f"{URL}{first['id']}/").status_code == 404

    empty = api(world.users["employee"]).post(URL, {"item": card.pk}, format="json")
    assert empty.status_code == 409
    assert "No acme card codes were left" in empty.json()["detail"] and "refunded" in empty.json()["detail"]
    failed = empty.json()["redemption"]
    assert failed["status"] == "failed" and failed["code"] is None
    assert balance(org, world.a.employees["a-n1"]) == 400  # 500 - 100 fulfilled; the failed one refunded
    with tenant_context(org):
        red = Redemption.objects.get(pk=failed["id"])
        assert red.refund_id and not red.settlement_id
        assert GiftCardCode.objects.filter(redemption__isnull=True).count() == 0


def test_approve_and_decline(world, api, shop):
    org, emp = world.a.org, world.a.employees["a-n1"]
    _, mug = shop
    employee = api(world.users["employee"])
    one = employee.post(URL, {"item": mug.pk}, format="json").json()
    two = employee.post(URL, {"item": mug.pk}, format="json").json()
    assert one["status"] == two["status"] == "pending"
    assert balance(org, emp) == 400
    with tenant_context(org):
        assert CatalogItem.objects.get(pk=mug.pk).stock == 1

    # Employees and managers cannot decide.
    assert employee.post(f"{URL}{one['id']}/approve/", {}, format="json").status_code == 403
    assert (
        api(world.users["manager"]).post(f"{URL}{one['id']}/approve/", {}, format="json").status_code == 403
    )

    admin = api(world.users["admin"])
    ok = admin.post(f"{URL}{one['id']}/approve/", {"note": "enjoy"}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "fulfilled"
    assert (
        admin.post(f"{URL}{one['id']}/approve/", {}, format="json").json()["status"] == "fulfilled"
    )  # idempotent
    missing = admin.post(f"{URL}{two['id']}/decline/", {}, format="json")
    assert missing.status_code == 400 and "reason" in missing.json()
    no = admin.post(f"{URL}{two['id']}/decline/", {"reason": "acme out of mugs"}, format="json")
    assert (
        no.status_code == 200
        and no.json()["status"] == "declined"
        and no.json()["note"] == "acme out of mugs"
    )
    assert balance(org, emp) == 450  # the declined 50 came back
    with tenant_context(org):
        assert CatalogItem.objects.get(pk=mug.pk).stock == 2  # and the stock
        assert (
            LedgerTransaction.objects.get(pk=Redemption.objects.get(pk=two["id"]).refund_id).kind == "refund"
        )
    late = admin.post(f"{URL}{two['id']}/approve/", {}, format="json")
    assert late.status_code == 409 and "declined" in late.json()["detail"]
    assert admin.post(f"{URL}{one['id']}/decline/", {"reason": "x"}, format="json").status_code == 409


def test_approving_a_gift_card_takes_a_code_or_says_the_pool_is_empty(world, api):
    org = world.a.org
    fund(org, world.a.employees["a-n1"], 300)
    card = item(org, name="acme manual card", kind="gift_card", cost=100)
    pending = api(world.users["employee"]).post(URL, {"item": card.pk}, format="json").json()
    admin = api(world.users["admin"])
    empty = admin.post(f"{URL}{pending['id']}/approve/", {}, format="json")
    assert empty.status_code == 409 and "load more codes" in empty.json()["detail"]
    assert _status(org, pending["id"]) == S.PENDING
    codes(org, card, "LATE-1")
    done = admin.post(f"{URL}{pending['id']}/approve/", {}, format="json").json()
    assert done["status"] == "fulfilled" and done["code"] == "LATE-1"
    assert api(world.users["employee"]).get(f"{URL}{pending['id']}/").json()["code"] == "LATE-1"


def test_per_person_limit_and_stock(world, api):
    org = world.a.org
    fund(org, world.a.employees["a-n1"], 1000)
    shirt = item(org, name="acme shirt", cost=10, per_person_limit=2, auto_approve=True)
    client = api(world.users["employee"])
    assert client.post(URL, {"item": shirt.pk}, format="json").status_code == 201
    assert client.post(URL, {"item": shirt.pk}, format="json").status_code == 201
    third = client.post(URL, {"item": shirt.pk}, format="json")
    assert third.status_code == 409 and "most allowed per person" in third.json()["detail"]
    assert "item" in third.json()
    last = item(org, name="acme last", cost=10, stock=0)
    gone = client.post(URL, {"item": last.pk}, format="json")
    assert gone.status_code == 409 and "out of stock" in gone.json()["detail"]
    assert balance(org, world.a.employees["a-n1"]) == 980


def test_balance_short_is_a_clear_409(world, api):
    org = world.a.org
    fund(org, world.a.employees["a-n1"], 30)
    bike = item(org, name="acme bike", cost=100, stock=1)
    resp = api(world.users["employee"]).post(URL, {"item": bike.pk}, format="json")
    assert resp.status_code == 409
    assert resp.json()["detail"] == "Your balance of 30 points does not cover acme bike (100 points)."
    with tenant_context(org):
        assert CatalogItem.objects.get(pk=bike.pk).stock == 1 and not Redemption.objects.exists()
    bad = api(world.users["employee"]).post(URL, {}, format="json")
    assert bad.status_code == 400 and "item" in bad.json()
    assert (
        api(world.users["admin"]).post(URL, {"item": bike.pk}, format="json").status_code == 403
    )  # no wallet
    assert api(key=world.a.api_key).post(URL, {"item": bike.pk}, format="json").status_code == 403


def test_visibility_by_location_and_role(world, api):
    org = world.a.org
    fund(org, world.a.employees["a-n1"], 100)
    everywhere = item(org, name="acme everywhere", cost=1)
    north = item(org, name="acme n1 only", cost=1)
    south = item(org, name="acme s1 only", cost=1)
    managers = item(org, name="acme managers", cost=1, visible_roles=["store_manager"])
    retired = item(org, name="acme retired", cost=1, active=False)
    with tenant_context(org):
        CatalogItemLocation.objects.create(organization=org, item=north, location=world.a.locations["a-n1"])
        CatalogItemLocation.objects.create(organization=org, item=south, location=world.a.locations["a-s1"])
    client = api(world.users["employee"])
    names = {row["name"] for row in client.get("/api/v1/catalog-items/").json()["results"]}
    assert names == {everywhere.name, north.name}
    for hidden in (south, managers, retired):
        assert client.get(f"/api/v1/catalog-items/{hidden.pk}/").status_code == 404
        resp = client.post(URL, {"item": hidden.pk}, format="json")
        assert resp.status_code == 400 and "item" in resp.json()
    admin = api(world.users["admin"]).get("/api/v1/catalog-items/").json()
    assert admin["count"] == 5 and all("codes_available" in row for row in admin["results"])


def test_idempotency_key_replays_the_same_redemption(world, api, shop):
    org = world.a.org
    card, _ = shop
    client = api(world.users["employee"])
    first = client.post(URL, {"item": card.pk}, format="json", HTTP_IDEMPOTENCY_KEY="click-1")
    again = client.post(URL, {"item": card.pk}, format="json", HTTP_IDEMPOTENCY_KEY="click-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert balance(org, world.a.employees["a-n1"]) == 400
    # Past the middleware's memory (its record gone), the ledger key still returns the first one.
    with tenant_context(org):
        m.IdempotencyRecord.objects.all().delete()
    later = client.post(URL, {"item": card.pk}, format="json", HTTP_IDEMPOTENCY_KEY="click-1")
    assert later.status_code == 200 and later.json()["id"] == first.json()["id"]
    assert later.json()["code"] == first.json()["code"]
    with tenant_context(org):
        assert Redemption.objects.count() == 1
    assert balance(org, world.a.employees["a-n1"]) == 400


def test_employee_lists_only_own_and_org_b_gets_404(world, api, shop, django_assert_max_num_queries):
    org = world.a.org
    card, mug = shop
    other_user = employee_login(world, "a-n2", "two@acme.test")
    fund(org, world.a.employees["a-n2"], 500)
    mine = api(world.users["employee"])
    for _ in range(3):
        mine.post(URL, {"item": mug.pk}, format="json")
    mine.post(URL, {"item": card.pk}, format="json")
    theirs = api(other_user).post(URL, {"item": card.pk}, format="json").json()
    with django_assert_max_num_queries(10):
        listed = mine.get(URL)
    rows = listed.json()["results"]
    assert len(rows) == 4 and theirs["id"] not in {r["id"] for r in rows}
    admin = api(world.users["admin"])
    with django_assert_max_num_queries(10):
        everything = admin.get(URL)
    assert everything.json()["count"] == 5
    with django_assert_max_num_queries(10):
        assert admin.get("/api/v1/catalog-items/").status_code == 200
    with django_assert_max_num_queries(10):
        assert mine.get("/api/v1/catalog-items/").status_code == 200
    outsider = api(world.users["outsider"])
    assert outsider.get(f"{URL}{theirs['id']}/").status_code == 404
    pending = next(r for r in rows if r["status"] == "pending")
    assert outsider.post(f"{URL}{pending['id']}/decline/", {"reason": "x"}, format="json").status_code == 404
    assert outsider.get(f"/api/v1/catalog-items/{card.pk}/").status_code == 404
    assert _status(org, pending["id"]) == S.PENDING


def test_catalogue_admin_api_and_code_pools(world, settings, tmp_path, api):
    settings.MEDIA_ROOT = tmp_path  # uploaded images stay out of .local/media
    admin = api(world.users["admin"])
    loc = world.a.locations["a-n2"]
    resp = admin.post(
        "/api/v1/catalog-items/",
        {
            "name": "acme tea card",
            "kind": "gift_card",
            "cost": 80,
            "visible_locations": [loc.pk],
            "auto_approve": True,
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    card = resp.json()
    assert card["visible_locations"] == [loc.pk] and card["unlimited"] and card["codes_available"] == 0
    assert (
        admin.post(
            "/api/v1/catalog-items/", {"name": "acme tea card", "kind": "gift_card", "cost": 1}
        ).status_code
        == 400
    )
    bad_role = admin.patch(f"/api/v1/catalog-items/{card['id']}/", {"visible_roles": ["king"]}, format="json")
    assert bad_role.status_code == 400 and "visible_roles" in bad_role.json()
    assert (
        admin.post("/api/v1/catalog-items/", {"name": "acme zero", "kind": "charity", "cost": 0}).status_code
        == 400
    )

    loaded = admin.post(
        "/api/v1/gift-card-codes/", {"item": card["id"], "codes": "code,value\nT-1,10\nT-2,10\nT-1,10\n"}
    )
    assert loaded.status_code == 201 and loaded.json() == {
        "item": card["id"],
        "loaded": 2,
        "duplicates": 1,
        "available": 2,
    }
    counts = admin.get("/api/v1/gift-card-codes/counts/").json()
    assert counts == [{"item": card["id"], "name": "acme tea card", "available": 2, "used": 0}]
    assert admin.get("/api/v1/gift-card-codes/").json()["count"] == 2
    empty = admin.post("/api/v1/gift-card-codes/", {"item": card["id"], "codes": "  \n"})
    assert empty.status_code == 400 and "codes" in empty.json()
    mug = item(world.a.org, name="acme plain mug", cost=5)
    wrong = admin.post("/api/v1/gift-card-codes/", {"item": mug.pk, "codes": "X"})
    assert wrong.status_code == 400 and "item" in wrong.json()
    assert (
        api(world.users["manager"])
        .post("/api/v1/gift-card-codes/", {"item": card["id"], "codes": "Z"})
        .status_code
        == 403
    )

    # Images are checked by content; the stored one is served to people who may see the item.
    fake = admin.post(
        f"/api/v1/catalog-items/{card['id']}/image/", {"image": io.BytesIO(b"<svg/>")}, format="multipart"
    )
    assert fake.status_code == 400 and "image" in fake.json()
    out = io.BytesIO()
    Image.new("RGB", (1200, 900), (0, 90, 200)).save(out, "JPEG")
    out.seek(0)
    out.name = "tea.jpg"
    ok = admin.post(f"/api/v1/catalog-items/{card['id']}/image/", {"image": out}, format="multipart")
    assert ok.status_code == 200 and ok.json()["image_url"]
    got = admin.get(ok.json()["image_url"])
    assert got.status_code == 200 and got["Content-Type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(b"".join(got.streaming_content))).size) <= 800
    # The employee of a-n1 does not see the a-n2 item, nor its image.
    assert api(world.users["employee"]).get(ok.json()["image_url"]).status_code == 404

    gone = admin.delete(f"/api/v1/catalog-items/{card['id']}/")
    assert gone.status_code == 204
    with tenant_context(world.a.org):
        assert CatalogItem.objects.get(pk=card["id"]).active is False


def test_services_refuse_after_decision_and_keep_lock_order_prefix(world):
    """decline after a fulfilled auto-approve → refused; the ledger is balanced throughout."""
    org, emp = world.a.org, world.a.employees["a-n1"]
    fund(org, emp, 100)
    thing = item(org, name="acme thing", cost=40, auto_approve=True)
    with tenant_context(org):
        red = redemptions.redeem(org=org, actor=Actor.system(), employee=emp, item=thing)
        assert red.status == S.FULFILLED and redemptions.revealed_code(red) is None
        with pytest.raises(redemptions.RedemptionRefused):
            redemptions.decline(org=org, actor=Actor.system(), redemption=red, reason="late")
        from django.db.models import Sum

        from incentives.models import LedgerEntry

        assert LedgerEntry.objects.aggregate(total=Sum("amount"))["total"] == 0
