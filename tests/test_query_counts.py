"""List endpoints and pages run a fixed number of queries, however many rows they show (no N+1)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f


def _grow(world, n):
    org = world.a.org
    loc = world.a.locations["a-n1"]
    for _ in range(n):
        emp = f.EmployeeFactory(organization=org, current_location=loc)
        f.InteractionFactory(
            organization=org,
            location=loc,
            channel=world.a.channel,
            touchpoint=world.a.touchpoint,
            customer=world.a.customer,
            employees=[emp, world.a.employees["a-n1"]],
        )
        f.StandardFactory(organization=org)
        user = f.UserFactory()
        f.MembershipFactory(organization=org, user=user, role=m.Role.EVALUATOR)
    with tenant_context(org):
        ids = list(m.Interaction.objects.values_list("pk", flat=True)[:n])
    for i in ids:
        with tenant_context(org):
            m.OutboxEvent.objects.create(
                organization=org, event_type="InteractionRecorded", payload={"interaction_ids": [i]}
            )


def _queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return len(ctx)


API_LISTS = [
    "/api/v1/interactions/",
    "/api/v1/employees/",
    "/api/v1/standards/",
    "/api/v1/memberships/",
    "/api/v1/events/",
    "/api/v1/audit-log/",
    "/api/v1/locations/",
    "/api/v1/customers/",
]
PAGES = [
    "/",
    "/interactions/",
    "/manage/employees/",
    "/manage/standards/",
    "/manage/users/",
    "/manage/audit-log/",
    "/manage/locations/",
]


@pytest.mark.parametrize("url", API_LISTS)
def test_api_list_queries_do_not_grow_with_rows(world, api, url):
    client = api(world.users["admin"])
    _grow(world, 3)
    small = _queries(client, url)
    _grow(world, 25)
    large = _queries(client, url)
    assert large == small, f"{url}: {small} queries for a few rows, {large} for many"
    assert large <= 10


@pytest.mark.parametrize("url", PAGES)
def test_page_queries_do_not_grow_with_rows(world, client, url):
    client.force_login(world.users["admin"])
    _grow(world, 3)
    small = _queries(client, url)
    _grow(world, 25)
    large = _queries(client, url)
    assert large == small, f"{url}: {small} queries for a few rows, {large} for many"
    assert large <= 14
