"""The shopper workforce in the browser: applications, shopper profiles, payments.

Writes call audits.workforce and audits.payments (as the API does). Everything read goes through
the hierarchy scope, so the same pages show a shopper only their own profile, jobs and payments,
and reviewers' ratings only to organization-wide roles (ShopperRating has no shopper scope).
"""

from __future__ import annotations

import datetime as dt

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone
from django.views.generic import DetailView, ListView, View
from django.views.generic.detail import SingleObjectMixin

from audits import jobs, payments, workforce
from audits.models import (
    Assignment,
    Certification,
    LocationBlock,
    Payable,
    PaymentBatch,
    Shopper,
    ShopperRating,
)
from cem.pages import TenantPageMixin
from cem.permissions import role_can
from cem.scoping import scope_level

DETAIL_ROWS = 50  # jobs, ratings and payments shown on a shopper's page (newest first)


def _messages_of(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [msg for msgs in exc.message_dict.values() for msg in msgs]
    return list(exc.messages)


class ShoppersPage(TenantPageMixin, ListView):
    """Applications and shoppers, filtered by status (``?status=applied``) and name or e-mail."""

    template_name = "audits/workforce/shoppers.html"
    required_action = "shoppers.view"
    model = Shopper
    paginate_by = 50

    def page_queryset(self):
        qs = Shopper.objects.all().order_by("-created_at", "-pk")
        status = self.request.GET.get("status", "")
        if status in Shopper.Status.values:
            qs = qs.filter(status=status)
        q = self.request.GET.get("q", "").strip()
        if q:
            qs = qs.filter(Q(name__icontains=q) | Q(email__icontains=q))
        return qs

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        counts = dict(
            self.scoped(Shopper.objects.all()).values_list("status").annotate(n=Count("pk")).order_by()
        )
        ctx.update(
            statuses=[(value, label, counts.get(value, 0)) for value, label in Shopper.Status.choices],
            total=sum(counts.values()),
            selected_status=self.request.GET.get("status", ""),
            q=self.request.GET.get("q", ""),
        )
        return ctx


class ShopperPage(TenantPageMixin, DetailView):
    """An application or a shopper: profile, decision, certifications, blocks and lockouts,
    ratings, jobs and payments."""

    template_name = "audits/workforce/shopper.html"
    required_action = "shoppers.view"
    model = Shopper
    context_object_name = "shopper"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        shopper, role, now = self.object, self.request.membership.role, timezone.now()
        certifications = list(
            self.scoped(Certification.objects.filter(shopper=shopper))
            .select_related("program")
            .order_by("program__name", "-expires_at")
        )
        blocks = list(
            self.scoped(LocationBlock.objects.filter(shopper=shopper))
            .select_related("location")
            .order_by("pk")
        )
        visited = (
            self.scoped(Assignment.objects.filter(shopper=shopper, status__in=jobs.VISITED_STATUSES))
            .annotate(at=Coalesce("submitted_at", "assigned_at", "window_start"))
            .select_related("program", "location")
            .order_by("-at")
        )
        lockouts = []
        for job in visited[:DETAIL_ROWS]:
            until = job.at + dt.timedelta(days=job.program.lockout_days)
            if until > now:
                lockouts.append({"location": job.location, "program": job.program, "until": until})
        ratings = list(
            self.scoped(ShopperRating.objects.filter(shopper=shopper))
            .select_related("assignment__location", "rated_by")
            .order_by("-created_at", "-pk")[:DETAIL_ROWS]
        )
        recent_jobs = list(
            self.scoped(Assignment.objects.filter(shopper=shopper))
            .select_related("program", "location", "scenario")
            .order_by("-window_start", "-pk")[:DETAIL_ROWS]
        )
        may_pay = role_can(role, "payments.view")
        owed = (
            list(
                self.scoped(Payable.objects.filter(shopper=shopper))
                .select_related("assignment__location", "batch")
                .order_by("-created_at", "-pk")[:DETAIL_ROWS]
            )
            if may_pay
            else []
        )
        ctx.update(
            certifications=[{"c": c, "expired": c.expires_at <= now} for c in certifications],
            blocks=blocks,
            lockouts=lockouts,
            ratings=ratings,
            jobs=recent_jobs,
            payables=owed,
            may_pay=may_pay,
            # Reviewers' ratings are for organization-wide roles (the model has no narrower scope).
            show_ratings=scope_level(role) == "organization"
            or scope_level(role) in ShopperRating.SCOPE_PATHS,
            may_decide=role_can(role, "shoppers.change"),
            can_approve=shopper.status
            in (Shopper.Status.APPLIED, Shopper.Status.SUSPENDED, Shopper.Status.REJECTED),
            can_reject=shopper.status == Shopper.Status.APPLIED,
            reason_max=workforce.REASON_MAX,
        )
        return ctx


class ShopperDecisionView(TenantPageMixin, SingleObjectMixin, View):
    """POST approve (reason optional) or reject (reason required) through audits.workforce."""

    required_action = "shoppers.change"
    model = Shopper
    http_method_names = ["post"]
    decision = ""

    def post(self, request, pk):
        shopper = self.get_object()
        common = {"organization": self.organization, "actor": self.actor, "shopper": shopper}
        reason = request.POST.get("reason", "")
        try:
            if self.decision == "approve":
                workforce.shopper_approve(**common, reason=reason)
                done = f"{shopper.name} is approved and can sign in to take jobs."
            else:
                workforce.shopper_reject(**common, reason=reason)
                done = f"{shopper.name}'s application is rejected."
        except ValidationError as exc:
            for message in _messages_of(exc):
                messages.error(request, message)
        else:
            messages.success(request, done)
        return redirect("audit_shopper", pk=shopper.pk)


class PaymentsPage(TenantPageMixin, ListView):
    """Approved items waiting for export, jobs pending approval, and the payment batches."""

    template_name = "audits/workforce/payments.html"
    required_action = "payments.view"
    model = Payable
    paginate_by = 100

    def page_queryset(self):
        # Admins work on what awaits export; a shopper follows all of their own items.
        qs = payments.unexported() if self._may_pay() else Payable.objects.all()
        return qs.select_related("shopper", "assignment__location", "assignment__program", "batch").order_by(
            "-approved_at", "-pk"
        )

    def _may_pay(self) -> bool:
        return role_can(self.request.membership.role, "payments.change")

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        waiting = self.scoped(payments.unexported()).aggregate(
            n=Count("pk"), fee=Sum("fee"), reimbursement=Sum("reimbursement")
        )
        pending = self.scoped(Payable.objects.filter(status=Payable.Status.PENDING)).aggregate(
            n=Count("pk"), fee=Sum("fee"), reimbursement=Sum("reimbursement")
        )
        ctx.update(
            waiting_n=waiting["n"],
            waiting_total=(waiting["fee"] or 0) + (waiting["reimbursement"] or 0),
            pending_n=pending["n"],
            pending_total=(pending["fee"] or 0) + (pending["reimbursement"] or 0),
            batches=list(self.scoped(PaymentBatch.objects.all()).order_by("-created_at", "-pk")[:50]),
            may_pay=self._may_pay(),
            currency=payments.currency_of(self.organization.pk),
        )
        return ctx


class PaymentExportView(TenantPageMixin, View):
    """POST: every approved item not yet exported goes into a new batch; its CSV downloads next."""

    required_action = "payments.change"
    http_method_names = ["post"]

    def post(self, request):
        try:
            batch = payments.payment_batch_create(organization=self.organization, actor=self.actor)
        except ValidationError as exc:
            for message in _messages_of(exc):
                messages.error(request, message)
            return redirect("audit_payments")
        messages.success(
            request,
            f"Batch {batch.reference}: {batch.item_count} items, {batch.total} in total. Download its CSV.",
        )
        return redirect("audit_payments")


class PaymentBatchCsvView(TenantPageMixin, SingleObjectMixin, View):
    required_action = "payments.view"
    model = PaymentBatch
    http_method_names = ["get"]

    def get(self, request, pk):
        batch = self.get_object()
        response = HttpResponse(payments.batch_csv(batch), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{batch.reference}.csv"'
        response["Cache-Control"] = "private, no-store"
        return response


class PaymentBatchPaidView(TenantPageMixin, SingleObjectMixin, View):
    """POST: the batch was paid (a second click changes nothing)."""

    required_action = "payments.change"
    model = PaymentBatch
    http_method_names = ["post"]

    def post(self, request, pk):
        batch = self.get_object()
        already = batch.paid_at is not None
        batch = payments.payment_batch_mark_paid(
            organization=self.organization, actor=self.actor, batch=batch
        )
        when = timezone.localtime(batch.paid_at).strftime("%Y-%m-%d %H:%M")
        if already:
            messages.info(request, f"Batch {batch.reference} was already marked paid on {when}.")
        else:
            messages.success(request, f"Batch {batch.reference} is marked paid.")
        return redirect("audit_payments")


urlpatterns = [
    path("", ShoppersPage.as_view(), name="audit_shoppers"),
    path("<int:pk>/", ShopperPage.as_view(), name="audit_shopper"),
    path("<int:pk>/approve/", ShopperDecisionView.as_view(decision="approve"), name="audit_shopper_approve"),
    path("<int:pk>/reject/", ShopperDecisionView.as_view(decision="reject"), name="audit_shopper_reject"),
    path("payments/", PaymentsPage.as_view(), name="audit_payments"),
    path("payments/export/", PaymentExportView.as_view(), name="audit_payments_export"),
    path("payments/batches/<int:pk>/csv/", PaymentBatchCsvView.as_view(), name="audit_payment_batch_csv"),
    path("payments/batches/<int:pk>/paid/", PaymentBatchPaidView.as_view(), name="audit_payment_batch_paid"),
]
