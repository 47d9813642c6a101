"""Incentives admin pages (/rewards/manage/): reward rules (list with their status, editor), budgets
(balance, funding, 30-day burn; funding goes through ledger.budget_fund), charts (points awarded by
rule and by location per week, budget burn) and recognition (give points, the scoped feed, and for
employees their store's opt-in leaderboard while the organization shows leaderboards), and the
organization's settings (expiry, debt or write-off, recognition limits, leaderboard).

Charts are plotly figures shipped as JSON (``json_script``) and drawn by the feedback dashboard's
static/feedback/charts.js, so the pages carry no inline script.
"""

from __future__ import annotations

import datetime as dt
import json

import plotly.graph_objects as go
import plotly.io as pio
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Sum
from django.db.models.functions import TruncWeek
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import include, path, reverse
from django.utils import timezone
from django.views.generic import ListView, TemplateView, View

from cem.models import Channel, Employee, Location, Region, Standard, Touchpoint
from cem.pages import TenantPageMixin
from cem.permissions import role_can
from cem.services import record_update
from cem.views_manage import ModelFormEditPage, add_service_errors
from incentives import ledger, rewards
from incentives import recognition as recognition_services
from incentives.api.rules import budgets_with_burn
from incentives.models import (
    Account,
    IncentiveSettings,
    LeaderboardOptIn,
    LedgerEntry,
    LedgerTransaction,
    Recognition,
    RewardRule,
    RewardSkip,
)

CHART_WEEKS = 12
CHART_SERIES = 8


# --- rules ---------------------------------------------------------------------------------------


class RewardRuleForm(forms.ModelForm):
    # Declared so the form class builds no tenant query at import (querysets are set per request).
    budget = forms.ModelChoiceField(queryset=Account.objects.none())
    standard = forms.ModelChoiceField(queryset=Standard.objects.none(), required=False)
    channel = forms.ModelChoiceField(queryset=Channel.objects.none(), required=False)
    touchpoint = forms.ModelChoiceField(queryset=Touchpoint.objects.none(), required=False)
    location = forms.ModelChoiceField(queryset=Location.objects.none(), required=False)
    region = forms.ModelChoiceField(queryset=Region.objects.none(), required=False)
    employee_role = forms.ChoiceField(choices=[("", "Any role"), *Employee.Role.choices], required=False)

    class Meta:
        model = RewardRule
        fields = [
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
            "cap_points",
            "cap_period",
            "effective_from",
            "effective_until",
            "active",
        ]
        widgets = {
            "effective_from": forms.DateInput(attrs={"type": "date"}),
            "effective_until": forms.DateInput(attrs={"type": "date"}),
        }
        help_texts = {
            "min_score": "Audits and evaluations 0–100; survey answers on their own scale (CSAT 1–5).",
            "critical_multiplier": "× this when the interaction is Critical (2 = Critical counts double).",
            "cap_points": "Most points one person can get from this rule per period (blank: no cap).",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        f = self.fields
        f["budget"].queryset = Account.objects.filter(kind=Account.Kind.BUDGET).order_by("name")
        f["standard"].queryset = Standard.objects.filter(active=True).order_by("code")
        f["channel"].queryset = Channel.objects.order_by("name")
        f["touchpoint"].queryset = Touchpoint.objects.order_by("name")
        f["location"].queryset = Location.objects.order_by("name")
        f["region"].queryset = Region.objects.order_by("name")
        if not self.instance.pk and not self.is_bound:
            self.initial.setdefault("effective_from", timezone.localdate())

    def clean(self):
        data = super().clean()
        for name, msg in rewards.rule_shape_errors(
            trigger=data.get("trigger"),
            recipients=data.get("recipients"),
            min_score=data.get("min_score"),
            **{name: data.get(name) for name in rewards.CONDITION_FIELDS},
        ).items():
            if name in self.fields:
                self.add_error(name, msg)
        return data


class RewardRuleListPage(TenantPageMixin, ListView):
    model = RewardRule
    template_name = "incentives/manage/rules.html"
    required_action = "reward_rules.view"
    paginate_by = 100

    def page_queryset(self):
        return RewardRule.objects.select_related("budget", "standard", "location", "region").order_by(
            "-active", "name", "pk"
        )

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        today = timezone.localdate()
        for rule in ctx["object_list"]:
            rule.status = rewards.rule_status(rule, today)
        ctx["can_edit"] = role_can(self.request.membership.role, "reward_rules.change")
        ctx["skips"] = RewardSkip.objects.select_related("rule", "employee").order_by("-created_at", "-pk")[
            :20
        ]
        return ctx


class RewardRuleEditPage(ModelFormEditPage):
    model = RewardRule
    form_class = RewardRuleForm
    resource = "reward_rules"
    template_name = "incentives/manage/rule_form.html"
    success_url_name = "incentives_rules"
    saved_message = "Rule saved."


# --- budgets ---------------------------------------------------------------------------------------


class FundForm(forms.Form):
    points = forms.IntegerField(min_value=1, max_value=100_000_000)
    note = forms.CharField(max_length=300, required=False)


class BudgetForm(forms.Form):
    name = forms.CharField(max_length=160)


class BudgetListPage(TenantPageMixin, ListView):
    model = Account
    template_name = "incentives/manage/budgets.html"
    required_action = "reward_rules.view"
    paginate_by = 100

    def page_queryset(self):
        return budgets_with_burn()

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        for budget in ctx["object_list"]:
            budget.burn_per_day = round((budget.drawn_30d or 0) / 30, 1)
            budget.days_left = int(budget.balance / budget.burn_per_day) if budget.burn_per_day else None
        ctx["can_fund"] = role_can(self.request.membership.role, "reward_rules.change")
        ctx["fund_form"] = FundForm()
        ctx["budget_form"] = BudgetForm()
        return ctx

    def post(self, request):
        """A new (empty) budget."""
        if not role_can(request.membership.role, "reward_rules.add"):
            raise PermissionDenied
        form = BudgetForm(request.POST)
        if form.is_valid():
            name = form.cleaned_data["name"].strip()
            if Account.objects.filter(kind=Account.Kind.BUDGET, name=name).exists():
                messages.error(request, f"A budget named {name!r} exists already.")
            else:
                ledger.budget_create(org=self.organization, name=name, actor=self.actor)
                messages.success(request, f"Budget {name} created; fund it below.")
        else:
            messages.error(request, "Name the budget.")
        return HttpResponseRedirect(reverse("incentives_budgets"))


class BudgetFundPage(TenantPageMixin, View):
    model = Account
    required_action = "reward_rules.change"

    def page_queryset(self):
        return Account.objects.filter(kind=Account.Kind.BUDGET)

    def post(self, request, pk):
        budget = get_object_or_404(self.get_queryset(), pk=pk)
        form = FundForm(request.POST)
        if not form.is_valid():
            for field, errors in form.errors.items():
                messages.error(request, f"{field}: {' '.join(errors)}")
        else:
            try:
                ledger.budget_fund(
                    org=self.organization,
                    budget=budget,
                    points=form.cleaned_data["points"],
                    note=form.cleaned_data["note"],
                    user=request.user,
                    actor=self.actor,
                )
            except ledger.LedgerError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"{form.cleaned_data['points']} points added to {budget.name}.")
        return HttpResponseRedirect(reverse("incentives_budgets"))


# --- organization settings -------------------------------------------------------------------------


class IncentiveSettingsForm(forms.ModelForm):
    class Meta:
        model = IncentiveSettings
        fields = [
            "points_expire_months",
            "allow_debt",
            "recognition_max_points",
            "manager_monthly_recognition_limit",
            "peer_recognition_enabled",
            "peer_monthly_allowance",
            "leaderboard_enabled",
        ]
        labels = {
            "points_expire_months": "Points expire after this many months (empty: never)",
            "allow_debt": "A reversed award may leave a wallet in debt",
            "recognition_max_points": "Most points in one recognition",
            "manager_monthly_recognition_limit": "Points a manager may give a month",
            "peer_recognition_enabled": "Colleagues may recognise each other",
            "peer_monthly_allowance": "Points a colleague may give a month",
            "leaderboard_enabled": "Show each store's opt-in leaderboard",
        }
        help_texts = {
            "points_expire_months": "Applies to points earned from now on; earned points keep their date.",
            "allow_debt": "Otherwise the points already spent are written off when an award is reversed.",
        }


class IncentiveSettingsPage(TenantPageMixin, View):
    """Expiry, the debt-or-write-off choice for reversals, recognition limits, the leaderboard.
    Readers of the rules see the settings; only those who may change rules change them."""

    template_name = "incentives/manage/settings.html"
    required_action = "reward_rules.view"

    def _can_change(self) -> bool:
        return role_can(self.request.membership.role, "reward_rules.change")

    def _render(self, form):
        if not self._can_change():
            for field in form.fields.values():
                field.disabled = True
        return TemplateResponse(
            self.request, self.template_name, {"form": form, "can_change": self._can_change()}
        )

    def get(self, request):
        return self._render(IncentiveSettingsForm(instance=ledger.incentive_settings(org=self.organization)))

    def post(self, request):
        if not self._can_change():
            raise PermissionDenied
        row = ledger.incentive_settings(org=self.organization)
        form = IncentiveSettingsForm(request.POST, instance=row)
        if form.is_valid():
            try:
                record_update(
                    organization=self.organization, actor=self.actor, instance=row, data=form.cleaned_data
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, "Rewards settings saved.")
                return HttpResponseRedirect(reverse("incentives_settings"))
        return self._render(form)


# --- charts ----------------------------------------------------------------------------------------


def _chart(fig: go.Figure, *, y_title: str, height: int = 320) -> dict:
    fig.update_layout(
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
        height=height,
        legend={"orientation": "h"},
        yaxis_title=y_title,
        xaxis={"type": "category", "automargin": True},
    )
    return json.loads(pio.to_json(fig, validate=False))


def _weekly(rows, label_key: str) -> dict | None:
    """rows of {week, <label_key>, points} → stacked weekly bars of the biggest series."""
    totals: dict[str, int] = {}
    for r in rows:
        totals[r[label_key] or "—"] = totals.get(r[label_key] or "—", 0) + int(r["points"] or 0)
    if not totals:
        return None
    top = sorted(totals, key=lambda k: -totals[k])[:CHART_SERIES]
    weeks = sorted({r["week"].date() for r in rows})
    labels = [f"week of {w:%d %b}" for w in weeks]
    fig = go.Figure()
    for name in top:
        by_week = {r["week"].date(): int(r["points"] or 0) for r in rows if (r[label_key] or "—") == name}
        fig.add_bar(name=str(name)[:40], x=labels, y=[by_week.get(w, 0) for w in weeks])
    fig.update_layout(barmode="stack")
    return fig


def chart_data(*, org, now=None) -> dict:
    """Weekly points awarded by rule and by location, and budget burn, over the last weeks."""
    zone = rewards.org_zone(org)
    since = (now or timezone.now()) - dt.timedelta(weeks=CHART_WEEKS)
    week = TruncWeek("created_at", tzinfo=zone)
    credited = LedgerEntry.objects.filter(
        account__kind=Account.Kind.WALLET,
        created_at__gte=since,
        transaction__kind__in=[LedgerTransaction.Kind.AWARD, LedgerTransaction.Kind.RECOGNITION],
    )
    by_rule = list(
        credited.annotate(week=week)
        .values("week", "transaction__rule__name")
        .annotate(points=Sum("amount"))
        .order_by("week")
    )
    for r in by_rule:
        r["rule"] = r.pop("transaction__rule__name") or "Recognition"
    by_location = list(
        credited.annotate(week=week)
        .values("week", "account__employee__current_location__name")
        .annotate(points=Sum("amount"))
        .order_by("week")
    )
    for r in by_location:
        r["location"] = r.pop("account__employee__current_location__name")
    burn = list(
        LedgerEntry.objects.filter(account__kind=Account.Kind.BUDGET, created_at__gte=since, amount__lt=0)
        .annotate(week=week)
        .values("week", "account__name")
        .annotate(points=-Sum("amount"))
        .order_by("week")
    )
    for r in burn:
        r["budget"] = r.pop("account__name")
    out = {}
    for key, rows, label, title in (
        ("rule_chart", by_rule, "rule", "Points awarded"),
        ("location_chart", by_location, "location", "Points awarded"),
        ("burn_chart", burn, "budget", "Points drawn"),
    ):
        fig = _weekly(rows, label)
        out[key] = _chart(fig, y_title=title) if fig is not None else None
    return out


class ChartsPage(TenantPageMixin, TemplateView):
    template_name = "incentives/manage/charts.html"
    required_action = "reward_rules.view"
    reads_from_replica = True

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(chart_data(org=self.organization), weeks=CHART_WEEKS)
        return ctx


# --- recognition -----------------------------------------------------------------------------------


class RecognitionForm(forms.Form):
    receiver = forms.ModelChoiceField(queryset=Employee.objects.none())
    points = forms.IntegerField(min_value=1)
    message = forms.CharField(
        max_length=recognition_services.MESSAGE_MAX, widget=forms.Textarea(attrs={"rows": 3})
    )
    standard = forms.ModelChoiceField(queryset=Standard.objects.none(), required=False)

    def __init__(self, *args, membership, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["receiver"].queryset = recognition_services.receivers_for(membership=membership).order_by(
            "name"
        )
        self.fields["standard"].queryset = Standard.objects.filter(active=True).order_by("code")


class RecognitionPage(TenantPageMixin, ListView):
    """Give recognition (managers; peers when enabled) and the feed of the viewer's scope."""

    model = Recognition
    template_name = "incentives/manage/recognition.html"
    required_action = "recognition.view"
    paginate_by = 50

    def page_queryset(self):
        return Recognition.objects.select_related("giver", "receiver", "standard").order_by(
            "-created_at", "-pk"
        )

    def _can_give(self, limits) -> bool:
        return role_can(self.request.membership.role, "recognition.add") and limits["allowed"]

    def get_context_data(self, form=None, **kwargs):
        ctx = super().get_context_data(**kwargs)
        membership = self.request.membership
        limits = recognition_services.giver_limits(org=self.organization, membership=membership)
        ctx["limits"] = limits
        ctx["perms_rules"] = role_can(membership.role, "reward_rules.view")
        ctx["can_give"] = self._can_give(limits)
        if ctx["can_give"]:
            ctx["form"] = form or RecognitionForm(membership=membership)
        ctx["board"] = self._board(membership)
        return ctx

    def _board_employee(self, membership):
        """The viewer's employee record when the organization shows leaderboards (None otherwise):
        only employees appear on a board, and only on their own store's."""
        if membership.employee_id is None:
            return None
        if not ledger.incentive_settings(org=self.organization).leaderboard_enabled:
            return None
        return Employee.objects.filter(pk=membership.employee_id).select_related("current_location").first()

    def _board(self, membership) -> dict | None:
        employee = self._board_employee(membership)
        if employee is None or employee.current_location_id is None:
            return None
        return {
            "location": employee.current_location,
            "rows": recognition_services.leaderboard(
                org=self.organization, location_id=employee.current_location_id
            ),
            "opted_in": LeaderboardOptIn.objects.filter(employee_id=employee.pk).exists(),
        }

    def post(self, request):
        membership = request.membership
        if "leaderboard" in request.POST:
            # Opting in or out is the viewer's own choice, open to every employee who may see the
            # page, whether or not they may give recognition.
            employee = self._board_employee(membership)
            if employee is None:
                raise PermissionDenied
            opt_in = request.POST["leaderboard"] == "in"
            recognition_services.leaderboard_opt(org=self.organization, employee=employee, opt_in=opt_in)
            messages.success(
                request, "You are on your store's leaderboard." if opt_in else "You are off the leaderboard."
            )
            return HttpResponseRedirect(reverse("incentives_recognition"))
        limits = recognition_services.giver_limits(org=self.organization, membership=membership)
        if not self._can_give(limits):
            raise PermissionDenied
        form = RecognitionForm(request.POST, membership=membership)
        if form.is_valid():
            try:
                made = recognition_services.recognise(
                    org=self.organization,
                    actor=self.actor,
                    membership=membership,
                    receiver=form.cleaned_data["receiver"],
                    points=form.cleaned_data["points"],
                    message=form.cleaned_data["message"],
                    standard=form.cleaned_data["standard"],
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, f"{made.points} points sent to {made.receiver.name}.")
                return HttpResponseRedirect(reverse("incentives_recognition"))
        self.object_list = self.get_queryset()
        return self.render_to_response(self.get_context_data(form=form))


urlpatterns = [
    path("rules/", RewardRuleListPage.as_view(), name="incentives_rules"),
    path("rules/new/", RewardRuleEditPage.as_view(), name="incentives_rule_new"),
    path("rules/<int:pk>/", RewardRuleEditPage.as_view(), name="incentives_rule"),
    path("budgets/", BudgetListPage.as_view(), name="incentives_budgets"),
    path("budgets/<int:pk>/fund/", BudgetFundPage.as_view(), name="incentives_budget_fund"),
    path("charts/", ChartsPage.as_view(), name="incentives_charts"),
    path("recognition/", RecognitionPage.as_view(), name="incentives_recognition"),
    path("settings/", IncentiveSettingsPage.as_view(), name="incentives_settings"),
    path("", include("incentives.pages.manage_redemptions")),  # approvals, catalogue, code pools
]
