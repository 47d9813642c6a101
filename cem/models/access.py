import hashlib
import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from cem.tenancy import TenantModel

from .hierarchy import Employee, Location, Region, Team


class Role(models.TextChoices):
    ORG_ADMIN = "org_admin", "Organization admin"
    EXECUTIVE = "executive", "Executive"
    REGIONAL_MANAGER = "regional_manager", "Regional manager"
    STORE_MANAGER = "store_manager", "Store manager"
    TRAINER = "trainer", "Trainer"
    EVALUATOR = "evaluator", "Evaluator (QA)"
    EMPLOYEE = "employee", "Employee"
    SHOPPER = "shopper", "Mystery shopper"
    INTEGRATOR = "integrator", "Integrator"


class Membership(TenantModel):
    """A user's role in one organization and the part of the hierarchy it covers."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["user__username"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_one_per_user"),
            models.CheckConstraint(
                condition=~Q(role="regional_manager") | Q(region__isnull=False),
                name="membership_regional_needs_region",
            ),
            models.CheckConstraint(
                condition=~Q(role="store_manager") | Q(location__isnull=False),
                name="membership_store_needs_location",
            ),
            models.CheckConstraint(
                condition=~Q(role="employee") | Q(employee__isnull=False),
                name="membership_employee_needs_employee",
            ),
        ]
        indexes = [models.Index(fields=["organization", "role"], name="membership_org_role")]

    def __str__(self):
        return f"{self.user} ({self.get_role_display()})"


class ApiKey(TenantModel):
    """An integrator's key. Only a SHA-256 of the secret is kept; the full key is shown once.

    The secret carries 256 bits of randomness, so a fast hash is enough (no dictionary to
    guess from) and keeps per-request authentication cheap.
    """

    PREFIX = "cem"

    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=16, unique=True)
    hashed_key = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=40), default=list)
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "created_at"], name="apikey_org_created")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def generate(cls) -> tuple[str, str, str]:
        """Return (full_key, prefix, hashed_key)."""
        prefix = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        full = f"{cls.PREFIX}_{prefix}_{secret}"
        return full, prefix, cls.hash_secret(full)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, app_label: str, write: bool) -> bool:
        wanted = f"{app_label}:{'write' if write else 'read'}"
        return wanted in self.scopes or "*" in self.scopes
