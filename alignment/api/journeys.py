"""Customer journey maps API. Resource "business_data".

- ``/api/v1/journey-maps/``: CRUD. A journey carries its ``steps`` in order; on create or update
  a ``steps`` list (``[{touchpoint, expectation, note}]``) replaces them in that order (a touchpoint
  already on the journey keeps its step id). ``POST …/{id}/reorder/`` takes every step id once in
  the new order (positions are swapped in one transaction); ``GET …/{id}/experience/`` returns each
  step's expected vs actual experience, gap and status for a period (``period``/``from``/``to`` as
  on the dashboards) and optionally one ``location``, with the rollup scoped to the caller.
- ``/api/v1/journey-steps/``: one step at a time — add (``position`` optional, default the end),
  change touchpoint / expectation / note, remove (later steps move up). Filter ``journey``.

Writes go through alignment.journeys (audit-logged); reads through alignment.journey_selectors.
"""

from __future__ import annotations

import django_filters as f
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from alignment import journey_selectors as sel
from alignment import journeys as svc
from alignment.filters import DashboardFilters, FilterError
from alignment.models import JourneyMap, JourneyStep, Rollup
from cem.api.base import RenderStoredMixin, TenantModelViewSet
from cem.api.permissions import caller_role
from cem.models import CustomerExpectation, Location, Segment, Touchpoint
from cem.params import id_of
from cem.scoping import scope_queryset


class StepSerializer(serializers.ModelSerializer):
    touchpoint = serializers.PrimaryKeyRelatedField(queryset=Touchpoint.objects)
    expectation = serializers.PrimaryKeyRelatedField(
        queryset=CustomerExpectation.objects, allow_null=True, required=False
    )
    touchpoint_name = serializers.CharField(source="touchpoint.name", read_only=True)
    category = serializers.CharField(
        source="touchpoint.category", read_only=True, help_text="The touchpoint's interaction category."
    )
    expectation_name = serializers.CharField(
        source="expectation.name", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = JourneyStep
        fields = [
            "id",
            "position",
            "touchpoint",
            "touchpoint_name",
            "category",
            "expectation",
            "expectation_name",
            "note",
        ]
        read_only_fields = ["id", "position"]
        validators = []


class JourneyMapSerializer(serializers.ModelSerializer):
    segment = serializers.PrimaryKeyRelatedField(queryset=Segment.objects, allow_null=True, required=False)
    segment_name = serializers.CharField(source="segment.name", read_only=True, default=None, allow_null=True)
    steps = StepSerializer(
        many=True,
        required=False,
        help_text="The touchpoints in order. Given on a write, it replaces the steps in this order.",
    )

    class Meta:
        model = JourneyMap
        fields = ["id", "name", "segment", "segment_name", "description", "steps", "updated_at"]
        read_only_fields = ["id", "updated_at"]
        validators = []


class JourneyStepSerializer(StepSerializer):
    journey = serializers.PrimaryKeyRelatedField(queryset=JourneyMap.objects)
    position = serializers.IntegerField(
        min_value=1,
        required=False,
        help_text="On create: where to insert (1-based; default the end). Change the order with "
        "journey-maps/{id}/reorder/.",
    )

    class Meta(StepSerializer.Meta):
        fields = ["id", "journey", *StepSerializer.Meta.fields[1:]]
        read_only_fields = ["id"]


class JourneyReorderSerializer(serializers.Serializer):
    steps = serializers.ListField(
        child=serializers.IntegerField(), help_text="Each of the journey's step ids once, in the new order."
    )


class ExperienceRowSerializer(serializers.Serializer):
    step_id = serializers.IntegerField()
    position = serializers.IntegerField()
    touchpoint_id = serializers.IntegerField()
    touchpoint = serializers.CharField()
    category = serializers.CharField()
    category_label = serializers.CharField()
    expectation_id = serializers.IntegerField(allow_null=True)
    expectation = serializers.CharField()
    importance = serializers.IntegerField(allow_null=True, help_text="The expectation's importance, 1-5.")
    expected = serializers.FloatField(allow_null=True, help_text="Importance on 0-100 (1 → 0, 5 → 100).")
    actual = serializers.FloatField(allow_null=True, help_text="Customer feedback at the touchpoint, 0-100.")
    actual_low = serializers.FloatField(allow_null=True)
    actual_high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    gap = serializers.FloatField(allow_null=True, help_text="expected - actual")
    status = serializers.ChoiceField(choices=list(sel.STATUS_LABELS))
    status_label = serializers.CharField()
    highlight = serializers.BooleanField(help_text="A large gap backed by enough answers.")
    source = serializers.CharField(help_text="Where the actual comes from (see the journey pages).")
    source_label = serializers.CharField()
    note = serializers.CharField()


class ExperienceSerializer(serializers.Serializer):
    journey = serializers.IntegerField()
    segment = serializers.IntegerField(allow_null=True)
    period_start = serializers.DateField(allow_null=True)
    period_end = serializers.DateField(allow_null=True)
    location = serializers.IntegerField(allow_null=True)
    gap_highlight = serializers.IntegerField()
    min_n = serializers.IntegerField()
    steps = ExperienceRowSerializer(many=True)


class JourneyMapFilter(f.FilterSet):
    segment = f.NumberFilter()
    name = f.CharFilter(lookup_expr="icontains")


class JourneyStepFilter(f.FilterSet):
    journey = f.NumberFilter()
    touchpoint = f.NumberFilter()


def _steps_data(validated: list[dict] | None):
    if validated is None:
        return None
    return [{k: v for k, v in step.items() if k in svc.STEP_FIELDS} for step in validated]


class JourneyMapViewSet(RenderStoredMixin, TenantModelViewSet):
    """Customer journey maps with their ordered steps."""

    queryset = JourneyMap.objects
    resource = "business_data"
    api_app = "alignment"
    serializer_class = JourneyMapSerializer
    filterset_class = JourneyMapFilter
    ordering_fields = ["name", "id", "updated_at"]
    action_verbs = {"reorder": "change", "experience": "view"}

    def safely_get_queryset(self, queryset):
        return sel.journeys_with_steps(queryset).order_by("name")

    def _data(self, serializer) -> dict:
        data = {k: v for k, v in serializer.validated_data.items() if k in svc.JOURNEY_FIELDS}
        if "steps" in serializer.validated_data:
            data["steps"] = _steps_data(serializer.validated_data["steps"])
        return data

    def perform_create(self, serializer):
        serializer.instance = svc.journey_create(
            organization=self.organization, actor=self.actor, data=self._data(serializer)
        )

    def perform_update(self, serializer):
        serializer.instance = svc.journey_update(
            organization=self.organization,
            actor=self.actor,
            journey=serializer.instance,
            data=self._data(serializer),
        )

    def perform_destroy(self, instance):
        svc.journey_delete(organization=self.organization, actor=self.actor, journey=instance)

    @extend_schema(
        summary="Put the steps in a new order",
        request=JourneyReorderSerializer,
        responses=JourneyMapSerializer,
    )
    @action(detail=True, methods=["post"])
    def reorder(self, request, pk=None):
        journey = self.get_object()
        body = JourneyReorderSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        svc.journey_reorder(
            organization=self.organization,
            actor=self.actor,
            journey=journey,
            steps=body.validated_data["steps"],
        )
        return Response(self.get_serializer(self._stored(journey.pk)).data)

    @extend_schema(
        summary="Expected vs actual experience per step",
        parameters=[
            OpenApiParameter("period", OpenApiTypes.STR, description="7, 30, 90 (default), 180, 365 or all"),
            OpenApiParameter("from", OpenApiTypes.DATE, description="Custom period start (overrides period)"),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Custom period end (overrides period)"),
            OpenApiParameter("location", OpenApiTypes.INT, description="One location in the caller's scope"),
        ],
        responses=ExperienceSerializer,
    )
    @action(detail=True, methods=["get"])
    def experience(self, request, pk=None):
        journey = self.get_object()
        membership = request._request.membership
        role = caller_role(request)
        try:
            filters = DashboardFilters.from_params(request.query_params, self.organization)
        except FilterError as exc:
            raise ValidationError({exc.param: [exc.message]}) from None
        location_id = None
        if raw := request.query_params.get("location", "").strip():
            location_id = id_of(raw)
            if location_id is None:
                raise ValidationError({"location": ["Expected a location id (digits)."]})
            locations = scope_queryset(Location.objects.all(), role=role, membership=membership)
            if not locations.filter(pk=location_id).exists():
                raise NotFound("No such location in your scope.")
        rows = sel.journey_experience(
            journey,
            rollups=scope_queryset(Rollup.objects.all(), role=role, membership=membership),
            start=filters.start,
            end=filters.end,
            location_id=location_id,
        )
        payload = {
            "journey": journey.pk,
            "segment": journey.segment_id,
            "period_start": filters.start,
            "period_end": filters.end,
            "location": location_id,
            "gap_highlight": sel.GAP_HIGHLIGHT,
            "min_n": sel.MIN_N,
            "steps": rows,
        }
        return Response(ExperienceSerializer(payload).data)


class JourneyStepViewSet(TenantModelViewSet):
    """Single journey steps: add, change, remove (order: journey-maps/{id}/reorder/)."""

    queryset = JourneyStep.objects
    resource = "business_data"
    api_app = "alignment"
    serializer_class = JourneyStepSerializer
    filterset_class = JourneyStepFilter
    ordering_fields = ["position", "id"]

    def safely_get_queryset(self, queryset):
        return queryset.select_related("touchpoint", "expectation").order_by("journey_id", "position")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = svc.step_add(
            organization=self.organization,
            actor=self.actor,
            journey=data["journey"],
            touchpoint=data["touchpoint"],
            expectation=data.get("expectation"),
            note=data.get("note", ""),
            position=data.get("position"),
        )

    def perform_update(self, serializer):
        data = serializer.validated_data
        if "journey" in data and data["journey"].pk != serializer.instance.journey_id:
            raise ValidationError(
                {"journey": ["A step cannot move to another journey; remove it and add it there."]}
            )
        if "position" in data and data["position"] != serializer.instance.position:
            raise ValidationError({"position": ["Change the order with journey-maps/{id}/reorder/."]})
        serializer.instance = svc.step_update(
            organization=self.organization,
            actor=self.actor,
            step=serializer.instance,
            data={k: v for k, v in data.items() if k in svc.STEP_FIELDS},
        )

    def perform_destroy(self, instance):
        svc.step_remove(organization=self.organization, actor=self.actor, step=instance)


def register(router) -> None:
    router.register("journey-maps", JourneyMapViewSet, basename="journey-maps")
    router.register("journey-steps", JourneyStepViewSet, basename="journey-steps")
