"""Org-admin privacy pages (/manage/privacy/…): find a person, export, erase, consent, retention.

- ``/manage/privacy/``: search customers (external id, email, phone) and employees (external id,
  email, name); the requests handled so far, newest first.
- ``…/customers/<id>/`` and ``…/employees/<id>/``: what is held about the person (rows per
  model), consent history (customers), past requests; export; record consent.
- ``…/<type>/<id>/erase/``: the erasure form — a reason and the external id typed again.
- ``…/requests/<id>/`` (polls while an export runs) and ``…/requests/<id>/download/``.
- ``…/retention/``: the organization's retention policy.
- ``…/suppressions/``: how many identifiers are on the suppression list (by kind and reason),
  and a form to take one off on the person's fresh consent (cem.suppression).

Writes go through cem.privacy; reads through cem.privacy_selectors.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.generic import DetailView, FormView, TemplateView, View

from cem import privacy, privacy_selectors, suppression
from cem.models import Customer, Employee
from cem.models.privacy import (
    ConsentChannel,
    ConsentSource,
    PrivacyRequest,
    RetentionPolicy,
    SuppressedIdentifier,
)
from cem.views_manage import ManagePage, add_service_errors

REQUESTS_PER_PAGE = 50
SubjectType = PrivacyRequest.SubjectType


class PrivacyPage(ManagePage):
    resource = "privacy"
    section = "admin"
    nav_current = "privacy"


class PrivacyHomeView(PrivacyPage, TemplateView):
    model = PrivacyRequest
    template_name = "cem/privacy/home.html"
    title = "Privacy"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        q = self.request.GET.get("q", "").strip()
        page = Paginator(self.get_queryset(), REQUESTS_PER_PAGE).get_page(self.request.GET.get("page"))
        ctx.update(
            q=q,
            found=privacy_selectors.find_subjects(q) if q else [],
            rows=privacy_selectors.requests_with_subjects(list(page.object_list)),
            page_obj=page,
            paginator=page.paginator,
            is_paginated=page.has_other_pages(),
        )
        return ctx

    def page_queryset(self):
        return privacy_selectors.requests_page_queryset()


class ConsentForm(forms.Form):
    channel = forms.ChoiceField(choices=ConsentChannel.choices)
    granted = forms.TypedChoiceField(
        choices=[("yes", "Given"), ("no", "Withdrawn")], coerce=lambda v: v == "yes", label="Consent"
    )
    detail = forms.CharField(
        max_length=200, required=False, help_text="Where: the form, the phone call, the email that asked."
    )


class EraseForm(forms.Form):
    reason = forms.CharField(
        max_length=privacy.REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The request and its date, e.g. “email of 2 March, ticket 4711”.",
    )
    redact_terms = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Also redact",
        help_text="Names the person goes by, one per line: removed from comments and notes.",
    )
    delete_responses = forms.BooleanField(
        required=False,
        label="Delete their survey responses too",
        help_text="Unticked, the scores stay in every figure without the person; ticked, the responses "
        "go and what they earned is reversed.",
    )
    confirm = forms.CharField(max_length=100, label="Type the external id to confirm")

    def __init__(self, *args, subject_type: str, **kwargs):
        super().__init__(*args, **kwargs)
        if subject_type != SubjectType.CUSTOMER:
            del self.fields["delete_responses"]

    def terms(self) -> list[str]:
        return [t.strip() for t in self.cleaned_data.get("redact_terms", "").splitlines() if t.strip()]


class _SubjectMixin(PrivacyPage):
    subject_type = SubjectType.CUSTOMER

    def subject(self):
        if not hasattr(self, "_subject"):
            self._subject = get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
        return self._subject

    def subject_name(self, obj) -> str:
        if self.subject_type == SubjectType.CUSTOMER:
            return f"Customer {obj.external_id}"
        return f"Employee {obj.name} ({obj.external_id})"

    def url(self, name: str) -> str:
        return reverse(f"privacy_{self.subject_type}_{name}", args=[self.subject().pk])


class SubjectView(_SubjectMixin, TemplateView):
    template_name = "cem/privacy/subject.html"

    def get_title(self):
        return self.subject_name(self.subject())

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        obj = self.subject()
        ctx.update(
            subject=obj,
            subject_type=self.subject_type,
            overview=privacy_selectors.subject_overview(self.subject_type, obj),
            export_url=self.url("export"),
            erase_url=self.url("erase") if self.can("delete") else "",
            consent_url=self.url("consent")
            if self.subject_type == SubjectType.CUSTOMER and self.can("add")
            else "",
            consent_form=kwargs.get("consent_form") or ConsentForm(),
        )
        return ctx


class SubjectExportView(_SubjectMixin, View):
    verb = "add"
    http_method_names = ["post"]

    def post(self, request, pk):
        job = privacy.export_request(
            organization=self.organization,
            actor=self.actor,
            subject_type=self.subject_type,
            instance=self.subject(),
        )
        messages.success(request, "Export queued: the ZIP is ready to download below when it is built.")
        return redirect("privacy_request", job.pk)


class SubjectConsentView(_SubjectMixin, View):
    verb = "add"
    http_method_names = ["post"]

    def post(self, request, pk):
        form = ConsentForm(request.POST)
        try:
            if not form.is_valid():
                raise ValidationError(form.errors)
            privacy.consent_record(
                organization=self.organization,
                actor=self.actor,
                customer=self.subject(),
                channel=form.cleaned_data["channel"],
                granted=form.cleaned_data["granted"],
                source=ConsentSource.ADMIN,
                detail=form.cleaned_data["detail"],
            )
        except ValidationError as error:
            messages.error(request, "Consent not recorded: " + " ".join(error.messages))
        else:
            messages.success(request, "Consent recorded.")
        return redirect(self.url("detail"))


class SubjectEraseView(_SubjectMixin, FormView):
    verb = "delete"
    template_name = "cem/privacy/erase.html"
    form_class = EraseForm

    def get_title(self):
        return f"Erase {self.subject_name(self.subject())}"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "subject_type": self.subject_type}

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(subject=self.subject(), subject_type=self.subject_type, cancel_url=self.url("detail"))
        return ctx

    def form_valid(self, form):
        cd = form.cleaned_data
        common = {
            "organization": self.organization,
            "actor": self.actor,
            "reason": cd["reason"],
            "confirm": cd["confirm"],
            "redact_terms": form.terms(),
        }
        try:
            if self.subject_type == SubjectType.CUSTOMER:
                done = privacy.customer_erase(
                    customer=self.subject(), delete_responses=cd.get("delete_responses", False), **common
                )
            else:
                done = privacy.employee_erase(employee=self.subject(), **common)
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(
            self.request,
            f"Erased {self.subject_type} #{done.subject_id}: their own records at once; their "
            "identifiers are being redacted from the organization's free text (this page shows when "
            "that is complete).",
        )
        return redirect("privacy_request", done.pk)


# The page polls while these last: an export being built, an erasure's free-text sweep.
_UNFINISHED = (PrivacyRequest.Status.QUEUED, PrivacyRequest.Status.RUNNING, PrivacyRequest.Status.REDACTING)


class RequestDetailView(PrivacyPage, DetailView):
    model = PrivacyRequest
    template_name = "cem/privacy/request.html"
    context_object_name = "job"

    def get_title(self):
        return str(self.object)

    def get_template_names(self):
        if self.request.headers.get("HX-Request"):
            return ["cem/privacy/_request_status.html"]
        return [self.template_name]

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        job = self.object
        [row] = privacy_selectors.requests_with_subjects([job])
        ctx.update(
            row=row,
            running=job.status in _UNFINISHED,
            download_url=reverse("privacy_request_download", args=[job.pk])
            if privacy.export_file(job) is not None
            else "",
            counts=sorted(job.counts.items()),
        )
        return ctx


class RequestDownloadView(PrivacyPage, View):
    model = PrivacyRequest
    http_method_names = ["get"]

    def get(self, request, pk):
        job = get_object_or_404(self.get_queryset(), pk=pk)
        path = privacy.export_file(job)
        if path is None:
            raise Http404("This export is not ready, or its file was deleted (retention).")
        privacy.export_downloaded(organization=self.organization, actor=self.actor, request=job)
        response = FileResponse(
            open(path, "rb"),  # noqa: SIM115 - FileResponse closes it
            as_attachment=True,
            filename=f"privacy-export-{job.subject_type}-{job.subject_id}-{job.pk}.zip",
            content_type="application/zip",
        )
        response["Cache-Control"] = "no-store"
        return response


class RetentionForm(forms.ModelForm):
    class Meta:
        model = RetentionPolicy
        fields = [
            "comments_months",
            "invitations_months",
            "case_contacts_months",
            "abuse_hashes_days",
            "exports_days",
        ]
        labels = {
            "comments_months": "Delete comment text after (months)",
            "invitations_months": "Delete invitations after (months)",
            "case_contacts_months": "Clear customer contact details on closed cases after (months)",
            "abuse_hashes_days": "Clear the anti-abuse hashes of anonymous responses after (days)",
            "exports_days": "Delete privacy export files after (days)",
        }
        help_texts = {
            "comments_months": "Scores, sentiment and topics stay. Empty: kept until erased.",
            "invitations_months": "Responses stay. Empty: kept until erased.",
        }


class RetentionView(PrivacyPage, FormView):
    model = RetentionPolicy
    verb = "change"
    template_name = "cem/privacy/retention.html"
    form_class = RetentionForm
    title = "Retention policy"

    def policy(self):
        if not hasattr(self, "_policy"):
            self._policy = privacy.retention_policy_for(self.organization)
        return self._policy

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "instance": self.policy()}

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["policy"] = self.policy()
        ctx["last_counts"] = sorted((self.policy().last_run_counts or {}).items())
        return ctx

    def form_valid(self, form):
        try:
            privacy.retention_policy_update(
                organization=self.organization, actor=self.actor, policy=self.policy(), data=form.cleaned_data
            )
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, "Retention policy saved; it applies from tonight's run.")
        return redirect("privacy_retention")


class SuppressionLiftForm(forms.Form):
    kind = forms.ChoiceField(choices=SuppressedIdentifier.Kind.choices, label="Identifier")
    value = forms.CharField(max_length=254, label="Value", help_text="Typed exactly: only a hash is kept.")
    reason = forms.CharField(
        max_length=suppression.LIFT_REASON_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Their consent",
        help_text="When and how the person agreed to be contacted again, e.g. “signed form, 3 March”.",
    )


class SuppressionView(PrivacyPage, FormView):
    """The suppression list's counts; org admins take an identifier off on fresh consent."""

    model = SuppressedIdentifier
    template_name = "cem/privacy/suppressions.html"
    form_class = SuppressionLiftForm
    title = "Suppression list"

    def post(self, request, *args, **kwargs):
        if not self.can("delete"):
            raise PermissionDenied
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        counts = suppression.summary()
        ctx.update(
            summary=counts,
            by_kind=[(label, counts["by_kind"][value]) for value, label in SuppressedIdentifier.Kind.choices],
            by_reason=[
                (label, counts["by_reason"][value]) for value, label in SuppressedIdentifier.Reason.choices
            ],
            can_lift=self.can("delete"),
        )
        return ctx

    def form_valid(self, form):
        cd = form.cleaned_data
        try:
            removed = suppression.suppression_lift(
                organization=self.organization,
                actor=self.actor,
                kind=cd["kind"],
                value=cd["value"],
                reason=cd["reason"],
            )
        except ValidationError as error:
            # The service names the identifier's kind; on this form that is the value typed.
            errors = getattr(error, "error_dict", {})
            remapped = {
                ("value" if k in SuppressedIdentifier.Kind.values else k): v for k, v in errors.items()
            }
            add_service_errors(form, ValidationError(remapped) if remapped else error)
            return self.form_invalid(form)
        messages.success(
            self.request,
            f"Removed from the suppression list ({removed} entr{'y' if removed == 1 else 'ies'}).",
        )
        return redirect("privacy_suppressions")


def subject_views(subject_type: str, model) -> dict:
    """The concrete pages of one subject type (they carry ``model``, which the sweep reads)."""
    attrs = {"subject_type": subject_type, "model": model, "__module__": __name__}
    return {
        name: type(f"{model.__name__}{base.__name__}", (base,), attrs)
        for name, base in (
            ("detail", SubjectView),
            ("export", SubjectExportView),
            ("consent", SubjectConsentView),
            ("erase", SubjectEraseView),
        )
    }


CUSTOMER_VIEWS = subject_views(SubjectType.CUSTOMER, Customer)
EMPLOYEE_VIEWS = subject_views(SubjectType.EMPLOYEE, Employee)
