"""Reads that feed pages and charts. Scoped by the caller's membership, never by the caller."""

from django.db.models import Count

from cem.models import Employee, Interaction, Location
from cem.params import id_of
from cem.scoping import scope_queryset


def _scoped(qs, membership):
    return scope_queryset(qs, role=membership.role, membership=membership)


def home_summary(*, membership) -> dict:
    interactions = _scoped(Interaction.objects.all(), membership)
    by_category = dict(interactions.order_by().values_list("category").annotate(n=Count("id")))
    return {
        "locations": _scoped(Location.objects.all(), membership).count(),
        "employees": _scoped(Employee.objects.all(), membership).count(),
        "interactions": sum(by_category.values()),
        "by_category": by_category,
    }


def interactions_for_page(*, membership, params) -> "object":
    qs = _scoped(Interaction.objects.all(), membership).select_related("location", "channel", "touchpoint")
    location = params.get("location")
    if (location_id := id_of(location)) is not None:
        qs = qs.filter(location_id=location_id)
    category = params.get("category")
    if category:
        qs = qs.filter(category=category)
    return qs.order_by("-occurred_at", "-id")
