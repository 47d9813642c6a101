"""Pages show times in the organization's time zone; the API stays in UTC."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f

WINTER = dt.datetime(2026, 1, 15, 14, 0, tzinfo=dt.UTC)  # New York is UTC-5, Madrid UTC+1
SUMMER = dt.datetime(2026, 7, 15, 14, 0, tzinfo=dt.UTC)  # New York is UTC-4, Madrid UTC+2


def _zone(org, name: str) -> None:
    with tenant_context(org):
        m.Organization.objects.filter(pk=org.pk).update(time_zone=name)


def _interaction(tenant, external_id: str, at: dt.datetime) -> m.Interaction:
    location = next(iter(tenant.locations.values()))
    return f.InteractionFactory(
        organization=tenant.org,
        external_id=external_id,
        location=location,
        channel=tenant.channel,
        occurred_at=at,
    )


@pytest.fixture
def zoned(world):
    _zone(world.a.org, "America/New_York")
    _zone(world.b.org, "Europe/Madrid")
    for tenant in (world.a, world.b):
        _interaction(tenant, f"{tenant.org.slug}-winter", WINTER)
        _interaction(tenant, f"{tenant.org.slug}-summer", SUMMER)
    return world


def _row(html: str, external_id: str) -> str:
    return html.split(f"<td>{external_id}</td>", 1)[0].rsplit("<tr>", 1)[1]


def test_each_organization_sees_its_own_local_time(zoned, client):
    client.force_login(zoned.users["admin"])
    html = client.get("/interactions/").content.decode()
    assert "2026-01-15 09:00" in _row(html, "acme-winter")  # 14:00 UTC in New York (EST)
    assert "2026-07-15 10:00" in _row(html, "acme-summer")  # and in summer (EDT)

    client.force_login(zoned.users["outsider"])
    html = client.get("/interactions/").content.decode()
    assert "2026-01-15 15:00" in _row(html, "beta-winter")  # Madrid (CET)
    assert "2026-07-15 16:00" in _row(html, "beta-summer")  # (CEST)
    # Nothing stays activated for whatever the thread serves next.
    assert timezone.get_current_timezone_name() == "UTC"


def test_a_utc_organization_still_sees_utc(world, client):
    _interaction(world.a, "acme-utc", WINTER)
    client.force_login(world.users["admin"])
    assert "2026-01-15 14:00" in _row(client.get("/interactions/").content.decode(), "acme-utc")


def test_the_api_stays_in_utc_for_sessions_and_keys(zoned, api):
    for caller in (api(zoned.users["admin"]), api(key=zoned.a.api_key)):
        rows = caller.get("/api/v1/interactions/", {"external_id": "acme-winter"}).json()["results"]
        row = next(r for r in rows if r["external_id"] == "acme-winter")
        assert row["occurred_at"] in ("2026-01-15T14:00:00Z", "2026-01-15T14:00:00+00:00"), row["occurred_at"]
