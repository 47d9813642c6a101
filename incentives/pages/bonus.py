"""Bonus period pages (/rewards/bonus/): the periods, a period's scorecard definition and its
participants with the live preview (or the stored results once closed), a chart of each
manager's weighted KPI contributions, close / approve / export for admins, and "My scorecard"
for a manager or supervisor. Writes call incentives.bonus, as the API does.

Managers reach only the periods they take part in and see only their own row; charts are plotly
figures shipped as JSON and drawn by static/feedback/charts.js (no inline script).
"""

from __future__ import annotations

import json

import plotly.graph_objects as go
import plotly.io as pio
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import path
from django.views import View
from django.views.generic import DetailView, ListView, TemplateView
from django.views.generic.detail import SingleObjectMixin

from cem.pages import TenantPageMixin
from cem.permissions import role_can
from cem.scoping import scope_level
from incentives import bonus
from incentives.models import BonusKpi, BonusParticipant, BonusPeriod, BonusResult

KPI_COLOURS = [
    "#1565c0",
    "#2e7d32",
    "#ef6c00",
    "#6a1b9a",
    "#00838f",
    "#c62828",
    "#5d4037",
    "#9e9e9e",
    "#ad1457",
    "#283593",
]


def _sees_everyone(request) -> bool:
    role = request.membership.role
    return role_can(role, "bonus.change") or scope_level(role) == "organization"


def _messages_of(exc: ValidationError) -> list[str]:
    if hasattr(exc, "message_dict"):
        return [f"{field}: {msg}" for field, msgs in exc.message_dict.items() for msg in msgs]
    return list(exc.messages)


def _chart(fig: go.Figure, *, height: int = 320) -> dict:
    fig.update_layout(margin={"l": 40, "r": 10, "t": 10, "b": 40}, height=height, legend={"orientation": "h"})
    return json.loads(pio.to_json(fig, validate=False))


def contributions_chart(rows: list[dict]) -> dict | None:
    """Stacked bars, one per manager: the points of their score each KPI provides."""
    rows = [r for r in rows if r["card"] and r["card"]["score"] is not None]
    if not rows:
        return None
    labels = [r["name"] for r in rows]
    kpis = []
    for r in rows:
        for line in r["card"]["kpis"]:
            if line["contribution"] is not None and line["kpi"] not in [k for k, _ in kpis]:
                kpis.append((line["kpi"], line["label"]))
    fig = go.Figure()
    for i, (kpi, label) in enumerate(kpis):
        values = []
        for r in rows:
            line = next((x for x in r["card"]["kpis"] if x["kpi"] == kpi), None)
            values.append(line["contribution"] if line else None)
        fig.add_bar(name=label, x=labels, y=values, marker_color=KPI_COLOURS[i % len(KPI_COLOURS)])
    fig.update_layout(
        barmode="stack", yaxis={"title": "Score (0-100)", "range": [0, 100]}, xaxis={"type": "category"}
    )
    return _chart(fig)


def scorecard_chart(card: dict) -> dict | None:
    """One manager: per KPI the weighted points earned and the weighted gap to 100."""
    lines = [line for line in card["kpis"] if line["contribution"] is not None]
    if not lines:
        return None
    labels = [line["label"] for line in lines]
    fig = go.Figure()
    fig.add_bar(
        name="Earned",
        y=labels,
        x=[line["contribution"] for line in lines],
        orientation="h",
        marker_color="#2e7d32",
    )
    fig.add_bar(
        name="Gap to 100",
        y=labels,
        x=[line["gap"] for line in lines],
        orientation="h",
        marker_color="#e0e0e0",
    )
    fig.update_layout(barmode="stack", xaxis_title="Points of the score (weight × normalised score)")
    chart = _chart(fig, height=max(200, 36 * len(lines) + 100))
    chart["layout"].update(yaxis={"autorange": "reversed", "automargin": True})
    return chart


def _name(user) -> str:
    return user.get_full_name() or user.username


def _scope_name(p: BonusParticipant) -> str:
    if p.team_id:
        return f"{p.team.name} (team, {p.team.location.name})"
    return p.location.name if p.location_id else f"{p.region.name} (region)"


def _rows(period: BonusPeriod, participants: list[BonusParticipant]) -> list[dict]:
    """Each participant with their scorecard: live while open, the stored result afterwards."""
    if period.status == BonusPeriod.Status.OPEN:
        cards = {
            c.participant.pk: c.as_dict() for c in bonus.scorecards(period=period, participants=participants)
        }
    else:
        results = BonusResult.objects.filter(participant__in=participants)
        cards = {r.participant_id: bonus.stored_scorecard(r) for r in results}
    rows = []
    for p in participants:
        rows.append(
            {
                "participant": p,
                "name": _name(p.user),
                "scope": _scope_name(p),
                "card": cards.get(p.pk),
            }
        )
    return rows


class BonusPeriodsPage(TenantPageMixin, ListView):
    template_name = "incentives/bonus/list.html"
    required_action = "bonus.view"
    model = BonusPeriod
    paginate_by = 50

    def page_queryset(self):
        qs = BonusPeriod.objects.annotate(participant_count=Count("participants", distinct=True))
        if not _sees_everyone(self.request):
            qs = qs.filter(participants__user=self.request.user)
        return qs.order_by("-starts_on", "-pk")

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            title="Bonus periods",
            may_add=role_can(self.request.membership.role, "bonus.add"),
            is_participant=BonusParticipant.objects.filter(user=self.request.user).exists(),
        )
        return ctx


class BonusPeriodCreateView(TenantPageMixin, View):
    required_action = "bonus.add"
    http_method_names = ["post"]

    def post(self, request):
        data = {k: request.POST.get(k, "").strip() for k in ("name", "starts_on", "ends_on")}
        for k in ("payout_threshold", "payout_cap_percent", "points_per_score_point"):
            if request.POST.get(k, "").strip():
                data[k] = request.POST[k].strip()
        try:
            period = bonus.period_create(organization=self.organization, actor=self.actor, data=data)
        except ValidationError as exc:
            for message in _messages_of(exc):
                messages.error(request, message)
            return redirect("bonus_periods")
        messages.success(request, f"Bonus period {period.name} created: now add its KPIs and managers.")
        return redirect("bonus_period", pk=period.pk)


class _PeriodMixin(TenantPageMixin):
    model = BonusPeriod

    def page_queryset(self):
        qs = BonusPeriod.objects.all()
        if not _sees_everyone(self.request):
            qs = qs.filter(participants__user=self.request.user).distinct()
        return qs


class BonusPeriodPage(_PeriodMixin, DetailView):
    template_name = "incentives/bonus/period.html"
    required_action = "bonus.view"
    context_object_name = "period"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        period = self.object
        participants = bonus.participants_of(period)
        if not _sees_everyone(self.request):
            participants = participants.filter(user=self.request.user)
        rows = _rows(period, list(participants))
        role = self.request.membership.role
        kpis = list(BonusKpi.objects.filter(period=period).order_by("pk"))
        ctx.update(
            title=period.name,
            kpis=kpis,
            total_weight=sum(k.weight for k in kpis),
            rows=rows,
            chart=contributions_chart(rows),
            may_change=role_can(role, "bonus.change"),
            is_open=period.status == BonusPeriod.Status.OPEN,
            kpi_choices=[c for c in BonusKpi.Kpi.choices if c[0] not in {k.kpi for k in kpis}],
            no_source=bonus.NO_SOURCE_KPIS,
            total_payout=sum((r["card"]["payout_amount"] for r in rows if r["card"]), 0),
        )
        return ctx


class _PeriodAction(_PeriodMixin, SingleObjectMixin, View):
    required_action = "bonus.change"
    http_method_names = ["post"]

    def post(self, request, pk):
        period = self.get_object()
        try:
            response = self.act(request, period)
        except ValidationError as exc:
            for message in _messages_of(exc):
                messages.error(request, message)
            return redirect("bonus_period", pk=period.pk)
        except PermissionDenied as exc:
            messages.error(request, str(exc) or "Not allowed.")
            return redirect("bonus_period", pk=period.pk)
        return response or redirect("bonus_period", pk=period.pk)


class BonusCloseView(_PeriodAction):
    def act(self, request, period):
        bonus.period_close(organization=self.organization, actor=self.actor, period=period)
        messages.success(request, "Closed: payouts calculated. Review them, then approve.")


class BonusApproveView(_PeriodAction):
    def act(self, request, period):
        bonus.period_approve(organization=self.organization, actor=self.actor, period=period)
        messages.success(request, "Approved: export the payouts for payroll.")


class BonusExportView(_PeriodAction):
    def act(self, request, period):
        text = bonus.export_csv(organization=self.organization, actor=self.actor, period=period)
        response = HttpResponse(text, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="bonus-{period.pk}.csv"'
        response["Cache-Control"] = "private, no-store"
        return response


class BonusKpiAddView(_PeriodAction):
    def act(self, request, period):
        data = {"period": period, "kpi": request.POST.get("kpi", "")}
        for k in ("weight", "target", "floor", "min_sample"):
            if request.POST.get(k, "").strip():
                data[k] = request.POST[k].strip()
        if "weight" not in data or "target" not in data:
            raise ValidationError({"weight": "Give the KPI a weight and a target."})
        bonus.kpi_create(organization=self.organization, actor=self.actor, data=data)
        messages.success(request, "KPI added.")


class BonusManagersAddView(_PeriodAction):
    def act(self, request, period):
        added = bonus.participants_add_managers(
            organization=self.organization,
            actor=self.actor,
            period=period,
            target_bonus=request.POST.get("target_bonus", "").strip() or "x",
            currency=request.POST.get("currency", "").strip(),
        )
        messages.success(request, f"{len(added)} manager{'s' if len(added) != 1 else ''} added.")


class MyScorecardPage(TenantPageMixin, TemplateView):
    """A manager's own scorecards: the live preview of open periods, results of closed ones."""

    template_name = "incentives/bonus/mine.html"
    required_action = "bonus.view"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        mine = list(
            BonusParticipant.objects.filter(user=self.request.user)
            .select_related("period", "user", "location", "region", "team__location")
            .order_by("-period__starts_on", "-pk")[:8]
        )
        entries = []
        for p in mine:
            (row,) = _rows(p.period, [p])
            entries.append(
                {
                    **row,
                    "period": p.period,
                    "chart": scorecard_chart(row["card"]) if row["card"] else None,
                    "chart_id": f"chart-mine-{p.pk}",
                }
            )
        ctx.update(title="My scorecard", entries=entries)
        return ctx


urlpatterns = [
    path("", BonusPeriodsPage.as_view(), name="bonus_periods"),
    path("new/", BonusPeriodCreateView.as_view(), name="bonus_period_create"),
    path("mine/", MyScorecardPage.as_view(), name="bonus_mine"),
    path("<int:pk>/", BonusPeriodPage.as_view(), name="bonus_period"),
    path("<int:pk>/close/", BonusCloseView.as_view(), name="bonus_period_close"),
    path("<int:pk>/approve/", BonusApproveView.as_view(), name="bonus_period_approve"),
    path("<int:pk>/export/", BonusExportView.as_view(), name="bonus_period_export"),
    path("<int:pk>/kpis/", BonusKpiAddView.as_view(), name="bonus_period_kpi_add"),
    path("<int:pk>/managers/", BonusManagersAddView.as_view(), name="bonus_period_managers_add"),
]
