from django.db import models

from cem.tenancy import TenantModel

from .customers import Customer
from .hierarchy import Employee, Location
from .standards import Channel, InteractionCategory, Touchpoint


class Interaction(TenantModel):
    """One contact between a customer and the business: the fact everything else is about."""

    SCOPE_PATHS = {"region": "location__region", "location": "location", "employee": "employees"}

    external_id = models.CharField(max_length=100)
    customer = models.ForeignKey(
        Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="interactions"
    )
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="interactions")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="interactions")
    touchpoint = models.ForeignKey(
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
        ]

    def __str__(self):
        return self.external_id


class InteractionEmployee(TenantModel):
    interaction = models.ForeignKey(Interaction, on_delete=models.CASCADE, related_name="+")
    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="+")

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "interaction", "employee"], name="interaction_employee_uniq"
            )
        ]
        indexes = [models.Index(fields=["organization", "employee"], name="interaction_emp_org_emp")]
