"""``/api/v1/exports/``: request a CSV/XLSX export of responses, follow its progress, download it."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse, Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response as ApiResponse

from cem.api.base import TenantReadOnlyViewSet
from cem.models import Location
from feedback import exports
from feedback.models import ExportJob, ResponseSource, Survey


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=exports.FORMATS)
    # Managers, not querysets: evaluated per request, inside the caller's tenant.
    survey = serializers.PrimaryKeyRelatedField(queryset=Survey.objects, required=False, allow_null=True)
    location = serializers.PrimaryKeyRelatedField(queryset=Location.objects, required=False, allow_null=True)
    date_from = serializers.DateField(required=False, allow_null=True)
    date_to = serializers.DateField(required=False, allow_null=True)
    source = serializers.ChoiceField(choices=ResponseSource.choices, required=False, allow_blank=True)


class ExportJobSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ExportJob
        fields = [
            "id",
            "format",
            "filters",
            "status",
            "rows_done",
            "rows_total",
            "progress",
            "error",
            "requested_by",
            "created_at",
            "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_progress(self, obj) -> float:
        """Percent done, 0 to 100."""
        if obj.status == ExportJob.Status.DONE:
            return 100.0
        if not obj.rows_total:
            return 0.0
        return round(min(100.0, 100.0 * obj.rows_done / obj.rows_total), 1)

    def get_download_url(self, obj) -> str | None:
        if obj.status != ExportJob.Status.DONE:
            return None
        return reverse("exportjob-download", args=[obj.pk])


class ExportJobViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """Exports of responses. Scoped members see and download only their own exports."""

    queryset = ExportJob.objects
    serializer_class = ExportRequestSerializer
    resource = "exports"
    api_app = "feedback"
    action_verbs = {"download": "view"}

    def get_serializer_class(self):
        return ExportRequestSerializer if self.action == "create" else ExportJobSerializer

    def safely_get_queryset(self, queryset):
        request = self.request._request
        return exports.jobs_visible_to(
            queryset.select_related(None), membership=request.membership, user=request.user
        )

    @extend_schema(request=ExportRequestSerializer, responses={201: ExportJobSerializer})
    def create(self, request, *args, **kwargs):
        serializer = ExportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        fmt = data.pop("format")
        membership = request._request.membership
        try:
            job = exports.export_request(
                organization=self.organization,
                actor=self.actor,
                format=fmt,
                filters=data,
                scope=exports.export_scope(membership),
                requested_by=request.user if request.user.pk else None,
            )
        except DjangoValidationError as exc:
            raise ValidationError(getattr(exc, "message_dict", None) or {"detail": exc.messages}) from exc
        return ApiResponse(ExportJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="The export file")})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        job = self.get_object()
        path = exports.export_file(job)
        if path is None:
            raise Http404("This export is not ready.")
        exports.export_downloaded(organization=self.organization, actor=self.actor, job=job)
        return FileResponse(
            open(path, "rb"),  # FileResponse closes it
            as_attachment=True,
            filename=f"responses-{job.pk}.{job.format}",
        )


def register(router) -> None:
    """Add this area's viewsets to the core router."""
    router.register("exports", ExportJobViewSet, basename="exportjob")
