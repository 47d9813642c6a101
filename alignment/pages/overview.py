"""The dashboards above and beside the store dashboard: executive, region, drill-down (location
people, team, employee), agent, the employee's self view, and the trainer dashboard.

Every page is an ``alignment.pages.panels.DashboardPage``: the shared filters (period, grain,
channel, touchpoint, segment, interaction category) are read from the URL and written back to
every link, each panel is its own htmx fragment (``…/panels/<panel>/``) and CSV download
(``?format=csv``, formula-escaped), and every chart exports a PNG from its plotly modebar.

Where each viewer may go is the drill-down's rule (``alignment.drilldown``): the executive page
is the organization level (viewers with a narrower scope are sent to where theirs starts); a
region, location, team or employee outside the viewer's scope — or above its top — is a 404,
however the URL was made. Figures come from the rollup through ``alignment.selectors`` (the
store dashboard's readers) and ``alignment.scope_selectors`` (ranking, drill-down figures,
training by standard), so the page, its fragments, its CSVs and the API agree.

- ``/alignment/executive/``: KPIs of everything the viewer sees, NPS trend, the ranking of
  locations with 95 % intervals (``?metric=`` nps, csat, ces, fcr, audit, monitoring,
  alignment), the regions with key figures (drill down), interaction categories in use, the
  organization's alignment scores, and the complaint review (``feedback_complaints``).
- ``/alignment/regions/<id>/``: the same for one region, its locations as children (each links
  to the store dashboard and to its teams and people).
- ``/alignment/locations/<id>/people/``: a location's teams and the staff with no team.
- ``/alignment/teams/<id>/``: a team's figures, its members, their training and points.
- ``/alignment/employees/<id>/`` and ``/alignment/agents/<id>/``: one person's monitoring
  scores, FCR, CES, lessons and points (the agent dashboard); ``/alignment/me/`` is the same for
  the signed-in employee and shows nothing but their own rows.
- ``/alignment/trainer/``: lessons completed per standard (on time / late), per location and
  over time, with links to the learning analytics and lesson effectiveness pages.
"""

from __future__ import annotations

from dataclasses import replace

import plotly.graph_objects as go
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path, reverse

from alignment import charts, drilldown, ranking
from alignment import scope_selectors as ssel
from alignment import selectors as sel
from alignment.filters import FilterError, bad_filter_response
from alignment.models import Measure
from alignment.pages.panels import DashboardPage, PanelSpec, optional_reverse
from cem.models import Employee, Location, Region, Team
from cem.permissions import role_can

TEMPLATE = "alignment/overview.html"
BODY = "alignment/_overview_body.html"

METRIC_LABELS = {"nps": "NPS", "csat": "CSAT", "ces": "CES (right axis)", "fcr": "FCR"}
SCORE_LABELS = {"audit": "Mystery shopping", "monitoring": "Monitoring"}
TREND_COLUMNS = [("period", "period_start"), ("metric", "metric"), ("value", "value"), ("n", "n")]
RANKED_COLOUR, UNRANKED_COLOUR = "#1565c0", "#9e9e9e"


# --- links --------------------------------------------------------------------------------------


def level_url(level: str, pk: int, filters, *, agent: bool = False) -> str | None:
    """The dashboard of one drill-down node, with the current filters."""
    if level == "organization":
        target = reverse("alignment_executive")
    elif level == "region":
        target = reverse("alignment_region", args=[pk])
    elif level == "location":
        target = optional_reverse("alignment_store", location_id=pk)
    elif level == "team":
        target = reverse("alignment_team", args=[pk])
    else:
        target = reverse("alignment_agent" if agent else "alignment_employee", args=[pk])
    return filters.url(target) if target else None


def _explain_url(score_id) -> str | None:
    return optional_reverse("alignment_score_explain", pk=score_id) or optional_reverse(
        "alignment_score_explain", score_id
    )


# --- charts -------------------------------------------------------------------------------------


def interval_figure(rows: list[dict], *, label: str, value: str = "value", title: str = "") -> dict | None:
    """One dot per row with its 95 % interval; rows not ranked (``ranked`` False) in grey."""
    shown = [r for r in rows if r.get(value) is not None]
    if not shown:
        return None
    fig = go.Figure()
    for ranked, colour, name in (
        (True, RANKED_COLOUR, "Ranked"),
        (False, UNRANKED_COLOUR, "Not ranked (n below minimum)"),
    ):
        group = [r for r in shown if bool(r.get("ranked", True)) == ranked]
        if not group:
            continue
        fig.add_scatter(
            name=name,
            mode="markers",
            y=[r[label] for r in group],
            x=[r[value] for r in group],
            marker={"color": colour, "size": 10},
            customdata=[r["n"] for r in group],
            hovertemplate="%{y}: %{x} (n = %{customdata})<extra></extra>",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [(r["high"] - r[value]) if r.get("high") is not None else 0 for r in group],
                "arrayminus": [(r[value] - r["low"]) if r.get("low") is not None else 0 for r in group],
                "color": colour,
            },
        )
    fig.update_layout(
        xaxis_title=title, yaxis={"autorange": "reversed", "automargin": True, "type": "category"}
    )
    return charts.figure(fig, height=max(240, 60 + 30 * len(shown)))


def _trend_chart(rows):
    return charts.trend_figure(rows, labels=METRIC_LABELS, secondary=("ces",))


def _score_chart(rows):
    fig = charts.trend_figure(rows, labels=SCORE_LABELS)
    if fig is not None:
        fig["layout"].setdefault("yaxis", {})["range"] = [0, 100]
    return fig


def _stacked(rows, *, x: str, parts: dict[str, tuple[str, str]]) -> dict | None:
    """Stacked bars over ``x``; ``parts`` = {row key: (legend, colour)}."""
    if not any(r.get(key) for r in rows for key in parts):
        return None
    fig = go.Figure()
    for key, (name, colour) in parts.items():
        fig.add_bar(
            name=name, x=[str(r[x]) for r in rows], y=[r.get(key) or 0 for r in rows], marker_color=colour
        )
    fig.update_layout(barmode="stack", xaxis={"type": "category"})
    return charts.figure(fig)


LESSON_PARTS = {
    "on_time": ("On time", "#2e7d32"),
    "late": ("Late", "#c62828"),
    "undated": ("No due date", "#9e9e9e"),
}


# --- rows ---------------------------------------------------------------------------------------


def _ranking_rows(view) -> list[dict]:
    result = ssel.location_ranking(
        view.caller, view.organization, view.filters, view.metric, region_id=view.ranking_region
    )
    rows = []
    for r in result.rows:
        row = r.as_dict()
        row.update(
            metric=result.metric.key,
            min_sample=result.min_sample,
            overlaps_text=", ".join(f"#{rank}" for rank in r.overlaps),
            url=level_url("location", r.location_id, view.filters),
            interval=_interval_text(row["low"], row["high"]),
            label=f"#{r.rank} {r.location}" if r.rank else r.location,
        )
        rows.append(row)
    return rows


def _interval_text(low, high) -> str:
    return "" if low is None or high is None else f"{low:g} – {high:g}"


RANKING_COLUMNS = [
    ("rank", "rank"),
    ("location_id", "location_id"),
    ("location", "location"),
    ("region", "region"),
    ("metric", "metric"),
    ("value", "value"),
    ("low", "ci95_low"),
    ("high", "ci95_high"),
    ("n", "n"),
    ("min_sample", "min_sample"),
    ("ranked", "ranked"),
    ("tied", "tied"),
    ("overlaps_text", "indistinguishable_from"),
    ("note", "note"),
]

_FIGURE_KEYS = ("nps", "csat", "ces", "fcr", "audit", "monitoring")


def _flatten(node: drilldown.Node, filters) -> dict:
    figures = node.figures
    row = {
        "level": node.level,
        "id": node.id,
        "name": node.name,
        "kind": node.kind,
        "url": level_url(node.level, node.id, filters, agent=node.is_agent),
        "people_url": filters.url(reverse("alignment_location_people", args=[node.id]))
        if node.level == "location"
        else None,
        "responses": figures["responses"],
        "lessons": figures["lessons"]["completed"],
        "on_time_rate": figures["lessons"]["on_time_rate"],
        "points": figures["points"]["total"],
    }
    for key in _FIGURE_KEYS:
        row[key] = figures[key]["value"]
        row[f"{key}_n"] = figures[key]["n"]
    score = node.alignment
    row.update(
        alignment=None if score is None or score.value is None else float(score.value),
        alignment_n=None if score is None else score.n,
        alignment_url=_explain_url(score.pk) if score is not None else None,
    )
    return row


def _children_rows(view) -> list[dict]:
    drill = drilldown.drill(view.caller, view.organization, view.filters, view.level, view.node_id)
    return [_flatten(child, view.filters) for child in drill.children]


CHILD_COLUMNS = [
    ("level", "level"),
    ("id", "id"),
    ("name", "name"),
    *[(col, col) for key in _FIGURE_KEYS for col in (key, f"{key}_n")],
    ("responses", "responses"),
    ("lessons", "lessons_completed"),
    ("on_time_rate", "lessons_on_time_pct"),
    ("points", "points"),
    ("alignment", "alignment_overall"),
    ("alignment_n", "alignment_n"),
]


def _children_chart(rows):
    shown = [r for r in rows if r["nps"] is not None]
    if not shown:
        return None
    return charts.grouped_bar_figure(
        shown, x="name", series={"nps": "NPS", "audit": "Audit score", "monitoring": "Monitoring"}
    )


def _scores_rows(view) -> list[dict]:
    rows = sel.alignment_scores(view.caller, view.filters, scope=view.level, scope_id=view.node_id)
    for r in rows:
        r["explain_url"] = _explain_url(r["id"])
        r["missing_text"] = "; ".join(
            str(m.get("label", m)) if isinstance(m, dict) else str(m) for m in r["missing"]
        )
    return rows


SCORE_COLUMNS = [
    ("link", "link"),
    ("label", "label"),
    ("period", "period"),
    ("period_start", "period_start"),
    ("value", "value"),
    ("low", "low"),
    ("high", "high"),
    ("n", "n"),
    ("missing_text", "missing"),
]


PERSON_KPIS = (
    Measure.MONITORING,
    Measure.AUDIT,
    Measure.FCR,
    Measure.CES,
    Measure.NPS,
    Measure.CSAT,
    Measure.LESSONS,
    Measure.POINTS,
)


def _person_kpis(view) -> list[dict]:
    tiles = sel.kpi_tiles(view.caller, view.filters, view.subject, measures=PERSON_KPIS)
    [lessons] = sel.summary(view.caller, view.filters, view.subject, measures=[Measure.LESSONS]) or [None]
    rate = sel.on_time_rate(top=lessons["top"], bottom=lessons["bottom"]) if lessons else None
    tiles.append(
        {
            "measure": "lessons_on_time",
            "label": "Lessons on time (%)",
            "value": None if rate is None or rate.value is None else float(rate.value),
            "n": 0 if rate is None else rate.n,
        }
    )
    return tiles


def _per_period(view, measure) -> tuple[list[dict], str]:
    grain = view.filters.grain
    return sel.summary(view.caller, view.filters, view.subject, measures=[measure], group_by=(grain,)), grain


def _lesson_periods(view) -> list[dict]:
    rows, grain = _per_period(view, Measure.LESSONS)
    return [
        {
            "period": r[grain],
            "completed": r["n"],
            "on_time": r["top"],
            "late": r["bottom"],
            "undated": r["n"] - r["top"] - r["bottom"],
        }
        for r in rows
    ]


def _points_periods(view) -> list[dict]:
    rows, grain = _per_period(view, Measure.POINTS)
    return [{"period": r[grain], "awards": r["n"], "points": int(r["total"])} for r in rows if r["n"]]


def _standard_scores(view) -> list[dict]:
    rows = sel.summary(
        view.caller,
        view.filters,
        view.subject,
        measures=[Measure.STD_MONITORING, Measure.STD_AUDIT, Measure.STD_FEEDBACK],
        group_by=("standard",),
    )
    names = sel.standard_names(r["standard"] for r in rows)
    out = [
        {
            "standard_id": r["standard"],
            "standard_code": names.get(r["standard"], {}).get("code", ""),
            "standard": names.get(r["standard"], {}).get("title", ""),
            "source": sel.STANDARD_SOURCES[r["measure"]],
            "value": r["value"],
            "n": r["n"],
        }
        for r in rows
        if r["standard"] is not None
    ]
    return sorted(out, key=lambda r: (r["standard_code"], r["source"]))


def _standard_chart(rows):
    if not rows:
        return None
    fig = go.Figure()
    colours = {"monitoring": "#ad1457", "audit": "#00838f", "feedback": "#1565c0"}
    for source, colour in colours.items():
        group = [r for r in rows if r["source"] == source]
        if group:
            fig.add_bar(
                name=source.capitalize(),
                y=[r["standard_code"] or r["standard"] for r in group],
                x=[r["value"] for r in group],
                orientation="h",
                marker_color=colour,
            )
    fig.update_layout(
        barmode="group", xaxis={"range": [0, 100], "title": "0-100 points"}, yaxis={"automargin": True}
    )
    return charts.figure(fig, height=max(240, 60 + 36 * len({r["standard_id"] for r in rows})))


def _lessons_by_standard(view) -> list[dict]:
    return ssel.lesson_status_by_standard(view.caller, view.filters, **view.subject_where)


LESSON_STD_COLUMNS = [
    ("standard_id", "standard_id"),
    ("code", "standard_code"),
    ("name", "standard"),
    ("completed", "completed"),
    ("on_time", "on_time"),
    ("late", "late"),
    ("on_time_rate", "on_time_pct"),
]


def _lessons_by_standard_chart(rows):
    for r in rows:
        r["undated"] = r["completed"] - r["on_time"] - r["late"]
        r["label"] = r["code"] or r["name"]
    return _stacked(rows, x="label", parts=LESSON_PARTS)


def _lessons_by_location(view) -> list[dict]:
    rows = sel.summary(
        view.caller, view.filters, view.subject, measures=[Measure.LESSONS], group_by=("location",)
    )
    ids = [r["location"] for r in rows if r["location"] is not None]
    names = dict(Location.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    out = []
    for r in rows:
        rate = sel.on_time_rate(top=r["top"], bottom=r["bottom"]).value
        out.append(
            {
                "location_id": r["location"],
                "location": names.get(r["location"], "No location"),
                "completed": r["n"],
                "on_time": r["top"],
                "late": r["bottom"],
                "on_time_rate": None if rate is None else float(rate),
            }
        )
    return sorted(out, key=lambda r: r["location"])


# --- panel sets ---------------------------------------------------------------------------------

KPIS = PanelSpec(
    key="kpis",
    title="Key figures",
    rows=lambda v: sel.kpi_tiles(v.caller, v.filters, v.subject),
    columns=[("measure", "measure"), ("label", "label"), ("value", "value"), ("n", "n")],
    body="alignment/panels/_kpis.html",
    measures=sel.KPI_MEASURES,
)
TREND = PanelSpec(
    key="nps",
    title="NPS, CSAT, CES and FCR",
    rows=lambda v: sel.metric_trend(v.caller, v.filters, v.subject),
    columns=TREND_COLUMNS,
    chart=_trend_chart,
    measures=sel.ANSWER_METRICS,
    empty="No survey answers for these filters.",
)
AUDIT = PanelSpec(
    key="audit",
    title="Audit and monitoring scores",
    rows=lambda v: sel.score_trend(v.caller, v.filters, v.subject),
    columns=[("period", "period_start"), ("metric", "measure"), ("value", "mean_score"), ("n", "n")],
    chart=_score_chart,
    measures=sel.SCORE_MEASURES,
    empty="No published audits or evaluations for these filters.",
)
RANKING = PanelSpec(
    key="ranking",
    title="Ranking of locations with confidence",
    rows=_ranking_rows,
    columns=RANKING_COLUMNS,
    chart=lambda rows: interval_figure(
        rows, label="label", title=ranking.RANK_METRICS[rows[0]["metric"]].label if rows else ""
    ),
    body="alignment/panels/_ranking.html",
    note=(
        "Dots are the figure, bars its 95 % interval. Locations below the minimum sample are shown "
        "but not ranked; overlapping intervals cannot be told apart."
    ),
    empty="No locations in your scope.",
)


def _category_legend(row: dict) -> str:
    """The legend of a category, e.g. "Critical · weight 2 · raises case priority" (the
    organization's setting, not a constant)."""
    if row["weight"] is None:
        return row["category_label"]
    label = f"{row['category_label']} · weight {row['weight']:g}"
    return f"{label} · raises case priority" if row["raises_priority"] else label


CATEGORIES = PanelSpec(
    key="categories",
    title="Interaction categories in use",
    rows=lambda v: sel.interaction_categories(v.caller, v.filters, v.subject),
    columns=[
        ("touchpoint_id", "touchpoint_id"),
        ("touchpoint", "touchpoint"),
        ("category", "category"),
        ("n", "interactions"),
        ("weight", "weight"),
        ("raises_priority", "raises_case_priority"),
    ],
    chart=lambda rows: charts.stacked_bar_figure(
        rows,
        x="touchpoint",
        stack="category",
        y="n",
        colours=charts.CATEGORY_COLOURS,
        labels={r["category"]: _category_legend(r) for r in rows},
    ),
    measures=("interactions",),
    empty="No interactions recorded for these filters.",
    note=(
        "Stabilizing / Critical / Planned interactions per touchpoint, each category with the "
        "organization's weight in the overall scores (alignment settings); the heaviest raises "
        "the priority of the cases it opens."
    ),
)
SCORES = PanelSpec(
    key="scores",
    title="Alignment scores",
    rows=_scores_rows,
    columns=SCORE_COLUMNS,
    body="alignment/panels/_scores.html",
    empty="No alignment scores computed here yet.",
)


def _children_spec(title: str, empty: str) -> PanelSpec:
    return PanelSpec(
        key="children",
        title=title,
        rows=_children_rows,
        columns=CHILD_COLUMNS,
        chart=_children_chart,
        body="alignment/panels/_children.html",
        empty=empty,
        note="Figures over the same filters; click a name to drill down.",
    )


TRAINING = PanelSpec(
    key="training",
    title="Training status",
    rows=lambda v: sel.training_status(v.caller, v.filters, v.subject),
    columns=[
        ("employee_id", "employee_id"),
        ("employee", "employee"),
        ("completed", "lessons_completed"),
        ("on_time", "on_time"),
        ("late", "late"),
        ("on_time_rate", "on_time_pct"),
    ],
    chart=lambda rows: charts.bar_figure(rows, x="employee", y="completed", horizontal=True),
    body="alignment/panels/_table.html",
    measures=("lessons",),
    empty="No lessons completed in this period.",
)
POINTS = PanelSpec(
    key="points",
    title="Points awarded",
    rows=lambda v: sel.points_awarded(v.caller, v.filters, v.subject),
    columns=[
        ("employee_id", "employee_id"),
        ("employee", "employee"),
        ("awards", "awards"),
        ("points", "points"),
    ],
    chart=lambda rows: charts.bar_figure(rows, x="employee", y="points", colour="#ef6c00", horizontal=True),
    measures=("points",),
    empty="No points awarded in this period.",
)

LESSONS = PanelSpec(
    key="lessons",
    title="Lessons completed",
    rows=_lesson_periods,
    columns=[
        ("period", "period_start"),
        ("completed", "completed"),
        ("on_time", "on_time"),
        ("late", "late"),
        ("undated", "no_due_date"),
    ],
    chart=lambda rows: _stacked(rows, x="period", parts=LESSON_PARTS),
    measures=("lessons",),
    empty="No lessons completed in this period.",
)

PERSON_PANELS = (
    PanelSpec(
        key="kpis",
        title="Key figures",
        rows=_person_kpis,
        columns=[("measure", "measure"), ("label", "label"), ("value", "value"), ("n", "n")],
        body="alignment/panels/_kpis.html",
        measures=PERSON_KPIS,
    ),
    PanelSpec(
        key="monitoring",
        title="Monitoring and audit scores",
        rows=lambda v: sel.score_trend(v.caller, v.filters, v.subject),
        columns=[("period", "period_start"), ("metric", "measure"), ("value", "mean_score"), ("n", "n")],
        chart=_score_chart,
        measures=sel.SCORE_MEASURES,
        empty="No published evaluations or audits for these filters.",
    ),
    PanelSpec(
        key="standards",
        title="Scores by standard",
        rows=_standard_scores,
        columns=[
            ("standard_id", "standard_id"),
            ("standard_code", "standard_code"),
            ("standard", "standard"),
            ("source", "source"),
            ("value", "points"),
            ("n", "n"),
        ],
        chart=_standard_chart,
        measures=tuple(sel.STANDARD_SOURCES),
        note="0-100 points on each standard from monitoring, audits and customer feedback.",
        empty="No scores on standards for these filters.",
    ),
    PanelSpec(
        key="fcr_ces",
        title="FCR and CES",
        rows=lambda v: sel.metric_trend(v.caller, v.filters, v.subject, metrics=(Measure.FCR, Measure.CES)),
        columns=TREND_COLUMNS,
        chart=_trend_chart,
        measures=(Measure.FCR, Measure.CES),
        empty="No FCR or CES answers for these filters.",
    ),
    LESSONS,
    PanelSpec(
        key="lessons_by_standard",
        title="Lessons by standard",
        rows=_lessons_by_standard,
        columns=LESSON_STD_COLUMNS,
        body="alignment/panels/_table.html",
        measures=("lesson_std",),
        empty="No lessons on a standard completed in this period.",
    ),
    PanelSpec(
        key="points",
        title="Points awarded",
        rows=_points_periods,
        columns=[("period", "period_start"), ("awards", "awards"), ("points", "points")],
        chart=lambda rows: charts.bar_figure(rows, x="period", y="points", colour="#ef6c00"),
        measures=("points",),
        empty="No points awarded in this period.",
    ),
    SCORES,
)

TRAINER_PANELS = (
    PanelSpec(
        key="by_standard",
        title="Training status by standard",
        rows=_lessons_by_standard,
        columns=LESSON_STD_COLUMNS,
        chart=_lessons_by_standard_chart,
        body="alignment/panels/_table.html",
        measures=("lesson_std",),
        note="Lesson completions on each standard the lesson is tagged with: on time, late, no due date.",
        empty="No lessons on a standard completed in this period.",
    ),
    replace(LESSONS, title="Lessons completed over time"),
    PanelSpec(
        key="by_location",
        title="Training by location",
        rows=_lessons_by_location,
        columns=[
            ("location_id", "location_id"),
            ("location", "location"),
            ("completed", "completed"),
            ("on_time", "on_time"),
            ("late", "late"),
            ("on_time_rate", "on_time_pct"),
        ],
        chart=lambda rows: charts.bar_figure(
            rows, x="location", y="completed", colour="#2e7d32", horizontal=True
        ),
        body="alignment/panels/_table.html",
        measures=("lessons",),
        empty="No lessons completed in this period.",
    ),
)


# --- pages --------------------------------------------------------------------------------------


def manager_links(role: str) -> list[dict]:
    """The complaint review (open and recent cases of the same locations) and the trainer
    dashboard, for those who may open them."""
    out = []
    if role_can(role, "cases.view"):
        out.append(
            {
                "label": "Complaint review",
                "url": optional_reverse("feedback_complaints"),
                "testid": "complaint-review",
            }
        )
    if role_can(role, "learning_analytics.view"):
        out.append(
            {
                "label": "Training dashboard",
                "url": reverse("alignment_trainer"),
                "testid": "trainer-dashboard",
            }
        )
    return [link for link in out if link["url"]]


class OverviewPage(DashboardPage):
    """A dashboard of one drill-down node (``level`` / ``node_id``); see the module docstring."""

    template_name = TEMPLATE
    body_template = BODY
    level = "organization"
    heading = ""
    ranking_region = None

    def get(self, request, *args, **kwargs):
        self.metric = (request.GET.get("metric") or "").strip() or ranking.DEFAULT_METRIC
        if self.metric not in ranking.RANK_METRICS:
            return bad_filter_response(FilterError("metric", f"One of {', '.join(ranking.RANK_METRICS)}."))
        return super().get(request, *args, **kwargs)

    def metric_override(self) -> dict:
        return {"metric": self.metric if self.metric != ranking.DEFAULT_METRIC else None}

    def panel_url(self, key: str, **overrides) -> str:
        return super().panel_url(key, **{**self.metric_override(), **overrides})

    def node(self, pk):
        """Resolve the node (404 outside the viewer's scope) and remember it."""
        self.node_obj = drilldown.resolve(self.caller, self.organization, self.level, pk)
        self.node_id = 0 if self.level == "organization" else self.node_obj.pk
        return self.node_obj

    @property
    def subject_where(self) -> dict:
        """The subject as plain rollup filters (for scope_selectors)."""
        s = self.subject
        where = {}
        if s.region is not None:
            where["location__region_id"] = s.region
        if s.location is not None:
            where["location_id"] = s.location
        if s.employee is not None:
            where["employee_id"] = s.employee
        if s.employees is not None:
            where["employee_id__in"] = list(s.employees)
        return where

    def crumbs(self) -> list[dict]:
        out = []
        for crumb in drilldown.breadcrumbs(self.caller, self.organization, self.level, self.node_obj):
            out.append(
                {
                    "name": crumb.name,
                    "url": level_url(crumb.level, crumb.id, self.filters),
                    "level": crumb.level,
                }
            )
        return out

    def links(self) -> list[dict]:
        return []

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        # The filter form's action: htmx adds the form's fields to it, so the chosen ranking
        # metric survives a filter change.
        metric = self.metric_override()["metric"]
        page_url = f"{self.request.path}?metric={metric}" if metric else self.request.path
        ctx.update(
            title=self.heading,
            heading=self.heading,
            level=self.level,
            page_url=page_url,
            crumbs=self.crumbs(),
            links=self.links(),
            metric=self.metric,
            metric_links=[
                (
                    key,
                    m.label,
                    self.filters.url(
                        self.request.path, metric=None if key == ranking.DEFAULT_METRIC else key
                    ),
                )
                for key, m in ranking.RANK_METRICS.items()
            ]
            if any(s.key == "ranking" for s in self.panel_specs)
            else [],
        )
        return ctx


class ExecutivePage(OverviewPage):
    model = Location  # the panel route's ids are panel names; the sweep needs a model
    level = "organization"
    panel_url_name = "alignment_executive_panel"
    panel_specs = (
        KPIS,
        RANKING,
        _children_spec("Regions", "No regions in your scope."),
        TREND,
        AUDIT,
        CATEGORIES,
        SCORES,
    )

    def get(self, request, *args, **kwargs):
        if not drilldown.may_open(sel.Caller.of_membership(request.membership), "organization"):
            # Narrower scopes start lower down: the landing page knows where.
            return redirect("alignment_home")
        return super().get(request, *args, **kwargs)

    def load_subject(self, **kwargs):
        self.node(0)
        self.heading = "Executive dashboard"
        return sel.Subject()

    def export_prefix(self) -> str:
        return "executive"

    def links(self) -> list[dict]:
        return manager_links(self.request.membership.role)


class RegionPage(OverviewPage):
    model = Region
    level = "region"
    panel_url_name = "alignment_region_panel"
    panel_specs = (
        KPIS,
        RANKING,
        _children_spec("Locations", "No locations in your scope."),
        TREND,
        AUDIT,
        CATEGORIES,
        SCORES,
    )

    def load_subject(self, region_id=None, **kwargs):
        region = self.node(region_id)
        self.ranking_region = region.pk
        self.heading = f"{region.name} · Region dashboard"
        return sel.Subject(region=region.pk)

    def export_prefix(self) -> str:
        return f"region-{self.node_obj.code}"

    def links(self) -> list[dict]:
        return manager_links(self.request.membership.role)


class LocationPeoplePage(OverviewPage):
    """A location's teams and the staff with no team (the drill-down step below the store)."""

    model = Location
    level = "location"
    panel_url_name = "alignment_location_people_panel"
    panel_specs = (_children_spec("Teams and staff", "No teams or staff here."), TRAINING, POINTS)

    def load_subject(self, location_id=None, **kwargs):
        location = self.node(location_id)
        self.heading = f"{location.name} · Teams and staff"
        return sel.Subject(location=location.pk)

    def export_prefix(self) -> str:
        return f"store-{self.node_obj.code}-people"

    def crumbs(self) -> list[dict]:
        out = super().crumbs()
        store = level_url("location", self.node_id, self.filters)
        return [*out, {"name": self.node_obj.name, "url": store, "level": "location"}] if store else out


class TeamPage(OverviewPage):
    model = Team
    level = "team"
    panel_url_name = "alignment_team_panel"
    panel_specs = (
        KPIS,
        _children_spec("Members", "No members in your scope."),
        TREND,
        AUDIT,
        TRAINING,
        POINTS,
        SCORES,
    )

    def load_subject(self, team_id=None, **kwargs):
        team = self.node(team_id)
        self.heading = f"{team.name} · Team dashboard"
        members = self.caller.scoped(Employee.objects.filter(current_team_id=team.pk)).values_list(
            "pk", flat=True
        )
        return sel.Subject(employees=tuple(sorted(members)))

    def export_prefix(self) -> str:
        return f"team-{self.node_id}"


class PersonPage(OverviewPage):
    """One employee: the agent dashboard (monitoring scores, FCR, CES, lessons, points)."""

    model = Employee
    level = "employee"
    panel_url_name = "alignment_employee_panel"
    panel_specs = PERSON_PANELS
    title_suffix = "Employee dashboard"

    def load_subject(self, employee_id=None, **kwargs):
        employee = self.node(employee_id)
        agent = drilldown._is_agent(employee)
        self.heading = f"{employee.name} · {'Agent dashboard' if agent else self.title_suffix}"
        return sel.Subject(employee=employee.pk)

    def export_prefix(self) -> str:
        return f"employee-{self.node_obj.external_id}"


class AgentPage(PersonPage):
    panel_url_name = "alignment_agent_panel"


class MyDashboardPage(PersonPage):
    """The signed-in employee's own figures, nothing else (404 without an employee record)."""

    panel_url_name = "alignment_me_panel"

    def load_subject(self, **kwargs):
        employee_id = getattr(self.request.membership, "employee_id", None)
        if employee_id is None:
            raise Http404("Your account is not linked to an employee.")
        self.node_obj = (
            Employee.objects.select_related("current_team", "current_location__region")
            .filter(pk=employee_id)
            .first()
        )
        if self.node_obj is None:
            raise Http404("Your account is not linked to an employee.")
        self.node_id = self.node_obj.pk
        self.heading = "My scores"
        return sel.Subject(employee=self.node_id)

    def crumbs(self) -> list[dict]:
        return []

    def export_prefix(self) -> str:
        return "my-scores"


class TrainerPage(OverviewPage):
    """Training status by standard, over time and by location, and the way to the learning analytics."""

    model = Location
    panel_url_name = "alignment_trainer_panel"
    panel_specs = TRAINER_PANELS

    def load_subject(self, **kwargs):
        self.node_obj, self.node_id = self.organization, 0
        self.heading = "Trainer dashboard"
        return sel.Subject()

    def crumbs(self) -> list[dict]:
        return []

    def export_prefix(self) -> str:
        return "trainer"

    def links(self) -> list[dict]:
        if not role_can(self.request.membership.role, "learning_analytics.view"):
            return []
        out = [
            {
                "label": "Training analytics",
                "url": optional_reverse("learning_analytics"),
                "testid": "learning-analytics",
            },
            {
                "label": "Lesson effectiveness",
                "url": optional_reverse("learning_effectiveness"),
                "testid": "learning-effectiveness",
            },
        ]
        return [link for link in out if link["url"]]


def _pair(route: str, view, name: str) -> list:
    return [
        path(route, view.as_view(), name=name),
        path(f"{route}panels/<slug:panel>/", view.as_view(), name=f"{name}_panel"),
    ]


urlpatterns = [
    *_pair("executive/", ExecutivePage, "alignment_executive"),
    *_pair("regions/<int:region_id>/", RegionPage, "alignment_region"),
    *_pair("locations/<int:location_id>/people/", LocationPeoplePage, "alignment_location_people"),
    *_pair("teams/<int:team_id>/", TeamPage, "alignment_team"),
    *_pair("employees/<int:employee_id>/", PersonPage, "alignment_employee"),
    *_pair("agents/<int:employee_id>/", AgentPage, "alignment_agent"),
    *_pair("me/", MyDashboardPage, "alignment_me"),
    *_pair("trainer/", TrainerPage, "alignment_trainer"),
]
