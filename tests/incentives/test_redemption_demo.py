"""The demo catalogue seeder: about twenty items, code pools, redemptions in every state, balanced."""

from django.db.models import Sum

from cem.models import Employee
from cem.tenancy import tenant_context
from incentives import redemption_demo
from incentives.models import CatalogItem, LedgerEntry, Redemption
from tests import factories as f


def test_demo_catalogue_has_every_redemption_state(world):
    org = world.a.org
    for n in range(8):
        f.EmployeeFactory(
            organization=org, external_id=f"acme-demo-{n}", current_location=world.a.locations["a-n2"]
        )
    with tenant_context(org):
        counts = redemption_demo.seed(org=org, admin_user=world.users["admin"])
        assert CatalogItem.objects.count() >= 20
        assert all(counts[s] > 0 for s in Redemption.Status.values), counts
        assert LedgerEntry.objects.aggregate(total=Sum("amount"))["total"] == 0
        assert Employee.objects.filter(role="associate").exists()
