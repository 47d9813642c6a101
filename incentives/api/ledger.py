"""Incentives API: the points ledger.

- ``/api/v1/points-accounts/``: accounts and their balances. Employees see their own wallet,
  managers their people's wallets, organization-wide roles every account. Admins create budgets
  (POST), ``fund`` a budget and ``adjust`` a wallet or budget (a note is required); both are
  audit-logged and honour ``Idempotency-Key`` (the middleware replays the first answer).
- ``/api/v1/points-transactions/``: transactions with their entries, filtered by kind, employee,
  rule, account, source event or date; admins ``reverse`` one (a note is required).
- ``/api/v1/points-statement/``: the caller's own statement (balance, what expires when, every
  movement with its reason, paginated), or ``?employee=<id>`` for a manager's person in scope.

Every movement goes through incentives.ledger.
"""

from __future__ import annotations

import django_filters as f
from django.db import transaction
from django.db.models import OuterRef, Prefetch, Subquery
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from cem.api.base import TenantReadOnlyViewSet, TenantViewSetMixin
from cem.api.filters import IsoDateTimeFilter
from cem.api.pagination import DefaultPagination
from cem.api.permissions import caller_role
from cem.models import Employee, Location
from cem.scoping import scope_level, scope_queryset
from incentives import ledger
from incentives.models import Account, LedgerEntry, LedgerTransaction


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Not enough points."
    default_code = "conflict"


def _run(func, **kwargs):
    """Ledger refusals as 4xx naming the field: too few points is a 409, the rest 400."""
    try:
        return func(**kwargs)
    except ledger.InsufficientPoints as exc:
        raise ConflictError({exc.field: [exc.message]}) from exc
    except ledger.LedgerError as exc:
        raise exceptions.ValidationError({exc.field: [exc.message]}) from exc


# --- serializers -----------------------------------------------------------------------------------


class PointsAccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = Account
        fields = [
            "id",
            "kind",
            "name",
            "employee",
            "location",
            "manager",
            "balance",
            "allow_negative",
            "created_at",
        ]
        read_only_fields = ["id", "kind", "employee", "balance", "allow_negative", "created_at"]


class PointsBudgetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=160)
    location = serializers.PrimaryKeyRelatedField(queryset=Location.objects, required=False, allow_null=True)
    points = serializers.IntegerField(
        min_value=1, required=False, help_text="Optional first funding of the new budget."
    )
    note = serializers.CharField(max_length=400, required=False, allow_blank=True, default="")

    def validate_name(self, value):
        if Account.objects.filter(kind=Account.Kind.BUDGET, name=value).exists():
            raise serializers.ValidationError("A budget with this name exists.")
        return value


class PointsFundSerializer(serializers.Serializer):
    points = serializers.IntegerField(min_value=1)
    note = serializers.CharField(max_length=400, required=False, allow_blank=True, default="")


class PointsAdjustSerializer(serializers.Serializer):
    points = serializers.IntegerField(help_text="Positive adds points, negative removes them.")
    note = serializers.CharField(max_length=400, help_text="Why (shown on the statement).")

    def validate_points(self, value):
        if value == 0:
            raise serializers.ValidationError("Must not be zero.")
        return value

    def validate_note(self, value):
        if not value.strip():
            raise serializers.ValidationError("Say why.")
        return value


class PointsReverseSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=300, help_text="Why the movement is reversed.")

    def validate_note(self, value):
        if not value.strip():
            raise serializers.ValidationError("Say why.")
        return value


class PointsEntrySerializer(serializers.ModelSerializer):
    account_kind = serializers.CharField(source="account.kind", read_only=True)
    account_name = serializers.CharField(source="account.name", read_only=True)

    class Meta:
        model = LedgerEntry
        fields = ["id", "account", "account_kind", "account_name", "amount", "balance_after"]
        read_only_fields = fields


class PointsTransactionSerializer(serializers.ModelSerializer):
    entries = serializers.SerializerMethodField()
    reversed_by = serializers.SerializerMethodField()

    class Meta:
        model = LedgerTransaction
        fields = [
            "id",
            "kind",
            "key",
            "rule",
            "event_id",
            "employee",
            "note",
            "reverses",
            "reversed_by",
            "created_by",
            "created_at",
            "entries",
        ]
        read_only_fields = fields

    def get_entries(self, obj) -> list[dict]:
        entries = obj.entries.all()
        own = self.context.get("own_employee")
        if own is not None:
            # People reading their own movements see their wallet's side, not budgets' balances.
            entries = [e for e in entries if e.account.employee_id == own]
        return PointsEntrySerializer(entries, many=True).data

    def get_reversed_by(self, obj) -> int | None:
        return getattr(obj, "reversed_by_id", None)


class PointsStatementEntrySerializer(serializers.ModelSerializer):
    transaction = serializers.IntegerField(source="transaction_id", read_only=True)
    kind = serializers.CharField(source="transaction.kind", read_only=True)
    kind_label = serializers.CharField(source="transaction.get_kind_display", read_only=True)
    note = serializers.CharField(source="transaction.statement_note", read_only=True)
    rule = serializers.IntegerField(source="transaction.rule_id", read_only=True, allow_null=True)
    rule_name = serializers.CharField(
        source="transaction.rule.name", read_only=True, default=None, allow_null=True
    )
    reverses = serializers.IntegerField(source="transaction.reverses_id", read_only=True, allow_null=True)

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "created_at",
            "transaction",
            "kind",
            "kind_label",
            "note",
            "rule",
            "rule_name",
            "reverses",
            "amount",
            "balance_after",
        ]
        read_only_fields = fields


class PointsExpiringSerializer(serializers.Serializer):
    expires_at = serializers.DateTimeField()
    points = serializers.IntegerField()


class PointsStatementSerializer(serializers.Serializer):
    employee = serializers.IntegerField(allow_null=True)
    wallet = serializers.IntegerField(allow_null=True)
    balance = serializers.IntegerField()
    expiring = PointsExpiringSerializer(many=True)
    count = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    results = PointsStatementEntrySerializer(many=True)


# --- filters ------------------------------------------------------------------------------------


class PointsAccountFilter(f.FilterSet):
    kind = f.ChoiceFilter(choices=Account.Kind.choices)
    employee = f.NumberFilter()
    location = f.NumberFilter()


class PointsTransactionFilter(f.FilterSet):
    kind = f.ChoiceFilter(choices=LedgerTransaction.Kind.choices)
    employee = f.NumberFilter()
    rule = f.NumberFilter()
    event_id = f.UUIDFilter()
    account = f.NumberFilter(field_name="entries__account", distinct=True)
    created_after = IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")


# --- viewsets -----------------------------------------------------------------------------------


def _transactions(queryset):
    return queryset.select_related(None).prefetch_related(
        Prefetch("entries", queryset=LedgerEntry.objects.select_related("account").order_by("pk"))
    )


def _tx_data(tx) -> dict:
    fresh = _transactions(LedgerTransaction.objects.filter(pk=tx.pk)).get()
    return PointsTransactionSerializer(fresh).data


class PointsAccountViewSet(TenantReadOnlyViewSet):
    """Accounts with their stored balances (kept equal to the sum of their entries)."""

    queryset = Account.objects
    serializer_class = PointsAccountSerializer
    resource = "points"
    api_app = "incentives"
    filterset_class = PointsAccountFilter
    http_method_names = ["get", "post", "head", "options"]
    action_verbs = {"create": "add", "fund": "change", "adjust": "change"}

    def safely_get_queryset(self, queryset):
        return queryset.order_by("kind", "name", "pk")

    @extend_schema(request=PointsBudgetCreateSerializer, responses={201: PointsAccountSerializer})
    def create(self, request):
        """A new budget account (admins), optionally funded at once."""
        body = PointsBudgetCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        with transaction.atomic():
            budget = ledger.budget_create(
                org=self.organization, name=data["name"], location=data.get("location"), actor=self.actor
            )
            if data.get("points"):
                _run(
                    ledger.budget_fund,
                    org=self.organization,
                    budget=budget,
                    points=data["points"],
                    user=request.user if request.user.is_authenticated else None,
                    actor=self.actor,
                    note=data["note"],
                )
        budget.refresh_from_db()
        return Response(PointsAccountSerializer(budget).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PointsFundSerializer, responses={201: PointsTransactionSerializer})
    @action(detail=True, methods=["post"])
    def fund(self, request, pk=None):
        """New points into a budget (ISSUANCE → budget), audit-logged."""
        account = self.get_object()
        body = PointsFundSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if account.kind != Account.Kind.BUDGET:
            raise exceptions.ValidationError({"account": ["Only a budget can be funded."]})
        tx = _run(
            ledger.budget_fund,
            org=self.organization,
            budget=account,
            points=body.validated_data["points"],
            note=body.validated_data["note"],
            user=request.user if request.user.is_authenticated else None,
            actor=self.actor,
        )
        return Response(_tx_data(tx), status=status.HTTP_201_CREATED)

    @extend_schema(request=PointsAdjustSerializer, responses={201: PointsTransactionSerializer})
    @action(detail=True, methods=["post"])
    def adjust(self, request, pk=None):
        """A manual correction of a wallet or budget (against ISSUANCE), with the reason."""
        account = self.get_object()
        body = PointsAdjustSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tx = _run(
            ledger.adjust,
            org=self.organization,
            account=account,
            points=body.validated_data["points"],
            note=body.validated_data["note"],
            user=request.user if request.user.is_authenticated else None,
            actor=self.actor,
        )
        return Response(_tx_data(tx), status=status.HTTP_201_CREATED)


class PointsTransactionViewSet(TenantReadOnlyViewSet):
    """Ledger transactions with their entries. Employees see their own movements only."""

    queryset = LedgerTransaction.objects
    serializer_class = PointsTransactionSerializer
    resource = "points"
    api_app = "incentives"
    filterset_class = PointsTransactionFilter
    action_verbs = {"reverse": "change"}

    def safely_get_queryset(self, queryset):
        reversed_by = LedgerTransaction.objects.filter(reverses=OuterRef("pk")).values("pk")[:1]
        return _transactions(queryset.annotate(reversed_by_id=Subquery(reversed_by))).order_by(
            "-created_at", "-pk"
        )

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if scope_level(caller_role(self.request)) == "employee":
            membership = getattr(self.request._request, "membership", None)
            context["own_employee"] = getattr(membership, "employee_id", None) or -1
        return context

    @extend_schema(
        request=PointsReverseSerializer,
        responses={200: PointsTransactionSerializer, 201: PointsTransactionSerializer},
    )
    @action(detail=True, methods=["post"])
    def reverse(self, request, pk=None):
        """The linked reversing transaction (again: the same one, 200). Spent points are written
        off, or left as the wallet's debt where the organization allows debt."""
        original = self.get_object()
        body = PointsReverseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tx = _run(
            ledger.reverse,
            org=self.organization,
            transaction=original,
            note=body.validated_data["note"],
            user=request.user if request.user.is_authenticated else None,
            actor=self.actor,
        )
        code = status.HTTP_200_OK if tx.replayed else status.HTTP_201_CREATED
        return Response(_tx_data(tx), status=code)


class PointsStatementViewSet(TenantViewSetMixin, viewsets.GenericViewSet):
    """One employee's statement: balance, what expires when, every movement with its reason."""

    queryset = LedgerEntry.objects
    serializer_class = PointsStatementEntrySerializer
    resource = "points"
    api_app = "incentives"
    filter_backends: list = []
    # Paginated by hand: the page sits inside the statement next to the balance.
    pagination_class = None

    def _employee(self):
        membership = getattr(self.request._request, "membership", None)
        raw = self.request.query_params.get("employee")
        if raw in (None, ""):
            employee_id = getattr(membership, "employee_id", None)
            if employee_id is None:
                return None
            return Employee.objects.filter(pk=employee_id).first()
        try:
            employee_id = int(raw)
        except ValueError as exc:
            raise exceptions.ValidationError({"employee": ["A whole number."]}) from exc
        people = scope_queryset(Employee.objects, role=caller_role(self.request), membership=membership)
        employee = people.filter(pk=employee_id).first()
        if employee is None:
            raise exceptions.NotFound({"employee": ["No such employee in your scope."]})
        return employee

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "employee", OpenApiTypes.INT, description="A person in your scope (default: yourself)."
            )
        ],
        responses=PointsStatementSerializer,
    )
    def list(self, request):
        employee = self._employee()
        if employee is None:
            # A member who is not an employee (an admin, an API key) has no wallet of their own.
            summary = {"employee": None, "wallet": None, "balance": 0, "expiring": []}
            return Response({**summary, "count": 0, "next": None, "previous": None, "results": []})
        st = ledger.statement(org=self.organization, employee=employee)
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(st.entries, request, view=self)
        data = paginator.get_paginated_response(PointsStatementEntrySerializer(page, many=True).data).data
        summary = {
            "employee": employee.pk,
            "wallet": st.wallet.pk if st.wallet else None,
            "balance": st.balance,
            "expiring": PointsExpiringSerializer(st.expiring, many=True).data,
        }
        return Response({**summary, **data})


def register(router) -> None:
    router.register("points-accounts", PointsAccountViewSet, basename="pointsaccount")
    router.register("points-transactions", PointsTransactionViewSet, basename="pointstransaction")
    router.register("points-statement", PointsStatementViewSet, basename="pointsstatement")
