"""Learning API: the learner's portal and the xAPI statements.

- ``/api/v1/my-learning/``: the caller's own assignments (lesson or path, why, due, status,
  progress), with ``start`` / ``progress`` / ``complete`` on one, and ``self-start`` of a
  published lesson nobody assigned. Learners are people: an API key has no lessons to take.
- ``/api/v1/quiz-attempts/``: start an attempt (POST), ``submit`` it, read one's own. Which
  choices are right and the explanations appear only once an attempt is submitted.
- ``/api/v1/xapi-statements/``: the statements in the caller's scope; ``?format=json`` downloads
  all of them as one JSON array.

Writes go through learning.progress and learning.quizzes.
"""

from __future__ import annotations

import json

import django_filters as f
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from cem.api.base import TenantReadOnlyViewSet
from cem.api.filters import IsoDateTimeFilter
from cem.tenancy import current_tenant_id, tenant_context
from learning import progress, quizzes
from learning.models import Assignment, LearningPath, Lesson, Quiz, QuizAttempt, Statement
from learning.portal_selectors import DUE_SOON, my_assignments, own_q

EXPORT_BATCH = 1000


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's state does not allow this."
    default_code = "conflict"


def _run(func, **kwargs):
    try:
        return func(**kwargs)
    except progress.Conflict as exc:
        raise ConflictError({exc.field: [exc.message]}) from exc


class LearnerMixin:
    def learner(self) -> progress.Learner:
        membership = getattr(self.request._request, "membership", None)
        if membership is None or getattr(self.request._request, "api_key", None) is not None:
            raise exceptions.PermissionDenied("Only signed-in people take lessons.")
        return progress.Learner.of(membership, user=self.request.user)

    def own(self, queryset):
        membership = getattr(self.request._request, "membership", None)
        if membership is None or getattr(self.request._request, "api_key", None) is not None:
            return queryset.none()
        return queryset.filter(own_q(membership))


# --- my learning ---------------------------------------------------------------------------------


class RefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()


class MyAssignmentSerializer(serializers.ModelSerializer):
    lesson = serializers.SerializerMethodField()
    path = serializers.SerializerMethodField()
    overdue = serializers.SerializerMethodField()
    due_soon = serializers.SerializerMethodField()
    has_quiz = serializers.SerializerMethodField()

    class Meta:
        model = Assignment
        fields = [
            "id",
            "lesson",
            "path",
            "source",
            "reason",
            "status",
            "assigned_at",
            "due_at",
            "started_at",
            "completed_at",
            "progress",
            "completed_lesson_ids",
            "overdue",
            "due_soon",
            "has_quiz",
        ]
        read_only_fields = fields

    def get_lesson(self, obj) -> dict | None:
        if obj.lesson is None:
            return None
        return {
            "id": obj.lesson.pk,
            "title": obj.lesson.title,
            "estimated_minutes": obj.lesson.estimated_minutes,
        }

    def get_path(self, obj) -> dict | None:
        if obj.path is None:
            return None
        steps = [
            {"position": s.position, "lesson": s.lesson_id, "title": s.lesson.title}
            for s in obj.path.steps.all()
        ]
        return {"id": obj.path.pk, "name": obj.path.name, "steps": steps}

    def get_overdue(self, obj) -> bool:
        return obj.status in Assignment.OPEN and obj.due_at < timezone.now()

    def get_due_soon(self, obj) -> bool:
        now = timezone.now()
        return obj.status in Assignment.OPEN and now <= obj.due_at <= now + DUE_SOON

    def get_has_quiz(self, obj) -> bool:
        return bool(getattr(obj, "has_quiz", False))


class LessonStepSerializer(serializers.Serializer):
    lesson = serializers.IntegerField(
        required=False, help_text="For a path assignment: the lesson of the path."
    )


class ProgressSerializer(LessonStepSerializer):
    percent = serializers.IntegerField(min_value=0, max_value=100)


class SelfStartSerializer(serializers.Serializer):
    lesson = serializers.PrimaryKeyRelatedField(queryset=Lesson.objects, required=False)
    path = serializers.PrimaryKeyRelatedField(
        queryset=LearningPath.objects, required=False, help_text="Or a learning path to start."
    )

    def validate(self, attrs):
        if ("lesson" in attrs) == ("path" in attrs):
            raise serializers.ValidationError({"lesson": "Name a lesson or a learning path (one of two)."})
        return attrs


class CompleteResultSerializer(serializers.Serializer):
    result = serializers.ChoiceField(choices=["completed", "already", "quiz_required"])
    quiz = serializers.IntegerField(allow_null=True)
    certificate = serializers.UUIDField(allow_null=True)
    assignment = MyAssignmentSerializer()


class MyLearningFilter(f.FilterSet):
    state = f.ChoiceFilter(
        choices=[(c, c) for c in ("open", "due_soon", "overdue", "completed")],
        method="filter_state",
        help_text="open, due_soon, overdue or completed",
    )

    def filter_state(self, queryset, name, value):
        now = timezone.now()
        if value == "completed":
            return queryset.filter(status=Assignment.Status.COMPLETED)
        queryset = queryset.filter(status__in=Assignment.OPEN)
        if value == "overdue":
            return queryset.filter(due_at__lt=now)
        if value == "due_soon":
            return queryset.filter(due_at__gte=now, due_at__lte=now + DUE_SOON)
        return queryset


class MyLearningViewSet(LearnerMixin, TenantReadOnlyViewSet):
    """The caller's own assignments; every action is the learner's ("training.take")."""

    resource = "training"
    api_app = "learning"
    queryset = Assignment.objects
    serializer_class = MyAssignmentSerializer
    filterset_class = MyLearningFilter
    action_verbs = {
        "list": "take",
        "retrieve": "take",
        "start": "take",
        "progress": "take",
        "complete": "take",
        "self_start": "take",
    }

    def safely_get_queryset(self, queryset):
        return my_assignments(self.own(queryset))

    def _step(self):
        body = LessonStepSerializer(data=self.request.data)
        body.is_valid(raise_exception=True)
        return body.validated_data.get("lesson")

    def _done(self, assignment, code=status.HTTP_200_OK):
        return Response(MyAssignmentSerializer(self.get_queryset().get(pk=assignment.pk)).data, status=code)

    @extend_schema(request=LessonStepSerializer, responses=MyAssignmentSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        """assigned → in progress (records an xAPI "experienced" statement)."""
        assignment = self.get_object()
        row = _run(
            progress.lesson_start,
            organization=self.organization,
            actor=self.actor,
            learner=self.learner(),
            assignment=assignment,
            lesson_id=self._step(),
        )
        return self._done(row)

    @extend_schema(request=ProgressSerializer, responses=MyAssignmentSerializer)
    @action(detail=True, methods=["post"])
    def progress(self, request, pk=None):
        """Save how far into the lesson the learner is (0-100; only grows)."""
        assignment = self.get_object()
        body = ProgressSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        row = _run(
            progress.progress_save,
            organization=self.organization,
            actor=self.actor,
            learner=self.learner(),
            assignment=assignment,
            percent=body.validated_data["percent"],
            lesson_id=body.validated_data.get("lesson"),
        )
        return self._done(row)

    @extend_schema(request=LessonStepSerializer, responses=CompleteResultSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        """Finish the lesson. ``result`` is "quiz_required" (with the quiz id) when the lesson's quiz
        must be passed first; repeating answers "already"."""
        assignment = self.get_object()
        outcome = _run(
            progress.lesson_complete,
            organization=self.organization,
            actor=self.actor,
            learner=self.learner(),
            assignment=assignment,
            lesson_id=self._step(),
        )
        return Response(
            {
                "result": outcome.status,
                "quiz": outcome.quiz.pk if outcome.quiz else None,
                "certificate": str(outcome.certificate.code) if outcome.certificate else None,
                "assignment": MyAssignmentSerializer(self.get_queryset().get(pk=assignment.pk)).data,
            }
        )

    @extend_schema(request=SelfStartSerializer, responses={201: MyAssignmentSerializer})
    @action(detail=False, methods=["post"], url_path="self-start")
    def self_start(self, request):
        """Start a published lesson or learning path nobody assigned (it becomes the caller's own
        assignment; starting it again returns the open one)."""
        learner = self.learner()
        body = SelfStartSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        service, content = (
            (progress.lesson_self_start, {"lesson": data["lesson"]})
            if "lesson" in data
            else (progress.path_self_start, {"path": data["path"]})
        )
        row = _run(service, organization=self.organization, actor=self.actor, learner=learner, **content)
        return self._done(row, status.HTTP_201_CREATED)


# --- quiz attempts -------------------------------------------------------------------------------


class AttemptSerializer(serializers.ModelSerializer):
    quiz = serializers.PrimaryKeyRelatedField(queryset=Quiz.objects)
    assignment = serializers.PrimaryKeyRelatedField(
        queryset=Assignment.objects, required=False, allow_null=True, help_text="Default: your open one."
    )
    questions = serializers.SerializerMethodField()
    pass_mark = serializers.DecimalField(
        source="quiz.pass_mark", max_digits=5, decimal_places=2, read_only=True
    )
    attempts_left = serializers.SerializerMethodField()

    class Meta:
        model = QuizAttempt
        fields = [
            "id",
            "quiz",
            "assignment",
            "number",
            "seed",
            "questions",
            "answers",
            "score",
            "passed",
            "pass_mark",
            "attempts_left",
            "started_at",
            "submitted_at",
        ]
        read_only_fields = [f for f in fields if f not in ("quiz", "assignment")]

    def get_questions(self, obj) -> list[dict]:
        if obj.submitted_at is None:
            return quizzes.public_questions(obj)
        return quizzes.attempt_result(obj)

    def get_attempts_left(self, obj) -> int | None:
        return getattr(obj, "attempts_left", None)


class SubmitSerializer(serializers.Serializer):
    answers = serializers.DictField(
        child=serializers.JSONField(),
        help_text="Question id → chosen key, or a list of keys for multiple-answer questions: "
        '{"12": ["a", "c"]}.',
    )


class AttemptFilter(f.FilterSet):
    quiz = f.NumberFilter(field_name="quiz_id")
    assignment = f.NumberFilter(field_name="assignment_id")


class QuizAttemptViewSet(LearnerMixin, mixins.CreateModelMixin, TenantReadOnlyViewSet):
    resource = "training"
    api_app = "learning"
    queryset = QuizAttempt.objects
    serializer_class = AttemptSerializer
    http_method_names = ["get", "post", "head", "options"]
    action_verbs = {"list": "take", "retrieve": "take", "create": "take", "submit": "take"}
    filterset_class = AttemptFilter

    def safely_get_queryset(self, queryset):
        return self.own(queryset).select_related("quiz").order_by("-started_at", "-pk")

    def _with_left(self, attempt):
        attempt = self.get_queryset().get(pk=attempt.pk)
        learner = self.learner()
        assignment = Assignment(pk=attempt.assignment_id) if attempt.assignment_id else None
        used = quizzes._context_attempts(attempt.quiz, learner, assignment).filter(submitted_at__isnull=False)
        attempt.attempts_left = quizzes.attempts_left(attempt.quiz, used.count())
        return attempt

    def create(self, request, *args, **kwargs):
        """Start an attempt at a quiz (or resume the unsubmitted one). 409 names why not:
        ``attempts_allowed`` (all used) or ``passed`` (already passed)."""
        learner = self.learner()
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        lang = request.query_params.get("lang") or getattr(request, "LANGUAGE_CODE", "") or "en"
        attempt = _run(
            quizzes.attempt_start,
            organization=self.organization,
            actor=self.actor,
            learner=learner,
            quiz=body.validated_data["quiz"],
            assignment=body.validated_data.get("assignment"),
            language=lang[:8],
        )
        return Response(AttemptSerializer(self._with_left(attempt)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=SubmitSerializer, responses=AttemptSerializer)
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """Score the attempt; the result shows the right answers and explanations. Submitting again
        returns the first result."""
        attempt = self.get_object()
        body = SubmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        attempt = _run(
            quizzes.attempt_submit,
            organization=self.organization,
            actor=self.actor,
            learner=self.learner(),
            attempt=attempt,
            answers=body.validated_data["answers"],
        )
        return Response(AttemptSerializer(self._with_left(attempt)).data)


# --- xAPI statements -----------------------------------------------------------------------------


class StatementSerializer(serializers.ModelSerializer):
    class Meta:
        model = Statement
        fields = [
            "id",
            "statement_id",
            "verb",
            "employee",
            "user",
            "location",
            "timestamp",
            "stored",
            "forwarded_at",
            "forward_attempts",
            "forward_error",
            "body",
        ]
        read_only_fields = fields


class StatementFilter(f.FilterSet):
    verb = f.ChoiceFilter(choices=[(v, v) for v in ("experienced", "completed", "passed", "failed")])
    employee = f.NumberFilter(field_name="employee_id")
    location = f.NumberFilter(field_name="location_id")
    since = IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")


class StatementViewSet(TenantReadOnlyViewSet):
    resource = "learning_analytics"
    api_app = "learning"
    queryset = Statement.objects
    serializer_class = StatementSerializer
    filterset_class = StatementFilter

    def safely_get_queryset(self, queryset):
        return queryset.order_by("-timestamp", "-id")

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                enum=["json"],
                description="json: download every statement as one array.",
            )
        ]
    )
    def list(self, request, *args, **kwargs):
        if request.query_params.get("format") == "json":
            return self._export(self.filter_queryset(self.get_queryset()))
        return super().list(request, *args, **kwargs)

    def _export(self, queryset):
        tenant_id = current_tenant_id()
        queryset = queryset.order_by("id")

        def rows():
            # Streamed after the view returns, outside the request's tenant context: re-enter it.
            with tenant_context(tenant_id):
                yield "["
                last, first = 0, True
                while True:
                    batch = list(queryset.filter(id__gt=last).values_list("id", "body")[:EXPORT_BATCH])
                    if not batch:
                        break
                    for _pk, body in batch:
                        yield ("" if first else ",") + json.dumps(body, separators=(",", ":"))
                        first = False
                    last = batch[-1][0]
                yield "]"

        response = StreamingHttpResponse(rows(), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="xapi-statements.json"'
        return response


def register(router) -> None:
    router.register("my-learning", MyLearningViewSet, basename="my-learning")
    router.register("quiz-attempts", QuizAttemptViewSet, basename="quiz-attempt")
    router.register("xapi-statements", StatementViewSet, basename="xapi-statement")
