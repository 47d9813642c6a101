"""Anonymous links and their QR codes, per survey, location and (optionally) touchpoint.

``/feedback/links/<survey_id>/`` lists a survey's links (surveys.view) and creates them
(surveys.change); each link has PNG and SVG QR downloads and a printable poster page.
"""

from __future__ import annotations

import io

import segno
from django import forms
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.text import slugify
from django.views.generic import DetailView, View
from django.views.generic.detail import SingleObjectMixin

from cem.models import Location, Touchpoint
from cem.pages import TenantPageMixin
from cem.permissions import role_can
from cem.services import audit_log_write
from feedback.models import AnonymousLink, Survey


def public_url(link: AnonymousLink) -> str:
    # Printed codes outlive any one request, so they carry the canonical site URL, not the Host.
    return settings.SITE_URL.rstrip("/") + reverse("respond_anonymous", args=[link.token])


def anonymous_link_create(*, organization, actor, survey: Survey, location: Location, touchpoint=None):
    """One active link per survey, location and touchpoint: asking again returns the existing one."""
    with transaction.atomic():
        existing = (
            AnonymousLink.objects.select_for_update()
            .filter(survey=survey, location=location, touchpoint=touchpoint, active=True)
            .first()
        )
        if existing is not None:
            return existing, False
        link = AnonymousLink.objects.create(
            organization=organization, survey=survey, location=location, touchpoint=touchpoint
        )
        audit_log_write(
            organization=organization,
            actor=actor,
            action="anonymous_link.create",
            instance=link,
            changes={
                "survey": survey.pk,
                "location": location.pk,
                "touchpoint": getattr(touchpoint, "pk", None),
            },
        )
        return link, True


def anonymous_link_set_active(*, organization, actor, link: AnonymousLink, active: bool) -> None:
    with transaction.atomic():
        AnonymousLink.objects.filter(pk=link.pk).update(active=active)
        audit_log_write(
            organization=organization,
            actor=actor,
            action="anonymous_link.activate" if active else "anonymous_link.deactivate",
            instance=link,
            changes={"active": active},
        )


class LinkForm(forms.Form):
    location = forms.ModelChoiceField(queryset=Location.objects.none())
    touchpoint = forms.ModelChoiceField(queryset=Touchpoint.objects.none(), required=False)

    def __init__(self, *args, locations, **kwargs):
        super().__init__(*args, **kwargs)
        # Querysets are built per request, inside the tenant (and the member's scope).
        self.fields["location"].queryset = locations
        self.fields["touchpoint"].queryset = Touchpoint.objects.select_related("channel").order_by("name")


class _SurveyLinksMixin(TenantPageMixin):
    model = Survey
    pk_url_kwarg = "survey_id"

    def locations(self):
        return self.scoped(Location.objects.filter(active=True).order_by("name"))


class LinkListPage(_SurveyLinksMixin, DetailView):
    template_name = "feedback/links/list.html"
    required_action = "surveys.view"
    context_object_name = "survey"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        links = self.scoped(
            AnonymousLink.objects.filter(survey=self.object).select_related("location", "touchpoint")
        ).order_by("location__name", "touchpoint__name", "-created_at")
        context["links"] = [(link, public_url(link)) for link in links]
        context["can_change"] = role_can(self.request.membership.role, "surveys.change")
        context["form"] = kwargs.get("form") or LinkForm(locations=self.locations())
        context["title"] = f"Links and QR codes · {self.object.name}"
        return context


class LinkCreatePage(_SurveyLinksMixin, SingleObjectMixin, View):
    required_action = "surveys.change"
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        survey = self.get_object()
        form = LinkForm(request.POST, locations=self.locations())
        back = reverse("feedback_links", args=[survey.pk])
        if not form.is_valid():
            messages.error(request, "Choose a location (and optionally a touchpoint).")
            return HttpResponseRedirect(back)
        _link, created = anonymous_link_create(
            organization=self.organization,
            actor=self.actor,
            survey=survey,
            location=form.cleaned_data["location"],
            touchpoint=form.cleaned_data["touchpoint"],
        )
        messages.success(request, "Link created." if created else "This link already exists.")
        return HttpResponseRedirect(back)


class _LinkMixin(TenantPageMixin):
    model = AnonymousLink

    def page_queryset(self):
        return AnonymousLink.objects.select_related("survey", "location", "touchpoint")


class LinkQrDownload(_LinkMixin, SingleObjectMixin, View):
    required_action = "surveys.view"
    http_method_names = ["get"]
    kind = "png"

    def get(self, request, *args, **kwargs):
        link = self.get_object()
        qr = segno.make(public_url(link), error="m")
        buffer = io.BytesIO()
        if self.kind == "svg":
            qr.save(
                buffer, kind="svg", scale=10, border=4, title=f"{link.survey.name} · {link.location.name}"
            )
            content_type = "image/svg+xml"
        else:
            qr.save(buffer, kind="png", scale=12, border=4)
            content_type = "image/png"
        name = slugify(f"qr-{link.survey.name}-{link.location.code}-{link.pk}") or f"qr-{link.pk}"
        response = HttpResponse(buffer.getvalue(), content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="{name}.{self.kind}"'
        response["Cache-Control"] = "private, max-age=300"
        return response


class LinkPrintPage(_LinkMixin, DetailView):
    template_name = "feedback/links/print.html"
    required_action = "surveys.view"
    context_object_name = "link"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        url = public_url(self.object)
        context["url"] = url
        context["qr_svg"] = segno.make(url, error="m").svg_inline(scale=8, border=2, omitsize=True)
        return context


class LinkActivePage(_LinkMixin, SingleObjectMixin, View):
    required_action = "surveys.change"
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        link = self.get_object()
        active = request.POST.get("active") == "1"
        anonymous_link_set_active(organization=self.organization, actor=self.actor, link=link, active=active)
        messages.success(
            request, "Link activated." if active else "Link deactivated: its QR code no longer works."
        )
        return HttpResponseRedirect(reverse("feedback_links", args=[link.survey_id]))


urlpatterns = [
    path("<int:survey_id>/", LinkListPage.as_view(), name="feedback_links"),
    path("<int:survey_id>/new/", LinkCreatePage.as_view(), name="feedback_link_create"),
    path("link/<int:pk>/qr.png", LinkQrDownload.as_view(kind="png"), name="feedback_link_qr_png"),
    path("link/<int:pk>/qr.svg", LinkQrDownload.as_view(kind="svg"), name="feedback_link_qr_svg"),
    path("link/<int:pk>/print/", LinkPrintPage.as_view(), name="feedback_link_print"),
    path("link/<int:pk>/active/", LinkActivePage.as_view(), name="feedback_link_active"),
]
