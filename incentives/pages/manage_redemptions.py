"""Admin pages of the redemption side (/rewards/manage/...): approvals and the catalogue.

- approvals: pending redemptions oldest first (points already on hold), approve (a gift card
  takes its code then) or decline with a reason (refunded, stock back); the latest decisions.
- catalogue: items with stock and free codes, create/edit (image checked by content, locations,
  roles), deactivate; each gift card's code pool is loaded from a textarea or a CSV file and
  shown as counts only.
Writes call incentives.catalog and incentives.redemptions, as the API does.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.views.generic import FormView, TemplateView, View
from django.views.generic.detail import SingleObjectMixin

from cem.models import Employee, Location
from cem.pages import TenantPageMixin
from incentives import catalog, redemptions
from incentives.models import CatalogItem, Redemption

PENDING_SHOWN = 200


def _messages_of(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{field}: {msg}" for field, msgs in exc.message_dict.items() for msg in msgs]
    return list(exc.messages)


# --- approvals -------------------------------------------------------------------------------------


class ApprovalsPage(TenantPageMixin, TemplateView):
    template_name = "incentives/manage/approvals.html"
    required_action = "redemptions.change"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        base = self.scoped(Redemption.objects.all()).select_related(
            "item", "employee", "employee__current_location"
        )
        pending = base.filter(status=Redemption.Status.PENDING).order_by("created_at", "pk")
        ctx.update(
            pending=list(pending[:PENDING_SHOWN]),
            pending_count=pending.count(),
            decided=list(base.exclude(status=Redemption.Status.PENDING).order_by("-decided_at", "-pk")[:20]),
        )
        return ctx


class DecideAction(TenantPageMixin, SingleObjectMixin, View):
    model = Redemption
    required_action = "redemptions.change"
    http_method_names = ["post"]
    decision = ""

    def post(self, request, pk):
        redemption = self.get_object()
        try:
            if self.decision == "approve":
                redemptions.approve(
                    org=self.organization,
                    actor=self.actor,
                    redemption=redemption,
                    note=request.POST.get("note", ""),
                )
                messages.success(request, f"Approved: {redemption.item.name} for {redemption.employee.name}.")
            else:
                redemptions.decline(
                    org=self.organization,
                    actor=self.actor,
                    redemption=redemption,
                    reason=request.POST.get("reason", ""),
                )
                messages.success(
                    request, f"Declined and refunded: {redemption.item.name} for {redemption.employee.name}."
                )
        except redemptions.RedemptionRefused as exc:
            messages.error(request, exc.message)
        except ValidationError as exc:
            for m in _messages_of(exc):
                messages.error(request, m)
        return redirect("rewards_approvals")


# --- catalogue -------------------------------------------------------------------------------------


class CatalogAdminPage(TenantPageMixin, TemplateView):
    template_name = "incentives/manage/catalog.html"
    required_action = "catalog.change"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["items"] = list(
            catalog.with_code_counts(CatalogItem.objects.all())
            .prefetch_related("location_links")
            .order_by("-active", "name")
        )
        return ctx


class ItemForm(forms.Form):
    name = forms.CharField(max_length=160)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    kind = forms.ChoiceField(choices=CatalogItem.Kind.choices)
    cost = forms.IntegerField(min_value=1, help_text="Points.")
    stock = forms.IntegerField(min_value=0, required=False, help_text="Empty: unlimited.")
    per_person_limit = forms.IntegerField(
        min_value=1, max_value=32767, required=False, help_text="Empty: no limit."
    )
    auto_approve = forms.BooleanField(
        required=False, help_text="Fulfilled at once (gift cards reveal a code)."
    )
    active = forms.BooleanField(required=False, initial=True)
    visible_locations = forms.ModelMultipleChoiceField(
        queryset=Location.objects.none(), required=False, help_text="None chosen: every location."
    )
    visible_roles = forms.MultipleChoiceField(
        choices=Employee.Role.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None chosen: every role.",
    )
    image = forms.FileField(required=False, help_text="JPEG, PNG or WebP.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["visible_locations"].queryset = Location.objects.order_by("name")


class ItemFormPage(TenantPageMixin, FormView):
    template_name = "incentives/manage/item_form.html"
    required_action = "catalog.change"
    form_class = ItemForm
    model = CatalogItem
    item = None

    def get_item(self):
        if "pk" in self.kwargs and self.item is None:
            self.item = get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])
        return self.item

    def get_initial(self):
        item = self.get_item()
        if item is None:
            return {"active": True}
        return {
            **{name: getattr(item, name) for name in catalog.EDITABLE},
            "visible_locations": [link.location_id for link in item.location_links.all()],
        }

    def get_context_data(self, **kwargs):
        return super().get_context_data(item=self.get_item(), **kwargs)

    def _save(self, item, data, locations, upload):
        org, actor = self.organization, self.actor
        if item is None:
            item = catalog.item_create(org=org, actor=actor, data=data, locations=locations)
        else:
            item = catalog.item_update(org=org, actor=actor, item=item, data=data, locations=locations)
        if upload is not None:
            item = catalog.item_set_image(org=org, actor=actor, item=item, upload=upload)
        return item

    def form_valid(self, form):
        data = dict(form.cleaned_data)
        locations = list(data.pop("visible_locations"))
        upload = data.pop("image")
        data["visible_roles"] = list(data["visible_roles"])
        try:
            with transaction.atomic():  # a refused image leaves the item as it was
                item = self._save(self.get_item(), data, locations, upload)
        except ValidationError as exc:
            for field, msgs in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, msgs)
            return self.form_invalid(form)
        messages.success(self.request, f"Saved {item.name}.")
        return redirect("rewards_catalog_admin")


class ItemDeactivateAction(TenantPageMixin, SingleObjectMixin, View):
    model = CatalogItem
    required_action = "catalog.change"
    http_method_names = ["post"]

    def post(self, request, pk):
        item = catalog.item_deactivate(org=self.organization, actor=self.actor, item=self.get_object())
        messages.success(request, f"{item.name} is no longer offered.")
        return redirect("rewards_catalog_admin")


class CodesForm(forms.Form):
    codes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "autocomplete": "off"}),
        required=False,
        help_text="One code per line, or CSV with the code first.",
    )
    file = forms.FileField(required=False, help_text="Or a CSV / text file.")

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is not None:
            try:
                data["codes"] = upload.read(2_000_000).decode("utf-8-sig")
            except UnicodeDecodeError:
                raise ValidationError({"file": "The file must be UTF-8 text or CSV."}) from None
        if not (data.get("codes") or "").strip():
            raise ValidationError({"codes": "Paste the codes, or attach a file."})
        return data


class CodesPage(TenantPageMixin, SingleObjectMixin, FormView):
    """A gift card's code pool: counts and a bulk load (the codes themselves are never listed)."""

    template_name = "incentives/manage/codes.html"
    required_action = "catalog.change"
    model = CatalogItem
    form_class = CodesForm

    def dispatch_object(self):
        self.object = self.get_object()
        return self.object

    def get(self, request, *args, **kwargs):
        self.dispatch_object()
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        self.dispatch_object()
        return super().post(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        item = catalog.with_code_counts(CatalogItem.objects.filter(pk=self.object.pk)).get()
        ctx.update(item=item)
        return ctx

    def form_valid(self, form):
        try:
            result = catalog.codes_load(
                org=self.organization, actor=self.actor, item=self.object, text=form.cleaned_data["codes"]
            )
        except ValidationError as exc:
            for field, msgs in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, msgs)
            return self.form_invalid(form)
        messages.success(
            self.request,
            f"{result['loaded']} codes loaded, {result['duplicates']} already in the pool; "
            f"{result['available']} available.",
        )
        return redirect("rewards_catalog_codes", pk=self.object.pk)


urlpatterns = [
    path("approvals/", ApprovalsPage.as_view(), name="rewards_approvals"),
    path("approvals/<int:pk>/approve/", DecideAction.as_view(decision="approve"), name="rewards_approve"),
    path("approvals/<int:pk>/decline/", DecideAction.as_view(decision="decline"), name="rewards_decline"),
    path("catalog/", CatalogAdminPage.as_view(), name="rewards_catalog_admin"),
    path("catalog/new/", ItemFormPage.as_view(), name="rewards_catalog_new"),
    path("catalog/<int:pk>/", ItemFormPage.as_view(), name="rewards_catalog_edit"),
    path("catalog/<int:pk>/deactivate/", ItemDeactivateAction.as_view(), name="rewards_catalog_deactivate"),
    path("catalog/<int:pk>/codes/", CodesPage.as_view(), name="rewards_catalog_codes"),
]
