"""The two walls: fail-closed managers and PostgreSQL row-level security."""

import pytest
from django.db import connection

from cem import models as m
from cem.tenancy import TenantNotSet, tenant_context, tenant_models, unscoped


def test_scoped_manager_raises_without_tenant(world):
    with pytest.raises(TenantNotSet):
        m.Interaction.objects.count()
    with pytest.raises(TenantNotSet):
        list(m.Location.objects.all())


def test_scoped_manager_sees_only_current_tenant(world):
    with tenant_context(world.a.org):
        assert set(m.Location.objects.values_list("code", flat=True)) == {"a-n1", "a-n2", "a-s1"}
        # Related managers and FK traversal go through the same scoped manager.
        assert world.a.regions["north"].locations.count() == 2
    with tenant_context(world.b.org):
        assert set(m.Location.objects.values_list("code", flat=True)) == {"b-1"}
        assert not m.Location.objects.filter(pk=world.a.locations["a-n1"].pk).exists()


def test_unscoped_is_explicit(world):
    with unscoped():
        assert m.Location.objects.count() == 4


def test_save_refuses_another_tenants_row(world):
    with tenant_context(world.b.org):
        region = m.Region(organization=world.a.org, name="smuggled", code="smuggled")
        with pytest.raises(TenantNotSet):
            region.save()


def _raw_count(table: str) -> int:
    with connection.cursor() as cur:
        cur.execute(f'SELECT count(*) FROM "{table}"')
        return cur.fetchone()[0]


def test_app_connects_as_role_without_bypassrls(world):
    with connection.cursor() as cur:
        cur.execute(
            "SELECT r.rolname, r.rolsuper, r.rolbypassrls FROM pg_roles r WHERE r.rolname = current_user"
        )
        role, is_super, bypass = cur.fetchone()
    assert role == "cem_app"
    assert not is_super and not bypass


@pytest.mark.parametrize("model", tenant_models(), ids=lambda model: model._meta.db_table)
def test_raw_select_without_tenant_returns_nothing(world, model):
    """Every tenant table has ENABLE + FORCE RLS; with no app.tenant_id, raw SQL sees 0 rows."""
    table = model._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            "SELECT relrowsecurity, relforcerowsecurity,"
            " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
            " FROM pg_class c WHERE relname = %s",
            [table],
        )
        enabled, forced, policies = cur.fetchone()
        cur.execute("SELECT current_setting('app.tenant_id', true), current_setting('app.system', true)")
        assert cur.fetchone() in {("", "off"), (None, None)}
    assert enabled and forced and policies == 1
    assert _raw_count(table) == 0


def test_raw_select_inside_tenant_sees_only_that_tenant(world):
    with tenant_context(world.b.org):
        assert _raw_count("cem_location") == 1
        assert _raw_count("cem_interaction") == 1
    with tenant_context(world.a.org):
        assert _raw_count("cem_location") == 3


def test_raw_insert_for_another_tenant_is_rejected(world):
    from django.db import DatabaseError, transaction

    with (
        tenant_context(world.b.org),
        pytest.raises(DatabaseError),
        transaction.atomic(),
        connection.cursor() as cur,
    ):
        cur.execute(
            "INSERT INTO cem_region (organization_id, name, code) VALUES (%s, 'x', 'x')", [world.a.org.pk]
        )


def test_guc_restored_after_context(world):
    with tenant_context(world.a.org):
        with tenant_context(world.b.org):
            assert _raw_count("cem_location") == 1
        assert _raw_count("cem_location") == 3
    assert _raw_count("cem_location") == 0


def test_guc_is_written_again_after_a_rollback_restored_an_older_value(world):
    """set_config is transactional: a rolled-back savepoint brings the old tenant back on the server."""
    from django.db import transaction

    class Boom(Exception):
        pass

    with tenant_context(world.a.org):
        assert _raw_count("cem_location") == 3
    with tenant_context(world.b.org):
        with pytest.raises(Boom), transaction.atomic():
            assert _raw_count("cem_location") == 1  # B written inside the savepoint
            raise Boom
        # The server holds A's id again; the backend must not trust what it wrote before.
        assert _raw_count("cem_location") == 1
    assert _raw_count("cem_location") == 0


def test_contexts_write_the_guc_only_when_a_statement_needs_another_value(world, monkeypatch):
    from cem import tenancy

    real, writes = tenancy.apply_tenant_to_connection, []

    def spy(conn, *, force=False):
        before = getattr(conn, "_cem_gucs", None)
        real(conn, force=force)
        if force or conn._cem_gucs != before:
            writes.append(conn._cem_gucs[0])

    with tenant_context(world.a.org):
        _raw_count("cem_location")
    monkeypatch.setattr(tenancy, "apply_tenant_to_connection", spy)
    with tenant_context(world.a.org):
        pass  # entering and leaving runs nothing
    with tenant_context(world.a.org):
        assert _raw_count("cem_location") == 3  # the connection already holds A
    assert writes == []
    with tenant_context(world.b.org):
        assert _raw_count("cem_location") == 1
    assert writes == [str(world.b.org.pk)]
    assert _raw_count("cem_location") == 0  # outside any context: back to none before it runs
    assert writes == [str(world.b.org.pk), ""]


@pytest.mark.django_db(transaction=True)
def test_a_fresh_cluster_gets_its_application_role_on_first_connection():
    """System checks connect before migrate can create the role (a new machine): self-heal."""
    import uuid

    from psycopg import sql

    from cem.db.base import owner_session

    role = f"cem_app_{uuid.uuid4().hex[:8]}"
    options = connection.settings_dict["OPTIONS"]
    saved = options["assume_role"]
    connection.close()
    options["assume_role"] = role
    try:
        with connection.cursor() as cur:
            cur.execute(
                "SELECT current_user, (SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user)"
            )
            assert cur.fetchone() == (role, False)
    finally:
        connection.close()
        options["assume_role"] = saved
        with owner_session(), connection.cursor() as cur:
            cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
