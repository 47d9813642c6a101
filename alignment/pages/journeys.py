"""Customer journey map pages (/alignment/journeys/): the list, a journey's ordered touchpoints
with expected vs actual experience (chart and table, large gaps highlighted, interaction
category badges), and editing — the journey itself (name, segment, description), its steps (add,
change the expectation or note, remove) and their order (up/down buttons; htmx swaps just the
journey body). Reads go through alignment.journey_selectors with the rollup scoped to the viewer;
writes through alignment.journeys. Viewing needs ``business_data.view``, editing
``business_data.change`` (creating ``.add``, deleting ``.delete``).
"""

from __future__ import annotations

import plotly.graph_objects as go
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views import View
from django.views.generic import ListView

from alignment import journey_selectors as sel
from alignment import journeys as svc
from alignment.charts import csv_response, figure
from alignment.filters import PERIODS, DashboardFilters, FilterError, bad_filter_response
from alignment.models import JourneyMap, JourneyStep, Rollup
from cem.models import CustomerExpectation, Location, Segment, Touchpoint
from cem.pages import TenantPageMixin
from cem.params import id_of
from cem.permissions import role_can
from cem.views_manage import add_service_errors

CSV_COLUMNS = [
    ("position", "Position"),
    ("touchpoint", "Touchpoint"),
    ("category_label", "Category"),
    ("expectation", "Expectation"),
    ("importance", "Importance (1-5)"),
    ("expected", "Expected (0-100)"),
    ("actual", "Actual (0-100)"),
    ("actual_low", "Actual low"),
    ("actual_high", "Actual high"),
    ("n", "n"),
    ("gap", "Gap"),
    ("status_label", "Status"),
    ("source_label", "Actual from"),
]


# --- forms ---------------------------------------------------------------------------------------


class JourneyForm(forms.Form):
    name = forms.CharField(max_length=160)
    segment = forms.ModelChoiceField(queryset=None, required=False, empty_label="All customers")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Querysets are built per request: the tenant's managers need the request's tenant.
        self.fields["segment"].queryset = Segment.objects.order_by("name")


class StepForm(forms.Form):
    touchpoint = forms.ModelChoiceField(queryset=None)
    expectation = forms.ModelChoiceField(queryset=None, required=False, empty_label="— none —")
    note = forms.CharField(max_length=300, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["touchpoint"].queryset = Touchpoint.objects.select_related("channel").order_by("name")
        self.fields["expectation"].queryset = CustomerExpectation.objects.order_by("name")


class StepEditForm(forms.Form):
    """A step's expectation and note. One form per step on the page: the expectation choices are
    read once and handed to every form (a ModelChoiceField would query once per step)."""

    expectation = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    note = forms.CharField(max_length=300, required=False)

    def __init__(self, *args, choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expectation"].choices = [("", "— none —"), *choices]

    def clean_expectation(self):
        pk = self.cleaned_data["expectation"]
        if pk is None:
            return None
        expectation = CustomerExpectation.objects.filter(pk=pk).first()
        if expectation is None:
            raise forms.ValidationError("Unknown expectation.")
        return expectation


def expectation_choices() -> list[tuple[int, str]]:
    return list(CustomerExpectation.objects.order_by("name").values_list("pk", "name"))


# --- charts --------------------------------------------------------------------------------------


def experience_chart(rows: list[dict]) -> dict | None:
    """Expected vs actual per step in journey order; actual bars of large gaps in red."""
    if not any(r["expected"] is not None or r["actual"] is not None for r in rows):
        return None
    labels = [f"{r['position']}. {r['touchpoint']}" for r in rows]
    fig = go.Figure()
    fig.add_bar(
        name="Expected",
        x=labels,
        y=[r["expected"] for r in rows],
        marker_color="#90a4ae",
        hovertemplate="%{x}<br>expected %{y:.0f}<extra></extra>",
    )
    fig.add_bar(
        name="Actual",
        x=labels,
        y=[r["actual"] for r in rows],
        marker_color=["#c62828" if r["highlight"] else "#1565c0" for r in rows],
        error_y={
            "type": "data",
            "symmetric": False,
            "array": [(r["actual_high"] - r["actual"]) if r["actual_high"] is not None else 0 for r in rows],
            "arrayminus": [
                (r["actual"] - r["actual_low"]) if r["actual_low"] is not None else 0 for r in rows
            ],
        },
        customdata=[[r["n"], r["gap"] if r["gap"] is not None else "—"] for r in rows],
        hovertemplate="%{x}<br>actual %{y:.1f} (n = %{customdata[0]})<br>gap %{customdata[1]}<extra></extra>",
    )
    fig.update_layout(
        barmode="group",
        yaxis={"title": "0-100", "range": [0, 105]},
        xaxis={"type": "category"},
    )
    return figure(fig, height=360)


# --- pages ---------------------------------------------------------------------------------------


class JourneyPageMixin(TenantPageMixin):
    model = JourneyMap

    def can(self, verb: str) -> bool:
        return role_can(self.request.membership.role, f"business_data.{verb}")

    def journey(self) -> JourneyMap:
        return get_object_or_404(
            self.scoped(JourneyMap.objects.select_related("segment")), pk=self.kwargs["pk"]
        )


class JourneyListPage(JourneyPageMixin, ListView):
    template_name = "alignment/journeys/list.html"
    required_action = "business_data.view"
    context_object_name = "journeys"

    def page_queryset(self):
        return sel.journeys_list()

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(title="Customer journeys", can_add=self.can("add"))
        return ctx


class JourneyFormPage(JourneyPageMixin, View):
    """New journey (no pk) or edit one; saved through alignment.journeys."""

    template_name = "alignment/journeys/form.html"

    @property
    def required_action(self):
        return "business_data.change" if "pk" in self.kwargs else "business_data.add"

    def _render(self, form, journey):
        return TemplateResponse(
            self.request,
            self.template_name,
            {"form": form, "journey": journey, "can_delete": journey is not None and self.can("delete")},
        )

    def get(self, request, **kwargs):
        journey = self.journey() if "pk" in kwargs else None
        initial = (
            {"name": journey.name, "segment": journey.segment, "description": journey.description}
            if journey
            else {}
        )
        return self._render(JourneyForm(initial=initial), journey)

    def post(self, request, **kwargs):
        journey = self.journey() if "pk" in kwargs else None
        form = JourneyForm(request.POST)
        if form.is_valid():
            data = dict(form.cleaned_data)
            try:
                if journey is None:
                    journey = svc.journey_create(organization=self.organization, actor=self.actor, data=data)
                else:
                    svc.journey_update(
                        organization=self.organization, actor=self.actor, journey=journey, data=data
                    )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, "Journey saved.")
                return redirect("alignment_journey", pk=journey.pk)
        return self._render(form, journey)


class JourneyDeletePage(JourneyPageMixin, View):
    required_action = "business_data.delete"

    def post(self, request, **kwargs):
        journey = self.journey()
        svc.journey_delete(organization=self.organization, actor=self.actor, journey=journey)
        messages.success(request, f"Journey “{journey.name}” deleted.")
        return redirect("alignment_journeys")


class JourneyDetailPage(JourneyPageMixin, View):
    """The journey's steps with expected vs actual; ``?format=csv`` downloads the table."""

    required_action = "business_data.view"
    template_name = "alignment/journeys/detail.html"
    body_template = "alignment/journeys/_body.html"

    def state(self, params):
        """(filters, location) from the query; FilterError naming a bad parameter; 404 for a
        location outside the viewer's scope."""
        filters = DashboardFilters.from_params(params, self.organization)
        raw = (params.get("location") or "").strip()
        location = None
        if raw:
            location_id = id_of(raw)
            if location_id is None:
                raise FilterError("location", "Expected a location id (digits).")
            location = self.scoped(Location.objects.all()).filter(pk=location_id).first()
            if location is None:
                raise Http404("No such location in your scope.")
        return filters, location

    def context(self, journey, filters, location, *, step_form=None, step_errors=None):
        rows = sel.journey_experience(
            journey,
            rollups=self.scoped(Rollup.objects.all()),
            start=filters.start,
            end=filters.end,
            location_id=location.pk if location else None,
        )
        can_change = self.can("change")
        query = filters.params()
        if location:
            query["location"] = str(location.pk)
        query_string = "&".join(f"{k}={v}" for k, v in query.items())
        edit_forms = {}
        if can_change:
            choices = expectation_choices()
            for row in rows:
                edit_forms[row["step_id"]] = StepEditForm(
                    initial={"expectation": row["expectation_id"], "note": row["note"]},
                    prefix=f"s{row['step_id']}",
                    choices=choices,
                )
        for row in rows:
            row["edit_form"] = edit_forms.get(row["step_id"])
        return {
            "title": journey.name,
            "journey": journey,
            "rows": rows,
            "large_gaps": [r for r in rows if r["highlight"]],
            "chart": experience_chart(rows),
            "filters": filters,
            "periods": {k: v for k, v in PERIODS.items() if k != "custom" or filters.period == "custom"},
            "location": location,
            "locations": self.scoped(Location.objects.all()).order_by("name"),
            "query_string": query_string,
            "can_change": can_change,
            "can_delete": self.can("delete"),
            "step_form": step_form or (StepForm() if can_change else None),
            "step_errors": step_errors or [],
            "gap_highlight": sel.GAP_HIGHLIGHT,
            "min_n": sel.MIN_N,
        }

    def get(self, request, **kwargs):
        journey = self.journey()
        try:
            filters, location = self.state(request.GET)
        except FilterError as exc:
            return bad_filter_response(exc)
        ctx = self.context(journey, filters, location)
        if request.GET.get("format") == "csv":
            return csv_response(CSV_COLUMNS, ctx["rows"], f"journey-{journey.name}")
        template = self.body_template if request.headers.get("HX-Request") else self.template_name
        return TemplateResponse(request, template, ctx)


class JourneyStepsPage(JourneyDetailPage):
    """POST ``op`` = ``add`` | ``up-<step>`` | ``down-<step>`` | ``remove-<step>`` | ``save-<step>``.

    htmx gets the journey body back (with any error marked in it: htmx swaps only 2xx answers);
    a plain POST is redirected to the journey, or answered 400 with the errors named."""

    required_action = "business_data.change"
    http_method_names = ["post"]

    def post(self, request, **kwargs):
        journey = self.journey()
        try:
            filters, location = self.state(request.GET)
        except FilterError as exc:
            return bad_filter_response(exc)
        op = request.POST.get("op", "")
        action, _, raw_id = op.partition("-")
        step_form, errors = None, []
        if action == "add":
            if not self.can("change"):
                raise PermissionDenied
            step_form = StepForm(request.POST)
            if step_form.is_valid():
                try:
                    svc.step_add(
                        organization=self.organization,
                        actor=self.actor,
                        journey=journey,
                        touchpoint=step_form.cleaned_data["touchpoint"],
                        expectation=step_form.cleaned_data["expectation"],
                        note=step_form.cleaned_data["note"],
                    )
                except ValidationError as exc:
                    add_service_errors(step_form, exc)
                else:
                    step_form = None
        elif action in ("up", "down", "remove", "save"):
            step_id = id_of(raw_id)
            step = JourneyStep.objects.filter(journey=journey, pk=step_id).first() if step_id else None
            if step is None:
                return HttpResponse("Bad parameter 'op': no such step on this journey.", status=400)
            try:
                if action == "remove":
                    svc.step_remove(organization=self.organization, actor=self.actor, step=step)
                elif action == "save":
                    form = StepEditForm(request.POST, prefix=f"s{step.pk}", choices=expectation_choices())
                    if not form.is_valid():
                        raise ValidationError({k: list(v) for k, v in form.errors.items()})
                    svc.step_update(
                        organization=self.organization, actor=self.actor, step=step, data=form.cleaned_data
                    )
                else:
                    svc.step_move(
                        organization=self.organization, actor=self.actor, step=step, direction=action
                    )
            except ValidationError as exc:
                errors = [f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()]
        else:
            return HttpResponse(
                "Bad parameter 'op': add, up-<id>, down-<id>, remove-<id> or save-<id>.", status=400
            )
        if request.headers.get("HX-Request"):
            # htmx swaps only 2xx answers: the body comes back with the errors marked in it.
            journey.refresh_from_db()
            ctx = self.context(journey, filters, location, step_form=step_form, step_errors=errors)
            return TemplateResponse(request, self.body_template, ctx)
        if errors or step_form is not None:
            ctx = self.context(journey, filters, location, step_form=step_form, step_errors=errors)
            return TemplateResponse(request, self.template_name, ctx, status=400)
        url = reverse("alignment_journey", args=[journey.pk])
        return redirect(f"{url}?{request.GET.urlencode()}" if request.GET else url)


urlpatterns = [
    path("", JourneyListPage.as_view(), name="alignment_journeys"),
    path("new/", JourneyFormPage.as_view(), name="alignment_journey_create"),
    path("<int:pk>/", JourneyDetailPage.as_view(), name="alignment_journey"),
    path("<int:pk>/edit/", JourneyFormPage.as_view(), name="alignment_journey_edit"),
    path("<int:pk>/delete/", JourneyDeletePage.as_view(), name="alignment_journey_delete"),
    path("<int:pk>/steps/", JourneyStepsPage.as_view(), name="alignment_journey_steps"),
]
