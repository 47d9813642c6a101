"""Org A rows behind the incentives routes (``/api/v1/...``, ``/rewards/...``), one section per area."""

from __future__ import annotations


def _bonus(world) -> None:
    """A closed bonus period with KPIs, a participant and a result (bonus periods, KPIs, participants)."""
    from tests.incentives.bonus_data import sweep_rows

    sweep_rows(world)


def _ledger(world) -> None:
    """A funded budget, an award into a wallet and a hold (accounts, transactions, statement)."""
    import uuid

    from cem.tenancy import tenant_context
    from incentives import ledger
    from tests.incentives.ledger_helpers import funded_budget, rule_on

    org = world.a.org
    emp = world.a.employees["a-n1"]
    with tenant_context(org):
        budget = funded_budget(org, 500, name="acme sweep budget")
        rule = rule_on(org, budget, name="acme sweep rule")
        ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=40, note="acme award")
        ledger.hold(org=org, employee=emp, points=10, note="acme hold")


def populate(world) -> None:
    _bonus(world)
    _ledger(world)
