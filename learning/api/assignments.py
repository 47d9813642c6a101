"""Learning API: assignments (``/api/v1/learning-assignments/``), gap rules (``/api/v1/gap-rules/``)
and the gaps they found (``/api/v1/gap-triggers/``).

A POST to learning-assignments is a manual assign (people, a team, a location and/or a role)
answered with what was created and who was skipped and why; gap-triggered assignments are made
by the event handlers, never by POST. Writes go through learning.assignments.
"""

import django_filters as f
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from cem.api.base import TenantModelViewSet, TenantReadOnlyViewSet
from cem.models import Employee
from learning import assignments as services
from learning import gaps
from learning.models import Assignment, GapRule, GapTrigger, LearningPath, Lesson

# --- serializers ---------------------------------------------------------------------------------


class LearningAssignmentSerializer(serializers.ModelSerializer):
    lesson_title = serializers.CharField(source="lesson.title", read_only=True, default="")
    path_name = serializers.CharField(source="path.name", read_only=True, default="")
    employee_name = serializers.CharField(source="employee.name", read_only=True, default="")
    location_name = serializers.CharField(source="location.name", read_only=True, default="")
    overdue = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = [
            "id",
            "lesson",
            "lesson_title",
            "path",
            "path_name",
            "employee",
            "employee_name",
            "user",
            "location",
            "location_name",
            "team",
            "role",
            "source",
            "status",
            "assigned_by",
            "rule",
            "trigger",
            "reason",
            "assigned_at",
            "due_at",
            "overdue",
            "started_at",
            "completed_at",
            "progress",
            "withdrawn_at",
            "withdrawn_note",
            "reminder_sent_at",
            "overdue_notified_at",
            "escalated_at",
        ]
        read_only_fields = fields

    def get_overdue(self, a) -> bool:
        return a.status in Assignment.OPEN and a.due_at < timezone.now()


class AssignInputSerializer(serializers.Serializer):
    lesson = serializers.PrimaryKeyRelatedField(queryset=Lesson.objects, required=False, allow_null=True)
    path = serializers.PrimaryKeyRelatedField(queryset=LearningPath.objects, required=False, allow_null=True)
    employees = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, max_length=5000
    )
    team = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    location = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    role = serializers.ChoiceField(choices=Employee.Role.choices, required=False, allow_blank=True)
    due_at = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="A date (end of that day, local time) or a date-time; default in 7 days.",
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=services.NOTE_MAX)


class SkippedSerializer(serializers.Serializer):
    employee_id = serializers.IntegerField()
    name = serializers.CharField()
    reason = serializers.CharField()


class AssignResultSerializer(serializers.Serializer):
    created = LearningAssignmentSerializer(many=True)
    skipped = SkippedSerializer(many=True)


class WithdrawSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=services.NOTE_MAX)


class GapRuleSerializer(serializers.ModelSerializer):
    lesson = serializers.PrimaryKeyRelatedField(queryset=Lesson.objects, required=False, allow_null=True)
    path = serializers.PrimaryKeyRelatedField(queryset=LearningPath.objects, required=False, allow_null=True)

    class Meta:
        model = GapRule
        fields = [
            "id",
            "name",
            "standard",
            "subject",
            "target",
            "source",
            "threshold",
            "window_days",
            "min_points",
            "lesson",
            "path",
            "cooldown_days",
            "due_days",
            "holdout_share",
            "active",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        extra_kwargs = {
            "threshold": {"min_value": 0, "max_value": 100},
            "holdout_share": {"min_value": 0, "max_value": 1},
        }

    def validate(self, attrs):
        current = self.instance

        def value(name):
            return attrs[name] if name in attrs else getattr(current, name, None)

        errors = gaps.rule_shape_errors(
            subject=value("subject"), target=value("target"), lesson=value("lesson"), path=value("path")
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class GapTriggerSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    location_name = serializers.CharField(source="location.name", read_only=True, default="")
    employee_name = serializers.CharField(source="employee.name", read_only=True, default="")

    class Meta:
        model = GapTrigger
        fields = [
            "id",
            "rule",
            "rule_name",
            "standard",
            "subject",
            "location",
            "location_name",
            "team",
            "employee",
            "employee_name",
            "score",
            "points",
            "evidence",
            "outcome",
            "skip_reason",
            "holdout_until",
            "created_at",
        ]
        read_only_fields = fields


# --- filters ---------------------------------------------------------------------------------------


def overdue_q(now=None) -> Q:
    return Q(status__in=Assignment.OPEN, due_at__lt=now or timezone.now())


class AssignmentFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=Assignment.Status.choices)
    source = f.ChoiceFilter(choices=Assignment.Source.choices)
    lesson = f.NumberFilter()
    path = f.NumberFilter()
    employee = f.NumberFilter()
    location = f.NumberFilter()
    rule = f.NumberFilter()
    overdue = f.BooleanFilter(method="filter_overdue", help_text="Open and past its due date.")

    def filter_overdue(self, queryset, name, value):
        return queryset.filter(overdue_q()) if value else queryset.exclude(overdue_q())


class GapRuleFilter(f.FilterSet):
    active = f.BooleanFilter()
    standard = f.NumberFilter()
    lesson = f.NumberFilter()


class GapTriggerFilter(f.FilterSet):
    rule = f.NumberFilter()
    outcome = f.ChoiceFilter(choices=GapTrigger.Outcome.choices)
    subject = f.ChoiceFilter(choices=GapRule.Subject.choices)
    location = f.NumberFilter()
    employee = f.NumberFilter()
    standard = f.NumberFilter()


# --- viewsets --------------------------------------------------------------------------------------


class LearningAssignmentViewSet(TenantReadOnlyViewSet):
    """Assignments in the caller's scope; POST assigns manually; ``withdraw`` takes one back."""

    queryset = Assignment.objects
    serializer_class = LearningAssignmentSerializer
    resource = "training"
    api_app = "learning"
    filterset_class = AssignmentFilter
    ordering_fields = ["due_at", "assigned_at", "id"]
    http_method_names = ["get", "post", "head", "options"]
    action_verbs = {"withdraw": "change"}

    def safely_get_queryset(self, queryset):
        return queryset.select_related("lesson", "path", "employee", "location").order_by("due_at", "pk")

    @extend_schema(request=AssignInputSerializer, responses={201: AssignResultSerializer})
    def create(self, request, *args, **kwargs):
        body = AssignInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.assignment_create(
            organization=self.organization,
            actor=self.actor,
            membership=request._request.membership,
            data=body.validated_data,
        )
        created = self.get_queryset().filter(pk__in=[a.pk for a in result.created])
        return Response(
            {"created": LearningAssignmentSerializer(created, many=True).data, "skipped": result.skipped},
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=WithdrawSerializer, responses=LearningAssignmentSerializer)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        """Take back an open assignment, with a note saying why (emits AssignmentWithdrawn)."""
        assignment = self.get_object()
        body = WithdrawSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        services.assignment_withdraw(
            organization=self.organization,
            actor=self.actor,
            assignment=assignment,
            note=body.validated_data["note"],
        )
        return Response(LearningAssignmentSerializer(self.get_queryset().get(pk=assignment.pk)).data)


class GapRuleViewSet(TenantModelViewSet):
    queryset = GapRule.objects
    serializer_class = GapRuleSerializer
    resource = "gap_rules"
    api_app = "learning"
    filterset_class = GapRuleFilter

    def safely_get_queryset(self, queryset):
        return queryset.order_by("name", "pk")

    def perform_destroy(self, instance):
        if instance.triggers.exists():
            raise serializers.ValidationError(
                {"active": "This rule has found gaps; deactivate it instead, so their evidence is kept."}
            )
        super().perform_destroy(instance)


class GapTriggerViewSet(TenantReadOnlyViewSet):
    """Every gap a rule found: the scores and data behind it, and what was done (assigned,
    held out as the control group, or skipped and why)."""

    queryset = GapTrigger.objects
    serializer_class = GapTriggerSerializer
    resource = "gap_rules"
    api_app = "learning"
    filterset_class = GapTriggerFilter

    def safely_get_queryset(self, queryset):
        return queryset.select_related("rule", "location", "employee").order_by("-created_at", "-pk")


def register(router) -> None:
    router.register("learning-assignments", LearningAssignmentViewSet, basename="learning-assignment")
    router.register("gap-rules", GapRuleViewSet)
    router.register("gap-triggers", GapTriggerViewSet)
