"""Trainer analytics pages (/learning/analytics/): the overview — most-sent lessons (manual vs
automatic), completion and on-time rates, quiz scores and attempts, per lesson and broken down by
location, team, week or month, with the filters in the URL — and lesson effectiveness (the
snapshots learning/effect_data.py computes, with the method explained in plain words).

Figures come from learning.analytics with the viewer's scope; charts are plotly figures shipped as
JSON (``json_script``) and drawn by the feedback dashboard's static/feedback/charts.js, so the
pages carry no inline script.
"""

from __future__ import annotations

import json
from dataclasses import replace

import plotly.graph_objects as go
import plotly.io as pio
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.views.generic import ListView, TemplateView

from cem.pages import TenantPageMixin
from cem.permissions import role_can
from learning import analytics, effectiveness
from learning.models import LessonEffect, Statement

SOURCE_COLOURS = {"manual": "#1565c0", "automatic": "#ef6c00", "other": "#9e9e9e"}
VERDICT_COLOURS = {
    effectiveness.EFFECTIVE: "#2e7d32",
    effectiveness.INEFFECTIVE: "#c62828",
    effectiveness.INSUFFICIENT: "#9e9e9e",
}
BREAKDOWNS = {"location": "Location", "team": "Team", "week": "Week", "month": "Month"}
CHART_LESSONS = 15


def _chart(fig: go.Figure, *, height: int = 320) -> dict:
    fig.update_layout(margin={"l": 40, "r": 10, "t": 10, "b": 40}, height=height, legend={"orientation": "h"})
    return json.loads(pio.to_json(fig, validate=False))


def _short(name: str, n: int = 40) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def most_sent_chart(rows: list[dict]) -> dict | None:
    rows = [r for r in rows if r["sent"]][:CHART_LESSONS]
    if not rows:
        return None
    labels = [_short(str(r["name"])) for r in rows]
    fig = go.Figure()
    for source, colour in SOURCE_COLOURS.items():
        fig.add_bar(
            name=source.title(), y=labels, x=[r[source] for r in rows], orientation="h", marker_color=colour
        )
    fig.update_layout(barmode="stack", xaxis_title="Assignments sent")
    chart = _chart(fig, height=max(240, 28 * len(rows) + 100))
    chart["layout"].update(
        yaxis={"autorange": "reversed", "automargin": True},
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
    )
    return chart


def rates_chart(rows: list[dict]) -> dict | None:
    rows = [r for r in rows if r["completion_rate"] is not None or r["on_time_rate"] is not None]
    if not rows:
        return None
    labels = [_short(str(r["name"])) for r in rows]
    fig = go.Figure()
    fig.add_bar(
        name="Completion rate", x=labels, y=[r["completion_rate"] for r in rows], marker_color="#2e7d32"
    )
    fig.add_bar(name="On-time rate", x=labels, y=[r["on_time_rate"] for r in rows], marker_color="#1565c0")
    # Category axis: period rows are labelled "2026-11" / "week of …", not plotted as dates.
    fig.update_layout(barmode="group", yaxis={"title": "%", "range": [0, 100]}, xaxis={"type": "category"})
    return _chart(fig)


def quiz_chart(rows: list[dict]) -> dict | None:
    rows = [r for r in rows if r["quiz"]["attempts"]][:CHART_LESSONS]
    if not rows:
        return None
    labels = [_short(str(r["name"])) for r in rows]
    fig = go.Figure()
    fig.add_bar(
        name="Average score",
        x=labels,
        y=[r["quiz"]["avg_score"] for r in rows],
        marker_color="#6a1b9a",
        customdata=[r["quiz"]["attempts_per_learner"] for r in rows],
        hovertemplate="%{x}<br>average %{y:.1f}<br>%{customdata} attempts per learner<extra></extra>",
    )
    fig.update_layout(yaxis={"title": "Score (0-100)", "range": [0, 100]}, xaxis={"type": "category"})
    return _chart(fig)


def interval_chart(effects: list[LessonEffect]) -> dict | None:
    shown = [e for e in effects if e.difference is not None]
    if not shown:
        return None
    labels = [_short(f"{e.lesson.title} · {e.standard.code}", 48) for e in shown]
    fig = go.Figure()
    for verdict, colour in VERDICT_COLOURS.items():
        group = [(label, e) for label, e in zip(labels, shown, strict=True) if e.verdict == verdict]
        if not group:
            continue
        fig.add_scatter(
            name=verdict.capitalize(),
            mode="markers",
            marker={"color": colour, "size": 10},
            y=[label for label, _ in group],
            x=[e.difference for _, e in group],
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [(e.ci_high - e.difference) if e.ci_high is not None else 0 for _, e in group],
                "arrayminus": [(e.difference - e.ci_low) if e.ci_low is not None else 0 for _, e in group],
                "color": colour,
            },
        )
    fig.add_vline(x=0, line_dash="dash", line_color="#555")
    fig.update_layout(
        xaxis_title="Difference in score change, treated − holdout (points on 0-100)",
        yaxis={"autorange": "reversed", "automargin": True},
    )
    return _chart(fig, height=max(240, 32 * len(shown) + 100))


class AnalyticsPage(TenantPageMixin, TemplateView):
    template_name = "learning/analytics/overview.html"
    required_action = "learning_analytics.view"

    def get_template_names(self):
        # An htmx filter change swaps only the body; a full load renders the whole page.
        if self.request.headers.get("HX-Request") == "true":
            return ["learning/analytics/_overview_body.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        get = self.request.GET
        params = {k: get.get(k, "") for k in ("period", "from", "to", "location", "team", "lesson")}
        params["group_by"] = get.get("by", "") or "month"
        error = ""
        try:
            query = analytics.parse_query(params, self.organization)
            if query.group_by == "lesson":
                raise analytics.AnalyticsQueryError("by", "Break down by location, team, week or month.")
        except analytics.AnalyticsQueryError as exc:
            error = f"{exc.param}: {exc.message}"
            query = analytics.parse_query({"group_by": "month"}, self.organization)
        caller = analytics.Caller.of_membership(self.request.membership)
        lessons = analytics.stats(caller=caller, query=replace(query, group_by="lesson"))
        breakdown = analytics.stats(caller=caller, query=query)
        options = analytics.filter_options(caller=caller)
        ctx.update(
            title="Training analytics",
            error=error,
            filters={
                "period": query.period,
                "from": params["from"] if not error else "",
                "to": params["to"] if not error else "",
                "location": str(query.location_id or ""),
                "team": str(query.team_id or ""),
                "lesson": str(query.lesson_id or ""),
                "by": query.group_by,
            },
            periods=analytics.PERIODS,
            breakdowns=BREAKDOWNS,
            options=options,
            totals=analytics.totals(caller=caller, query=query),
            lessons=lessons,
            breakdown=breakdown,
            breakdown_label=BREAKDOWNS[query.group_by],
            most_sent_chart=most_sent_chart(lessons),
            rates_chart=rates_chart(breakdown),
            quiz_chart=quiz_chart(lessons),
        )
        return ctx


VERDICT_ORDER = {effectiveness.INEFFECTIVE: 0, effectiveness.EFFECTIVE: 1, effectiveness.INSUFFICIENT: 2}


class EffectivenessPage(TenantPageMixin, TemplateView):
    """GET: the latest figures; POST: queue a recompute (trainers and admins)."""

    template_name = "learning/analytics/effectiveness.html"
    required_action = "learning_analytics.view"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        effects = sorted(
            LessonEffect.objects.select_related("lesson", "standard"),
            key=lambda e: (VERDICT_ORDER.get(e.verdict, 3), -(e.treated_n + e.control_n), e.lesson.title),
        )
        ctx.update(
            title="Lesson effectiveness",
            effects=effects,
            ineffective=[e for e in effects if e.verdict == effectiveness.INEFFECTIVE],
            computed_at=max((e.computed_at for e in effects), default=None),
            interval_chart=interval_chart(effects),
            can_recompute=role_can(self.request.membership.role, "learning_analytics.change"),
            min_treated=effectiveness.MIN_TREATED,
            min_control=effectiveness.MIN_CONTROL,
            min_points=effectiveness.MIN_POINTS_PER_WINDOW,
            confidence=int(effectiveness.CONFIDENCE * 100),
        )
        return ctx

    def post(self, request, *args, **kwargs):
        if not role_can(request.membership.role, "learning_analytics.change"):
            raise PermissionDenied
        from learning.analytics_tasks import lesson_effects_compute

        tenant_id = self.organization.pk
        transaction.on_commit(lambda: lesson_effects_compute.delay(tenant_id))
        messages.success(request, "Recomputing the figures; reload this page in a minute.")
        return HttpResponseRedirect(reverse("learning_effectiveness"))


STATEMENT_VERBS = ("experienced", "completed", "passed", "failed")


class StatementListPage(TenantPageMixin, ListView):
    """The xAPI statements in the viewer's scope, each viewable as its JSON; the download link is
    the API's export with the same filters (the session authenticates it), so there is one export."""

    template_name = "learning/analytics/statements.html"
    required_action = "learning_analytics.view"
    model = Statement
    paginate_by = 50

    def filters(self) -> dict:
        get = self.request.GET
        verb = get.get("verb", "")
        return {"verb": verb if verb in STATEMENT_VERBS else ""}

    def page_queryset(self):
        queryset = Statement.objects.select_related("employee", "user").order_by("-timestamp", "-id")
        verb = self.filters()["verb"]
        return queryset.filter(verb=verb) if verb else queryset

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        filters = self.filters()
        for row in ctx["object_list"]:
            row.pretty = json.dumps(row.body, indent=2, ensure_ascii=False)
        export = reverse("xapi-statement-list") + "?format=json"
        ctx.update(
            title="xAPI statements",
            verbs=STATEMENT_VERBS,
            filters=filters,
            export_url=export + (f"&verb={filters['verb']}" if filters["verb"] else ""),
        )
        return ctx


urlpatterns = [
    path("", AnalyticsPage.as_view(), name="learning_analytics"),
    path("effectiveness/", EffectivenessPage.as_view(), name="learning_effectiveness"),
    path("statements/", StatementListPage.as_view(), name="learning_statements"),
]
