"""Incentives API: the catalogue, gift-card code pools and redemptions.

- ``/api/v1/catalog-items/``: admins manage items (DELETE deactivates: redemptions keep pointing
  at them; ``…/image/`` GET the image, POST a new one as multipart ``image``); everyone else sees
  only the active items offered to them (location, role).
- ``/api/v1/gift-card-codes/``: admins only (codes are secrets) — list, POST loads a pool
  (``codes`` text: one per line or CSV with the code first), ``…/counts/`` per item.
- ``/api/v1/redemptions/``: POST ``{"item": id}`` redeems for the caller's employee record: 201
  with the code when fulfilled at once, 409 with a clear message when the balance does not cover
  it, the stock is gone, the limit is reached or fulfilment failed (refunded). ``Idempotency-Key``
  is honoured (and also keys the hold in the ledger, so a retry never spends twice). Employees
  see their own redemptions; approvers ``…/approve/`` and ``…/decline/`` (reason required).

Writes go through incentives.catalog and incentives.redemptions.
"""

from __future__ import annotations

import django_filters as f
from django.http import FileResponse, Http404
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from cem.api.base import RenderStoredMixin, TenantModelViewSet, TenantReadOnlyViewSet
from cem.api.parsers import JSONParser
from cem.api.permissions import caller_role
from cem.models import Employee, Location
from cem.permissions import role_can
from incentives import catalog, redemptions
from incentives.models import CatalogItem, GiftCardCode, Redemption


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's state does not allow this."
    default_code = "conflict"


def _refused(exc: redemptions.RedemptionRefused) -> ConflictError:
    return ConflictError({"detail": exc.message, exc.field: [exc.message]})


def _can(request, action: str) -> bool:
    return role_can(caller_role(request), action)


def _employee(request):
    if getattr(request._request, "api_key", None) is not None:
        return None
    membership = getattr(request._request, "membership", None)
    return membership.employee if membership is not None else None


# --- catalogue items -------------------------------------------------------------------------------


class CatalogItemSerializer(serializers.ModelSerializer):
    visible_locations = serializers.PrimaryKeyRelatedField(
        many=True, queryset=Location.objects, required=False, help_text="Empty: offered everywhere."
    )
    visible_roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Employee.Role.choices),
        required=False,
        help_text="Employee roles it is offered to; empty: every role.",
    )
    unlimited = serializers.SerializerMethodField()
    image_url = serializers.SerializerMethodField()
    codes_available = serializers.SerializerMethodField()

    class Meta:
        model = CatalogItem
        fields = [
            "id",
            "name",
            "description",
            "kind",
            "cost",
            "stock",
            "unlimited",
            "per_person_limit",
            "auto_approve",
            "visible_locations",
            "visible_roles",
            "image_url",
            "codes_available",
            "active",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def get_unlimited(self, obj) -> bool:
        return obj.stock is None

    def get_image_url(self, obj) -> str | None:
        return f"/api/v1/catalog-items/{obj.pk}/image/" if obj.image else None

    def get_codes_available(self, obj) -> int | None:
        """Admins only: free codes in the item's pool."""
        return getattr(obj, "codes_available", None)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["visible_locations"] = sorted(link.location_id for link in instance.location_links.all())
        return data


class CatalogItemFilter(f.FilterSet):
    kind = f.ChoiceFilter(choices=CatalogItem.Kind.choices)
    active = f.BooleanFilter()
    auto_approve = f.BooleanFilter()


class CatalogItemViewSet(RenderStoredMixin, TenantModelViewSet):
    """Catalogue items; non-admins see only the active items offered to them."""

    resource = "catalog"
    api_app = "incentives"
    queryset = CatalogItem.objects
    serializer_class = CatalogItemSerializer
    filterset_class = CatalogItemFilter
    ordering_fields = ["cost", "name", "created_at"]

    def safely_get_queryset(self, queryset):
        queryset = queryset.prefetch_related("location_links").order_by("cost", "name", "pk")
        if _can(self.request, "catalog.change"):
            return catalog.with_code_counts(queryset)
        return queryset.filter(catalog.visible_q(_employee(self.request)))

    @staticmethod
    def _split(data: dict):
        data = dict(data)
        return data, data.pop("visible_locations", None)

    def perform_create(self, serializer):
        data, locations = self._split(serializer.validated_data)
        serializer.instance = catalog.item_create(
            org=self.organization, actor=self.actor, data=data, locations=locations
        )

    def perform_update(self, serializer):
        data, locations = self._split(serializer.validated_data)
        serializer.instance = catalog.item_update(
            org=self.organization, actor=self.actor, item=serializer.instance, data=data, locations=locations
        )

    def perform_destroy(self, instance):
        catalog.item_deactivate(org=self.organization, actor=self.actor, item=instance)

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {"image": {"type": "string", "format": "binary"}},
            }
        }
    )
    @action(detail=True, methods=["get", "post"], parser_classes=[MultiPartParser, FormParser])
    def image(self, request, pk=None):
        """GET the item's image; POST (admins) a JPEG, PNG or WebP as ``image``."""
        item = self.get_object()
        if request.method == "POST":
            upload = request.FILES.get("image")
            if upload is None:
                raise exceptions.ValidationError({"image": ["Attach the image as multipart field 'image'."]})
            item = catalog.item_set_image(org=self.organization, actor=self.actor, item=item, upload=upload)
            return Response(self.get_serializer(self._stored(item.pk)).data)
        path = catalog.image_file(item)
        if path is None:
            raise Http404("No image.")
        content_type = "image/png" if path.suffix == ".png" else "image/jpeg"
        response = FileResponse(path.open("rb"), content_type=content_type)
        response["Cache-Control"] = "private, max-age=3600"
        response["X-Content-Type-Options"] = "nosniff"
        return response


# --- gift-card codes ------------------------------------------------------------------------------


class GiftCardCodeSerializer(serializers.ModelSerializer):
    item_name = serializers.CharField(source="item.name", read_only=True)

    class Meta:
        model = GiftCardCode
        fields = ["id", "item", "item_name", "code", "redemption", "created_at"]
        read_only_fields = fields


class CodesLoadSerializer(serializers.Serializer):
    item = serializers.PrimaryKeyRelatedField(queryset=CatalogItem.objects)
    codes = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="One code per line, or CSV text with the code in the first column.",
    )
    file = serializers.FileField(required=False, help_text="A CSV or text file instead of ``codes``.")

    def validate(self, attrs):
        upload = attrs.pop("file", None)
        if upload is not None:
            try:
                attrs["codes"] = upload.read(2_000_000).decode("utf-8-sig")
            except UnicodeDecodeError:
                raise serializers.ValidationError({"file": ["The file must be UTF-8 text or CSV."]}) from None
        if not attrs.get("codes", "").strip():
            raise serializers.ValidationError({"codes": ["Paste the codes, or attach a file."]})
        return attrs


class CodesLoadResultSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    loaded = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    available = serializers.IntegerField()


class CodeCountSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    name = serializers.CharField()
    available = serializers.IntegerField()
    used = serializers.IntegerField()


class GiftCardCodeFilter(f.FilterSet):
    item = f.NumberFilter(field_name="item_id")
    used = f.BooleanFilter(field_name="redemption", lookup_expr="isnull", exclude=True)


class GiftCardCodeViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    """Gift-card code pools (admins: the codes are secrets; nobody else is in scope)."""

    resource = "catalog"
    api_app = "incentives"
    queryset = GiftCardCode.objects
    serializer_class = CodesLoadSerializer
    filterset_class = GiftCardCodeFilter
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def safely_get_queryset(self, queryset):
        return queryset.select_related("item").order_by("item_id", "pk")

    def get_serializer_class(self):
        return CodesLoadSerializer if self.action == "create" else GiftCardCodeSerializer

    @extend_schema(request=CodesLoadSerializer, responses={201: CodesLoadResultSerializer})
    def create(self, request, *args, **kwargs):
        serializer = CodesLoadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = serializer.validated_data["item"]
        result = catalog.codes_load(
            org=self.organization, actor=self.actor, item=item, text=serializer.validated_data["codes"]
        )
        return Response({"item": item.pk, **result}, status=status.HTTP_201_CREATED)

    @extend_schema(responses=CodeCountSerializer(many=True))
    @action(detail=False, methods=["get"])
    def counts(self, request):
        """Free and used codes per gift-card item."""
        items = catalog.with_code_counts(CatalogItem.objects.filter(kind=CatalogItem.Kind.GIFT_CARD))
        if not _can(request, "catalog.change"):
            items = items.none()
        rows = [
            {"item": i.pk, "name": i.name, "available": i.codes_available, "used": i.codes_used}
            for i in items.order_by("name")
        ]
        return Response(CodeCountSerializer(rows, many=True).data)


# --- redemptions ------------------------------------------------------------------------------------


class RedemptionSerializer(serializers.ModelSerializer):
    item_name = serializers.CharField(source="item.name", read_only=True)
    item_kind = serializers.CharField(source="item.kind", read_only=True)
    employee_name = serializers.CharField(source="employee.name", read_only=True)
    status_label = serializers.CharField(source="get_status_display", read_only=True)
    code = serializers.SerializerMethodField(
        help_text="The gift-card code: shown to the redeemer and admins only."
    )

    class Meta:
        model = Redemption
        fields = [
            "id",
            "item",
            "item_name",
            "item_kind",
            "employee",
            "employee_name",
            "points",
            "status",
            "status_label",
            "note",
            "code",
            "created_at",
            "decided_at",
            "decided_by",
        ]
        read_only_fields = fields

    def get_code(self, obj) -> str | None:
        request = self.context.get("request")
        if request is None:
            return None
        mine = (employee := _employee(request)) is not None and employee.pk == obj.employee_id
        if not mine and not _can(request, "redemptions.change"):
            return None
        return redemptions.revealed_code(obj)


class RedeemSerializer(serializers.Serializer):
    item = serializers.PrimaryKeyRelatedField(queryset=CatalogItem.objects)


class DecideSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=400)


class DeclineSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=400)


class RedemptionFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=Redemption.Status.choices)
    item = f.NumberFilter(field_name="item_id")
    employee = f.NumberFilter(field_name="employee_id")


class RedemptionViewSet(mixins.CreateModelMixin, TenantReadOnlyViewSet):
    resource = "redemptions"
    api_app = "incentives"
    queryset = Redemption.objects
    serializer_class = RedeemSerializer
    filterset_class = RedemptionFilter
    ordering_fields = ["created_at", "points"]
    action_verbs = {"approve": "change", "decline": "change"}

    def safely_get_queryset(self, queryset):
        return queryset.select_related("item", "employee", "gift_card_code").order_by("-created_at", "-pk")

    def get_serializer_class(self):
        return {"create": RedeemSerializer, "approve": DecideSerializer, "decline": DeclineSerializer}.get(
            self.action, RedemptionSerializer
        )

    def _out(self, redemption, code=status.HTTP_200_OK):
        stored = self.get_queryset().get(pk=redemption.pk)
        return Response(RedemptionSerializer(stored, context={"request": self.request}).data, status=code)

    @extend_schema(request=RedeemSerializer, responses={201: RedemptionSerializer, 409: None})
    def create(self, request, *args, **kwargs):
        """Redeem an item (see the module docstring for the answers)."""
        serializer = RedeemSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        employee = _employee(request)
        if employee is None:
            raise exceptions.PermissionDenied(
                "Only employees redeem points (your login has no employee record)."
            )
        try:
            redemption = redemptions.redeem(
                org=self.organization,
                actor=self.actor,
                employee=employee,
                item=serializer.validated_data["item"],
                key=request.headers.get("Idempotency-Key") or None,
            )
        except redemptions.RedemptionRefused as exc:
            raise _refused(exc) from exc
        if redemption.status == Redemption.Status.FAILED and not redemption.replayed:
            body = self._out(redemption).data
            return Response({"detail": redemption.note, "redemption": body}, status=status.HTTP_409_CONFLICT)
        return self._out(redemption, status.HTTP_200_OK if redemption.replayed else status.HTTP_201_CREATED)

    @extend_schema(request=DecideSerializer, responses=RedemptionSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        redemption = self.get_object()
        serializer = DecideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            redemption = redemptions.approve(
                org=self.organization,
                actor=self.actor,
                redemption=redemption,
                note=serializer.validated_data.get("note", ""),
            )
        except redemptions.RedemptionRefused as exc:
            raise _refused(exc) from exc
        return self._out(redemption)

    @extend_schema(request=DeclineSerializer, responses=RedemptionSerializer)
    @action(detail=True, methods=["post"])
    def decline(self, request, pk=None):
        redemption = self.get_object()
        serializer = DeclineSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            redemption = redemptions.decline(
                org=self.organization,
                actor=self.actor,
                redemption=redemption,
                reason=serializer.validated_data["reason"],
            )
        except redemptions.RedemptionRefused as exc:
            raise _refused(exc) from exc
        return self._out(redemption)


def register(router) -> None:
    router.register("catalog-items", CatalogItemViewSet, basename="catalog-item")
    router.register("gift-card-codes", GiftCardCodeViewSet, basename="gift-card-code")
    router.register("redemptions", RedemptionViewSet, basename="redemption")
