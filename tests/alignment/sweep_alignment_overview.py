"""Org A rows behind the executive / region / drill-down / agent / trainer dashboards and the
``/api/v1/alignment/rankings/`` and ``/drilldown/`` routes: figures on every level, a team with
a member, and an overall alignment score, so the sweep meets real ids and real names."""

from __future__ import annotations


def populate(world) -> None:
    from django.utils import timezone

    from alignment.models import AlignmentScore
    from cem.tenancy import tenant_context
    from tests.alignment.overview_data import DAY, employee_at, nps, put, team_at

    org, t = world.a.org, world.a
    person = employee_at(world, "a-n1", "Sweep agent acme")
    team_at(world, "a-n1", "acme sweep overview team", person)
    nps(org, t.locations["a-n1"], employee=person, n=40, promoters=30, detractors=2)
    put(org, "monitoring", location=t.locations["a-n1"], employee=person, n=2, total=160, sumsq=12800)
    put(org, "lesson_std", location=t.locations["a-n1"], employee=person, standard=t.standard, n=1, top=1)
    with tenant_context(org):
        AlignmentScore.objects.create(
            organization=org,
            scope="location",
            scope_id=t.locations["a-n1"].pk,
            location=t.locations["a-n1"],
            region=t.regions["north"],
            period="month",
            period_start=DAY.replace(day=1),
            link="overall",
            value=70,
            low=60,
            high=80,
            n=40,
            inputs={"note": "acme sweep"},
            computed_at=timezone.now(),
        )
