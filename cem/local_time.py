"""Pages in the organization's time zone.

Datetimes are stored in UTC. For a page request with a tenant, the organization's zone is made
Django's current time zone for the request (rendering included), so ``{{ value }}`` and the
``date``/``time`` filters show local time, and a date or time typed into a form is read as local
time. It is deactivated when the response is done, so nothing leaks into the next request served
by the thread. There is no per-person zone: users carry no profile with one.

The API stays in UTC (ISO 8601 with the offset, naive input read as UTC), whoever calls it, so an
integration's figures never depend on an organization's setting. Services that need local days
(quiet hours, due dates, reward periods, the rollup's days) already take the zone from the
organization explicitly, in requests and tasks alike.
"""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

from django.utils import timezone

from cem.middleware import API_PREFIX


@lru_cache(maxsize=512)
def zone_of(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


class OrganizationTimeZoneMiddleware:
    """After TenantMiddleware: the tenant's zone for page requests, UTC for the API."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        if (
            tenant is None
            or getattr(request, "api_key", None) is not None
            or request.path.startswith(API_PREFIX)
        ):
            return self.get_response(request)
        timezone.activate(zone_of(tenant.time_zone))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
