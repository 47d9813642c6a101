"""Assignment pages (/learning/assign/): the assign form (people, a team, a location or a role; a
lesson or a path; a due date) showing who was assigned and who was skipped and why; the
assignment list for trainers and managers (their scope, filters, overdue highlighted, withdraw);
the gap rules list and editor; the gaps the rules found, with their evidence.

Writes go through learning.assignments and the generic record services (audit log), so the pages
validate exactly like the API. Every list and object is scoped by TenantPageMixin.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.views.generic import ListView, View
from django.views.generic.detail import SingleObjectMixin

from cem.models import Employee, Location, Standard, Team
from cem.pages import TenantPageMixin
from cem.permissions import role_can
from cem.views_manage import ModelFormEditPage, add_service_errors
from learning import assignments as services
from learning import gaps
from learning.models import (
    Assignment,
    ContentStatus,
    GapRule,
    GapTrigger,
    LearningPath,
    LearningSettings,
    Lesson,
)


def _published(model):
    return (
        model.objects.filter(status=ContentStatus.PUBLISHED)
        .exclude(audience="shoppers")
        .order_by("title" if model is Lesson else "name")
    )


# --- assign ------------------------------------------------------------------------------------------


class AssignForm(forms.Form):
    lesson = forms.ModelChoiceField(queryset=Lesson.objects.none(), required=False)
    path = forms.ModelChoiceField(
        queryset=LearningPath.objects.none(), required=False, label="or a learning path"
    )
    employees = forms.ModelMultipleChoiceField(
        queryset=Employee.objects.none(),
        required=False,
        label="People",
        widget=forms.SelectMultiple(attrs={"size": 6}),
    )
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False)
    location = forms.ModelChoiceField(queryset=Location.objects.none(), required=False)
    role = forms.ChoiceField(
        choices=[("", "—"), *Employee.Role.choices], required=False, label="Everyone with the role"
    )
    due_at = forms.DateField(required=False, label="Due date", widget=forms.DateInput(attrs={"type": "date"}))
    reason = forms.CharField(required=False, max_length=services.NOTE_MAX, label="Note for the learners")

    def __init__(self, *args, page, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lesson"].queryset = _published(Lesson)
        self.fields["path"].queryset = _published(LearningPath)
        self.fields["employees"].queryset = page.scoped(Employee.objects.filter(active=True)).order_by("name")
        self.fields["team"].queryset = page.scoped(Team.objects.select_related("location")).order_by("name")
        self.fields["location"].queryset = page.scoped(Location.objects.filter(active=True)).order_by("name")


class AssignPage(TenantPageMixin, View):
    required_action = "training.add"
    template_name = "learning/assign/form.html"

    def render(self, form, result=None):
        return TemplateResponse(self.request, self.template_name, {"form": form, "result": result})

    def get(self, request):
        initial = {k: request.GET[k] for k in ("lesson", "path", "location", "team") if request.GET.get(k)}
        return self.render(AssignForm(page=self, initial=initial))

    def post(self, request):
        form = AssignForm(request.POST, page=self)
        result = None
        if form.is_valid():
            data = {k: v for k, v in form.cleaned_data.items() if v not in (None, "", [])}
            if "employees" in data:
                data["employees"] = [e.pk for e in data["employees"]]
            try:
                result = services.assignment_create(
                    organization=self.organization, actor=self.actor, membership=request.membership, data=data
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
        return self.render(form, result)


# --- assignment list -----------------------------------------------------------------------------------


class AssignmentListPage(TenantPageMixin, ListView):
    """Assignments in the member's scope, soonest due first; overdue ones stand out."""

    model = Assignment
    template_name = "learning/assign/list.html"
    required_action = "training.add"
    paginate_by = 50
    FILTERS = ("status", "source", "lesson", "location")

    def page_queryset(self):
        self.now = timezone.now()
        qs = Assignment.objects.select_related("lesson", "path", "employee", "location")
        params = self.request.GET
        status = params.get("status", "open")
        if status == "open":
            qs = qs.filter(status__in=Assignment.OPEN)
        elif status == "overdue":
            qs = qs.filter(status__in=Assignment.OPEN, due_at__lt=self.now)
        elif status in Assignment.Status.values:
            qs = qs.filter(status=status)
        if params.get("source") in Assignment.Source.values:
            qs = qs.filter(source=params["source"])
        for name in ("lesson", "location"):
            if (params.get(name) or "").isdigit():
                qs = qs.filter(**{f"{name}_id": int(params[name])})
        return qs.order_by("due_at", "pk")

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            now=self.now,
            statuses=[("open", "Open"), ("overdue", "Overdue"), *Assignment.Status.choices],
            sources=Assignment.Source.choices,
            lessons=_published(Lesson).only("id", "title"),
            locations=self.scoped(Location.objects.all()).only("id", "name").order_by("name"),
            selected={k: self.request.GET.get(k, "open" if k == "status" else "") for k in self.FILTERS},
            can_withdraw=role_can(self.request.membership.role, "training.change"),
            can_rules=role_can(self.request.membership.role, "gap_rules.view"),
        )
        return ctx


class WithdrawPage(TenantPageMixin, SingleObjectMixin, View):
    model = Assignment
    required_action = "training.change"
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        assignment = self.get_object()
        try:
            services.assignment_withdraw(
                organization=self.organization,
                actor=self.actor,
                assignment=assignment,
                note=request.POST.get("note", ""),
            )
            messages.success(request, "Assignment withdrawn.")
        except ValidationError as exc:
            for msgs in getattr(exc, "message_dict", {"": exc.messages}).values():
                for msg in msgs:
                    messages.error(request, msg)
        return HttpResponseRedirect(reverse("learning_assignments"))


# --- gap rules ------------------------------------------------------------------------------------------


class GapRuleForm(forms.ModelForm):
    # Declared so the form class builds no tenant query at import (querysets are set per request).
    standard = forms.ModelChoiceField(queryset=Standard.objects.none())
    lesson = forms.ModelChoiceField(queryset=Lesson.objects.none(), required=False)
    path = forms.ModelChoiceField(queryset=LearningPath.objects.none(), required=False)

    class Meta:
        model = GapRule
        fields = [
            "name",
            "standard",
            "subject",
            "target",
            "source",
            "threshold",
            "window_days",
            "min_points",
            "lesson",
            "path",
            "cooldown_days",
            "due_days",
            "holdout_share",
            "active",
        ]
        help_texts = {
            "threshold": "0–100: survey answers are put on 0–100 from their scale; audit scores are already.",
            "holdout_share": "Share of gaps held back for the cooldown as a control group (0.1 = 10 %).",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["standard"].queryset = Standard.objects.filter(active=True).order_by("code")
        self.fields["lesson"].queryset = _published(Lesson)
        self.fields["path"].queryset = _published(LearningPath)

    def clean(self):
        data = super().clean()
        for name, msg in gaps.rule_shape_errors(
            subject=data.get("subject"),
            target=data.get("target"),
            lesson=data.get("lesson"),
            path=data.get("path"),
        ).items():
            self.add_error(name, msg)
        return data


class GapRuleListPage(TenantPageMixin, ListView):
    model = GapRule
    template_name = "learning/assign/rules.html"
    required_action = "gap_rules.view"
    paginate_by = 100

    def page_queryset(self):
        return GapRule.objects.select_related("standard", "lesson", "path").order_by("-active", "name")

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["can_edit"] = role_can(self.request.membership.role, "gap_rules.change")
        return ctx


class GapRuleEditPage(ModelFormEditPage):
    model = GapRule
    form_class = GapRuleForm
    resource = "gap_rules"
    template_name = "learning/assign/rule_form.html"
    success_url_name = "learning_gap_rules"
    saved_message = "Rule saved."


class GapTriggerListPage(TenantPageMixin, ListView):
    """The gaps the rules found: score, data points, evidence per source, and what was done."""

    model = GapTrigger
    template_name = "learning/assign/triggers.html"
    required_action = "gap_rules.view"
    paginate_by = 50

    def page_queryset(self):
        qs = GapTrigger.objects.select_related("rule", "standard", "location", "employee", "team")
        params = self.request.GET
        if params.get("outcome") in GapTrigger.Outcome.values:
            qs = qs.filter(outcome=params["outcome"])
        if (params.get("rule") or "").isdigit():
            qs = qs.filter(rule_id=int(params["rule"]))
        return qs.order_by("-created_at", "-pk")

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            outcomes=GapTrigger.Outcome.choices,
            selected_outcome=self.request.GET.get("outcome", ""),
            rules=GapRule.objects.only("id", "name").order_by("name"),
            selected_rule=self.request.GET.get("rule", ""),
        )
        return ctx


# --- organization settings ------------------------------------------------------------------------


class LearningSettingsForm(forms.ModelForm):
    lrs_url = forms.URLField(
        required=False,
        assume_scheme="https",
        label="External LRS URL (optional)",
        help_text="xAPI statements are also sent to <URL>/statements, signed and retried.",
    )
    lrs_secret = forms.CharField(
        required=False,
        max_length=128,
        label="LRS signing secret",
        help_text="Leave empty to keep the stored secret; it is never shown again.",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )
    clear_lrs_secret = forms.BooleanField(required=False, label="Remove the stored secret")

    class Meta:
        model = LearningSettings
        fields = list(services.SETTINGS_FIELDS)
        labels = {
            "max_open_assignments": "Most open assignments per person",
            "reminder_days_before_due": "Remind learners this many days before the due date",
            "escalate_days_overdue": "Tell the store's managers after this many days overdue",
        }


class LearningSettingsPage(TenantPageMixin, View):
    """Assignment limits, reminder and escalation timing, and the optional external LRS."""

    template_name = "learning/assign/settings.html"
    required_action = "gap_rules.change"

    def render(self, form, row):
        return TemplateResponse(
            self.request,
            self.template_name,
            {"form": form, "has_secret": bool(row.lrs_secret), "can_rules": True},
        )

    def get(self, request, **kwargs):
        row = services.learning_settings(self.organization.pk)
        return self.render(LearningSettingsForm(instance=row), row)

    def post(self, request, **kwargs):
        row = services.learning_settings(self.organization.pk)
        # The form validates its own copy; the service locks and compares the stored row.
        form = LearningSettingsForm(request.POST, instance=services.learning_settings(self.organization.pk))
        if form.is_valid():
            data = {name: form.cleaned_data[name] for name in (*services.SETTINGS_FIELDS, "lrs_secret")}
            data["clear_lrs_secret"] = form.cleaned_data["clear_lrs_secret"]
            try:
                services.learning_settings_save(organization=self.organization, actor=self.actor, data=data)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, "Learning settings saved.")
                return HttpResponseRedirect(reverse("learning_settings"))
        return self.render(form, row)


urlpatterns = [
    path("", AssignmentListPage.as_view(), name="learning_assignments"),
    path("new/", AssignPage.as_view(), name="learning_assign"),
    path("<int:pk>/withdraw/", WithdrawPage.as_view(), name="learning_assignment_withdraw"),
    path("rules/", GapRuleListPage.as_view(), name="learning_gap_rules"),
    path("rules/new/", GapRuleEditPage.as_view(), name="learning_gap_rule_new"),
    path("rules/<int:pk>/", GapRuleEditPage.as_view(), name="learning_gap_rule"),
    path("gaps/", GapTriggerListPage.as_view(), name="learning_gap_triggers"),
    path("settings/", LearningSettingsPage.as_view(), name="learning_settings"),
]
