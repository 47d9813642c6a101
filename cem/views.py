from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST
from django.views.generic import ListView, TemplateView

from cem import selectors
from cem.middleware import SESSION_ORG_KEY
from cem.models import ApiKey, AuditLog, Employee, Interaction, Location, Membership, Standard
from cem.pages import TenantPageMixin


class HomeView(TenantPageMixin, TemplateView):
    template_name = "cem/home.html"
    required_action = "organization.view"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["summary"] = selectors.home_summary(membership=self.request.membership)
        return ctx


class InteractionListView(TenantPageMixin, ListView):
    template_name = "cem/interactions.html"
    required_action = "interactions.view"
    paginate_by = 50

    def page_queryset(self):
        return selectors.interactions_for_page(membership=self.request.membership, params=self.request.GET)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["locations"] = self.scoped(Location.objects.all()).only("id", "name")
        ctx["selected_location"] = self.request.GET.get("location", "")
        ctx["total"] = ctx["paginator"].count if ctx.get("paginator") else len(ctx["object_list"])
        return ctx


class LocationListView(TenantPageMixin, ListView):
    template_name = "cem/locations.html"
    required_action = "hierarchy.view"
    model = Location

    def page_queryset(self):
        return Location.objects.select_related("region")

    paginate_by = 100


class EmployeeListView(TenantPageMixin, ListView):
    template_name = "cem/employees.html"
    required_action = "hierarchy.view"
    model = Employee

    def page_queryset(self):
        return Employee.objects.select_related("current_location", "current_team")

    paginate_by = 100


class StandardListView(TenantPageMixin, ListView):
    template_name = "cem/standards.html"
    required_action = "standards.view"
    model = Standard

    def page_queryset(self):
        return Standard.objects.select_related("skill_category", "expectation", "brand_message")


class MemberListView(TenantPageMixin, ListView):
    template_name = "cem/members.html"
    required_action = "memberships.view"
    model = Membership

    def page_queryset(self):
        return Membership.objects.select_related("user", "region", "location", "employee")


class ApiKeyListView(TenantPageMixin, ListView):
    template_name = "cem/api_keys.html"
    required_action = "apikeys.view"
    model = ApiKey

    def page_queryset(self):
        return ApiKey.objects.all()


class AuditLogListView(TenantPageMixin, ListView):
    template_name = "cem/audit_log.html"
    required_action = "auditlog.view"
    model = AuditLog

    def page_queryset(self):
        return AuditLog.objects.select_related("actor_user", "actor_api_key")

    paginate_by = 100


@login_required
@require_POST
def organization_switch(request):
    """Make another of the user's organizations the current one."""
    try:
        wanted = int(request.POST.get("organization", ""))
    except ValueError:
        raise Http404 from None
    if wanted not in {m.organization_id for m in request.memberships}:
        raise Http404
    request.session[SESSION_ORG_KEY] = wanted
    return redirect("home")


__all__ = ["Interaction"]
