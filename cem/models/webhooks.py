"""Outgoing webhooks: an organization's receiving endpoints and the log of what was sent to them.

The signing secret is kept in clear because HMAC needs it to sign; it leaves the platform only
once, in the response that created or rotated it. The delivery logic is cem/webhooks.py.
"""

import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from cem.tenancy import TenantModel

SECRET_PREFIX = "whsec_"  # noqa: S105 - a label, not a secret


def new_webhook_secret() -> str:
    """256 bits from the OS's CSPRNG, URL-safe so it survives copy and paste into any config."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class WebhookEndpoint(TenantModel):
    """A URL of the organization's that receives signed POSTs for the event types it subscribes to."""

    url = models.URLField(max_length=2000, verbose_name="URL")
    description = models.CharField(max_length=200, blank=True)
    secret = models.CharField(max_length=100, default=new_webhook_secret, editable=False)
    # After a rotation the old secret keeps signing (a second v1 in the header) until this time,
    # so receivers can switch without dropping deliveries.
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    event_types = ArrayField(models.CharField(max_length=80), default=list)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(TenantModel.Meta):
        verbose_name = "webhook endpoint"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "active"], name="webhookendpoint_org_active")]

    def __str__(self):
        return self.description or self.url

    @property
    def secret_hint(self) -> str:
        """Enough to tell secrets apart in a list, never enough to sign with."""
        return f"{SECRET_PREFIX}…{self.secret[-4:]}" if self.secret else ""


class WebhookDelivery(TenantModel):
    """One event sent (or to be sent) to one endpoint; each attempt updates the row."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (will retry)"
        GAVE_UP = "gave_up", "Gave up"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # The outbox event's id; not a foreign key so the log outlives a purge of old events.
    event_id = models.PositiveBigIntegerField()
    event_type = models.CharField(max_length=80)
    payload = models.JSONField(help_text="The body sent, as JSON; the same on every attempt.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_response_ms = models.PositiveIntegerField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "endpoint", "event_id"], name="webhookdelivery_once_per_event"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "endpoint", "-created_at"], name="webhookdelivery_org_log"),
            # The beat job's scan: only rows still waiting for an attempt are in it.
            models.Index(
                fields=["organization", "next_attempt_at"],
                name="webhookdelivery_org_due",
                condition=Q(status__in=["pending", "failed"]),
            ),
        ]

    def __str__(self):
        return f"{self.event_type} #{self.event_id} → endpoint {self.endpoint_id}"
