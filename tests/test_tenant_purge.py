"""Only the owner's tenant purge may delete ledger rows; the application role cannot, whatever it sets."""

import uuid

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from cem.db.purge import tenant_purge
from cem.tenancy import tenant_context, unscoped
from incentives import ledger
from incentives.models import LedgerEntry, LedgerTransaction
from tests.incentives.ledger_helpers import funded_budget, rule_on

pytestmark = pytest.mark.django_db

DELETE_ENTRIES = "DELETE FROM incentives_ledgerentry WHERE organization_id = %s"
DELETE_TXS = "DELETE FROM incentives_ledgertransaction WHERE organization_id = %s"


def _ledger(world):
    org, emp = world.a.org, world.a.employees["a-n1"]
    with tenant_context(org):
        rule = rule_on(org, funded_budget(org, 100))
        ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=10)
    return org


def _current_user(cur) -> str:
    cur.execute("SELECT current_user")
    return cur.fetchone()[0]


def test_the_application_role_cannot_delete_the_ledger_even_with_the_purge_setting(world):
    org = _ledger(world)
    with unscoped(), connection.cursor() as cur:
        app_role = _current_user(cur)
        assert app_role == connection.settings_dict["OPTIONS"]["assume_role"]
        for statement in (DELETE_ENTRIES, DELETE_TXS):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                cur.execute("SET LOCAL cem.ledger_purge = 'on'")
                cur.execute(statement, [org.pk])
        assert LedgerEntry.objects.filter(organization=org).count() == 4


def test_the_owner_without_the_purge_setting_is_refused_and_updates_stay_refused(world):
    org = _ledger(world)
    with unscoped():
        with pytest.raises(DatabaseError, match="append-only"), tenant_purge() as cur:
            cur.execute("SET LOCAL cem.ledger_purge = 'off'")
            cur.execute(DELETE_ENTRIES, [org.pk])
        with pytest.raises(DatabaseError, match="append-only"), tenant_purge() as cur:
            cur.execute(
                "UPDATE incentives_ledgerentry SET amount = amount WHERE organization_id = %s", [org.pk]
            )
        assert LedgerTransaction.objects.filter(organization=org).count() == 2


def test_tenant_purge_deletes_a_whole_ledger_then_drops_back_to_the_app_role(world):
    org = _ledger(world)
    with unscoped():
        with connection.cursor() as cur:
            app_role = _current_user(cur)
        with tenant_purge() as cur:
            assert _current_user(cur) != app_role
            cur.execute("SET CONSTRAINTS ALL DEFERRED")
            cur.execute("DELETE FROM incentives_pointslot WHERE organization_id = %s", [org.pk])
            cur.execute(DELETE_ENTRIES, [org.pk])
            cur.execute(DELETE_TXS, [org.pk])
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        assert not LedgerTransaction.objects.filter(organization=org).exists()
        with connection.cursor() as cur:
            assert _current_user(cur) == app_role
            cur.execute("SELECT current_setting('cem.ledger_purge', true)")
            assert cur.fetchone()[0] == "off"
