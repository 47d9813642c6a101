"""Learning API: trainer analytics (``/api/v1/learning-analytics/lessons/``) and the lesson
effectiveness snapshots (``/api/v1/lesson-effects/``).

Figures come from learning.analytics with the caller's scope (managers see their region or
store); effectiveness is organization-wide and computed by a Celery task (learning/effect_data.py),
which ``POST /lesson-effects/recompute/`` queues on demand.
"""

import django_filters as f
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from cem.api.base import TenantReadOnlyViewSet, TenantViewSetMixin
from cem.api.permissions import caller_role
from learning import analytics
from learning.models import Assignment, LessonEffect

# --- serializers ---------------------------------------------------------------------------------


class QuizFiguresSerializer(serializers.Serializer):
    attempts = serializers.IntegerField(help_text="Submitted attempts in the period.")
    learners = serializers.IntegerField()
    attempts_per_learner = serializers.FloatField(allow_null=True)
    avg_score = serializers.FloatField(allow_null=True, help_text="Mean score, 0-100.")
    pass_rate = serializers.FloatField(allow_null=True, help_text="% of attempts that passed.")


class AssignmentFiguresSerializer(serializers.Serializer):
    sent = serializers.IntegerField(help_text="Lesson assignments made in the period.")
    manual = serializers.IntegerField()
    automatic = serializers.IntegerField(help_text="Made by gap rules.")
    other = serializers.IntegerField(help_text="Certification and self-started.")
    withdrawn = serializers.IntegerField()
    completed = serializers.IntegerField()
    completion_rate = serializers.FloatField(allow_null=True, help_text="% completed of sent, not withdrawn.")
    due = serializers.IntegerField(help_text="Completed, or past their due date and not withdrawn.")
    on_time = serializers.IntegerField()
    on_time_rate = serializers.FloatField(allow_null=True, help_text="% completed by the due date of due.")
    quiz = QuizFiguresSerializer()


class LessonStatsRowSerializer(AssignmentFiguresSerializer):
    key = serializers.CharField(
        allow_null=True, help_text='Lesson, location or team id, or the period start "YYYY-MM-DD".'
    )
    name = serializers.CharField()


class LessonStatsSerializer(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=analytics.GROUPS)
    totals = AssignmentFiguresSerializer()
    results = LessonStatsRowSerializer(many=True)


class LessonEffectSerializer(serializers.ModelSerializer):
    lesson_title = serializers.CharField(source="lesson.title", read_only=True)
    standard_code = serializers.CharField(source="standard.code", read_only=True)
    standard_title = serializers.CharField(source="standard.title", read_only=True)

    class Meta:
        model = LessonEffect
        fields = [
            "id",
            "lesson",
            "lesson_title",
            "standard",
            "standard_code",
            "standard_title",
            "computed_at",
            "treated_n",
            "control_n",
            "treated_change",
            "control_change",
            "difference",
            "ci_low",
            "ci_high",
            "verdict",
            "changes",
        ]
        read_only_fields = fields


# --- views ---------------------------------------------------------------------------------------

_PARAMS = [
    OpenApiParameter(
        "period", OpenApiTypes.STR, enum=list(analytics.PERIODS), description="Default 90 (days)."
    ),
    OpenApiParameter("from", OpenApiTypes.DATE, description="Start date (overrides period)."),
    OpenApiParameter("to", OpenApiTypes.DATE, description="End date, that whole day included."),
    OpenApiParameter("location", OpenApiTypes.INT),
    OpenApiParameter("team", OpenApiTypes.INT),
    OpenApiParameter("lesson", OpenApiTypes.INT),
    OpenApiParameter(
        "group_by", OpenApiTypes.STR, enum=list(analytics.GROUPS), description="Default lesson."
    ),
]


class LessonStatsViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    """Most-sent lessons, completion and on-time rates, quiz scores and attempts."""

    queryset = Assignment.objects
    resource = "learning_analytics"
    api_app = "learning"
    pagination_class = None
    serializer_class = LessonStatsSerializer

    @extend_schema(
        summary="Lesson assignment and quiz figures, grouped and filtered",
        description=(
            "Per lesson (or location, team, week, month): assignments sent (manual / automatic "
            "/ other), completion rate (completed / sent, withdrawn left out), on-time rate "
            "(completed by the due date / completed or past due), quiz attempts, average score, "
            "pass rate and attempts per learner. Scoped to the caller's region or store."
        ),
        parameters=_PARAMS,
        responses={200: LessonStatsSerializer, 400: OpenApiResponse(description="The parameter at fault")},
    )
    def list(self, request):
        try:
            query = analytics.parse_query(request.query_params, self.organization)
        except analytics.AnalyticsQueryError as exc:
            raise ValidationError({exc.param: [exc.message]}) from None
        caller = analytics.Caller(role=caller_role(request), membership=request._request.membership)
        payload = {
            "group_by": query.group_by,
            "totals": analytics.totals(caller=caller, query=query),
            "results": analytics.stats(caller=caller, query=query),
        }
        return Response(LessonStatsSerializer(payload).data)


class LessonEffectFilter(f.FilterSet):
    # Plain number filters: a model-derived one would query the tenant table at import time.
    lesson = f.NumberFilter()
    standard = f.NumberFilter()
    verdict = f.ChoiceFilter(choices=LessonEffect.Verdict.choices)


class RecomputeSerializer(serializers.Serializer):
    queued = serializers.BooleanField()


class LessonEffectViewSet(TenantReadOnlyViewSet):
    """The latest effectiveness figures per lesson and standard (recomputed hourly)."""

    queryset = LessonEffect.objects
    resource = "learning_analytics"
    api_app = "learning"
    serializer_class = LessonEffectSerializer
    filterset_class = LessonEffectFilter
    action_verbs = {"recompute": "change"}

    def safely_get_queryset(self, queryset):
        return queryset.select_related("lesson", "standard").order_by("lesson__title", "standard__code")

    @extend_schema(
        summary="Recompute the effectiveness figures now (queued)",
        request=None,
        responses={202: RecomputeSerializer},
    )
    @action(detail=False, methods=["post"])
    def recompute(self, request):
        from learning.analytics_tasks import lesson_effects_compute

        tenant_id = self.organization.pk
        transaction.on_commit(lambda: lesson_effects_compute.delay(tenant_id))
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)


def register(router) -> None:
    router.register("learning-analytics/lessons", LessonStatsViewSet, basename="learning-analytics-lessons")
    router.register("lesson-effects", LessonEffectViewSet, basename="lesson-effects")
