"""Session login with CSRF, lockout after repeated failures, role-based navigation."""

import pytest
from django.test import Client

from tests.conftest import PASSWORD


def test_login_requires_csrf(world):
    client = Client(enforce_csrf_checks=True)
    resp = client.post("/login/", {"username": "admin@acme.test", "password": PASSWORD})
    assert resp.status_code == 403
    page = client.get("/login/")
    token = page.cookies["csrftoken"].value
    resp = client.post(
        "/login/", {"username": "admin@acme.test", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert resp.status_code == 302 and resp.url == "/"
    assert "Acme" in client.get("/").content.decode()


def test_login_locks_out_after_repeated_failures(world, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(3):
        resp = client.post("/login/", {"username": "manager@acme.test", "password": "wrong-password"})
    assert resp.status_code in (403, 429)
    # Even the right password is refused while locked out.
    resp = client.post("/login/", {"username": "manager@acme.test", "password": PASSWORD})
    assert resp.status_code in (403, 429)
    assert "_auth_user_id" not in client.session


def test_session_cookie_flags(world, client):
    resp = client.post("/login/", {"username": "admin@acme.test", "password": PASSWORD})
    cookie = resp.cookies["sessionid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"


@pytest.mark.parametrize(
    ("persona", "visible", "hidden"),
    [
        ("admin", ["Interactions", "Users", "API keys", "Audit log"], []),
        ("manager", ["Interactions", "Employees"], ["Users", "API keys", "Audit log"]),
        ("employee", ["Interactions"], ["Users", "API keys"]),
        ("shopper", ["Standards"], ["Interactions", "Users", "API keys"]),
    ],
)
def test_navigation_follows_role(world, client, persona, visible, hidden):
    client.force_login(world.users[persona])
    html = client.get("/").content.decode()
    nav = html.split("<nav>", 1)[1].split("</nav>", 1)[0]
    for label in visible:
        assert f">{label}</a>" in nav, label
    for label in hidden:
        assert f">{label}</a>" not in nav, label


def test_pages_forbid_roles_without_permission(world, client):
    client.force_login(world.users["manager"])
    assert client.get("/manage/api-keys/").status_code == 403
    client.force_login(world.users["shopper"])
    assert client.get("/interactions/").status_code == 403


def test_user_without_membership_gets_404_not_data(db, client):
    from tests.factories import UserFactory

    client.force_login(UserFactory())
    assert client.get("/").status_code == 404
    assert client.get("/api/v1/regions/").status_code in (401, 403)


def test_anonymous_pages_redirect_to_login(db, client):
    resp = client.get("/interactions/")
    assert resp.status_code == 302 and resp.url.startswith("/login/")


def test_switch_organization(world, client):
    from cem import models as m
    from tests import factories as f

    user = world.users["admin"]
    f.MembershipFactory(organization=world.b.org, user=user, role=m.Role.EXECUTIVE)
    client.force_login(user)
    assert "Acme" in client.get("/").content.decode().split("<main", 1)[1]
    resp = client.post("/organization/switch/", {"organization": world.b.org.pk})
    assert resp.status_code == 302
    main = client.get("/").content.decode().split("<main", 1)[1]
    assert "Beta" in main and "Acme" not in main
    # Not a member: refused.
    from tests.factories import OrganizationFactory

    other = OrganizationFactory()
    assert client.post("/organization/switch/", {"organization": other.pk}).status_code == 404


def test_django_admin_for_staff(world, client):
    from tests.factories import UserFactory

    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    for url in (
        "/admin/",
        "/admin/cem/location/",
        "/admin/cem/interaction/",
        "/admin/cem/auditlog/",
        f"/admin/cem/location/{world.a.locations['a-n1'].pk}/change/",
    ):
        assert client.get(url).status_code == 200, url
    # A tenant member who is not staff cannot use the admin.
    client.force_login(world.users["admin"])
    assert client.get("/admin/cem/location/").status_code == 302
