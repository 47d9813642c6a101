"""Constructed rollup rows for the executive / region / drill-down / agent / trainer dashboards.

Rows are written straight into the rollup (what the handlers would have left), so each test
states exactly the figures the dashboards must show.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from alignment.models import Rollup
from cem import models as m
from cem.tenancy import tenant_context
from feedback.selectors import Caller
from tests import factories as f

DAY = dt.date.today() - dt.timedelta(days=3)


def put(
    org,
    measure,
    *,
    location=None,
    employee=None,
    standard=None,
    day=DAY,
    n=1,
    total=0,
    sumsq=None,
    top=0,
    bottom=0,
    **dims,
):
    total = Decimal(str(total))
    with tenant_context(org):
        return Rollup.objects.create(
            organization=org,
            day=day,
            location=location,
            employee=employee,
            standard=standard,
            measure=measure,
            n=n,
            total=total,
            sumsq=Decimal(str(sumsq)) if sumsq is not None else total * total / max(n, 1),
            top=top,
            bottom=bottom,
            **dims,
        )


def nps(org, location, *, n, promoters, detractors, employee=None, **kw):
    """n NPS answers: promoters score 10, detractors 0, the rest 8."""
    passives = n - promoters - detractors
    total = 10 * promoters + 8 * passives
    sumsq = 100 * promoters + 64 * passives
    return put(
        org,
        "nps",
        location=location,
        employee=employee,
        n=n,
        total=total,
        sumsq=sumsq,
        top=promoters,
        bottom=detractors,
        **kw,
    )


def caller_of(user, org) -> Caller:
    with tenant_context(org):
        membership = m.Membership.objects.select_related("region", "location", "employee").get(user=user)
    return Caller.of_membership(membership)


def team_at(world, store: str, name: str, *members) -> m.Team:
    org = world.a.org
    team = f.TeamFactory(organization=org, location=world.a.locations[store], name=name)
    with tenant_context(org):
        m.Employee.objects.filter(pk__in=[e.pk for e in members]).update(current_team=team)
    return team


def employee_at(world, store: str, name: str, **kw) -> m.Employee:
    return f.EmployeeFactory(
        organization=world.a.org,
        name=name,
        external_id=f"acme-{name.lower().replace(' ', '-')}",
        current_location=world.a.locations[store],
        **kw,
    )
