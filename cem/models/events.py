from django.db import models

from cem.tenancy import TenantModel


class OutboxEvent(TenantModel):
    """A domain event written in the same transaction as the change that caused it."""

    event_type = models.CharField(max_length=80)
    aggregate_type = models.CharField(max_length=80, blank=True)
    aggregate_id = models.CharField(max_length=64, blank=True)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set once every handler registered for the type has a HandlerDelivery row.
    completed_at = models.DateTimeField(null=True, blank=True)
    dispatch_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["organization", "event_type", "created_at"], name="outbox_org_type_created"),
            models.Index(
                fields=["organization", "created_at"],
                name="outbox_org_pending",
                condition=models.Q(completed_at__isnull=True),
            ),
        ]

    def __str__(self):
        return f"{self.event_type}#{self.pk}"


class HandlerDelivery(TenantModel):
    """Proof that one handler processed one event; its unique key makes handlers idempotent."""

    event = models.ForeignKey(OutboxEvent, on_delete=models.CASCADE, related_name="deliveries")
    handler = models.CharField(max_length=120)
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "event", "handler"], name="delivery_once_per_handler"
            )
        ]


class IdempotencyRecord(TenantModel):
    """The stored outcome of a POST sent with an Idempotency-Key, replayed for 24 hours."""

    class State(models.TextChoices):
        IN_FLIGHT = "in_flight"
        DONE = "done"

    principal = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=10, choices=State.choices, default=State.IN_FLIGHT)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.BinaryField(null=True)
    response_content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "principal", "key"], name="idempotency_key_uniq")
        ]
        indexes = [models.Index(fields=["organization", "created_at"], name="idempotency_org_created")]


class BeatClaim(models.Model):
    """When a beat entry was last sent, by whichever beat process claimed it (cem/beat.py).

    Not tenant data: one row per schedule entry, written by the scheduler before it sends.
    """

    name = models.CharField(max_length=200, primary_key=True)
    sent_at = models.DateTimeField()
    sent_by = models.CharField(max_length=200, blank=True)

    def __str__(self):
        return f"{self.name} @ {self.sent_at:%Y-%m-%d %H:%M:%S}"
