"""Org A rows behind the store dashboard and the rollup API (``/alignment/stores/…``,
``/api/v1/rollups/``, ``/api/v1/alignment/dashboard/stores/…``): survey answers and a published
audit at a-n1, then the rollup rebuilt from raw data."""

from __future__ import annotations


def populate(world) -> None:
    from alignment import rollups
    from cem.tenancy import tenant_context
    from tests.learning.gap_data import GapWorld

    gw = GapWorld(world, name="acme sweep dashboards")
    gw.answers([9, 3], qtype="nps")
    gw.answers([4], qtype="csat")
    gw.audits([80])
    with tenant_context(world.a.org):
        rollups.rebuild(world.a.org, replace=True)
