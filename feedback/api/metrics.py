"""Read-only metrics (NPS, CSAT, CES, FCR, complaint and resolution rates) and the comments list."""

import django_filters as f
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from cem.api.base import TenantViewSetMixin
from cem.api.pagination import LargeListPagination
from cem.api.permissions import caller_role
from feedback import selectors
from feedback.models import Answer, QuestionType


class MetricResultSerializer(serializers.Serializer):
    group = serializers.DictField(
        help_text='Dimension → id (or period start date "YYYY-MM-DD"); {} without group_by.'
    )
    value = serializers.FloatField(allow_null=True, help_text="Rounded to two decimals; null when n is 0.")
    n = serializers.IntegerField(help_text="Sample size: answered questions, responses or cases due.")


@extend_schema_serializer(many=False)  # the list action answers one object, not an array
class MetricsSerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=selectors.METRIC_NAMES)
    results = MetricResultSerializer(many=True)


_DIMENSION_PARAMS = [
    OpenApiParameter(name, OpenApiTypes.STR, description=f"Only these {name} ids (comma-separated).")
    for name in ("region", "location", "team", "employee", "channel", "touchpoint", "segment", "standard")
]


class MetricsViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    """One figure per group; every read is scoped to the caller's place in the hierarchy."""

    queryset = Answer.objects
    resource = "responses"
    api_app = "feedback"
    pagination_class = None
    serializer_class = MetricsSerializer

    def _caller(self) -> selectors.Caller:
        return selectors.Caller(role=caller_role(self.request), membership=self.request._request.membership)

    @extend_schema(
        summary="Exact feedback metrics, grouped and filtered",
        description=(
            "NPS = % promoters (9-10) - % detractors (0-6); CSAT = % top two boxes (4-5 of 5); "
            "CES = mean (1-7); FCR = % yes; complaint_rate = cases per 100 responses; "
            "resolution_rate = % of cases due that were resolved by their SLA deadline. Skipped "
            "questions are not counted; an empty group's value is null. Periods are truncated in "
            "the organization's time zone; `team` is the answering employee's current team."
        ),
        parameters=[
            OpenApiParameter(
                "metric", OpenApiTypes.STR, enum=selectors.METRIC_NAMES, description="Default nps."
            ),
            OpenApiParameter(
                "group_by",
                OpenApiTypes.STR,
                description="Comma-separated: " + ", ".join(selectors.DIMENSIONS) + ".",
            ),
            OpenApiParameter(
                "from",
                OpenApiTypes.STR,
                description="Date (whole day) or ISO datetime, inclusive; organization time zone "
                "unless an offset is given.",
            ),
            OpenApiParameter(
                "to",
                OpenApiTypes.STR,
                description="Date (whole day included) or ISO datetime (exclusive).",
            ),
            OpenApiParameter("survey", OpenApiTypes.INT),
            OpenApiParameter("question", OpenApiTypes.STR, description="Question key (answer metrics)."),
            *_DIMENSION_PARAMS,
        ],
        responses={200: MetricsSerializer, 400: OpenApiResponse(description="The parameter at fault")},
    )
    def list(self, request):
        try:
            query = selectors.parse_metric_query(request.query_params, self.organization)
        except selectors.MetricQueryError as exc:
            raise ValidationError({exc.param: [exc.message]}) from None
        results = selectors.metric_results(organization=self.organization, caller=self._caller(), query=query)
        return Response({"metric": query.metric, "results": results})


class AnswerFilter(f.FilterSet):
    sentiment = f.ChoiceFilter(choices=Answer.Sentiment.choices)
    topic = f.CharFilter(method="filter_topic")
    location = f.NumberFilter()
    survey = f.NumberFilter()
    question = f.CharFilter(field_name="question_key")
    # "from" is a Python keyword, so the two bounds are declared through the class namespace.
    locals()["from"] = f.CharFilter(method="filter_bound")
    locals()["to"] = f.CharFilter(method="filter_bound")

    def filter_topic(self, queryset, name, value):
        return queryset.filter(topics__contains=[value])

    def filter_bound(self, queryset, name, value):
        tz = selectors.org_tz(self.request._request.tenant)
        try:
            moment = selectors.parse_bound(name, value, tz, end=name == "to")
        except selectors.MetricQueryError as exc:
            raise ValidationError({exc.param: [exc.message]}) from None
        if name == "from":
            return queryset.filter(submitted_at__gte=moment)
        return queryset.filter(submitted_at__lt=moment)


class CommentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Answer
        fields = [
            "id",
            "response",
            "survey",
            "question_key",
            "text",
            "sentiment",
            "sentiment_score",
            "topics",
            "submitted_at",
            "location",
            "employee",
            "channel",
            "touchpoint",
        ]
        read_only_fields = fields
        # Read-only fields lose the model's blank=True: "" (not set) is a value they return.
        extra_kwargs = {"sentiment": {"allow_blank": True}}


class AnswerViewSet(TenantViewSetMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Free-text comments with their sentiment and topics, newest first (read-only, cursor-paged)."""

    queryset = Answer.objects
    resource = "responses"
    api_app = "feedback"
    serializer_class = CommentSerializer
    filterset_class = AnswerFilter
    pagination_class = LargeListPagination

    def safely_get_queryset(self, queryset):
        return queryset.filter(question_type=QuestionType.TEXT).exclude(text="")


def register(router) -> None:
    """Add this area's viewsets to the core router."""
    router.register("metrics", MetricsViewSet, basename="metrics")
    router.register("answers", AnswerViewSet, basename="answers")
