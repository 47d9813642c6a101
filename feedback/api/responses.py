"""Responses API: list/detail (scoped, cursor-paginated, answers prefetched), one POST, bulk."""

import functools

import django_filters as f
from django.conf import settings
from django.db.models import Prefetch
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.response import Response

from cem.api.base import TenantReadOnlyViewSet
from cem.api.filters import IsoDateTimeFilter
from cem.api.pagination import LargeListPagination
from cem.api.parsers import JSONParser
from cem.api.serializers import IngestResultSerializer
from feedback import response_ingest
from feedback.models import Answer, ResponseSource, Survey
from feedback.models import Response as SurveyResponse


class ResponsesCSVParser(BaseParser):
    """A text/csv body as rows of the bulk endpoint (question keys as columns)."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        return response_ingest.rows_from_csv(stream.read())


class AnswerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Answer
        fields = [
            "id",
            "question",
            "question_key",
            "question_type",
            "standard",
            "number",
            "text",
            "choices",
            "sentiment",
            "sentiment_score",
            "topics",
        ]
        read_only_fields = fields
        # Read-only fields lose the model's blank=True: "" (not set) is a value they return.
        extra_kwargs = {"sentiment": {"allow_blank": True}}


class ResponseSerializer(serializers.ModelSerializer):
    # Writable only so the schema (and the cross-tenant sweep) see which survey a POST names; the
    # POST itself is validated by feedback.response_ingest, shared with the bulk path.
    survey = serializers.PrimaryKeyRelatedField(queryset=Survey.objects)
    answers = AnswerSerializer(many=True, read_only=True)

    class Meta:
        model = SurveyResponse
        fields = [
            "id",
            "survey",
            "version",
            "external_id",
            "source",
            "locale",
            "submitted_at",
            "interaction",
            "invitation",
            "location",
            "channel",
            "touchpoint",
            "employee",
            "customer",
            "segment",
            "category",
            "created_at",
            "answers",
        ]
        read_only_fields = [name for name in fields if name != "survey"]
        # Read-only fields lose the model's blank=True: "" (not set) is a value they return.
        extra_kwargs = {"category": {"allow_blank": True}}


@functools.cache
def _response_plan() -> list:
    return _plan(ResponseSerializer())


def _plan(serializer) -> list:
    """(key, attribute, how to render it) for each readable field of a bound ModelSerializer.

    A ModelSerializer derives its fields from the model every time one is made, and reads
    related ids and nested lists through managers; on the single POST that cost more than the
    rest of rendering. The plan is taken from the serializer itself, so it follows its fields.
    """
    model = serializer.Meta.model
    plan = []
    for name, field in serializer.fields.items():
        if field.write_only:
            continue
        if isinstance(field, serializers.ListSerializer):
            # Nested rows: the objects the caller attached (prefetched), never a new query.
            plan.append((name, field.source, ("many", _plan(field.child))))
        elif isinstance(field, serializers.PrimaryKeyRelatedField):
            plan.append((name, model._meta.get_field(field.source).attname, None))
        else:
            plan.append((name, field.source, field.to_representation))
    return plan


def _render(instance, plan) -> dict:
    out = {}
    for name, attr, how in plan:
        if type(how) is tuple:
            value = [_render(row, how[1]) for row in instance._prefetched_objects_cache[attr]]
        else:
            value = getattr(instance, attr)
            if how is not None and value is not None:
                value = how(value)
        out[name] = value
    return out


def _response_representation(instance) -> dict:
    """``ResponseSerializer(instance).data`` for a response whose answers are prefetched."""
    return _render(instance, _response_plan())


class ResponseInputSerializer(serializers.Serializer):
    """Documents one response row (POST and bulk); validation is feedback.response_ingest's."""

    survey = serializers.IntegerField()
    answers = serializers.DictField(help_text='{"<question id or key>": value, …}')
    external_id = serializers.CharField(
        max_length=100,
        required=False,
        help_text="Unique per organization; re-sending returns the stored one.",
    )
    interaction = serializers.CharField(
        required=False, help_text="Interaction external id; location, channel, employee… come from it."
    )
    employee = serializers.CharField(required=False, help_text="Employee external id.")
    location = serializers.CharField(required=False, help_text="Location code (when no interaction).")
    submitted_at = serializers.DateTimeField(required=False)
    locale = serializers.CharField(required=False)
    source = serializers.ChoiceField(choices=[ResponseSource.API, ResponseSource.IVR], required=False)


def _range_filters():
    # "from" is a Python keyword, so the filter set is assembled from a dict.
    return {
        "survey": f.NumberFilter(),
        "location": f.NumberFilter(),
        "employee": f.NumberFilter(),
        "source": f.ChoiceFilter(choices=ResponseSource.choices),
        "external_id": f.CharFilter(),
        "from": IsoDateTimeFilter(field_name="submitted_at", lookup_expr="gte"),
        "to": IsoDateTimeFilter(field_name="submitted_at", lookup_expr="lt"),
    }


ResponseFilter = type("ResponseFilter", (f.FilterSet,), _range_filters())


class ResponseViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    queryset = SurveyResponse.objects
    serializer_class = ResponseSerializer
    resource = "responses"
    api_app = "feedback"
    filterset_class = ResponseFilter
    pagination_class = LargeListPagination
    action_verbs = {"bulk": "add"}

    def safely_get_queryset(self, queryset):
        return queryset.prefetch_related(Prefetch("answers", queryset=Answer.objects.order_by("id")))

    @extend_schema(
        request=ResponseInputSerializer,
        responses={
            201: ResponseSerializer,
            200: ResponseSerializer,
            400: OpenApiResponse(description="Field errors; answers as answers.<question key>"),
        },
    )
    def create(self, request, *args, **kwargs):
        """Record one response; re-sending the same external_id returns the stored one (200)."""
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["Expected a JSON object."]})
        result, instance = response_ingest.response_submit(
            organization=self.organization, actor=self.actor, data=request.data
        )
        if result.status == "error":
            return Response(result.errors, status=status.HTTP_400_BAD_REQUEST)
        if result.status != "created":
            instance = self.safely_get_queryset(SurveyResponse.objects.all()).get(pk=result.id)
            return Response(ResponseSerializer(instance).data, status=status.HTTP_200_OK)
        return Response(_response_representation(instance), status=status.HTTP_201_CREATED)

    @extend_schema(
        request={
            "application/json": ResponseInputSerializer(many=True),
            "text/csv": {"type": "string", "format": "binary"},
            "multipart/form-data": {
                "type": "object",
                "properties": {"file": {"type": "string", "format": "binary"}},
            },
        },
        responses={200: IngestResultSerializer, 413: OpenApiResponse(description="More than 10,000 rows")},
    )
    @action(
        detail=False,
        methods=["post"],
        parser_classes=[JSONParser, ResponsesCSVParser, MultiPartParser, FormParser],
    )
    def bulk(self, request):
        """Up to 10,000 responses per call, as a JSON array or a CSV file; per-row results.

        CSV columns: survey, external_id, interaction, employee, location, submitted_at, locale,
        source, and one column per question key (several options of a multi question as a;b).
        """
        if "file" in request.FILES:
            rows = response_ingest.rows_from_csv(request.FILES["file"].read())
        elif isinstance(request.data, list):
            rows = request.data
        else:
            raise ValidationError({"non_field_errors": ["Send a JSON array of responses or a CSV file."]})
        limit = settings.BULK_INGEST_MAX_ROWS
        if len(rows) > limit:
            return Response(
                {"detail": f"At most {limit} rows per call; got {len(rows)}.", "max_rows": limit},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        results = response_ingest.responses_ingest(
            organization=self.organization, actor=self.actor, rows=rows
        )
        counts = {"created": 0, "duplicate": 0, "error": 0}
        for r in results:
            counts[r.status] += 1
        return Response({**counts, "results": [r.as_dict() for r in results]})


def register(router) -> None:
    """Add this area's viewsets to the core router."""
    router.register("responses", ResponseViewSet)
