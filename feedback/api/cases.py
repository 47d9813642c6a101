"""Alert rules (``/api/v1/alert-rules/``) and cases (``/api/v1/cases/``) with their work actions.

Cases are opened by the ResponseReceived handler, never by POST; the API lists them in the
caller's scope and moves them through their statuses with the feedback.cases services.
"""

import django_filters as f
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from cem.api.base import TenantModelViewSet, TenantReadOnlyViewSet
from cem.models import InteractionCategory
from feedback import cases as case_services
from feedback.models import AlertRule, Answer, Case, CaseNote

# --- serializers ---------------------------------------------------------------------------------


class AlertRuleSerializer(serializers.ModelSerializer):
    condition = serializers.JSONField(help_text=case_services.CONDITION_HELP)

    class Meta:
        model = AlertRule
        fields = ["id", "name", "active", "condition", "category", "priority", "sla_hours", "created_at"]
        read_only_fields = ["created_at"]

    def validate_condition(self, value):
        errors = case_services.condition_errors(value)
        if errors:
            raise serializers.ValidationError(errors)
        return value


class CaseNoteSerializer(serializers.ModelSerializer):
    author_email = serializers.EmailField(source="author.email", read_only=True, default="")

    class Meta:
        model = CaseNote
        fields = ["id", "case", "author", "author_email", "text", "created_at"]
        read_only_fields = fields


class CaseSerializer(serializers.ModelSerializer):
    location_name = serializers.CharField(source="location.name", read_only=True, default="")
    assignee_email = serializers.EmailField(source="assignee.email", read_only=True, default="")
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = [
            "id",
            "title",
            "status",
            "priority",
            "category",
            "response",
            "rule",
            "location",
            "location_name",
            "employee",
            "assignee",
            "assignee_email",
            "sla_due_at",
            "overdue",
            "escalation_level",
            "escalated_at",
            "themes",
            "customer_contact",
            "customer_contacted_at",
            "resolved_at",
            "closed_reason",
            "created_at",
        ]
        read_only_fields = fields
        # Read-only fields lose the model's blank=True: "" (not set) is a value they return.
        extra_kwargs = {"category": {"allow_blank": True}}

    def get_overdue(self, case) -> bool:
        return case.status in case_services.ACTIVE_STATUSES and case.sla_due_at < timezone.now()


class CaseAnswerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Answer
        fields = ["question_key", "question_type", "number", "text", "choices", "sentiment", "topics"]
        read_only_fields = fields


class CaseDetailSerializer(CaseSerializer):
    answers = serializers.SerializerMethodField()

    class Meta(CaseSerializer.Meta):
        fields = [*CaseSerializer.Meta.fields, "answers"]
        read_only_fields = fields

    def get_answers(self, case) -> list[dict]:
        answers = Answer.objects.filter(response_id=case.response_id).order_by("pk")
        return CaseAnswerSerializer(answers, many=True).data


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=case_services.REASON_MAX)


class NoteInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=case_services.NOTE_MAX)


# --- filters ---------------------------------------------------------------------------------------


class AlertRuleFilter(f.FilterSet):
    active = f.BooleanFilter()
    category = f.ChoiceFilter(choices=InteractionCategory.choices)


class CaseFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=Case.Status.choices)
    priority = f.NumberFilter()
    location = f.NumberFilter()
    assignee = f.NumberFilter()
    category = f.ChoiceFilter(choices=InteractionCategory.choices)
    overdue = f.BooleanFilter(method="filter_overdue", help_text="Open or in progress, past sla_due_at.")

    def filter_overdue(self, queryset, name, value):
        late = Q(status__in=case_services.ACTIVE_STATUSES, sla_due_at__lt=timezone.now())
        return queryset.filter(late) if value else queryset.exclude(late)


# --- viewsets --------------------------------------------------------------------------------------


class AlertRuleViewSet(TenantModelViewSet):
    queryset = AlertRule.objects
    serializer_class = AlertRuleSerializer
    resource = "alerts"
    api_app = "feedback"
    filterset_class = AlertRuleFilter

    def perform_create(self, serializer):
        serializer.instance = case_services.alert_rule_create(
            organization=self.organization, actor=self.actor, data=serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = case_services.alert_rule_update(
            organization=self.organization,
            actor=self.actor,
            rule=serializer.instance,
            data=serializer.validated_data,
        )


class CaseViewSet(TenantReadOnlyViewSet):
    """Cases in the caller's scope, most urgent first (priority, then the earliest deadline)."""

    queryset = Case.objects
    serializer_class = CaseSerializer
    resource = "cases"
    api_app = "feedback"
    filterset_class = CaseFilter
    ordering_fields = ["priority", "sla_due_at", "created_at", "id"]
    http_method_names = ["get", "post", "head", "options"]
    action_verbs = {
        "start": "change",
        "resolve": "change",
        "close": "change",
        "contacted": "change",
        "add_note": "change",
        "notes": "view",
    }

    def safely_get_queryset(self, queryset):
        return queryset.select_related("location", "assignee").order_by("-priority", "sla_due_at", "pk")

    def get_serializer_class(self):
        return CaseDetailSerializer if self.action == "retrieve" else CaseSerializer

    def _done(self, case):
        case = self.get_queryset().get(pk=case.pk)
        return Response(CaseSerializer(case).data)

    @extend_schema(request=None, responses=CaseSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """open → in_progress."""
        case = case_services.case_start(
            organization=self.organization, actor=self.actor, case=self.get_object()
        )
        return self._done(case)

    @extend_schema(request=ReasonSerializer, responses=CaseSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        """in_progress → resolved, with what was done (``reason``); emits CaseResolved."""
        case = self.get_object()
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        case = case_services.case_resolve(
            organization=self.organization, actor=self.actor, case=case, reason=body.validated_data["reason"]
        )
        return self._done(case)

    @extend_schema(request=ReasonSerializer, responses=CaseSerializer)
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        """open / in_progress / resolved → closed, with a ``reason``."""
        case = self.get_object()
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        case = case_services.case_close(
            organization=self.organization, actor=self.actor, case=case, reason=body.validated_data["reason"]
        )
        return self._done(case)

    @extend_schema(request=None, responses=CaseSerializer)
    @action(detail=True, methods=["post"])
    def contacted(self, request, pk=None):
        """Record that the customer was contacted (the first time counts)."""
        case = case_services.case_mark_customer_contacted(
            organization=self.organization, actor=self.actor, case=self.get_object()
        )
        return self._done(case)

    @extend_schema(responses=CaseNoteSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)  # every note, unpaged
    def notes(self, request, pk=None):
        case = self.get_object()
        notes = CaseNote.objects.filter(case=case).select_related("author").order_by("created_at", "pk")
        return Response(CaseNoteSerializer(notes, many=True).data)

    @extend_schema(request=NoteInputSerializer, responses={201: CaseNoteSerializer})
    @notes.mapping.post
    def add_note(self, request, pk=None):
        case = self.get_object()
        body = NoteInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = case_services.case_add_note(
            organization=self.organization, actor=self.actor, case=case, text=body.validated_data["text"]
        )
        return Response(CaseNoteSerializer(note).data, status=status.HTTP_201_CREATED)


def register(router) -> None:
    router.register("alert-rules", AlertRuleViewSet)
    router.register("cases", CaseViewSet)
