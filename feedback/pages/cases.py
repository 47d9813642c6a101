"""Case pages: the manager's case list and case detail, and the executive complaint review.

Every case is looked up through TenantPageMixin's scoped queryset, so another tenant's or
another store's case is a 404; every change goes through the feedback.cases services, whose
ValidationErrors become messages. Forms post normally and redirect back (they work without
JavaScript); adding a note is enhanced with htmx, which swaps only the notes section.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.views import View
from django.views.generic import DetailView, ListView, TemplateView
from django.views.generic.detail import SingleObjectMixin

from cem.models import Location
from cem.pages import TenantPageMixin
from cem.permissions import role_can
from cem.scoping import scope_level
from feedback import case_selectors as sel
from feedback import cases as services
from feedback.models import Case, CaseNote


def _messages_of(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [msg for msgs in exc.message_dict.values() for msg in msgs]
    return list(exc.messages)


class CaseListPage(TenantPageMixin, ListView):
    """The member's cases (their scope), oldest and most critical first, with SLA badges."""

    model = Case
    template_name = "feedback/cases/list.html"
    required_action = "cases.view"
    paginate_by = 50

    def page_queryset(self):
        self.now = timezone.now()
        qs, self.status_view = sel.cases_for_list(Case.objects.all(), params=self.request.GET, now=self.now)
        return qs

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            now=self.now,
            status_view=self.status_view,
            status_views=[(key, label) for key, (label, _q) in sel.STATUS_VIEWS.items()],
            locations=self.scoped(Location.objects.all()).only("id", "name").order_by("name"),
            selected_location=self.request.GET.get("location", ""),
            counts=sel.case_counts(self.scoped(Case.objects.all()), now=self.now),
            total=ctx["paginator"].count if ctx.get("paginator") else len(ctx["object_list"]),
            show_review=scope_level(self.request.membership.role) == "organization",
        )
        return ctx


class CaseDetailPage(TenantPageMixin, DetailView):
    model = Case
    template_name = "feedback/cases/detail.html"
    required_action = "cases.view"
    context_object_name = "case"

    def page_queryset(self):
        return Case.objects.select_related("location", "employee", "assignee", "rule", "response")

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        case = self.object
        can_change = role_can(self.request.membership.role, "cases.change")
        allowed = services.TRANSITIONS[case.status] if can_change else set()
        ctx.update(
            now=timezone.now(),
            answers=sel.case_answers(case),
            notes=_notes(case),
            can_change=can_change,
            can_start=Case.Status.IN_PROGRESS in allowed,
            can_resolve=Case.Status.RESOLVED in allowed,
            can_close=Case.Status.CLOSED in allowed,
            can_contact=can_change
            and case.status != Case.Status.CLOSED
            and not case.customer_contacted_at
            and not services.contact_refusal(case),
            level_label=services.LEVEL_LABELS.get(case.escalation_level, ""),
        )
        return ctx


def _notes(case: Case):
    return CaseNote.objects.filter(case=case).select_related("author").order_by("created_at", "pk")


class CaseActionPage(TenantPageMixin, SingleObjectMixin, View):
    """POST-only endpoints behind the detail page's buttons; each runs one service."""

    model = Case
    required_action = "cases.change"
    http_method_names = ["post"]
    action = ""

    def page_queryset(self):
        return Case.objects.all()

    def run(self, case: Case):
        kwargs = {"organization": self.organization, "actor": self.actor, "case": case}
        reason = self.request.POST.get("reason", "")
        if self.action == "start":
            return services.case_start(**kwargs), "Case started."
        if self.action == "resolve":
            return services.case_resolve(**kwargs, reason=reason), "Case resolved."
        if self.action == "close":
            return services.case_close(**kwargs, reason=reason), "Case closed."
        if self.action == "contacted":
            return services.case_mark_customer_contacted(**kwargs), "Customer contact recorded."
        raise ValueError(self.action)

    def post(self, request, *args, **kwargs):
        case = self.get_object()
        try:
            _case, done = self.run(case)
        except ValidationError as exc:
            for message in _messages_of(exc):
                messages.error(request, message)
        else:
            messages.success(request, done)
        return redirect("feedback_case", pk=case.pk)


class CaseNotePage(TenantPageMixin, SingleObjectMixin, View):
    """Add a note: htmx gets the notes section back, a plain form post is redirected."""

    model = Case
    required_action = "cases.change"
    http_method_names = ["post"]

    def page_queryset(self):
        return Case.objects.all()

    def post(self, request, *args, **kwargs):
        case = self.get_object()
        error = ""
        try:
            services.case_add_note(
                organization=self.organization, actor=self.actor, case=case, text=request.POST.get("text", "")
            )
        except ValidationError as exc:
            error = " ".join(_messages_of(exc))
        if request.htmx:
            ctx = {"case": case, "notes": _notes(case), "can_change": True, "note_error": error}
            return TemplateResponse(request, "feedback/cases/_notes.html", ctx)
        if error:
            messages.error(request, error)
        return redirect("feedback_case", pk=case.pk)


class ComplaintReviewPage(TenantPageMixin, TemplateView):
    """Executive complaint review: open and recent cases across the organization, and their themes.

    Meant for executives and org admins (organization scope); a manager who opens it sees the
    same review over their own scope.
    """

    template_name = "feedback/cases/review.html"
    required_action = "cases.view"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        now = timezone.now()
        ctx.update(now=now, **sel.complaint_review(self.scoped(Case.objects.all()), now=now))
        ctx["max_theme"] = max((n for _t, n in ctx["themes"]), default=0)
        # Back to the executive / region dashboards, where the same locations are ranked.
        ctx["dashboards"] = role_can(self.request.membership.role, "alignment.view")
        return ctx


urlpatterns = [
    path("", CaseListPage.as_view(), name="feedback_cases"),
    path("review/", ComplaintReviewPage.as_view(), name="feedback_complaints"),
    path("<int:pk>/", CaseDetailPage.as_view(), name="feedback_case"),
    path("<int:pk>/start/", CaseActionPage.as_view(action="start"), name="feedback_case_start"),
    path("<int:pk>/resolve/", CaseActionPage.as_view(action="resolve"), name="feedback_case_resolve"),
    path("<int:pk>/close/", CaseActionPage.as_view(action="close"), name="feedback_case_close"),
    path("<int:pk>/contacted/", CaseActionPage.as_view(action="contacted"), name="feedback_case_contacted"),
    path("<int:pk>/notes/", CaseNotePage.as_view(), name="feedback_case_notes"),
]
