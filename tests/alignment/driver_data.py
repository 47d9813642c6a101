"""Constructed data for the driver-analysis and journey tests: respondents whose NPS depends on
one standard and not another, business metrics that depend on NPS and a standard across
location-months, and rollup rows at touchpoints and segments. Every org A name carries "acme"."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
from django.utils import timezone

from alignment.models import BusinessMetric, Measure, Rollup
from cem.tenancy import tenant_context
from feedback import models as fm
from tests import factories as f


class DriverWorld:
    """Org A: standards A (drives NPS) and B (does not), a survey asking NPS, a rating question
    (0-10) on A and a CSAT question (1-5) on B."""

    def __init__(self, world, *, name="acme drivers"):
        self.world = world
        self.org = world.a.org
        self.std_a = f.StandardFactory(organization=self.org, code="acme-drv-a", title="Acme greeting")
        self.std_b = f.StandardFactory(organization=self.org, code="acme-drv-b", title="Acme tidiness")
        with tenant_context(self.org):
            self.survey = fm.Survey.objects.create(
                organization=self.org, name=f"{name} survey", status=fm.Survey.Status.ACTIVE
            )
            self.version = fm.SurveyVersion.objects.create(
                organization=self.org, survey=self.survey, number=1
            )
            self.q_nps = self._question("nps", "nps", None, text="How likely are you to recommend Acme?")
            self.q_a = self._question(
                "greet", "rating", self.std_a, text="Acme greeted you warmly", smin=0, smax=10
            )
            self.q_b = self._question("tidy", "csat", self.std_b, text="The acme store was tidy")

    def _question(self, key, qtype, standard, *, text, smin=None, smax=None):
        return fm.Question.objects.create(
            organization=self.org,
            version=self.version,
            key=key,
            type=qtype,
            text={"en": text},
            standard=standard,
            scale_min=smin,
            scale_max=smax,
        )

    def respondents(self, n, *, seed=7, location="a-n1", effect_a=0.7, effect_b=0.0, noise=1.0, days_ago=10):
        """``n`` respondents: A rated 0-10, B on CSAT 1-5; NPS = 1 + effect_a x A + effect_b x B + noise."""
        rng = np.random.default_rng(seed)
        a = rng.integers(0, 11, n)
        b = rng.integers(1, 6, n)  # CSAT 1-5
        nps = np.clip(np.rint(1 + effect_a * a + effect_b * b + rng.normal(0, noise, n)), 0, 10).astype(int)
        t = self.world.a
        loc = t.locations[location]
        when = timezone.now() - dt.timedelta(days=days_ago)
        with tenant_context(self.org):
            responses = fm.Response.objects.bulk_create(
                [
                    fm.Response(
                        organization=self.org,
                        survey=self.survey,
                        version=self.version,
                        source="api",
                        submitted_at=when,
                        location=loc,
                        channel=t.channel,
                        touchpoint=t.touchpoint,
                    )
                    for _ in range(n)
                ]
            )
            answers = []
            for r, va, vb, vn in zip(responses, a, b, nps, strict=True):
                for q, value in ((self.q_nps, vn), (self.q_a, va), (self.q_b, vb)):
                    answers.append(
                        fm.Answer(
                            organization=self.org,
                            response=r,
                            question=q,
                            question_key=q.key,
                            question_type=q.type,
                            standard=q.standard,
                            number=Decimal(int(value)),
                            survey=self.survey,
                            submitted_at=when,
                            location=loc,
                            channel=t.channel,
                            touchpoint=t.touchpoint,
                        )
                    )
            fm.Answer.objects.bulk_create(answers)
        return responses


def month_starts(count: int) -> list[dt.date]:
    """The first days of the ``count`` months before the current one (all inside the last year)."""
    today = timezone.now().date()
    year, month = today.year, today.month
    out = []
    for _ in range(count):
        month -= 1
        if month == 0:
            year, month = year - 1, 12
        out.append(dt.date(year, month, 1))
    return sorted(out)


def business_panel(dw: DriverWorld, *, locations=8, months=10, seed=11, sales_per_nps=300.0):
    """Location-months where NPS = 2 x (score on A) - 100 (+ noise) and sales = the store's level
    + the month's level + sales_per_nps x NPS (+ noise): one NPS point is worth ``sales_per_nps``,
    one point on A twice that. Rollup rows (A's 0-100 points, NPS counts) and BusinessMetric rows."""
    rng = np.random.default_rng(seed)
    org = dw.org
    region = dw.world.a.regions["north"]
    locs = [
        f.LocationFactory(
            organization=org, code=f"acme-drv-{i}", name=f"Acme driver store {i}", region=region
        )
        for i in range(locations)
    ]
    starts = month_starts(months)
    rollups, metrics = [], []
    for li, loc in enumerate(locs):
        level = 50_000 + 10_000 * li
        for mi, start in enumerate(starts):
            score = float(rng.uniform(45, 95))
            nps = float(np.clip(2 * score - 100 + rng.normal(0, 4), -100, 100))
            n_nps = 100
            top = round((nps + 100) / 2)  # promoters; the rest detractors: (top - bottom) = nps
            bottom = n_nps - top
            n_pts = 40
            rollups.append(
                Rollup(
                    organization=org,
                    day=start,
                    location=loc,
                    standard=dw.std_a,
                    measure=Measure.STD_FEEDBACK,
                    n=n_pts,
                    total=Decimal(str(round(score * n_pts, 4))),
                    sumsq=Decimal(str(round(score * score * n_pts, 4))),
                )
            )
            rollups.append(
                Rollup(
                    organization=org,
                    day=start,
                    location=loc,
                    measure=Measure.NPS,
                    n=n_nps,
                    top=top,
                    bottom=bottom,
                )
            )
            actual_nps = (top - bottom) * 100 / n_nps
            sales = level + 1_000 * mi + sales_per_nps * actual_nps + rng.normal(0, 300)
            metrics.append(
                BusinessMetric(
                    organization=org,
                    location=loc,
                    period="month",
                    period_start=start,
                    kind=BusinessMetric.Kind.SALES,
                    value=Decimal(str(round(sales, 2))),
                )
            )
    with tenant_context(org):
        Rollup.objects.bulk_create(rollups)
        BusinessMetric.objects.bulk_create(metrics)
    return locs


def rollup_points(org, *, touchpoint, measure, values, standard=None, segment=None, location=None, day=None):
    """One rollup row holding ``values`` (their n, sum and sum of squares) at a touchpoint."""
    values = [Decimal(str(v)) for v in values]
    with tenant_context(org):
        return Rollup.objects.create(
            organization=org,
            day=day or timezone.now().date() - dt.timedelta(days=3),
            location=location,
            standard=standard,
            touchpoint=touchpoint,
            segment=segment,
            measure=measure,
            n=len(values),
            total=sum(values, Decimal(0)),
            sumsq=sum((v * v for v in values), Decimal(0)),
        )
