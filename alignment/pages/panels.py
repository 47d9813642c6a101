"""The page side of the dashboard building blocks: a base view whose panels are each their own
htmx fragment and CSV download.

A dashboard subclasses :class:`DashboardPage` and declares

- ``panel_specs``: the :class:`PanelSpec` of each panel (what data, which chart, which CSV
  columns, optional table template, polling, extra permission);
- ``panel_url_name``: the URL name of its panel route, which takes the page's URL kwargs plus
  ``panel`` (e.g. ``stores/<int:location_id>/panels/<slug:panel>/``); the same view class
  serves both routes;
- ``load_subject(**kwargs)``: resolve whose figures (404 outside the viewer's scope) and return
  the ``alignment.selectors.Subject``.

On GET the filters are parsed (a malformed one is a 400 naming it), ``self.caller`` is the
viewer, and then:

- the page route renders every permitted panel (``panels`` in the context; an htmx request —
  the filter form — gets only ``body_template``);
- the panel route renders one panel (``alignment/_chart.html``), or with ``?format=csv`` its
  rows as CSV. Unknown panels 404.

Every panel's data comes from one selector call, so the chart, the fragment, the CSV and the
API (``alignment.api.rollups``) show the same figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.http import Http404, HttpResponse
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.views.generic import TemplateView

from alignment import charts, panel_cache
from alignment.filters import CATEGORIES, GRAINS, PERIODS, DashboardFilters, FilterError, bad_filter_response
from alignment.selectors import Caller, Subject, filter_options
from cem.pages import TenantPageMixin
from cem.permissions import role_can

FILTER_NAMES = {
    "channel": "channel",
    "touchpoint": "touchpoint",
    "segment": "segment",
    "category": "category",
}


def optional_reverse(name: str, *args, **kwargs) -> str | None:
    """``reverse`` that answers None when the URL does not exist (yet): pages built by other
    areas (the self view, region and executive dashboards, score explanations) are linked as
    soon as they exist, and the link is simply absent before."""
    try:
        return reverse(name, args=args or None, kwargs=kwargs or None)
    except NoReverseMatch:
        return None


@dataclass(frozen=True)
class PanelSpec:
    """What one panel shows. ``rows(view)`` calls a selector with ``view.caller``,
    ``view.filters`` and ``view.subject``; ``chart(rows)`` builds the plotly figure (or None);
    ``columns`` are the CSV's (row key, header) pairs."""

    key: str
    title: str
    rows: Callable
    columns: charts.Columns
    chart: Callable | None = None
    body: str = ""
    poll: int | None = None
    measures: tuple = ()  # rollup measures read, to name filters this panel cannot apply
    action: str = ""  # a further permission the viewer needs ("cases.view"), else hidden
    empty: str = "No data for these filters."
    note: str = ""
    extra: dict = field(default_factory=dict)


class DashboardPage(TenantPageMixin, TemplateView):
    required_action = "alignment.view"
    reads_from_replica = True
    body_template = ""
    panel_url_name = ""
    panel_specs: tuple[PanelSpec, ...] = ()

    # --- what subclasses provide ---------------------------------------------------------------

    def load_subject(self, **kwargs) -> Subject:
        raise NotImplementedError

    def url_kwargs(self) -> dict:
        """The page's own URL kwargs (without ``panel``), for the panel URLs."""
        return {k: v for k, v in self.kwargs.items() if k != "panel"}

    def export_prefix(self) -> str:
        return "alignment"

    # --- flow ----------------------------------------------------------------------------------

    def get(self, request, *args, **kwargs):
        try:
            self.filters = DashboardFilters.from_params(request.GET, self.organization)
            fmt = (request.GET.get("format") or "").strip()
            if fmt not in ("", "csv"):
                raise FilterError("format", "Only 'csv'.")
        except FilterError as exc:
            return bad_filter_response(exc)
        self.caller = Caller.of_membership(request.membership)
        self.subject = self.load_subject(**kwargs)
        panel_key = kwargs.get("panel")
        if panel_key is None:
            return super().get(request, *args, **kwargs)
        spec = self.spec(panel_key)
        rows = panel_cache.rows(spec, self)
        if fmt == "csv":
            return charts.csv_response(spec.columns, rows, f"{self.export_prefix()}-{spec.key}")
        return HttpResponse(
            render_to_string("alignment/_chart.html", {"panel": self.panel(spec, rows)}, request)
        )

    def get_template_names(self):
        if self.request.headers.get("HX-Request") == "true" and self.body_template:
            return [self.body_template]
        return [self.template_name]

    def permitted_specs(self) -> list[PanelSpec]:
        role = self.request.membership.role
        return [s for s in self.panel_specs if not s.action or role_can(role, s.action)]

    def spec(self, key: str) -> PanelSpec:
        for spec in self.permitted_specs():
            if spec.key == key:
                return spec
        raise Http404("No such panel.")

    def panel_url(self, key: str, **overrides) -> str:
        path = reverse(self.panel_url_name, kwargs={**self.url_kwargs(), "panel": key})
        return self.filters.url(path, **overrides)

    def panel(self, spec: PanelSpec, rows: list) -> charts.Panel:
        ignored = self.filters.ignored_by(spec.measures) if spec.measures else []
        note = spec.note
        if ignored:
            names = ", ".join(FILTER_NAMES.get(n, n) for n in ignored)
            note = f"{note} Not filtered by {names}: this data does not carry it.".strip()
        return charts.Panel(
            key=spec.key,
            title=spec.title,
            url=self.panel_url(spec.key),
            csv_url=self.panel_url(spec.key, format="csv"),
            figure=spec.chart(rows) if spec.chart else None,
            empty=spec.empty,
            poll=spec.poll,
            note=note,
            body=spec.body,
            rows=rows,
            filename=f"{self.export_prefix()}-{spec.key}",
            columns=spec.columns,
        )

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            filters=self.filters,
            filter_options={
                "periods": PERIODS,
                "grains": GRAINS,
                "categories": CATEGORIES,
                **filter_options(),
            },
            panels=[self.panel(spec, panel_cache.rows(spec, self)) for spec in self.permitted_specs()],
        )
        return ctx
