"""Call and chat monitoring API: samples, evaluator queues, evaluations, calibration sessions.

- ``/api/v1/monitoring-samples/`` — drawn samples; POST draws one (idempotent per programme and
  period start).
- ``/api/v1/sample-items/`` — evaluator queues (``?evaluator=me&status=open``); ``…/{id}/evaluate/``
  saves the draft, ``…/{id}/submit/`` scores and publishes it.
- ``/api/v1/evaluations/`` — published evaluations; agents see their own and
  ``…/{id}/acknowledge/`` them once.
- ``/api/v1/calibrations/`` — blind calibration sessions; ``…/{id}/evaluate/``, ``…/{id}/close/``,
  ``…/{id}/results/`` and ``…/trends/``.

Calls and chats themselves are imported as interactions (see audits/monitoring.py).
"""

import django_filters as f
from django.db.models import Prefetch
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from audits import monitoring
from audits.models import Audit, AuditAnswer, CalibrationSession, MonitoringSample, Program, SampleItem
from cem.api.base import TenantReadOnlyViewSet
from cem.api.filters import IsoDateTimeFilter
from cem.models import Interaction
from cem.params import as_utc


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's state does not allow this."
    default_code = "conflict"


def _run(func, **kwargs):
    try:
        return func(**kwargs)
    except monitoring.Conflict as exc:
        raise ConflictError(str(exc)) from exc


# --- serializers ---------------------------------------------------------------------------------


class MonitoringAnswerInputSerializer(serializers.Serializer):
    key = serializers.SlugField(max_length=60)
    value = serializers.CharField(max_length=monitoring.ANSWER_MAX, allow_blank=True, required=False)
    comment = serializers.CharField(max_length=4000, allow_blank=True, required=False)
    text = serializers.CharField(max_length=4000, allow_blank=True, required=False)


class MonitoringAnswersInputSerializer(serializers.Serializer):
    answers = MonitoringAnswerInputSerializer(many=True, max_length=500)

    def validate_answers(self, value):
        keys = [a["key"] for a in value]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise serializers.ValidationError(f"answered twice: {', '.join(duplicates)}")
        return value

    def answers_by_key(self) -> dict[str, dict]:
        return {a["key"]: a for a in self.validated_data["answers"]}


class MonitoringAnswerSerializer(serializers.ModelSerializer):
    key = serializers.CharField(source="item.key", read_only=True)

    class Meta:
        model = AuditAnswer
        fields = ["key", "value", "comment", "text"]
        read_only_fields = fields


def _answers(audit) -> list[dict]:
    rows = AuditAnswer.objects.filter(audit=audit).select_related("item").order_by("item__position", "pk")
    return MonitoringAnswerSerializer(rows, many=True).data


def _answers_prefetch() -> Prefetch:
    return Prefetch(
        "answers", queryset=AuditAnswer.objects.select_related("item").order_by("item__position", "pk")
    )


class MonitoringEvaluationSerializer(serializers.ModelSerializer):
    evaluator_email = serializers.EmailField(source="evaluator.email", read_only=True, default="")
    # Plain text: always "published" here, and an enum would collide with other "status" enums.
    status = serializers.CharField(read_only=True)
    answers = serializers.SerializerMethodField()

    class Meta:
        model = Audit
        fields = [
            "id",
            "interaction",
            "employee",
            "location",
            "version",
            "evaluator",
            "evaluator_email",
            "status",
            "score",
            "raw_score",
            "critical_failed",
            "section_scores",
            "published_at",
            "acknowledged_at",
            "answers",
        ]
        read_only_fields = fields

    def get_answers(self, audit) -> list[dict]:
        # The list view prefetches them (one query for the page, not one per evaluation).
        return MonitoringAnswerSerializer(audit.answers.all(), many=True).data


class SampleItemSerializer(serializers.ModelSerializer):
    program = serializers.IntegerField(source="sample.program_id", read_only=True)
    status = serializers.SerializerMethodField()
    score = serializers.DecimalField(
        source="audit.score", max_digits=5, decimal_places=2, read_only=True, default=None, allow_null=True
    )
    occurred_at = serializers.DateTimeField(source="interaction.occurred_at", read_only=True)
    channel = serializers.CharField(source="interaction.channel.kind", read_only=True)
    category = serializers.CharField(source="interaction.category", read_only=True)
    attributes = serializers.JSONField(
        source="interaction.attributes", read_only=True, help_text="duration, recording_url, transcript, …"
    )

    class Meta:
        model = SampleItem
        fields = [
            "id",
            "sample",
            "program",
            "interaction",
            "agent",
            "evaluator",
            "audit",
            "status",
            "score",
            "occurred_at",
            "channel",
            "category",
            "attributes",
        ]
        read_only_fields = fields

    def get_status(self, item) -> str:
        if item.audit_id is None:
            return "open"
        return item.audit.status


class SampleItemDetailSerializer(SampleItemSerializer):
    answers = serializers.SerializerMethodField()

    class Meta(SampleItemSerializer.Meta):
        fields = [*SampleItemSerializer.Meta.fields, "answers"]
        read_only_fields = fields

    def get_answers(self, item) -> list[dict]:
        return _answers(item.audit) if item.audit_id else []


class MonitoringSampleSerializer(serializers.ModelSerializer):
    items = serializers.IntegerField(source="items.count", read_only=True)

    class Meta:
        model = MonitoringSample
        fields = ["id", "program", "period_start", "period_end", "seed", "items", "created_at"]
        read_only_fields = fields


class SampleDrawSerializer(serializers.Serializer):
    program = serializers.PrimaryKeyRelatedField(queryset=Program.objects)
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    seed = serializers.CharField(max_length=64, required=False, allow_blank=True)


class CalibrationCreateSerializer(serializers.Serializer):
    program = serializers.PrimaryKeyRelatedField(queryset=Program.objects)
    interaction = serializers.PrimaryKeyRelatedField(queryset=Interaction.objects)
    evaluators = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=50,
        help_text="User ids of the evaluators who score it blind; omitted: any evaluator may.",
    )


class CalibrationAuditSerializer(serializers.ModelSerializer):
    evaluator_email = serializers.EmailField(source="evaluator.email", read_only=True, default="")
    answers = serializers.SerializerMethodField()

    class Meta:
        model = Audit
        fields = ["id", "evaluator", "evaluator_email", "score", "critical_failed", "answers"]
        read_only_fields = fields

    def get_answers(self, audit) -> list[dict]:
        return _answers(audit)


class CalibrationSessionSerializer(serializers.ModelSerializer):
    evaluator_count = serializers.SerializerMethodField()
    evaluations = serializers.SerializerMethodField(
        help_text="Before the session closes: the caller's own evaluation only (blind)."
    )
    final = serializers.SerializerMethodField()

    class Meta:
        model = CalibrationSession
        fields = [
            "id",
            "program",
            "interaction",
            "evaluators",
            "closed_at",
            "created_at",
            "evaluator_count",
            "evaluations",
            "final",
        ]
        read_only_fields = fields

    def get_evaluator_count(self, session) -> int:
        return monitoring.calibration_evaluator_audits(session).count()

    def get_evaluations(self, session) -> list[dict]:
        request = self.context.get("request")
        user_id = getattr(getattr(request, "user", None), "pk", None)
        audits = monitoring.calibration_visible_audits(session, user_id=user_id)
        return CalibrationAuditSerializer(audits, many=True).data

    def get_final(self, session) -> dict | None:
        if session.final_audit_id is None:
            return None
        return CalibrationAuditSerializer(Audit.objects.get(pk=session.final_audit_id)).data


class CalibrationItemResultSerializer(serializers.Serializer):
    key = serializers.CharField()
    disagreement = serializers.DecimalField(max_digits=5, decimal_places=2)


class CalibrationEvaluatorResultSerializer(serializers.Serializer):
    evaluator = serializers.IntegerField(allow_null=True)
    evaluator_email = serializers.CharField()
    audit = serializers.IntegerField()
    score = serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True)
    alignment = serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True)


class CalibrationResultSerializer(serializers.Serializer):
    session = serializers.IntegerField()
    final_score = serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True)
    items = CalibrationItemResultSerializer(many=True)
    evaluators = CalibrationEvaluatorResultSerializer(many=True)


class CalibrationTrendPointSerializer(serializers.Serializer):
    session = serializers.IntegerField()
    closed_at = serializers.DateTimeField()
    alignment = serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True)


class CalibrationTrendSerializer(serializers.Serializer):
    evaluator = serializers.IntegerField(allow_null=True)
    evaluator_email = serializers.CharField()
    sessions = serializers.IntegerField()
    mean_alignment = serializers.DecimalField(max_digits=5, decimal_places=2, allow_null=True)
    points = CalibrationTrendPointSerializer(many=True)


# --- filters ---------------------------------------------------------------------------------------


def _user_filter(queryset, name, value, request):
    if value == "me":
        return queryset.filter(**{name: getattr(request.user, "pk", None)})
    if not value.isdigit():
        return queryset.none()
    return queryset.filter(**{name: int(value)})


class SampleItemFilter(f.FilterSet):
    evaluator = f.CharFilter(method="filter_evaluator", help_text="A user id, or 'me'.")
    status = f.ChoiceFilter(
        choices=[("open", "Open (not evaluated or draft)"), ("done", "Published")], method="filter_status"
    )
    sample = f.NumberFilter()
    program = f.NumberFilter(field_name="sample__program")
    agent = f.NumberFilter()

    def filter_evaluator(self, queryset, name, value):
        return _user_filter(queryset, "evaluator", value, self.request)

    def filter_status(self, queryset, name, value):
        return queryset.filter(monitoring.sample_item_status_q(value))


class EvaluationFilter(f.FilterSet):
    employee = f.NumberFilter()
    location = f.NumberFilter()
    evaluator = f.CharFilter(method="filter_evaluator", help_text="A user id, or 'me'.")
    acknowledged = f.BooleanFilter(field_name="acknowledged_at", lookup_expr="isnull", exclude=True)
    published_after = IsoDateTimeFilter(field_name="published_at", lookup_expr="gte")
    published_before = IsoDateTimeFilter(field_name="published_at", lookup_expr="lt")

    def filter_evaluator(self, queryset, name, value):
        return _user_filter(queryset, "evaluator", value, self.request)


class MonitoringSampleFilter(f.FilterSet):
    program = f.NumberFilter()


class CalibrationFilter(f.FilterSet):
    program = f.NumberFilter()
    closed = f.BooleanFilter(field_name="closed_at", lookup_expr="isnull", exclude=True)


# --- viewsets --------------------------------------------------------------------------------------


class MonitoringSampleViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """Drawn samples; POST draws one (201), or returns the period's existing sample (200)."""

    queryset = MonitoringSample.objects
    serializer_class = SampleDrawSerializer
    resource = "monitoring"
    api_app = "audits"
    filterset_class = MonitoringSampleFilter

    def get_serializer_class(self):
        return SampleDrawSerializer if self.action == "create" else MonitoringSampleSerializer

    def safely_get_queryset(self, queryset):
        return queryset.order_by("-period_start", "pk")

    @extend_schema(request=SampleDrawSerializer, responses={201: MonitoringSampleSerializer})
    def create(self, request, *args, **kwargs):
        body = SampleDrawSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        drawn, created = monitoring.sample_draw(
            organization=self.organization,
            actor=self.actor,
            program=data["program"],
            period_start=data["period_start"],
            period_end=data["period_end"],
            seed=data.get("seed") or None,
        )
        return Response(
            MonitoringSampleSerializer(drawn).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class SampleItemViewSet(TenantReadOnlyViewSet):
    """Evaluator queues: ``?evaluator=me&status=open``."""

    queryset = SampleItem.objects
    serializer_class = SampleItemSerializer
    resource = "monitoring"
    api_app = "audits"
    filterset_class = SampleItemFilter
    http_method_names = ["get", "post", "head", "options"]
    action_verbs = {"evaluate": "change", "submit": "change"}

    def safely_get_queryset(self, queryset):
        return queryset.select_related("sample", "audit", "interaction__channel").order_by(
            "sample__period_start", "pk"
        )

    def get_serializer_class(self):
        return SampleItemSerializer if self.action == "list" else SampleItemDetailSerializer

    def _item(self, pk):
        return self.get_queryset().get(pk=pk)

    @extend_schema(request=MonitoringAnswersInputSerializer, responses=SampleItemDetailSerializer)
    @action(detail=True, methods=["post"])
    def evaluate(self, request, pk=None):
        """Save the draft evaluation (answers keyed by item key); repeat until it is submitted."""
        item = self.get_object()
        body = MonitoringAnswersInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _run(
            monitoring.evaluation_save,
            organization=self.organization,
            actor=self.actor,
            sample_item=item,
            answers=body.answers_by_key(),
        )
        return Response(SampleItemDetailSerializer(self._item(item.pk)).data)

    @extend_schema(request=None, responses=SampleItemDetailSerializer)
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """Score the draft and publish it to the agent (emits EvaluationPublished)."""
        item = self.get_object()
        _run(monitoring.evaluation_submit, organization=self.organization, actor=self.actor, sample_item=item)
        return Response(SampleItemDetailSerializer(self._item(item.pk)).data)


class EvaluationViewSet(TenantReadOnlyViewSet):
    """Published monitoring evaluations; an agent (scope "employee") sees only their own."""

    queryset = Audit.objects
    serializer_class = MonitoringEvaluationSerializer
    resource = "audits"
    api_app = "audits"
    filterset_class = EvaluationFilter
    http_method_names = ["get", "post", "head", "options"]
    # Its own verb: only the evaluated agent's role holds it (cem.permissions).
    action_verbs = {"acknowledge": "acknowledge"}

    def safely_get_queryset(self, queryset):
        return (
            monitoring.evaluations_only(queryset)
            .select_related("evaluator")
            .prefetch_related(_answers_prefetch())
            .order_by("-published_at", "-pk")
        )

    @extend_schema(request=None, responses=MonitoringEvaluationSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        """The agent confirms reading the evaluation; the first acknowledgement time is kept."""
        audit = self.get_object()
        membership = request._request.membership
        audit = _run(
            monitoring.evaluation_acknowledge,
            organization=self.organization,
            actor=self.actor,
            audit=audit,
            employee_id=getattr(membership, "employee_id", None),
        )
        return Response(MonitoringEvaluationSerializer(self.get_queryset().get(pk=audit.pk)).data)


class CalibrationViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """Calibration sessions: blind evaluations, then a consensus that reveals them all."""

    queryset = CalibrationSession.objects
    serializer_class = CalibrationCreateSerializer
    resource = "monitoring"
    api_app = "audits"
    filterset_class = CalibrationFilter
    action_verbs = {"evaluate": "change", "close": "change", "results": "view", "trends": "view"}

    def get_serializer_class(self):
        return CalibrationCreateSerializer if self.action == "create" else CalibrationSessionSerializer

    def safely_get_queryset(self, queryset):
        return queryset.order_by("-created_at", "-pk")

    def _detail(self, session_id):
        session = self.get_queryset().get(pk=session_id)
        return CalibrationSessionSerializer(session, context={"request": self.request}).data

    @extend_schema(request=CalibrationCreateSerializer, responses={201: CalibrationSessionSerializer})
    def create(self, request, *args, **kwargs):
        body = CalibrationCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        session = monitoring.calibration_create(
            organization=self.organization, actor=self.actor, **body.validated_data
        )
        return Response(self._detail(session.pk), status=status.HTTP_201_CREATED)

    @extend_schema(request=MonitoringAnswersInputSerializer, responses=CalibrationSessionSerializer)
    @action(detail=True, methods=["post"])
    def evaluate(self, request, pk=None):
        """The caller's blind evaluation (scored at once; revisable until the session closes)."""
        session = self.get_object()
        body = MonitoringAnswersInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _run(
            monitoring.calibration_evaluate,
            organization=self.organization,
            actor=self.actor,
            session=session,
            answers=body.answers_by_key(),
        )
        return Response(self._detail(session.pk))

    @extend_schema(request=MonitoringAnswersInputSerializer, responses=CalibrationSessionSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        """Close with the consensus answers, stored as the session's final audit."""
        session = self.get_object()
        body = MonitoringAnswersInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        _run(
            monitoring.calibration_close,
            organization=self.organization,
            actor=self.actor,
            session=session,
            answers=body.answers_by_key(),
        )
        return Response(self._detail(session.pk))

    @extend_schema(responses=CalibrationResultSerializer)
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        """Per-item disagreement and per-evaluator alignment with the final answers (closed sessions)."""
        session = self.get_object()
        return Response(
            CalibrationResultSerializer(_run(monitoring.calibration_results, session=session)).data
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("evaluator", OpenApiTypes.STR, description="A user id, or 'me'."),
            OpenApiParameter("from", OpenApiTypes.DATETIME),
            OpenApiParameter("to", OpenApiTypes.DATETIME),
        ],
        responses=CalibrationTrendSerializer(many=True),
    )
    @action(detail=False, methods=["get"])
    def trends(self, request):
        """Alignment per evaluator per closed session, oldest first."""
        raw = request.query_params.get("evaluator", "")
        evaluator_id = None
        if raw == "me":
            evaluator_id = request.user.pk
        elif raw:
            if not raw.isdigit():
                raise exceptions.ValidationError({"evaluator": "A user id, or 'me'."})
            evaluator_id = int(raw)
        bounds = {}
        for param, name in (("from", "since"), ("to", "until")):
            value = request.query_params.get(param)
            if value:
                parsed = parse_datetime(value)
                if parsed is None:
                    raise exceptions.ValidationError({param: "An ISO 8601 date-time."})
                if timezone.is_naive(parsed):
                    parsed = timezone.make_aware(parsed)
                elif (parsed := as_utc(parsed)) is None:
                    raise exceptions.ValidationError({param: "Out of range."})
                bounds[name] = parsed
        data = monitoring.calibration_trends(evaluator_id=evaluator_id, **bounds)
        return Response(CalibrationTrendSerializer(data, many=True).data)


def register(router) -> None:
    """Add this area's viewsets to the core router."""
    router.register("monitoring-samples", MonitoringSampleViewSet, basename="monitoring-sample")
    router.register("sample-items", SampleItemViewSet, basename="monitoring-sample-item")
    router.register("evaluations", EvaluationViewSet, basename="monitoring-evaluation")
    router.register("calibrations", CalibrationViewSet, basename="monitoring-calibration")
