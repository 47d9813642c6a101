"""Constructed business data for the business-data tests: metric rows, CRM transactions and
survey answers on a standard by known customers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from cem import models as m
from cem.tenancy import tenant_context
from feedback import models as fm
from tests import factories as f

METRICS = "/api/v1/business-metrics/"
TRANSACTIONS = "/api/v1/crm-transactions/"
SEGMENT_RULES = "/api/v1/segment-rules/"
COMPARISONS = "/api/v1/customer-comparisons/"


def metric_row(location="a-n1", kind="sales", value="1000.00", period_start="2026-01-01", **over) -> dict:
    row = {
        "location": location,
        "period": "month",
        "period_start": period_start,
        "kind": kind,
        "value": value,
    }
    row.update(over)
    return row


def tx_row(external_id, customer="acme-crm-1", amount="50.00", occurred_on=None, **over) -> dict:
    row = {
        "external_id": external_id,
        "customer": customer,
        "occurred_on": occurred_on or (timezone.now().date() - dt.timedelta(days=3)).isoformat(),
        "amount": amount,
        "location": "a-n1",
    }
    row.update(over)
    return row


class Survey:
    """A rating question (1-5) on a standard, to write answers with a customer."""

    def __init__(
        self, t, standard: m.Standard, *, name="acme greeting survey", qtype="rating", low=1, high=5
    ):
        self.t = t
        self.standard = standard
        with tenant_context(t.org):
            self.survey = fm.Survey.objects.create(
                organization=t.org, name=name, status=fm.Survey.Status.ACTIVE
            )
            self.version = fm.SurveyVersion.objects.create(organization=t.org, survey=self.survey, number=1)
            self.question = fm.Question.objects.create(
                organization=t.org,
                version=self.version,
                key=f"q-{standard.pk}-{qtype}",
                type=qtype,
                text={"en": "How were you greeted?"},
                scale_min=low if qtype == "rating" else None,
                scale_max=high if qtype == "rating" else None,
                standard=standard,
            )

    def answer(self, customer, value, *, store="a-n1", when=None, standard=None):
        t = self.t
        when = when or timezone.now() - dt.timedelta(days=2)
        location = t.locations[store]
        with tenant_context(t.org):
            response = fm.Response.objects.create(
                organization=t.org,
                survey=self.survey,
                version=self.version,
                source="api",
                submitted_at=when,
                location=location,
                customer=customer,
                segment_id=customer.segment_id if customer else None,
            )
            fm.Answer.objects.create(
                organization=t.org,
                response=response,
                question=self.question,
                question_key=self.question.key,
                question_type=self.question.type,
                standard=standard or self.standard,
                number=Decimal(str(value)),
                survey=self.survey,
                submitted_at=when,
                location=location,
            )
        return response


def customer(t, ref, **kwargs) -> m.Customer:
    return f.CustomerFactory(organization=t.org, external_id=ref, **kwargs)


def purchase(t, cust, amount, *, days_ago=3, store="a-n1", ref=None):
    from alignment.models import CustomerTransaction

    with tenant_context(t.org):
        return CustomerTransaction.objects.create(
            organization=t.org,
            external_id=ref or f"acme-tx-{cust.external_id}-{amount}-{days_ago}",
            customer=cust,
            location=t.locations[store] if store else None,
            occurred_on=timezone.now().date() - dt.timedelta(days=days_ago),
            amount=Decimal(str(amount)),
        )


def metric(t, store, kind, value, *, period="month", start=dt.date(2026, 1, 1)):
    from alignment.models import BusinessMetric

    with tenant_context(t.org):
        return BusinessMetric.objects.create(
            organization=t.org,
            location=t.locations[store],
            period=period,
            period_start=start,
            kind=kind,
            value=Decimal(str(value)),
            source="test",
        )
