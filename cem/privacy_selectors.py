"""Reads for the privacy pages and API (cem.privacy holds the writes)."""

from __future__ import annotations

from django.db.models import Q

from cem import privacy
from cem.models import Customer, Employee
from cem.models.privacy import ConsentRecord, PrivacyRequest

SEARCH_LIMIT = 25


def find_subjects(q: str) -> list[dict]:
    """Customers by exact external id, email or phone; employees by external id, email or name."""
    q = " ".join((q or "").split())
    if len(q) < 2:
        return []
    customers = Customer.objects.filter(Q(external_id=q) | Q(email__iexact=q) | Q(phone=q)).order_by("pk")
    employees = Employee.objects.filter(
        Q(external_id=q) | Q(email__iexact=q) | Q(name__icontains=q)
    ).order_by("name", "pk")
    found = [
        {"subject_type": "customer", "id": c.pk, "external_id": c.external_id, "label": c.email or c.phone}
        for c in customers[:SEARCH_LIMIT]
    ]
    found += [
        {"subject_type": "employee", "id": e.pk, "external_id": e.external_id, "label": e.name}
        for e in employees[:SEARCH_LIMIT]
    ]
    return found


def requests_with_subjects(requests: list[PrivacyRequest]) -> list[dict]:
    """Rows for the requests list: each with the subject's current label (two look-ups in all).

    An erased customer is gone and an erased employee is anonymous, so the label never brings a
    forgotten person back.
    """
    customer_ids = {r.subject_id for r in requests if r.subject_type == PrivacyRequest.SubjectType.CUSTOMER}
    employee_ids = {r.subject_id for r in requests if r.subject_type == PrivacyRequest.SubjectType.EMPLOYEE}
    customers = dict(Customer.objects.filter(pk__in=customer_ids).values_list("pk", "external_id"))
    employees = dict(Employee.objects.filter(pk__in=employee_ids).values_list("pk", "name"))
    rows = []
    for r in requests:
        names = customers if r.subject_type == PrivacyRequest.SubjectType.CUSTOMER else employees
        rows.append(
            {"request": r, "subject_label": names.get(r.subject_id, ""), "exists": r.subject_id in names}
        )
    return rows


def requests_page_queryset():
    return PrivacyRequest.objects.select_related("requested_by", "requested_by_api_key").order_by(
        "-created_at", "-id"
    )


def subject_overview(subject_type: str, instance) -> dict:
    """What the organization holds about one person, their consent history and past requests."""
    subject = (
        privacy.customer_subject(instance)
        if subject_type == PrivacyRequest.SubjectType.CUSTOMER
        else privacy.employee_subject(instance)
    )
    consents = []
    if subject_type == PrivacyRequest.SubjectType.CUSTOMER:
        consents = list(
            ConsentRecord.objects.filter(customer=instance)
            .select_related("actor_user", "actor_api_key")
            .order_by("-recorded_at", "-id")[:200]
        )
    return {
        "holdings": privacy.holding_counts(subject),
        "consents": consents,
        "requests": list(
            requests_page_queryset().filter(subject_type=subject_type, subject_id=instance.pk)[:50]
        ),
        "logins": len(subject.user_ids),
    }
