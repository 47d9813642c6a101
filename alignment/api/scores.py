"""Alignment scores API. Resource "alignment".

- ``/api/v1/alignment/scores/`` (read-only): the five link scores and the overall score per scope and
  period (alignment/scores.py), each with its explanation — ``inputs`` (the figures that went in),
  ``missing`` (each missing piece with a sentence), the 95 % interval ``low``-``high``, ``n`` and
  ``rankable``. Filters: ``scope``, ``scope_id``, ``period``, ``period_start`` (exact) or
  ``period_start_after`` / ``period_start_before`` (a range, both days included), ``link``,
  ``region``, ``location``, ``team``, ``employee``, ``rankable``. Scoped by the viewer: a regional
  manager sees their region's rows, a store manager their store's (its employees and teams
  included), an employee their own. Cursor-paginated, newest first.
- ``/api/v1/alignment/settings/``: the organization's alignment settings, one row. Everyone who
  reads scores reads them; admins PATCH ``{id}/`` (``category_weights``, ``link_weights``,
  ``min_sample``, ``alert_threshold``) through alignment.score_settings (validated field by field,
  audit-logged; every score is recomputed after the change commits).
"""

from __future__ import annotations

import django_filters as f
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers

from alignment import score_selectors as sel
from alignment.models import AlignmentScore, AlignmentSettings, Link, PeriodKind, ScopeKind
from alignment.score_settings import MAX_MIN_SAMPLE, settings_for, settings_update
from cem.api.base import TenantReadOnlyViewSet
from cem.api.pagination import LargeListPagination


class MissingPieceSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="What is missing, e.g. standard_without_lesson.")
    id = serializers.IntegerField(
        allow_null=True,
        required=False,
        help_text="The standard / expectation / message / lesson id (entries of one piece).",
    )
    ids = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        help_text="Entries grouping one kind of reference row: the first of their ids (see count).",
    )
    count = serializers.IntegerField(required=False, help_text="How many the entry stands for.")
    more = serializers.IntegerField(
        required=False, help_text="The last entry of a capped kind: how many more were not listed."
    )
    label = serializers.CharField(allow_blank=True)
    text = serializers.CharField(help_text="The missing piece in a sentence.")


class AlignmentScoreSerializer(serializers.ModelSerializer):
    link_label = serializers.CharField(source="get_link_display", read_only=True)
    period_label = serializers.SerializerMethodField()
    rankable = serializers.SerializerMethodField(
        help_text="False when n is below the organization's minimum sample (shown, never ranked) or "
        "the score has no value."
    )
    inputs = serializers.JSONField(
        read_only=True, help_text="The figures that went in (per link; see the methods page)."
    )
    missing = serializers.SerializerMethodField()
    explanation_url = serializers.SerializerMethodField()

    class Meta:
        model = AlignmentScore
        fields = [
            "id",
            "scope",
            "scope_id",
            "region",
            "location",
            "team",
            "employee",
            "period",
            "period_start",
            "period_label",
            "link",
            "link_label",
            "value",
            "low",
            "high",
            "n",
            "rankable",
            "inputs",
            "missing",
            "computed_at",
            "explanation_url",
        ]
        read_only_fields = fields

    def get_period_label(self, obj) -> str:
        return sel.period_label(obj)

    def get_rankable(self, obj) -> bool:
        return sel.rankable(obj)

    @extend_schema_field(MissingPieceSerializer(many=True))
    def get_missing(self, obj) -> list[dict]:
        # The names of the reference rows are read once per request, however many scores.
        if "reference_labels" not in self.context:
            self.context["reference_labels"] = sel.reference_labels()
        return sel.missing_text(obj.missing, labels=self.context["reference_labels"])

    def get_explanation_url(self, obj) -> str:
        return reverse("alignment_score_explain", args=[obj.pk])


class AlignmentScoreFilter(f.FilterSet):
    # Plain filters: a model-derived one would query the tenant table at import time.
    scope = f.ChoiceFilter(choices=ScopeKind.choices)
    scope_id = f.NumberFilter()
    period = f.ChoiceFilter(choices=PeriodKind.choices)
    period_start = f.DateFilter()
    period_start_after = f.DateFilter(field_name="period_start", lookup_expr="gte")
    period_start_before = f.DateFilter(field_name="period_start", lookup_expr="lte")
    link = f.ChoiceFilter(choices=Link.choices)
    region = f.NumberFilter()
    location = f.NumberFilter()
    team = f.NumberFilter()
    employee = f.NumberFilter()
    rankable = f.BooleanFilter(field_name="inputs__rankable")


class AlignmentScorePagination(LargeListPagination):
    ordering = ("-period_start", "-id")


@extend_schema_view(
    list=extend_schema(summary="Alignment scores with their explanation, scoped to the caller"),
    retrieve=extend_schema(summary="One alignment score with its explanation"),
)
class AlignmentScoreViewSet(TenantReadOnlyViewSet):
    """The five link scores and the overall score (0-100) per scope and period, each explainable."""

    queryset = AlignmentScore.objects
    serializer_class = AlignmentScoreSerializer
    reads_from_replica = True
    filterset_class = AlignmentScoreFilter
    pagination_class = AlignmentScorePagination
    resource = "alignment"
    api_app = "alignment"

    def safely_get_queryset(self, queryset):
        return queryset.order_by("-period_start", "-id")


class AlignmentSettingsSerializer(serializers.ModelSerializer):
    category_weights = serializers.JSONField(
        help_text='Weight of each interaction category, e.g. {"critical": 2, "stabilizing": 1, "planned": 1}.'
    )
    link_weights = serializers.JSONField(help_text="Weight of each of the five links in the overall score.")
    min_sample = serializers.IntegerField(
        min_value=1,
        max_value=MAX_MIN_SAMPLE,
        help_text="Data points below which a score is shown but never ranked.",
    )
    alert_threshold = serializers.DecimalField(
        max_digits=5,
        decimal_places=2,
        min_value=0,
        max_value=100,
        help_text="An overall score crossing it (either way) raises AlignmentThresholdCrossed.",
    )

    class Meta:
        model = AlignmentSettings
        fields = ["id", "category_weights", "link_weights", "min_sample", "alert_threshold", "updated_at"]
        read_only_fields = ["id", "updated_at"]


@extend_schema_view(
    list=extend_schema(summary="The organization's alignment settings (one row)"),
    retrieve=extend_schema(summary="The organization's alignment settings"),
    partial_update=extend_schema(summary="Change the alignment settings (admins); every score is recomputed"),
)
class AlignmentSettingsViewSet(mixins.UpdateModelMixin, TenantReadOnlyViewSet):
    """Category and link weights, minimum sample and alert threshold of the alignment scores."""

    queryset = AlignmentSettings.objects
    serializer_class = AlignmentSettingsSerializer
    resource = "alignment"
    api_app = "alignment"
    http_method_names = ["get", "patch", "head", "options"]

    def safely_get_queryset(self, queryset):
        settings_for(self.organization)  # the defaults, stored the first time asked
        return queryset.order_by("pk")

    def perform_update(self, serializer):
        # The service validates each field and names the bad one (400 through the exception handler).
        serializer.instance = settings_update(
            organization=self.organization, actor=self.actor, data=dict(serializer.validated_data)
        )


def register(router) -> None:
    router.register("alignment/scores", AlignmentScoreViewSet, basename="alignment-scores")
    router.register("alignment/settings", AlignmentSettingsViewSet, basename="alignment-settings")
