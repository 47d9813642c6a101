"""Org A rows behind the alignment score routes (``/api/v1/alignment/scores/``,
``/api/v1/alignment/settings/``, ``/alignment/scores/…``): a promised standard with customer
feedback at a store, its scores computed, and the organization's settings."""

from __future__ import annotations

import datetime as dt


def populate(world) -> None:
    from alignment import scores
    from alignment.models import Rollup
    from alignment.score_settings import settings_for
    from cem.tenancy import tenant_context
    from tests import factories as f

    org = world.a.org
    loc, emp = world.a.locations["a-n1"], world.a.employees["a-n1"]
    message = f.BrandMessageFactory(organization=org, title="acme sweep promise")
    std = f.StandardFactory(
        organization=org, code="acme-sweep-scored", title="acme sweep greeting", brand_message=message
    )
    day = dt.date(2025, 3, 12)
    with tenant_context(org):
        settings_for(org)
        Rollup.objects.create(
            organization=org,
            day=day,
            location=loc,
            employee=emp,
            standard=std,
            measure="std_feedback",
            n=2,
            total=150,
            sumsq=11300,
        )
        scores.recompute_touched(org, {(day, loc.pk, emp.pk)})
