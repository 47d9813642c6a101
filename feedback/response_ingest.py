"""Responses over the API: one row at a time through response_record, or up to 10,000 set-based.

Both paths validate a row the same way (:func:`_clean_row`), against lookup maps built with one
query per reference kind (surveys, their current versions, questions, interactions, employees,
locations, stored external ids), and answers through feedback.answers.clean_answers, so a row
gets the same field messages either way. The bulk path then writes every good row with one
statement: responses and answers from column arrays (``INSERT … SELECT FROM unnest(…)``) with
ids drawn from the response sequence beforehand, so each answer knows its response without a
round trip. A bad row never drops a good one; an exception rolls the whole call back.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Min, OuterRef, Subquery
from django.utils import timezone

from cem.context import request_id_var
from cem.events import deliver_on_commit, emit
from cem.ingest import (
    EVENT_CHUNK,
    RowResult,
    TooManyRows,
    clean_text,
    csv_rows,
    ids_by_external_id,
    row_start,
)
from cem.models import AuditLog, Employee, Interaction, InteractionEmployee, Location, OutboxEvent
from cem.params import as_utc, id_of
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from cem.tenancy import current_tenant_id
from feedback.answers import CleanAnswer, clean_answers
from feedback.models import Answer, Question, QuestionType, Response, ResponseSource, Survey, SurveyVersion
from feedback.services import RESPONSE_RECEIVED, Dimensions, _analyse

FIELDS = (
    "survey",
    "answers",
    "external_id",
    "interaction",
    "employee",
    "location",
    "submitted_at",
    "locale",
    "source",
)
_FIELD_SET = frozenset(FIELDS)
API_SOURCES = (ResponseSource.API, ResponseSource.IVR)
_FUTURE_TOLERANCE = dt.timedelta(minutes=5)
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MULTI_SEPARATORS = (";", "|", ",")


@dataclass
class _Clean:
    row: int
    external_id: str | None
    survey: Survey
    version_id: int
    answers: list[CleanAnswer]
    values: dict
    dims: Dimensions
    interaction_id: int | None
    source: str
    locale: str
    submitted_at: dt.datetime | None


def _ref(value) -> str | None:
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = str(value).strip()
        return value or None
    return None


def _survey_id(value) -> int | None:
    ref = _ref(value)
    return id_of(ref)


class _Resolver:
    """The batch's references, one query per kind, only the ones the rows use."""

    def __init__(self, rows: list):
        survey_ids, interactions, employees, locations, externals = set(), set(), set(), set(), set()
        for r in rows:
            if type(r) is not dict:
                continue
            if (pk := _survey_id(r.get("survey"))) is not None:
                survey_ids.add(pk)
            for name, bucket in (
                ("interaction", interactions),
                ("employee", employees),
                ("location", locations),
                ("external_id", externals),
            ):
                if (ref := _ref(r.get(name))) is not None:
                    bucket.add(ref)
        self.surveys: dict[int, Survey] = {}
        self.versions: dict[int, int] = {}
        self.questions: dict[int, list[Question]] = defaultdict(list)
        self.employees: dict[str, int] = {}
        self.locations: dict[str, int] = {}
        self.existing: dict[str, int] = {}
        if len(rows) == 1 and len(survey_ids) == 1:
            # The single POST: survey, version, questions, employee, location and a stored
            # external id in one round trip (an interaction, rare there, is looked up below).
            self._load_one(
                survey_ids.pop(),
                next(iter(employees), None),
                next(iter(locations), None),
                next(iter(externals), None),
            )
            employees = locations = externals = ()
        # One query for the current version's questions with their survey; a survey without
        # questions (rare) is looked up on its own so the row can say why it is refused.
        if survey_ids:
            latest = (
                SurveyVersion.objects.filter(survey_id=OuterRef("version__survey_id"))
                .order_by("-number")
                .values("pk")[:1]
            )
            for q in (
                Question.objects.filter(version__survey_id__in=survey_ids, version_id=Subquery(latest))
                .select_related("version__survey")
                .order_by("version_id", "page", "position", "id")
            ):
                self.surveys[q.version.survey_id] = q.version.survey
                self.versions[q.version.survey_id] = q.version_id
                self.questions[q.version_id].append(q)
            if missing := survey_ids - self.surveys.keys():
                self.surveys.update((s.pk, s) for s in Survey.objects.filter(pk__in=missing))
        self.interactions: dict[str, tuple] = {}
        if interactions:
            for row in Interaction.objects.filter(external_id__in=interactions).values_list(
                "external_id",
                "id",
                "location_id",
                "channel_id",
                "touchpoint_id",
                "customer_id",
                "customer__segment_id",
                "category",
            ):
                self.interactions[row[0]] = row[1:]
        # Dimensions.from_interaction credits the interaction's first employee (lowest id).
        self.first_employee = (
            dict(
                InteractionEmployee.objects.filter(
                    interaction_id__in=[v[0] for v in self.interactions.values()]
                )
                .values("interaction_id")
                .annotate(first=Min("employee_id"))
                .values_list("interaction_id", "first")
                .order_by()
            )
            if self.interactions
            else {}
        )
        if employees:
            self.employees = dict(
                Employee.objects.filter(external_id__in=employees).values_list("external_id", "id")
            )
        if locations:
            self.locations = dict(Location.objects.filter(code__in=locations).values_list("code", "id"))
        if externals:
            self.existing = ids_by_external_id(Response._meta.db_table, current_tenant_id(), externals)

    def _load_one(self, survey_id: int, employee: str | None, location: str | None, external: str | None):
        """What the ORM look-ups above find for one row, in one statement read into the same objects."""
        survey_cols, question_cols = _columns(Survey), _columns(Question)
        with _prepared_cursor() as cur:
            cur.execute(
                _ONE_LOOKUP_SQL,
                {
                    "org": current_tenant_id(),
                    "survey": survey_id,
                    "employee": employee,
                    "location": location,
                    "external": external,
                },
            )
            rows = cur.fetchall()
        employee_id, location_id, existing_id = rows[0][:3]
        if employee_id is not None:
            self.employees[employee] = employee_id
        if location_id is not None:
            self.locations[location] = location_id
        if existing_id is not None:
            self.existing[external] = existing_id
        split = 4 + len(survey_cols)
        if rows[0][4] is None:  # no such survey in this tenant
            return
        self.surveys[survey_id] = survey = _instance(Survey, survey_cols, rows[0][4:split])
        version_id = rows[0][3]
        if version_id is None or rows[0][split] is None:  # no version, or one without questions
            return
        self.versions[survey_id] = version_id
        version = SurveyVersion(pk=version_id, organization_id=survey.organization_id, survey=survey)
        for row in rows:
            question = _instance(Question, question_cols, row[split:])
            question._state.fields_cache["version"] = version
            self.questions[version_id].append(question)


class _PreparingCursor(psycopg.Cursor):
    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)


class _DebugWrapper(CursorDebugWrapper):
    def execute(self, sql, params=None):
        # A prepared statement leaves psycopg no query text to report: log ours.
        with self.debug_sql(sql, params, use_last_executed_query=False):
            return CursorWrapper.execute(self, sql, params)


@contextmanager
def _prepared_cursor():
    """A server-side-binding cursor for the single POST's two statements, wrapped as Django wraps
    its own (query log, execute_wrapper). PostgreSQL parses and plans each of them once per
    connection instead of on every request, which was most of its share of a POST."""
    connection.ensure_connection()
    if connection.connection.prepare_threshold is None:
        # Django turns psycopg's statement preparation off, which refuses even an explicit
        # prepare=True; a threshold nothing reaches keeps it off for every other statement.
        connection.connection.prepare_threshold = 2**31 - 1
    raw = _PreparingCursor(connection.connection)
    try:
        yield _DebugWrapper(raw, connection) if connection.queries_logged else connection.make_cursor(raw)
    finally:
        raw.close()


def _columns(model) -> list:
    """The model's concrete fields with the converters the ORM applies to what they read."""
    cached = _COLUMNS.get(model)
    if cached is None:
        table = model._meta.db_table
        cached = _COLUMNS[model] = [
            (
                f,
                f.get_col(table),
                connection.ops.get_db_converters(f.get_col(table)) + f.get_db_converters(connection),
            )
            for f in model._meta.concrete_fields
        ]
    return cached


_COLUMNS: dict = {}


def _instance(model, columns, values):
    converted = []
    for (_field, col, converters), value in zip(columns, values, strict=True):
        for convert in converters:
            value = convert(value, col, connection)
        converted.append(value)
    return model.from_db(connection.alias, [f.attname for f, _, _ in columns], converted)


def _select_list(alias: str, model) -> str:
    return ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


_ONE_LOOKUP_SQL = f"""
SELECT
    (SELECT id FROM {Employee._meta.db_table}
     WHERE organization_id = %(org)s AND external_id = %(employee)s),
    (SELECT id FROM {Location._meta.db_table} WHERE organization_id = %(org)s AND code = %(location)s),
    (SELECT id FROM {Response._meta.db_table}
     WHERE organization_id = %(org)s AND external_id = %(external)s),
    v.id, {_select_list("s", Survey)}, {_select_list("q", Question)}
FROM (SELECT 1) AS one
LEFT JOIN {Survey._meta.db_table} s ON s.organization_id = %(org)s AND s.id = %(survey)s
LEFT JOIN LATERAL (
    SELECT id FROM {SurveyVersion._meta.db_table}
    WHERE organization_id = %(org)s AND survey_id = s.id ORDER BY number DESC LIMIT 1
) v ON true
LEFT JOIN {Question._meta.db_table} q ON q.organization_id = %(org)s AND q.version_id = v.id
ORDER BY q.page, q.position, q.id
"""  # noqa: S608 - the models' own table and column names  # nosec B608


def _split_multi(questions: list[Question], values: dict) -> dict:
    """A CSV cell holds several options of a multi question as "a;b" (or "a|b", "a,b")."""
    multi = {q.key: q for q in questions if q.type == QuestionType.MULTI}
    multi.update({str(q.pk): q for q in multi.values()})
    if not multi:
        return values
    out = dict(values)
    for key, value in values.items():
        question = multi.get(str(key))
        if question is None or not isinstance(value, str):
            continue
        allowed = {str(c.get("value")) for c in question.choices or [] if isinstance(c, dict)}
        if value in allowed:
            continue
        for sep in _MULTI_SEPARATORS:
            if sep in value:
                out[key] = [v.strip() for v in value.split(sep) if v.strip()]
                break
    return out


def _clean_row(index: int, raw, res: _Resolver, tz, latest: dt.datetime) -> tuple[_Clean | None, RowResult]:
    result, errors = row_start(index, raw, _FIELD_SET, external_id_required=False)
    if errors is None:
        return None, result
    external_id = result.external_id

    survey = version_id = None
    survey_ref = raw.get("survey")
    pk = _survey_id(survey_ref)
    if survey_ref in (None, ""):
        errors["survey"] = ["This field is required."]
    elif pk is None or pk not in res.surveys:
        # Another tenant's survey reads as unknown: its existence is not ours to confirm.
        errors["survey"] = [f"Unknown survey {str(survey_ref)[:40]!r}."]
    else:
        survey = res.surveys[pk]
        version_id = res.versions.get(pk)
        if version_id is None:
            errors["survey"] = ["This survey has no questions yet."]

    source = raw.get("source") or ResponseSource.API
    if source not in API_SOURCES:
        errors["source"] = [f"Must be one of {', '.join(API_SOURCES)}."]

    locale = clean_text(raw.get("locale"), "locale", errors, required=False, max_length=16)
    if survey is not None:
        offered = {survey.default_locale, *(survey.locales or [])}
        if locale and locale not in offered:
            errors["locale"] = [f"Not one of the survey's languages ({', '.join(sorted(offered))})."]
        locale = locale or survey.default_locale

    submitted_at = None
    value = raw.get("submitted_at")
    if value not in (None, ""):
        try:
            submitted_at = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        except ValueError:
            errors["submitted_at"] = [f"Not an ISO 8601 date-time: {str(value)[:40]!r}."]
        else:
            if submitted_at.tzinfo is None:
                submitted_at = submitted_at.replace(tzinfo=tz)
            submitted_at = as_utc(submitted_at)  # an offset PostgreSQL refuses is fine in UTC
            if submitted_at is None:
                errors["submitted_at"] = ["Out of range."]
            elif submitted_at > latest:
                errors["submitted_at"] = ["Lies in the future."]
            elif submitted_at < _EARLIEST:
                # Near year 1 an offset pushes the instant before 0001-01-01 UTC, which
                # PostgreSQL stores (as BC) but Python cannot read back.
                errors["submitted_at"] = [f"Lies before {_EARLIEST.year}."]

    employee_id = None
    employee_ref = clean_text(raw.get("employee"), "employee", errors, required=False, max_length=64)
    if employee_ref:
        employee_id = res.employees.get(employee_ref)
        if employee_id is None:
            errors["employee"] = [f"Unknown employee {employee_ref!r}."]

    location_ref = clean_text(raw.get("location"), "location", errors, required=False, max_length=40)
    location_id = None
    if location_ref:
        location_id = res.locations.get(location_ref)
        if location_id is None:
            errors["location"] = [f"Unknown location {location_ref!r}."]

    interaction_id, dims = None, Dimensions(location_id=location_id, employee_id=employee_id)
    interaction_ref = clean_text(
        raw.get("interaction"), "interaction", errors, required=False, max_length=100
    )
    if interaction_ref:
        found = res.interactions.get(interaction_ref)
        if found is None:
            errors["interaction"] = [f"Unknown interaction {interaction_ref!r}."]
        else:
            interaction_id, loc, channel, touchpoint, customer, segment, category = found
            if location_id is not None and location_id != loc:
                errors["location"] = ["Differs from the interaction's location; leave it out."]
            dims = Dimensions(
                location_id=loc,
                channel_id=channel,
                touchpoint_id=touchpoint,
                employee_id=employee_id or res.first_employee.get(interaction_id),
                customer_id=customer,
                segment_id=segment,
                category=category,
            )

    values = raw.get("answers")
    answers: list[CleanAnswer] = []
    if type(values) is not dict or not values:
        errors["answers"] = ["Must be an object of {question id or key: value}."]
        values = {}
    elif version_id is not None:
        questions = res.questions.get(version_id, [])
        values = _split_multi(questions, values)
        answers, answer_errors = clean_answers(questions, values)
        for key, messages in answer_errors.items():
            errors["answers" if key == "non_field_errors" else f"answers.{key}"] = messages

    if errors:
        result.errors = errors
        return None, result
    return (
        _Clean(
            index,
            external_id,
            survey,
            version_id,
            answers,
            values,
            dims,
            interaction_id,
            source,
            locale,
            submitted_at,
        ),
        result,
    )


def _prepare(organization, rows: list) -> tuple[_Resolver, list[RowResult], list[_Clean]]:
    tz = zoneinfo.ZoneInfo(getattr(organization, "time_zone", None) or "UTC")
    latest = timezone.now() + _FUTURE_TOLERANCE
    resolver = _Resolver(rows)
    results, clean = [], []
    for index, raw in enumerate(rows):
        row, result = _clean_row(index, raw, resolver, tz, latest)
        results.append(result)
        if row is not None:
            clean.append(row)
    return resolver, results, clean


# --- one response -------------------------------------------------------------------------------


def response_submit(*, organization, actor: Actor, data) -> tuple[RowResult, Response | None]:
    """One API response, idempotent on external_id (then "duplicate").

    The row is validated as the bulk path validates it, then written with its answers, its
    ResponseReceived outbox row and its audit-log row in one statement (:func:`_record_one`):
    one round trip, atomic on its own, so no BEGIN/COMMIT either.
    """
    org_id = _check_tenant(organization)
    resolver, [result], clean = _prepare(organization, [data])
    if not clean:
        return result, None
    row = clean[0]
    existing_id = row.external_id and resolver.existing.get(row.external_id)
    if not existing_id:
        response = _record_one(organization, org_id, actor, row, resolver.questions[row.version_id])
        if response is not None:
            result.status, result.id = "created", response.pk
            return result, response
        # The same external_id committed by a concurrent request between the look-up and the insert.
        existing_id = _existing(row.external_id)
    result.status, result.id = "duplicate", existing_id
    return result, Response.objects.get(pk=existing_id)


_ONE_SQL = f"""
WITH ins AS (
    INSERT INTO {Response._meta.db_table} (organization_id, survey_id, version_id, invitation_id,
        interaction_id, external_id, source, locale, submitted_at, location_id, channel_id,
        touchpoint_id, employee_id, customer_id, segment_id, category, device_hash, ip_hash,
        created_at)
    VALUES (%(org)s, %(survey_id)s, %(version_id)s, NULL, %(interaction_id)s, %(external_id)s,
        %(source)s, %(locale)s, %(submitted_at)s, %(location_id)s, %(channel_id)s, %(touchpoint_id)s,
        %(employee_id)s, %(customer_id)s, %(segment_id)s, %(category)s, '', '', %(now)s)
    ON CONFLICT (organization_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
    RETURNING id
), ans AS (
    INSERT INTO {Answer._meta.db_table} (organization_id, response_id, question_id, question_key,
        question_type, standard_id, number, "text", choices, sentiment, sentiment_score, topics,
        survey_id, submitted_at, location_id, channel_id, touchpoint_id, employee_id, segment_id,
        category)
    SELECT %(org)s, ins.id, a.q, a.k, a.t, a.s, a.n, a.x,
        ARRAY(SELECT jsonb_array_elements_text(a.c))::varchar[], a.se, a.sc,
        ARRAY(SELECT jsonb_array_elements_text(a.tp))::varchar[], %(survey_id)s, %(submitted_at)s,
        %(location_id)s, %(channel_id)s, %(touchpoint_id)s, %(employee_id)s, %(segment_id)s,
        %(category)s
    FROM ins CROSS JOIN jsonb_to_recordset(%(answers)s::jsonb)
        AS a(o int, q bigint, k text, t text, s bigint, n numeric, x text, c jsonb, se text,
             sc float8, tp jsonb)
    ORDER BY a.o
    RETURNING id, question_id
), ev AS (
    INSERT INTO {OutboxEvent._meta.db_table} (organization_id, event_type, aggregate_type,
        aggregate_id, payload, created_at, completed_at, dispatch_count, last_error)
    SELECT %(org)s, %(event_type)s, 'Response', ins.id::text,
        jsonb_build_object('response_ids', jsonb_build_array(ins.id)) || %(payload)s::jsonb,
        %(now)s, NULL, 0, ''
    FROM ins
    RETURNING id
), log AS (
    INSERT INTO {AuditLog._meta.db_table} (organization_id, actor_user_id, actor_api_key_id,
        action, object_type, object_id, changes, request_id, created_at)
    SELECT %(org)s, %(actor_user_id)s, %(actor_api_key_id)s, 'response.record', %(object_type)s,
        ins.id::text, %(changes)s::jsonb, %(request_id)s, %(now)s
    FROM ins
)
SELECT ins.id, ev.id, (SELECT json_agg(json_build_array(ans.question_id, ans.id)) FROM ans)::text
FROM ins, ev
"""  # noqa: S608 - the models' own table names  # nosec B608


def _record_one(organization, org_id: int, actor: Actor, row: _Clean, questions) -> Response | None:
    """Store one validated row as response_record would, in one statement; None on an external_id clash.

    Same rows as response_record (response, answers with sentiment and topics, a
    ResponseReceived event with the response as aggregate, a "response.record" audit entry),
    and the same objects back for the 201 body, so nothing is read again. The tables' policies
    still check every row against the tenant.
    """
    now = timezone.now()
    submitted_at = row.submitted_at or now
    dims = row.dims
    answers, payload_answers = [], []
    for order, clean in enumerate(row.answers):
        q = clean.question
        label, score, tags = _analyse(organization, clean)
        answers.append(
            Answer(
                organization_id=org_id,
                question=q,
                question_key=q.key,
                question_type=q.type,
                standard_id=q.standard_id,
                number=clean.number,
                text=clean.text,
                choices=list(clean.choices),
                sentiment=label,
                sentiment_score=score,
                topics=tags,
                survey_id=row.survey.pk,
                submitted_at=submitted_at,
                location_id=dims.location_id,
                channel_id=dims.channel_id,
                touchpoint_id=dims.touchpoint_id,
                employee_id=dims.employee_id,
                segment_id=dims.segment_id,
                category=dims.category,
            )
        )
        payload_answers.append(
            {
                "o": order,
                "q": q.pk,
                "k": q.key,
                "t": str(q.type),
                "s": q.standard_id,
                "n": None if clean.number is None else str(clean.number),
                "x": clean.text,
                "c": list(clean.choices),
                "se": label,
                "sc": score,
                "tp": tags,
            }
        )
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    params = {
        "org": org_id,
        "survey_id": row.survey.pk,
        "version_id": row.version_id,
        "interaction_id": row.interaction_id,
        "external_id": row.external_id,
        "source": str(row.source),
        "locale": row.locale,
        "submitted_at": submitted_at,
        "location_id": dims.location_id,
        "channel_id": dims.channel_id,
        "touchpoint_id": dims.touchpoint_id,
        "employee_id": dims.employee_id,
        "customer_id": dims.customer_id,
        "segment_id": dims.segment_id,
        "category": dims.category or "",
        "now": now,
        "answers": dumps(payload_answers),
        "event_type": RESPONSE_RECEIVED,
        "payload": dumps(
            {
                "survey_id": row.survey.pk,
                "location_id": dims.location_id,
                "employee_id": dims.employee_id,
                "standard_ids": sorted({a.standard_id for a in answers if a.standard_id}),
            }
        ),
        "actor_user_id": actor.user_id,
        "actor_api_key_id": actor.api_key_id,
        "object_type": Response._meta.label,
        "changes": dumps({"survey": row.survey.pk, "source": str(row.source), "answers": len(answers)}),
        "request_id": request_id_var.get(),
    }
    with _prepared_cursor() as cur:
        cur.execute(_ONE_SQL, params)
        found = cur.fetchone()
    if found is None:
        return None
    response_id, event_id, answer_ids = found
    deliver_on_commit(org_id, event_id)
    response = Response(
        pk=response_id,
        organization_id=org_id,
        survey=row.survey,
        version_id=row.version_id,
        interaction_id=row.interaction_id,
        external_id=row.external_id,
        source=row.source,
        locale=row.locale,
        submitted_at=submitted_at,
        location_id=dims.location_id,
        channel_id=dims.channel_id,
        touchpoint_id=dims.touchpoint_id,
        employee_id=dims.employee_id,
        customer_id=dims.customer_id,
        segment_id=dims.segment_id,
        category=dims.category or "",
        created_at=now,
    )
    ids = dict(json.loads(answer_ids)) if answer_ids else {}
    for answer in answers:
        answer.pk = ids[answer.question_id]
        answer.response = response
    # The API renders the stored response from these objects: no re-read.
    response._prefetched_objects_cache = {"answers": answers}
    return response


def _existing(external_id: str) -> int | None:
    return Response.objects.filter(external_id=external_id).values_list("pk", flat=True).first()


# --- many responses -----------------------------------------------------------------------------


def responses_ingest(*, organization, actor: Actor, rows: list) -> list[RowResult]:
    """Validate and store a batch of responses set-based; one result per input row."""
    org_id = _check_tenant(organization)
    if len(rows) > settings.BULK_INGEST_MAX_ROWS:
        raise TooManyRows(f"At most {settings.BULK_INGEST_MAX_ROWS} rows per call; got {len(rows)}.")
    resolver, results, clean = _prepare(organization, rows)
    first_row_of: dict[str, int] = {}
    to_write: list[_Clean] = []
    for row in clean:
        result = results[row.row]
        if row.external_id is not None:
            if row.external_id in resolver.existing:
                result.status, result.id = "duplicate", resolver.existing[row.external_id]
                continue
            if row.external_id in first_row_of:
                result.status = "duplicate"
                continue
            first_row_of[row.external_id] = row.row
        to_write.append(row)

    now = timezone.now()
    with transaction.atomic():
        written = _write(organization, org_id, to_write, now) if to_write else {}
        # Rows a concurrent call stored first were skipped by ON CONFLICT: report them as duplicates.
        raced = [r.external_id for r in to_write if r.row not in written and r.external_id]
        stored = ids_by_external_id(Response._meta.db_table, org_id, raced) if raced else {}
        by_ext = {r.external_id: written[r.row] for r in to_write if r.row in written and r.external_id}
        by_ext.update(stored)
        for row in to_write:
            result = results[row.row]
            if row.row in written:
                result.status, result.id = "created", written[row.row]
            else:
                result.status, result.id = "duplicate", stored.get(row.external_id)
        for result in results:
            if result.status == "duplicate" and result.id is None:
                result.id = by_ext.get(result.external_id)
        _emit(org_id, to_write, written)
        summary = {"created": 0, "duplicate": 0, "error": 0}
        for result in results:
            summary[result.status] += 1
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="responses.ingest",
            object_type=Response._meta.label,
            changes={"rows": len(rows), **summary},
        )
    return results


def _emit(org_id: int, rows: list[_Clean], written: dict[int, int]) -> None:
    """One ResponseReceived per survey and ≤ EVENT_CHUNK responses, shaped like response_record's."""
    by_survey: dict[int, list[_Clean]] = defaultdict(list)
    for row in rows:
        if row.row in written:
            by_survey[row.survey.pk].append(row)
    for survey_id, group in sorted(by_survey.items()):
        for start in range(0, len(group), EVENT_CHUNK):
            chunk = group[start : start + EVENT_CHUNK]
            locations = {r.dims.location_id for r in chunk}
            employees = {r.dims.employee_id for r in chunk}
            emit(
                organization=org_id,
                event_type=RESPONSE_RECEIVED,
                payload={
                    "response_ids": [written[r.row] for r in chunk],
                    "survey_id": survey_id,
                    "location_id": next(iter(locations)) if len(locations) == 1 else None,
                    "employee_id": next(iter(employees)) if len(employees) == 1 else None,
                    "standard_ids": sorted(
                        {a.question.standard_id for r in chunk for a in r.answers if a.question.standard_id}
                    ),
                },
            )


def _write(organization, org_id: int, rows: list[_Clean], now: dt.datetime) -> dict[int, int]:
    """Insert responses and their answers in one statement; returns {row index: response id}."""
    response_table = connection.ops.quote_name(Response._meta.db_table)
    answer_table = connection.ops.quote_name(Answer._meta.db_table)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [Response._meta.db_table, len(rows)],
        )
        ids = [pk for (pk,) in cur.fetchall()]
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    r_cols = {
        "id": ids,
        "row_no": [r.row for r in rows],
        "survey_id": [r.survey.pk for r in rows],
        "version_id": [r.version_id for r in rows],
        "interaction_id": [r.interaction_id for r in rows],
        "external_id": [r.external_id for r in rows],
        "source": [str(r.source) for r in rows],
        "locale": [r.locale for r in rows],
        "submitted_at": [r.submitted_at or now for r in rows],
        "location_id": [r.dims.location_id for r in rows],
        "channel_id": [r.dims.channel_id for r in rows],
        "touchpoint_id": [r.dims.touchpoint_id for r in rows],
        "employee_id": [r.dims.employee_id for r in rows],
        "customer_id": [r.dims.customer_id for r in rows],
        "segment_id": [r.dims.segment_id for r in rows],
        "category": [r.dims.category or "" for r in rows],
    }
    a_cols: dict[str, list] = defaultdict(list)
    for pk, row in zip(ids, rows, strict=True):
        for clean in row.answers:
            q = clean.question
            label, score, tags = _analyse(organization, clean)
            a_cols["a_response_id"].append(pk)
            a_cols["a_question_id"].append(q.pk)
            a_cols["a_key"].append(q.key)
            a_cols["a_type"].append(str(q.type))
            a_cols["a_standard_id"].append(q.standard_id)
            a_cols["a_number"].append(clean.number)
            a_cols["a_text"].append(clean.text)
            a_cols["a_choices"].append(dumps(list(clean.choices)))
            a_cols["a_sentiment"].append(label)
            a_cols["a_score"].append(score)
            a_cols["a_topics"].append(dumps(tags))
    connection.ensure_connection()
    # A server-side-binding cursor with binary parameters, as in cem.ingest: client-side binding
    # would render each array as SQL text.
    with psycopg.Cursor(connection.connection) as cur:
        cur.execute("SET LOCAL jit = off")  # unnest() has no statistics; see cem.ingest._write
        cur.execute(
            f"""
            WITH r AS (
                SELECT * FROM unnest(%(id)b::bigint[], %(row_no)b::int[], %(survey_id)b::bigint[],
                    %(version_id)b::bigint[], %(interaction_id)b::bigint[], %(external_id)b::text[],
                    %(source)b::text[], %(locale)b::text[], %(submitted_at)b::timestamptz[],
                    %(location_id)b::bigint[], %(channel_id)b::bigint[], %(touchpoint_id)b::bigint[],
                    %(employee_id)b::bigint[], %(customer_id)b::bigint[], %(segment_id)b::bigint[],
                    %(category)b::text[])
                AS t(id, row_no, survey_id, version_id, interaction_id, external_id, source, locale,
                    submitted_at, location_id, channel_id, touchpoint_id, employee_id, customer_id,
                    segment_id, category)
            ), ins AS (
                INSERT INTO {response_table} (id, organization_id, survey_id, version_id, invitation_id,
                    interaction_id, external_id, source, locale, submitted_at, location_id, channel_id,
                    touchpoint_id, employee_id, customer_id, segment_id, category, device_hash, ip_hash,
                    created_at)
                SELECT id, %(org)b, survey_id, version_id, NULL, interaction_id, external_id, source, locale,
                    submitted_at, location_id, channel_id, touchpoint_id, employee_id, customer_id,
                    segment_id, category, '', '', now()
                FROM r ORDER BY id
                ON CONFLICT (organization_id, external_id) WHERE external_id IS NOT NULL DO NOTHING
                RETURNING id
            ), ans AS (
                INSERT INTO {answer_table} (organization_id, response_id, question_id, question_key,
                    question_type, standard_id, number, "text", choices, sentiment, sentiment_score, topics,
                    survey_id, submitted_at, location_id, channel_id, touchpoint_id, employee_id, segment_id,
                    category)
                SELECT %(org)b, a.response_id, a.question_id, a.question_key, a.question_type, a.standard_id,
                    a.number, a.body, ARRAY(SELECT jsonb_array_elements_text(a.choices::jsonb))::varchar[],
                    a.sentiment, a.score, ARRAY(SELECT jsonb_array_elements_text(a.topics::jsonb))::varchar[],
                    r.survey_id, r.submitted_at, r.location_id, r.channel_id, r.touchpoint_id, r.employee_id,
                    r.segment_id, r.category
                FROM unnest(%(a_response_id)b::bigint[], %(a_question_id)b::bigint[], %(a_key)b::text[],
                    %(a_type)b::text[], %(a_standard_id)b::bigint[], %(a_number)b::numeric[],
                    %(a_text)b::text[], %(a_choices)b::text[], %(a_sentiment)b::text[],
                    %(a_score)b::float8[], %(a_topics)b::text[])
                    AS a(response_id, question_id, question_key, question_type, standard_id, number, body,
                        choices, sentiment, score, topics)
                JOIN ins ON ins.id = a.response_id
                JOIN r ON r.id = a.response_id
            )
            SELECT r.row_no, ins.id FROM ins JOIN r USING (id)
            """,  # noqa: S608 - table names are the models' own  # nosec B608
            {"org": org_id, **r_cols, **a_cols},
        )
        return dict(cur.fetchall())


# --- CSV ----------------------------------------------------------------------------------------


def rows_from_csv(data: bytes | str) -> list[dict]:
    """Columns survey, external_id, interaction, employee, location, submitted_at, locale, source;
    every other column is a question key. An empty cell is an unanswered question."""
    return csv_rows(data, fields=_FIELD_SET, rest="answers")
