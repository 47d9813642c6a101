"""Manager bonus periods (``/api/v1/bonus-periods/``), their scorecard KPIs (``/api/v1/bonus-kpis/``)
and participants with their results (``/api/v1/bonus-participants/``).

Org admins define periods, KPIs and participants (all writes through incentives.bonus), ``close``
a period once it has ended, ``approve`` it and ``export`` the payouts as CSV for payroll.
``preview`` is the live scorecard of every participant the caller may see. Managers see only
the periods they take part in and only their own participation, result and scorecard;
executives see everything, read-only. Supervisors (employees) likewise see only their own
participation; an employee who takes part in no period sees nothing.
"""

import django_filters as f
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from cem.api.base import TenantModelViewSet
from cem.api.permissions import caller_role
from cem.models import Membership
from cem.permissions import role_can
from cem.scoping import scope_level
from incentives import bonus
from incentives.models import BonusKpi, BonusParticipant, BonusPeriod, BonusResult


def sees_everyone(request) -> bool:
    """Admins and organization-wide readers (executives) see every participant; managers themselves."""
    role = caller_role(request)
    return role_can(role, "bonus.change") or scope_level(role) == "organization"


class BonusKpiSerializer(serializers.ModelSerializer):
    label = serializers.CharField(source="get_kpi_display", read_only=True)

    class Meta:
        model = BonusKpi
        fields = ["id", "period", "kpi", "label", "weight", "target", "floor", "min_sample"]


class BonusKpiNestedSerializer(BonusKpiSerializer):
    class Meta(BonusKpiSerializer.Meta):
        read_only_fields = BonusKpiSerializer.Meta.fields


class BonusPeriodSerializer(serializers.ModelSerializer):
    kpis = BonusKpiNestedSerializer(many=True, read_only=True)
    participant_count = serializers.IntegerField(read_only=True, default=None)

    class Meta:
        model = BonusPeriod
        fields = [
            "id",
            "name",
            "starts_on",
            "ends_on",
            "status",
            "payout_threshold",
            "payout_cap_percent",
            "points_per_score_point",
            "kpis",
            "participant_count",
            "closed_at",
            "approved_by",
            "approved_at",
            "created_at",
        ]
        read_only_fields = ["status", "closed_at", "approved_by", "approved_at", "created_at"]

    def validate(self, attrs):
        starts = attrs.get("starts_on", getattr(self.instance, "starts_on", None))
        ends = attrs.get("ends_on", getattr(self.instance, "ends_on", None))
        if starts and ends and ends < starts:
            raise serializers.ValidationError({"ends_on": "The period must end on or after its first day."})
        return attrs


class BonusResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = BonusResult
        fields = [
            "score",
            "payout_percent",
            "payout_amount",
            "points",
            "kpi_scores",
            "computed_at",
            "exported_at",
        ]
        read_only_fields = fields


class BonusParticipantSerializer(serializers.ModelSerializer):
    membership = serializers.PrimaryKeyRelatedField(
        queryset=Membership.objects, write_only=True, required=False
    )
    result = serializers.SerializerMethodField()

    class Meta:
        model = BonusParticipant
        fields = [
            "id",
            "period",
            "membership",
            "user",
            "employee",
            "location",
            "region",
            "team",
            "target_bonus",
            "currency",
            "result",
        ]
        read_only_fields = ["user", "employee", "location", "region", "team"]
        extra_kwargs = {"currency": {"required": False}}

    def get_result(self, obj) -> dict | None:
        try:
            result = obj.result
        except BonusResult.DoesNotExist:
            return None
        return BonusResultSerializer(result).data

    def validate(self, attrs):
        if self.instance is None and attrs.get("membership") is None:
            raise serializers.ValidationError({"membership": "Name the manager's membership."})
        if self.instance is not None and "period" in attrs and attrs["period"].pk != self.instance.period_id:
            raise serializers.ValidationError({"period": "A participant cannot move to another period."})
        return attrs


class AddManagersSerializer(serializers.Serializer):
    target_bonus = serializers.DecimalField(max_digits=10, decimal_places=2, min_value=0)
    currency = serializers.CharField(max_length=3, required=False, allow_blank=True)


class BonusPeriodFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=BonusPeriod.Status.choices)


class BonusKpiFilter(f.FilterSet):
    period = f.NumberFilter()


class BonusParticipantFilter(f.FilterSet):
    period = f.NumberFilter()
    user = f.NumberFilter()


def _csv_response(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


class BonusPeriodViewSet(TenantModelViewSet):
    """Bonus periods with their scorecard (nested KPIs). ``close`` computes the payouts (once the
    period has ended), ``approve`` (org admins) fixes them, ``export`` downloads the payroll CSV
    and marks the results exported; ``preview`` is the live scorecard of each participant."""

    queryset = BonusPeriod.objects
    serializer_class = BonusPeriodSerializer
    resource = "bonus"
    api_app = "incentives"
    filterset_class = BonusPeriodFilter
    action_verbs = {"close": "change", "approve": "change", "export": "change", "add_managers": "change"}

    def safely_get_queryset(self, queryset):
        from django.db.models import Count, Prefetch

        queryset = queryset.annotate(participant_count=Count("participants", distinct=True))
        if not sees_everyone(self.request):
            queryset = queryset.filter(participants__user=self.request.user)
        return queryset.prefetch_related(Prefetch("kpis", queryset=BonusKpi.objects.order_by("pk"))).order_by(
            "-starts_on", "-pk"
        )

    def perform_create(self, serializer):
        serializer.instance = bonus.period_create(
            organization=self.organization, actor=self.actor, data=serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = bonus.period_update(
            organization=self.organization,
            actor=self.actor,
            period=serializer.instance,
            data=serializer.validated_data,
        )

    def perform_destroy(self, instance):
        bonus.period_delete(organization=self.organization, actor=self.actor, period=instance)

    def _participants(self, period):
        qs = bonus.participants_of(period)
        if not sees_everyone(self.request):
            qs = qs.filter(user=self.request.user)
        return qs

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def preview(self, request, pk=None):
        """Live scorecards (closed periods: the stored results): per KPI the value, n, normalised
        score, weight after renormalisation and status; the score, payout and the KPI holding it
        back most."""
        period = self.get_object()
        participants = list(self._participants(period))
        if period.status == BonusPeriod.Status.OPEN:
            cards = [c.as_dict() for c in bonus.scorecards(period=period, participants=participants)]
        else:
            results = {r.participant_id: r for r in BonusResult.objects.filter(participant__in=participants)}
            cards = [bonus.stored_scorecard(results[p.pk]) for p in participants if p.pk in results]
        return Response({"period": period.pk, "status": period.status, "scorecards": cards})

    @extend_schema(request=None, responses=BonusPeriodSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        period = bonus.period_close(
            organization=self.organization, actor=self.actor, period=self.get_object()
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=period.pk)).data)

    @extend_schema(request=None, responses=BonusPeriodSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        period = bonus.period_approve(
            organization=self.organization, actor=self.actor, period=self.get_object()
        )
        return Response(self.get_serializer(self.get_queryset().get(pk=period.pk)).data)

    @extend_schema(
        request=None,
        responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="CSV, one row per manager")},
    )
    @action(detail=True, methods=["post"])
    def export(self, request, pk=None):
        """Payroll CSV of an approved period: manager, employee id, scope, target bonus, score,
        payout %, amount, currency, points. Marks the results exported."""
        period = self.get_object()
        text = bonus.export_csv(organization=self.organization, actor=self.actor, period=period)
        return _csv_response(text, f"bonus-{period.pk}.csv")

    @extend_schema(request=AddManagersSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"], url_path="add-managers", url_name="add-managers")
    def add_managers(self, request, pk=None):
        """Every active store and regional manager not yet in the period joins it."""
        period = self.get_object()
        body = AddManagersSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        added = bonus.participants_add_managers(
            organization=self.organization,
            actor=self.actor,
            period=period,
            target_bonus=body.validated_data["target_bonus"],
            currency=body.validated_data.get("currency", ""),
        )
        return Response({"added": [p.pk for p in added]})


class BonusKpiViewSet(TenantModelViewSet):
    """The KPIs of a period's scorecard: weight, target (scores 100), floor (scores 0), minimum
    sample. Changes only while the period is open."""

    queryset = BonusKpi.objects
    serializer_class = BonusKpiSerializer
    resource = "bonus"
    api_app = "incentives"
    filterset_class = BonusKpiFilter

    def safely_get_queryset(self, queryset):
        if not sees_everyone(self.request):
            queryset = queryset.filter(period__participants__user=self.request.user)
        return queryset.order_by("period_id", "pk")

    def perform_create(self, serializer):
        serializer.instance = bonus.kpi_create(
            organization=self.organization, actor=self.actor, data=serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = bonus.kpi_update(
            organization=self.organization,
            actor=self.actor,
            kpi=serializer.instance,
            data=serializer.validated_data,
        )

    def perform_destroy(self, instance):
        bonus.kpi_delete(organization=self.organization, actor=self.actor, kpi=instance)


class BonusParticipantViewSet(TenantModelViewSet):
    """Managers in a period (from their membership: store managers → their location, regional
    managers → their region, supervisors → their team) with a target bonus and currency, and
    their result once closed. Managers and supervisors see only themselves; ``scorecard`` is the
    live (or stored) scorecard."""

    queryset = BonusParticipant.objects
    serializer_class = BonusParticipantSerializer
    resource = "bonus"
    api_app = "incentives"
    filterset_class = BonusParticipantFilter

    def safely_get_queryset(self, queryset):
        if not sees_everyone(self.request):
            queryset = queryset.filter(user=self.request.user)
        return queryset.select_related("result").order_by("period_id", "pk")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = bonus.participant_add(
            organization=self.organization,
            actor=self.actor,
            period=data["period"],
            membership=data["membership"],
            target_bonus=data["target_bonus"],
            currency=data.get("currency", ""),
        )

    def perform_update(self, serializer):
        serializer.instance = bonus.participant_update(
            organization=self.organization,
            actor=self.actor,
            participant=serializer.instance,
            data=serializer.validated_data,
        )

    def perform_destroy(self, instance):
        bonus.participant_remove(organization=self.organization, actor=self.actor, participant=instance)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def scorecard(self, request, pk=None):
        participant = self.get_object()
        period = participant.period
        if period.status == BonusPeriod.Status.OPEN:
            card = bonus.scorecards(period=period, participants=[participant])[0].as_dict()
        else:
            try:
                card = bonus.stored_scorecard(participant.result)
            except BonusResult.DoesNotExist:
                card = None
        return Response({"period": period.pk, "status": period.status, "scorecard": card})


def register(router) -> None:
    router.register("bonus-periods", BonusPeriodViewSet, basename="bonusperiod")
    router.register("bonus-kpis", BonusKpiViewSet, basename="bonuskpi")
    router.register("bonus-participants", BonusParticipantViewSet, basename="bonusparticipant")
