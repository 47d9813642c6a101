"""Business data API: business metrics (``/api/v1/business-metrics/``), CRM transactions
(``/api/v1/crm-transactions/``), segment rules (``/api/v1/segment-rules/``, with ``apply``) and the
experience x CRM comparison (``/api/v1/customer-comparisons/``).

Imports go through ``alignment.business`` (the page's CSV upload calls the same services): one
row by POST, or up to 10,000 by ``bulk/`` as a JSON array, a ``text/csv`` body or a multipart
``file``; 413 above the limit; per-row results naming the row and the fields at fault; idempotent
on the natural key, so a retried import changes nothing. Reads are scoped like every list (a store
manager sees their store's metrics and transactions). Writes need ``business_data.add`` /
``.change`` (org admins, integrators with an alignment:write key).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.response import Response

from alignment import business
from alignment.business_filters import BusinessMetricFilter, CustomerTransactionFilter
from alignment.customer_selectors import ComparisonQueryError, customer_comparison, parse_comparison_query
from alignment.models import BusinessMetric, CustomerTransaction, PeriodKind
from cem.api.base import TenantReadOnlyViewSet, TenantViewSetMixin
from cem.api.parsers import JSONParser
from cem.api.permissions import caller_role
from cem.models import Segment, Standard
from feedback.selectors import Caller

# --- serializers ---------------------------------------------------------------------------------


class BusinessMetricSerializer(serializers.ModelSerializer):
    location_code = serializers.CharField(source="location.code", read_only=True)

    class Meta:
        model = BusinessMetric
        fields = [
            "id",
            "location",
            "location_code",
            "period",
            "period_start",
            "kind",
            "value",
            "source",
            "updated_at",
        ]
        read_only_fields = fields


class BusinessMetricInputSerializer(serializers.Serializer):
    """Documents one metric row (POST and bulk); validation is alignment.business's."""

    location = serializers.CharField(required=False, help_text="Location code (or give location_id).")
    location_id = serializers.IntegerField(required=False)
    period = serializers.ChoiceField(choices=PeriodKind.choices, required=False, help_text="Default month.")
    period_start = serializers.DateField(
        help_text="First day of the period: a Monday (week), the 1st (month), 1 Jan/Apr/Jul/Oct (quarter)."
    )
    kind = serializers.ChoiceField(choices=BusinessMetric.Kind.choices)
    value = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0)
    source = serializers.CharField(max_length=20, required=False, help_text="Default api.")


class CustomerTransactionSerializer(serializers.ModelSerializer):
    customer_external_id = serializers.CharField(source="customer.external_id", read_only=True)
    location_code = serializers.CharField(
        source="location.code", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = CustomerTransaction
        fields = [
            "id",
            "external_id",
            "customer",
            "customer_external_id",
            "location",
            "location_code",
            "occurred_on",
            "amount",
            "created_at",
        ]
        read_only_fields = fields


class CustomerTransactionInputSerializer(serializers.Serializer):
    """Documents one CRM transaction row (POST and bulk); validation is alignment.business's."""

    external_id = serializers.CharField(
        max_length=100, help_text="Unique per organization; re-sending updates."
    )
    customer = serializers.CharField(
        max_length=64,
        help_text="Customer external id; an unknown one is created (no contact data, no consent).",
    )
    occurred_on = serializers.DateField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    location = serializers.CharField(required=False, help_text="Location code (or give location_id).")
    location_id = serializers.IntegerField(required=False)


class ImportRowSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="0-based position in the array / data row of the CSV file.")
    status = serializers.ChoiceField(choices=["created", "updated", "unchanged", "duplicate", "error"])
    id = serializers.IntegerField(required=False)
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class ImportSummarySerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    error = serializers.IntegerField()
    customers_created = serializers.IntegerField(required=False, help_text="CRM imports only.")
    results = ImportRowSerializer(many=True)


class SegmentRuleSerializer(serializers.ModelSerializer):
    members = serializers.IntegerField(read_only=True, help_text="Customers in the segment now.")
    precedence = serializers.SerializerMethodField(
        help_text="Position among rule segments: a customer gets the first one they match (1 = first)."
    )

    class Meta:
        model = Segment
        fields = ["id", "name", "description", "rule", "precedence", "members"]
        read_only_fields = ["name", "description"]

    def get_precedence(self, obj) -> int | None:
        return self.context.get("precedence", {}).get(obj.pk)


class SegmentApplySerializer(serializers.Serializer):
    segment = serializers.IntegerField()
    members = serializers.IntegerField()
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    changed = serializers.IntegerField()
    skipped_segments = serializers.ListField(child=serializers.IntegerField())


class ComparisonSideSerializer(serializers.Serializer):
    n = serializers.IntegerField()
    mean = serializers.FloatField(allow_null=True, help_text="0-100.")
    native_mean = serializers.FloatField(required=False, help_text="On the answers' one scale, when shared.")
    scale_low = serializers.IntegerField(required=False)
    scale_high = serializers.IntegerField(required=False)
    text = serializers.CharField()


class ComparisonDifferenceSerializer(serializers.Serializer):
    points = serializers.FloatField(allow_null=True, help_text="Group minus rest, 0-100 points.")
    low = serializers.FloatField(allow_null=True, help_text="95 % interval (Welch).")
    high = serializers.FloatField(allow_null=True)


class ComparisonStandardSerializer(serializers.Serializer):
    standard = serializers.IntegerField()
    code = serializers.CharField()
    title = serializers.CharField()
    group = ComparisonSideSerializer()
    rest = ComparisonSideSerializer()
    unmatched = serializers.DictField(child=serializers.IntegerField())
    difference = ComparisonDifferenceSerializer()
    enough_data = serializers.BooleanField()
    text = serializers.CharField()


@extend_schema_serializer(many=False)  # the list action answers one object, not an array
class ComparisonSerializer(serializers.Serializer):
    split = serializers.ChoiceField(choices=["amount", "segment"])
    group_label = serializers.CharField()
    rest_label = serializers.CharField()
    to = serializers.DateField()
    min_sample = serializers.IntegerField()
    standards = ComparisonStandardSerializer(many=True)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateField()  # a Python keyword
        return fields


# --- parsers and helpers ----------------------------------------------------------------------------


class MetricsCSVParser(BaseParser):
    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        return business.metric_rows_from_csv(stream.read())


class TransactionsCSVParser(BaseParser):
    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        return business.transaction_rows_from_csv(stream.read())


def _bulk_rows(request, from_csv) -> list | Response:
    if "file" in request.FILES:
        rows = from_csv(request.FILES["file"].read())
    elif isinstance(request.data, list):
        rows = request.data
    else:
        raise ValidationError({"non_field_errors": ["Send a JSON array of rows or a CSV file."]})
    limit = settings.BULK_INGEST_MAX_ROWS
    if len(rows) > limit:
        return Response(
            {"detail": f"At most {limit} rows per call; got {len(rows)}.", "max_rows": limit},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return rows


def _one_row(request) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
    return request.data


def _bulk_schema(row_serializer):
    return extend_schema(
        request={
            "application/json": row_serializer(many=True),
            "text/csv": {"type": "string", "format": "binary"},
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            },
        },
        responses={200: ImportSummarySerializer, 413: OpenApiResponse(description="More than 10,000 rows")},
    )


# --- viewsets -------------------------------------------------------------------------------------------


class BusinessMetricViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """Business figures per location and period. POST one row or ``bulk/`` up to 10,000; the key
    (location, period, period_start, kind) makes both an upsert: unchanged rows are left alone,
    changed values replace the stored ones."""

    queryset = BusinessMetric.objects
    serializer_class = BusinessMetricSerializer
    resource = "business_data"
    api_app = "alignment"
    filterset_class = BusinessMetricFilter
    action_verbs = {"bulk": "add"}

    def safely_get_queryset(self, queryset):
        return queryset.select_related("location").order_by(
            "-period_start", "location__code", "kind", "period"
        )

    @extend_schema(
        request=BusinessMetricInputSerializer,
        responses={
            201: BusinessMetricSerializer,
            200: BusinessMetricSerializer,
            400: OpenApiResponse(description="Field errors"),
        },
    )
    def create(self, request, *args, **kwargs):
        """Store one figure: 201 when new, 200 when it updated or matched the stored one."""
        [result] = business.business_metrics_import(
            organization=self.organization, actor=self.actor, rows=[_one_row(request)]
        )
        if result.status == "error":
            return Response(result.errors, status=status.HTTP_400_BAD_REQUEST)
        stored = self.safely_get_queryset(BusinessMetric.objects.all()).get(pk=result.id)
        code = status.HTTP_201_CREATED if result.status == "created" else status.HTTP_200_OK
        return Response(BusinessMetricSerializer(stored).data, status=code)

    @_bulk_schema(BusinessMetricInputSerializer)
    @action(
        detail=False,
        methods=["post"],
        parser_classes=[JSONParser, MetricsCSVParser, MultiPartParser, FormParser],
    )
    def bulk(self, request):
        """Up to 10,000 figures as a JSON array or a CSV file (columns: location or location_id,
        period, period_start, kind, value, source); one result per row."""
        rows = _bulk_rows(request, business.metric_rows_from_csv)
        if isinstance(rows, Response):
            return rows
        results = business.business_metrics_import(
            organization=self.organization,
            actor=self.actor,
            rows=rows,
            source="csv" if "file" in request.FILES or request.content_type.startswith("text/csv") else "api",
        )
        return Response({**business.summary_of(results), "results": [r.as_dict() for r in results]})


class CustomerTransactionViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """Purchases from the CRM, idempotent on ``external_id`` (a corrected row updates the stored
    one). Customers are named by external id and created when unknown."""

    queryset = CustomerTransaction.objects
    serializer_class = CustomerTransactionSerializer
    resource = "business_data"
    api_app = "alignment"
    filterset_class = CustomerTransactionFilter
    action_verbs = {"bulk": "add"}

    def safely_get_queryset(self, queryset):
        return queryset.select_related("customer", "location").order_by("-occurred_on", "-id")

    @extend_schema(
        request=CustomerTransactionInputSerializer,
        responses={
            201: CustomerTransactionSerializer,
            200: CustomerTransactionSerializer,
            400: OpenApiResponse(description="Field errors"),
        },
    )
    def create(self, request, *args, **kwargs):
        """Store one transaction: 201 when new, 200 when it updated or matched the stored one."""
        [result], _created = business.customer_transactions_import(
            organization=self.organization, actor=self.actor, rows=[_one_row(request)]
        )
        if result.status == "error":
            return Response(result.errors, status=status.HTTP_400_BAD_REQUEST)
        stored = self.safely_get_queryset(CustomerTransaction.objects.all()).get(pk=result.id)
        code = status.HTTP_201_CREATED if result.status == "created" else status.HTTP_200_OK
        return Response(CustomerTransactionSerializer(stored).data, status=code)

    @_bulk_schema(CustomerTransactionInputSerializer)
    @action(
        detail=False,
        methods=["post"],
        parser_classes=[JSONParser, TransactionsCSVParser, MultiPartParser, FormParser],
    )
    def bulk(self, request):
        """Up to 10,000 transactions as a JSON array or a CSV file (columns: external_id, customer,
        occurred_on, amount, location or location_id); one result per row."""
        rows = _bulk_rows(request, business.transaction_rows_from_csv)
        if isinstance(rows, Response):
            return rows
        results, customers_created = business.customer_transactions_import(
            organization=self.organization,
            actor=self.actor,
            rows=rows,
            source="csv" if "file" in request.FILES or request.content_type.startswith("text/csv") else "api",
        )
        return Response(
            {
                **business.summary_of(results),
                "customers_created": customers_created,
                "results": [r.as_dict() for r in results],
            }
        )


@extend_schema_view(
    partial_update=extend_schema(
        summary="Replace a segment's rule (validated; errors name rule[i].field / .op / .value)"
    ),
    update=extend_schema(summary="Replace a segment's rule"),
)
class SegmentRuleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    TenantViewSetMixin,
    viewsets.GenericViewSet,
):
    """Customer segments as rules on CRM data. ``rule`` is a list of {field, op, value} that must
    all hold; fields: total_spend (lifetime_value), total_spend_<N>d, transactions_count[_<N>d],
    average_purchase[_<N>d], last_purchase_amount, first_purchase_on, last_purchase_on,
    days_since_last_purchase, locale, consent_email, consent_sms, opted_out; ops lt lte gt gte eq
    ne in. ``apply`` recomputes the segment's members: each customer belongs to the first rule
    segment they match in precedence order (creation order); segments without a rule are managed
    by hand and never overridden. Segments themselves are created at ``/api/v1/segments/``."""

    queryset = Segment.objects
    serializer_class = SegmentRuleSerializer
    resource = "business_data"
    api_app = "alignment"
    http_method_names = ["get", "patch", "put", "post", "head", "options"]
    action_verbs = {"apply": "change"}

    def safely_get_queryset(self, queryset):
        return queryset.annotate(members=Count("customers")).order_by("pk")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False) and self.request is not None:
            context["precedence"] = {s.pk: i for i, s in enumerate(business.rule_segments(), start=1)}
        return context

    def perform_update(self, serializer):
        segment = business.segment_rule_update(
            organization=self.organization,
            actor=self.actor,
            segment=serializer.instance,
            rule=serializer.validated_data.get("rule", serializer.instance.rule),
        )
        serializer.instance = self.get_queryset().get(pk=segment.pk)
        # A first rule changes the precedence the context was built with.
        serializer.context["precedence"] = {s.pk: i for i, s in enumerate(business.rule_segments(), start=1)}

    @extend_schema(
        request=None, responses={200: SegmentApplySerializer, 400: OpenApiResponse(description="Bad rule")}
    )
    @action(detail=True, methods=["post"])
    def apply(self, request, pk=None):
        """Recompute who is in this segment now; running it again changes nothing."""
        outcome = business.segment_assign(
            organization=self.organization, actor=self.actor, segment=self.get_object()
        )
        return Response(outcome)


_COMPARISON_PARAMS = [
    OpenApiParameter(
        "split", str, enum=["amount", "segment"], description="Default amount (segment if given)."
    ),
    OpenApiParameter(
        "basis",
        str,
        enum=list(("average", "total", "max")),
        description="Amount split: each customer's average purchase, total spend or largest purchase "
        "in the period. Default average.",
    ),
    OpenApiParameter("amount_lt", OpenApiTypes.DECIMAL, description="The threshold; default 100."),
    OpenApiParameter("segment", int, description="Segment split: the segment's id."),
    OpenApiParameter("from", OpenApiTypes.DATE, description="First day (default: 90 days before to)."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="Last day (default today); at most 366 days."),
    OpenApiParameter("standard", str, description="Standard ids, comma-separated (default all)."),
]


class CustomerComparisonViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    """How customers split by a CRM condition rated each standard: "customers whose average
    purchase was under 100 rated Greeting 2.0/5 (n=14) vs 4.3/5 (n=52) for the rest". Answers are
    read through the caller's scope; see alignment.customer_selectors for the definitions."""

    queryset = Standard.objects
    resource = "business_data"
    api_app = "alignment"
    pagination_class = None
    filter_backends: list = []

    def _comparison(self, request, standard=None):
        params = request.query_params.copy()
        if standard is not None:
            params["standard"] = str(standard.pk)
        try:
            query = parse_comparison_query(params, self.organization)
        except ComparisonQueryError as exc:
            raise ValidationError({exc.param: [exc.message]}) from None
        caller = Caller(role=caller_role(request), membership=request._request.membership)
        return customer_comparison(organization=self.organization, caller=caller, query=query)

    @extend_schema(parameters=_COMPARISON_PARAMS, responses={200: ComparisonSerializer})
    def list(self, request):
        """Every standard with answers in the period: the group's and the rest's scores with n."""
        return Response(self._comparison(request))

    @extend_schema(parameters=_COMPARISON_PARAMS, responses={200: ComparisonSerializer})
    def retrieve(self, request, pk=None):
        """One standard's comparison (404 for a standard that is not yours)."""
        return Response(self._comparison(request, standard=self.get_object()))


def register(router) -> None:
    """Add this area's viewsets to the core router."""
    router.register("business-metrics", BusinessMetricViewSet)
    router.register("crm-transactions", CustomerTransactionViewSet)
    router.register("segment-rules", SegmentRuleViewSet, basename="segment-rules")
    router.register("customer-comparisons", CustomerComparisonViewSet, basename="customer-comparisons")
