"""Mystery-shopping jobs in the browser: the shopper's board, jobs and visit form; the review queue.

No business rules here: every write calls audits.jobs / audits.photos (as the API does), and a
ValidationError becomes a message or an error next to its item. Shoppers open only jobs of their
own shopper profile; the review pages need an organization-wide role (like the API's reviewers).
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.views.generic import DetailView, ListView, TemplateView, View
from django.views.generic.detail import SingleObjectMixin

from audits import jobs, photos, scoring, workforce
from audits.audit_services import scoring_item
from audits.models import Assignment, AuditAnswer, AuditPhoto, FormItem, ShopperRating
from audits.pages.form_render import form_sections, posted_answers
from cem.pages import TenantPageMixin
from cem.scoping import scope_level

S = Assignment.Status
REVIEW_STATUSES = (S.SUBMITTED, S.IN_REVIEW)


def _messages_of(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [msg for msgs in exc.message_dict.values() for msg in msgs]
    return list(exc.messages)


def _report(assignment: Assignment, errors: dict | None = None) -> dict:
    """The visit report of a job, grouped by section, with answers, photos and progress."""
    audit = jobs._current_audit(assignment)
    if audit is not None:
        version_id = audit.version_id
    else:
        try:
            version_id = jobs._latest_version(assignment).pk
        except ValidationError:
            version_id = None
    items = list(
        FormItem.objects.filter(version_id=version_id)
        .select_related("section")
        .order_by("section__position", "section_id", "position", "pk")
    )
    answers, by_item = {}, {}
    if audit is not None:
        answers = {a.item_id: a for a in AuditAnswer.objects.filter(audit=audit)}
        for photo in AuditPhoto.objects.filter(audit=audit).order_by("pk"):
            by_item.setdefault(photo.item_id, []).append(photo)
    rendered = form_sections(items, answers, photos=by_item, errors=errors, error_prefix="answers.")
    return {"audit": audit, "items": items, "answers": answers, **rendered}


def _score_preview(assignment: Assignment, report: dict):
    """What the report would score (audits.scoring, as approval computes it); None if incomplete."""
    items = report["items"]
    if report["audit"] is None or not items:
        return None
    answers = report["answers"]
    form = assignment.program.form
    try:
        return scoring.score_audit(
            [scoring_item(i, i.section.key) for i in items],
            {i.key: (answers[i.pk].value if i.pk in answers else None) or None for i in items},
            critical_policy=form.critical_policy,
            critical_cap=form.critical_cap,
        )
    except scoring.ScoringError:
        return None


# --- shopper pages --------------------------------------------------------------------------------


class ShopperJobMixin(TenantPageMixin):
    """A job of the signed-in shopper: anything else (another shopper's, another tenant's) is a 404."""

    model = Assignment

    def page_queryset(self):
        return Assignment.objects.filter(shopper__user_id=self.request.user.pk).select_related(
            "program__form", "scenario", "location"
        )

    def shopper(self):
        return jobs.shopper_for_user(self.request.user)


class JobBoardPage(TenantPageMixin, TemplateView):
    template_name = "audits/jobs/board.html"
    required_action = "assignments.view"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        shopper = jobs.shopper_for_user(self.request.user)
        board = jobs.job_board(organization=self.organization, shopper=shopper, with_reasons=True)
        ctx.update(
            shopper=shopper,
            eligible=[e for e in board if e["eligible"]],
            ineligible=[e for e in board if not e["eligible"]],
        )
        return ctx


class MyJobsPage(ShopperJobMixin, ListView):
    template_name = "audits/jobs/mine.html"
    required_action = "assignments.view"
    paginate_by = 50

    def page_queryset(self):
        return super().page_queryset().order_by("-window_start", "-pk")


class JobTakeView(TenantPageMixin, View):
    """POST: take an open job. Not get_object(): the scope hides unassigned jobs from shoppers;
    the tenant still bounds the lookup (as in the API)."""

    required_action = "assignments.change"
    model = Assignment
    http_method_names = ["post"]

    def post(self, request, pk):
        assignment = Assignment.objects.filter(pk=pk).first()
        if assignment is None:
            raise Http404
        shopper = jobs.shopper_for_user(request.user)
        if shopper is None:
            raise PermissionDenied("You have no shopper profile in this organization.")
        try:
            jobs.assignment_take(
                organization=self.organization, actor=self.actor, shopper=shopper, assignment=assignment
            )
        except ValidationError as exc:
            for message in _messages_of(exc):
                messages.error(request, message)
            return redirect("audit_jobs")
        messages.success(request, "The job is yours. Fill in the report during or after your visit.")
        return redirect("audit_job", pk=assignment.pk)


class JobPage(ShopperJobMixin, DetailView):
    """The visit form: instructions, items by section, autosave, photos, submit."""

    template_name = "audits/jobs/job.html"
    required_action = "assignments.view"
    context_object_name = "job"

    def get_context_data(self, errors=None, **kwargs):
        ctx = super().get_context_data(**kwargs)
        job = self.object
        report = _report(job, errors)
        audit = report["audit"]
        errors = errors or {}
        visited = audit.visited_at if audit is not None else None
        ctx.update(
            report=report,
            editable=job.status in jobs.DRAFTABLE_STATUSES,
            visited_value=timezone.localtime(visited).strftime("%Y-%m-%dT%H:%M") if visited else "",
            visited_error=errors.get("visited_at", ""),
            revision=jobs.draft_revision(audit),
            general_errors=[v for k, v in errors.items() if not k.startswith(("answers.", "visited_at"))],
            photo_accept="image/jpeg,image/png,image/webp",
        )
        return ctx


def _answers_from(post, items) -> list[dict]:
    return [{"item": key, **answer} for key, answer in posted_answers(post, items).items()]


def _visited_from(post):
    raw = (post.get("visited_at") or "").strip()
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError({"visited_at": "Enter a date and time."}) from None
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


class JobWriteView(ShopperJobMixin, SingleObjectMixin, View):
    required_action = "assignments.change"
    http_method_names = ["post"]

    def _save_draft(self, job):
        report = _report(job)
        return jobs.assignment_draft_save(
            organization=self.organization,
            actor=self.actor,
            shopper=self.shopper(),
            assignment=job,
            answers=_answers_from(self.request.POST, report["items"]),
            visited_at=_visited_from(self.request.POST),
            # Only the autosave script sends it; the plain buttons post what the shopper sees.
            base_revision=self.request.POST.get("revision"),
            reimbursement=self.request.POST.get("reimbursement"),
        )


class JobDraftView(JobWriteView):
    """Autosave (static/audits/autosave.js posts the form on every change, with the revision it
    builds on) and the "Save draft" button without JS. A stale revision is a 409: the script then
    drops its queued answers and reloads the newer ones."""

    def post(self, request, pk):
        job = self.get_object()
        htmx = request.headers.get("HX-Request") == "true"
        try:
            audit = self._save_draft(job)
        except ValidationError as exc:
            if htmx:
                report = _report(job)
                ctx = {
                    "job": job,
                    "save_error": " ".join(_messages_of(exc)),
                    "report": report,
                    "revision": jobs.draft_revision(report["audit"]),
                }
                status = 409 if isinstance(exc, jobs.DraftConflict) else 200
                return render(request, "audits/jobs/_save_status.html", ctx, status=status)
            for message in _messages_of(exc):
                messages.error(request, message)
            return redirect("audit_job", pk=job.pk)
        if htmx:
            ctx = {
                "job": job,
                "saved_at": timezone.localtime(),
                "report": _report(job),
                "revision": jobs.draft_revision(audit),
            }
            return render(request, "audits/jobs/_save_status.html", ctx)
        messages.success(request, "Draft saved.")
        return redirect("audit_job", pk=job.pk)


class JobSubmitView(JobWriteView):
    """Save what the form holds, then submit; the service's errors are shown next to their items."""

    def post(self, request, pk):
        job = self.get_object()
        try:
            who = {"organization": self.organization, "actor": self.actor, "shopper": self.shopper()}
            self._save_draft(job)  # kept even when the submission is refused
            job.refresh_from_db()
            with transaction.atomic():
                if job.status == S.ASSIGNED:
                    jobs.assignment_start(**who, assignment=job)
                jobs.assignment_submit(**who, assignment=job, reimbursement=request.POST.get("reimbursement"))
        except ValidationError as exc:
            errors = (
                {k: " ".join(v) for k, v in exc.message_dict.items()}
                if hasattr(exc, "error_dict")
                else {"report": " ".join(exc.messages)}
            )
            page = JobPage()
            page.setup(request, pk=pk)
            page.object = self.get_object()
            ctx = page.get_context_data(errors=errors)
            return render(request, JobPage.template_name, ctx, status=400)
        messages.success(request, "Report submitted for review.")
        return redirect("audit_job", pk=job.pk)


class JobPhotoView(JobWriteView):
    def post(self, request, pk):
        job = self.get_object()
        upload = request.FILES.get("file")
        try:
            if upload is None:
                raise ValidationError({"file": "Choose a photo to upload."})
            photos.assignment_photo_add(
                organization=self.organization,
                actor=self.actor,
                shopper=self.shopper(),
                assignment=job,
                item_key=request.POST.get("item", ""),
                upload=upload,
            )
        except ValidationError as exc:
            for message in _messages_of(exc):
                messages.error(request, message)
        else:
            messages.success(request, "Photo added.")
        return redirect(reverse("audit_job", kwargs={"pk": job.pk}) + f"#item-{request.POST.get('item', '')}")


# --- reviewer pages -------------------------------------------------------------------------------


class ReviewerMixin(TenantPageMixin):
    """Reviewing needs assignments.add and an organization-wide scope (shoppers have neither)."""

    model = Assignment
    required_action = "assignments.add"

    def page_queryset(self):
        if scope_level(self.request.membership.role) != "organization":
            raise PermissionDenied("Only reviewers can do this.")
        return Assignment.objects.filter(status__in=REVIEW_STATUSES).select_related(
            "program__form", "scenario", "location", "shopper"
        )


class ReviewQueuePage(ReviewerMixin, ListView):
    template_name = "audits/jobs/queue.html"
    paginate_by = 50

    def page_queryset(self):
        return super().page_queryset().order_by("submitted_at", "pk")


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=jobs.REASON_MAX, widget=forms.Textarea(attrs={"rows": 2}))


def _review_extras(post, *, approve: bool) -> dict:
    """The optional rating (with any decision) and the reimbursement adjustment (on approval)."""
    extras = {
        "rating": workforce.rating_score(post.get("rating")),
        "rating_comment": (post.get("rating_comment") or "").strip(),
    }
    if approve:
        extras["reimbursement"] = post.get("reimbursement")
    return extras


class ReviewPage(ReviewerMixin, DetailView):
    template_name = "audits/jobs/review.html"
    context_object_name = "job"

    def get_context_data(self, reason_form=None, **kwargs):
        ctx = super().get_context_data(**kwargs)
        report = _report(self.object)
        ctx.update(
            report=report,
            preview=_score_preview(self.object, report),
            reason_form=reason_form or ReasonForm(),
            rating=ShopperRating.objects.filter(assignment=self.object).first(),
            rating_choices=range(1, 6),
            rating_comment_max=workforce.RATING_COMMENT_MAX,
        )
        return ctx


class ReviewDecisionView(ReviewerMixin, SingleObjectMixin, View):
    http_method_names = ["post"]
    decision = ""

    def post(self, request, pk):
        job = self.get_object()
        common = {"organization": self.organization, "actor": self.actor, "assignment": job}
        try:
            common.update(_review_extras(request.POST, approve=self.decision == "approve"))
            if self.decision == "approve":
                jobs.assignment_approve(**common)
                done = "Approved: the score is published."
            else:
                form = ReasonForm(request.POST)
                if not form.is_valid():
                    raise ValidationError({"reason": "Give a reason (at most 300 characters)."})
                service = jobs.assignment_return if self.decision == "return" else jobs.assignment_reject
                service(**common, reason=form.cleaned_data["reason"])
                done = "Returned to the shopper." if self.decision == "return" else "Rejected."
        except ValidationError as exc:
            for message in _messages_of(exc):
                messages.error(request, message)
            return redirect("audit_job_review", pk=job.pk)
        messages.success(request, done)
        return redirect("audit_job_queue")


urlpatterns = [
    path("", JobBoardPage.as_view(), name="audit_jobs"),
    path("mine/", MyJobsPage.as_view(), name="audit_jobs_mine"),
    path("<int:pk>/", JobPage.as_view(), name="audit_job"),
    path("<int:pk>/take/", JobTakeView.as_view(), name="audit_job_take"),
    path("<int:pk>/draft/", JobDraftView.as_view(), name="audit_job_draft"),
    path("<int:pk>/photo/", JobPhotoView.as_view(), name="audit_job_photo"),
    path("<int:pk>/submit/", JobSubmitView.as_view(), name="audit_job_submit"),
    path("review/", ReviewQueuePage.as_view(), name="audit_job_queue"),
    path("review/<int:pk>/", ReviewPage.as_view(), name="audit_job_review"),
    path(
        "review/<int:pk>/return/",
        ReviewDecisionView.as_view(decision="return"),
        name="audit_job_return",
    ),
    path(
        "review/<int:pk>/approve/",
        ReviewDecisionView.as_view(decision="approve"),
        name="audit_job_approve",
    ),
    path(
        "review/<int:pk>/reject/",
        ReviewDecisionView.as_view(decision="reject"),
        name="audit_job_reject",
    ),
]
