"""Alignment score pages (/alignment/scores/…): "How scores are computed", one score's explanation,
and the organization's alignment settings (admins change them; everyone with alignment.view reads).

Formulas live in alignment/scores.py and alignment/score_math.py (their docstrings are the same
method in code terms); the methods page shows them with the organization's current settings.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views import View
from django.views.generic import DetailView, TemplateView

from alignment import score_math, scores
from alignment import score_selectors as sel
from alignment.models import AlignmentScore, Link
from alignment.score_settings import (
    CATEGORIES,
    LINKS,
    MAX_MIN_SAMPLE,
    MAX_WEIGHT,
    settings_for,
    settings_update,
)
from cem.models import InteractionCategory
from cem.pages import TenantPageMixin
from cem.permissions import role_can
from cem.views_manage import add_service_errors
from learning.effectiveness import MIN_CONTROL


def _can_change(request) -> bool:
    return role_can(request.membership.role, "alignment.change")


class MethodsPage(TenantPageMixin, TemplateView):
    """Every formula in words and math, the minimum samples and how uncertainty is shown."""

    template_name = "alignment/scores/methods.html"
    required_action = "alignment.view"

    def get_context_data(self, **kwargs):
        settings = settings_for(self.organization)
        link_weights = settings.link_weights or {}
        category_weights = settings.category_weights or {}
        return super().get_context_data(
            settings=settings,
            category_weights=[
                (InteractionCategory(c).label, category_weights.get(c, 1.0)) for c in CATEGORIES
            ],
            link_weights=[(Link(link).label, link_weights.get(link, 1.0)) for link in LINKS],
            reliability_k=int(score_math.RELIABILITY_K),
            s_floor=int(score_math.S_FLOOR),
            min_members=score_math.MIN_MEMBERS,
            min_member_points=scores.MIN_MEMBER_POINTS,
            neutral_importance=scores.NEUTRAL_IMPORTANCE,
            min_control=MIN_CONTROL,
            can_change=_can_change(self.request),
            **kwargs,
        )


class ScoreExplainPage(TenantPageMixin, DetailView):
    """One score: its value and interval, n and whether it is ranked, what went in, what is missing."""

    template_name = "alignment/scores/explain.html"
    required_action = "alignment.view"
    model = AlignmentScore
    context_object_name = "score"

    def get_context_data(self, **kwargs):
        score = self.object
        names = sel.pair_names(score, self.scoped)
        inputs = sel.named_inputs(score)
        pairs = [
            {
                "id": p[0],
                "name": names.get(p[0], f"#{p[0]}"),
                "execution": p[1],
                "n": p[2],
                "points": p[3],
            }
            for p in inputs.get("pairs", [])
        ]
        return super().get_context_data(
            link_label=Link(score.link).label,
            scope_name=sel.scope_name(score),
            period_label=sel.period_label(score),
            rankable=sel.rankable(score),
            missing=sel.missing_text(score.missing),
            siblings=sel.siblings(score, self.scoped),
            pairs=pairs,
            inputs=inputs,
            **kwargs,
        )


def _number(label, *, max_value, decimals=2):
    return forms.DecimalField(
        label=label, min_value=0, max_value=max_value, decimal_places=decimals, max_digits=8
    )


class AlignmentSettingsForm(forms.Form):
    min_sample = forms.IntegerField(
        label="Minimum sample",
        min_value=1,
        max_value=MAX_MIN_SAMPLE,
        help_text="Scores resting on fewer data points are shown with their uncertainty, never ranked.",
    )
    alert_threshold = forms.DecimalField(
        label="Alert threshold",
        min_value=0,
        max_value=100,
        decimal_places=2,
        max_digits=5,
        help_text="An overall score crossing it (either way) raises AlignmentThresholdCrossed.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for category in CATEGORIES:
            self.fields[f"category_{category}"] = _number(
                f"Weight of {InteractionCategory(category).label} interactions", max_value=MAX_WEIGHT
            )
        for link in LINKS:
            self.fields[f"link_{link}"] = _number(f"Weight of {Link(link).label}", max_value=MAX_WEIGHT)

    @classmethod
    def initial_from(cls, settings) -> dict:
        initial = {"min_sample": settings.min_sample, "alert_threshold": settings.alert_threshold}
        for category in CATEGORIES:
            initial[f"category_{category}"] = (settings.category_weights or {}).get(category, 1.0)
        for link in LINKS:
            initial[f"link_{link}"] = (settings.link_weights or {}).get(link, 1.0)
        return initial

    def changes(self) -> dict:
        data = self.cleaned_data
        return {
            "min_sample": data["min_sample"],
            "alert_threshold": data["alert_threshold"],
            "category_weights": {c: float(data[f"category_{c}"]) for c in CATEGORIES},
            "link_weights": {link: float(data[f"link_{link}"]) for link in LINKS},
        }


class AlignmentSettingsPage(TenantPageMixin, View):
    """Category and link weights, minimum sample, alert threshold. Changing them recomputes every score."""

    template_name = "alignment/scores/settings.html"
    required_action = "alignment.view"

    def _render(self, form, status=200):
        if not _can_change(self.request):
            for field in form.fields.values():
                field.disabled = True
        return TemplateResponse(
            self.request,
            self.template_name,
            {"form": form, "can_change": _can_change(self.request)},
            status=status,
        )

    def get(self, request):
        settings = settings_for(self.organization)
        return self._render(AlignmentSettingsForm(initial=AlignmentSettingsForm.initial_from(settings)))

    def post(self, request):
        if not _can_change(request):
            raise PermissionDenied
        form = AlignmentSettingsForm(request.POST)
        if form.is_valid():
            try:
                settings_update(organization=self.organization, actor=self.actor, data=form.changes())
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                from django.contrib import messages

                messages.success(request, "Alignment settings saved; the scores are being recomputed.")
                return HttpResponseRedirect(reverse("alignment_settings"))
        return self._render(form, status=400)


urlpatterns = [
    path("methods/", MethodsPage.as_view(), name="alignment_methods"),
    path("settings/", AlignmentSettingsPage.as_view(), name="alignment_settings"),
    path("<int:pk>/", ScoreExplainPage.as_view(), name="alignment_score_explain"),
]
