"""Base for every server-rendered page: login, a tenant, a permitted action, scoped querysets."""

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import Http404

from cem.db.replica import replica_reads
from cem.permissions import role_can
from cem.principals import Actor
from cem.scoping import scope_queryset


class TenantPageMixin(LoginRequiredMixin):
    """Pages name ``required_action`` ("resource.verb"); the mixin enforces it before dispatch.

    ``scoped(qs)`` applies the same hierarchy scope as the API, and ``get_object`` of a
    generic detail view built on it 404s for ids outside the tenant or the scope.
    """

    required_action: str = ""
    # Dashboards and charts set this: their GETs read from the replica alias (cem/db/replica.py).
    reads_from_replica: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("dispatch", "get_queryset"):
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} may not override {name}; use page_queryset")

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if getattr(request, "tenant", None) is None:
            raise Http404("You are not a member of any organization.")
        if not self.required_action or not role_can(request.membership.role, self.required_action):
            raise PermissionDenied
        if self.reads_from_replica and request.method in ("GET", "HEAD"):
            with replica_reads():
                return super().dispatch(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)

    @property
    def organization(self):
        return self.request.tenant

    @property
    def actor(self) -> Actor:
        return Actor.from_request(self.request)

    def scoped(self, queryset):
        return scope_queryset(queryset, role=self.request.membership.role, membership=self.request.membership)

    def page_queryset(self):
        """What the page lists, before scoping; evaluated per request, inside the tenant."""
        return self.model.objects.all()

    def get_queryset(self):
        return self.scoped(self.page_queryset())
