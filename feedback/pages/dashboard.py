"""The feedback dashboard: KPI tiles, NPS by location, sentiment over time, top topics by location.

Every figure comes from feedback.selectors with the caller's scope, so the page shows exactly
what ``/api/v1/metrics/`` returns for the same filters. Charts are plotly figures built here and
shipped as JSON (``json_script``); static/feedback/charts.js draws them with the vendored
plotly.js, so the page carries no inline script for a Content-Security-Policy to allow.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import plotly.graph_objects as go
import plotly.io as pio
from django.urls import path
from django.utils import timezone
from django.views.generic import TemplateView

from cem.pages import TenantPageMixin
from cem.permissions import role_can
from feedback import case_selectors, selectors
from feedback.models import Case

PERIODS = {
    "7": "Last 7 days",
    "30": "Last 30 days",
    "90": "Last 90 days",
    "365": "Last 12 months",
    "all": "All time",
}
DEFAULT_PERIOD = "90"
SENTIMENT_COLOURS = {"positive": "#2e7d32", "neutral": "#9e9e9e", "negative": "#c62828"}
KPI_LABELS = {
    "nps": ("NPS", "% promoters − % detractors"),
    "csat": ("CSAT", "% satisfied (4–5 of 5)"),
    "ces": ("CES", "mean effort (1–7)"),
    "fcr": ("FCR", "% resolved first time"),
}


def _chart(fig: go.Figure) -> dict:
    fig.update_layout(margin={"l": 40, "r": 10, "t": 10, "b": 40}, height=320, legend={"orientation": "h"})
    # plotly's own encoder handles its numpy/datetime values; the dict goes through json_script.
    return json.loads(pio.to_json(fig, validate=False))


def sentiment_chart(rows: list[tuple]) -> dict | None:
    if not rows:
        return None
    fig = go.Figure()
    for label, colour in SENTIMENT_COLOURS.items():
        points = [(day.isoformat(), n) for day, s, n in rows if s == label]
        if points:
            fig.add_bar(
                name=label.title(),
                x=[p[0] for p in points],
                y=[p[1] for p in points],
                marker_color=colour,
            )
    fig.update_layout(barmode="stack", xaxis_title=None, yaxis_title="Comments")
    return _chart(fig)


def topics_chart(rows: list[tuple], names: dict[int, str]) -> dict | None:
    if not rows:
        return None
    locations = sorted({loc for loc, _, _ in rows}, key=lambda pk: names.get(pk, "") if pk else "~")
    labels = [names.get(pk, "—") if pk else "No location" for pk in locations]
    counts: dict[str, dict] = {}
    for loc, topic, n in rows:
        counts.setdefault(topic, {})[loc] = n
    fig = go.Figure()
    for topic in sorted(counts, key=lambda t: -sum(counts[t].values())):
        fig.add_bar(name=topic, y=labels, x=[counts[topic].get(pk, 0) for pk in locations], orientation="h")
    fig.update_layout(barmode="stack", xaxis_title="Mentions", yaxis={"autorange": "reversed"})
    return _chart(fig)


class DashboardPage(TenantPageMixin, TemplateView):
    template_name = "feedback/dashboard.html"
    required_action = "responses.view"
    reads_from_replica = True

    def get_template_names(self):
        # An htmx filter change swaps only the body; a full load renders the whole page.
        if self.request.headers.get("HX-Request") == "true":
            return ["feedback/_dashboard_body.html"]
        return [self.template_name]

    def _filters(self) -> dict:
        get = self.request.GET
        period = get.get("period", DEFAULT_PERIOD)
        if period not in PERIODS:
            period = DEFAULT_PERIOD
        params = {"survey": get.get("survey", ""), "location": get.get("location", "")}
        if period != "all":
            today = timezone.now().astimezone(selectors.org_tz(self.organization)).date()
            params["from"] = (today - dt.timedelta(days=int(period) - 1)).isoformat()
        return {"period": period, **params}

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        caller = selectors.Caller.of_membership(self.request.membership)
        org = self.organization
        filters = self._filters()
        error = ""
        try:
            query = selectors.parse_metric_query(filters, org)
        except selectors.MetricQueryError as exc:
            error = exc.message
            filters.update(survey="", location="")
            query = selectors.parse_metric_query({"from": filters.get("from", "")}, org)
        names = selectors.location_names(caller=caller)
        kpis = selectors.kpis(organization=org, caller=caller, query=query)
        by_location = selectors.metric_results(
            organization=org, caller=caller, query=replace(query, metric="nps", group_by=("location",))
        )
        long_period = filters["period"] in ("365", "all")
        sentiment = selectors.sentiment_over_time(
            organization=org, caller=caller, query=query, period="month" if long_period else "week"
        )
        topics = selectors.top_topics_by_location(caller=caller, query=query)
        ctx.update(
            title="Feedback",
            filters=filters,
            error=error,
            periods=PERIODS,
            surveys=selectors.surveys(),
            locations=names,
            kpis=[
                {"key": key, "label": KPI_LABELS[key][0], "hint": KPI_LABELS[key][1], **kpis[key].as_dict()}
                for key in selectors.ANSWER_METRICS
            ],
            nps_by_location=[
                {"location": r["group"]["location"], "name": names.get(r["group"]["location"]), **r}
                for r in by_location
            ],
            sentiment_chart=sentiment_chart(sentiment),
            topics_chart=topics_chart(topics, names),
            open_cases=self._open_cases(),
        )
        return ctx

    def _open_cases(self) -> list[Case] | None:
        """The caller's most urgent open cases, so a manager sees new ones where they look first."""
        if not role_can(self.request.membership.role, "cases.view"):
            return None
        qs = self.scoped(Case.objects.filter(status__in=case_selectors.ACTIVE_STATUSES))
        return list(qs.select_related("location").order_by(*case_selectors.WORK_ORDER)[:5])


urlpatterns = [path("", DashboardPage.as_view(), name="feedback_dashboard")]
