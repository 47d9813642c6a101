"""Audit results: what store managers, regional managers and agents see once audits publish."""

from django.urls import path
from django.views.generic import DetailView, ListView

from audits import selectors
from audits.models import Audit
from cem.models import Location
from cem.pages import TenantPageMixin


class AuditResultsPage(TenantPageMixin, ListView):
    template_name = "audits/results.html"
    required_action = "audits.view"
    model = Audit
    paginate_by = 50

    def page_queryset(self):
        return selectors.published_audits(membership=self.request.membership, params=self.request.GET)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        membership = self.request.membership
        ctx.update(
            average=selectors.average_score(membership=membership),
            standards=selectors.standard_summary(membership=membership),
            locations=self.scoped(Location.objects.all()).only("id", "name"),
            selected_location=self.request.GET.get("location", ""),
        )
        return ctx


class AuditResultPage(TenantPageMixin, DetailView):
    template_name = "audits/result.html"
    required_action = "audits.view"
    model = Audit

    def page_queryset(self):
        return (
            Audit.objects.filter(published_at__isnull=False)
            .select_related("location", "employee", "version__form")
            .prefetch_related("answers__item", "standard_scores__standard", "score_changes")
        )


urlpatterns = [
    path("", AuditResultsPage.as_view(), name="audit_results"),
    path("<int:pk>/", AuditResultPage.as_view(), name="audit_result"),
]
