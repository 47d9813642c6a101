"""Dashboard building blocks shared by every alignment dashboard: chart panels, figures, CSV.

A page shows a list of :class:`Panel` objects, each rendered by ``templates/alignment/_chart.html``
(``{% include "alignment/_chart.html" with panel=panel %}``): a title, a plotly chart whose
modebar exports PNG (``static/alignment/charts.js`` draws it; no inline script), an optional
table below it (``panel.body`` names a template that gets ``panel`` and ``rows``), and a
"Download CSV" link to the same data (``panel.csv_url``: the panel URL with ``format=csv`` and
the current filters). With ``poll`` set the panel re-fetches itself by htmx every ``poll``
seconds and swaps only itself.

The figure builders take the plain rows the selectors return; ``csv_response`` writes those
same rows, so the chart and its CSV can never disagree. Text cells are escaped against
spreadsheet formula injection (``feedback.exports.escape_cell``: a leading = + - @ tab or CR
gets a quote); numbers are written as numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from decimal import Decimal

import plotly.graph_objects as go
import plotly.io as pio
from django.http import HttpResponse
from django.utils.text import slugify

from feedback.exports import escape_cell

# (key in each row, CSV header)
Columns = list[tuple[str, str]]

METRIC_COLOURS = {
    "nps": "#1565c0",
    "csat": "#2e7d32",
    "ces": "#6a1b9a",
    "fcr": "#ef6c00",
    "audit": "#00838f",
    "monitoring": "#ad1457",
}
QUADRANT_COLOURS = {
    "strength": "#2e7d32",
    "hidden_strength": "#1565c0",
    "blind_spot": "#ef6c00",
    "weakness": "#c62828",
}
CATEGORY_COLOURS = {"stabilizing": "#607d8b", "critical": "#c62828", "planned": "#1565c0", "": "#9e9e9e"}


@dataclass
class Panel:
    """One chart panel of a dashboard (what ``alignment/_chart.html`` renders)."""

    key: str  # unique on the page; DOM ids and the PNG file name derive from it
    title: str
    url: str = ""  # the panel's own fragment URL, filters included (htmx refresh and polling)
    csv_url: str = ""  # "" hides the CSV link
    figure: dict | None = None  # plotly figure as JSON-able dict; None shows ``empty``
    empty: str = "No data for these filters."
    poll: int | None = None  # seconds between self-refreshes, None for none
    note: str = ""  # a line under the title (e.g. filters this panel cannot apply)
    body: str = ""  # a template rendered under the chart with ``panel`` and ``rows``
    rows: list = field(default_factory=list)
    filename: str = ""  # PNG/CSV base name; defaults to the key
    columns: Columns = field(default_factory=list)  # (row key, header) of the CSV and the table

    @property
    def header(self) -> list[str]:
        return [label for _, label in self.columns]

    @property
    def table(self) -> list[list]:
        """The rows as lists in column order, for the generic table body (``_table.html``)."""
        return [[row.get(key) for key, _ in self.columns] for row in self.rows]

    @property
    def dom_id(self) -> str:
        return f"panel-{self.key}"

    @property
    def chart_id(self) -> str:
        return f"chart-{self.key}"

    @property
    def export_name(self) -> str:
        return slugify(self.filename or self.key) or "chart"


def figure(fig: go.Figure, *, height: int = 320) -> dict:
    """A plotly figure as the dict the template ships through ``json_script``."""
    fig.update_layout(
        margin={"l": 50, "r": 10, "t": 10, "b": 40},
        height=height,
        legend={"orientation": "h"},
        paper_bgcolor="rgba(0,0,0,0)",
    )
    return json.loads(pio.to_json(fig, validate=False))


def _iso(value):
    return value.isoformat() if isinstance(value, dt.date) else value


# --- figure builders ----------------------------------------------------------------------------


def trend_figure(rows: list[dict], *, series_key: str = "metric", labels: dict | None = None, secondary=()):
    """A line per series over ``period`` (``[{period, <series_key>, value, n}]``); series named in
    ``secondary`` (e.g. CES on its 1-7 scale) go on a right-hand axis."""
    rows = [r for r in rows if r.get("value") is not None]
    if not rows:
        return None
    labels = labels or {}
    fig = go.Figure()
    for series in dict.fromkeys(r[series_key] for r in rows):
        points = [r for r in rows if r[series_key] == series]
        fig.add_scatter(
            name=labels.get(series, str(series).upper()),
            x=[_iso(r["period"]) for r in points],
            y=[r["value"] for r in points],
            customdata=[r["n"] for r in points],
            hovertemplate="%{x}: %{y} (n = %{customdata})<extra>%{fullData.name}</extra>",
            mode="lines+markers",
            line={"color": METRIC_COLOURS.get(str(series))},
            yaxis="y2" if series in secondary else "y",
        )
    layout = {"xaxis": {"type": "date"}}
    if any(r[series_key] in secondary for r in rows):
        layout["yaxis2"] = {"overlaying": "y", "side": "right", "showgrid": False}
    fig.update_layout(**layout)
    return figure(fig)


def heatmap_figure(rows: list[dict], cells: dict) -> dict | None:
    """Standards (y) x weeks (x), colour = 0-100 points (``selectors.heatmap_cells``)."""
    if not cells:
        return None
    standards = {}
    for r in rows:
        standards.setdefault(r["standard_id"], f"{r['standard_code']} {r['standard']}".strip())
    weeks = sorted({week for _, week in cells})
    z = [[cells.get((std, week)) for week in weeks] for std in standards]
    fig = go.Figure(
        go.Heatmap(
            x=[w.isoformat() for w in weeks],
            y=list(standards.values()),
            z=z,
            zmin=0,
            zmax=100,
            colorscale="RdYlGn",
            hovertemplate="%{y}<br>week of %{x}: %{z}<extra></extra>",
        )
    )
    fig.update_layout(yaxis={"autorange": "reversed", "automargin": True}, xaxis={"type": "category"})
    return figure(fig, height=max(240, 40 + 28 * len(standards)))


def matrix_figure(
    rows: list[dict], *, impression_threshold, execution_threshold, labels: dict
) -> dict | None:
    """Impression (y) x execution (x) per standard, one colour per quadrant, threshold lines."""
    placed = [r for r in rows if r["quadrant"]]
    if not placed:
        return None
    fig = go.Figure()
    for quadrant, label in labels.items():
        points = [r for r in placed if r["quadrant"] == quadrant]
        if not points:
            continue
        fig.add_scatter(
            name=label,
            mode="markers+text",
            x=[r["execution"] for r in points],
            y=[r["impression"] for r in points],
            text=[r["standard_code"] or r["standard"] for r in points],
            textposition="top center",
            marker={
                "size": 12,
                "color": QUADRANT_COLOURS[quadrant],
                "opacity": [1.0 if r["reliable"] else 0.4 for r in points],
            },
            customdata=[[r["standard"], r["impression_n"], r["execution_n"]] for r in points],
            hovertemplate=(
                "%{customdata[0]}<br>execution %{x} (n = %{customdata[2]})"
                "<br>impression %{y} (n = %{customdata[1]})<extra>%{fullData.name}</extra>"
            ),
        )
    line = {"dash": "dot", "color": "#757575"}
    fig.add_shape(
        type="line", x0=float(execution_threshold), x1=float(execution_threshold), y0=0, y1=100, line=line
    )
    fig.add_shape(
        type="line", x0=0, x1=100, y0=float(impression_threshold), y1=float(impression_threshold), line=line
    )
    fig.update_layout(
        xaxis={"title": "Execution (audits, monitoring)", "range": [0, 105]},
        yaxis={"title": "Customer impression", "range": [0, 105]},
    )
    return figure(fig, height=380)


def bar_figure(rows: list[dict], *, x: str, y: str, colour: str = "#1565c0", horizontal: bool = False):
    rows = [r for r in rows if r.get(y)]
    if not rows:
        return None
    fig = go.Figure()
    if horizontal:
        fig.add_bar(y=[str(r[x]) for r in rows], x=[r[y] for r in rows], orientation="h", marker_color=colour)
        fig.update_layout(yaxis={"autorange": "reversed", "automargin": True})
    else:
        fig.add_bar(x=[str(r[x]) for r in rows], y=[r[y] for r in rows], marker_color=colour)
    return figure(fig, height=max(240, 40 + 26 * len(rows)) if horizontal else 320)


def stacked_bar_figure(rows: list[dict], *, x: str, stack: str, y: str, colours: dict, labels: dict):
    """One bar per ``x`` value, stacked by ``stack`` (e.g. touchpoint x interaction category)."""
    rows = [r for r in rows if r.get(y)]
    if not rows:
        return None
    xs = list(dict.fromkeys(r[x] for r in rows))
    fig = go.Figure()
    for key in dict.fromkeys(r[stack] for r in rows):
        by_x = {r[x]: r[y] for r in rows if r[stack] == key}
        fig.add_bar(
            name=labels.get(key, key or "—"),
            x=xs,
            y=[by_x.get(v, 0) for v in xs],
            marker_color=colours.get(key),
        )
    fig.update_layout(barmode="stack")
    return figure(fig)


def grouped_bar_figure(rows: list[dict], *, x: str, series: dict[str, str]) -> dict | None:
    """Bars per ``x`` for each column in ``series`` ({row key: legend label}); None values skipped."""
    if not any(r.get(key) is not None for r in rows for key in series):
        return None
    fig = go.Figure()
    for key, label in series.items():
        fig.add_bar(name=label, x=[str(r[x]) for r in rows], y=[r.get(key) for r in rows])
    fig.update_layout(barmode="group")
    return figure(fig)


# --- CSV ----------------------------------------------------------------------------------------


def csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    if isinstance(value, int | float):
        return value
    if isinstance(value, list | tuple | dict):
        value = json.dumps(value, default=str)
    return escape_cell(str(value))


def csv_text(columns: Columns, rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([escape_cell(label) for _, label in columns])
    for row in rows:
        writer.writerow([csv_cell(row.get(key)) for key, _ in columns])
    return out.getvalue()


def csv_response(columns: Columns, rows: list[dict], filename: str) -> HttpResponse:
    """The rows as a CSV download (header = the column labels), formula-escaped, not cached."""
    response = HttpResponse(csv_text(columns, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slugify(filename) or "data"}.csv"'
    response["Cache-Control"] = "private, no-store"
    return response
