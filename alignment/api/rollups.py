"""Alignment API: the rollup (read) and the store dashboard's data.

- ``/api/v1/rollups/``: rollup rows (organization x local day x location x employee x standard x
  channel x touchpoint x segment x category x measure, with n / total / sumsq / top / bottom),
  filtered, cursor-paginated, scoped to the caller (store managers: their store; employees: their
  own rows).
- ``/api/v1/rollups/summary/?measure=nps,csat&group_by=week,location``: summed values and the
  figure per group (NPS/CSAT/CES/FCR exactly as the feedback app defines them).
- ``/api/v1/alignment/dashboard/stores/<id>/``: the store dashboard's panels with their URLs;
  ``/api/v1/alignment/dashboard/stores/<id>/<panel>/``: one panel's rows — the same rows as the
  page's panel and its CSV (``alignment.pages.dashboards.STORE_PANELS``). Each is one or two
  aggregate queries over the rollup's (organization, location, measure, day) index.

Every filter is the dashboards' (``alignment.filters``): period / from / to / grain / channel /
touchpoint / segment / category; a malformed one is a 400 naming it.
"""

from __future__ import annotations

import django_filters as f
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.reverse import reverse

from alignment import panel_cache
from alignment import selectors as sel
from alignment.filters import CATEGORIES, GRAINS, PERIODS, DashboardFilters, FilterError
from alignment.models import Measure, Rollup
from cem.api.base import TenantReadOnlyViewSet, TenantViewSetMixin
from cem.api.pagination import LargeListPagination
from cem.api.permissions import caller_role
from cem.models import Location
from cem.params import id_of
from cem.permissions import role_can
from cem.scoping import scope_queryset

# --- serializers -----------------------------------------------------------------------------------


class RollupSerializer(serializers.ModelSerializer):
    class Meta:
        model = Rollup
        fields = [
            "id",
            "day",
            "location",
            "employee",
            "standard",
            "channel",
            "touchpoint",
            "segment",
            "category",
            "measure",
            "n",
            "total",
            "sumsq",
            "top",
            "bottom",
            "updated_at",
        ]
        read_only_fields = fields
        # Read-only fields lose the model's blank=True: "" (not set) is a value they return.
        extra_kwargs = {"category": {"allow_blank": True}}


class SummaryRowSerializer(serializers.Serializer):
    measure = serializers.ChoiceField(choices=Measure.choices)
    n = serializers.IntegerField()
    total = serializers.DecimalField(max_digits=24, decimal_places=4)
    top = serializers.IntegerField()
    bottom = serializers.IntegerField()
    value = serializers.FloatField(
        allow_null=True,
        help_text="NPS/CSAT/FCR from counts, CES and scores the mean, counts for responses/"
        "interactions/lessons, the points total for points; null when n is 0.",
    )


class SummarySerializer(serializers.Serializer):
    group_by = serializers.ListField(child=serializers.CharField())
    results = serializers.ListField(
        child=serializers.DictField(),
        help_text="One object per group and measure: the group keys (ids, category, or the "
        "period start date), then measure, n, total, top, bottom, value.",
    )


class PanelLinkSerializer(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    url = serializers.CharField()


class StoreSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    code = serializers.CharField()
    name = serializers.CharField()
    region = serializers.IntegerField()
    panels = PanelLinkSerializer(many=True)


class PanelDataSerializer(serializers.Serializer):
    panel = serializers.CharField()
    title = serializers.CharField()
    location = serializers.IntegerField()
    filters = serializers.DictField(help_text="The filter state applied (non-default parameters).")
    columns = serializers.ListField(child=serializers.CharField(), help_text="The CSV columns, in order.")
    rows = serializers.ListField(child=serializers.DictField(), help_text="The panel's rows.")


# --- filters ---------------------------------------------------------------------------------------


class RollupFilter(f.FilterSet):
    # Plain filters: a model-derived one would query tenant tables at import time.
    measure = f.ChoiceFilter(choices=Measure.choices)
    location = f.NumberFilter()
    employee = f.NumberFilter()
    standard = f.NumberFilter()
    channel = f.NumberFilter()
    touchpoint = f.NumberFilter()
    segment = f.NumberFilter()
    category = f.ChoiceFilter(choices=list(CATEGORIES.items()))
    # "from" is a Python keyword, so the two bounds are declared through the class namespace.
    locals()["from"] = f.DateFilter(field_name="day", lookup_expr="gte", help_text="First day, included.")
    locals()["to"] = f.DateFilter(field_name="day", lookup_expr="lte", help_text="Last day, included.")


_FILTER_PARAMS = [
    OpenApiParameter(
        "period",
        OpenApiTypes.STR,
        enum=[p for p in PERIODS if p != "custom"],
        description="Days ending today (organization time zone) or all; default 90.",
    ),
    OpenApiParameter("from", OpenApiTypes.DATE, description="First local day (overrides period)."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last local day, included."),
    OpenApiParameter("grain", OpenApiTypes.STR, enum=list(GRAINS), description="Trend bucket; default week."),
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


def _caller(request) -> sel.Caller:
    return sel.Caller(role=caller_role(request), membership=request._request.membership)


def _ids_param(request, name: str) -> int | None:
    raw = (request.query_params.get(name) or "").strip()
    if not raw:
        return None
    value = id_of(raw)
    if value is None:
        raise ValidationError({name: ["Expected an id (digits)."]})
    return value


# --- views -----------------------------------------------------------------------------------------


class RollupViewSet(TenantReadOnlyViewSet):
    """Rollup rows, newest first; ``summary`` sums them per group."""

    queryset = Rollup.objects
    serializer_class = RollupSerializer
    reads_from_replica = True
    resource = "alignment"
    api_app = "alignment"
    filterset_class = RollupFilter
    pagination_class = LargeListPagination

    @extend_schema(
        summary="Rollup sums and figures per group",
        description=(
            "Sums n / total / top / bottom of the rollup per `group_by` keys and measure, with "
            "the figure: NPS = % promoters - % detractors, CSAT = % 4-5, FCR = % yes (from "
            "counts, as the feedback app), CES and 0-100 scores the mean, points the total. "
            "Dimension filters apply to the measures that carry them (audits have no segment; "
            "lessons and points no channel/touchpoint/segment/category). Scoped to the caller."
        ),
        parameters=[
            OpenApiParameter(
                "measure",
                OpenApiTypes.STR,
                description="Comma-separated: " + ", ".join(Measure.values) + "; default all.",
            ),
            OpenApiParameter(
                "group_by",
                OpenApiTypes.STR,
                description="Comma-separated: " + ", ".join(sel.GROUPS) + " (at most one period).",
            ),
            OpenApiParameter("location", OpenApiTypes.INT),
            OpenApiParameter("region", OpenApiTypes.INT),
            OpenApiParameter("employee", OpenApiTypes.INT),
            *_FILTER_PARAMS,
        ],
        responses={200: SummarySerializer, 400: OpenApiResponse(description="The parameter at fault")},
    )
    @action(detail=False, methods=["get"], filterset_class=None, pagination_class=None)
    def summary(self, request):
        filters = _filters(request, self.organization)
        raw = request.query_params.get("measure") or ",".join(Measure.values)
        measures = [m.strip() for m in raw.split(",") if m.strip()]
        if not measures or any(m not in Measure.values for m in measures):
            raise ValidationError({"measure": [f"Comma-separated, of: {', '.join(Measure.values)}."]})
        group_by = [g.strip() for g in (request.query_params.get("group_by") or "").split(",") if g.strip()]
        if any(g not in sel.GROUPS for g in group_by) or len(set(group_by)) != len(group_by):
            raise ValidationError({"group_by": [f"Comma-separated, of: {', '.join(sel.GROUPS)}."]})
        if sum(g in GRAINS for g in group_by) > 1:
            raise ValidationError({"group_by": [f"At most one of {', '.join(GRAINS)}."]})
        subject = sel.Subject(
            location=_ids_param(request, "location"),
            region=_ids_param(request, "region"),
            employee=_ids_param(request, "employee"),
        )
        rows = sel.summary(_caller(request), filters, subject, measures=measures, group_by=group_by)
        return Response({"group_by": group_by, "results": rows})


def _store_panels():
    # The page module owns the panel definitions; imported late so the API loads without pages.
    from alignment.pages.dashboards import STORE_PANELS

    return STORE_PANELS


class StoreDashboardViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    """The store dashboard's data: one endpoint per panel, the same rows as the page shows.

    The location must be in the caller's scope (store managers: theirs; regional managers:
    their region's), else 404."""

    queryset = Location.objects
    resource = "alignment"
    api_app = "alignment"
    pagination_class = None
    serializer_class = StoreSerializer
    reads_from_replica = True

    def safely_get_queryset(self, queryset):
        queryset = queryset.select_related("region")
        if self.action == "panel":
            # The panel cache's keys, read with the store (alignment.panel_cache): a round trip less.
            queryset = queryset.annotate(**panel_cache.generations())
        return queryset

    def _permitted(self):
        role = caller_role(self.request)
        return [s for s in _store_panels() if not s.action or role_can(role, s.action)]

    # What a panel's ``rows(view)`` reads, mirroring the page's DashboardPage.
    def scoped(self, queryset):
        return scope_queryset(
            queryset, role=caller_role(self.request), membership=self.request._request.membership
        )

    def _store(self, location) -> dict:
        base = reverse("alignment-dashboard-stores-detail", kwargs={"pk": location.pk}, request=self.request)
        return {
            "id": location.pk,
            "code": location.code,
            "name": location.name,
            "region": location.region_id,
            "panels": [{"key": s.key, "title": s.title, "url": f"{base}{s.key}/"} for s in self._permitted()],
        }

    @extend_schema(
        summary="The stores whose dashboard the caller may open", responses={200: StoreSerializer(many=True)}
    )
    def list(self, request):
        stores = self.get_queryset().filter(active=True).order_by("name")
        return Response([self._store(location) for location in stores])

    @extend_schema(summary="A store's dashboard panels", responses={200: StoreSerializer})
    def retrieve(self, request, pk=None):
        return Response(self._store(self.get_object()))

    @extend_schema(
        summary="One panel of a store's dashboard (the page's rows, as JSON)",
        operation_id="alignment_dashboard_stores_panel",
        description=(
            "Panels: kpis, nps (NPS/CSAT/CES/FCR per period), audit (audit and monitoring "
            "scores per period), heatmap (standard x week points per source), matrix "
            "(impression x execution per standard with its quadrant), cases (open cases), "
            "training, points, scores (alignment scores), comparison (store vs region vs "
            "company), categories (interactions per touchpoint and category)."
        ),
        parameters=[
            OpenApiParameter("panel", OpenApiTypes.STR, OpenApiParameter.PATH, description="The panel key."),
            *_FILTER_PARAMS,
        ],
        responses={200: PanelDataSerializer, 400: OpenApiResponse(description="The parameter at fault")},
    )
    @action(detail=True, methods=["get"], url_path=r"(?P<panel>[a-z_]+)", url_name="panel")
    def panel(self, request, pk=None, panel=None):
        # Before anything reads the database (alignment.panel_cache.replay_watch).
        seen = panel_cache.replay_watch(self.organization.pk, id_of(pk or ""), panel)
        self.filters = _filters(request, self.organization)
        self.panel_key = panel
        self.location = self.get_object()
        self.caller = _caller(request)
        self.subject = sel.Subject(location=self.location.pk)
        spec = next((s for s in self._permitted() if s.key == panel), None)
        if spec is None:
            raise NotFound("No such panel.")
        rows = panel_cache.rows(spec, self)
        panel_cache.replay_offer(request, self, seen)
        return Response(
            {
                "panel": spec.key,
                "title": spec.title,
                "location": self.location.pk,
                "filters": self.filters.params(),
                "columns": [key for key, _ in spec.columns],
                "rows": rows,
            }
        )


def register(router) -> None:
    router.register("rollups", RollupViewSet, basename="rollups")
    router.register(
        "alignment/dashboard/stores", StoreDashboardViewSet, basename="alignment-dashboard-stores"
    )
