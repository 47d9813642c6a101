"""Business data pages (/alignment/business/): imported business metrics (filter by location,
kind, period, dates), the CRM transactions, CSV uploads of both with a per-row error report,
segment rules (editor, apply) and the experience x CRM comparison ("Customers whose average
purchase was under 100: Greeting 2.0/5 (n=14) vs 4.3/5 (n=52) for the rest").

Writes call alignment.business, as the API does; reads are scoped like the API (a store manager
sees their store's metrics, transactions and answers). Viewing needs ``business_data.view``,
uploading ``business_data.add``, editing and applying rules ``business_data.change``.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.shortcuts import redirect, render
from django.urls import path
from django.views import View
from django.views.generic import DetailView, ListView, TemplateView
from django.views.generic.detail import SingleObjectMixin

from alignment import business
from alignment.business_filters import BusinessMetricFilter, CustomerTransactionFilter
from alignment.customer_selectors import (
    BASES,
    ComparisonQueryError,
    customer_comparison,
    parse_comparison_query,
)
from alignment.models import BusinessMetric, CustomerTransaction, PeriodKind
from cem.models import Location, Segment, Standard
from cem.pages import TenantPageMixin
from cem.permissions import role_can
from feedback.selectors import Caller

# Shown on the import report; the full list is in the API's answer.
MAX_ERRORS_SHOWN = 500
# An upload larger than this cannot hold 10,000 sensible rows; refused before it is read.
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
BLANK_RULE_ROWS = 3
FIELD_SUGGESTIONS = [
    "total_spend",
    "total_spend_30d",
    "total_spend_90d",
    "total_spend_365d",
    "transactions_count",
    "transactions_count_90d",
    "average_purchase",
    "average_purchase_90d",
    "last_purchase_amount",
    "first_purchase_on",
    "last_purchase_on",
    "days_since_last_purchase",
    "locale",
    "consent_email",
    "consent_sms",
    "opted_out",
]


class _BusinessPage(TenantPageMixin):
    required_action = "business_data.view"

    def may(self, verb: str) -> bool:
        return role_can(self.request.membership.role, f"business_data.{verb}")

    def base_context(self) -> dict:
        return {
            "may_add": self.may("add"),
            "may_change": self.may("change"),
            "max_rows": settings.BULK_INGEST_MAX_ROWS,
        }


def _filtered(page, queryset, filterset_class):
    """The scoped queryset narrowed by the GET filters, and the filter's errors by parameter."""
    filterset = filterset_class(page.request.GET, queryset=page.scoped(queryset))
    if not filterset.is_valid():
        return queryset.none(), {name: " ".join(errs) for name, errs in filterset.errors.items()}
    return filterset.qs, {}


class BusinessMetricsPage(_BusinessPage, ListView):
    template_name = "alignment/business/metrics.html"
    model = BusinessMetric
    paginate_by = 50

    def page_queryset(self):
        return BusinessMetric.objects.select_related("location").order_by(
            "-period_start", "location__code", "kind", "period"
        )

    def get(self, request, *args, **kwargs):
        self.object_list, self.filter_errors = _filtered(self, self.page_queryset(), BusinessMetricFilter)
        context = self.get_context_data()
        return self.render_to_response(context, status=400 if self.filter_errors else 200)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            self.base_context(),
            title="Business data",
            tab="metrics",
            filter_errors=self.filter_errors,
            selected=self.request.GET,
            locations=self.scoped(Location.objects.order_by("code")).values("id", "code", "name"),
            kinds=BusinessMetric.Kind.choices,
            periods=PeriodKind.choices,
        )
        return ctx


class CustomerTransactionsPage(_BusinessPage, ListView):
    template_name = "alignment/business/transactions.html"
    model = CustomerTransaction
    paginate_by = 50

    def page_queryset(self):
        return CustomerTransaction.objects.select_related("customer", "location").order_by(
            "-occurred_on", "-id"
        )

    def get(self, request, *args, **kwargs):
        self.object_list, self.filter_errors = _filtered(
            self, self.page_queryset(), CustomerTransactionFilter
        )
        context = self.get_context_data()
        return self.render_to_response(context, status=400 if self.filter_errors else 200)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            self.base_context(),
            title="CRM transactions",
            tab="transactions",
            filter_errors=self.filter_errors,
            selected=self.request.GET,
            locations=self.scoped(Location.objects.order_by("code")).values("id", "code", "name"),
        )
        return ctx


class _ImportView(_BusinessPage, View):
    """POST a CSV file; answer with the import report (counts and the rows in error)."""

    required_action = "business_data.add"
    http_method_names = ["post"]
    what = ""

    def run(self, rows) -> tuple[list, int | None]:
        raise NotImplementedError

    def read(self, data: bytes) -> list:
        raise NotImplementedError

    def post(self, request):
        upload = request.FILES.get("file")
        ctx = {**self.base_context(), "title": f"Import {self.what}", "what": self.what, "tab": self.tab}
        problem = None
        if upload is None:
            problem = "Choose a CSV file to upload."
        elif upload.size > MAX_UPLOAD_BYTES:
            problem = f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB."
        else:
            try:
                rows = self.read(upload.read())
            except ValidationError as exc:
                problem = " ".join(exc.messages)
            else:
                if len(rows) > settings.BULK_INGEST_MAX_ROWS:
                    limit = settings.BULK_INGEST_MAX_ROWS
                    problem = f"At most {limit:,} rows per file; this one has {len(rows):,}."
                elif not rows:
                    problem = "The file has no data rows under its header."
        if problem:
            return render(
                request, "alignment/business/import_result.html", {**ctx, "problem": problem}, status=400
            )
        results, customers_created = self.run(rows)
        errors = [
            {"row": r.row, "line": r.row + 2, "field": name, "message": " ".join(msgs), "key": r.key}
            for r in results
            if r.errors
            for name, msgs in r.errors.items()
        ]
        ctx.update(
            summary=business.summary_of(results),
            rows=len(rows),
            customers_created=customers_created,
            errors=errors[:MAX_ERRORS_SHOWN],
            errors_hidden=max(0, len(errors) - MAX_ERRORS_SHOWN),
        )
        return render(request, "alignment/business/import_result.html", ctx)


class MetricsImportView(_ImportView):
    what = "business metrics"
    tab = "metrics"

    def read(self, data):
        return business.metric_rows_from_csv(data)

    def run(self, rows):
        results = business.business_metrics_import(
            organization=self.organization, actor=self.actor, rows=rows, source="csv"
        )
        return results, None


class TransactionsImportView(_ImportView):
    what = "CRM transactions"
    tab = "transactions"

    def read(self, data):
        return business.transaction_rows_from_csv(data)

    def run(self, rows):
        return business.customer_transactions_import(
            organization=self.organization, actor=self.actor, rows=rows, source="csv"
        )


def _rule_text(rule) -> str:
    if not rule:
        return ""
    parts = []
    for cond in rule if isinstance(rule, list) else []:
        if isinstance(cond, dict):
            value = cond.get("value")
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            parts.append(f"{cond.get('field')} {cond.get('op')} {shown}")
    return " and ".join(parts)


class SegmentsPage(_BusinessPage, ListView):
    template_name = "alignment/business/segments.html"
    model = Segment

    def page_queryset(self):
        return Segment.objects.annotate(members=Count("customers")).order_by("pk")

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        precedence = 0
        rows = []
        for segment in ctx["object_list"]:
            if segment.rule:
                precedence += 1
            rows.append(
                {
                    "segment": segment,
                    "precedence": precedence if segment.rule else None,
                    "rule_text": _rule_text(segment.rule),
                }
            )
        ctx.update(self.base_context(), title="Segment rules", tab="segments", rows=rows)
        return ctx


def _rule_from_post(post) -> list[dict]:
    """The editor's rows (field_i, op_i, value_i) as conditions; wholly blank rows are dropped."""
    rule = []
    indexes = sorted({int(k.split("_", 1)[1]) for k in post if k.startswith("field_") and k[6:].isdigit()})
    for i in indexes:
        name = post.get(f"field_{i}", "").strip()
        op = post.get(f"op_{i}", "").strip()
        value = post.get(f"value_{i}", "").strip()
        if not name and not value:
            continue
        rule.append({"field": name, "op": op, "value": value})
    return rule


class SegmentRulePage(_BusinessPage, DetailView):
    """One segment's rule: an editor of {field, op, value} rows, the customers it matches now."""

    template_name = "alignment/business/segment.html"
    model = Segment
    context_object_name = "segment"

    def get_context_data(self, *, rule=None, errors=None, **kwargs):
        ctx = super().get_context_data(**kwargs)
        segment = self.object
        rule = segment.rule if rule is None else rule
        rows = [
            {"field": c.get("field", ""), "op": c.get("op", ""), "value": c.get("value", "")}
            for c in (rule if isinstance(rule, list) else [])
            if isinstance(c, dict)
        ]
        errors = errors or {}
        for i, row in enumerate(rows):
            if isinstance(row["value"], list):
                row["value"] = ", ".join(map(str, row["value"]))
            row["errors"] = [
                f"{key.rsplit('.', 1)[-1] if '.' in key else 'condition'}: {' '.join(msgs)}"
                for key, msgs in errors.items()
                if key == f"rule[{i}]" or key.startswith(f"rule[{i}].")
            ]
        rows += [{"field": "", "op": "", "value": "", "errors": []} for _ in range(BLANK_RULE_ROWS)]
        matches = rule_error = None
        if segment.rule and not errors:
            try:
                matches = business.rule_matches(organization=self.organization, rule=segment.rule).count()
            except ValidationError as exc:
                rule_error = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        ctx.update(
            self.base_context(),
            title=f"Segment {segment.name}",
            tab="segments",
            rows=rows,
            ops=business.RULE_OPS,
            fields=business.RULE_FIELDS,
            suggestions=FIELD_SUGGESTIONS,
            general_errors=[" ".join(v) for k, v in errors.items() if k == "rule"],
            matches=matches,
            rule_error=rule_error,
            members=segment.customers.count(),
        )
        return ctx

    def post(self, request, pk):
        if not self.may("change"):
            raise PermissionDenied
        self.object = self.get_object()
        rule = _rule_from_post(request.POST)
        try:
            business.segment_rule_update(
                organization=self.organization, actor=self.actor, segment=self.object, rule=rule
            )
        except ValidationError as exc:
            ctx = self.get_context_data(rule=rule, errors=exc.message_dict)
            return self.render_to_response(ctx, status=400)
        messages.success(request, f"Rule of {self.object.name} saved. Apply it to update its members.")
        return redirect("alignment_business_segment", pk=self.object.pk)


class SegmentApplyView(_BusinessPage, SingleObjectMixin, View):
    required_action = "business_data.change"
    http_method_names = ["post"]
    model = Segment

    def post(self, request, pk):
        segment = self.get_object()
        try:
            outcome = business.segment_assign(
                organization=self.organization, actor=self.actor, segment=segment
            )
        except ValidationError as exc:
            for key, msgs in exc.message_dict.items():
                messages.error(request, f"{segment.name}: {key}: {' '.join(msgs)}")
        else:
            messages.success(
                request,
                f"{segment.name}: {outcome['members']} customers now "
                f"({outcome['added']} added, {outcome['removed']} removed).",
            )
        return redirect("alignment_business_segments")


class ComparisonPage(_BusinessPage, TemplateView):
    template_name = "alignment/business/compare.html"

    def get(self, request, *args, **kwargs):
        ctx = {
            **self.base_context(),
            "title": "Customers by CRM data",
            "tab": "compare",
            "bases": BASES.items(),
            "segments": Segment.objects.order_by("name").values("id", "name"),
            "standards": Standard.objects.order_by("code").values("id", "code", "title"),
            "selected": request.GET,
        }
        try:
            query = parse_comparison_query(request.GET, self.organization)
        except ComparisonQueryError as exc:
            ctx["error"] = exc
            return self.render_to_response(ctx, status=400)
        caller = Caller.of_membership(request.membership)
        ctx.update(
            query=query,
            comparison=customer_comparison(organization=self.organization, caller=caller, query=query),
        )
        return self.render_to_response(ctx)


urlpatterns = [
    path("", BusinessMetricsPage.as_view(), name="alignment_business"),
    path("metrics/import/", MetricsImportView.as_view(), name="alignment_business_metrics_import"),
    path("transactions/", CustomerTransactionsPage.as_view(), name="alignment_business_transactions"),
    path(
        "transactions/import/",
        TransactionsImportView.as_view(),
        name="alignment_business_transactions_import",
    ),
    path("segments/", SegmentsPage.as_view(), name="alignment_business_segments"),
    path("segments/<int:pk>/", SegmentRulePage.as_view(), name="alignment_business_segment"),
    path("segments/<int:pk>/apply/", SegmentApplyView.as_view(), name="alignment_business_segment_apply"),
    path("compare/", ComparisonPage.as_view(), name="alignment_business_compare"),
]
