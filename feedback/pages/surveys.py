"""Survey builder pages: list, settings (with triggers), question editor, version history.

Every write goes through feedback.survey_services, so the browser gets the same versioning and
validation as the API; a service's field errors (``questions[3].show_if``) land on the row and
field they name. The question editor is a plain formset: adding, removing and moving rows post
the form back (htmx swaps just the editor when it is loaded; without it the page reloads).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Prefetch
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.views.generic import DetailView, FormView, ListView, View

from cem.pages import TenantPageMixin
from cem.permissions import role_can
from cem.views_manage import add_service_errors
from feedback import survey_services as svc
from feedback.models import Question, Response, Survey, SurveyTrigger, SurveyVersion
from feedback.survey_forms import (
    EDITOR_LOCALES,
    QuestionFormSet,
    SurveySettingsForm,
    question_initial,
)


class SurveyPage(TenantPageMixin):
    model = Survey

    def can(self, action: str) -> bool:
        return role_can(self.request.membership.role, action)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["can_add"] = self.can("surveys.add")
        ctx["can_change"] = self.can("surveys.change")
        return ctx


class SurveyListPage(SurveyPage, ListView):
    template_name = "feedback/surveys/list.html"
    required_action = "surveys.view"
    paginate_by = 50

    def page_queryset(self):
        return (
            Survey.objects.annotate(current_version=Max("versions__number"), trigger_count=Count("triggers"))
            .order_by("name", "id")
            .only("id", "name", "status", "delivery_channel", "locales")
        )


class SurveyDetailPage(SurveyPage, DetailView):
    template_name = "feedback/surveys/detail.html"
    required_action = "surveys.view"

    def page_queryset(self):
        return Survey.objects.prefetch_related(
            Prefetch("triggers", queryset=SurveyTrigger.objects.select_related("channel", "touchpoint"))
        )

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        survey = self.object
        versions = list(
            SurveyVersion.objects.filter(survey=survey)
            .select_related("created_by")
            .prefetch_related(
                Prefetch(
                    "questions",
                    queryset=Question.objects.select_related("standard").order_by("page", "position", "id"),
                )
            )
            .order_by("-number")
        )
        counts = dict(
            self.scoped(Response.objects.filter(survey=survey))
            .order_by()
            .values_list("version_id")
            .annotate(n=Count("id"))
        )
        for version in versions:
            version.response_count = counts.get(version.pk, 0)
        ctx.update(versions=versions, current=versions[0] if versions else None, title=survey.name)
        return ctx


def _settings_kwargs(form: SurveySettingsForm) -> dict:
    return {
        "channels": list(form.cleaned_data["channels"]),
        "touchpoints": list(form.cleaned_data["touchpoints"]),
    }


class SurveyCreatePage(SurveyPage, FormView):
    template_name = "feedback/surveys/form.html"
    required_action = "surveys.add"
    form_class = SurveySettingsForm
    extra_context = {"title": "New survey", "submit_label": "Create and add questions"}

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "scope": self.scoped}

    def form_valid(self, form):
        try:
            survey = svc.survey_create(
                organization=self.organization,
                actor=self.actor,
                data=form.settings_data(),
                **_settings_kwargs(form),
            )
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"Created survey “{survey.name}”. Now add its questions.")
        return HttpResponseRedirect(reverse("feedback_survey_questions", args=[survey.pk]))

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "cancel_url": reverse("feedback_surveys")}


class SurveyEditPage(SurveyPage, FormView):
    template_name = "feedback/surveys/form.html"
    required_action = "surveys.change"
    form_class = SurveySettingsForm

    @cached_property
    def object(self) -> Survey:
        # Looked up in the scoped queryset: another tenant's id is a 404.
        return get_object_or_404(self.get_queryset().prefetch_related("triggers"), pk=self.kwargs["pk"])

    def get_initial(self):
        return SurveySettingsForm.initial_for(self.object)

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "scope": self.scoped}

    def form_valid(self, form):
        survey = self.object
        try:
            svc.survey_update(
                organization=self.organization, actor=self.actor, survey=survey, data=form.settings_data()
            )
            svc.survey_triggers_set(
                organization=self.organization, actor=self.actor, survey=survey, **_settings_kwargs(form)
            )
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, "Saved the survey settings.")
        return HttpResponseRedirect(reverse("feedback_survey_detail", args=[survey.pk]))

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            object=self.object,
            title=f"Edit survey: {self.object.name}",
            submit_label="Save",
            cancel_url=reverse("feedback_survey_detail", args=[self.object.pk]),
        )
        return ctx


def _raw_rows(data, prefix: str, names: list[str]) -> list[dict]:
    """The rows of a posted formset as plain values, to re-render after add/remove/move."""
    try:
        total = min(int(data.get(f"{prefix}-TOTAL_FORMS", 0)), 200)
    except ValueError:
        total = 0
    rows = []
    for i in range(total):
        row = {name: data.get(f"{prefix}-{i}-{name}", "") for name in names}
        row["required"] = data.get(f"{prefix}-{i}-required") in ("on", "true", "1", "True")
        rows.append(row)
    return rows


class QuestionEditorPage(SurveyPage, DetailView):
    """The survey's questions as a formset; saving goes through survey_questions_save."""

    template_name = "feedback/surveys/questions.html"
    required_action = "surveys.change"
    prefix = "q"

    def locales(self, survey: Survey) -> list[str]:
        return list(dict.fromkeys([survey.default_locale, *(survey.locales or []), *EDITOR_LOCALES]))

    def formset(self, survey, *, data=None, initial=None):
        locales = self.locales(survey)
        rows = _raw_rows(data, self.prefix, ["key"]) if data is not None else (initial or [])
        keys = [r.get("key", "") for r in rows]
        return QuestionFormSet(
            data=data,
            initial=initial,
            prefix=self.prefix,
            form_kwargs={"locales": locales, "keys": keys},
        )

    def current_initial(self, survey) -> list[dict]:
        version = SurveyVersion.objects.filter(survey=survey).order_by("-number").first()
        if version is None:
            return []
        locales = self.locales(survey)
        questions = Question.objects.filter(version=version).order_by("page", "position", "id")
        return [question_initial(q, locales) for q in questions]

    def get(self, request, *args, **kwargs):
        self.object = self.get_object()
        initial = self.current_initial(self.object)
        return self.render_editor(self.formset(self.object, initial=initial))

    def post(self, request, *args, **kwargs):
        self.object = survey = self.get_object()
        op = request.POST.get("op", "save")
        if op != "save":
            return self.render_editor(self.rearranged(survey, op))
        formset = self.formset(survey, data=request.POST)
        if not formset.is_valid():
            return self.render_editor(formset, status=400)
        questions = [form.question() for form in formset.forms]
        try:
            version = svc.survey_questions_save(
                organization=self.organization, actor=self.actor, survey=survey, questions=questions
            )
        except ValidationError as error:
            self.attach_errors(formset, error, survey.default_locale)
            return self.render_editor(formset, status=400)
        messages.success(self.request, f"Saved the questions as version {version.number}.")
        return HttpResponseRedirect(reverse("feedback_survey_detail", args=[survey.pk]))

    def rearranged(self, survey, op: str):
        """add / remove-<i> / up-<i> / down-<i>: the same rows, changed, not yet saved."""
        names = [name for name in self.formset(survey, initial=[{}]).forms[0].fields]
        rows = _raw_rows(self.request.POST, self.prefix, names)
        verb, _, index = op.partition("-")
        i = int(index) if index.isascii() and index.isdigit() else -1
        if verb == "add":
            page = rows[-1].get("page") if rows else 1
            rows.append({"type": "nps", "page": page or 1})
        elif verb == "remove" and 0 <= i < len(rows):
            rows.pop(i)
        elif verb == "up" and 0 < i < len(rows):
            rows[i - 1], rows[i] = rows[i], rows[i - 1]
        elif verb == "down" and 0 <= i < len(rows) - 1:
            rows[i + 1], rows[i] = rows[i], rows[i + 1]
        return self.formset(survey, initial=rows)

    def attach_errors(self, formset, error: ValidationError, default_locale: str) -> None:
        if not hasattr(error, "error_dict"):
            formset._non_form_errors = formset.error_class(error.messages)
            return
        general = []
        for field, errors in error.message_dict.items():
            if field.startswith("questions[") and "]" in field:
                index = field[len("questions[") : field.index("]")]
                rest = field[field.index("]") + 1 :].lstrip(".")
                if index.isdigit() and int(index) < len(formset.forms):
                    formset.forms[int(index)].add_service_error(rest or "key", errors, default_locale)
                    continue
            general.extend(errors)
        formset._non_form_errors = formset.error_class(general)

    def render_editor(self, formset, status: int = 200):
        ctx = self.get_context_data(object=self.object)
        ctx.update(
            formset=formset,
            locales=self.locales(self.object),
            title=f"Questions: {self.object.name}",
        )
        return self.render_to_response(ctx, status=status)


class SurveyStatusPage(SurveyPage, View):
    """POST activate / archive."""

    required_action = "surveys.change"
    http_method_names = ["post"]

    def post(self, request, pk):
        survey = get_object_or_404(self.get_queryset(), pk=pk)
        action = request.POST.get("action")
        service = {"activate": svc.survey_activate, "archive": svc.survey_archive}.get(action)
        if service is None:
            messages.error(request, "Unknown action.")
        else:
            try:
                survey = service(organization=self.organization, actor=self.actor, survey=survey)
                messages.success(request, f"Survey is now {survey.get_status_display().lower()}.")
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
        return HttpResponseRedirect(reverse("feedback_survey_detail", args=[pk]))


urlpatterns = [
    path("", SurveyListPage.as_view(), name="feedback_surveys"),
    path("new/", SurveyCreatePage.as_view(), name="feedback_survey_create"),
    path("<int:pk>/", SurveyDetailPage.as_view(), name="feedback_survey_detail"),
    path("<int:pk>/edit/", SurveyEditPage.as_view(), name="feedback_survey_edit"),
    path("<int:pk>/questions/", QuestionEditorPage.as_view(), name="feedback_survey_questions"),
    path("<int:pk>/status/", SurveyStatusPage.as_view(), name="feedback_survey_status"),
]
