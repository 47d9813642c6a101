"""A store dashboard's panel rows, cached until the rollup under them changes.

A panel's rows are a function of the rollup rows of its store (the comparison: of the whole
organization), the viewer's scope (an employee sees only their own rows) and the resolved filter
state (relative periods by their dates). Every change to a location's rollup rows raises that
location's ``RollupGeneration`` in the same transaction (alignment.rollup_derived), so rows
cached under (panel, store, viewer scope, filters, generation) are served until the first change
to them commits, and the first view after it computes them again: a new response shows at once,
and repeated views of an unchanged store cost a cache read and two small queries.

The API's panel endpoint goes one step further for repeated views (cem.fast_reads): its JSON
response may be replayed in front of Django while the store's (for the comparison: the
organization's) replay version and the tenant's are unchanged — :func:`replay_watch` reads them
before the view reads the database, :func:`replay_offer` hands the response over.

Which panels: those computed from the rollup alone (``CACHED``: key figures, trends, audit
scores, the standards heatmap and matrix, the comparison, whose generation is the sum of the
organization's). The standards' codes and titles are not part of that: they are read afresh on
every view (one query). The training, points, categories, scores and cases panels read staff,
names, settings and other tables and are always computed.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django.conf import settings
from django.core.cache import cache
from django.db.models import OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from alignment import selectors as sel
from alignment.filters import local_today
from alignment.models import RollupGeneration
from alignment.rollup_derived import generation, location_version, organization_version
from cem import fast_reads
from cem.fast_reads import tenant_version
from cem.scoping import scope_of
from cem.tenancy import current_tenant_id
from feedback.selectors import org_tz

STORE, ORGANIZATION = "store", "organization"
CACHED = {
    "kpis": STORE,
    "nps": STORE,
    "audit": STORE,
    "heatmap": STORE,
    "matrix": STORE,
    "comparison": ORGANIZATION,
}
NAMED = {"heatmap", "matrix"}  # rows carrying standard codes and titles, renamed on every view
# A generation only grows, so an entry is never served stale; the timeout only frees the memory of
# views nobody repeats.
TIMEOUT = 3600


def generations() -> dict:
    """Annotations of a Location query that read both generations with the store itself (the API
    view: a round trip less). Built per request: the tenant's filter is part of the subqueries."""
    mine = RollupGeneration.objects.filter(location_id=OuterRef("pk")).values("generation")[:1]
    everyone = RollupGeneration.objects.order_by().values("organization_id").annotate(total=Sum("generation"))
    return {
        "store_generation": Coalesce(Subquery(mine), 0),
        "organization_generation": Coalesce(Subquery(everyone.values("total")[:1]), 0),
    }


def _current(location, spans_stores: bool) -> int:
    annotated = getattr(location, "organization_generation" if spans_stores else "store_generation", None)
    if annotated is not None:
        return annotated
    return generation(organization=True) if spans_stores else generation(location.pk)


def _viewer(caller: sel.Caller) -> str:
    """How far the viewer's reads reach (cem.scoping): the level and the membership's id for it."""
    level, value = scope_of(caller.role, caller.membership)
    return f"{level}={value}"


def key(panel: str, location, caller: sel.Caller, filters, generation_: int) -> str:
    f = filters
    return ":".join(
        [
            "alignment:panel",
            str(current_tenant_id()),
            panel,
            f"{location.pk}@{location.region_id}",
            _viewer(caller),
            str(f.start),
            str(f.end),
            f.grain,
            urlencode(sorted(f.dimension_values.items())),
            str(generation_),
        ]
    )


def cacheable(spec, view) -> bool:
    subject, location = view.subject, getattr(view, "location", None)
    return (
        spec.key in CACHED
        and location is not None
        and subject == sel.Subject(location=location.pk)  # the store itself, not a person or team in it
    )


def rows(spec, view) -> list:
    """``spec.rows(view)``, from the cache when the panel's rollup has not changed since."""
    if not cacheable(spec, view):
        return spec.rows(view)
    location = view.location
    current = _current(location, CACHED[spec.key] == ORGANIZATION)
    entry = key(spec.key, location, view.caller, view.filters, current)
    found = cache.get(entry)
    if found is None:
        found = spec.rows(view)
        cache.set(entry, found, TIMEOUT)
    elif spec.key in NAMED:
        sel.rename_standards(found)
    return found


# --- replays of the API's panel responses (cem.fast_reads) -----------------------------------------

PANEL_ROUTE = r"/api/v1/alignment/dashboard/stores/\d+/(?:" + "|".join(sorted(CACHED)) + ")/"


def replay_watch(organization_id: int, location_id: int | None, panel: str) -> dict | None:
    """The replay versions a panel's response depends on, read before the view reads the database:
    a change committing while it computes then leaves the kept response outdated, never current."""
    if panel not in CACHED or location_id is None:
        return None
    names = [tenant_version(organization_id), location_version(organization_id, location_id)]
    if CACHED[panel] == ORGANIZATION:
        names.append(organization_version(organization_id))
    return fast_reads.versions(names)


def replay_offer(request, view, seen: dict | None) -> None:
    """Offer the panel's response for replay to viewers of the same role and scope, until the next
    change, for at most a minute, and never past the organization's midnight (relative periods move)."""
    if seen is None or not _replica_caught_up(view):
        return
    organization = view.organization
    tomorrow = local_today(organization) + dt.timedelta(days=1)
    midnight = dt.datetime.combine(tomorrow, dt.time(0), tzinfo=org_tz(organization))
    caller = view.caller
    fast_reads.offer(
        request, viewer=f"{caller.role}:{_viewer(caller)}", seen=seen, expires_at=midnight.timestamp()
    )


def _replica_caught_up(view) -> bool:
    """With a streaming replica, the rows may predate the change whose version was read: keep them
    only when the replica's generation is the primary's."""
    if not settings.DATABASE_REPLICA_URL:
        return True
    location = view.location
    spans_stores = CACHED.get(view.panel_key) == ORGANIZATION
    primary = generation(location.pk, organization=spans_stores, using="default")
    return primary == _current(location, spans_stores)
