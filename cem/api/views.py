from django.conf import settings
from django.db.models import Count
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from cem import ingest, privacy, services
from cem.api import filters
from cem.api import serializers as s
from cem.api.base import TenantModelViewSet, TenantReadOnlyViewSet, TenantViewSetMixin
from cem.api.pagination import LargeListPagination
from cem.api.parsers import CSVParser, JSONParser
from cem.models import (
    ApiKey,
    AuditLog,
    BrandMessage,
    Channel,
    Customer,
    CustomerExpectation,
    Employee,
    EmployeeAssignment,
    Interaction,
    Location,
    Membership,
    Organization,
    OutboxEvent,
    Region,
    Segment,
    SkillCategory,
    Standard,
    Team,
    Touchpoint,
)

# --- organization ----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="The caller's organization (a list of one)"),
)
class OrganizationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    TenantViewSetMixin,
    viewsets.GenericViewSet,
):
    queryset = Organization.objects
    serializer_class = s.OrganizationSerializer
    resource = "organization"
    http_method_names = ["get", "patch", "put", "head", "options"]

    def perform_update(self, serializer):
        serializer.instance = services.organization_update(
            organization=self.organization, actor=self.actor, data=serializer.validated_data
        )


# --- hierarchy -------------------------------------------------------------------------------


class RegionViewSet(TenantModelViewSet):
    queryset = Region.objects
    serializer_class = s.RegionSerializer
    resource = "hierarchy"
    search_fields = ["name", "code"]
    ordering_fields = ["name", "code", "id"]


class LocationViewSet(TenantModelViewSet):
    queryset = Location.objects
    serializer_class = s.LocationSerializer
    resource = "hierarchy"
    filterset_class = filters.LocationFilter
    ordering_fields = ["name", "code", "id"]


class TeamViewSet(TenantModelViewSet):
    queryset = Team.objects
    serializer_class = s.TeamSerializer
    resource = "hierarchy"
    filterset_class = filters.TeamFilter


class EmployeeViewSet(TenantModelViewSet):
    queryset = Employee.objects
    serializer_class = s.EmployeeSerializer
    resource = "hierarchy"
    filterset_class = filters.EmployeeFilter
    ordering_fields = ["name", "external_id", "id"]
    action_verbs = {"move": "change", "assignments": "view"}

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        location, team, start = (
            data.pop("location", None),
            data.pop("team", None),
            data.pop("start_date", None),
        )
        serializer.instance = services.employee_create(
            organization=self.organization,
            actor=self.actor,
            data=data,
            location=location,
            team=team,
            start_date=start,
        )

    @extend_schema(request=s.EmployeeMoveSerializer, responses=s.EmployeeAssignmentSerializer)
    @action(detail=True, methods=["post"])
    def move(self, request, pk=None):
        """Move the employee to another location/team from a date; the old assignment is closed."""
        employee = self.get_object()
        body = s.EmployeeMoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        assignment = services.employee_move(
            organization=self.organization, actor=self.actor, employee=employee, **body.validated_data
        )
        return Response(s.EmployeeAssignmentSerializer(assignment).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.EmployeeAssignmentSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)  # the whole history, unpaged
    def assignments(self, request, pk=None):
        employee = self.get_object()
        history = EmployeeAssignment.objects.filter(employee=employee).order_by("-start_date")
        return Response(s.EmployeeAssignmentSerializer(history, many=True).data)


# --- standards and the journey ---------------------------------------------------------------


class ChannelViewSet(TenantModelViewSet):
    queryset = Channel.objects
    serializer_class = s.ChannelSerializer
    resource = "standards"
    filterset_class = filters.ChannelFilter


class TouchpointViewSet(TenantModelViewSet):
    queryset = Touchpoint.objects
    serializer_class = s.TouchpointSerializer
    resource = "standards"
    filterset_class = filters.TouchpointFilter


class SkillCategoryViewSet(TenantModelViewSet):
    queryset = SkillCategory.objects
    serializer_class = s.SkillCategorySerializer
    resource = "standards"


class CustomerExpectationViewSet(TenantModelViewSet):
    queryset = CustomerExpectation.objects
    serializer_class = s.CustomerExpectationSerializer
    resource = "standards"


class BrandMessageViewSet(TenantModelViewSet):
    queryset = BrandMessage.objects
    serializer_class = s.BrandMessageSerializer
    resource = "standards"


class StandardViewSet(TenantModelViewSet):
    queryset = Standard.objects
    serializer_class = s.StandardSerializer
    resource = "standards"
    filterset_class = filters.StandardFilter
    ordering_fields = ["code", "title", "id"]


# --- customers -------------------------------------------------------------------------------


class SegmentViewSet(TenantModelViewSet):
    queryset = Segment.objects
    serializer_class = s.SegmentSerializer
    resource = "customers"


class CustomerViewSet(TenantModelViewSet):
    queryset = Customer.objects
    serializer_class = s.CustomerSerializer
    resource = "customers"
    filterset_class = filters.CustomerFilter
    pagination_class = LargeListPagination

    # Consent given or withdrawn here is recorded with its time and source (cem.privacy).
    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        detail = data.pop("consent_detail", "")
        serializer.instance = privacy.customer_create(
            organization=self.organization, actor=self.actor, data=data, detail=detail
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        detail = data.pop("consent_detail", "")
        serializer.instance = privacy.customer_update(
            organization=self.organization,
            actor=self.actor,
            customer=serializer.instance,
            data=data,
            detail=detail,
        )


# --- interactions ----------------------------------------------------------------------------


class InteractionViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    queryset = Interaction.objects
    serializer_class = s.InteractionSerializer
    resource = "interactions"
    filterset_class = filters.InteractionFilter
    pagination_class = LargeListPagination
    action_verbs = {"bulk": "add", "stats": "view"}

    def safely_get_queryset(self, queryset):
        return queryset.select_related("customer", "location", "channel", "touchpoint").prefetch_related(
            "employees"
        )

    @extend_schema(
        request=s.InteractionInputSerializer,
        responses={
            201: s.InteractionSerializer,
            200: s.InteractionSerializer,
            400: OpenApiResponse(description="Field errors"),
        },
    )
    def create(self, request, *args, **kwargs):
        """Record one interaction; re-sending the same external_id returns the stored one (200)."""
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
        [result] = ingest.interactions_ingest(
            organization=self.organization, actor=self.actor, rows=[request.data]
        )
        if result.status == "error":
            return Response(result.errors, status=status.HTTP_400_BAD_REQUEST)
        instance = self.safely_get_queryset(Interaction.objects.all()).get(pk=result.id)
        code = status.HTTP_201_CREATED if result.status == "created" else status.HTTP_200_OK
        return Response(s.InteractionSerializer(instance).data, status=code)

    @extend_schema(
        request={
            "application/json": s.InteractionInputSerializer(many=True),
            "text/csv": {"type": "string", "format": "binary"},
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            },
        },
        responses={200: s.IngestResultSerializer, 413: OpenApiResponse(description="More than 10,000 rows")},
    )
    @action(
        detail=False, methods=["post"], parser_classes=[JSONParser, CSVParser, MultiPartParser, FormParser]
    )
    def bulk(self, request):
        """Up to 10,000 interactions per call, as a JSON array or a CSV file; per-row results."""
        if "file" in request.FILES:
            rows = ingest.rows_from_csv(request.FILES["file"].read())
        elif isinstance(request.data, list):
            rows = request.data
        else:
            raise ValidationError({"non_field_errors": ["Send a JSON array of interactions or a CSV file."]})
        limit = settings.BULK_INGEST_MAX_ROWS
        if len(rows) > limit:
            return Response(
                {"detail": f"At most {limit} rows per call; got {len(rows)}.", "max_rows": limit},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        results = ingest.interactions_ingest(organization=self.organization, actor=self.actor, rows=rows)
        counts = {"created": 0, "duplicate": 0, "error": 0}
        for r in results:
            counts[r.status] += 1
        return Response({**counts, "results": [r.as_dict() for r in results]})

    @extend_schema(responses=s.InteractionStatsSerializer)
    @action(detail=False, methods=["get"])
    def stats(self, request):
        """Counts over the same filters and scope as the list."""
        qs = self.filter_queryset(self.get_queryset()).order_by()
        by_category = dict(qs.values_list("category").annotate(n=Count("id")))
        by_channel = dict(qs.values_list("channel__code").annotate(n=Count("id")))
        return Response(
            {"total": sum(by_category.values()), "by_category": by_category, "by_channel": by_channel}
        )


# --- access ----------------------------------------------------------------------------------


class MembershipViewSet(TenantModelViewSet):
    queryset = Membership.objects
    serializer_class = s.MembershipSerializer
    resource = "memberships"
    filterset_class = filters.MembershipFilter

    def safely_get_queryset(self, queryset):
        return queryset.select_related("user")

    def get_serializer_class(self):
        return s.MembershipCreateSerializer if self.action == "create" else s.MembershipSerializer

    @extend_schema(request=s.MembershipCreateSerializer, responses={201: s.MembershipSerializer})
    def create(self, request, *args, **kwargs):
        body = s.MembershipCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = services.membership_create(
            organization=self.organization, actor=self.actor, **body.validated_data
        )
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class ApiKeyViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, TenantReadOnlyViewSet):
    queryset = ApiKey.objects
    serializer_class = s.ApiKeySerializer
    resource = "apikeys"
    action_verbs = {"revoke": "delete"}

    @extend_schema(responses={201: s.ApiKeyCreatedSerializer})
    def create(self, request, *args, **kwargs):
        """Create a key. The full key is in this response only; only a hash is stored."""
        body = s.ApiKeySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        key, full = services.api_key_create(
            organization=self.organization, actor=self.actor, **body.validated_data
        )
        data = s.ApiKeySerializer(key).data
        return Response({**data, "key": full}, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.api_key_revoke(organization=self.organization, actor=self.actor, api_key=instance)

    @extend_schema(request=None, responses=s.ApiKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        key = services.api_key_revoke(
            organization=self.organization, actor=self.actor, api_key=self.get_object()
        )
        return Response(s.ApiKeySerializer(key).data)


class AuditLogViewSet(TenantReadOnlyViewSet):
    queryset = AuditLog.objects
    serializer_class = s.AuditLogSerializer
    resource = "auditlog"
    pagination_class = LargeListPagination
    filterset_class = filters.AuditLogFilter


class OutboxEventViewSet(TenantReadOnlyViewSet):
    queryset = OutboxEvent.objects
    serializer_class = s.OutboxEventSerializer
    resource = "events"
    pagination_class = LargeListPagination
    filterset_class = filters.OutboxEventFilter

    def safely_get_queryset(self, queryset):
        return queryset.prefetch_related("deliveries")
