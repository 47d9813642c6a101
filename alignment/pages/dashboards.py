"""Alignment dashboards: the landing page (``/alignment/``) and the store dashboard.

``/alignment/`` sends each viewer where their scope starts: a store manager to their store, an
employee to their self view (``alignment_me``; before it exists, their store's dashboard, which
shows only their own figures), a regional manager to the region dashboard
(``alignment_region``) and organization-wide roles to the executive dashboard
(``alignment_executive``). Where a target page does not exist yet, a short list of the stores
the viewer may open is shown instead. The decision is the viewer's scope level
(``cem.scoping.scope_level``), never a role name.

``/alignment/stores/<id>/`` is the store dashboard; each panel is also
``/alignment/stores/<id>/panels/<panel>/`` (an htmx fragment; ``?format=csv`` downloads its
data). The store must be in the viewer's scope (a store manager: theirs; a regional manager:
their region's), else 404. Figures come from ``alignment.selectors`` over the rollup.
"""

from __future__ import annotations

from dataclasses import replace

from django.http import Http404
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone
from django.views.generic import TemplateView

from alignment import charts, drilldown
from alignment import selectors as sel
from alignment.models import ScopeKind
from alignment.pages.overview import (
    CATEGORIES,
    POINTS,
    TRAINING,
    TREND_COLUMNS,
    _explain_url,
    _score_chart,
    _trend_chart,
)
from alignment.pages.panels import DashboardPage, PanelSpec, optional_reverse
from cem.models import Employee, Location
from cem.pages import TenantPageMixin
from cem.scoping import scope_level
from feedback import case_selectors
from feedback.models import Case


def _heatmap_chart(rows):
    return charts.heatmap_figure(rows, sel.heatmap_cells(rows))


def _matrix_chart(rows):
    return charts.matrix_figure(
        rows,
        impression_threshold=sel.IMPRESSION_THRESHOLD,
        execution_threshold=sel.EXECUTION_THRESHOLD,
        labels=sel.QUADRANTS,
    )


def _matrix_rows(view):
    rows = sel.impression_execution(view.caller, view.filters, view.subject)
    for r in rows:
        r["quadrant_label"] = sel.QUADRANTS.get(r["quadrant"], "Not enough data")
    return rows


def _open_cases(view):
    cases = case_selectors.open_cases(
        view.scoped(Case.objects.all()), location_id=view.subject.location, limit=10
    )
    return [
        {
            "id": c.pk,
            "title": c.title,
            "priority": c.get_priority_display(),
            "status": c.get_status_display(),
            "category": c.category,
            "sla_due_at": timezone.localtime(c.sla_due_at).isoformat(timespec="minutes"),
            "overdue": c.sla_due_at < timezone.now(),
            "url": optional_reverse("feedback_case", c.pk),
        }
        for c in cases
    ]


def _scores(view):
    rows = sel.alignment_scores(
        view.caller, view.filters, scope=ScopeKind.LOCATION, scope_id=view.subject.location
    )
    for r in rows:
        r["explain_url"] = _explain_url(r["id"])
        r["missing_text"] = "; ".join(
            str(m.get("label", m)) if isinstance(m, dict) else str(m) for m in r["missing"]
        )
    return rows


def _comparison(view):
    return sel.comparison(view.caller, view.filters, view.location)


def _comparison_chart(rows):
    # NPS (-100..100) and the 0-100 figures share an axis; CES (1-7) would vanish on it.
    return charts.grouped_bar_figure(
        [r for r in rows if r["measure"] != "ces"],
        x="label",
        series={"location": "This store", "region": "Region", "company": "Company"},
    )


STORE_PANELS = (
    PanelSpec(
        key="kpis",
        title="Key figures",
        rows=lambda v: sel.kpi_tiles(v.caller, v.filters, v.subject),
        columns=[("measure", "measure"), ("label", "label"), ("value", "value"), ("n", "n")],
        body="alignment/panels/_kpis.html",
        measures=sel.KPI_MEASURES,
    ),
    PanelSpec(
        key="nps",
        title="NPS, CSAT, CES and FCR",
        rows=lambda v: sel.metric_trend(v.caller, v.filters, v.subject),
        columns=TREND_COLUMNS,
        chart=_trend_chart,
        poll=5,  # a new response shows here within seconds, without reloading the page
        measures=sel.ANSWER_METRICS,
        empty="No survey answers for these filters.",
    ),
    PanelSpec(
        key="audit",
        title="Audit and monitoring scores",
        rows=lambda v: sel.score_trend(v.caller, v.filters, v.subject),
        columns=[("period", "period_start"), ("metric", "measure"), ("value", "mean_score"), ("n", "n")],
        chart=_score_chart,
        measures=sel.SCORE_MEASURES,
        empty="No published audits or evaluations for these filters.",
    ),
    PanelSpec(
        key="heatmap",
        title="Standards by week",
        rows=lambda v: sel.standards_heatmap(v.caller, v.filters, v.subject),
        columns=[
            ("standard_code", "standard_code"),
            ("standard", "standard"),
            ("week", "week_start"),
            ("source", "source"),
            ("value", "points"),
            ("n", "n"),
        ],
        chart=_heatmap_chart,
        measures=tuple(sel.STANDARD_SOURCES),
        note="0-100 points per standard; a cell is the mean of feedback, audit and monitoring.",
    ),
    PanelSpec(
        key="matrix",
        title="Impression x execution",
        rows=_matrix_rows,
        columns=[
            ("standard_code", "standard_code"),
            ("standard", "standard"),
            ("impression", "impression"),
            ("impression_n", "impression_n"),
            ("execution", "execution"),
            ("execution_n", "execution_n"),
            ("quadrant", "quadrant"),
            ("reliable", "reliable"),
        ],
        chart=_matrix_chart,
        body="alignment/panels/_matrix.html",
        measures=tuple(sel.STANDARD_SOURCES),
        note=(
            f"Customer impression vs audit/monitoring execution per standard (0-100); "
            f"thresholds {sel.IMPRESSION_THRESHOLD} / {sel.EXECUTION_THRESHOLD}; "
            f"faded: fewer than {sel.MATRIX_MIN_N} values on a side."
        ),
    ),
    PanelSpec(
        key="cases",
        title="Open cases",
        rows=_open_cases,
        columns=[
            ("id", "case_id"),
            ("title", "title"),
            ("priority", "priority"),
            ("status", "status"),
            ("category", "category"),
            ("sla_due_at", "sla_due_at"),
        ],
        body="alignment/panels/_cases.html",
        action="cases.view",
        empty="No open cases.",
    ),
    replace(
        TRAINING, title="Training status of staff", empty="No staff or lessons completed in this period."
    ),
    POINTS,
    PanelSpec(
        key="scores",
        title="Alignment scores",
        rows=_scores,
        columns=[
            ("link", "link"),
            ("label", "label"),
            ("period", "period"),
            ("period_start", "period_start"),
            ("value", "value"),
            ("low", "low"),
            ("high", "high"),
            ("n", "n"),
            ("missing_text", "missing"),
        ],
        body="alignment/panels/_scores.html",
        empty="No alignment scores computed for this store yet.",
    ),
    PanelSpec(
        key="comparison",
        title="Compared with the region and the company",
        rows=_comparison,
        columns=[
            ("measure", "measure"),
            ("label", "label"),
            ("location", "store"),
            ("location_n", "store_n"),
            ("region", "region"),
            ("region_n", "region_n"),
            ("company", "company"),
            ("company_n", "company_n"),
        ],
        chart=_comparison_chart,
        body="alignment/panels/_table.html",
        measures=sel.COMPARISON_MEASURES,
    ),
    CATEGORIES,  # the same panel as the executive and region dashboards
)


class StoreDashboardPage(DashboardPage):
    """One store's dashboard; also serves its panels (``panel`` in the URL kwargs)."""

    model = Location  # the id in the URL; the cross-tenant sweep substitutes org A's
    template_name = "alignment/store.html"
    body_template = "alignment/_store_body.html"
    panel_url_name = "alignment_store_panel"
    panel_specs = STORE_PANELS

    def load_subject(self, location_id=None, **kwargs):
        self.location = sel.location_in_scope(self.caller, location_id)
        if self.location is None:
            raise Http404("No such store in your scope.")
        return sel.Subject(location=self.location.pk)

    def export_prefix(self) -> str:
        return f"store-{self.location.code}"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            title=self.location.name,
            location=self.location,
            page_url=self.request.path,
            # Up to the region and down to the staff, with the filters, where the viewer may go
            # (a store manager's drill-down starts at the store; an employee's at themselves).
            region_url=self._drill_url("region", "alignment_region", self.location.region_id),
            people_url=self._drill_url("location", "alignment_location_people", self.location.pk),
        )
        return ctx

    def _drill_url(self, level: str, name: str, pk: int) -> str | None:
        if not drilldown.may_open(self.caller, level):
            return None
        target = optional_reverse(name, pk)
        return self.filters.url(target) if target else None


class HomePage(TenantPageMixin, TemplateView):
    """``/alignment/``: redirect to where the viewer's scope starts (module docstring)."""

    template_name = "alignment/home.html"
    required_action = "alignment.view"

    def get(self, request, *args, **kwargs):
        membership = request.membership
        level = scope_level(membership.role)
        target = None
        if level == "location" and membership.location_id:
            target = optional_reverse("alignment_store", location_id=membership.location_id)
        elif level == "employee":
            target = optional_reverse("alignment_me") or self._own_store_url(membership)
        elif level == "region":
            target = optional_reverse("alignment_region", membership.region_id) or optional_reverse(
                "alignment_region"
            )
        elif level == "organization":
            target = optional_reverse("alignment_executive")
        if target:
            return redirect(target)
        return super().get(request, *args, **kwargs)

    def _own_store_url(self, membership) -> str | None:
        location_id = (
            Employee.objects.filter(pk=membership.employee_id)
            .values_list("current_location_id", flat=True)
            .first()
            if membership.employee_id
            else None
        )
        return optional_reverse("alignment_store", location_id=location_id) if location_id else None

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["title"] = "Dashboards"
        ctx["stores"] = list(
            self.scoped(Location.objects.filter(active=True))
            .select_related("region")
            .order_by("region__name", "name")
        )
        return ctx


urlpatterns = [
    path("", HomePage.as_view(), name="alignment_home"),
    path("stores/<int:location_id>/", StoreDashboardPage.as_view(), name="alignment_store"),
    path(
        "stores/<int:location_id>/panels/<slug:panel>/",
        StoreDashboardPage.as_view(),
        name="alignment_store_panel",
    ),
]
