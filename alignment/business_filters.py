"""Filters of the business-metric and CRM-transaction lists, shared by the API and the page."""

import django_filters as f

from alignment.models import BusinessMetric, CustomerTransaction, PeriodKind


def _metric_filters() -> dict:
    # "from" is a Python keyword, so the filter set is assembled from a dict.
    return {
        "location": f.NumberFilter(field_name="location_id"),
        "location_code": f.CharFilter(field_name="location__code"),
        "region": f.NumberFilter(field_name="location__region_id"),
        "kind": f.ChoiceFilter(choices=BusinessMetric.Kind.choices),
        "period": f.ChoiceFilter(choices=PeriodKind.choices),
        "from": f.DateFilter(
            field_name="period_start", lookup_expr="gte", label="Periods starting on or after"
        ),
        "to": f.DateFilter(
            field_name="period_start", lookup_expr="lte", label="Periods starting on or before"
        ),
        "Meta": type("Meta", (), {"model": BusinessMetric, "fields": []}),
    }


BusinessMetricFilter = type("BusinessMetricFilter", (f.FilterSet,), _metric_filters())


def _transaction_filters() -> dict:
    return {
        "customer": f.CharFilter(field_name="customer__external_id", label="Customer external id"),
        "location": f.NumberFilter(field_name="location_id"),
        "location_code": f.CharFilter(field_name="location__code"),
        "external_id": f.CharFilter(),
        "from": f.DateFilter(field_name="occurred_on", lookup_expr="gte"),
        "to": f.DateFilter(field_name="occurred_on", lookup_expr="lte"),
        "Meta": type("Meta", (), {"model": CustomerTransaction, "fields": []}),
    }


CustomerTransactionFilter = type("CustomerTransactionFilter", (f.FilterSet,), _transaction_filters())
