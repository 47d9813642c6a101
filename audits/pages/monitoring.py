"""Call and chat monitoring in the browser: evaluator queue and scoring, samples, agents' evaluations,
blind calibration and evaluator alignment.

No business rules here: writes call audits.monitoring / audits.audit_services (as the API does),
reads come from audits.monitoring's selectors, and a ValidationError becomes a message or an error
next to its item. Blindness is the service's: a calibration page shows only what
``calibration_visible_audits`` returns until the session is closed.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.views.generic import DetailView, ListView, TemplateView, View
from django.views.generic.detail import SingleObjectMixin

from audits import audit_services, monitoring
from audits.models import (
    Audit,
    AuditAnswer,
    CalibrationSession,
    Dispute,
    MonitoringSample,
    Program,
    ProgramKind,
    SampleItem,
)
from audits.pages.form_render import form_sections, label, posted_answers
from audits.scoring import ItemType
from cem.models import Interaction, Membership
from cem.pages import TenantPageMixin
from cem.params import id_of
from cem.permissions import role_can

QUEUE_STATUSES = {"open": "To do", "done": "Published", "all": "All"}


def _messages_of(exc: Exception) -> list[str]:
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        return [f"{k}: {m}" if k != "__all__" else m for k, msgs in exc.message_dict.items() for m in msgs]
    if isinstance(exc, ValidationError):
        return list(exc.messages)
    return [str(exc) or "Not allowed."]


def _refusal(exc: Exception, items) -> tuple[dict[str, str], list[str]]:
    """A refused write as errors by item key (shown next to the item) and the rest (shown on top)."""
    if not (isinstance(exc, ValidationError) and hasattr(exc, "error_dict")):
        return {}, _messages_of(exc)
    keys = {i.key for i in items}
    by_key = {k: " ".join(v) for k, v in exc.message_dict.items()}
    general = [v if k == "__all__" else f"{k}: {v}" for k, v in by_key.items() if k not in keys]
    return {k: v for k, v in by_key.items() if k in keys}, general


def interaction_facts(interaction: Interaction | None) -> dict:
    """Duration, recording link and transcript of a monitored call or chat (its ``attributes``).

    A recording URL came in through the API: only http(s) links are rendered, never ``javascript:``.
    """
    attrs = (interaction.attributes if interaction else None) or {}
    duration = attrs.get("duration")
    try:
        seconds = int(float(duration)) if duration not in (None, "") else None
    except (TypeError, ValueError):
        seconds = None
    url = str(attrs.get("recording_url") or "")
    return {
        "duration": f"{seconds // 60}:{seconds % 60:02d}" if seconds is not None and seconds >= 0 else "",
        "recording_url": url if url.lower().startswith(("https://", "http://")) else "",
        "transcript": str(attrs.get("transcript") or ""),
    }


class MonitoringMixin:
    """Sub-navigation shared by the monitoring pages, shown per permission."""

    def can(self, action: str) -> bool:
        return role_can(self.request.membership.role, action)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        links = [
            ("Queue", "monitoring_queue", "monitoring.view"),
            ("Samples", "monitoring_samples", "monitoring.view"),
            ("Evaluations", "monitoring_evaluations", "audits.view"),
            ("Calibration", "monitoring_calibrations", "monitoring.view"),
            ("Alignment", "monitoring_trends", "monitoring.view"),
        ]
        ctx["monitoring_nav"] = [(lbl, name) for lbl, name, action in links if self.can(action)]
        return ctx


# --- evaluator queue and scoring ------------------------------------------------------------------


class QueuePage(MonitoringMixin, TenantPageMixin, ListView):
    template_name = "audits/monitoring/queue.html"
    required_action = "monitoring.view"
    model = SampleItem
    paginate_by = 50

    def status(self) -> str:
        status = self.request.GET.get("status", "open")
        return status if status in QUEUE_STATUSES else "open"

    def page_queryset(self):
        return monitoring.evaluator_queue(user_id=self.request.user.pk, status=self.status())

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        for item in ctx["object_list"]:
            item.facts = interaction_facts(item.interaction)
        ctx.update(
            counts=monitoring.evaluator_queue_counts(user_id=self.request.user.pk),
            status=self.status(),
            statuses=QUEUE_STATUSES,
        )
        return ctx


class SampleItemMixin(MonitoringMixin, TenantPageMixin):
    """A sampled interaction in the signed-in evaluator's queue (or nobody's yet); else a 404."""

    model = SampleItem

    def page_queryset(self):
        mine = Q(evaluator_id=self.request.user.pk) | Q(evaluator__isnull=True)
        return SampleItem.objects.filter(mine).select_related(
            "sample__program__form", "agent", "audit", "interaction__channel", "interaction__location"
        )


def _evaluation_form(item: SampleItem, *, post=None, errors=None) -> dict:
    """The monitoring form of a sampled interaction: the draft's version, else the programme's current."""
    if item.audit_id is not None:
        version = item.audit.version
        answers = {a.item_id: a for a in AuditAnswer.objects.filter(audit_id=item.audit_id)}
    else:
        version = monitoring.form_current_version(item.sample.program.form)
        answers = {}
    items = monitoring.version_items(version)
    return {"items": items, **form_sections(items, answers, errors=errors)}


class EvaluatePage(SampleItemMixin, DetailView):
    template_name = "audits/monitoring/evaluate.html"
    required_action = "monitoring.view"
    context_object_name = "sample_item"

    def get_context_data(self, errors=None, general_errors=(), **kwargs):
        ctx = super().get_context_data(**kwargs)
        item = self.object
        published = item.audit_id is not None and item.audit.status == Audit.Status.PUBLISHED
        try:
            report = _evaluation_form(item, errors=errors)
        except ValidationError as exc:
            report, general_errors = {"sections": [], "answered": 0, "total": 0}, _messages_of(exc)
        ctx.update(
            report=report,
            facts=interaction_facts(item.interaction),
            editable=not published and self.can("monitoring.change"),
            published=published,
            general_errors=list(general_errors),
        )
        return ctx


class EvaluationWriteView(SampleItemMixin, SingleObjectMixin, View):
    required_action = "monitoring.change"
    http_method_names = ["post"]

    def _save(self, item: SampleItem):
        items = _evaluation_form(item)["items"]
        return monitoring.evaluation_save(
            organization=self.organization,
            actor=self.actor,
            sample_item=item,
            answers=posted_answers(self.request.POST, items),
        )

    def _refused(self, item, exc):
        errors, general = _refusal(exc, _evaluation_form(item)["items"])
        page = EvaluatePage()
        page.setup(self.request, pk=item.pk)
        page.object = page.get_object()
        ctx = page.get_context_data(errors=errors, general_errors=general)
        return render(self.request, EvaluatePage.template_name, ctx, status=400)


class EvaluationDraftView(EvaluationWriteView):
    """Autosave (htmx posts the form on every change) and the "Save draft" button without JS."""

    def post(self, request, pk):
        item = self.get_object()
        htmx = request.headers.get("HX-Request") == "true"
        try:
            self._save(item)
        except (ValidationError, PermissionDenied, monitoring.Conflict) as exc:
            if htmx:
                ctx = {"save_error": " ".join(_messages_of(exc)), "report": _evaluation_form(item)}
                return render(request, "audits/monitoring/_save_status.html", ctx)
            return self._refused(item, exc)
        item = self.get_object()
        if htmx:
            ctx = {"saved_at": timezone.localtime(), "report": _evaluation_form(item)}
            return render(request, "audits/monitoring/_save_status.html", ctx)
        messages.success(request, "Draft saved.")
        return redirect("monitoring_evaluate", pk=item.pk)


class EvaluationSubmitView(EvaluationWriteView):
    """Save what the form holds, then score and publish it (EvaluationPublished, via the service)."""

    def post(self, request, pk):
        item = self.get_object()
        try:
            self._save(item)  # kept even when publishing is refused
            monitoring.evaluation_submit(organization=self.organization, actor=self.actor, sample_item=item)
        except (ValidationError, PermissionDenied, monitoring.Conflict) as exc:
            return self._refused(self.get_object(), exc)
        messages.success(request, "Evaluation published to the agent.")
        return redirect("monitoring_queue")


# --- samples --------------------------------------------------------------------------------------


class DrawForm(forms.Form):
    program = forms.ModelChoiceField(queryset=Program.objects.none())
    period_start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    period_end = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}), help_text="The first day after the period."
    )
    seed = forms.CharField(
        max_length=64, required=False, help_text="Blank: derived from programme and period."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["program"].queryset = Program.objects.filter(kind=ProgramKind.MONITORING, active=True)

    def clean(self):
        data = super().clean()
        if data.get("period_start") and data.get("period_end") and data["period_end"] <= data["period_start"]:
            self.add_error("period_end", "Must be after the start.")
        return data


def _org_midnight(day: dt.date, time_zone: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), ZoneInfo(time_zone))


class SamplesPage(MonitoringMixin, TenantPageMixin, ListView):
    template_name = "audits/monitoring/samples.html"
    required_action = "monitoring.view"
    model = MonitoringSample
    paginate_by = 50

    def page_queryset(self):
        return monitoring.samples_overview(program_id=id_of(self.request.GET.get("program") or ""))

    def get_context_data(self, form=None, **kwargs):
        ctx = super().get_context_data(**kwargs)
        if form is None:
            start, end = monitoring.last_week(timezone.now(), self.organization.time_zone)
            form = DrawForm(initial={"period_start": start.date(), "period_end": end.date()})
        ctx.update(
            form=form if self.can("monitoring.add") else None,
            programs=Program.objects.filter(kind=ProgramKind.MONITORING).only("id", "name"),
            selected_program=self.request.GET.get("program", ""),
        )
        return ctx


class SampleDrawView(MonitoringMixin, TenantPageMixin, View):
    required_action = "monitoring.add"
    http_method_names = ["post"]

    def post(self, request):
        form = DrawForm(request.POST)
        if form.is_valid():
            data, tz = form.cleaned_data, self.organization.time_zone
            try:
                drawn, created = monitoring.sample_draw(
                    organization=self.organization,
                    actor=self.actor,
                    program=data["program"],
                    period_start=_org_midnight(data["period_start"], tz),
                    period_end=_org_midnight(data["period_end"], tz),
                    seed=data["seed"] or None,
                )
            except ValidationError as exc:
                for field, msgs in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, msgs)
            else:
                if created:
                    messages.success(request, "Sample drawn.")
                else:
                    messages.info(request, "This period was already drawn: here is its sample.")
                return redirect("monitoring_sample", pk=drawn.pk)
        page = SamplesPage()
        page.setup(request)
        page.object_list = page.get_queryset()
        return render(request, SamplesPage.template_name, page.get_context_data(form=form), status=400)


class SamplePage(MonitoringMixin, TenantPageMixin, DetailView):
    template_name = "audits/monitoring/sample.html"
    required_action = "monitoring.view"
    model = MonitoringSample
    context_object_name = "sample"

    def page_queryset(self):
        return MonitoringSample.objects.select_related("program")

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        agents = monitoring.sample_agent_counts(self.object)
        ctx.update(
            agents=agents,
            totals={k: sum(a[k] for a in agents) for k in ("items", "critical", "drafts", "done")},
        )
        return ctx


# --- agents' and managers' evaluations ------------------------------------------------------------


class EvaluationsPage(MonitoringMixin, TenantPageMixin, ListView):
    """Published evaluations in the caller's scope: an agent's own, a manager's store or region."""

    template_name = "audits/monitoring/evaluations.html"
    required_action = "audits.view"
    model = Audit
    paginate_by = 50

    def page_queryset(self):
        audits = monitoring.evaluations_only(Audit.objects.all())
        if self.request.GET.get("acknowledged") == "no":
            audits = audits.filter(acknowledged_at__isnull=True)
        return audits.select_related("employee", "evaluator", "location", "interaction__channel").order_by(
            "-published_at", "-pk"
        )

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["only_unacknowledged"] = self.request.GET.get("acknowledged") == "no"
        return ctx


class EvaluationMixin(MonitoringMixin, TenantPageMixin):
    model = Audit

    def page_queryset(self):
        return monitoring.evaluations_only(Audit.objects.all()).select_related(
            "employee", "evaluator", "location", "version__form", "interaction__channel"
        )


class DisputeForm(forms.Form):
    item = forms.ChoiceField(choices=())
    proposed_value = forms.CharField(max_length=200, label="Should have been")
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, items=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["item"].choices = [(i.key, label(i.text)) for i in items if i.type in ItemType.SCORED]


class EvaluationPage(EvaluationMixin, DetailView):
    template_name = "audits/monitoring/evaluation.html"
    required_action = "audits.view"
    context_object_name = "evaluation"

    def get_context_data(self, dispute_form=None, **kwargs):
        ctx = super().get_context_data(**kwargs)
        audit = self.object
        rows = monitoring.evaluation_item_results(audit)
        for row in rows:
            row["label"] = label(row["item"].text)
        membership = self.request.membership
        is_agent = membership.employee_id is not None and membership.employee_id == audit.employee_id
        ctx.update(
            rows=rows,
            facts=interaction_facts(audit.interaction),
            disputes=Dispute.objects.filter(audit=audit).select_related("item").order_by("-created_at"),
            may_acknowledge=is_agent and self.can("audits.acknowledge") and audit.acknowledged_at is None,
            may_calibrate=self.can("monitoring.add") and audit.interaction_id is not None,
            dispute_form=dispute_form
            or (DisputeForm(items=[r["item"] for r in rows]) if self.can("audits.dispute") else None),
        )
        return ctx


class EvaluationAcknowledgeView(EvaluationMixin, SingleObjectMixin, View):
    required_action = "audits.acknowledge"
    http_method_names = ["post"]

    def post(self, request, pk):
        audit = self.get_object()
        try:
            monitoring.evaluation_acknowledge(
                organization=self.organization,
                actor=self.actor,
                audit=audit,
                employee_id=request.membership.employee_id,
            )
        except (PermissionDenied, monitoring.Conflict) as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Acknowledged.")
        return redirect("monitoring_evaluation", pk=audit.pk)


class EvaluationDisputeView(EvaluationMixin, SingleObjectMixin, View):
    required_action = "audits.dispute"
    http_method_names = ["post"]

    def post(self, request, pk):
        audit = self.get_object()
        form = DisputeForm(request.POST, items=monitoring.version_items(audit.version))
        if form.is_valid():
            try:
                audit_services.dispute_open(
                    organization=self.organization,
                    actor=self.actor,
                    audit=audit,
                    item_key=form.cleaned_data["item"],
                    reason=form.cleaned_data["reason"],
                    proposed_value=form.cleaned_data["proposed_value"],
                    membership=request.membership,
                )
            except ValidationError as exc:
                for field, msgs in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, msgs)
            except PermissionDenied as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, "Dispute sent to the evaluators.")
                return redirect("monitoring_evaluation", pk=audit.pk)
        page = EvaluationPage()
        page.setup(request, pk=pk)
        page.object = page.get_object()
        return render(
            request, EvaluationPage.template_name, page.get_context_data(dispute_form=form), status=400
        )


# --- calibration ----------------------------------------------------------------------------------


def _evaluator_choices():
    users = (
        Membership.objects.filter(user_id__in=monitoring.org_evaluators())
        .select_related("user")
        .order_by("user__email")
    )
    return [(m.user_id, m.user.email or m.user.username) for m in users]


class CalibrationCreateForm(forms.Form):
    program = forms.ModelChoiceField(queryset=Program.objects.none())
    interaction = forms.IntegerField(min_value=1, help_text="The call or chat everyone scores.")
    evaluators = forms.TypedMultipleChoiceField(
        choices=(), coerce=int, widget=forms.CheckboxSelectMultiple, required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["program"].queryset = Program.objects.filter(kind=ProgramKind.MONITORING, active=True)
        self.fields["evaluators"].choices = _evaluator_choices()

    def clean_interaction(self):
        interaction = Interaction.objects.filter(pk=self.cleaned_data["interaction"]).first()
        if interaction is None:
            raise ValidationError("No such interaction.")
        return interaction

    def clean_evaluators(self):
        chosen = self.cleaned_data["evaluators"]
        if len(chosen) == 1:
            raise ValidationError("Choose at least two evaluators, or none to let every evaluator score.")
        return chosen


class CalibrationsPage(MonitoringMixin, TenantPageMixin, ListView):
    template_name = "audits/monitoring/calibrations.html"
    required_action = "monitoring.view"
    model = CalibrationSession
    paginate_by = 50

    def page_queryset(self):
        return monitoring.calibration_sessions()

    def get_context_data(self, form=None, **kwargs):
        ctx = super().get_context_data(**kwargs)
        if form is None and self.can("monitoring.add"):
            form = CalibrationCreateForm(
                initial={"interaction": id_of(self.request.GET.get("interaction") or "")}
            )
        ctx["form"] = form
        return ctx


class CalibrationCreateView(MonitoringMixin, TenantPageMixin, View):
    required_action = "monitoring.add"
    http_method_names = ["post"]

    def post(self, request):
        form = CalibrationCreateForm(request.POST)
        if form.is_valid():
            try:
                session = monitoring.calibration_create(
                    organization=self.organization, actor=self.actor, **form.cleaned_data
                )
            except ValidationError as exc:
                for field, msgs in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, msgs)
            else:
                messages.success(request, "Calibration session created: evaluators score it blind.")
                return redirect("monitoring_calibration", pk=session.pk)
        page = CalibrationsPage()
        page.setup(request)
        page.object_list = page.get_queryset()
        return render(request, CalibrationsPage.template_name, page.get_context_data(form=form), status=400)


class CalibrationMixin(MonitoringMixin, TenantPageMixin):
    model = CalibrationSession

    def page_queryset(self):
        return CalibrationSession.objects.select_related("program__form", "interaction__channel")


def _calibration_form(session: CalibrationSession, audit: Audit | None, errors=None, posted=None) -> dict:
    """The scoring form: the stored answers, or after a refused post what was posted (a missing
    comment must not cost the evaluator every answer)."""
    version = audit.version if audit is not None else monitoring.form_current_version(session.program.form)
    answers = {a.item_id: a for a in AuditAnswer.objects.filter(audit=audit)} if audit is not None else {}
    items = monitoring.version_items(version)
    if posted is not None:
        answers = {i.pk: AuditAnswer(item=i, **posted[i.key]) for i in items if i.key in posted}
    return {"items": items, **form_sections(items, answers, errors=errors)}


def _results_matrix(session: CalibrationSession) -> dict:
    """Items by evaluators from ``calibration_results``: each cell's answer and whether it differs."""
    results = monitoring.calibration_results(session)
    final = Audit.objects.select_related("version").get(pk=session.final_audit_id)
    labels = {i.key: label(i.text) for i in monitoring.version_items(final.version)}
    evaluators = results["evaluators"]
    rows = [
        {
            "key": item["key"],
            "label": labels.get(item["key"], item["key"]),
            "final": item["final"],
            "disagreement": item["disagreement"],
            "cells": [
                {"value": e["answers"].get(item["key"], ""), "differs": item["key"] in e["differs"]}
                for e in evaluators
            ],
        }
        for item in results["items"]
    ]
    return {"final_score": results["final_score"], "evaluators": evaluators, "rows": rows}


class CalibrationPage(CalibrationMixin, DetailView):
    template_name = "audits/monitoring/calibration.html"
    required_action = "monitoring.view"
    context_object_name = "session"

    def get_context_data(self, errors=None, general_errors=(), posted=None, **kwargs):
        ctx = super().get_context_data(**kwargs)
        session = self.object
        user_id = self.request.user.pk
        # The service decides what is visible: before closing, only the caller's own evaluation.
        visible = list(monitoring.calibration_visible_audits(session, user_id=user_id))
        mine = next((a for a in visible if a.evaluator_id == user_id), None)
        scored_by = set(
            monitoring.calibration_evaluator_audits(session).values_list("evaluator_id", flat=True)
        )
        invited = session.evaluators or sorted(scored_by - {None})
        emails = dict(Membership.objects.filter(user_id__in=invited).values_list("user_id", "user__email"))
        ctx.update(
            facts=interaction_facts(session.interaction),
            closed=session.closed_at is not None,
            mine=mine,
            roster=[{"email": emails.get(uid, f"user {uid}"), "scored": uid in scored_by} for uid in invited],
            scored_count=len(scored_by),
            may_evaluate=session.closed_at is None
            and self.can("monitoring.change")
            and monitoring.calibration_may_evaluate(session, user_id),
            may_close=session.closed_at is None and self.can("monitoring.change") and bool(scored_by),
            general_errors=list(general_errors),
        )
        if ctx["may_evaluate"]:
            ctx["report"] = _calibration_form(session, mine, errors, posted)
        if session.closed_at is not None:
            ctx["matrix"] = _results_matrix(session)
        return ctx


class CalibrationEvaluateView(CalibrationMixin, SingleObjectMixin, View):
    required_action = "monitoring.change"
    http_method_names = ["post"]

    def post(self, request, pk):
        session = self.get_object()
        posted = None
        try:
            mine = monitoring.calibration_visible_audits(session, user_id=request.user.pk).first()
            items = _calibration_form(session, mine)["items"]
            posted = posted_answers(request.POST, items)
            monitoring.calibration_evaluate(
                organization=self.organization,
                actor=self.actor,
                session=session,
                answers=posted,
            )
        except (ValidationError, PermissionDenied, monitoring.Conflict) as exc:
            errors, general = _refusal(exc, _calibration_form(session, None)["items"])
            page = CalibrationPage()
            page.setup(request, pk=pk)
            page.object = page.get_object()
            ctx = page.get_context_data(errors=errors, general_errors=general, posted=posted)
            return render(request, CalibrationPage.template_name, ctx, status=400)
        messages.success(request, "Your score is in. Others' scores show once the session is closed.")
        return redirect("monitoring_calibration", pk=session.pk)


class CalibrationClosePage(CalibrationMixin, DetailView):
    """The facilitator's consensus form; POST stores it as the final score and reveals everyone's."""

    template_name = "audits/monitoring/calibration_close.html"
    required_action = "monitoring.change"
    context_object_name = "session"

    def get_context_data(self, errors=None, general_errors=(), posted=None, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            facts=interaction_facts(self.object.interaction),
            report=_calibration_form(self.object, None, errors, posted),
            general_errors=list(general_errors),
        )
        return ctx

    def post(self, request, pk):
        self.object = session = self.get_object()
        items = _calibration_form(session, None)["items"]
        posted = posted_answers(request.POST, items)
        try:
            monitoring.calibration_close(
                organization=self.organization,
                actor=self.actor,
                session=session,
                answers=posted,
            )
        except (ValidationError, PermissionDenied, monitoring.Conflict) as exc:
            errors, general = _refusal(exc, items)
            ctx = self.get_context_data(errors=errors, general_errors=general, posted=posted)
            return render(request, self.template_name, ctx, status=400)
        messages.success(request, "Session closed: the final score and everyone's alignment are below.")
        return redirect("monitoring_calibration", pk=session.pk)


class TrendsPage(MonitoringMixin, TenantPageMixin, TemplateView):
    """Each evaluator's alignment with the consensus, session after session."""

    template_name = "audits/monitoring/trends.html"
    required_action = "monitoring.view"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        only_me = self.request.GET.get("evaluator") == "me"
        ctx.update(
            trends=monitoring.calibration_trends(evaluator_id=self.request.user.pk if only_me else None),
            only_me=only_me,
        )
        return ctx


urlpatterns = [
    path("", QueuePage.as_view(), name="monitoring_queue"),
    path("items/<int:pk>/", EvaluatePage.as_view(), name="monitoring_evaluate"),
    path("items/<int:pk>/draft/", EvaluationDraftView.as_view(), name="monitoring_evaluate_draft"),
    path("items/<int:pk>/submit/", EvaluationSubmitView.as_view(), name="monitoring_evaluate_submit"),
    path("samples/", SamplesPage.as_view(), name="monitoring_samples"),
    path("samples/draw/", SampleDrawView.as_view(), name="monitoring_sample_draw"),
    path("samples/<int:pk>/", SamplePage.as_view(), name="monitoring_sample"),
    path("evaluations/", EvaluationsPage.as_view(), name="monitoring_evaluations"),
    path("evaluations/<int:pk>/", EvaluationPage.as_view(), name="monitoring_evaluation"),
    path(
        "evaluations/<int:pk>/acknowledge/",
        EvaluationAcknowledgeView.as_view(),
        name="monitoring_evaluation_acknowledge",
    ),
    path(
        "evaluations/<int:pk>/dispute/", EvaluationDisputeView.as_view(), name="monitoring_evaluation_dispute"
    ),
    path("calibrations/", CalibrationsPage.as_view(), name="monitoring_calibrations"),
    path("calibrations/new/", CalibrationCreateView.as_view(), name="monitoring_calibration_create"),
    path("calibrations/trends/", TrendsPage.as_view(), name="monitoring_trends"),
    path("calibrations/<int:pk>/", CalibrationPage.as_view(), name="monitoring_calibration"),
    path(
        "calibrations/<int:pk>/evaluate/",
        CalibrationEvaluateView.as_view(),
        name="monitoring_calibration_evaluate",
    ),
    path("calibrations/<int:pk>/close/", CalibrationClosePage.as_view(), name="monitoring_calibration_close"),
]
