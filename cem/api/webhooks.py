"""Outgoing webhooks API (resource ``webhooks``): endpoints, their delivery log, redelivery.

- ``/api/v1/webhooks/``: CRUD of the organization's endpoints. POST answers with the signing
  ``secret``, the only response that ever shows it; ``…/{id}/rotate-secret/`` makes a new one
  (the old one keeps signing for ``overlap_hours``, default 24); PATCH ``active: false``
  disables (waiting deliveries give up); DELETE removes the endpoint and its log.
  ``…/event-types/`` lists what an endpoint can subscribe to.
- ``/api/v1/webhooks/{id}/deliveries/`` and ``/api/v1/webhook-deliveries/``: the delivery log
  (status, attempts, next attempt, last HTTP code and error, response time), newest first.
- ``POST /api/v1/webhook-deliveries/{id}/redeliver/``: one more attempt, now; answers with the
  delivery as that attempt left it.

Writes go through cem.webhooks; signatures and the retry schedule are described there and in
the README's "Webhooks" section.
"""

from __future__ import annotations

from datetime import timedelta

import django_filters as f
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from cem import webhooks
from cem.api.base import TenantModelViewSet, TenantReadOnlyViewSet
from cem.api.pagination import LargeListPagination
from cem.models import WebhookDelivery, WebhookEndpoint


class WebhookEndpointSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=list(webhooks.WEBHOOK_EVENTS)),
        allow_empty=False,
        help_text="Event types this endpoint receives: " + ", ".join(webhooks.WEBHOOK_EVENTS) + ".",
    )
    secret_hint = serializers.CharField(read_only=True, help_text="The secret's last characters.")
    previous_secret_expires_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="Until then the secret before the last rotation also signs.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "active",
            "secret_hint",
            "secret_rotated_at",
            "previous_secret_expires_at",
            "created_by",
            "created_at",
        ]
        read_only_fields = ["created_by", "created_at", "secret_rotated_at"]


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once: store it now to verify signatures.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class RotateSecretSerializer(serializers.Serializer):
    overlap_hours = serializers.IntegerField(
        min_value=0,
        max_value=168,
        default=24,
        help_text="How long the old secret keeps signing beside the new one (0: stop at once).",
    )


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "endpoint",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_attempt_at",
            "last_status_code",
            "last_error",
            "last_response_ms",
            "delivered_at",
            "created_at",
            "payload",
        ]
        read_only_fields = fields


class WebhookDeliveryFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=WebhookDelivery.Status.choices)
    event_type = f.ChoiceFilter(choices=[(t, t) for t in webhooks.WEBHOOK_EVENTS])
    endpoint = f.NumberFilter(field_name="endpoint_id")


class WebhookEndpointFilter(f.FilterSet):
    active = f.BooleanFilter()


class WebhookEndpointViewSet(TenantModelViewSet):
    """The organization's webhook endpoints."""

    resource = "webhooks"
    queryset = WebhookEndpoint.objects
    serializer_class = WebhookEndpointSerializer
    filterset_class = WebhookEndpointFilter
    ordering_fields = ["created_at", "url"]
    action_verbs = {"deliveries": "view", "rotate_secret": "change", "event_types": "view"}

    def safely_get_queryset(self, queryset):
        return queryset.order_by("-created_at", "-id")

    @extend_schema(responses={201: WebhookEndpointCreatedSerializer})
    def create(self, request, *args, **kwargs):
        """Register an endpoint. The signing secret is in this response only."""
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint, _secret = webhooks.endpoint_create(
            organization=self.organization, actor=self.actor, **body.validated_data
        )
        return Response(WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        serializer.instance = webhooks.endpoint_update(
            organization=self.organization,
            actor=self.actor,
            endpoint=serializer.instance,
            data=serializer.validated_data,
        )

    def perform_destroy(self, instance):
        webhooks.endpoint_delete(organization=self.organization, actor=self.actor, endpoint=instance)

    @extend_schema(request=RotateSecretSerializer, responses=WebhookEndpointCreatedSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """A new signing secret, in this response only."""
        endpoint = self.get_object()
        body = RotateSecretSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        endpoint, _secret = webhooks.endpoint_rotate_secret(
            organization=self.organization,
            actor=self.actor,
            endpoint=endpoint,
            overlap=timedelta(hours=body.validated_data["overlap_hours"]),
        )
        return Response(WebhookEndpointCreatedSerializer(endpoint).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", enum=WebhookDelivery.Status.values),
            OpenApiParameter("event_type", enum=list(webhooks.WEBHOOK_EVENTS)),
            OpenApiParameter("cursor", str, description="The pagination cursor from `next` / `previous`."),
            OpenApiParameter("page_size", int),
        ],
        responses=WebhookDeliverySerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk=None):
        """This endpoint's delivery log, newest first (cursor pagination)."""
        endpoint = self.get_object()
        queryset = WebhookDeliveryFilter(
            request.query_params, queryset=WebhookDelivery.objects.filter(endpoint=endpoint)
        ).qs
        paginator = LargeListPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(
        responses=inline_serializer(
            "WebhookEventType",
            fields={"type": serializers.CharField(), "label": serializers.CharField()},
            many=True,
        )
    )
    @action(detail=False, methods=["get"], url_path="event-types", pagination_class=None)
    def event_types(self, request):
        """The event types an endpoint can subscribe to."""
        return Response([{"type": key, "label": label} for key, label in webhooks.WEBHOOK_EVENTS.items()])


class WebhookDeliveryViewSet(TenantReadOnlyViewSet):
    """Every delivery of the organization's endpoints, newest first."""

    resource = "webhooks"
    queryset = WebhookDelivery.objects
    serializer_class = WebhookDeliverySerializer
    filterset_class = WebhookDeliveryFilter
    pagination_class = LargeListPagination
    ordering_fields = []
    action_verbs = {"redeliver": "change"}

    @extend_schema(request=None, responses=WebhookDeliverySerializer)
    @action(detail=True, methods=["post"])
    def redeliver(self, request, pk=None):
        """Send the event to the endpoint again, now; the response shows how that attempt went."""
        delivery = webhooks.redeliver(
            organization=self.organization, actor=self.actor, delivery=self.get_object()
        )
        return Response(WebhookDeliverySerializer(delivery).data)


def register(router) -> None:
    router.register("webhooks", WebhookEndpointViewSet, basename="webhooks")
    router.register("webhook-deliveries", WebhookDeliveryViewSet, basename="webhook-deliveries")
