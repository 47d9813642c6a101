"""What shoppers are owed: one Payable per submitted job, payable once approved, paid in batches.

    submit → pending (fee + the reimbursement the shopper claims, at most the job's cap)
    approve → payable (amounts fixed; a reviewer may adjust the reimbursement, still within the cap)
    reject / cancel → cancelled (nothing is paid)
    export → a PaymentBatch of every payable item not yet exported (CSV for the payment run)
    mark paid → every item of the batch is paid (idempotent: a second call changes nothing)

A later rescore of the audit (a dispute) does not change what the shopper is owed: amounts are
read from the job at approval and never recomputed from the score.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from audits.models import Assignment, Audit, Payable, PaymentBatch
from cem.local_time import zone_of
from cem.models import Organization
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from feedback.exports import escape_cell

P = Payable.Status
CSV_COLUMNS = (
    "batch",
    "shopper",
    "email",
    "phone",
    "job",
    "program",
    "location",
    "visit_date",
    "fee",
    "reimbursement",
    "total",
    "currency",
    "time_zone",  # the visit dates' zone: the organization's, whether downloaded from a page or the API
)


def currency_of(organization_id: int) -> str:
    """The organization's payment currency (``settings["currency"]``, e.g. "EUR"); blank if unset."""
    settings = Organization.objects.filter(pk=organization_id).values_list("settings", flat=True).first()
    return str((settings or {}).get("currency", ""))[:3].upper()


def reimbursement_amount(value, *, cap: Decimal) -> Decimal | None:
    """A claimed or adjusted reimbursement: blank means unchanged; 0 ≤ amount ≤ the job's cap."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError({"reimbursement": "Enter an amount such as 12.50."}) from None
    if not amount.is_finite() or amount < 0:
        raise ValidationError({"reimbursement": "Enter an amount of 0 or more."})
    if amount != amount.quantize(Decimal("0.01")):
        raise ValidationError({"reimbursement": "At most two decimal places."})
    if amount > cap:
        raise ValidationError({"reimbursement": f"At most {cap} can be reimbursed for this job."})
    return amount


def _payable_for(org_id: int, assignment: Assignment) -> Payable | None:
    return Payable.objects.select_for_update().filter(assignment=assignment).first()


# Called by audits.jobs inside its own transaction, with the job row already locked.


def payable_on_submit(*, org_id: int, actor: Actor, assignment: Assignment) -> Payable:
    payable = _payable_for(org_id, assignment)
    if payable is None:
        payable = Payable(organization_id=org_id, assignment=assignment, currency=currency_of(org_id))
    payable.shopper_id = assignment.shopper_id
    payable.fee = assignment.fee
    payable.reimbursement = assignment.reimbursement
    payable.status = P.PENDING
    payable.save()
    return payable


def payable_on_approve(*, org_id: int, actor: Actor, assignment: Assignment, now=None) -> Payable:
    payable = _payable_for(org_id, assignment)
    if payable is None:  # submitted before payables existed
        payable = Payable(organization_id=org_id, assignment=assignment, currency=currency_of(org_id))
    payable.shopper_id = assignment.shopper_id
    payable.fee = assignment.fee
    payable.reimbursement = assignment.reimbursement
    payable.status = P.PAYABLE
    payable.approved_at = now or timezone.now()
    payable.save()
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="payable.approve",
        instance=payable,
        changes={
            "assignment": assignment.pk,
            "fee": str(payable.fee),
            "reimbursement": str(payable.reimbursement),
        },
    )
    return payable


def payable_on_cancel(*, org_id: int, actor: Actor, assignment: Assignment) -> Payable | None:
    payable = _payable_for(org_id, assignment)
    if payable is None or payable.status == P.CANCELLED:
        return payable
    if payable.status == P.PAID:  # jobs cannot reach reject/cancel after approval; never unpay
        raise ValidationError({"status": "This job has already been paid."})
    payable.status = P.CANCELLED
    payable.approved_at = None
    payable.save(update_fields=["status", "approved_at"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="payable.cancel",
        instance=payable,
        changes={"assignment": assignment.pk},
    )
    return payable


# --- payment runs ----------------------------------------------------------------------------------


def unexported():
    """Approved items not yet in a payment batch (call inside the tenant)."""
    return Payable.objects.filter(status=P.PAYABLE, batch__isnull=True)


@transaction.atomic
def payment_batch_create(*, organization, actor: Actor) -> PaymentBatch:
    """Put every payable item that is not in a batch yet into a new one (the export for payment).

    The items are locked, so two exports at once never put one item in two batches.
    """
    org_id = _check_tenant(organization)
    ids = list(unexported().select_for_update().order_by("pk").values_list("pk", flat=True))
    if not ids:
        raise ValidationError({"items": "Nothing is payable: no approved job is waiting for payment."})
    # The reference carries the id; until it is known a unique placeholder keeps two exports at
    # once (on disjoint items) from colliding on the per-organization unique reference.
    batch = PaymentBatch.objects.create(
        organization_id=org_id, reference=f"new-{uuid.uuid4().hex[:16]}", created_by_id=actor.user_id
    )
    # The organization's day, whether the export was asked for on a page or through the API.
    today = timezone.now().astimezone(zone_of(Organization.objects.get(pk=org_id).time_zone)).date()
    batch.reference = f"PAY-{today:%Y%m%d}-{batch.pk}"
    Payable.objects.filter(pk__in=ids).update(batch=batch)
    totals = Payable.objects.filter(batch=batch).aggregate(
        n=Count("pk"), fee=Sum("fee"), reimbursement=Sum("reimbursement")
    )
    batch.item_count = totals["n"]
    batch.total = (totals["fee"] or 0) + (totals["reimbursement"] or 0)
    batch.save(update_fields=["reference", "item_count", "total"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="payment_batch.create",
        instance=batch,
        changes={"reference": batch.reference, "items": batch.item_count, "total": str(batch.total)},
    )
    return batch


@transaction.atomic
def payment_batch_mark_paid(*, organization, actor: Actor, batch: PaymentBatch, now=None) -> PaymentBatch:
    """Every item of the batch is paid. Marking a paid batch again changes nothing."""
    org_id = _check_tenant(organization)
    batch = PaymentBatch.objects.select_for_update().get(pk=batch.pk)
    if batch.paid_at is not None:
        return batch
    now = now or timezone.now()
    batch.paid_at = now
    batch.paid_by_id = actor.user_id
    batch.save(update_fields=["paid_at", "paid_by"])
    paid = Payable.objects.filter(batch=batch, status=P.PAYABLE).update(status=P.PAID, paid_at=now)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="payment_batch.paid",
        instance=batch,
        changes={"reference": batch.reference, "items": paid},
    )
    return batch


# --- the CSV -----------------------------------------------------------------------------------------


def batch_items(batch: PaymentBatch):
    return (
        Payable.objects.filter(batch=batch)
        .select_related("shopper", "assignment__location", "assignment__program")
        .order_by("shopper__name", "pk")
    )


def _visit_dates(items: list[Payable]) -> dict[int, object]:
    rows = Audit.objects.filter(assignment_id__in=[p.assignment_id for p in items]).values_list(
        "assignment_id", "visited_at"
    )
    return {assignment_id: visited for assignment_id, visited in rows if visited is not None}


def csv_rows(batch: PaymentBatch, items: Iterable[Payable] | None = None) -> Iterator[list]:
    items = list(batch_items(batch) if items is None else items)
    visits = _visit_dates(items)
    zone_name = Organization.objects.get(pk=batch.organization_id).time_zone or "UTC"
    zone = zone_of(zone_name)
    for p in items:
        visited = visits.get(p.assignment_id)
        yield [
            escape_cell(batch.reference),
            escape_cell(p.shopper.name),
            escape_cell(p.shopper.email),
            escape_cell(p.shopper.phone),
            p.assignment_id,
            escape_cell(p.assignment.program.name),
            escape_cell(p.assignment.location.name),
            visited.astimezone(zone).date().isoformat() if visited else "",
            f"{p.fee:.2f}",
            f"{p.reimbursement:.2f}",
            f"{p.total:.2f}",
            escape_cell(p.currency),
            zone_name,
        ]


def batch_csv(batch: PaymentBatch) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_rows(batch))
    return out.getvalue()


__all__ = [
    "CSV_COLUMNS",
    "batch_csv",
    "currency_of",
    "payable_on_approve",
    "payable_on_cancel",
    "payable_on_submit",
    "payment_batch_create",
    "payment_batch_mark_paid",
    "reimbursement_amount",
    "unexported",
]
