"""Org A rows behind the incentives routes (``/api/v1/...``, ``/rewards/...``), one section per area."""

from __future__ import annotations


def _bonus(world) -> None:
    """A closed bonus period with KPIs, a participant and a result (bonus periods, KPIs, participants)."""
    from tests.incentives.bonus_data import sweep_rows

    sweep_rows(world)


def populate(world) -> None:
    _bonus(world)
