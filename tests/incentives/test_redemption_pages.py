"""The rewards portal and the redemption admin pages in the browser's terms (Django test client)."""

from __future__ import annotations

import io

import pytest
from django.test import Client
from PIL import Image

from cem.tenancy import tenant_context
from incentives.models import CatalogItem, GiftCardCode, Redemption
from tests.incentives.redemption_helpers import balance, codes, fund, item


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def test_portal_shows_balance_catalogue_statement_and_redeems(world, client, django_assert_max_num_queries):
    org, emp = world.a.org, world.a.employees["a-n1"]
    fund(org, emp, 300)
    card = item(org, name="acme coffee card", kind="gift_card", cost=100, auto_approve=True)
    codes(org, card, "COFFEE-123")
    for n in range(5):
        item(org, name=f"acme mug {n}", cost=50 + n)
    hidden = item(org, name="acme managers only", cost=10, visible_roles=["store_manager"])
    client.force_login(world.users["employee"])
    with django_assert_max_num_queries(20):
        page = client.get("/rewards/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "300" in body and "acme coffee card" in body and "acme mug 4" in body
    assert hidden.name not in body
    token = page.context["token"]

    resp = client.post(f"/rewards/catalog/{card.pk}/redeem/", {"token": f"{token}-{card.pk}"})
    assert resp.status_code == 302
    with tenant_context(org):
        redemption = Redemption.objects.get(employee=emp)
    assert resp["Location"] == f"/rewards/redemptions/{redemption.pk}/"
    detail = client.get(resp["Location"])
    assert "COFFEE-123" in detail.content.decode()
    # The same form posted again (double click): the first redemption, no second spend.
    again = client.post(f"/rewards/catalog/{card.pk}/redeem/", {"token": f"{token}-{card.pk}"})
    assert again["Location"] == resp["Location"]
    assert balance(org, emp) == 200
    with tenant_context(org):
        assert Redemption.objects.filter(employee=emp).count() == 1

    with django_assert_max_num_queries(15):
        statement = client.get("/rewards/statement/")
    text = statement.content.decode()
    assert "test funds" in text and "Redeemed: acme coffee card" in text
    mine = client.get("/rewards/redemptions/")
    assert "COFFEE-123" in mine.content.decode()


def test_portal_refusals_are_messages(world, client):
    org, emp = world.a.org, world.a.employees["a-n1"]
    fund(org, emp, 50)
    dear = item(org, name="acme bike", cost=500)
    client.force_login(world.users["employee"])
    resp = client.post(f"/rewards/catalog/{dear.pk}/redeem/", {"token": "t1"}, follow=True)
    assert "does not cover acme bike" in resp.content.decode()
    assert balance(org, emp) == 50
    hidden = item(org, name="acme elsewhere", cost=1)
    with tenant_context(org):
        from incentives.models import CatalogItemLocation

        CatalogItemLocation.objects.create(organization=org, item=hidden, location=world.a.locations["a-s1"])
    assert client.post(f"/rewards/catalog/{hidden.pk}/redeem/", {"token": "t2"}).status_code == 404
    assert client.get(f"/rewards/catalog/{hidden.pk}/image/").status_code == 404


def test_employee_sees_only_own_redemption_pages(world, client):
    from tests.incentives.redemption_helpers import employee_login

    org = world.a.org
    other = world.a.employees["a-n2"]
    fund(org, other, 100)
    mug = item(org, name="acme mug", cost=10)
    other_user = employee_login(world, "a-n2", "other@acme.test")
    theirs_client = Client()
    theirs_client.force_login(other_user)
    theirs_client.post(f"/rewards/catalog/{mug.pk}/redeem/", {"token": "x"})
    with tenant_context(org):
        theirs = Redemption.objects.get(employee=other)
    client.force_login(world.users["employee"])
    assert client.get(f"/rewards/redemptions/{theirs.pk}/").status_code == 404
    assert "acme mug" not in client.get("/rewards/redemptions/").content.decode()


def test_admin_catalogue_codes_and_approvals_pages(
    world, settings, tmp_path, client, django_assert_max_num_queries
):
    settings.MEDIA_ROOT = tmp_path  # uploaded images stay out of .local/media
    org, emp = world.a.org, world.a.employees["a-n1"]
    fund(org, emp, 500)
    client.force_login(world.users["admin"])
    resp = client.post(
        "/rewards/manage/catalog/new/",
        {
            "name": "acme voucher",
            "kind": "gift_card",
            "cost": "120",
            "stock": "",
            "per_person_limit": "2",
            "active": "on",
            "visible_locations": [world.a.locations["a-n1"].pk],
            "visible_roles": ["associate"],
            "image": io.BytesIO(_png()),
        },
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]
    with tenant_context(org):
        voucher = CatalogItem.objects.get(name="acme voucher")
        assert voucher.stock is None and voucher.visible_roles == ["associate"] and voucher.image
    assert client.get(f"/rewards/catalog/{voucher.pk}/image/")["Content-Type"] == "image/png"
    bad = client.post(
        f"/rewards/manage/catalog/{voucher.pk}/",
        {
            "name": "acme voucher",
            "kind": "gift_card",
            "cost": "120",
            "image": io.BytesIO(b"GIF89a not an image"),
        },
    )
    assert bad.status_code == 200 and "Not a JPEG, PNG or WebP image" in bad.content.decode()
    with tenant_context(org):
        voucher.refresh_from_db()
        assert voucher.active and voucher.per_person_limit == 2  # the refused save changed nothing

    resp = client.post(
        f"/rewards/manage/catalog/{voucher.pk}/codes/", {"codes": "code\nV-1\nV-2\nV-2\n"}, follow=True
    )
    assert "2 codes loaded, 1 already in the pool; 2 available" in resp.content.decode()
    assert "V-1" not in client.get(f"/rewards/manage/catalog/{voucher.pk}/codes/").content.decode()
    with django_assert_max_num_queries(12):
        listing = client.get("/rewards/manage/catalog/")
    assert "acme voucher" in listing.content.decode()

    # An employee's redemption waits for approval; the admin approves and the code is revealed.
    client.force_login(world.users["employee"])
    client.post(f"/rewards/catalog/{voucher.pk}/redeem/", {"token": "a"})
    client.post(f"/rewards/catalog/{voucher.pk}/redeem/", {"token": "b"})
    with tenant_context(org):
        first, second = Redemption.objects.filter(employee=emp).order_by("pk")
        assert first.status == second.status == Redemption.Status.PENDING
    assert balance(org, emp) == 260
    client.force_login(world.users["admin"])
    with django_assert_max_num_queries(12):
        approvals = client.get("/rewards/manage/approvals/")
    assert f"pending-{first.pk}" in approvals.content.decode()
    client.post(f"/rewards/manage/approvals/{first.pk}/approve/")
    resp = client.post(f"/rewards/manage/approvals/{second.pk}/decline/", {"reason": ""}, follow=True)
    assert "Say why" in resp.content.decode()
    client.post(f"/rewards/manage/approvals/{second.pk}/decline/", {"reason": "acme budget freeze"})
    with tenant_context(org):
        first.refresh_from_db()
        second.refresh_from_db()
        assert first.status == Redemption.Status.FULFILLED and second.status == Redemption.Status.DECLINED
        assert GiftCardCode.objects.get(redemption=first).code == "V-1"
    assert balance(org, emp) == 380
    client.force_login(world.users["employee"])
    assert "V-1" in client.get(f"/rewards/redemptions/{first.pk}/").content.decode()
    assert "acme budget freeze" in client.get(f"/rewards/redemptions/{second.pk}/").content.decode()


@pytest.mark.parametrize("persona", ["employee", "manager", "executive"])
def test_admin_pages_refuse_other_roles(world, client, persona):
    client.force_login(world.users[persona])
    for url in ("/rewards/manage/approvals/", "/rewards/manage/catalog/", "/rewards/manage/catalog/new/"):
        assert client.get(url).status_code == 403


def test_portal_marks_sold_out_items_and_points_on_hold(world, client):
    org, emp = world.a.org, world.a.employees["a-n1"]
    fund(org, emp, 500)
    dry = item(org, name="acme dry card", kind="gift_card", cost=10, auto_approve=True)
    gone = item(org, name="acme gone", cost=10, stock=0)
    chair = item(org, name="acme chair", cost=70)
    client.force_login(world.users["employee"])
    client.post(f"/rewards/catalog/{chair.pk}/redeem/", {"token": "c"})
    page = client.get("/rewards/")
    body = page.content.decode()
    assert "70 points on hold" in body
    for sold_out in (dry, gone):
        button = body[body.index(f'data-testid="redeem-{sold_out.pk}"') :].split("</button>")[0]
        assert "disabled" in button and "Sold out" in button
