"""Interaction ingest: validate per row, then write the good rows set-based in one transaction.

Rows are validated in Python against lookup maps built with one query per reference type, so
the cost per row is a few dict look-ups. Good rows go to a temporary table with COPY and into
``cem_interaction`` with one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` (COPY cannot target a
table under row-level security; the INSERT's WITH CHECK still runs). A bad row never drops a
good one, and an exception rolls the whole call back: nothing is half-written.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from cem import suppression
from cem.events import emit
from cem.models import Channel, Customer, Employee, Interaction, InteractionCategory, Location, Touchpoint
from cem.models.privacy import ConsentChannel, ConsentRecord, ConsentSource, SuppressedIdentifier
from cem.params import UNSTORABLE_MESSAGE, as_utc, unstorable_path
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write

EVENT_CHUNK = 1000
_CATEGORIES = {c.value for c in InteractionCategory}
_MAX_AMOUNT = Decimal("9999999999.99")
_FUTURE_TOLERANCE = dt.timedelta(days=1)
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
FIELDS = (
    "external_id",
    "occurred_at",
    "location",
    "channel",
    "touchpoint",
    "customer",
    "employees",
    "amount",
    "category",
    "attributes",
)


class TooManyRows(ValueError):
    pass


@dataclass
class RowResult:
    row: int
    external_id: str | None
    status: str = "error"  # created | duplicate | error
    id: int | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {"row": self.row, "external_id": self.external_id, "status": self.status}
        if self.id is not None:
            out["id"] = self.id
        if self.errors:
            out["errors"] = self.errors
        return out


@dataclass
class _Clean:
    row: int
    external_id: str
    occurred_at: dt.datetime
    location_id: int
    channel_id: int
    touchpoint_id: int | None
    category: str
    customer_ref: str | None
    employee_ids: list[int]
    amount: Decimal | None
    attributes: dict


_FIELD_SET = frozenset(FIELDS)


def clean_text(value, name: str, errors: dict, *, required: bool, max_length: int) -> str | None:
    if type(value) is str:  # the common case first: ~10 of these per row
        value = value.strip()
        if value and len(value) <= max_length:
            return value
    if value is None or value == "":
        if required:
            errors.setdefault(name, []).append("This field is required.")
        return None
    if not isinstance(value, str | int):
        errors.setdefault(name, []).append("Must be a string.")
        return None
    value = str(value).strip()
    if not value:
        if required:
            errors.setdefault(name, []).append("This field is required.")
        return None
    if len(value) > max_length:
        errors.setdefault(name, []).append(f"At most {max_length} characters.")
        return None
    return value


def _employee_refs(value) -> list[str] | None:
    """The employee external ids of a row, or None when the value has the wrong shape."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace(";", ",").replace("|", ",").split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return [str(v).strip() for v in value if str(v).strip()]
    return None


class _Resolver:
    """Lookup maps for the references in one batch: one query per kind, only the codes used.

    Also keeps each row's parsed employee list, so the rows are scanned once for references.
    """

    def __init__(self, rows: list):
        locations, channels, touchpoints, employees = set(), set(), set(), set()
        self.employee_refs: list[list[str] | None] = []
        for r in rows:
            if type(r) is not dict:
                self.employee_refs.append(None)
                continue
            for name, bucket in (("location", locations), ("channel", channels), ("touchpoint", touchpoints)):
                value = r.get(name)
                if isinstance(value, str | int):
                    bucket.add(str(value).strip())
            refs = _employee_refs(r.get("employees"))
            self.employee_refs.append(refs)
            if refs:
                employees.update(refs)
        self.locations = dict(Location.objects.filter(code__in=locations).values_list("code", "id"))
        self.channels = dict(Channel.objects.filter(code__in=channels).values_list("code", "id"))
        self.touchpoints = {
            code: (pk, channel_id, category)
            for code, pk, channel_id, category in Touchpoint.objects.filter(code__in=touchpoints).values_list(
                "code", "id", "channel_id", "category"
            )
        }
        self.employees = dict(
            Employee.objects.filter(external_id__in=employees).values_list("external_id", "id")
        )


_CENT = Decimal("0.01")


def row_start(
    index: int, raw, fields: frozenset[str], *, external_id_required: bool
) -> tuple[RowResult, dict[str, list[str]] | None]:
    """The checks every bulk row starts with: an object, known fields, an external id.

    Returns the row's result and its error dict to fill, or no dict when the row is not an
    object (the result then already carries the error).
    """
    if type(raw) is not dict:
        return RowResult(
            row=index, external_id=None, errors={"non_field_errors": ["Each row must be an object."]}
        ), None
    errors: dict[str, list[str]] = {}
    unknown = raw.keys() - fields
    if unknown:
        errors["non_field_errors"] = [f"Unknown field(s): {', '.join(sorted(map(str, unknown)))}."]
    external_id = clean_text(
        raw.get("external_id"), "external_id", errors, required=external_id_required, max_length=100
    )
    return RowResult(row=index, external_id=external_id), errors


def _clean_row(index: int, raw, resolver: _Resolver, tz, now) -> tuple[_Clean | None, RowResult]:
    result, errors = row_start(index, raw, _FIELD_SET, external_id_required=True)
    if errors is None:
        return None, result
    external_id = result.external_id

    occurred_at = None
    value = raw.get("occurred_at")
    if value is None or value == "":
        errors["occurred_at"] = ["This field is required."]
    else:
        try:
            occurred_at = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        except ValueError:
            errors["occurred_at"] = [f"Not an ISO 8601 date-time: {str(value)[:40]!r}."]
        else:
            if occurred_at.tzinfo is None:
                occurred_at = occurred_at.replace(tzinfo=tz)
            occurred_at = as_utc(occurred_at)  # an offset PostgreSQL refuses is fine in UTC
            if occurred_at is None:
                errors["occurred_at"] = ["Out of range."]
            elif occurred_at > now:
                errors["occurred_at"] = ["Lies in the future."]
            elif occurred_at < _EARLIEST:
                # Also keeps year-1 values with an offset out: PostgreSQL would store them as BC.
                errors["occurred_at"] = ["Lies too far in the past (before 1970)."]

    location_code = clean_text(raw.get("location"), "location", errors, required=True, max_length=40)
    location_id = resolver.locations.get(location_code) if location_code else None
    if location_code and location_id is None:
        errors["location"] = [f"Unknown location {location_code!r}."]

    touchpoint = None
    touchpoint_code = clean_text(raw.get("touchpoint"), "touchpoint", errors, required=False, max_length=60)
    if touchpoint_code:
        touchpoint = resolver.touchpoints.get(touchpoint_code)
        if touchpoint is None:
            errors["touchpoint"] = [f"Unknown touchpoint {touchpoint_code!r}."]

    channel_code = clean_text(
        raw.get("channel"), "channel", errors, required=touchpoint is None, max_length=40
    )
    channel_id = resolver.channels.get(channel_code) if channel_code else None
    if channel_code and channel_id is None:
        errors["channel"] = [f"Unknown channel {channel_code!r}."]
    if touchpoint is not None:
        if channel_id is None and not channel_code:
            channel_id = touchpoint[1]
        elif channel_id is not None and channel_id != touchpoint[1]:
            errors["touchpoint"] = ["The touchpoint belongs to another channel."]

    category = raw.get("category") or (touchpoint[2] if touchpoint else None)
    if category is None:
        errors["category"] = ["Required when no touchpoint is given."]
    elif category not in _CATEGORIES:
        errors["category"] = [f"Must be one of {', '.join(sorted(_CATEGORIES))}."]

    customer_ref = clean_text(raw.get("customer"), "customer", errors, required=False, max_length=64)

    employee_ids = []
    refs = resolver.employee_refs[index]
    if refs is None:
        errors["employees"] = ["Must be a list of employee external ids."]
    else:
        known = resolver.employees
        for ref in refs:
            employee_id = known.get(ref)
            if employee_id is None:
                errors.setdefault("employees", []).append(f"Unknown employee {ref!r}.")
            elif employee_id not in employee_ids:
                employee_ids.append(employee_id)

    amount = None
    value = raw.get("amount")
    if value is not None and value != "":
        try:
            if isinstance(value, bool):
                raise InvalidOperation
            amount = Decimal(value if isinstance(value, str | int) else str(value)).quantize(_CENT)
            if not amount.is_finite() or abs(amount) > _MAX_AMOUNT:
                raise InvalidOperation
        except (InvalidOperation, ValueError, TypeError):
            errors["amount"] = ["Must be a number with at most 10 digits before the decimal point."]
            amount = None

    attributes = raw.get("attributes") or {}
    if type(attributes) is not dict:
        errors["attributes"] = ["Must be an object."]

    if errors:
        result.errors = errors
        return None, result
    return (
        _Clean(
            index,
            external_id,
            occurred_at,
            location_id,
            channel_id,
            touchpoint[0] if touchpoint else None,
            category,
            customer_ref,
            employee_ids,
            amount,
            attributes,
        ),
        result,
    )


def interactions_ingest(*, organization, actor: Actor, rows: list) -> list[RowResult]:
    """Validate and store a batch; idempotent on external_id. Returns one result per input row."""
    org_id = _check_tenant(organization)
    if len(rows) > settings.BULK_INGEST_MAX_ROWS:
        raise TooManyRows(f"At most {settings.BULK_INGEST_MAX_ROWS} rows per call; got {len(rows)}.")
    tz = zoneinfo.ZoneInfo(getattr(organization, "time_zone", None) or "UTC")
    latest_allowed = timezone.now() + _FUTURE_TOLERANCE
    resolver = _Resolver(rows)
    results: list[RowResult] = []
    clean: list[_Clean] = []
    first_row_of: dict[str, int] = {}
    for index, raw in enumerate(rows):
        row, result = _clean_row(index, raw, resolver, tz, latest_allowed)
        results.append(result)
        if row is None:
            continue
        if row.external_id in first_row_of:
            result.status = "duplicate"
            result.errors = {}
            continue
        first_row_of[row.external_id] = index
        clean.append(row)

    with transaction.atomic():
        created = _write(org_id, clean) if clean else {}
        existing_refs = [r.external_id for r in clean if r.external_id not in created]
        batch_dups = [r.external_id for r in results if r.status == "duplicate"]
        existing = (
            ids_by_external_id(Interaction._meta.db_table, org_id, existing_refs + batch_dups)
            if existing_refs or batch_dups
            else {}
        )
        ids = sorted(created.values())
        for start in range(0, len(ids), EVENT_CHUNK):
            emit(
                organization=org_id,
                event_type="InteractionRecorded",
                payload={"interaction_ids": ids[start : start + EVENT_CHUNK]},
            )
        summary = {"created": len(created), "duplicate": 0, "error": 0}
        for result in results:
            if result.errors:
                summary["error"] += 1
                continue
            if result.external_id in created and first_row_of.get(result.external_id) == result.row:
                result.status, result.id = "created", created[result.external_id]
            else:
                result.status, result.id = (
                    "duplicate",
                    existing.get(result.external_id) or created.get(result.external_id),
                )
                summary["duplicate"] += 1
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="interactions.ingest",
            object_type="cem.Interaction",
            changes={"rows": len(rows), **summary},
        )
    return results


def _write(org_id: int, rows: list[_Clean]) -> dict[str, int]:
    customer_ids = _customers_upsert(org_id, {r.customer_ref for r in rows if r.customer_ref})
    # One statement, the batch passed as column arrays: no temporary table to create, fill and
    # read back, and one round trip. COPY cannot be used on a table under row-level security.
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    columns = {
        "row_no": [r.row for r in rows],
        "external_id": [r.external_id for r in rows],
        "customer_id": [customer_ids.get(r.customer_ref) for r in rows],
        "location_id": [r.location_id for r in rows],
        "channel_id": [r.channel_id for r in rows],
        "touchpoint_id": [r.touchpoint_id for r in rows],
        "category": [r.category for r in rows],
        "occurred_at": [r.occurred_at for r in rows],
        "amount": [r.amount for r in rows],
        "attributes": [dumps(r.attributes) if r.attributes else "{}" for r in rows],
    }
    emp_row = [r.row for r in rows for _ in r.employee_ids]
    emp_id = [employee_id for r in rows for employee_id in r.employee_ids]
    connection.ensure_connection()
    # A server-side-binding cursor with binary parameters: Django's default client-side binding
    # would render each 10,000-element array as SQL text (~0.25 s per call).
    with psycopg.Cursor(connection.connection) as cur:
        # unnest() has no statistics, so the planner's row estimates for the employee join can be
        # far off and push the plan's cost past jit_above_cost: compiling it took longer (~0.2 s
        # per 10,000 rows) than running it. Transaction-local.
        cur.execute("SET LOCAL jit = off")
        cur.execute(
            """
            WITH src AS (
                SELECT * FROM unnest(%(row_no)b::int[], %(external_id)b::text[], %(customer_id)b::bigint[],
                    %(location_id)b::bigint[], %(channel_id)b::bigint[], %(touchpoint_id)b::bigint[],
                    %(category)b::text[], %(occurred_at)b::timestamptz[], %(amount)b::numeric[],
                    %(attributes)b::text[])
                AS t(row_no, external_id, customer_id, location_id, channel_id, touchpoint_id, category,
                    occurred_at, amount, attributes)
            ), ins AS (
                INSERT INTO cem_interaction (organization_id, external_id, customer_id, location_id,
                    channel_id, touchpoint_id, category, occurred_at, amount, attributes, created_at)
                SELECT %(org)b, external_id, customer_id, location_id, channel_id, touchpoint_id, category,
                    occurred_at, amount, attributes::jsonb, now()
                FROM src ORDER BY row_no
                ON CONFLICT (organization_id, external_id) DO NOTHING
                RETURNING id, external_id
            ), emp AS (
                INSERT INTO cem_interactionemployee (organization_id, interaction_id, employee_id)
                SELECT %(org)b, ins.id, e.employee_id
                FROM ins JOIN src USING (external_id)
                JOIN unnest(%(emp_row)b::int[], %(emp_id)b::bigint[]) AS e(row_no, employee_id)
                    ON e.row_no = src.row_no
            )
            SELECT external_id, id FROM ins
            """,
            {"org": org_id, "emp_row": emp_row, "emp_id": emp_id, **columns},
        )
        return dict(cur.fetchall())


def ids_by_external_id(table: str, org_id: int, refs) -> dict[str, int]:
    """``{external_id: id}`` for the tenant's rows among ``refs``, with the refs sent as one array.

    An ORM ``__in`` would send one placeholder per ref: with thousands of refs, building,
    splitting and parsing that statement cost ~0.1 s per 10,000-row call. RLS still applies.
    """
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT external_id, id FROM {connection.ops.quote_name(table)}"  # noqa: S608 - model's table name
            " WHERE organization_id = %s AND external_id = ANY(%s::text[])",  # nosec B608 # the identifiers are the models' own table names; every value is a bound parameter
            [org_id, list(refs)],
        )
        return dict(cur.fetchall())


def _suppressed_refs(org_id: int, refs: list[str]) -> list[str]:
    """The external ids on the suppression list (an erased or opted-out customer's), one query."""
    hashes = {suppression.identifier_hash(org_id, SuppressedIdentifier.Kind.EXTERNAL_ID, r): r for r in refs}
    with connection.cursor() as cur:
        cur.execute(
            "SELECT value_hash FROM cem_suppressedidentifier"
            " WHERE organization_id = %s AND value_hash = ANY(%s::text[])",
            [org_id, list(hashes)],
        )
        return sorted({hashes[row[0]] for row in cur.fetchall()})


def _customers_upsert(org_id: int, refs: set[str]) -> dict[str, int]:
    """Customer ids by external id, creating the missing ones (no contact details).

    A new customer whose external id is on the suppression list is kept, so the interaction
    links to it, but stored opted out with a consent record saying why (cem.suppression).
    """
    if not refs:
        return {}
    table = Customer._meta.db_table
    known = ids_by_external_id(table, org_id, refs)
    missing = sorted(refs - set(known))
    if missing:
        suppressed = _suppressed_refs(org_id, missing)
        with connection.cursor() as cur:
            cur.execute(
                """
                INSERT INTO cem_customer (organization_id, external_id, email, phone, locale, consent_email,
                    consent_sms, opted_out_at, created_at)
                SELECT %s, ref, '', '', '', false, false,
                    CASE WHEN ref = ANY(%s::text[]) THEN now() END, now()
                FROM unnest(%s::text[]) AS ref
                ON CONFLICT (organization_id, external_id) DO NOTHING
                RETURNING external_id, id
                """,
                [org_id, suppressed, missing],
            )
            inserted = dict(cur.fetchall())
        known.update(inserted)
        if suppressed:
            now = timezone.now()
            ConsentRecord.objects.bulk_create(
                ConsentRecord(
                    organization_id=org_id,
                    customer_id=inserted[ref],
                    channel=ConsentChannel.ALL,
                    granted=False,
                    source=ConsentSource.SUPPRESSION,
                    detail=suppression.describe({SuppressedIdentifier.Kind.EXTERNAL_ID: set()}),
                    recorded_at=now,
                )
                for ref in suppressed
                if ref in inserted
            )
        # A ref another transaction stored meanwhile conflicted and returned nothing: look it up.
        raced = [ref for ref in missing if ref not in known]
        if raced:
            known.update(ids_by_external_id(table, org_id, raced))
    return known


def rows_from_csv(data: bytes | str) -> list[dict]:
    """CSV columns are the JSON fields; any other column becomes an attribute."""
    return csv_rows(data, fields=FIELDS, rest="attributes")


def csv_rows(data: bytes | str, *, fields, rest: str) -> list[dict]:
    """A bulk endpoint's CSV upload as its JSON rows: a column named in ``fields`` is that field
    (an empty cell is None); every other non-empty cell goes into the row's ``rest`` object."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise ValidationError({"non_field_errors": ["The CSV file must be encoded as UTF-8."]}) from None
    if unstorable_path(text) is not None:
        raise ValidationError({"non_field_errors": [UNSTORABLE_MESSAGE]})
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    try:
        if reader.fieldnames is None:
            return []
        for record in reader:
            row = {rest: {}}
            for key, value in record.items():
                if key is None:
                    continue
                key = key.strip()
                if key in fields and key != rest:
                    row[key] = value if value != "" else None
                elif value not in (None, ""):
                    row[rest][key] = value
            rows.append(row)
    except csv.Error as exc:
        # e.g. "field larger than field limit": a client error, not a crash.
        raise ValidationError({"non_field_errors": [f"Not a readable CSV file: {exc}."]}) from None
    return rows
