"""Incentives API: recognition (``/api/v1/recognitions/``) and the leaderboard (``/api/v1/leaderboard/``).

- POST recognitions: a manager (or a peer, when enabled) gives points with a message and optionally a
  standard; limits and the rules are in incentives/recognition.py; errors name the field. GET is the
  feed, limited to the caller's scope (employees: what they received).
- GET leaderboard ``?location=<id>`` (default: the caller's own store): opted-in employees only, by
  points earned this month; ``enabled`` is false while the organization has it switched off.
  POST ``leaderboard/opt-in/`` ``{"opt_in": true|false}`` for the calling employee.
"""

from __future__ import annotations

import django_filters as f
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cem.api.base import TenantViewSetMixin
from cem.api.permissions import caller_role
from cem.models import Employee, Location, Standard
from cem.scoping import scope_queryset
from incentives import ledger
from incentives import recognition as services
from incentives.models import LeaderboardOptIn, Recognition


class RecognitionSerializer(serializers.ModelSerializer):
    giver_name = serializers.SerializerMethodField()
    receiver_name = serializers.CharField(source="receiver.name", read_only=True)
    standard_title = serializers.CharField(source="standard.title", read_only=True, default="")

    class Meta:
        model = Recognition
        fields = [
            "id",
            "giver",
            "giver_name",
            "receiver",
            "receiver_name",
            "points",
            "message",
            "standard",
            "standard_title",
            "peer",
            "transaction",
            "created_at",
        ]
        read_only_fields = fields

    def get_giver_name(self, r) -> str:
        user = r.giver
        return user.get_full_name() or user.username


class RecognitionInputSerializer(serializers.Serializer):
    receiver = serializers.PrimaryKeyRelatedField(queryset=Employee.objects)
    points = serializers.IntegerField(min_value=1)
    message = serializers.CharField(max_length=services.MESSAGE_MAX)
    standard = serializers.PrimaryKeyRelatedField(queryset=Standard.objects, required=False, allow_null=True)


class OptInSerializer(serializers.Serializer):
    opt_in = serializers.BooleanField()


# Foreign keys as plain ids: a generated ModelChoiceFilter would query at import, outside a tenant.
class RecognitionFilter(f.FilterSet):
    receiver = f.NumberFilter(field_name="receiver_id")
    giver = f.NumberFilter(field_name="giver_id")
    standard = f.NumberFilter(field_name="standard_id")
    peer = f.BooleanFilter()


class RecognitionViewSet(
    TenantViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = Recognition.objects
    serializer_class = RecognitionSerializer
    resource = "recognition"
    api_app = "incentives"
    filterset_class = RecognitionFilter

    def safely_get_queryset(self, queryset):
        return queryset.select_related("giver", "receiver", "standard").order_by("-created_at", "-pk")

    @extend_schema(request=RecognitionInputSerializer, responses={201: RecognitionSerializer})
    def create(self, request):
        membership = getattr(request._request, "membership", None)
        if membership is None:
            raise exceptions.PermissionDenied("Recognition is given by people, not API keys.")
        body = RecognitionInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        made = services.recognise(
            org=self.organization,
            actor=self.actor,
            membership=membership,
            receiver=data["receiver"],
            points=data["points"],
            message=data["message"],
            standard=data.get("standard"),
        )
        fresh = self.safely_get_queryset(Recognition.objects.filter(pk=made.pk)).get()
        return Response(RecognitionSerializer(fresh).data, status=status.HTTP_201_CREATED)


class LeaderboardViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    queryset = LeaderboardOptIn.objects
    resource = "recognition"
    api_app = "incentives"
    filter_backends: list = []
    pagination_class = None
    action_verbs = {"opt_in": "view"}

    def _location(self):
        membership = getattr(self.request._request, "membership", None)
        raw = self.request.query_params.get("location")
        if raw in (None, ""):
            employee_id = getattr(membership, "employee_id", None)
            location_id = (
                Employee.objects.filter(pk=employee_id).values_list("current_location_id", flat=True).first()
                if employee_id
                else None
            )
            # Callers without a store of their own (admins, integrators) name one with ?location=.
            return Location.objects.get(pk=location_id) if location_id is not None else None
        try:
            location_id = int(raw)
        except ValueError as exc:
            raise exceptions.ValidationError({"location": ["A whole number."]}) from exc
        places = Location.objects.all()
        if getattr(membership, "employee_id", None) and caller_role(self.request) == "employee":
            own = Employee.objects.filter(pk=membership.employee_id).values("current_location_id")
            places = places.filter(pk__in=own)
        else:
            places = scope_queryset(places, role=caller_role(self.request), membership=membership)
        found = places.filter(pk=location_id).first()
        if found is None:
            raise exceptions.NotFound({"location": ["No such location in your scope."]})
        return found

    @extend_schema(parameters=[OpenApiParameter("location", OpenApiTypes.INT)], responses=OpenApiTypes.OBJECT)
    def list(self, request):
        location = self._location()
        enabled = ledger.incentive_settings(org=self.organization).leaderboard_enabled
        if location is None:
            return Response({"enabled": enabled, "location": None, "location_name": "", "rows": []})
        rows = services.leaderboard(org=self.organization, location_id=location.pk) if enabled else []
        return Response(
            {"enabled": enabled, "location": location.pk, "location_name": location.name, "rows": rows}
        )

    @extend_schema(request=OptInSerializer, responses=OptInSerializer)
    @action(detail=False, methods=["post"], url_path="opt-in")
    def opt_in(self, request):
        membership = getattr(request._request, "membership", None)
        employee_id = getattr(membership, "employee_id", None)
        if employee_id is None:
            raise exceptions.ValidationError({"opt_in": ["Only employees appear on a leaderboard."]})
        body = OptInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        employee = Employee.objects.get(pk=employee_id)
        services.leaderboard_opt(
            org=self.organization, employee=employee, opt_in=body.validated_data["opt_in"]
        )
        return Response({"opt_in": body.validated_data["opt_in"]})


def register(router) -> None:
    router.register("recognitions", RecognitionViewSet)
    router.register("leaderboard", LeaderboardViewSet, basename="leaderboard")
