import zoneinfo

from django.core.exceptions import ValidationError
from django.db import models

from cem.tenancy import TenantManager


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known IANA time zone.")


def default_org_settings() -> dict:
    return {
        "contact_rules": {"max_invitations_per_customer_days": 30, "quiet_hours": ["21:00", "08:00"]},
        "thresholds": {"alert_nps_below": 0, "min_sample_size": 5},
    }


class Organization(models.Model):
    """The tenant. Its own row is visible only inside its own tenant context."""

    TENANT_FIELD = "id"
    SCOPE_PATHS = None

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    locale = models.CharField(max_length=16, default="en")
    settings = models.JSONField(default=default_org_settings, blank=True)
    # Org admins must sign in with an authenticator code; those without one enrol before anything else.
    require_admin_two_factor = models.BooleanField(
        "Require two-factor authentication for administrators", default=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantManager()

    class Meta:
        base_manager_name = "objects"
        ordering = ["name"]

    def __str__(self):
        return self.name
