from django.conf import settings
from django.db import models

from cem.tenancy import TenantModel


class AuditLog(TenantModel):
    """Who changed what, when, from which request. Written by services, never edited."""

    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_api_key = models.ForeignKey(
        "cem.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=80)
    object_type = models.CharField(max_length=80)
    object_id = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="auditlog_org_created"),
            models.Index(fields=["organization", "object_type", "object_id"], name="auditlog_org_object"),
        ]

    def __str__(self):
        return f"{self.action} {self.object_type}:{self.object_id}"
