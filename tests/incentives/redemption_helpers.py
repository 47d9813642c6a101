"""Helpers of the redemption tests: wallets with points, catalogue items, employee logins."""

from __future__ import annotations

from cem import models as m
from cem.tenancy import tenant_context
from incentives import ledger
from incentives.models import CatalogItem, GiftCardCode
from tests import factories as f

PASSWORD = "correct-horse-battery"


def fund(org, employee, points: int) -> int:
    """Put ``points`` in the employee's wallet (a manual adjustment); returns the new balance."""
    with tenant_context(org):
        wallet = ledger.wallet_for(org=org, employee=employee)
        ledger.adjust(org=org, account=wallet, points=points, note="test funds")
        wallet.refresh_from_db()
        return wallet.balance


def balance(org, employee) -> int:
    with tenant_context(org):
        return ledger.wallet_for(org=org, employee=employee).balance


def item(org, **kw) -> CatalogItem:
    defaults = {"name": "acme item", "kind": CatalogItem.Kind.MERCHANDISE, "cost": 100}
    defaults.update(kw)
    with tenant_context(org):
        return CatalogItem.objects.create(organization=org, **defaults)


def codes(org, item_, *values: str) -> None:
    with tenant_context(org):
        GiftCardCode.objects.bulk_create([GiftCardCode(organization=org, item=item_, code=v) for v in values])


def employee_login(world, store: str, email: str):
    """A user with an employee membership for the employee of ``store`` in org A."""
    user = f.UserFactory(username=email, email=email, password=PASSWORD)
    f.MembershipFactory(
        organization=world.a.org, user=user, role=m.Role.EMPLOYEE, employee=world.a.employees[store]
    )
    return user
