"""The one base viewset every API route inherits (after PostHog's routing mixin).

It scopes every queryset to the caller's tenant (TenantManager) and hierarchy scope
(cem.scoping); other tenants' ids therefore 404. Subclasses choose *what* to list with
``queryset`` or :meth:`safely_get_queryset`; they cannot override ``get_queryset`` or swap
the authentication and permission classes — ``__init_subclass__`` refuses at import time.
"""

from django.db import models, transaction
from rest_framework import viewsets
from rest_framework.permissions import SAFE_METHODS

from cem.api.authentication import ApiKeyAuthentication, TenantSessionAuthentication
from cem.api.permissions import RolePermission, caller_role
from cem.db.replica import replica_reads
from cem.principals import Actor
from cem.scoping import scope_queryset

_FINAL = ("get_queryset", "check_permissions", "get_authenticators", "get_permissions")


class TenantViewSetMixin:
    authentication_classes = [ApiKeyAuthentication, TenantSessionAuthentication]
    permission_classes = [RolePermission]
    resource: str = ""
    api_app: str = "core"
    # Dashboard and chart endpoints set this: their GETs read from the replica alias (cem/db/replica.py).
    reads_from_replica: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in _FINAL:
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} may not override {name}; use safely_get_queryset")
        if (
            cls.__dict__.get("permission_classes") is not None
            and RolePermission not in cls.permission_classes
        ):
            raise TypeError(f"{cls.__name__} must keep RolePermission")
        if "authentication_classes" in cls.__dict__:
            raise TypeError(f"{cls.__name__} may not change authentication_classes")

    def dispatch(self, request, *args, **kwargs):
        if self.reads_from_replica and request.method in ("GET", "HEAD"):
            with replica_reads():
                return super().dispatch(request, *args, **kwargs)
        if request.method not in SAFE_METHODS:
            # A write request is one transaction: a connection lost anywhere before the response
            # is ready (PostgreSQL restarted, failover) rolls all of it back and the caller gets a
            # clean 503 to retry, never a 503 for a write that half or wholly committed. An
            # outage the handler turns into a 503 (Redis gone after the write) rolls it back too:
            # DRF's own set_rollback() does that only under ATOMIC_REQUESTS, which is off here.
            with transaction.atomic():
                response = super().dispatch(request, *args, **kwargs)
                if response.status_code >= 500:
                    transaction.set_rollback(True)
                return response
        return super().dispatch(request, *args, **kwargs)

    # --- what subclasses may customise ---------------------------------------------------------
    def safely_get_queryset(self, queryset):
        return queryset

    # --- final ---------------------------------------------------------------------------------
    def get_queryset(self):
        model = self.queryset.model
        if getattr(self, "swagger_fake_view", False):
            return models.QuerySet(model=model).none()
        queryset = self.safely_get_queryset(self.queryset.all())
        return scope_queryset(
            queryset, role=caller_role(self.request), membership=self.request._request.membership
        )

    @property
    def organization(self):
        return self.request._request.tenant

    @property
    def actor(self) -> Actor:
        return Actor.from_request(self.request._request)


class TenantReadOnlyViewSet(TenantViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass


class TenantModelViewSet(TenantViewSetMixin, viewsets.ModelViewSet):
    """CRUD where every write goes through the generic record services (audit log + event)."""

    http_method_names = ["get", "post", "patch", "put", "delete", "head", "options"]

    def perform_create(self, serializer):
        from cem.services import record_create

        serializer.instance = record_create(
            organization=self.organization,
            actor=self.actor,
            model=self.queryset.model,
            data=serializer.validated_data,
        )

    def perform_update(self, serializer):
        from cem.services import record_update

        serializer.instance = record_update(
            organization=self.organization,
            actor=self.actor,
            instance=serializer.instance,
            data=serializer.validated_data,
        )

    def perform_destroy(self, instance):
        from cem.services import record_delete

        record_delete(organization=self.organization, actor=self.actor, instance=instance)


class RenderStoredMixin:
    """Answer a create or update with the object as stored, read back through the scoped queryset.

    For viewsets whose services write nested rows (versions, legs, triggers) that the validated
    data does not show; the response then matches a later GET exactly.
    """

    def _stored(self, pk):
        return self.get_queryset().get(pk=pk)

    def create(self, request, *args, **kwargs):
        resp = super().create(request, *args, **kwargs)
        resp.data = self.get_serializer(self._stored(resp.data["id"])).data
        return resp

    def update(self, request, *args, **kwargs):
        resp = super().update(request, *args, **kwargs)
        resp.data = self.get_serializer(self._stored(resp.data["id"])).data
        return resp
