"""Business data writes: business-metric and CRM-transaction imports, and rule-based segments.

**Imports** follow the interactions / responses bulk shape (``cem.ingest``): a JSON list or CSV
rows, at most ``settings.BULK_INGEST_MAX_ROWS`` (10,000) per call, every row validated in Python
against lookup maps built with one query per reference kind, one result per row naming the row
(0-based) and its fields at fault, and the good rows written set-based in one statement inside
one transaction — a bad row never drops a good one, and nothing is half-written.

- ``business_metrics_import``: one figure per location x period (day/week/month/quarter) x
  ``period_start`` x kind. The key makes the import an upsert: re-sending a row stores nothing
  new (``unchanged``), a changed value replaces the stored one (``updated``). ``period_start``
  must open its period (a month on the 1st, a quarter on 1 Jan/Apr/Jul/Oct, a week on a Monday),
  so the same month cannot be stored twice under two dates.
- ``customer_transactions_import``: purchases from a CRM, idempotent on ``external_id``; a
  corrected amount, date, customer or location updates the stored row. Customers are named by
  their external id and, as a CRM import would, **created when unknown** (no contact data, no
  consent: they receive no survey until someone records consent).

Each import writes one audit-log row with its counts and emits ``BusinessMetricsImported`` /
``CustomerTransactionsImported`` (ids in chunks of 1,000) when something was stored or changed.

**Segment rules.** ``Segment.rule`` is a list of ``{field, op, value}`` conditions that must all
hold. The fields (``RULE_FIELDS``) are CRM figures per customer — ``total_spend`` (alias
``lifetime_value``), ``total_spend_<N>d``, ``transactions_count``, ``transactions_count_<N>d``,
``average_purchase``, ``average_purchase_<N>d``, ``last_purchase_amount``, ``first_purchase_on``,
``last_purchase_on``, ``days_since_last_purchase`` — and customer fields (``locale``,
``consent_email``, ``consent_sms``, ``opted_out``). ``<N>d`` is the N days ending today in the
organization's time zone (1 <= N <= 3650). Ops: ``lt lte gt gte eq ne in``. A customer with no
purchase has a total and a count of 0; the other purchase figures are unknown for them and no
condition on them holds (``ne`` included).

**One segment per customer.** ``segment_assign`` recomputes one rule segment: every customer who
matches it, or is in it now, gets the *first* rule segment they match in **precedence order** —
the order the segments were created in (lowest id first) — or none. Segments without a rule are
managed by hand (or by the CRM through the customers API) and rules never move a customer out of
one. Running it again changes nothing (idempotent).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import (
    Avg,
    BigIntegerField,
    Case,
    Count,
    DecimalField,
    Max,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
    When,
)
from django.db.models import Value as V
from django.db.models.functions import Coalesce
from django.utils import timezone

from alignment.models import BusinessMetric, CustomerTransaction, PeriodKind
from cem.events import emit
from cem.ingest import TooManyRows, _customers_upsert, clean_text, ids_by_external_id
from cem.models import Customer, Location, Segment
from cem.params import UNSTORABLE_MESSAGE, unstorable_path
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write

__all__ = [
    "ImportResult",
    "TooManyRows",
    "business_metrics_import",
    "customer_transactions_import",
    "metric_rows_from_csv",
    "rule_matches",
    "rule_validate",
    "segment_assign",
    "segment_rule_update",
    "transaction_rows_from_csv",
]

EVENT_CHUNK = 1000
_CENT = Decimal("0.01")
_MAX_METRIC = Decimal("99999999999999.99")  # DecimalField(16, 2)
_MAX_AMOUNT = Decimal("9999999999.99")  # DecimalField(12, 2)
_EARLIEST = dt.date(1970, 1, 1)
_LATEST_PERIOD = dt.date(2100, 1, 1)

METRIC_FIELDS = ("location", "location_id", "period", "period_start", "kind", "value", "source")
TRANSACTION_FIELDS = ("external_id", "customer", "occurred_on", "amount", "location", "location_id")
_KINDS = frozenset(BusinessMetric.Kind.values)
_PERIODS = frozenset(PeriodKind.values)


@dataclass
class ImportResult:
    """One input row's outcome: created | updated | unchanged | duplicate (same row earlier in the
    batch) | error (``errors``: field → messages; nothing of the row was stored)."""

    row: int
    status: str = "error"
    id: int | None = None
    key: dict = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {"row": self.row, "status": self.status, **self.key}
        if self.id is not None:
            out["id"] = self.id
        if self.errors:
            out["errors"] = self.errors
        return out


def summary_of(results: list[ImportResult]) -> dict[str, int]:
    counts = {"created": 0, "updated": 0, "unchanged": 0, "duplicate": 0, "error": 0}
    for r in results:
        counts[r.status] += 1
    return counts


# --- shared row checks ------------------------------------------------------------------------------


def _start(index: int, raw, fields: frozenset[str]) -> tuple[ImportResult, dict | None]:
    if type(raw) is not dict:
        return ImportResult(row=index, errors={"non_field_errors": ["Each row must be an object."]}), None
    errors: dict[str, list[str]] = {}
    unknown = raw.keys() - fields
    if unknown:
        errors["non_field_errors"] = [f"Unknown field(s): {', '.join(sorted(map(str, unknown)))}."]
    return ImportResult(row=index), errors


def _date(value, name: str, errors: dict, *, required: bool) -> dt.date | None:
    if value is None or value == "":
        if required:
            errors[name] = ["This field is required."]
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        errors[name] = ["Must be an ISO 8601 date (YYYY-MM-DD)."]
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        errors[name] = [f"Not an ISO 8601 date: {value[:40]!r}."]
        return None


def _decimal(value, name: str, errors: dict, *, limit: Decimal) -> Decimal | None:
    if value is None or value == "":
        errors[name] = ["This field is required."]
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
            raise InvalidOperation
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
        if not number.is_finite():
            raise InvalidOperation
        number = number.quantize(_CENT)
    except (InvalidOperation, ValueError):
        errors[name] = ["Must be a number."]
        return None
    if abs(number) > limit:
        errors[name] = [f"Must be at most {limit} in size."]
        return None
    return number


class _Locations:
    """Location ids by code and by id for the references in one batch: one query."""

    def __init__(self, rows: list):
        codes, ids = set(), set()
        for r in rows:
            if type(r) is not dict:
                continue
            code = r.get("location")
            if isinstance(code, str) and code.strip():
                codes.add(code.strip())
            elif (number := _id(code)) is not None:
                ids.add(number)  # a JSON number names the location's id
            ident = _id(r.get("location_id"))
            if ident is not None:
                ids.add(ident)
        found = Location.objects.filter(Q(code__in=codes) | Q(pk__in=ids)).values_list("pk", "code")
        self.by_code = {code: pk for pk, code in found}
        self.ids = set(self.by_code.values())

    def resolve(self, raw: dict, errors: dict, *, required: bool) -> int | None:
        code, ident = raw.get("location"), raw.get("location_id")
        by_id = None
        if ident not in (None, ""):
            by_id = _id(ident)
            if by_id is None or by_id not in self.ids:
                errors["location_id"] = [f"Unknown location id {str(ident)[:20]!r}."]
                return None
        if isinstance(code, int) and not isinstance(code, bool):
            number = _id(code)
            if number is None or number not in self.ids:
                errors["location"] = [f"Unknown location id {str(code)[:20]}."]
                return None
            if by_id is not None and by_id != number:
                errors["location"] = ["location and location_id name different locations."]
                return None
            code, by_id = None, number
        text = clean_text(code, "location", errors, required=False, max_length=40)
        by_code = None
        if text:
            by_code = self.by_code.get(text)
            if by_code is None:
                errors["location"] = [f"Unknown location {text!r}."]
                return None
        if by_code and by_id and by_code != by_id:
            errors["location"] = ["location and location_id name different locations."]
            return None
        if required and not (by_code or by_id) and "location" not in errors:
            errors["location"] = ["This field is required (a location code, or location_id)."]
        return by_code or by_id


def _id(value) -> int | None:
    from cem.params import id_of

    return id_of(value)


def _limit(rows: list) -> None:
    if len(rows) > settings.BULK_INGEST_MAX_ROWS:
        raise TooManyRows(f"At most {settings.BULK_INGEST_MAX_ROWS} rows per call; got {len(rows)}.")


def _today(organization) -> dt.date:
    try:
        tz = zoneinfo.ZoneInfo(getattr(organization, "time_zone", None) or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = dt.UTC
    return timezone.now().astimezone(tz).date()


# --- business metrics -----------------------------------------------------------------------------


def period_end(period: str, start: dt.date) -> dt.date:
    """The last day of the period that opens on ``start``."""
    if period == PeriodKind.DAY:
        return start
    if period == PeriodKind.WEEK:
        return start + dt.timedelta(days=6)
    months = 1 if period == PeriodKind.MONTH else 3
    year, month = divmod(start.month - 1 + months, 12)
    return dt.date(start.year + year, month + 1, 1) - dt.timedelta(days=1)


def period_start_error(period: str, start: dt.date) -> str | None:
    """Why ``start`` does not open a ``period``, or None."""
    if period == PeriodKind.WEEK and start.weekday() != 0:
        monday = start - dt.timedelta(days=start.weekday())
        return f"A week starts on a Monday (that week: {monday.isoformat()})."
    if period == PeriodKind.MONTH and start.day != 1:
        return f"A month starts on its first day ({start.replace(day=1).isoformat()})."
    if period == PeriodKind.QUARTER and (start.day != 1 or start.month not in (1, 4, 7, 10)):
        first = dt.date(start.year, 3 * ((start.month - 1) // 3) + 1, 1)
        return f"A quarter starts on 1 January, April, July or October ({first.isoformat()})."
    return None


@dataclass
class _Metric:
    row: int
    location_id: int
    period: str
    period_start: dt.date
    kind: str
    value: Decimal
    source: str

    @property
    def key(self) -> tuple:
        return (self.location_id, self.period, self.period_start, self.kind)


_METRIC_FIELD_SET = frozenset(METRIC_FIELDS)


def _clean_metric(index: int, raw, locations: _Locations, default_source: str):
    result, errors = _start(index, raw, _METRIC_FIELD_SET)
    if errors is None:
        return None, result
    location_id = locations.resolve(raw, errors, required=True)
    period = raw.get("period") or PeriodKind.MONTH
    if not isinstance(period, str) or period not in _PERIODS:
        errors["period"] = [f"Must be one of {', '.join(PeriodKind.values)}."]
    start = _date(raw.get("period_start"), "period_start", errors, required=True)
    if start is not None:
        if not _EARLIEST <= start < _LATEST_PERIOD:
            errors["period_start"] = ["Must lie between 1970 and 2099."]
        elif "period" not in errors and (why := period_start_error(period, start)):
            errors["period_start"] = [why]
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in _KINDS:
        errors["kind"] = [
            "This field is required."
            if kind in (None, "")
            else f"Must be one of {', '.join(sorted(_KINDS))}."
        ]
    value = _decimal(raw.get("value"), "value", errors, limit=_MAX_METRIC)
    if value is not None:
        if value < 0:
            errors["value"] = ["Must not be negative."]
        elif kind == BusinessMetric.Kind.RETENTION_RATE and value > 100:
            errors["value"] = ["A retention rate is a percentage (0-100)."]
    source = clean_text(raw.get("source"), "source", errors, required=False, max_length=20) or default_source
    result.key = {
        "location": raw.get("location") if isinstance(raw.get("location"), str) else location_id,
        "period": period,
        "period_start": start.isoformat() if start else raw.get("period_start"),
        "kind": kind,
    }
    if errors:
        result.errors = errors
        return None, result
    return _Metric(index, location_id, period, start, kind, value, source), result


@transaction.atomic
def business_metrics_import(
    *, organization, actor: Actor, rows: list, source: str = "api"
) -> list[ImportResult]:
    """Validate and upsert business metrics; one result per input row (see the module doc)."""
    org_id = _check_tenant(organization)
    _limit(rows)
    locations = _Locations(rows)
    results: list[ImportResult] = []
    clean: list[_Metric] = []
    first: dict[tuple, _Metric] = {}
    repeats: dict[int, tuple] = {}  # row → the key it repeats with the same value
    for index, raw in enumerate(rows):
        metric, result = _clean_metric(index, raw, locations, source)
        results.append(result)
        if metric is None:
            continue
        earlier = first.get(metric.key)
        if earlier is None:
            first[metric.key] = metric
            clean.append(metric)
        elif earlier.value == metric.value:
            result.status = "duplicate"
            repeats[index] = metric.key
        else:
            result.errors = {
                "value": [
                    f"Row {earlier.row} has the same location, period, period_start and kind "
                    f"with another value ({earlier.value})."
                ]
            }
    written = _metrics_upsert(org_id, clean) if clean else {}
    kept = [m for m in clean if m.key not in written]
    stored = _metric_ids(org_id, kept) if kept else {}
    ids = {key: pk for key, (pk, _) in written.items()} | stored
    for result in results:
        if result.errors:
            result.status = "error"
        elif result.row in repeats:
            result.id = ids.get(repeats[result.row])
    for metric in clean:
        result = results[metric.row]
        result.id = ids.get(metric.key)
        if metric.key in written:
            result.status = "created" if written[metric.key][1] else "updated"
        else:
            result.status = "unchanged"
    counts = summary_of(results)
    touched = [m for m in clean if m.key in written]
    changed = sorted(written[m.key][0] for m in touched)
    for start in range(0, len(changed), EVENT_CHUNK):
        emit(
            organization=org_id,
            event_type="BusinessMetricsImported",
            payload={
                "metric_ids": changed[start : start + EVENT_CHUNK],
                "location_ids": sorted({m.location_id for m in touched}),
                "kinds": sorted({m.kind for m in touched}),
                "first_period_start": min(m.period_start for m in touched).isoformat(),
                "last_period_start": max(m.period_start for m in touched).isoformat(),
            },
        )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="business_metrics.import",
        object_type=BusinessMetric._meta.label,
        changes={"rows": len(rows), "source": source, **counts},
    )
    return results


def _metrics_upsert(org_id: int, rows: list[_Metric]) -> dict[tuple, tuple[int, bool]]:
    """Insert new keys, update changed values; key → (id, inserted) for rows written."""
    with connection.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO {BusinessMetric._meta.db_table} AS m
                (organization_id, location_id, period, period_start, kind, value, source, updated_at)
            SELECT %s, location_id, period, period_start, kind, value, source, now()
            FROM unnest(%s::bigint[], %s::text[], %s::date[], %s::text[], %s::numeric[], %s::text[])
                AS t(location_id, period, period_start, kind, value, source)
            ON CONFLICT ON CONSTRAINT business_metric_key DO UPDATE
                SET value = EXCLUDED.value, source = EXCLUDED.source, updated_at = EXCLUDED.updated_at
                WHERE m.value IS DISTINCT FROM EXCLUDED.value
            RETURNING id, location_id, period, period_start, kind, (xmax = 0)
            """,  # noqa: S608 - the model's table name  # nosec B608
            [
                org_id,
                [r.location_id for r in rows],
                [r.period for r in rows],
                [r.period_start for r in rows],
                [r.kind for r in rows],
                [r.value for r in rows],
                [r.source for r in rows],
            ],
        )
        return {(loc, period, start, kind): (pk, inserted) for pk, loc, period, start, kind, inserted in cur}


def _metric_ids(org_id: int, rows: list[_Metric]) -> dict[tuple, int]:
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT m.id, m.location_id, m.period, m.period_start, m.kind
            FROM {BusinessMetric._meta.db_table} m
            JOIN unnest(%s::bigint[], %s::text[], %s::date[], %s::text[])
                AS t(location_id, period, period_start, kind)
                USING (location_id, period, period_start, kind)
            WHERE m.organization_id = %s
            """,  # noqa: S608 - the model's table name  # nosec B608
            [
                [r.location_id for r in rows],
                [r.period for r in rows],
                [r.period_start for r in rows],
                [r.kind for r in rows],
                org_id,
            ],
        )
        return {(loc, period, start, kind): pk for pk, loc, period, start, kind in cur}


# --- CRM transactions -------------------------------------------------------------------------------


@dataclass
class _Transaction:
    row: int
    external_id: str
    customer_ref: str
    occurred_on: dt.date
    amount: Decimal
    location_id: int | None

    @property
    def values(self) -> tuple:
        return (self.customer_ref, self.occurred_on, self.amount, self.location_id)


_TRANSACTION_FIELD_SET = frozenset(TRANSACTION_FIELDS)


def _clean_transaction(index: int, raw, locations: _Locations, latest: dt.date):
    result, errors = _start(index, raw, _TRANSACTION_FIELD_SET)
    if errors is None:
        return None, result
    external_id = clean_text(raw.get("external_id"), "external_id", errors, required=True, max_length=100)
    customer = clean_text(raw.get("customer"), "customer", errors, required=True, max_length=64)
    occurred_on = _date(raw.get("occurred_on"), "occurred_on", errors, required=True)
    if occurred_on is not None:
        if occurred_on > latest:
            errors["occurred_on"] = ["Lies in the future."]
        elif occurred_on < _EARLIEST:
            errors["occurred_on"] = ["Lies too far in the past (before 1970)."]
    amount = _decimal(raw.get("amount"), "amount", errors, limit=_MAX_AMOUNT)
    location_id = locations.resolve(raw, errors, required=False)
    result.key = {"external_id": external_id}
    if errors:
        result.errors = errors
        return None, result
    return _Transaction(index, external_id, customer, occurred_on, amount, location_id), result


@transaction.atomic
def customer_transactions_import(
    *, organization, actor: Actor, rows: list, source: str = "api"
) -> tuple[list[ImportResult], int]:
    """Validate and upsert CRM transactions; (one result per input row, customers created).

    Customers are referenced by external id and created when unknown (see the module doc).
    """
    org_id = _check_tenant(organization)
    _limit(rows)
    locations = _Locations(rows)
    # A day of tolerance: a CRM in an earlier time zone may already be on tomorrow's date.
    latest = _today(organization) + dt.timedelta(days=1)
    results: list[ImportResult] = []
    clean: list[_Transaction] = []
    first: dict[str, _Transaction] = {}
    repeats: dict[int, str] = {}
    for index, raw in enumerate(rows):
        tx, result = _clean_transaction(index, raw, locations, latest)
        results.append(result)
        if tx is None:
            continue
        earlier = first.get(tx.external_id)
        if earlier is None:
            first[tx.external_id] = tx
            clean.append(tx)
        elif earlier.values == tx.values:
            result.status = "duplicate"
            repeats[index] = tx.external_id
        else:
            result.errors = {
                "external_id": [f"Row {earlier.row} has the same external_id with other values."]
            }
    refs = {tx.customer_ref for tx in clean}
    known_before = ids_by_external_id(Customer._meta.db_table, org_id, refs) if refs else {}
    customer_ids = _customers_upsert(org_id, refs)
    customers_created = len(refs) - len(known_before)
    written = _transactions_upsert(org_id, clean, customer_ids) if clean else {}
    kept = [tx.external_id for tx in clean if tx.external_id not in written]
    ids = {ref: pk for ref, (pk, _) in written.items()}
    if kept:
        ids.update(ids_by_external_id(CustomerTransaction._meta.db_table, org_id, kept))
    for result in results:
        if result.errors:
            result.status = "error"
        elif result.row in repeats:
            result.id = ids.get(repeats[result.row])
    for tx in clean:
        result = results[tx.row]
        result.id = ids.get(tx.external_id)
        if tx.external_id in written:
            result.status = "created" if written[tx.external_id][1] else "updated"
        else:
            result.status = "unchanged"
    counts = summary_of(results)
    changed = sorted(pk for pk, _ in written.values())
    changed_customers = sorted({customer_ids[tx.customer_ref] for tx in clean if tx.external_id in written})
    for start in range(0, len(changed), EVENT_CHUNK):
        chunk = changed[start : start + EVENT_CHUNK]
        emit(
            organization=org_id,
            event_type="CustomerTransactionsImported",
            payload={
                "transaction_ids": chunk,
                "customer_ids": changed_customers if start == 0 else [],
                "customers_created": customers_created if start == 0 else 0,
            },
        )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="crm_transactions.import",
        object_type=CustomerTransaction._meta.label,
        changes={"rows": len(rows), "source": source, "customers_created": customers_created, **counts},
    )
    return results, customers_created


def _transactions_upsert(
    org_id: int, rows: list[_Transaction], customer_ids: dict[str, int]
) -> dict[str, tuple[int, bool]]:
    """Insert new external ids, update changed ones; external_id → (id, inserted) for rows written."""
    table = CustomerTransaction._meta.db_table
    with connection.cursor() as cur:
        cur.execute(
            f"""
            INSERT INTO {table} AS t
                (organization_id, external_id, customer_id, location_id, occurred_on, amount, created_at)
            SELECT %s, external_id, customer_id, location_id, occurred_on, amount, now()
            FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::date[], %s::numeric[])
                AS s(external_id, customer_id, location_id, occurred_on, amount)
            ON CONFLICT ON CONSTRAINT crm_transaction_external_id_uniq DO UPDATE
                SET customer_id = EXCLUDED.customer_id, location_id = EXCLUDED.location_id,
                    occurred_on = EXCLUDED.occurred_on, amount = EXCLUDED.amount
                WHERE (t.customer_id, t.location_id, t.occurred_on, t.amount)
                    IS DISTINCT FROM (EXCLUDED.customer_id, EXCLUDED.location_id, EXCLUDED.occurred_on,
                                      EXCLUDED.amount)
            RETURNING id, external_id, (xmax = 0)
            """,  # noqa: S608 - the model's table name  # nosec B608
            [
                org_id,
                [r.external_id for r in rows],
                [customer_ids[r.customer_ref] for r in rows],
                [r.location_id for r in rows],
                [r.occurred_on for r in rows],
                [r.amount for r in rows],
            ],
        )
        return {ref: (pk, inserted) for pk, ref, inserted in cur}


# --- CSV ---------------------------------------------------------------------------------------------


_EXTRA_CELLS = "(cells beyond the header)"


def _rows_from_csv(data: bytes | str) -> list[dict]:
    """CSV columns are the JSON fields; empty cells are absent; other columns are reported per row."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        if unstorable_path(text) is not None:
            raise ValidationError({"file": [UNSTORABLE_MESSAGE]})
        rows = []
        for record in csv.DictReader(io.StringIO(text)):
            row = {}
            for key, value in record.items():
                if key is None:  # more cells than header columns: reported as an unknown field
                    if any(v not in (None, "") for v in value):
                        row[_EXTRA_CELLS] = value
                elif value not in (None, ""):
                    row[key.strip()] = value
            rows.append(row)
    except UnicodeDecodeError as exc:
        raise ValidationError({"file": ["The file is not UTF-8 text."]}) from exc
    except csv.Error as exc:
        raise ValidationError({"file": [f"Not a readable CSV file: {exc}."]}) from exc
    return rows


def metric_rows_from_csv(data: bytes | str) -> list[dict]:
    """Columns: location (code) or location_id, period, period_start, kind, value, source."""
    return _rows_from_csv(data)


def transaction_rows_from_csv(data: bytes | str) -> list[dict]:
    """Columns: external_id, customer (external id), occurred_on, amount, location (code) or location_id."""
    return _rows_from_csv(data)


# --- segment rules ------------------------------------------------------------------------------------

RULE_OPS = ("lt", "lte", "gt", "gte", "eq", "ne", "in")
_OPS_BY_KIND = {
    "number": RULE_OPS,
    "integer": RULE_OPS,
    "date": RULE_OPS,
    "text": ("eq", "ne", "in"),
    "bool": ("eq", "ne"),
}
_MAX_IN = 100
_MAX_WINDOW_DAYS = 3650


@dataclass(frozen=True)
class RuleField:
    name: str  # as written in a rule; "<N>" stands for a number of days
    kind: str  # number | integer | date | text | bool
    help: str


RULE_FIELDS = (
    RuleField("total_spend", "number", "Sum of all the customer's purchases (0 when none)."),
    RuleField("lifetime_value", "number", "The same as total_spend."),
    RuleField("total_spend_<N>d", "number", "Sum of purchases in the N days ending today (0 when none)."),
    RuleField("transactions_count", "integer", "Number of purchases (0 when none)."),
    RuleField("transactions_count_<N>d", "integer", "Number of purchases in the N days ending today."),
    RuleField("average_purchase", "number", "Mean purchase amount."),
    RuleField("average_purchase_<N>d", "number", "Mean purchase amount in the N days ending today."),
    RuleField("last_purchase_amount", "number", "Amount of the latest purchase."),
    RuleField("first_purchase_on", "date", "Date of the first purchase."),
    RuleField("last_purchase_on", "date", "Date of the latest purchase."),
    RuleField("days_since_last_purchase", "integer", "Days from the latest purchase to today."),
    RuleField("locale", "text", "The customer's language, e.g. en or es."),
    RuleField("consent_email", "bool", "The customer agreed to email."),
    RuleField("consent_sms", "bool", "The customer agreed to text messages."),
    RuleField("opted_out", "bool", "The customer opted out of surveys."),
)
_FIXED_FIELDS = {f.name: f.kind for f in RULE_FIELDS if "<N>" not in f.name}
_WINDOWED = re.compile(r"^(total_spend|transactions_count|average_purchase)_([0-9]{1,4})d$")
_CUSTOMER_FIELDS = frozenset({"locale", "consent_email", "consent_sms", "opted_out"})
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}


def _field_spec(name) -> tuple[str, str, int | None] | None:
    """(base field, kind, window days or None) for a rule field name, or None when unknown."""
    if not isinstance(name, str):
        return None
    if name in _FIXED_FIELDS:
        base = "total_spend" if name == "lifetime_value" else name
        return base, _FIXED_FIELDS[name], None
    match = _WINDOWED.match(name)
    if match and 1 <= int(match.group(2)) <= _MAX_WINDOW_DAYS:
        base = match.group(1)
        return base, _FIXED_FIELDS[base], int(match.group(2))
    return None


def _rule_value(kind: str, value):
    """The value in its stored JSON form; raises ValueError with the reason."""
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise ValueError("must be a number")
        try:
            number = Decimal(value.strip() if isinstance(value, str) else str(value))
        except InvalidOperation:
            raise ValueError("must be a number") from None
        if not number.is_finite() or abs(number) > _MAX_METRIC:
            raise ValueError("must be a finite number")
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "integer":
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000:
            raise ValueError("must be a whole number of 0 or more")
        return value
    if kind == "date":
        try:
            return dt.date.fromisoformat(value.strip()).isoformat()
        except (AttributeError, ValueError):
            raise ValueError("must be an ISO date (YYYY-MM-DD)") from None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, str | int) else None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("must be true or false")
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise ValueError("must be a text of 1 to 64 characters")
    return value.strip()


def rule_validate(rule) -> list[dict]:
    """The rule with its values in canonical form; ValidationError naming ``rule[i].<key>``."""
    if not isinstance(rule, list):
        raise ValidationError({"rule": ["Must be a list of {field, op, value} conditions."]})
    if len(rule) > 20:
        raise ValidationError({"rule": ["At most 20 conditions."]})
    errors: dict[str, list[str]] = {}
    clean = []
    for i, cond in enumerate(rule):
        at = f"rule[{i}]"
        if not isinstance(cond, dict):
            errors[at] = ["Must be an object with field, op and value."]
            continue
        unknown = set(cond) - {"field", "op", "value"}
        if unknown:
            errors[at] = [f"Unknown key(s): {', '.join(sorted(map(str, unknown)))}."]
        name, op = cond.get("field"), cond.get("op")
        spec = _field_spec(name)
        if spec is None:
            errors[f"{at}.field"] = [
                f"Unknown field {str(name)[:60]!r}. Allowed: "
                + ", ".join(f.name for f in RULE_FIELDS)
                + f" (N from 1 to {_MAX_WINDOW_DAYS})."
            ]
            continue
        _, kind, _ = spec
        if op not in _OPS_BY_KIND[kind]:
            errors[f"{at}.op"] = [
                f"Field {name!r} takes op {', '.join(_OPS_BY_KIND[kind])}; got {str(op)[:20]!r}."
            ]
            continue
        if "value" not in cond:
            errors[f"{at}.value"] = ["This field is required."]
            continue
        value = cond["value"]
        try:
            if op == "in":
                if isinstance(value, str):
                    value = [v for v in (part.strip() for part in value.split(",")) if v]
                if not isinstance(value, list) or not 1 <= len(value) <= _MAX_IN:
                    raise ValueError(f"op in takes a list of 1 to {_MAX_IN} values")
                value = [_rule_value(kind, v) for v in value]
            else:
                value = _rule_value(kind, value)
        except ValueError as exc:
            errors[f"{at}.value"] = [f"Field {name!r}: {exc}."]
            continue
        clean.append({"field": name, "op": op, "value": value})
    if errors:
        raise ValidationError(errors)
    return clean


def _crm_figure(base: str, days: int | None, today: dt.date):
    """The per-customer CRM figure as a correlated subquery on crm_tx_org_customer."""
    tx = CustomerTransaction.objects.filter(customer_id=OuterRef("pk")).order_by()
    if days is not None:
        tx = tx.filter(occurred_on__gte=today - dt.timedelta(days=days - 1))
    per_customer = tx.values("customer_id")
    money = DecimalField(max_digits=16, decimal_places=2)
    if base == "total_spend":
        return Coalesce(
            Subquery(per_customer.annotate(v=Sum("amount")).values("v")[:1]),
            V(Decimal(0)),
            output_field=money,
        )
    if base == "transactions_count":
        return Coalesce(Subquery(per_customer.annotate(v=Count("id")).values("v")[:1]), V(0))
    if base == "average_purchase":
        return Subquery(per_customer.annotate(v=Avg("amount")).values("v")[:1], output_field=money)
    if base == "last_purchase_amount":
        return Subquery(tx.order_by("-occurred_on", "-id").values("amount")[:1], output_field=money)
    if base == "first_purchase_on":
        return Subquery(per_customer.annotate(v=Min("occurred_on")).values("v")[:1])
    return Subquery(per_customer.annotate(v=Max("occurred_on")).values("v")[:1])  # last_purchase_on


# "N days since the last purchase" compares the last purchase date against today - N, reversed.
_REVERSED = {"lt": "gt", "lte": "gte", "gt": "lt", "gte": "lte", "eq": "eq", "ne": "ne", "in": "in"}
_LOOKUP = {"lt": "lt", "lte": "lte", "gt": "gt", "gte": "gte", "eq": "exact", "in": "in"}


def _condition(path: str, op: str, value) -> Q:
    if op == "ne":
        # An unknown figure satisfies no condition, "not equal" included.
        return Q(**{f"{path}__isnull": False}) & ~Q(**{path: value})
    return Q(**{f"{path}__{_LOOKUP[op]}": value})


def _compile(rule: list[dict], today: dt.date) -> tuple[dict, Q]:
    """(annotations to add to Customer, the Q all conditions make) for a validated rule."""
    annotations: dict = {}
    q = Q()
    for cond in rule:
        base, kind, days = _field_spec(cond["field"])
        op, value = cond["op"], cond["value"]
        if base == "opted_out":
            wanted = value if op == "eq" else not value
            q &= Q(opted_out_at__isnull=not wanted)
            continue
        if base in _CUSTOMER_FIELDS:
            q &= _condition(base, op, value)
            continue
        if base == "days_since_last_purchase":
            base, op = "last_purchase_on", _REVERSED[op]
            shift = [value] if cond["op"] != "in" else value
            dates = [today - dt.timedelta(days=n) for n in shift]
            value = dates if cond["op"] == "in" else dates[0]
        elif kind == "date":
            value = [dt.date.fromisoformat(v) for v in value] if op == "in" else dt.date.fromisoformat(value)
        elif kind == "number":
            value = [Decimal(str(v)) for v in value] if op == "in" else Decimal(str(value))
        name = f"crm_{base}_{days or 'all'}"
        annotations.setdefault(name, _crm_figure(base, days, today))
        q &= _condition(name, op, value)
    return annotations, q


def rule_matches(*, organization, rule):
    """The customers a rule matches now (validated first: ValidationError naming the condition)."""
    annotations, q = _compile(rule_validate(rule), _today(organization))
    return Customer.objects.alias(**annotations).filter(q)


@transaction.atomic
def segment_rule_update(*, organization, actor: Actor, segment: Segment, rule) -> Segment:
    """Store a segment's rule after validation. Membership changes only when the rule is applied."""
    org_id = _check_tenant(organization)
    clean = rule_validate(rule)
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    before = segment.rule
    segment.rule = clean
    segment.save(update_fields=["rule"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="segment.rule_update",
        instance=segment,
        changes={"rule": [before, clean]},
    )
    return segment


def rule_segments() -> list[Segment]:
    """Segments with a rule, in precedence order (the first one a customer matches is theirs)."""
    return [s for s in Segment.objects.order_by("pk") if s.rule]


_UPDATE_CHUNK = 5000


@transaction.atomic
def segment_assign(*, organization, actor: Actor, segment: Segment) -> dict:
    """Recompute one rule segment's members (see the module doc): idempotent; returns the counts."""
    org_id = _check_tenant(organization)
    # One apply at a time per segment; a second waits and then finds nothing left to change.
    segment = Segment.objects.select_for_update().get(pk=segment.pk)
    own_rule = rule_validate(segment.rule)
    if not own_rule:
        raise ValidationError({"rule": ["This segment has no rule: its customers are assigned by hand."]})
    today = _today(organization)
    segments = list(Segment.objects.order_by("pk"))
    manual = [s.pk for s in segments if not s.rule]
    compiled: dict[int, Q] = {}
    annotations: dict = {}
    skipped = []
    for s in segments:
        if not s.rule:
            continue
        try:
            extra, q = _compile(rule_validate(s.rule), today)
        except ValidationError:
            skipped.append(s.pk)  # a broken rule elsewhere matches nobody; its own apply reports it
            continue
        compiled[s.pk] = q
        annotations.update(extra)
    first_match = Case(
        *[When(q, then=V(pk)) for pk, q in compiled.items()], default=V(None), output_field=BigIntegerField()
    )
    candidates = (
        Customer.objects.alias(**annotations)
        .filter(compiled[segment.pk] | Q(segment_id=segment.pk))
        .exclude(segment_id__in=manual)
        .annotate(first_match=first_match)
        .order_by()
        .values_list("pk", "segment_id", "first_match")
    )
    moves: dict[int | None, list[int]] = {}
    added = removed = matched = 0
    for pk, current, target in candidates.iterator(chunk_size=5000):
        matched += target == segment.pk
        if current == target:
            continue
        moves.setdefault(target, []).append(pk)
        added += target == segment.pk
        removed += current == segment.pk
    for target, ids in moves.items():
        for start in range(0, len(ids), _UPDATE_CHUNK):
            Customer.objects.filter(pk__in=ids[start : start + _UPDATE_CHUNK]).update(segment_id=target)
    members = Customer.objects.filter(segment_id=segment.pk).count()
    outcome = {
        "segment": segment.pk,
        "members": members,
        "added": added,
        "removed": removed,
        "changed": sum(len(ids) for ids in moves.values()),
        "skipped_segments": skipped,
    }
    if outcome["changed"]:
        emit(
            organization=org_id,
            event_type="CustomerSegmentsAssigned",
            payload={**outcome, "segment_ids": sorted({t for t in moves if t is not None} | {segment.pk})},
        )
    audit_log_write(
        organization=org_id, actor=actor, action="segment.assign", instance=segment, changes=outcome
    )
    return outcome
