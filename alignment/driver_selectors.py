"""Driver analysis, the reads: the stored snapshots (alignment/drivers.py computes them).

Pages and the API pass querysets already scoped to the viewer: a store manager reads their own
store's analyses, a regional manager those of their region's stores; the organization-wide
analysis belongs to the organization-level roles.
"""

from __future__ import annotations

from alignment.models import DriverAnalysis

Outcome = DriverAnalysis.Outcome


def latest(queryset, *, location_id: int | None, outcome: str) -> DriverAnalysis | None:
    """The newest snapshot of one scope (None = the organization) and outcome, or None."""
    qs = queryset.filter(outcome=outcome)
    qs = qs.filter(location__isnull=True) if location_id is None else qs.filter(location_id=location_id)
    return qs.select_related("location").order_by("-computed_at", "-period_end", "-pk").first()


def latest_each(queryset):
    """The newest snapshot per (scope, outcome) (PostgreSQL DISTINCT ON), newest first."""
    ids = (
        queryset.order_by("location_id", "outcome", "-computed_at", "-period_end", "-pk")
        .distinct("location_id", "outcome")
        .values("pk")
    )
    return DriverAnalysis.objects.filter(pk__in=ids).select_related("location")


def status(analysis: DriverAnalysis | None) -> str:
    if analysis is None:
        return "missing"
    return (analysis.value_per_point or {}).get("status") or ("ok" if analysis.drivers else "not_enough_data")


def value_rows(analysis: DriverAnalysis) -> list[dict]:
    """Flat rows of the value-per-point section: one per (business outcome, NPS or standard)."""
    rows = []
    for value in (analysis.value_per_point or {}).get("values", []):
        label = Outcome(value["outcome"]).label
        per_nps = value.get("per_nps_point")
        if per_nps:
            rows.append(
                {
                    "outcome": label,
                    "unit": value["unit"],
                    "improvement": "One NPS point",
                    "value": per_nps["value"],
                    "low": per_nps["low"],
                    "high": per_nps["high"],
                    "basis": f"{per_nps['n']} location-periods",
                }
            )
        for item in value.get("per_standard", []):
            rows.append(
                {
                    "outcome": label,
                    "unit": value["unit"],
                    "improvement": f"One point on {item['standard']}",
                    "value": item["value"],
                    "low": item["low"],
                    "high": item["high"],
                    "basis": value.get("basis", ""),
                }
            )
    return rows
