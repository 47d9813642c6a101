"""Rollups of the alignment app: per-day counts and sums that dashboards read instead of raw data.

``StandardDaily`` holds, per organization x local day x location x employee x standard x channel x
source, how many 0-100 points arrived and their sum; any mean over any period or scope is a
SUM(total)/SUM(n) over its rows. Handlers keep it current (alignment.handlers), and
``RollupApplied`` remembers what each source object contributed so redelivery adds nothing and
a rescore subtracts exactly what was added (alignment.rollups).
"""

from __future__ import annotations

from django.db import models

from cem.tenancy import TenantModel


class StandardDaily(TenantModel):
    class Source(models.TextChoices):
        FEEDBACK = "feedback", "Feedback"
        AUDIT = "audit", "Audit"
        MONITORING = "monitoring", "Monitoring"

    day = models.DateField(help_text="Local date in the organization's time zone.")
    location = models.ForeignKey(
        "cem.Location", on_delete=models.CASCADE, null=True, blank=True, db_constraint=False, related_name="+"
    )
    employee = models.ForeignKey(
        "cem.Employee", on_delete=models.CASCADE, null=True, blank=True, db_constraint=False, related_name="+"
    )
    standard = models.ForeignKey(
        "cem.Standard", on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    channel = models.ForeignKey(
        "cem.Channel", on_delete=models.CASCADE, null=True, blank=True, db_constraint=False, related_name="+"
    )
    source = models.CharField(max_length=10, choices=Source.choices)
    n = models.IntegerField(default=0)
    # Each point is quantized to 4 places before summing, so incremental and rebuilt sums are equal.
    total = models.DecimalField(max_digits=16, decimal_places=4, default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "location", "employee", "standard", "channel", "source"],
                name="standard_daily_key",
                nulls_distinct=False,
            )
        ]
        indexes = [
            models.Index(fields=["organization", "location", "day"], name="std_daily_org_loc_day"),
            models.Index(fields=["organization", "standard", "day"], name="std_daily_org_std_day"),
            models.Index(fields=["organization", "employee", "day"], name="std_daily_org_emp_day"),
        ]


class RollupApplied(TenantModel):
    """What one response or audit added to the rollups (rows as JSON), for idempotence and rescores."""

    class Kind(models.TextChoices):
        RESPONSE = "response", "Response"
        AUDIT = "audit", "Audit"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    source_id = models.BigIntegerField()
    rows = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind", "source_id"], name="rollup_applied_key")
        ]
