from django.db import models

from cem.tenancy import TenantModel

from .customers import Customer
from .hierarchy import Employee, Location
from .standards import Channel, InteractionCategory, Touchpoint


# Interactions are the high-volume fact table (tens of millions of rows, bulk-loaded). Its
# references are enforced where rows are written, not by the database (as Sentry does for its
# event tables): cem.ingest resolves every reference through the tenant-scoped managers, which a
# database foreign key cannot do anyway (it checks existence in any tenant, bypassing RLS), and
# Django's deletion collector still honours PROTECT / CASCADE / SET_NULL. A database FK would
# cost a deferred check per reference per row, about 40 % of bulk ingest time (bench/ingest.py).
# Single-column FK indexes are dropped too: each lookup is covered by an organization-led index.
def _fact_fk(to, *, on_delete, **kwargs):
    return models.ForeignKey(to, on_delete=on_delete, db_constraint=False, db_index=False, **kwargs)


class Interaction(TenantModel):
    """One contact between a customer and the business: the fact everything else is about."""

    SCOPE_PATHS = {"region": "location__region", "location": "location", "employee": "employees"}

    organization = _fact_fk("cem.Organization", on_delete=models.CASCADE, related_name="+")
    external_id = models.CharField(max_length=100)
    customer = _fact_fk(
        Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="interactions"
    )
    location = _fact_fk(Location, on_delete=models.PROTECT, related_name="interactions")
    channel = _fact_fk(Channel, on_delete=models.PROTECT, related_name="interactions")
    touchpoint = _fact_fk(
        Touchpoint, on_delete=models.PROTECT, null=True, blank=True, related_name="interactions"
    )
    category = models.CharField(max_length=12, choices=InteractionCategory.choices)
    occurred_at = models.DateTimeField()
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    employees = models.ManyToManyField(Employee, through="InteractionEmployee", related_name="interactions")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="interaction_external_id_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "occurred_at"], name="interaction_org_occurred"),
            models.Index(fields=["organization", "location", "occurred_at"], name="interaction_org_loc_occ"),
            models.Index(fields=["organization", "customer"], name="interaction_org_customer"),
            models.Index(fields=["organization", "channel"], name="interaction_org_channel"),
            models.Index(fields=["organization", "touchpoint"], name="interaction_org_touchpoint"),
        ]

    def __str__(self):
        return self.external_id


class InteractionEmployee(TenantModel):
    organization = _fact_fk("cem.Organization", on_delete=models.CASCADE, related_name="+")
    interaction = _fact_fk(Interaction, on_delete=models.CASCADE, related_name="+")
    employee = _fact_fk(Employee, on_delete=models.PROTECT, related_name="+")

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "interaction", "employee"], name="interaction_employee_uniq"
            )
        ]
        indexes = [models.Index(fields=["organization", "employee"], name="interaction_emp_org_emp")]
