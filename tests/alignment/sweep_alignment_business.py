"""Org A rows behind the business-data routes (``/api/v1/business-metrics/``, ``crm-transactions``,
``segment-rules``, ``customer-comparisons``, ``/alignment/business/...``)."""

from __future__ import annotations


def populate(world) -> None:
    """A metric (source "acme sweep"), a CRM transaction of a new customer, a rule segment, and a
    rated answer on the standard by that customer, so every list and the comparison have rows."""
    from alignment import business
    from cem.models import Segment
    from cem.principals import Actor
    from cem.tenancy import tenant_context
    from tests.alignment.business_data import Survey, metric_row, tx_row

    org = world.a.org
    with tenant_context(org):
        business.business_metrics_import(
            organization=org,
            actor=Actor.system(),
            rows=[metric_row("a-n1", "sales", "1234", source="acme sweep")],
        )
        business.customer_transactions_import(
            organization=org,
            actor=Actor.system(),
            rows=[tx_row("acme-sweep-tx", customer="acme-sweep-customer", amount="42")],
        )
        segment = Segment.objects.create(
            organization=org,
            name="acme sweep spenders",
            rule=[{"field": "total_spend", "op": "gte", "value": 10}],
        )
        business.segment_assign(organization=org, actor=Actor.system(), segment=segment)
        from cem.models import Customer

        buyer = Customer.objects.get(external_id="acme-sweep-customer")
    Survey(world.a, world.a.standard, name="acme sweep greeting").answer(buyer, 4)
