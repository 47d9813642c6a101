"""Dashboard reads through a second database alias ("replica", cem/db/replica.py).

In tests the alias is a TEST MIRROR of default: a second connection (its own session, role and
GUCs) to the same test database, as a streaming replica would be a second server with the same
rows. The tests are transactional so rows written through default are committed and visible to
that other session.
"""

from __future__ import annotations

import pytest
from django.db import connections, router, transaction
from django.test.utils import CaptureQueriesContext

from alignment.models import Rollup
from cem.db.replica import REPLICA, read_alias, replica_reads
from cem.tenancy import tenant_context
from tests.alignment.dashboard_data import nps_counts, put

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", REPLICA])


@pytest.fixture
def replica_on(settings):
    settings.READ_REPLICA = True


@pytest.fixture
def rollups(world):
    put(world.a.org, [{"measure": "nps", "location": world.a.locations["a-n1"].pk, **nps_counts([10, 9, 3])}])
    put(world.b.org, [{"measure": "nps", "location": world.b.locations["b-1"].pk, **nps_counts([0, 0])}])
    return world


def _raw(alias: str, sql: str):
    with connections[alias].cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _rollup_reads(queries) -> list[str]:
    return [q["sql"] for q in queries if '"alignment_rollup"' in q["sql"]]


def test_the_replica_is_a_second_session_as_the_application_role(replica_on):
    assert connections[REPLICA].settings_dict["NAME"] == connections["default"].settings_dict["NAME"]
    (primary_pid,) = _raw("default", "SELECT pg_backend_pid()")[0]
    replica_pid, user = _raw(REPLICA, "SELECT pg_backend_pid(), current_user")[0]
    assert replica_pid != primary_pid
    assert user == "cem_app"  # dropped to the role without BYPASSRLS, as on the primary


def test_store_dashboard_reads_go_through_the_replica(rollups, api, replica_on):
    world = rollups
    manager = api(world.users["manager"])
    url = f"/api/v1/alignment/dashboard/stores/{world.a.locations['a-n1'].pk}/kpis/"
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_default,
    ):
        resp = manager.get(url)
    assert resp.status_code == 200, resp.content[:300]
    kpis = {r["measure"]: r for r in resp.json()["rows"]}
    assert kpis["nps"]["n"] == 3  # org A's three answers; org B's rows are not summed in
    assert _rollup_reads(on_replica), "the dashboard's rollup read did not go to the replica"
    assert not _rollup_reads(on_default)

    # The page and its panel fragments too.
    page_url = f"/alignment/stores/{world.a.locations['a-n1'].pk}/"
    with (
        CaptureQueriesContext(connections[REPLICA]) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_default,
    ):
        assert manager.get(page_url).status_code == 200
        assert manager.get(f"{page_url}panels/nps/").status_code == 200
    assert _rollup_reads(on_replica) and not _rollup_reads(on_default)


def test_other_tenants_store_is_still_a_404_on_the_replica(rollups, api, replica_on):
    world = rollups
    outsider = api(world.users["outsider"])
    with CaptureQueriesContext(connections[REPLICA]) as on_replica:
        resp = outsider.get(f"/api/v1/alignment/dashboard/stores/{world.a.locations['a-n1'].pk}/kpis/")
    assert resp.status_code == 404
    assert on_replica.captured_queries  # the look-up that 404ed ran on the replica
    own = outsider.get(f"/api/v1/alignment/dashboard/stores/{world.b.locations['b-1'].pk}/kpis/")
    assert {r["measure"]: r for r in own.json()["rows"]}["nps"]["n"] == 2


def test_row_level_security_holds_on_the_replica_connection(rollups, replica_on):
    """Raw SQL without any ORM filter: the replica session sees only the context's tenant."""
    world = rollups
    sql = "SELECT DISTINCT organization_id FROM alignment_rollup"
    for org in (world.a.org, world.b.org):
        with tenant_context(org), replica_reads():
            assert read_alias() == REPLICA
            assert _raw(REPLICA, sql) == [(org.pk,)]
            assert _raw(REPLICA, "SELECT current_setting('app.tenant_id')") == [(str(org.pk),)]
            assert set(Rollup.objects.values_list("organization_id", flat=True)) == {org.pk}
    # No tenant in context: the replica's session is reset with it and fails closed.
    assert _raw(REPLICA, sql) == []


def test_writes_and_transactions_stay_on_the_primary(replica_on):
    with replica_reads():
        assert router.db_for_read(Rollup) == REPLICA
        assert router.db_for_write(Rollup) == "default"
        with transaction.atomic():  # a service reading what it is about to write
            assert router.db_for_read(Rollup) == "default"
    assert router.db_for_read(Rollup) == "default"  # outside a dashboard
    assert not router.allow_migrate(REPLICA, "alignment")


def test_routing_is_off_without_a_replica(settings):
    settings.READ_REPLICA = False  # DATABASE_REPLICA_URL unset
    with replica_reads():
        assert router.db_for_read(Rollup) == "default"
