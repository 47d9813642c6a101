"""Audit forms (builder), programs, scenarios, filled audits (read) and disputes.

Writes go through audits.form_services and audits.audit_services; ``PUT /audit-forms/{id}/structure/``
is the one way to change sections and items, so versioning applies to every client.
"""

import django_filters as f
from django.db.models import Max, Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from audits import audit_services, form_services, monitoring
from audits.models import (
    Audit,
    AuditAnswer,
    AuditForm,
    AuditFormVersion,
    Dispute,
    FormItem,
    FormSection,
    Program,
    ProgramKind,
    Scenario,
    ScenarioLeg,
    ScoreChange,
    StandardScore,
)
from cem.api.base import RenderStoredMixin, TenantModelViewSet, TenantReadOnlyViewSet
from cem.api.filters import IsoDateTimeFilter

# --- forms --------------------------------------------------------------------------------------


class FormSectionSerializer(serializers.ModelSerializer):
    class Meta:
        model = FormSection
        fields = ["id", "key", "title", "position", "channel_kind"]
        read_only_fields = fields


class FormItemSerializer(serializers.ModelSerializer):
    section = serializers.SlugRelatedField(slug_field="key", read_only=True)

    class Meta:
        model = FormItem
        fields = [
            "id",
            "key",
            "section",
            "position",
            "type",
            "text",
            "weight",
            "critical",
            "required",
            "standard",
            "scale_min",
            "scale_max",
            "target_min",
            "target_max",
            "choices",
            "pass_fraction",
            "comment_required_on_fail",
            "plausible_max",
        ]
        read_only_fields = fields


class FormVersionSerializer(serializers.ModelSerializer):
    sections = FormSectionSerializer(many=True, read_only=True)
    items = FormItemSerializer(many=True, read_only=True)

    class Meta:
        model = AuditFormVersion
        fields = ["id", "form", "number", "created_at", "sections", "items"]
        read_only_fields = fields


class SectionInputSerializer(serializers.Serializer):
    """Documents one section of ``PUT …/structure/``; validation is form_services.clean_structure."""

    key = serializers.SlugField(max_length=60)
    title = serializers.DictField(child=serializers.CharField(), help_text='{"en": "…", "es": "…"}')
    position = serializers.IntegerField(required=False)
    channel_kind = serializers.CharField(required=False, allow_blank=True)


class ItemInputSerializer(serializers.Serializer):
    """Documents one item of ``PUT …/structure/``; validation is form_services.clean_structure."""

    key = serializers.SlugField(max_length=60, help_text="Identity across versions.")
    section = serializers.SlugField(help_text="The key of one of the sections.")
    type = serializers.ChoiceField(choices=FormItem.Type.choices)
    text = serializers.DictField(child=serializers.CharField(), help_text='{"en": "…", "es": "…"}')
    weight = serializers.DecimalField(
        max_digits=6, decimal_places=2, required=False, help_text="> 0 if scored"
    )
    critical = serializers.BooleanField(required=False)
    required = serializers.BooleanField(required=False)
    standard = serializers.IntegerField(
        required=False, allow_null=True, help_text="Required for scored items."
    )
    scale_min = serializers.IntegerField(required=False)
    scale_max = serializers.IntegerField(required=False)
    target_min = serializers.DecimalField(max_digits=10, decimal_places=2, required=False, allow_null=True)
    target_max = serializers.DecimalField(max_digits=10, decimal_places=2, required=False, allow_null=True)
    choices = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text='[{"value": "asked", "label": {"en": "…"}, "points": "1"}] — points 0..1',
    )
    pass_fraction = serializers.DecimalField(max_digits=4, decimal_places=3, required=False)
    comment_required_on_fail = serializers.BooleanField(required=False)
    plausible_max = serializers.DecimalField(max_digits=10, decimal_places=2, required=False, allow_null=True)
    position = serializers.IntegerField(required=False)


class StructurePutSerializer(serializers.Serializer):
    sections = SectionInputSerializer(many=True)
    items = ItemInputSerializer(many=True)


class AuditFormSerializer(serializers.ModelSerializer):
    current_version = serializers.SerializerMethodField(help_text="The number of the newest version.")

    class Meta:
        model = AuditForm
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "critical_policy",
            "critical_cap",
            "current_version",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        # Names are unique per tenant; full_clean in the service checks that within the tenant.
        validators = []

    def get_current_version(self, obj) -> int | None:
        return getattr(obj, "current_version_number", None)


class AuditFormFilter(f.FilterSet):
    kind = f.ChoiceFilter(choices=ProgramKind.choices)
    name = f.CharFilter(lookup_expr="icontains")


def _version_prefetch():
    return (
        Prefetch("sections", queryset=FormSection.objects.order_by("position", "id")),
        Prefetch("items", queryset=FormItem.objects.select_related("section").order_by("position", "id")),
    )


class AuditFormViewSet(RenderStoredMixin, TenantModelViewSet):
    """Audit forms; their sections and items through ``structure`` (a new version once used)."""

    queryset = AuditForm.objects
    serializer_class = AuditFormSerializer
    resource = "audit_forms"
    api_app = "audits"
    filterset_class = AuditFormFilter
    ordering_fields = ["name", "id", "created_at"]
    action_verbs = {"versions": "view"}

    def safely_get_queryset(self, queryset):
        # Meta.ordering does not apply to an aggregating query, so order explicitly.
        return queryset.annotate(current_version_number=Max("versions__number")).order_by("name", "id")

    def perform_create(self, serializer):
        serializer.instance = form_services.form_create(
            organization=self.organization, actor=self.actor, data=serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = form_services.form_update(
            organization=self.organization,
            actor=self.actor,
            form=serializer.instance,
            data=serializer.validated_data,
        )

    @extend_schema(
        request=StructurePutSerializer,
        responses={
            200: FormVersionSerializer,
            201: FormVersionSerializer,
            400: OpenApiResponse(description="Field errors, e.g. items[3].standard"),
        },
    )
    @action(detail=True, methods=["get", "put"])
    def structure(self, request, pk=None):
        """GET: the current version. PUT: replace sections and items (201 when a new version was made).

        Body: ``{"sections": [...], "items": [...]}``. Errors name the field: ``items[3].standard``.
        """
        form = self.get_object()
        code = status.HTTP_200_OK
        if request.method == "GET":
            version = form.versions.order_by("-number").first()
            if version is None:
                return Response({"detail": "This form has no structure yet."}, status=404)
        else:
            body = request.data if isinstance(request.data, dict) else {}
            version, created = form_services.form_structure_save(
                organization=self.organization,
                actor=self.actor,
                form=form,
                sections=body.get("sections"),
                items=body.get("items"),
            )
            code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        version = AuditFormVersion.objects.prefetch_related(*_version_prefetch()).get(pk=version.pk)
        return Response(FormVersionSerializer(version).data, status=code)

    @extend_schema(responses=FormVersionSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        """Every version, newest first, with its sections and items."""
        form = self.get_object()
        versions = (
            AuditFormVersion.objects.filter(form=form)
            .order_by("-number")
            .prefetch_related(*_version_prefetch())
        )
        return Response(FormVersionSerializer(versions, many=True).data)


# --- programs and scenarios ---------------------------------------------------------------------


class ProgramSerializer(serializers.ModelSerializer):
    class Meta:
        model = Program
        fields = [
            "id",
            "name",
            "kind",
            "form",
            "description",
            "active",
            "lockout_days",
            "max_open_jobs",
            "certification_valid_days",
            "certification_path",
            "revision_window_hours",
            "auto_assign_after_hours",
            "sample_per_agent",
            "sample_critical_share",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        validators = []

    def validate(self, attrs):
        form = attrs.get("form", getattr(self.instance, "form", None))
        kind = attrs.get("kind", getattr(self.instance, "kind", None))
        if form is not None and kind and form.kind != kind:
            raise serializers.ValidationError(
                {"form": f"The form is for {form.kind}, the program for {kind}."}
            )
        path = attrs.get("certification_path")
        if path is not None and path.audience not in ("shoppers", "everyone"):
            raise serializers.ValidationError(
                {"certification_path": "Shoppers certify through a path for shoppers (audience)."}
            )
        return attrs


class ProgramFilter(f.FilterSet):
    kind = f.ChoiceFilter(choices=ProgramKind.choices)
    form = f.NumberFilter()
    active = f.BooleanFilter()


class ProgramViewSet(TenantModelViewSet):
    """Programs: one form each, with the workforce rules (record services write them)."""

    queryset = Program.objects
    serializer_class = ProgramSerializer
    resource = "programs"
    api_app = "audits"
    filterset_class = ProgramFilter

    def safely_get_queryset(self, queryset):
        return queryset.order_by("name", "id")


class ScenarioLegSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScenarioLeg
        fields = ["id", "position", "channel_kind", "instructions", "section_key"]
        read_only_fields = ["id"]


class ScenarioSerializer(serializers.ModelSerializer):
    legs = ScenarioLegSerializer(many=True, required=False)

    class Meta:
        model = Scenario
        fields = ["id", "program", "title", "instructions", "active", "legs"]

    def validate(self, attrs):
        # Legs are validated as a whole by the service (errors name legs[i].field).
        if "legs" in self.initial_data:
            attrs["legs"] = self.initial_data["legs"]
        return attrs


class ScenarioFilter(f.FilterSet):
    program = f.NumberFilter()
    active = f.BooleanFilter()


class ScenarioViewSet(RenderStoredMixin, TenantModelViewSet):
    """Scenarios with their legs nested; a list of legs in a write replaces the current ones."""

    queryset = Scenario.objects
    serializer_class = ScenarioSerializer
    resource = "programs"
    api_app = "audits"
    filterset_class = ScenarioFilter

    def safely_get_queryset(self, queryset):
        return queryset.order_by("title", "id").prefetch_related(
            Prefetch("legs", queryset=ScenarioLeg.objects.order_by("position", "id"))
        )

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        legs = data.pop("legs", None)
        serializer.instance = form_services.scenario_create(
            organization=self.organization, actor=self.actor, data=data, legs=legs
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        legs = data.pop("legs", None)
        serializer.instance = form_services.scenario_update(
            organization=self.organization,
            actor=self.actor,
            scenario=serializer.instance,
            data=data,
            legs=legs,
        )


# --- audits and disputes ------------------------------------------------------------------------


class AuditAnswerSerializer(serializers.ModelSerializer):
    item_key = serializers.CharField(source="item.key", read_only=True)

    class Meta:
        model = AuditAnswer
        fields = ["id", "item", "item_key", "value", "text", "comment"]
        read_only_fields = fields


class StandardScoreSerializer(serializers.ModelSerializer):
    class Meta:
        model = StandardScore
        fields = ["standard", "earned", "possible", "value", "published_at"]
        read_only_fields = fields


class ScoreChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ScoreChange
        fields = ["id", "audit", "old_score", "new_score", "reason", "changed_by", "created_at"]
        read_only_fields = fields


class DisputeSerializer(serializers.ModelSerializer):
    item_key = serializers.CharField(source="item.key", read_only=True)

    class Meta:
        model = Dispute
        fields = [
            "id",
            "audit",
            "item",
            "item_key",
            "raised_by",
            "reason",
            "proposed_value",
            "status",
            "resolution",
            "resolved_by",
            "created_at",
            "resolved_at",
        ]
        read_only_fields = fields


class AuditSerializer(serializers.ModelSerializer):
    form = serializers.IntegerField(source="version.form_id", read_only=True)
    version_number = serializers.IntegerField(source="version.number", read_only=True)
    answers = AuditAnswerSerializer(many=True, read_only=True)
    standard_scores = StandardScoreSerializer(many=True, read_only=True)
    score_changes = ScoreChangeSerializer(many=True, read_only=True)
    disputes = DisputeSerializer(many=True, read_only=True)

    class Meta:
        model = Audit
        fields = [
            "id",
            "form",
            "version",
            "version_number",
            "assignment",
            "interaction",
            "location",
            "employee",
            "evaluator",
            "status",
            "visited_at",
            "score",
            "raw_score",
            "critical_failed",
            "section_scores",
            "published_at",
            "acknowledged_at",
            "created_at",
            "answers",
            "standard_scores",
            "score_changes",
            "disputes",
        ]
        read_only_fields = fields


class DisputeInputSerializer(serializers.Serializer):
    item = serializers.SlugField(max_length=60, help_text="The key of the disputed item.")
    reason = serializers.CharField(max_length=2000)
    proposed_value = serializers.CharField(max_length=200, help_text="The answer it should have had.")


class ResolutionSerializer(serializers.Serializer):
    resolution = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class AuditFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=Audit.Status.choices)
    location = f.NumberFilter()
    employee = f.NumberFilter()
    form = f.NumberFilter(field_name="version__form")
    published_after = IsoDateTimeFilter(field_name="published_at", lookup_expr="gte")
    published_before = IsoDateTimeFilter(field_name="published_at", lookup_expr="lt")


class AuditViewSet(TenantReadOnlyViewSet):
    """Filled audits in the caller's scope with answers, section and standard scores, score history.

    Audits are written by submission and evaluation; here managers read them and dispute items.
    """

    queryset = Audit.objects
    serializer_class = AuditSerializer
    resource = "audits"
    api_app = "audits"
    filterset_class = AuditFilter
    # Raising a dispute is its own permission (audits.dispute): managers and agents hold it.
    action_verbs = {"disputes": "dispute", "score_changes": "view"}

    def safely_get_queryset(self, queryset):
        queryset = monitoring.audits_released(queryset)
        return queryset.select_related("version").prefetch_related(
            Prefetch(
                "answers",
                queryset=AuditAnswer.objects.select_related("item").order_by("item__position", "id"),
            ),
            Prefetch("standard_scores", queryset=StandardScore.objects.order_by("standard_id")),
            Prefetch("score_changes", queryset=ScoreChange.objects.order_by("created_at", "id")),
            Prefetch("disputes", queryset=Dispute.objects.select_related("item").order_by("-created_at")),
        )

    @extend_schema(request=DisputeInputSerializer, responses={201: DisputeSerializer})
    @action(detail=True, methods=["post"])
    def disputes(self, request, pk=None):
        """Dispute one item of a published audit (its location's managers, or the evaluated agent)."""
        audit = self.get_object()
        body = DisputeInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        dispute = audit_services.dispute_open(
            organization=self.organization,
            actor=self.actor,
            audit=audit,
            item_key=body.validated_data["item"],
            reason=body.validated_data["reason"],
            proposed_value=body.validated_data["proposed_value"],
            membership=request._request.membership,
        )
        dispute = Dispute.objects.select_related("item").get(pk=dispute.pk)
        return Response(DisputeSerializer(dispute).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=ScoreChangeSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="score-changes")
    def score_changes(self, request, pk=None):
        """Every change of the audit's score, oldest first."""
        audit = self.get_object()
        changes = ScoreChange.objects.filter(audit=audit).order_by("created_at", "id")
        return Response(ScoreChangeSerializer(changes, many=True).data)


class DisputeFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=Dispute.Status.choices)
    audit = f.NumberFilter()


class DisputeViewSet(TenantReadOnlyViewSet):
    """Disputes in the caller's scope; evaluators and admins accept (rescore) or reject them."""

    queryset = Dispute.objects
    serializer_class = DisputeSerializer
    resource = "audits"
    api_app = "audits"
    filterset_class = DisputeFilter
    # Resolving rewrites a published score: evaluators and admins hold audits.resolve.
    action_verbs = {"accept": "resolve", "reject": "resolve"}

    def safely_get_queryset(self, queryset):
        return queryset.select_related("item").order_by("-created_at", "-id")

    def _body(self, request) -> str:
        body = ResolutionSerializer(data=request.data if isinstance(request.data, dict) else {})
        body.is_valid(raise_exception=True)
        return body.validated_data.get("resolution", "")

    @extend_schema(request=ResolutionSerializer, responses=DisputeSerializer)
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        """Set the item's answer to the proposed value, rescore, record the score change."""
        dispute = audit_services.dispute_accept(
            organization=self.organization,
            actor=self.actor,
            dispute=self.get_object(),
            resolution=self._body(request),
        )
        return Response(DisputeSerializer(self.get_queryset().get(pk=dispute.pk)).data)

    @extend_schema(request=ResolutionSerializer, responses=DisputeSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Keep the score; ``resolution`` says why."""
        dispute = audit_services.dispute_reject(
            organization=self.organization,
            actor=self.actor,
            dispute=self.get_object(),
            resolution=self._body(request),
        )
        return Response(DisputeSerializer(self.get_queryset().get(pk=dispute.pk)).data)


def register(router) -> None:
    """Add this area's viewsets to the core router."""
    router.register("audit-forms", AuditFormViewSet)
    router.register("programs", ProgramViewSet)
    router.register("scenarios", ScenarioViewSet)
    router.register("audits", AuditViewSet)
    router.register("disputes", DisputeViewSet)
