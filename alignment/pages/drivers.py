"""Driver analysis page (/alignment/drivers/): which standards most explain NPS, retention or
sales, for the organization or one location — the latest stored snapshot (alignment/drivers.py
computes it in a Celery task; this page never runs the analysis), drawn as a ranked horizontal
bar chart of importance with its interval, the effects with their intervals and n, R², the value
of a one-point improvement, the notes and caveats, and a "Recompute now" button.

``?location=<id>`` (blank: the organization) and ``?outcome=nps|retention_rate|sales`` choose the
snapshot; ``?format=csv`` downloads the ranked drivers. A malformed parameter is a 400 naming it;
a location outside the viewer's scope is a 404.
"""

from __future__ import annotations

import plotly.graph_objects as go
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.views.generic import TemplateView

from alignment import driver_selectors as sel
from alignment import drivers
from alignment.charts import csv_response, figure
from alignment.models import DriverAnalysis
from cem.models import Location
from cem.pages import TenantPageMixin
from cem.params import id_of
from cem.permissions import role_can
from cem.scoping import scope_level

Outcome = DriverAnalysis.Outcome
CSV_COLUMNS = [
    ("rank", "Rank"),
    ("code", "Standard code"),
    ("standard", "Standard"),
    ("importance", "Importance (% of explained)"),
    ("importance_low", "Importance low"),
    ("importance_high", "Importance high"),
    ("effect", "Effect (standardized beta)"),
    ("low", "Effect low"),
    ("high", "Effect high"),
    ("per_point", "Per point"),
    ("per_point_low", "Per point low"),
    ("per_point_high", "Per point high"),
    ("per_point_unit", "Per point unit"),
    ("n", "n"),
    ("mean", "Mean score"),
]


def _short(text: str, n: int = 42) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def importance_chart(drivers_: list[dict]) -> dict | None:
    """Ranked horizontal bars: importance (% of explained variance) with its 95 % interval."""
    rows = [d for d in drivers_ if d.get("importance") is not None]
    if not rows:
        return None
    fig = go.Figure()
    fig.add_bar(
        orientation="h",
        y=[_short(f"{d['rank']}. {d['standard']}") for d in rows],
        x=[d["importance"] for d in rows],
        marker_color=["#1565c0" if (d.get("effect") or 0) >= 0 else "#c62828" for d in rows],
        error_x={
            "type": "data",
            "symmetric": False,
            "array": [max((d["importance_high"] or d["importance"]) - d["importance"], 0) for d in rows],
            "arrayminus": [max(d["importance"] - (d["importance_low"] or d["importance"]), 0) for d in rows],
            "color": "#455a64",
        },
        customdata=[[d["effect"], d["low"], d["high"], d["n"]] for d in rows],
        hovertemplate=(
            "%{y}<br>importance %{x:.1f} %<br>effect β %{customdata[0]:.2f} "
            "(%{customdata[1]:.2f} to %{customdata[2]:.2f})<br>n = %{customdata[3]}<extra></extra>"
        ),
    )
    fig.update_layout(
        xaxis={"title": "Share of the explained variance (%)", "rangemode": "tozero"},
        yaxis={"autorange": "reversed", "automargin": True},
        showlegend=False,
    )
    return figure(fig, height=max(240, 36 * len(rows) + 90))


def effect_chart(drivers_: list[dict]) -> dict | None:
    """Each standard's effect (standardized β) with its 95 % interval, a dashed line at 0."""
    rows = [d for d in drivers_ if d.get("effect") is not None]
    if not rows:
        return None
    fig = go.Figure()
    fig.add_scatter(
        mode="markers",
        y=[_short(f"{d['rank']}. {d['standard']}") for d in rows],
        x=[d["effect"] for d in rows],
        marker={"size": 10, "color": "#1565c0"},
        error_x={
            "type": "data",
            "symmetric": False,
            "array": [(d["high"] - d["effect"]) if d["high"] is not None else 0 for d in rows],
            "arrayminus": [(d["effect"] - d["low"]) if d["low"] is not None else 0 for d in rows],
        },
        customdata=[d["n"] for d in rows],
        hovertemplate="%{y}<br>β %{x:.2f}<br>n = %{customdata}<extra></extra>",
    )
    fig.add_vline(x=0, line_dash="dash", line_color="#555")
    fig.update_layout(
        xaxis={"title": "Effect: standard deviations of the outcome per standard deviation of the standard"},
        yaxis={"autorange": "reversed", "automargin": True},
        showlegend=False,
    )
    return figure(fig, height=max(220, 32 * len(rows) + 90))


class DriversPage(TenantPageMixin, TemplateView):
    """GET: the latest snapshot of the chosen scope and outcome; POST: queue a recompute."""

    template_name = "alignment/drivers.html"
    required_action = "business_data.view"

    def _choice(self, request):
        """(location or None, outcome) from GET; ValidationError naming the bad parameter."""
        outcome = request.GET.get("outcome", "").strip() or Outcome.NPS
        if outcome not in Outcome.values:
            raise ValidationError({"outcome": f"One of {', '.join(Outcome.values)}."})
        raw = request.GET.get("location", "").strip()
        locations = self.scoped(Location.objects.all()).order_by("name")
        if raw:
            location_id = id_of(raw)
            if location_id is None:
                raise ValidationError({"location": "Expected a location id (digits) or nothing."})
            location = locations.filter(pk=location_id).first()
            if location is None:
                raise Http404("No such location in your scope.")
        elif self.org_wide:
            location = None
        else:
            # Below the organization level there is no organization-wide snapshot to read.
            location = locations.filter(pk=self.request.membership.location_id).first() or locations.first()
        return location, outcome, locations

    @property
    def org_wide(self) -> bool:
        return scope_level(self.request.membership.role) == "organization"

    def get(self, request, *args, **kwargs):
        try:
            self.location, self.outcome, self.locations = self._choice(request)
        except ValidationError as exc:
            (name, errors) = next(iter(exc.message_dict.items()))
            return HttpResponse(
                f"Bad parameter '{name}': {' '.join(errors)}",
                status=400,
                content_type="text/plain; charset=utf-8",
            )
        self.analysis = sel.latest(
            self.scoped(DriverAnalysis.objects.all()),
            location_id=self.location.pk if self.location else None,
            outcome=self.outcome,
        )
        if request.GET.get("format") == "csv":
            rows = self.analysis.drivers if self.analysis else []
            scope = self.location.code if self.location else "organization"
            return csv_response(CSV_COLUMNS, rows, f"drivers-{self.outcome}-{scope}")
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        analysis = self.analysis
        state = sel.status(analysis)
        details = (analysis.value_per_point or {}) if analysis else {}
        params = {"outcome": self.outcome, "location": self.location.pk if self.location else ""}
        ctx.update(
            title="Driver analysis",
            analysis=analysis,
            state=state,
            drivers=analysis.drivers if analysis else [],
            message=details.get("message", ""),
            notes=details.get("notes", []),
            caveats=details.get("caveats", []),
            values=sel.value_rows(analysis) if analysis else [],
            importance_chart=importance_chart(analysis.drivers) if analysis else None,
            effect_chart=effect_chart(analysis.drivers) if analysis else None,
            outcome=self.outcome,
            outcomes=Outcome.choices,
            location=self.location,
            locations=self.locations,
            org_wide=self.org_wide,
            can_recompute=role_can(self.request.membership.role, "business_data.change"),
            csv_query="&".join(f"{k}={v}" for k, v in params.items() if v != ""),
            min_respondents=drivers.MIN_RESPONDENTS,
            min_standard_n=drivers.MIN_STANDARD_N,
            max_standards=drivers.MAX_STANDARDS,
            max_responses=f"{drivers.MAX_RESPONSES:,}",
            window_days=drivers.WINDOW_DAYS,
            business_window_days=drivers.BUSINESS_WINDOW_DAYS,
            min_location_periods=drivers.MIN_LOCATION_PERIODS,
            bootstrap=drivers.BOOTSTRAP,
        )
        return ctx

    def post(self, request, *args, **kwargs):
        if not role_can(request.membership.role, "business_data.change"):
            raise PermissionDenied
        drivers.request_recompute(organization=self.organization, actor=self.actor)
        messages.success(request, "Recomputing the driver analysis; reload this page in a minute or two.")
        query = request.POST.get("next_query", "")
        url = reverse("alignment_drivers")
        safe = "&".join(
            part
            for part in query.split("&")
            if part.split("=", 1)[0] in ("outcome", "location") and "/" not in part
        )
        return HttpResponseRedirect(f"{url}?{safe}" if safe else url)


urlpatterns = [
    path("", DriversPage.as_view(), name="alignment_drivers"),
]
