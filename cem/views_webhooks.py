"""Org-admin pages of the outgoing webhooks (/manage/webhooks/…), on the generic record pages.

List (with waiting / failing counts), create (the secret shown once), edit the URL and the
subscribed events, rotate the secret (the new one shown once), disable, delete, and per
endpoint the delivery log with a redeliver button. Writes go through cem.webhooks.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.generic import DetailView, FormView, View

from cem import webhook_selectors, webhooks
from cem.forms import ScopedFormMixin
from cem.models import WebhookDelivery, WebhookEndpoint
from cem.pages import TenantPageMixin
from cem.views_manage import (
    ConfirmPage,
    ListFilter,
    Record,
    RecordDeleteView,
    RecordFormMixin,
    RecordListView,
    RecordPage,
    add_service_errors,
    choice_options,
)

DELIVERIES_PER_PAGE = 50


class WebhookEndpointForm(ScopedFormMixin, forms.Form):
    url = forms.URLField(
        max_length=2000,
        label="URL",
        assume_scheme="https",
        help_text="Where CEM POSTs the events: an http:// or https:// address your side can verify.",
    )
    description = forms.CharField(max_length=200, required=False, help_text="Who or what receives them.")
    event_types = forms.MultipleChoiceField(
        choices=list(webhooks.WEBHOOK_EVENTS.items()),
        widget=forms.CheckboxSelectMultiple,
        label="Events",
        help_text="Only these are sent to the URL.",
    )
    active = forms.BooleanField(required=False, initial=True, help_text="Unticked: nothing is sent.")

    def __init__(self, *args, with_active: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        if not with_active:
            del self.fields["active"]


WEBHOOKS = Record(
    WebhookEndpoint,
    WebhookEndpointForm,
    "webhooks",
    "admin",
    "webhook",
    "webhooks",
    filters=(
        ListFilter(
            "status",
            "Status",
            choice_options([("active", "Active"), ("disabled", "Disabled")]),
            apply=lambda qs, value: qs.filter(active=value == "active"),
        ),
    ),
    search=("url", "description"),
    order_by=("-created_at", "-id"),
    detail_url_name="webhook_detail",
    list_template="cem/webhooks/list.html",
)


def _secret_response(request, context: dict) -> TemplateResponse:
    # Rendered, never redirected to: the secret is in this response and nowhere else.
    response = TemplateResponse(request, "cem/webhooks/secret.html", context)
    response["Cache-Control"] = "no-store"
    return response


class WebhookListView(RecordListView):
    def get_title(self):
        return "Webhooks"

    def page_queryset(self):
        return webhook_selectors.endpoints_with_activity(super().page_queryset())

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        can_change = self.can("change")
        for row in ctx["rows"]:
            pk = row["obj"].pk
            row["log_url"] = reverse("webhook_detail", args=[pk])
            row["rotate_url"] = reverse("webhook_rotate", args=[pk]) if can_change else ""
            row["disable_url"] = (
                reverse("webhook_disable", args=[pk]) if can_change and row["obj"].active else ""
            )
        ctx["show_actions"] = True
        return ctx


class WebhookCreateView(RecordFormMixin, RecordPage, FormView):
    verb = "add"
    submit_label = "Create endpoint"
    title = "New webhook endpoint"

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "with_active": False}

    def form_valid(self, form):
        cd = form.cleaned_data
        try:
            endpoint, secret = webhooks.endpoint_create(
                organization=self.organization,
                actor=self.actor,
                url=cd["url"],
                description=cd["description"],
                event_types=cd["event_types"],
            )
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        return _secret_response(
            self.request,
            {
                **self.get_context_data(form=form),
                "endpoint": endpoint,
                "secret": secret,
                "title": "Webhook endpoint created",
            },
        )


class WebhookUpdateView(RecordFormMixin, RecordPage, FormView):
    verb = "change"
    submit_label = "Save"

    def dispatch_object(self):
        if not hasattr(self, "object"):
            self.object = get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
        return self.object

    def get_title(self):
        return f"Edit webhook endpoint: {self.dispatch_object()}"

    def get_initial(self):
        endpoint = self.dispatch_object()
        return {
            "url": endpoint.url,
            "description": endpoint.description,
            "event_types": endpoint.event_types,
            "active": endpoint.active,
        }

    def get_success_url(self):
        return reverse("webhook_detail", args=[self.object.pk])

    def perform_save(self, form):
        return webhooks.endpoint_update(
            organization=self.organization,
            actor=self.actor,
            endpoint=self.dispatch_object(),
            data=form.cleaned_data,
        )

    def success_message(self, obj):
        return f"Saved webhook endpoint “{obj}”."

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        if self.can("delete"):
            ctx["delete_url"] = self.record.url("delete", self.dispatch_object().pk)
        return ctx


class WebhookDetailView(RecordPage, DetailView):
    """The endpoint and its delivery log, with a redeliver button per delivery."""

    template_name = "cem/webhooks/detail.html"

    def get_title(self):
        return f"Webhook: {self.object}"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        status = self.request.GET.get("status", "")
        deliveries = webhook_selectors.endpoint_deliveries(self.object, status=status)
        page = Paginator(deliveries, DELIVERIES_PER_PAGE).get_page(self.request.GET.get("page"))
        can_change = self.can("change")
        ctx.update(
            endpoint=self.object,
            event_labels=[webhooks.WEBHOOK_EVENTS.get(t, t) for t in self.object.event_types],
            deliveries=page.object_list,
            page_obj=page,
            paginator=page.paginator,
            is_paginated=page.has_other_pages(),
            status=status if status in WebhookDelivery.Status.values else "",
            statuses=WebhookDelivery.Status.choices,
            can_redeliver=can_change and self.object.active,
            edit_url=reverse("webhook_edit", args=[self.object.pk]) if can_change else "",
            rotate_url=reverse("webhook_rotate", args=[self.object.pk]) if can_change else "",
            disable_url=reverse("webhook_disable", args=[self.object.pk])
            if can_change and self.object.active
            else "",
        )
        return ctx


class WebhookRotateView(ConfirmPage):
    verb = "change"
    confirm_label = "Rotate secret"
    danger = False

    def get_title(self):
        return f"Rotate the signing secret of {self.object}"

    def confirm_text(self):
        return (
            "A new secret signs every delivery from now on. For the next 24 hours each delivery also "
            "carries a signature made with the current secret, so your receiver can switch over "
            "without missing any."
        )

    def act(self, obj):
        endpoint, secret = webhooks.endpoint_rotate_secret(
            organization=self.organization, actor=self.actor, endpoint=obj
        )
        return _secret_response(
            self.request,
            {
                **self.get_context_data(object=endpoint),
                "endpoint": endpoint,
                "secret": secret,
                "rotated": True,
                "title": "New signing secret",
            },
        )


class WebhookDisableView(ConfirmPage):
    verb = "change"
    confirm_label = "Disable"

    def get_title(self):
        return f"Disable webhook endpoint {self.object}"

    def confirm_text(self):
        return (
            f"Nothing more is sent to {self.object.url}, and deliveries still waiting for a retry give "
            "up. The log stays; edit the endpoint to enable it again."
        )

    def can_confirm(self):
        return self.object.active

    def act(self, obj):
        webhooks.endpoint_disable(organization=self.organization, actor=self.actor, endpoint=obj)
        messages.success(self.request, f"Disabled webhook endpoint “{obj}”.")
        return redirect("webhook_detail", obj.pk)


class WebhookDeleteView(RecordDeleteView):
    def confirm_text(self):
        return (
            f"Delete the webhook endpoint “{self.object_label}” and its delivery log? This can't be undone."
        )

    def act(self, obj):
        webhooks.endpoint_delete(organization=self.organization, actor=self.actor, endpoint=obj)
        messages.success(self.request, f"Deleted webhook endpoint “{self.object_label}”.")
        return redirect(self.list_url())


class WebhookRedeliverView(TenantPageMixin, View):
    """POST: one more attempt of a delivery, now; back to the endpoint's log with how it went."""

    model = WebhookDelivery
    required_action = "webhooks.change"
    http_method_names = ["post"]

    def post(self, request, pk):
        delivery = get_object_or_404(self.get_queryset(), pk=pk)
        try:
            delivery = webhooks.redeliver(organization=self.organization, actor=self.actor, delivery=delivery)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            if delivery.status == WebhookDelivery.Status.SUCCEEDED:
                messages.success(
                    request, f"Delivered event {delivery.event_id} (HTTP {delivery.last_status_code})."
                )
            else:
                messages.error(
                    request,
                    f"Event {delivery.event_id} was not accepted: {delivery.last_error or delivery.status}.",
                )
        return redirect("webhook_detail", delivery.endpoint_id)
