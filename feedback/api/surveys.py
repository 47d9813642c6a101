"""Survey builder API: surveys (settings + triggers), their questions (versioned) and versions.

Writes go through feedback.survey_services; ``PUT /surveys/{id}/questions/`` is the one way to
change questions, so versioning applies to every client.
"""

import django_filters as f
from django.db.models import Max, Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from cem.api.base import RenderStoredMixin, TenantModelViewSet, TenantReadOnlyViewSet
from cem.models import Channel, Touchpoint
from feedback import survey_services as svc
from feedback.models import Question, QuestionType, Survey, SurveyTrigger, SurveyVersion


class QuestionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Question
        fields = [
            "id",
            "key",
            "type",
            "required",
            "text",
            "help_text",
            "choices",
            "scale_min",
            "scale_max",
            "page",
            "position",
            "standard",
            "show_if",
        ]
        read_only_fields = fields


class QuestionInputSerializer(serializers.Serializer):
    """Documents one question of ``PUT …/questions/``; validation is survey_services.clean_questions."""

    key = serializers.SlugField(max_length=60, help_text="Identity across versions; reports combine by key.")
    type = serializers.ChoiceField(choices=QuestionType.choices)
    required = serializers.BooleanField(required=False, default=False)
    text = serializers.DictField(child=serializers.CharField(), help_text='{"en": "…", "es": "…"}')
    help_text = serializers.DictField(child=serializers.CharField(), required=False)
    choices = serializers.ListField(
        child=serializers.DictField(), required=False, help_text='[{"value": "…", "label": {"en": "…"}}]'
    )
    scale_min = serializers.IntegerField(required=False, allow_null=True)
    scale_max = serializers.IntegerField(required=False, allow_null=True)
    page = serializers.IntegerField(required=False, min_value=1, default=1)
    standard = serializers.IntegerField(required=False, allow_null=True)
    show_if = serializers.DictField(
        required=False, allow_null=True, help_text='{"question": "<earlier key>", "op": "lte", "value": 6}'
    )


class QuestionsPutSerializer(serializers.Serializer):
    questions = QuestionInputSerializer(many=True)


class SurveyVersionSerializer(serializers.ModelSerializer):
    questions = QuestionSerializer(many=True, read_only=True)

    class Meta:
        model = SurveyVersion
        fields = ["id", "survey", "number", "created_at", "created_by", "questions"]
        read_only_fields = fields


class TriggerSerializer(serializers.ModelSerializer):
    class Meta:
        model = SurveyTrigger
        fields = ["id", "channel", "touchpoint"]
        read_only_fields = fields


class SurveySerializer(serializers.ModelSerializer):
    triggers = TriggerSerializer(many=True, read_only=True)
    current_version = serializers.SerializerMethodField(help_text="The number of the newest version.")
    channels = serializers.PrimaryKeyRelatedField(
        queryset=Channel.objects,
        many=True,
        write_only=True,
        required=False,
        help_text="Trigger after any interaction on these channels (replaces the current triggers).",
    )
    touchpoints = serializers.PrimaryKeyRelatedField(
        queryset=Touchpoint.objects,
        many=True,
        write_only=True,
        required=False,
        help_text="Trigger after interactions at these touchpoints (replaces the current triggers).",
    )
    questions = serializers.ListField(
        child=serializers.DictField(),
        write_only=True,
        required=False,
        help_text="On create only: the first questions (version 1). Later: PUT …/questions/.",
    )

    class Meta:
        model = Survey
        fields = [
            "id",
            "name",
            "description",
            "status",
            "default_locale",
            "locales",
            "delivery_channel",
            "send_delay_minutes",
            "reminder_after_days",
            "expires_after_days",
            "allowed_origins",
            "public_key",
            "triggers",
            "current_version",
            "channels",
            "touchpoints",
            "questions",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["status", "public_key", "created_at", "updated_at"]
        # Survey names are unique per tenant; the service checks that (the tenant-wide check).
        validators = []

    def get_current_version(self, obj) -> int | None:
        return getattr(obj, "current_version_number", None)

    def validate_questions(self, value):
        if self.instance is not None:
            raise serializers.ValidationError("Change questions with PUT /surveys/{id}/questions/.")
        return value


class SurveyFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=Survey.Status.choices)
    name = f.CharFilter(lookup_expr="icontains")


class SurveyViewSet(RenderStoredMixin, TenantModelViewSet):
    """Surveys and their distribution settings; questions through the ``questions`` action."""

    queryset = Survey.objects
    serializer_class = SurveySerializer
    resource = "surveys"
    api_app = "feedback"
    filterset_class = SurveyFilter
    ordering_fields = ["name", "id", "created_at"]
    action_verbs = {"activate": "change", "archive": "change", "versions": "view"}

    def safely_get_queryset(self, queryset):
        # Meta.ordering does not apply to an aggregating query, so order explicitly.
        qs = queryset.annotate(current_version_number=Max("versions__number")).order_by("name", "id")
        return qs.prefetch_related(Prefetch("triggers", queryset=SurveyTrigger.objects.order_by("pk")))

    def _split(self, data: dict) -> tuple[dict, dict]:
        data = dict(data)
        extra = {name: data.pop(name) for name in ("channels", "touchpoints", "questions") if name in data}
        return data, extra

    def perform_create(self, serializer):
        data, extra = self._split(serializer.validated_data)
        serializer.instance = svc.survey_create(
            organization=self.organization,
            actor=self.actor,
            data=data,
            questions=extra.get("questions"),
            channels=extra.get("channels"),
            touchpoints=extra.get("touchpoints"),
        )

    def perform_update(self, serializer):
        data, extra = self._split(serializer.validated_data)
        survey = svc.survey_update(
            organization=self.organization, actor=self.actor, survey=serializer.instance, data=data
        )
        if "channels" in extra or "touchpoints" in extra:
            current = list(survey.triggers.all())
            svc.survey_triggers_set(
                organization=self.organization,
                actor=self.actor,
                survey=survey,
                channels=extra.get("channels", [t.channel_id for t in current if t.channel_id]),
                touchpoints=extra.get("touchpoints", [t.touchpoint_id for t in current if t.touchpoint_id]),
            )
        serializer.instance = survey

    def perform_destroy(self, instance):
        svc.survey_delete(organization=self.organization, actor=self.actor, survey=instance)

    @extend_schema(
        request=QuestionsPutSerializer,
        responses={200: SurveyVersionSerializer, 400: OpenApiResponse(description="Field errors")},
    )
    @action(detail=True, methods=["get", "put"])
    def questions(self, request, pk=None):
        """GET: the current version. PUT: replace the questions (a new version once answered).

        Body: ``{"questions": [...]}`` or the list itself. Errors name the field:
        ``questions[3].show_if``.
        """
        survey = self.get_object()
        if request.method == "GET":
            version = survey.versions.order_by("-number").first()
            if version is None:
                return Response({"detail": "This survey has no questions yet."}, status=404)
        else:
            body = request.data.get("questions") if isinstance(request.data, dict) else request.data
            version = svc.survey_questions_save(
                organization=self.organization, actor=self.actor, survey=survey, questions=body
            )
        version = SurveyVersion.objects.prefetch_related(
            Prefetch("questions", queryset=Question.objects.order_by("page", "position", "id"))
        ).get(pk=version.pk)
        return Response(SurveyVersionSerializer(version).data)

    @extend_schema(responses=SurveyVersionSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None)  # every version, unpaged
    def versions(self, request, pk=None):
        """Every version, newest first, with its questions."""
        survey = self.get_object()
        versions = (
            SurveyVersion.objects.filter(survey=survey)
            .order_by("-number")
            .prefetch_related(
                Prefetch("questions", queryset=Question.objects.order_by("page", "position", "id"))
            )
        )
        return Response(SurveyVersionSerializer(versions, many=True).data)

    @extend_schema(request=None, responses=SurveySerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        survey = svc.survey_activate(
            organization=self.organization, actor=self.actor, survey=self.get_object()
        )
        return Response(self.get_serializer(self._stored(survey.pk)).data, status=status.HTTP_200_OK)

    @extend_schema(request=None, responses=SurveySerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        survey = svc.survey_archive(
            organization=self.organization, actor=self.actor, survey=self.get_object()
        )
        return Response(self.get_serializer(self._stored(survey.pk)).data, status=status.HTTP_200_OK)


class SurveyVersionFilter(f.FilterSet):
    survey = f.NumberFilter()


class SurveyVersionViewSet(TenantReadOnlyViewSet):
    """Versions with their questions: what a response's ``version`` id points at."""

    queryset = SurveyVersion.objects
    serializer_class = SurveyVersionSerializer
    resource = "surveys"
    api_app = "feedback"
    filterset_class = SurveyVersionFilter

    def safely_get_queryset(self, queryset):
        return queryset.order_by("survey_id", "-number").prefetch_related(
            Prefetch("questions", queryset=Question.objects.order_by("page", "position", "id"))
        )


def register(router) -> None:
    """Add this area's viewsets to the core router."""
    router.register("surveys", SurveyViewSet)
    router.register("survey-versions", SurveyVersionViewSet)
