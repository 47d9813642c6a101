"""The employee rewards portal (/rewards/): balance, statement, catalogue, redeeming, my redemptions.

Everything is the signed-in employee's own: the wallet and statement of their employee record,
the catalogue items offered to them (location, role), their redemptions (other ids are 404s).
No business rules here: redeeming calls incentives.redemptions, as the API does. The redeem form
carries a one-time token rendered with the page; it keys the hold in the ledger, so a double
click or a resubmitted form returns the first redemption instead of spending twice.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Sum
from django.http import FileResponse, Http404
from django.shortcuts import redirect
from django.urls import path
from django.views.generic import DetailView, ListView, TemplateView, View
from django.views.generic.detail import SingleObjectMixin

from cem.pages import TenantPageMixin
from cem.permissions import role_can
from incentives import catalog, ledger, redemptions
from incentives.models import CatalogItem, Redemption

STATEMENT_PAGE = 50


def _messages_of(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [msg for msgs in exc.message_dict.values() for msg in msgs]
    return list(exc.messages)


class RewardsPage(TenantPageMixin):
    required_action = "catalog.view"

    @property
    def employee(self):
        return self.request.membership.employee

    def can(self, action: str) -> bool:
        return role_can(self.request.membership.role, action)

    def my_redemptions(self):
        employee_id = self.request.membership.employee_id
        return (
            self.scoped(Redemption.objects.filter(employee_id=employee_id))
            .select_related("item", "gift_card_code")
            .order_by("-created_at", "-pk")
        )


class PortalHome(RewardsPage, TemplateView):
    template_name = "incentives/portal/home.html"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        employee = self.employee
        items = list(
            catalog.with_code_counts(CatalogItem.objects.filter(catalog.visible_q(employee))).order_by(
                "cost", "name", "pk"
            )
            if employee is not None
            else []
        )
        for item in items:
            # An automatic gift card with an empty pool would only fail and refund: say so instead.
            item.sold_out = item.stock == 0 or (
                item.kind == CatalogItem.Kind.GIFT_CARD and item.auto_approve and not item.codes_available
            )
        pending = self.my_redemptions().filter(status=Redemption.Status.PENDING) if employee else None
        statement = ledger.statement(org=self.organization, employee=employee) if employee else None
        ctx.update(
            employee=employee,
            statement=statement,
            recent=list(statement.entries[:10]) if statement else [],
            items=items,
            token=uuid.uuid4().hex,
            redemptions=list(self.my_redemptions()[:5]) if employee else [],
            on_hold=(pending.aggregate(total=Sum("points"))["total"] or 0) if pending is not None else 0,
            can_redeem=self.can("redemptions.add") and employee is not None,
        )
        return ctx


class StatementPage(RewardsPage, TemplateView):
    """Every movement of the wallet with its reason, newest first."""

    template_name = "incentives/portal/statement.html"
    required_action = "points.view"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        employee = self.employee
        statement = ledger.statement(org=self.organization, employee=employee) if employee else None
        page = None
        if statement is not None:
            page = Paginator(statement.entries, STATEMENT_PAGE).get_page(self.request.GET.get("page"))
        ctx.update(employee=employee, statement=statement, page=page)
        return ctx


class ItemImage(RewardsPage, SingleObjectMixin, View):
    """An item's image, for people who may see the item."""

    model = CatalogItem

    def page_queryset(self):
        if self.can("catalog.change"):
            return CatalogItem.objects.all()
        return CatalogItem.objects.filter(catalog.visible_q(self.employee))

    def get(self, request, pk):
        file = catalog.image_file(self.get_object())
        if file is None:
            raise Http404("No image.")
        response = FileResponse(
            file.open("rb"), content_type="image/png" if file.suffix == ".png" else "image/jpeg"
        )
        response["Cache-Control"] = "private, max-age=3600"
        response["X-Content-Type-Options"] = "nosniff"
        return response


class RedeemAction(RewardsPage, SingleObjectMixin, View):
    model = CatalogItem
    required_action = "redemptions.add"
    http_method_names = ["post"]

    def page_queryset(self):
        return CatalogItem.objects.filter(catalog.visible_q(self.employee))

    def post(self, request, pk):
        item = self.get_object()
        token = request.POST.get("token", "").strip()[:100] or None
        try:
            redemption = redemptions.redeem(
                org=self.organization, actor=self.actor, employee=self.employee, item=item, key=token
            )
        except redemptions.RedemptionRefused as exc:
            messages.error(request, exc.message)
            return redirect("rewards_portal")
        except ValidationError as exc:
            for m in _messages_of(exc):
                messages.error(request, m)
            return redirect("rewards_portal")
        if redemption.status == Redemption.Status.FAILED:
            messages.error(request, redemption.note)
        elif redemption.status == Redemption.Status.PENDING:
            messages.success(request, f"{item.name}: {redemption.points} points on hold, awaiting approval.")
        else:
            messages.success(request, f"{item.name} redeemed for {redemption.points} points.")
        return redirect("rewards_redemption", pk=redemption.pk)


class MyRedemptionsPage(RewardsPage, ListView):
    template_name = "incentives/portal/redemptions.html"
    required_action = "redemptions.view"
    paginate_by = 50
    context_object_name = "redemptions"

    def page_queryset(self):
        return (
            Redemption.objects.filter(employee_id=self.request.membership.employee_id)
            .select_related("item", "gift_card_code")
            .order_by("-created_at", "-pk")
        )


class RedemptionPage(RewardsPage, DetailView):
    """One of my redemptions, with the gift-card code once fulfilled."""

    template_name = "incentives/portal/redemption.html"
    required_action = "redemptions.view"
    model = Redemption
    context_object_name = "redemption"

    def page_queryset(self):
        return Redemption.objects.filter(employee_id=self.request.membership.employee_id).select_related(
            "item", "gift_card_code"
        )

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["code"] = redemptions.revealed_code(self.object)
        return ctx


urlpatterns = [
    path("", PortalHome.as_view(), name="rewards_portal"),
    path("statement/", StatementPage.as_view(), name="rewards_statement"),
    path("catalog/<int:pk>/image/", ItemImage.as_view(), name="rewards_item_image"),
    path("catalog/<int:pk>/redeem/", RedeemAction.as_view(), name="rewards_redeem"),
    path("redemptions/", MyRedemptionsPage.as_view(), name="rewards_redemptions"),
    path("redemptions/<int:pk>/", RedemptionPage.as_view(), name="rewards_redemption"),
]
