"""Reads behind the webhook pages: endpoints with their recent trouble, and an endpoint's log."""

from __future__ import annotations

from django.db.models import Count, Max, Q

from cem.models import WebhookDelivery

Status = WebhookDelivery.Status


def endpoints_with_activity(queryset):
    """Each endpoint with how many deliveries wait, how many failed or gave up, and the latest one."""
    return queryset.annotate(
        waiting_count=Count("deliveries", filter=Q(deliveries__status__in=[Status.PENDING, Status.FAILED])),
        failing_count=Count("deliveries", filter=Q(deliveries__status__in=[Status.FAILED, Status.GAVE_UP])),
        last_delivery_at=Max("deliveries__created_at"),
    )


def endpoint_deliveries(endpoint, *, status: str = ""):
    """The endpoint's log, newest first; ``status`` narrows it when it is a known status."""
    queryset = WebhookDelivery.objects.filter(endpoint=endpoint)
    if status in Status.values:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-created_at", "-id")
