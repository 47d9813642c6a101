"""Incentives API: reward rules (``/api/v1/reward-rules/``), the awards they skipped
(``/api/v1/reward-skips/``) and budgets with their burn (``/api/v1/reward-budgets/``).

A rule's ``status`` says whether it awards now ("active"), or why not ("stopped: budget empty",
"ended", "inactive", …). A rule whose trigger carries no value for a condition, or whose recipients
do not fit the trigger, is refused naming the field (incentives.rewards.rule_shape_errors). Budgets
are created and funded through ``/api/v1/points-accounts/`` (the ledger); here they are listed with
what their rules drew in the last 30 days and how many days that leaves. The organization's
rewards settings (expiry, debt or write-off, recognition limits, leaderboard) are one row at
``/api/v1/incentive-settings/`` (PATCH ``{id}/`` to change them).
"""

from __future__ import annotations

import datetime as dt

import django_filters as f
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from rest_framework import mixins, serializers

from cem.api.base import TenantModelViewSet, TenantReadOnlyViewSet
from cem.models import Channel, Location, Region, Standard, Touchpoint
from cem.services import record_update
from incentives import ledger, rewards
from incentives.models import Account, IncentiveSettings, LedgerTransaction, RewardRule, RewardSkip

BURN_DAYS = 30


class RewardRuleSerializer(serializers.ModelSerializer):
    budget = serializers.PrimaryKeyRelatedField(queryset=Account.objects)
    standard = serializers.PrimaryKeyRelatedField(queryset=Standard.objects, required=False, allow_null=True)
    channel = serializers.PrimaryKeyRelatedField(queryset=Channel.objects, required=False, allow_null=True)
    touchpoint = serializers.PrimaryKeyRelatedField(
        queryset=Touchpoint.objects, required=False, allow_null=True
    )
    location = serializers.PrimaryKeyRelatedField(queryset=Location.objects, required=False, allow_null=True)
    region = serializers.PrimaryKeyRelatedField(queryset=Region.objects, required=False, allow_null=True)
    status = serializers.SerializerMethodField()
    budget_balance = serializers.IntegerField(source="budget.balance", read_only=True)

    class Meta:
        model = RewardRule
        fields = [
            "id",
            "name",
            "trigger",
            "recipients",
            "points",
            "min_score",
            "standard",
            "channel",
            "touchpoint",
            "category",
            "location",
            "region",
            "employee_role",
            "critical_multiplier",
            "budget",
            "budget_balance",
            "cap_points",
            "cap_period",
            "effective_from",
            "effective_until",
            "active",
            "status",
            "created_at",
        ]
        read_only_fields = ["created_at"]
        extra_kwargs = {"critical_multiplier": {"min_value": 0, "max_value": 10}}

    def get_status(self, rule) -> str:
        return rewards.rule_status(rule)

    def validate_budget(self, value):
        if value.kind != Account.Kind.BUDGET:
            raise serializers.ValidationError("Choose a budget account.")
        return value

    def validate_employee_role(self, value):
        from cem.models import Employee

        if value and value not in Employee.Role.values:
            raise serializers.ValidationError(f"One of {', '.join(Employee.Role.values)}.")
        return value

    def validate(self, attrs):
        current = self.instance

        def value(name):
            return attrs[name] if name in attrs else getattr(current, name, None)

        errors = rewards.rule_shape_errors(
            trigger=value("trigger"),
            recipients=value("recipients"),
            min_score=value("min_score"),
            **{name: value(name) for name in rewards.CONDITION_FIELDS},
        )
        start, end = value("effective_from"), value("effective_until")
        if start and end and end < start:
            errors["effective_until"] = "On or after effective_from."
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class RewardSkipSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", read_only=True)
    employee_name = serializers.CharField(source="employee.name", read_only=True)

    class Meta:
        model = RewardSkip
        fields = ["id", "rule", "rule_name", "event_id", "employee", "employee_name", "reason", "created_at"]
        read_only_fields = fields


class RewardBudgetSerializer(serializers.ModelSerializer):
    drawn_30d = serializers.IntegerField(read_only=True)
    funded_total = serializers.IntegerField(read_only=True)
    rules = serializers.IntegerField(source="rule_count", read_only=True)
    burn_per_day = serializers.SerializerMethodField()
    days_left = serializers.SerializerMethodField()

    class Meta:
        model = Account
        fields = [
            "id",
            "name",
            "location",
            "balance",
            "funded_total",
            "drawn_30d",
            "burn_per_day",
            "days_left",
            "rules",
        ]
        read_only_fields = fields

    def get_burn_per_day(self, budget) -> float:
        return round((budget.drawn_30d or 0) / BURN_DAYS, 1)

    def get_days_left(self, budget) -> int | None:
        per_day = (budget.drawn_30d or 0) / BURN_DAYS
        return None if per_day <= 0 else int(budget.balance / per_day)


def budgets_with_burn(queryset=None, *, now=None):
    """Budgets annotated with funded_total, drawn_30d (points that left for wallets) and rule_count."""
    since = (now or timezone.now()) - dt.timedelta(days=BURN_DAYS)
    queryset = Account.objects.all() if queryset is None else queryset
    drawn = Q(
        entries__amount__lt=0,
        entries__created_at__gte=since,
        entries__transaction__kind__in=[LedgerTransaction.Kind.AWARD, LedgerTransaction.Kind.RECOGNITION],
    )
    return (
        queryset.filter(kind=Account.Kind.BUDGET)
        .annotate(
            drawn_30d=-Sum("entries__amount", filter=drawn, default=0),
            funded_total=Sum(
                "entries__amount", filter=Q(entries__transaction__kind=LedgerTransaction.Kind.FUND), default=0
            ),
            # A subquery: joining rules as well would multiply the entry sums.
            rule_count=Coalesce(
                Subquery(
                    RewardRule.objects.filter(budget=OuterRef("pk"))
                    .order_by()
                    .values("budget")
                    .annotate(n=Count("pk"))
                    .values("n")
                ),
                0,
            ),
        )
        .order_by("name", "pk")
    )


# Foreign keys as plain ids: a generated ModelChoiceFilter would query at import, outside a tenant.
class RewardRuleFilter(f.FilterSet):
    trigger = f.ChoiceFilter(choices=RewardRule.Trigger.choices)
    active = f.BooleanFilter()
    budget = f.NumberFilter(field_name="budget_id")


class RewardSkipFilter(f.FilterSet):
    rule = f.NumberFilter(field_name="rule_id")
    employee = f.NumberFilter(field_name="employee_id")


class RewardRuleViewSet(TenantModelViewSet):
    queryset = RewardRule.objects
    serializer_class = RewardRuleSerializer
    resource = "reward_rules"
    api_app = "incentives"
    filterset_class = RewardRuleFilter

    def safely_get_queryset(self, queryset):
        return queryset.select_related("budget").order_by("name", "pk")

    def perform_destroy(self, instance):
        if LedgerTransaction.objects.filter(rule=instance).exists():
            raise serializers.ValidationError(
                {
                    "active": "This rule has awarded points; "
                    "deactivate it instead, so its awards keep their cause."
                }
            )
        super().perform_destroy(instance)


class RewardSkipViewSet(TenantReadOnlyViewSet):
    """Awards a rule would have made but did not: "budget empty" or "cap reached", said once."""

    queryset = RewardSkip.objects
    serializer_class = RewardSkipSerializer
    resource = "reward_rules"
    api_app = "incentives"
    filterset_class = RewardSkipFilter

    def safely_get_queryset(self, queryset):
        return queryset.select_related("rule", "employee").order_by("-created_at", "-pk")


class RewardBudgetViewSet(TenantReadOnlyViewSet):
    """Budgets with their balance, funding, what their rules drew in 30 days and the days left."""

    queryset = Account.objects
    serializer_class = RewardBudgetSerializer
    resource = "reward_rules"
    api_app = "incentives"

    def safely_get_queryset(self, queryset):
        return budgets_with_burn(queryset)


class IncentiveSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = IncentiveSettings
        fields = [
            "id",
            "points_expire_months",
            "allow_debt",
            "recognition_max_points",
            "manager_monthly_recognition_limit",
            "peer_recognition_enabled",
            "peer_monthly_allowance",
            "leaderboard_enabled",
        ]
        read_only_fields = ["id"]


class IncentiveSettingsViewSet(mixins.UpdateModelMixin, TenantReadOnlyViewSet):
    """The organization's rewards settings, one row: ``points_expire_months`` (null: never; applies
    to points earned from then on), ``allow_debt`` (a reversal of spent points leaves a debt rather
    than a write-off), the recognition limits and switches, ``leaderboard_enabled``."""

    queryset = IncentiveSettings.objects
    serializer_class = IncentiveSettingsSerializer
    resource = "reward_rules"
    api_app = "incentives"
    http_method_names = ["get", "patch", "head", "options"]

    def safely_get_queryset(self, queryset):
        ledger.incentive_settings(org=self.organization)  # the defaults, stored the first time asked
        return queryset.order_by("pk")

    def perform_update(self, serializer):
        serializer.instance = record_update(
            organization=self.organization,
            actor=self.actor,
            instance=serializer.instance,
            data=serializer.validated_data,
        )


def register(router) -> None:
    router.register("reward-rules", RewardRuleViewSet)
    router.register("reward-skips", RewardSkipViewSet)
    router.register("reward-budgets", RewardBudgetViewSet, basename="rewardbudget")
    router.register("incentive-settings", IncentiveSettingsViewSet, basename="incentivesettings")
