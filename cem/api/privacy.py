"""Privacy API (resource ``privacy``: org admins and integrators), on the one base viewset.

- ``GET /api/v1/privacy/subjects/?q=``: customers (exact external id, email or phone) and
  employees (external id, email, or part of the name) matching ``q``.
- ``/api/v1/privacy/exports/``: POST ``{subject_type, id | external_id | email}`` queues a ZIP of
  JSON with everything held about the person (202); GET lists and shows them;
  ``…/{id}/download/`` returns the file once ``status`` is ``done``.
- ``/api/v1/privacy/erasures/``: POST ``{subject_type, id | external_id | email, reason,
  confirm (the external id typed again), redact_terms?, delete_responses?}`` erases or
  anonymises the person (201; see cem.privacy); GET lists them.
- ``/api/v1/privacy/consents/``: the consent history (``?customer=``); POST records a grant or a
  withdrawal with its channel and source, and applies it.
- ``/api/v1/privacy/retention/``: the organization's retention policy (one row; PATCH ``{id}/``).
- ``/api/v1/privacy/suppressions/``: the suppression list (kind, reason, when; only keyed hashes
  are kept, never shown); ``…/summary/`` counts it; POST ``…/lift/`` ``{email | phone |
  external_id, reason}`` takes one identifier off on the person's fresh consent (cem.suppression).

POSTs honour ``Idempotency-Key`` like every API POST (cem.middleware).
"""

from __future__ import annotations

import django_filters as f
from django.http import FileResponse, Http404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cem import privacy, privacy_selectors, suppression
from cem.api.base import TenantReadOnlyViewSet, TenantViewSetMixin
from cem.models import Customer
from cem.models.privacy import (
    ConsentChannel,
    ConsentRecord,
    ConsentSource,
    PrivacyRequest,
    RetentionPolicy,
    SuppressedIdentifier,
)

SubjectType = PrivacyRequest.SubjectType


class SubjectRefSerializer(serializers.Serializer):
    subject_type = serializers.ChoiceField(choices=SubjectType.choices)
    id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    external_id = serializers.CharField(required=False, max_length=100)
    email = serializers.EmailField(required=False)

    def validate(self, data):
        given = [k for k in ("id", "external_id", "email") if data.get(k) not in (None, "")]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"external_id": "Give exactly one of id, external_id or email."}
            )
        return data

    def subject(self):
        data = self.validated_data
        return privacy.find_subject(
            data["subject_type"],
            id=data.get("id"),
            external_id=data.get("external_id", ""),
            email=data.get("email", ""),
        )


class ErasureCreateSerializer(SubjectRefSerializer):
    reason = serializers.CharField(max_length=privacy.REASON_MAX, help_text="Why: the request and its date.")
    confirm = serializers.CharField(
        max_length=100,
        help_text="The subject's external id typed again, so the wrong person is never erased.",
    )
    redact_terms = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=20,
        help_text="Names the person goes by, redacted from comments besides their email, phone and ids.",
    )
    delete_responses = serializers.BooleanField(
        default=False,
        help_text="Customers: delete their responses (rollups and points follow) instead of keeping "
        "the scores anonymously.",
    )


class PrivacyRequestSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = PrivacyRequest
        fields = [
            "id",
            "kind",
            "subject_type",
            "subject_id",
            "reason",
            "status",
            "counts",
            "error",
            "file_size",
            "requested_by",
            "requested_by_api_key",
            "created_at",
            "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, obj) -> str | None:
        if obj.kind != PrivacyRequest.Kind.EXPORT or obj.status != PrivacyRequest.Status.DONE:
            return None
        return reverse("privacy-export-download", args=[obj.pk])


class PrivacyRequestFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=PrivacyRequest.Status.choices)
    subject_type = f.ChoiceFilter(choices=SubjectType.choices)
    subject_id = f.NumberFilter()


class _RequestViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    resource = "privacy"
    serializer_class = PrivacyRequestSerializer
    filterset_class = PrivacyRequestFilter
    ordering_fields = ["created_at"]
    kind = ""

    def safely_get_queryset(self, queryset):
        return queryset.filter(kind=self.kind).order_by("-created_at", "-id")


class PrivacyExportViewSet(_RequestViewSet):
    """Exports of everything held about a customer or an employee (ZIP of JSON)."""

    queryset = PrivacyRequest.objects
    kind = PrivacyRequest.Kind.EXPORT
    action_verbs = {"download": "view"}

    def get_serializer_class(self):
        return SubjectRefSerializer if self.action == "create" else PrivacyRequestSerializer

    @extend_schema(request=SubjectRefSerializer, responses={202: PrivacyRequestSerializer})
    def create(self, request, *args, **kwargs):
        body = SubjectRefSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance = body.subject()
        job = privacy.export_request(
            organization=self.organization,
            actor=self.actor,
            subject_type=body.validated_data["subject_type"],
            instance=instance,
        )
        return Response(PrivacyRequestSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="The ZIP file")})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        job = self.get_object()
        path = privacy.export_file(job)
        if path is None:
            raise Http404("This export is not ready, or its file was deleted (retention).")
        privacy.export_downloaded(organization=self.organization, actor=self.actor, request=job)
        response = FileResponse(
            open(path, "rb"),  # noqa: SIM115 - FileResponse closes it
            as_attachment=True,
            filename=f"privacy-export-{job.subject_type}-{job.subject_id}-{job.pk}.zip",
            content_type="application/zip",
        )
        response["Cache-Control"] = "no-store"
        return response


class PrivacyErasureViewSet(_RequestViewSet):
    """Erasures (anonymisation) of customers and employees, on request."""

    queryset = PrivacyRequest.objects
    kind = PrivacyRequest.Kind.ERASURE
    action_verbs = {"create": "delete"}

    def get_serializer_class(self):
        return ErasureCreateSerializer if self.action == "create" else PrivacyRequestSerializer

    @extend_schema(request=ErasureCreateSerializer, responses={201: PrivacyRequestSerializer})
    def create(self, request, *args, **kwargs):
        body = ErasureCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        instance = body.subject()
        common = {
            "organization": self.organization,
            "actor": self.actor,
            "reason": data["reason"],
            "confirm": data["confirm"],
            "redact_terms": data.get("redact_terms") or [],
        }
        if data["subject_type"] == SubjectType.CUSTOMER:
            done = privacy.customer_erase(
                customer=instance, delete_responses=data["delete_responses"], **common
            )
        else:
            done = privacy.employee_erase(employee=instance, **common)
        return Response(PrivacyRequestSerializer(done).data, status=status.HTTP_201_CREATED)


class SubjectSerializer(serializers.Serializer):
    subject_type = serializers.CharField()
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    label = serializers.CharField(help_text="The email (customers) or the name (employees).")


class PrivacySubjectViewSet(mixins.ListModelMixin, TenantViewSetMixin, viewsets.GenericViewSet):
    """Find the customers and employees a request is about."""

    queryset = Customer.objects
    resource = "privacy"
    serializer_class = SubjectSerializer
    pagination_class = None

    @extend_schema(
        parameters=[OpenApiParameter("q", str, description="External id, email, phone or part of a name.")],
        responses=SubjectSerializer(many=True),
    )
    def list(self, request, *args, **kwargs):
        found = privacy_selectors.find_subjects(request.query_params.get("q", ""))
        return Response(SubjectSerializer(found, many=True).data)


class ConsentRecordSerializer(serializers.ModelSerializer):
    source = serializers.ChoiceField(
        # Erasure and suppression records are the platform's own, never posted.
        choices=[
            c for c in ConsentSource.choices if c[0] not in (ConsentSource.ERASURE, ConsentSource.SUPPRESSION)
        ],
        default=ConsentSource.API,
    )

    class Meta:
        model = ConsentRecord
        fields = [
            "id",
            "customer",
            "channel",
            "granted",
            "source",
            "detail",
            "recorded_at",
            "actor_user",
            "actor_api_key",
        ]
        read_only_fields = ["recorded_at", "actor_user", "actor_api_key"]
        extra_kwargs = {
            "channel": {
                "help_text": "email, sms (also IVR calls) or all (withdrawn: opt out of everything)."
            },
            "detail": {"help_text": "Where exactly: the form, the store, the CRM sync."},
        }


class ConsentRecordFilter(f.FilterSet):
    customer = f.NumberFilter(field_name="customer_id")
    channel = f.ChoiceFilter(choices=ConsentChannel.choices)
    granted = f.BooleanFilter()


class ConsentRecordViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """Consent given and withdrawn, with time, channel and source; POST records and applies one."""

    queryset = ConsentRecord.objects
    resource = "privacy"
    serializer_class = ConsentRecordSerializer
    filterset_class = ConsentRecordFilter
    ordering_fields = ["recorded_at"]

    def safely_get_queryset(self, queryset):
        return queryset.order_by("-recorded_at", "-id")

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = privacy.consent_record(
            organization=self.organization,
            actor=self.actor,
            customer=data["customer"],
            channel=data["channel"],
            granted=data["granted"],
            source=data["source"],
            detail=data.get("detail", ""),
        )


class RetentionPolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = RetentionPolicy
        fields = [
            "id",
            "comments_months",
            "invitations_months",
            "case_contacts_months",
            "abuse_hashes_days",
            "exports_days",
            "last_run_at",
            "last_run_counts",
        ]
        read_only_fields = ["id", "last_run_at", "last_run_counts"]


class RetentionPolicyViewSet(mixins.UpdateModelMixin, TenantReadOnlyViewSet):
    """The organization's retention policy, one row (null: kept until erased). Applied nightly."""

    queryset = RetentionPolicy.objects
    resource = "privacy"
    serializer_class = RetentionPolicySerializer
    http_method_names = ["get", "patch", "head", "options"]

    def safely_get_queryset(self, queryset):
        privacy.retention_policy_for(self.organization)  # the defaults, stored the first time asked
        return queryset.order_by("pk")

    def perform_update(self, serializer):
        serializer.instance = privacy.retention_policy_update(
            organization=self.organization,
            actor=self.actor,
            policy=serializer.instance,
            data=serializer.validated_data,
        )


class SuppressedIdentifierSerializer(serializers.ModelSerializer):
    class Meta:
        model = SuppressedIdentifier
        fields = ["id", "kind", "reason", "created_at"]
        read_only_fields = fields


class SuppressionSummarySerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_kind = serializers.DictField(child=serializers.IntegerField(), help_text="email, phone, external_id")
    by_reason = serializers.DictField(child=serializers.IntegerField(), help_text="erasure, opt_out")


class SuppressionLiftSerializer(serializers.Serializer):
    email = serializers.CharField(required=False, max_length=254)
    phone = serializers.CharField(required=False, max_length=40)
    external_id = serializers.CharField(required=False, max_length=64)
    reason = serializers.CharField(
        max_length=suppression.LIFT_REASON_MAX,
        help_text="The person's fresh consent: when and how they gave it.",
    )

    def validate(self, data):
        given = [k for k in ("email", "phone", "external_id") if data.get(k) not in (None, "")]
        if len(given) != 1:
            raise serializers.ValidationError({"email": "Give exactly one of email, phone or external_id."})
        data["kind"], data["value"] = given[0], data[given[0]]
        return data


class SuppressionLiftResultSerializer(serializers.Serializer):
    removed = serializers.IntegerField()
    summary = SuppressionSummarySerializer()


class SuppressedIdentifierFilter(f.FilterSet):
    kind = f.ChoiceFilter(choices=SuppressedIdentifier.Kind.choices)
    reason = f.ChoiceFilter(choices=SuppressedIdentifier.Reason.choices)


class SuppressedIdentifierViewSet(TenantReadOnlyViewSet):
    """The suppression list: what kind of identifier, why and when (never the value or its hash)."""

    queryset = SuppressedIdentifier.objects
    resource = "privacy"
    serializer_class = SuppressedIdentifierSerializer
    filterset_class = SuppressedIdentifierFilter
    ordering_fields = ["created_at"]
    action_verbs = {"summary": "view", "lift": "delete"}

    def safely_get_queryset(self, queryset):
        return queryset.order_by("-created_at", "-id")

    @extend_schema(responses=SuppressionSummarySerializer)
    @action(detail=False, methods=["get"])
    def summary(self, request):
        """How many identifiers are suppressed, by kind and by reason."""
        return Response(SuppressionSummarySerializer(suppression.summary()).data)

    @extend_schema(request=SuppressionLiftSerializer, responses={200: SuppressionLiftResultSerializer})
    @action(detail=False, methods=["post"])
    def lift(self, request):
        """Take one identifier off the list on the person's fresh consent (audit-logged)."""
        body = SuppressionLiftSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        removed = suppression.suppression_lift(
            organization=self.organization,
            actor=self.actor,
            kind=data["kind"],
            value=data["value"],
            reason=data["reason"],
        )
        return Response(
            SuppressionLiftResultSerializer({"removed": removed, "summary": suppression.summary()}).data
        )


def register(router) -> None:
    router.register("privacy/subjects", PrivacySubjectViewSet, basename="privacy-subject")
    router.register("privacy/exports", PrivacyExportViewSet, basename="privacy-export")
    router.register("privacy/erasures", PrivacyErasureViewSet, basename="privacy-erasure")
    router.register("privacy/consents", ConsentRecordViewSet, basename="privacy-consent")
    router.register("privacy/retention", RetentionPolicyViewSet, basename="privacy-retention")
    router.register("privacy/suppressions", SuppressedIdentifierViewSet, basename="privacy-suppression")


__all__ = ["register"]
