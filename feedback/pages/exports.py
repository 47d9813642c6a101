"""``/feedback/exports/``: request an export, watch its progress bar (htmx polling), download it."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404
from django.shortcuts import redirect
from django.urls import path
from django.views.generic import DetailView, TemplateView

from cem.models import Location
from cem.pages import TenantPageMixin
from cem.permissions import role_can
from feedback import exports
from feedback.models import ExportJob, ResponseSource, Survey

JOBS_SHOWN = 20


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("xlsx", "Excel (XLSX)")], initial="csv")
    survey = forms.ModelChoiceField(queryset=None, required=False, empty_label="All surveys")
    location = forms.ModelChoiceField(queryset=None, required=False, empty_label="All my locations")
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="From")
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="To")
    source = forms.ChoiceField(choices=[("", "All sources"), *ResponseSource.choices], required=False)

    def __init__(self, *args, locations, **kwargs):
        super().__init__(*args, **kwargs)
        # Querysets are built here, per request inside the tenant, never at class level.
        self.fields["survey"].queryset = Survey.objects.order_by("name")
        self.fields["location"].queryset = locations


class _ExportPage(TenantPageMixin):
    required_action = "exports.view"
    model = ExportJob

    def page_queryset(self):
        return exports.jobs_visible_to(
            ExportJob.objects.all(), membership=self.request.membership, user=self.request.user
        )


class ExportsPage(_ExportPage, TemplateView):
    template_name = "feedback/exports.html"

    def form(self, data=None) -> ExportForm:
        locations = self.scoped(Location.objects.order_by("code")).only("id", "code", "name")
        return ExportForm(data, locations=locations)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.setdefault("form", self.form())
        ctx["can_add"] = role_can(self.request.membership.role, "exports.add")
        ctx["jobs"] = list(
            self.get_queryset()
            .filter(requested_by_id=self.request.user.pk)
            .order_by("-created_at")[:JOBS_SHOWN]
        )
        return ctx

    def post(self, request, *args, **kwargs):
        if not role_can(request.membership.role, "exports.add"):
            raise PermissionDenied
        form = self.form(request.POST)
        if form.is_valid():
            data = dict(form.cleaned_data)
            fmt = data.pop("format")
            try:
                exports.export_request(
                    organization=self.organization,
                    actor=self.actor,
                    format=fmt,
                    filters={k: v for k, v in data.items() if v not in (None, "")},
                    scope=exports.export_scope(request.membership),
                    requested_by=request.user,
                )
            except ValidationError as exc:
                for field, errors in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                messages.success(request, "Export requested: it appears below and downloads when ready.")
                return redirect("feedback_exports")
        return self.render_to_response(self.get_context_data(form=form))


class ExportProgress(_ExportPage, DetailView):
    """The job's row in the list; htmx swaps it in every second until the job finishes."""

    template_name = "feedback/_export_row.html"
    context_object_name = "job"


class ExportDownload(_ExportPage, DetailView):
    def get(self, request, *args, **kwargs):
        job = self.get_object()
        file = exports.export_file(job)
        if file is None:
            raise Http404("This export is not ready.")
        exports.export_downloaded(organization=self.organization, actor=self.actor, job=job)
        return FileResponse(
            open(file, "rb"),  # FileResponse closes it
            as_attachment=True,
            filename=f"responses-{job.pk}.{job.format}",
        )


urlpatterns = [
    path("", ExportsPage.as_view(), name="feedback_exports"),
    path("<int:pk>/", ExportProgress.as_view(), name="feedback_export_progress"),
    path("<int:pk>/download/", ExportDownload.as_view(), name="feedback_export_download"),
]
