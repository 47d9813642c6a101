from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST
from django.views.generic import ListView, TemplateView

from cem import fast_reads, selectors
from cem.middleware import SESSION_ORG_KEY
from cem.models import Location
from cem.pages import TenantPageMixin


class HomeView(TenantPageMixin, TemplateView):
    template_name = "cem/home.html"
    required_action = "organization.view"
    reads_from_replica = True

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
    # The session's principal for replayed reads names the previous organization (cem.fast_reads).
    fast_reads.forget_session(request.session.session_key)
    request.session[SESSION_ORG_KEY] = wanted
    return redirect("home")
