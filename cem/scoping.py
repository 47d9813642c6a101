"""Hierarchy scope: how far down Region → Location → Employee a member's reads reach.

Models declare ``SCOPE_PATHS``: for each scope level, the ORM path from the model to the
region / location / employee id that must match the member's. ``None`` marks reference data
every member sees (standards, channels). A level missing from the mapping sees nothing.
Both the API base viewset and the page mixin call :func:`scope_queryset`, so the two can
never disagree.
"""

from cem.permissions import ROLE_SCOPE

_MEMBERSHIP_ATTR = {
    "region": "region_id",
    "location": "location_id",
    "employee": "employee_id",
    "shopper": "user_id",  # shoppers see what belongs to their own shopper profile
}


def scope_level(role: str | None) -> str:
    return ROLE_SCOPE.get(role, "none") if role else "none"


def scope_of(role: str | None, membership=None) -> tuple[str, object]:
    """(level, the membership's id at that level): what decides how far the member's reads reach."""
    level = scope_level(role)
    attr = _MEMBERSHIP_ATTR.get(level, "")
    return level, getattr(membership, attr, None) if membership is not None and attr else None


def scope_queryset(qs, *, role: str | None, membership=None):
    level = scope_level(role)
    if level == "organization":
        return qs
    paths = getattr(qs.model, "SCOPE_PATHS", {})
    if paths is None:
        return qs
    path = paths.get(level)
    value = getattr(membership, _MEMBERSHIP_ATTR.get(level, ""), None) if membership is not None else None
    if path is None or value is None:
        return qs.none()
    return qs.filter(**{path: value})
