"""Shopper ratings (``/api/v1/shopper-ratings/``), what shoppers are owed (``/api/v1/payables/``) and
payment runs (``/api/v1/payment-batches/``).

Ratings are written with a reviewer's decision (``assignments/{id}/approve|return|reject`` take
``rating`` and ``rating_comment``); they are read here by organization-wide roles. Shoppers see
their own payables. Org admins export the payable items as a batch (POST creates it; ``…/csv/``
downloads it) and mark the batch paid; writes go through audits.payments.
"""

import django_filters as f
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from audits import payments
from audits.models import Payable, PaymentBatch, ShopperRating
from cem.api.base import TenantReadOnlyViewSet


class ShopperRatingSerializer(serializers.ModelSerializer):
    class Meta:
        model = ShopperRating
        fields = ["id", "shopper", "assignment", "score", "comment", "rated_by", "created_at", "updated_at"]
        read_only_fields = fields


class PayableSerializer(serializers.ModelSerializer):
    total = serializers.DecimalField(max_digits=9, decimal_places=2, read_only=True)
    batch_reference = serializers.CharField(
        source="batch.reference", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Payable
        fields = [
            "id",
            "assignment",
            "shopper",
            "status",
            "fee",
            "reimbursement",
            "total",
            "currency",
            "approved_at",
            "batch",
            "batch_reference",
            "paid_at",
            "created_at",
        ]
        read_only_fields = fields


class PaymentBatchSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaymentBatch
        fields = ["id", "reference", "item_count", "total", "created_by", "created_at", "paid_at", "paid_by"]
        read_only_fields = fields


class ShopperRatingFilter(f.FilterSet):
    shopper = f.NumberFilter()
    assignment = f.NumberFilter()


class PayableFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=Payable.Status.choices)
    shopper = f.NumberFilter()
    batch = f.NumberFilter()
    unexported = f.BooleanFilter(field_name="batch", lookup_expr="isnull")


class PaymentBatchFilter(f.FilterSet):
    paid = f.BooleanFilter(field_name="paid_at", lookup_expr="isnull", exclude=True)


class ShopperRatingViewSet(TenantReadOnlyViewSet):
    """Reviewers' 1-5 ratings of shoppers' visits (the shopper's ``rating`` is their average)."""

    queryset = ShopperRating.objects
    serializer_class = ShopperRatingSerializer
    resource = "shoppers"
    api_app = "audits"
    filterset_class = ShopperRatingFilter

    def safely_get_queryset(self, queryset):
        return queryset.order_by("-created_at", "-pk")


class PayableViewSet(TenantReadOnlyViewSet):
    """One row per submitted job: pending until approved, then payable, then paid (or cancelled)."""

    queryset = Payable.objects
    serializer_class = PayableSerializer
    resource = "payments"
    api_app = "audits"
    filterset_class = PayableFilter

    def safely_get_queryset(self, queryset):
        return queryset.select_related("batch").order_by("-created_at", "-pk")


class PaymentBatchViewSet(TenantReadOnlyViewSet):
    """Payment runs. POST exports every approved item not yet in a batch into a new one (400 when
    nothing is payable); ``csv`` downloads it; ``mark-paid`` pays it (again: no change)."""

    queryset = PaymentBatch.objects
    serializer_class = PaymentBatchSerializer
    resource = "payments"
    api_app = "audits"
    filterset_class = PaymentBatchFilter
    http_method_names = ["get", "post", "head", "options"]
    action_verbs = {"mark_paid": "change", "csv": "view"}

    def safely_get_queryset(self, queryset):
        return queryset.order_by("-created_at", "-pk")

    @extend_schema(request=None, responses={201: PaymentBatchSerializer})
    def create(self, request):
        batch = payments.payment_batch_create(organization=self.organization, actor=self.actor)
        return Response(PaymentBatchSerializer(batch).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="CSV, one row per item")})
    @action(detail=True, methods=["get"])
    def csv(self, request, pk=None):
        """The batch for the payment run: shopper, contact, job, location, visit date, amounts."""
        batch = self.get_object()
        response = HttpResponse(payments.batch_csv(batch), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{batch.reference}.csv"'
        response["Cache-Control"] = "private, no-store"
        return response

    @extend_schema(request=None, responses=PaymentBatchSerializer)
    @action(detail=True, methods=["post"], url_path="mark-paid", url_name="mark-paid")
    def mark_paid(self, request, pk=None):
        batch = payments.payment_batch_mark_paid(
            organization=self.organization, actor=self.actor, batch=self.get_object()
        )
        return Response(PaymentBatchSerializer(batch).data)


def register(router) -> None:
    router.register("shopper-ratings", ShopperRatingViewSet, basename="shopperrating")
    router.register("payables", PayableViewSet, basename="payable")
    router.register("payment-batches", PaymentBatchViewSet, basename="paymentbatch")
