"""Alignment API: the location ranking with confidence and the drill-down (read, scoped).

- ``/api/v1/alignment/rankings/?metric=nps``: the caller's active locations with the figure, its
  95 % interval, n, rank (only with n at or above the organization's minimum sample), ties and
  overlapping intervals (``alignment.ranking`` documents the method).
- ``/api/v1/alignment/drilldown/?level=region&id=4``: one node of organization → region →
  location → team → employee, its breadcrumbs from where the caller's scope starts, and its
  children with key figures. Without ``level`` the caller's own starting node. A level above the
  caller's scope or an id outside it is a 404.

Both take the dashboards' filters (period / from / to / grain / channel / touchpoint / segment /
category; ``alignment.filters``) and read only the rollup and the alignment scores. Each is a
fixed number of queries, however many locations there are.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from alignment import drilldown, ranking
from alignment import scope_selectors as ssel
from alignment.filters import CATEGORIES, GRAINS, PERIODS, DashboardFilters, FilterError
from alignment.selectors import Caller
from cem.api.base import TenantViewSetMixin
from cem.api.permissions import caller_role
from cem.models import Location
from cem.params import id_of

# --- serializers --------------------------------------------------------------------------------


class RankingMetricSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="One of " + ", ".join(ranking.RANK_METRICS) + ".")
    label = serializers.CharField()
    range = serializers.ListField(child=serializers.FloatField(), help_text="[low, high] of the scale.")


class RankedLocationSerializer(serializers.Serializer):
    location_id = serializers.IntegerField()
    location = serializers.CharField()
    region_id = serializers.IntegerField(allow_null=True)
    region = serializers.CharField()
    value = serializers.FloatField(allow_null=True, help_text="The figure; null without data.")
    low = serializers.FloatField(allow_null=True, help_text="Lower bound of the 95 % interval.")
    high = serializers.FloatField(allow_null=True, help_text="Upper bound of the 95 % interval.")
    n = serializers.IntegerField(help_text="Sample size (answers, audits, evaluations, data points).")
    rank = serializers.IntegerField(allow_null=True, help_text="Null: not ranked (n below the minimum).")
    ranked = serializers.BooleanField()
    tied = serializers.BooleanField(help_text="Shares its rank: the same figure at one decimal.")
    overlaps = serializers.ListField(
        child=serializers.IntegerField(),
        help_text="Ranks whose 95 % interval overlaps this one: not distinguishable at 95 %.",
    )
    note = serializers.CharField(help_text='e.g. "not ranked — n below minimum (3 < 30)".')


@extend_schema_serializer(many=False)  # the list action answers one object, not an array
class LocationRankingSerializer(serializers.Serializer):
    metric = RankingMetricSerializer()
    confidence = serializers.FloatField()
    min_sample = serializers.IntegerField(help_text="The organization's minimum sample (default 30).")
    results = RankedLocationSerializer(many=True)


class DrillFigureSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)


class DrillLessonFiguresSerializer(serializers.Serializer):
    completed = serializers.IntegerField()
    on_time = serializers.IntegerField()
    late = serializers.IntegerField()
    on_time_rate = serializers.FloatField(allow_null=True)


class DrillPointsFiguresSerializer(serializers.Serializer):
    awards = serializers.IntegerField()
    total = serializers.IntegerField()


class DrillFiguresSerializer(serializers.Serializer):
    nps = DrillFigureSerializer()
    csat = DrillFigureSerializer()
    ces = DrillFigureSerializer()
    fcr = DrillFigureSerializer()
    audit = DrillFigureSerializer()
    monitoring = DrillFigureSerializer()
    responses = serializers.IntegerField()
    lessons = DrillLessonFiguresSerializer()
    points = DrillPointsFiguresSerializer()


class DrillNodeScoreSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    period = serializers.CharField()
    period_start = serializers.DateField()
    score_id = serializers.IntegerField()


class DrillNodeSerializer(serializers.Serializer):
    level = serializers.CharField(help_text="One of " + ", ".join(drilldown.LEVELS) + ".")
    id = serializers.IntegerField(help_text="0 for the organization.")
    name = serializers.CharField()
    kind = serializers.CharField(help_text="A location's kind or an employee's role; else empty.")
    figures = DrillFiguresSerializer()
    alignment = DrillNodeScoreSerializer(allow_null=True, help_text="The latest overall alignment score.")


class DrillCrumbSerializer(serializers.Serializer):
    level = serializers.CharField()
    id = serializers.IntegerField()
    name = serializers.CharField()


@extend_schema_serializer(many=False)  # the list action answers one object, not an array
class DrilldownSerializer(serializers.Serializer):
    level = serializers.CharField()
    id = serializers.IntegerField()
    node = DrillNodeSerializer()
    breadcrumbs = DrillCrumbSerializer(many=True)
    child_level = serializers.CharField(allow_null=True)
    children = DrillNodeSerializer(many=True)


# --- parameters ---------------------------------------------------------------------------------

FILTER_PARAMS = [
    OpenApiParameter(
        "period",
        OpenApiTypes.STR,
        enum=[p for p in PERIODS if p != "custom"],
        description="Days ending today (organization time zone) or all; default 90.",
    ),
    OpenApiParameter("from", OpenApiTypes.DATE, description="First local day (overrides period)."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last local day, included."),
    OpenApiParameter("grain", OpenApiTypes.STR, enum=list(GRAINS)),
    OpenApiParameter("channel", OpenApiTypes.INT),
    OpenApiParameter("touchpoint", OpenApiTypes.INT),
    OpenApiParameter("segment", OpenApiTypes.INT),
    OpenApiParameter("category", OpenApiTypes.STR, enum=list(CATEGORIES)),
]


def _filters(request, organization) -> DashboardFilters:
    try:
        return DashboardFilters.from_params(request.query_params, organization)
    except FilterError as exc:
        raise ValidationError({exc.param: [exc.message]}) from None


def _id(request, name: str) -> int | None:
    raw = (request.query_params.get(name) or "").strip()
    if not raw:
        return None
    value = id_of(raw)
    if value is None:
        raise ValidationError({name: ["Expected an id (digits)."]})
    return value


class _OverviewViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    queryset = Location.objects  # the cross-tenant sweep needs a model; reads go through selectors
    reads_from_replica = True
    resource = "alignment"
    api_app = "alignment"
    pagination_class = None

    def caller(self) -> Caller:
        return Caller(role=caller_role(self.request), membership=self.request._request.membership)


class RankingViewSet(_OverviewViewSet):
    """Locations ranked on one figure with 95 % intervals; scoped to the caller."""

    serializer_class = LocationRankingSerializer

    @extend_schema(
        summary="Ranking of locations with confidence",
        description=(
            "Per location in the caller's scope: the figure over the filters, its 95 % interval "
            "(NPS: trinomial variance with one pseudo-answer per group; CSAT/FCR: Wilson; CES, "
            "audit, monitoring: Student t on the mean; alignment: the stored score's interval) "
            "and n. Only locations with n at or above the organization's minimum sample "
            "(min_sample, default 30) are ranked; the others are listed after them with "
            'rank null and note "not ranked — n below minimum". Equal figures at one decimal '
            "share a rank (tied); `overlaps` lists ranks whose intervals overlap."
        ),
        parameters=[
            OpenApiParameter(
                "metric",
                OpenApiTypes.STR,
                enum=list(ranking.RANK_METRICS),
                description=f"Default {ranking.DEFAULT_METRIC}.",
            ),
            OpenApiParameter("region", OpenApiTypes.INT, description="Only this region's locations."),
            *FILTER_PARAMS,
        ],
        responses={
            200: LocationRankingSerializer,
            400: OpenApiResponse(description="The parameter at fault"),
        },
    )
    def list(self, request):
        filters = _filters(request, self.organization)
        metric = (request.query_params.get("metric") or "").strip() or ranking.DEFAULT_METRIC
        if metric not in ranking.RANK_METRICS:
            raise ValidationError({"metric": [f"One of {', '.join(ranking.RANK_METRICS)}."]})
        result = ssel.location_ranking(
            self.caller(), self.organization, filters, metric, region_id=_id(request, "region")
        )
        return Response(LocationRankingSerializer(result.as_dict()).data)


class DrilldownViewSet(_OverviewViewSet):
    """One drill-down node with its breadcrumbs and children; scoped to the caller."""

    serializer_class = DrilldownSerializer

    @extend_schema(
        summary="Drill-down: organization → region → location → team → employee",
        description=(
            "The node's key figures (NPS, CSAT, CES, FCR with n and 95 % interval; audit and "
            "monitoring means; responses; lessons with the on-time rate; points) and its "
            "latest overall alignment score, its breadcrumbs from where the caller's scope "
            "starts, and its children with the same figures. Children: organization → regions, "
            "region → locations, location → teams then employees with no team, team → its "
            "members (current team). Without `level` the caller's starting node (organization, "
            "their region, their store, or themselves). A level above the caller's scope, or "
            "an id outside it or in another organization, is a 404."
        ),
        parameters=[
            OpenApiParameter("level", OpenApiTypes.STR, enum=list(drilldown.LEVELS)),
            OpenApiParameter("id", OpenApiTypes.INT, description="The node's id (ignored for organization)."),
            *FILTER_PARAMS,
        ],
        responses={
            200: DrilldownSerializer,
            400: OpenApiResponse(description="The parameter at fault"),
            404: OpenApiResponse(description="Outside the caller's scope"),
        },
    )
    def list(self, request):
        filters = _filters(request, self.organization)
        caller = self.caller()
        level = (request.query_params.get("level") or "").strip()
        if not level:
            level, pk = drilldown.start(caller, self.organization)
        elif level not in drilldown.LEVELS:
            raise ValidationError({"level": [f"One of {', '.join(drilldown.LEVELS)}."]})
        else:
            pk = _id(request, "id")
            if pk is None and level != "organization":
                raise ValidationError({"id": ["Required for this level."]})
        result = drilldown.drill(caller, self.organization, filters, level, pk or 0)
        return Response(DrilldownSerializer(result.as_dict()).data)


def register(router) -> None:
    router.register("alignment/rankings", RankingViewSet, basename="alignment-rankings")
    router.register("alignment/drilldown", DrilldownViewSet, basename="alignment-drilldown")
