"""Learning content API: lessons (versions, publish, archive, attachments), quizzes with their
questions, libraries and learning paths. Resource "lessons".

Every write goes through learning.content, so versioning and validation are the same for the
API and the trainer pages. Callers who may not change lessons (learners) see published content
only, and quiz questions without their answers.
"""

from __future__ import annotations

import django_filters as f
from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from cem.api.base import RenderStoredMixin, TenantModelViewSet, TenantReadOnlyViewSet
from cem.api.parsers import JSONParser
from cem.api.permissions import caller_role
from cem.models import SkillCategory, Standard
from cem.permissions import role_can
from cem.throttle import content_length
from learning import content as svc
from learning import content_selectors as sel
from learning.models import (
    Audience,
    ContentStatus,
    LearningPath,
    Lesson,
    LessonAttachment,
    LessonVersion,
    Library,
    PathStep,
    Quiz,
    QuizQuestion,
)

MULTIPART_SLACK = 64 * 1024


def _can_edit(request) -> bool:
    return role_can(caller_role(request) or "", "lessons.change")


def _for_learner(request, queryset, audience_field: str = "audience"):
    """Learners get published content for their audience (shoppers: certification content)."""
    if _can_edit(request):
        return queryset
    audiences = sel.learner_audiences(caller_role(request))
    if audiences is not None:
        queryset = queryset.filter(**{f"{audience_field}__in": audiences})
    return queryset


# --- serializers ---------------------------------------------------------------------------------


class LessonAttachmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = LessonAttachment
        fields = ["id", "version", "name", "content_type", "size", "created_at"]
        read_only_fields = fields


class LessonVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = LessonVersion
        fields = [
            "id",
            "number",
            "title",
            "body",
            "body_html",
            "video_url",
            "translations",
            "estimated_minutes",
            "published_at",
            "created_at",
        ]
        read_only_fields = fields


class LessonVersionDetailSerializer(LessonVersionSerializer):
    attachments = LessonAttachmentSerializer(many=True, read_only=True)

    class Meta(LessonVersionSerializer.Meta):
        fields = [*LessonVersionSerializer.Meta.fields, "attachments"]
        read_only_fields = fields


class LessonSerializer(serializers.ModelSerializer):
    standards = serializers.PrimaryKeyRelatedField(many=True, queryset=Standard.objects, required=False)
    skill_categories = serializers.PrimaryKeyRelatedField(
        many=True, queryset=SkillCategory.objects, required=False
    )
    body = serializers.CharField(
        write_only=True, required=False, allow_blank=True, help_text="Markdown (CommonMark with tables)."
    )
    video_url = serializers.CharField(write_only=True, required=False, allow_blank=True, max_length=200)
    translations = serializers.JSONField(
        write_only=True, required=False, help_text='{"es": {"title": "…", "body": "Markdown"}}'
    )
    version = LessonVersionSerializer(source="current_version", read_only=True)

    class Meta:
        model = Lesson
        fields = [
            "id",
            "title",
            "summary",
            "language",
            "estimated_minutes",
            "audience",
            "status",
            "standards",
            "skill_categories",
            "body",
            "video_url",
            "translations",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["status", "created_at", "updated_at"]
        # Titles are unique per tenant; the service checks that within the tenant.
        validators = []


class LessonContentSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The version number shown.")
    language = serializers.CharField(help_text="The language of the text shown.")
    title = serializers.CharField()
    body_html = serializers.CharField(help_text="Sanitised HTML.")
    fallback = serializers.BooleanField(help_text="True when the asked language has no translation.")


class LessonUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="PDF, PNG, JPEG, .docx or .pptx, at most 10 MB; typed by content.")
    name = serializers.CharField(required=False, allow_blank=True, max_length=200)


class TooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = {"file": [f"At most {svc.MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB."]}
    default_code = "too_large"


class QuizQuestionSerializer(serializers.ModelSerializer):
    choices = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text='[{"key": "a", "text": "…", "correct": true}]; true/false use keys "true"/"false".',
    )
    answer = serializers.BooleanField(
        write_only=True, required=False, help_text="For true/false questions instead of choices."
    )
    translations = serializers.JSONField(
        required=False, help_text='{"es": {"text": "…", "explanation": "…", "choices": {"a": "…"}}}'
    )

    class Meta:
        model = QuizQuestion
        fields = ["id", "position", "kind", "text", "choices", "answer", "explanation", "translations"]
        read_only_fields = ["id", "position"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is not None and not _can_edit(request):
            # Learners take the quiz through the portal; the catalogue never gives the answers away.
            data["choices"] = [{k: v for k, v in c.items() if k != "correct"} for c in data["choices"]]
            data.pop("explanation", None)
        return data


class QuizSerializer(serializers.ModelSerializer):
    lesson = serializers.PrimaryKeyRelatedField(queryset=Lesson.objects, allow_null=True, required=False)
    questions = QuizQuestionSerializer(
        many=True, required=False, help_text="Given: replaces all questions (attempts keep their copy)."
    )

    class Meta:
        model = Quiz
        fields = [
            "id",
            "lesson",
            "title",
            "pass_mark",
            "attempts_allowed",
            "randomise",
            "status",
            "questions",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        extra_kwargs = {"attempts_allowed": {"help_text": "null: unlimited"}}


class LibrarySerializer(serializers.ModelSerializer):
    skill_category = serializers.PrimaryKeyRelatedField(
        queryset=SkillCategory.objects, allow_null=True, required=False
    )
    lessons = serializers.PrimaryKeyRelatedField(many=True, queryset=Lesson.objects, required=False)
    lesson_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Library
        fields = ["id", "name", "description", "skill_category", "lessons", "lesson_count"]
        validators = []


class PathStepSerializer(serializers.ModelSerializer):
    lesson_title = serializers.CharField(source="lesson.title", read_only=True)

    class Meta:
        model = PathStep
        fields = ["id", "position", "lesson", "lesson_title"]
        read_only_fields = fields


class LearningPathSerializer(serializers.ModelSerializer):
    lessons = serializers.PrimaryKeyRelatedField(
        many=True,
        queryset=Lesson.objects,
        required=False,
        write_only=True,
        help_text="The lessons in order; given, it sets the steps.",
    )
    steps = PathStepSerializer(many=True, read_only=True)

    class Meta:
        model = LearningPath
        fields = ["id", "name", "description", "audience", "status", "lessons", "steps", "created_at"]
        read_only_fields = ["created_at"]
        validators = []


class ReorderSerializer(serializers.Serializer):
    lessons = serializers.ListField(
        child=serializers.IntegerField(), help_text="Each of the path's lesson ids once, in the new order."
    )


# --- filters -------------------------------------------------------------------------------------


class LessonFilter(f.FilterSet):
    q = f.CharFilter(method="filter_q", help_text="Title, summary, standard or skill category contains.")
    status = f.ChoiceFilter(choices=ContentStatus.choices)
    audience = f.ChoiceFilter(choices=Audience.choices)
    language = f.CharFilter()
    standard = f.NumberFilter(field_name="standard_links__standard")
    skill_category = f.NumberFilter(field_name="skill_links__skill_category")
    library = f.NumberFilter(field_name="library_links__library")

    def filter_q(self, queryset, name, value):
        return sel.text_match(queryset, value)


class QuizFilter(f.FilterSet):
    lesson = f.NumberFilter()
    status = f.ChoiceFilter(choices=ContentStatus.choices)


class LibraryFilter(f.FilterSet):
    skill_category = f.NumberFilter()
    name = f.CharFilter(lookup_expr="icontains")


class LearningPathFilter(f.FilterSet):
    audience = f.ChoiceFilter(choices=Audience.choices)
    status = f.ChoiceFilter(choices=ContentStatus.choices)


class AttachmentFilter(f.FilterSet):
    lesson = f.NumberFilter(field_name="version__lesson")
    version = f.NumberFilter()


# --- viewsets ------------------------------------------------------------------------------------


class _ContentViewSet(RenderStoredMixin, TenantModelViewSet):
    resource = "lessons"
    api_app = "learning"

    def _data(self, serializer) -> dict:
        return dict(serializer.validated_data)


class LessonViewSet(_ContentViewSet):
    """Lessons. Editing a published lesson creates a new version (``version`` is the current one);
    learners see published lessons only. Archive instead of deleting."""

    queryset = Lesson.objects
    serializer_class = LessonSerializer
    filterset_class = LessonFilter
    ordering_fields = ["title", "id", "updated_at"]
    http_method_names = ["get", "post", "patch", "put", "head", "options"]
    action_verbs = {
        "versions": "view",
        "content": "view",
        "publish": "change",
        "archive": "change",
        "attachments": "view",
        "attachments_add": "change",
    }

    def safely_get_queryset(self, queryset):
        queryset = queryset.select_related("current_version").prefetch_related(
            "standards", "skill_categories"
        )
        if not _can_edit(self.request):
            queryset = _for_learner(self.request, queryset).filter(status=ContentStatus.PUBLISHED)
        return queryset.distinct().order_by("title", "id")

    def initial(self, request, *args, **kwargs):
        # An oversized upload is refused by its declared length, before the parser reads it.
        if (
            self.action == "attachments_add"
            and content_length(request) > svc.MAX_ATTACHMENT_BYTES + MULTIPART_SLACK
        ):
            raise TooLarge()
        super().initial(request, *args, **kwargs)

    def perform_create(self, serializer):
        serializer.instance = svc.lesson_create(
            organization=self.organization, actor=self.actor, data=self._data(serializer)
        )

    def perform_update(self, serializer):
        serializer.instance, _ = svc.lesson_update(
            organization=self.organization,
            actor=self.actor,
            lesson=serializer.instance,
            data=self._data(serializer),
        )

    @extend_schema(responses=LessonVersionDetailSerializer(many=True))
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        """Every version of the lesson, newest first, with its attachments."""
        lesson = self.get_object()
        return Response(LessonVersionDetailSerializer(sel.lesson_versions(lesson), many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("lang", str, description="en or es; falls back to the lesson's language")
        ],
        responses=LessonContentSerializer,
    )
    @action(detail=True, methods=["get"])
    def content(self, request, pk=None):
        """What a learner reading in ``?lang=`` sees of the current version (never a missing text)."""
        lesson = self.get_object()
        version = lesson.current_version
        if version is None:
            raise Http404("This lesson has no content yet.")
        shown = svc.lesson_content(version, request.query_params.get("lang"), lesson_language=lesson.language)
        return Response(LessonContentSerializer({**shown, "version": version.number}).data)

    @extend_schema(
        request=None, responses={200: LessonSerializer, 400: OpenApiResponse(description="No content")}
    )
    @action(detail=True, methods=["post"])
    def publish(self, request, pk=None):
        """Make the lesson (its current version) visible to learners."""
        lesson = svc.lesson_publish(
            organization=self.organization, actor=self.actor, lesson=self.get_object()
        )
        return Response(self.get_serializer(self._stored(lesson.pk)).data)

    @extend_schema(request=None, responses=LessonSerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        """Take the lesson out of the catalogue; assignments and completions keep it."""
        lesson = svc.lesson_archive(
            organization=self.organization, actor=self.actor, lesson=self.get_object()
        )
        return Response(self.get_serializer(self._stored(lesson.pk)).data)

    @extend_schema(responses=LessonAttachmentSerializer(many=True))
    @action(detail=True, methods=["get"], parser_classes=[MultiPartParser, JSONParser])
    def attachments(self, request, pk=None):
        """The attachments of the lesson's current version."""
        lesson = self.get_object()
        rows = LessonAttachment.objects.filter(version_id=lesson.current_version_id).order_by("name", "pk")
        return Response(LessonAttachmentSerializer(rows, many=True).data)

    @extend_schema(
        request={"multipart/form-data": LessonUploadSerializer},
        responses={
            201: LessonAttachmentSerializer,
            400: OpenApiResponse(description="Not an allowed type (file)"),
            413: OpenApiResponse(description="Larger than 10 MB"),
        },
    )
    @attachments.mapping.post
    def attachments_add(self, request, pk=None):
        """Upload an attachment (multipart ``file``, optional ``name``); a published lesson gets a
        new version holding it."""
        lesson = self.get_object()
        body = LessonUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        attachment = svc.attachment_add(
            organization=self.organization,
            actor=self.actor,
            lesson=lesson,
            upload=body.validated_data["file"],
            name=body.validated_data.get("name") or "",
        )
        return Response(LessonAttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)


class LessonAttachmentViewSet(TenantReadOnlyViewSet):
    """Lesson attachments (all versions); ``download`` streams the file."""

    queryset = LessonAttachment.objects
    serializer_class = LessonAttachmentSerializer
    resource = "lessons"
    api_app = "learning"
    filterset_class = AttachmentFilter
    action_verbs = {"download": "view"}

    def safely_get_queryset(self, queryset):
        if not _can_edit(self.request):
            queryset = _for_learner(self.request, queryset, "version__lesson__audience").filter(
                version__lesson__status=ContentStatus.PUBLISHED
            )
        return queryset.order_by("version_id", "name", "pk")

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiResponse(description="The file")})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        attachment = self.get_object()
        try:
            handle = attachment.file.open("rb")
        except (FileNotFoundError, OSError):
            raise Http404("The file is missing.") from None
        response = FileResponse(
            handle, as_attachment=True, filename=attachment.name, content_type=attachment.content_type
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response


class QuizViewSet(_ContentViewSet):
    """Quizzes with nested questions (``questions`` given on write replaces them all)."""

    queryset = Quiz.objects
    serializer_class = QuizSerializer
    filterset_class = QuizFilter
    http_method_names = ["get", "post", "patch", "put", "head", "options"]

    def safely_get_queryset(self, queryset):
        queryset = queryset.prefetch_related("questions")
        if not _can_edit(self.request):
            queryset = queryset.filter(status=ContentStatus.PUBLISHED)
        return queryset.order_by("title", "id")

    def _data(self, serializer) -> dict:
        data = dict(serializer.validated_data)
        if "questions" in data:
            data["questions"] = [dict(q) for q in data["questions"]]
        return data

    def perform_create(self, serializer):
        serializer.instance = svc.quiz_create(
            organization=self.organization, actor=self.actor, data=self._data(serializer)
        )

    def perform_update(self, serializer):
        serializer.instance = svc.quiz_update(
            organization=self.organization,
            actor=self.actor,
            quiz=serializer.instance,
            data=self._data(serializer),
        )


class LibraryViewSet(_ContentViewSet):
    """Libraries (collections of lessons); ``lessons`` searches inside one."""

    queryset = Library.objects
    serializer_class = LibrarySerializer
    filterset_class = LibraryFilter
    action_verbs = {"search": "view"}

    def safely_get_queryset(self, queryset):
        return sel.libraries(queryset).prefetch_related("lessons")

    def perform_create(self, serializer):
        serializer.instance = svc.library_create(
            organization=self.organization, actor=self.actor, data=self._data(serializer)
        )

    def perform_update(self, serializer):
        serializer.instance = svc.library_update(
            organization=self.organization,
            actor=self.actor,
            library=serializer.instance,
            data=self._data(serializer),
        )

    @extend_schema(responses=LessonSerializer(many=True))
    @action(detail=True, methods=["get"])
    def search(self, request, pk=None):
        """The library's lessons matching ``?q=`` (title, summary, standard, skill category)."""
        library = self.get_object()
        learner = not _can_edit(request)
        rows = sel.lesson_search(
            q=request.query_params.get("q", ""),
            library=library.pk,
            published_only=learner,
            audiences=sel.learner_audiences(caller_role(request)) if learner else None,
        ).prefetch_related("standards", "skill_categories")
        page = self.paginate_queryset(rows)
        data = LessonSerializer(page, many=True, context=self.get_serializer_context()).data
        return self.get_paginated_response(data)


class LearningPathViewSet(_ContentViewSet):
    """Learning paths: ordered lessons (``lessons`` on write sets the steps; ``reorder`` moves them)."""

    queryset = LearningPath.objects
    serializer_class = LearningPathSerializer
    filterset_class = LearningPathFilter
    action_verbs = {"reorder": "change"}

    def safely_get_queryset(self, queryset):
        queryset = sel.paths(queryset)
        if not _can_edit(self.request):
            queryset = _for_learner(self.request, queryset).filter(status=ContentStatus.PUBLISHED)
        return queryset

    def perform_create(self, serializer):
        serializer.instance = svc.path_create(
            organization=self.organization, actor=self.actor, data=self._data(serializer)
        )

    def perform_update(self, serializer):
        serializer.instance = svc.path_update(
            organization=self.organization,
            actor=self.actor,
            path=serializer.instance,
            data=self._data(serializer),
        )

    @extend_schema(request=ReorderSerializer, responses=LearningPathSerializer)
    @action(detail=True, methods=["post"])
    def reorder(self, request, pk=None):
        path = self.get_object()
        body = ReorderSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        path = svc.path_reorder(
            organization=self.organization,
            actor=self.actor,
            path=path,
            lessons=body.validated_data["lessons"],
        )
        return Response(self.get_serializer(self._stored(path.pk)).data)


def register(router) -> None:
    router.register("lessons", LessonViewSet, basename="lesson")
    router.register("lesson-attachments", LessonAttachmentViewSet, basename="lessonattachment")
    router.register("quizzes", QuizViewSet, basename="quiz")
    router.register("libraries", LibraryViewSet, basename="library")
    router.register("learning-paths", LearningPathViewSet, basename="learningpath")
