"""Driver analysis API (read, and recompute on demand). Resource "business_data".

``/api/v1/driver-analyses/`` lists the stored snapshots (alignment/drivers.py explains the method
and the JSON layout of ``drivers`` and ``value_per_point``), newest first; ``?latest=true`` keeps
the newest per scope and outcome, ``?outcome=``, ``?location=<id>`` or ``?scope=organization``
narrow it. Store and regional managers see their locations' snapshots only.
``POST …/recompute/`` queues the Celery job (202), optionally for a given ``period_start`` /
``period_end``.
"""

from __future__ import annotations

import django_filters as f
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from alignment import driver_selectors as sel
from alignment import drivers
from alignment.models import DriverAnalysis
from cem.api.base import TenantReadOnlyViewSet


class ItemSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The survey question's key.")
    label = serializers.CharField()
    r = serializers.FloatField(allow_null=True, help_text="Correlation with the outcome.")
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()


class DriverSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    standard_id = serializers.IntegerField()
    standard = serializers.CharField()
    code = serializers.CharField()
    effect = serializers.FloatField(allow_null=True, help_text="Standardized regression coefficient (beta).")
    low = serializers.FloatField(allow_null=True, help_text="95 % interval of the effect.")
    high = serializers.FloatField(allow_null=True)
    importance = serializers.FloatField(
        allow_null=True, help_text="Relative weight, % of the explained variance."
    )
    importance_low = serializers.FloatField(allow_null=True)
    importance_high = serializers.FloatField(allow_null=True)
    per_point = serializers.FloatField(
        allow_null=True, help_text="Outcome change per one point on the standard."
    )
    per_point_low = serializers.FloatField(allow_null=True)
    per_point_high = serializers.FloatField(allow_null=True)
    per_point_unit = serializers.CharField()
    n = serializers.IntegerField()
    mean = serializers.FloatField(allow_null=True)
    items = ItemSerializer(many=True)


class EstimateSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField(required=False)


class StandardValueSerializer(serializers.Serializer):
    standard_id = serializers.IntegerField()
    standard = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)


class ValueSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=DriverAnalysis.Outcome.choices)
    unit = serializers.CharField()
    basis = serializers.CharField()
    per_nps_point = EstimateSerializer(allow_null=True)
    per_standard = StandardValueSerializer(many=True)


class ValuePerPointSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "not_enough_data"])
    message = serializers.CharField(help_text="Why there is no analysis, when status is not_enough_data.")
    notes = serializers.ListField(child=serializers.CharField())
    caveats = serializers.ListField(child=serializers.CharField())
    values = ValueSerializer(many=True)


class DriverAnalysisSerializer(serializers.ModelSerializer):
    location_name = serializers.CharField(
        source="location.name", read_only=True, default=None, allow_null=True
    )
    drivers = DriverSerializer(many=True, read_only=True)
    value_per_point = ValuePerPointSerializer(read_only=True)

    class Meta:
        model = DriverAnalysis
        fields = [
            "id",
            "location",
            "location_name",
            "outcome",
            "period_start",
            "period_end",
            "method",
            "n",
            "r_squared",
            "drivers",
            "value_per_point",
            "computed_at",
        ]
        read_only_fields = fields


class RecomputeSerializer(serializers.Serializer):
    period_start = serializers.DateField(required=False, allow_null=True)
    period_end = serializers.DateField(required=False, allow_null=True)


class RecomputeQueuedSerializer(RecomputeSerializer):
    queued = serializers.BooleanField()


class DriverAnalysisFilter(f.FilterSet):
    # Plain filters: a model-derived one would query the tenant table at import time.
    outcome = f.ChoiceFilter(choices=DriverAnalysis.Outcome.choices)
    location = f.NumberFilter()
    scope = f.ChoiceFilter(
        choices=[("organization", "Organization"), ("location", "Location")],
        method="filter_scope",
        help_text="organization: the organization-wide analyses; location: per-location ones.",
    )
    latest = f.BooleanFilter(method="filter_latest", help_text="Only the newest per scope and outcome.")

    def filter_scope(self, queryset, name, value):
        return queryset.filter(location__isnull=value == "organization")

    def filter_latest(self, queryset, name, value):
        return sel.latest_each(queryset).order_by("-computed_at", "-pk") if value else queryset


class DriverAnalysisViewSet(TenantReadOnlyViewSet):
    """Driver-analysis snapshots (recomputed nightly)."""

    queryset = DriverAnalysis.objects
    resource = "business_data"
    api_app = "alignment"
    serializer_class = DriverAnalysisSerializer
    filterset_class = DriverAnalysisFilter
    ordering_fields = ["computed_at", "id"]
    action_verbs = {"recompute": "change"}

    def safely_get_queryset(self, queryset):
        return queryset.select_related("location").order_by("-computed_at", "-pk")

    @extend_schema(
        summary="Recompute the driver analyses now (queued)",
        request=RecomputeSerializer,
        responses={202: RecomputeQueuedSerializer},
    )
    @action(detail=False, methods=["post"])
    def recompute(self, request):
        body = RecomputeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        queued = drivers.request_recompute(
            organization=self.organization,
            actor=self.actor,
            period_start=body.validated_data.get("period_start"),
            period_end=body.validated_data.get("period_end"),
        )
        return Response(RecomputeQueuedSerializer(queued).data, status=status.HTTP_202_ACCEPTED)


def register(router) -> None:
    router.register("driver-analyses", DriverAnalysisViewSet, basename="driver-analyses")
