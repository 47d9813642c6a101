"""Org A rows behind the journey-map and driver-analysis routes (``/api/v1/journey-maps/``,
``/api/v1/journey-steps/``, ``/api/v1/driver-analyses/``, ``/alignment/journeys/…``,
``/alignment/drivers/``); every name carries "acme"."""

from __future__ import annotations


def populate(world) -> None:
    import datetime as dt

    from django.utils import timezone

    from alignment import journeys
    from alignment.models import DriverAnalysis
    from cem.principals import Actor
    from cem.tenancy import tenant_context
    from tests import factories as f

    org = world.a.org
    expectation = f.ExpectationFactory(organization=org, name="acme quick checkout", importance=5)
    segment = f.SegmentFactory(organization=org, name="acme journey segment")
    with tenant_context(org):
        journeys.journey_create(
            organization=org,
            actor=Actor.system(),
            data={
                "name": "acme sweep journey",
                "segment": segment,
                "description": "acme journey",
                "steps": [
                    {"touchpoint": world.a.touchpoint, "expectation": expectation, "note": "acme step"}
                ],
            },
        )
        today = timezone.now().date()
        DriverAnalysis.objects.create(
            organization=org,
            location=world.a.locations["a-n1"],
            outcome="nps",
            period_start=today - dt.timedelta(days=179),
            period_end=today,
            method="acme sweep method",
            n=120,
            r_squared=0.4,
            drivers=[
                {
                    "rank": 1,
                    "standard_id": world.a.standard.pk,
                    "standard": "acme standard",
                    "code": "acme",
                    "effect": 0.5,
                    "low": 0.3,
                    "high": 0.7,
                    "importance": 100.0,
                    "importance_low": 100.0,
                    "importance_high": 100.0,
                    "per_point": 1.2,
                    "per_point_low": 0.8,
                    "per_point_high": 1.6,
                    "per_point_unit": "NPS points per point on the standard",
                    "n": 120,
                    "mean": 71.5,
                    "items": [],
                }
            ],
            value_per_point={"status": "ok", "message": "", "notes": ["acme"], "caveats": [], "values": []},
            computed_at=timezone.now(),
        )
