from django.db import models

from cem.tenancy import TenantModel


class Segment(TenantModel):
    """A named customer group; ``rule`` is a list of {field, op, value} conditions, all of which hold."""

    SCOPE_PATHS = None  # reference data

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    rule = models.JSONField(default=list, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="segment_name_uniq")]

    def __str__(self):
        return self.name


class Customer(TenantModel):
    """Only what contacting and segmenting need: no names, no addresses."""

    external_id = models.CharField(max_length=64)
    segment = models.ForeignKey(
        Segment, on_delete=models.SET_NULL, null=True, blank=True, related_name="customers"
    )
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=32, blank=True)
    locale = models.CharField(max_length=16, blank=True)
    consent_email = models.BooleanField(default=False)
    consent_sms = models.BooleanField(default=False)
    opted_out_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["external_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "external_id"], name="customer_external_id_uniq")
        ]
        indexes = [models.Index(fields=["organization", "segment"], name="customer_org_segment")]

    def __str__(self):
        return self.external_id
