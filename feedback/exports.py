"""Response exports: the request service and the streaming CSV / XLSX builder.

A request records *what* to export (survey, location, period, source) together with the
requester's hierarchy scope, frozen at request time: the Celery task that builds the file runs
without a request, and a store manager's export must stay inside their store even if a filter
says otherwise.

The builder never holds the result in memory. Responses come from a server-side cursor
(``.iterator(chunk_size=CHUNK)``); each chunk's answers are fetched with one query and pivoted
into one row per response (a column per question key, versions combined on the key), written,
and dropped, and ``rows_done`` is saved so the page can show progress. Memory is bounded by the
chunk size whatever the row count (bench/feedback.py exports 1,000,000 responses).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import uuid
import zoneinfo
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from pathlib import Path

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date

from cem.models import Location, Organization
from cem.principals import Actor
from cem.scoping import scope_level
from cem.services import _check_tenant, audit_log_write
from feedback.models import ExportJob, Question, QuestionType, Response, ResponseSource, Survey

CHUNK = 5000
FORMATS = ("csv", "xlsx")
FILTER_KEYS = ("survey", "location", "date_from", "date_to", "source")
# Excel, LibreOffice and Google Sheets evaluate a cell that starts with one of these as a formula
# (OWASP "CSV injection"); tab and carriage return can smuggle one past naive checks.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_ROWS = 1_048_576  # per worksheet, header included

BASE_COLUMNS = (
    "response_id",
    "submitted_at",
    "survey",
    "survey_version",
    "source",
    "locale",
    "location_code",
    "location",
    "employee_id",
    "employee",
    "channel",
    "touchpoint",
    "segment",
    "category",
)
_RESPONSE_FIELDS = (
    "id",
    "submitted_at",
    "survey__name",
    "version__number",
    "source",
    "locale",
    "location__code",
    "location__name",
    "employee__external_id",
    "employee__name",
    "channel__code",
    "touchpoint__code",
    "segment__name",
    "category",
)


# --- scope ------------------------------------------------------------------------------------


def export_scope(membership) -> dict:
    """The part of the hierarchy a member's exports are confined to ({} = the organization)."""
    level = scope_level(getattr(membership, "role", None))
    if level == "organization":
        return {}
    attr = {"region": "region_id", "location": "location_id", "employee": "employee_id"}.get(level)
    value = getattr(membership, attr, None) if attr else None
    if value is None:
        raise ValidationError("Your role has no part of the hierarchy to export.")
    return {level: value}


def _scope_filter(scope: dict) -> dict:
    if not scope:
        return {}
    ((level, value),) = scope.items()
    return {Response.SCOPE_PATHS[level]: value}


def jobs_visible_to(queryset, *, membership, user):
    """Organization-wide roles see every export of the tenant; everyone else only their own."""
    if scope_level(getattr(membership, "role", None)) == "organization":
        return queryset
    if user is None or not getattr(user, "pk", None):
        return queryset.none()
    return queryset.filter(requested_by_id=user.pk)


# --- request ----------------------------------------------------------------------------------


def _clean_filters(raw: dict, scope: dict) -> dict:
    errors: dict[str, list[str]] = {}
    clean: dict = {}
    unknown = set(raw) - set(FILTER_KEYS)
    if unknown:
        errors["filters"] = [f"Unknown filter(s): {', '.join(sorted(unknown))}."]
    survey = raw.get("survey")
    if survey not in (None, ""):
        survey_id = getattr(survey, "pk", survey)
        try:
            survey_id = int(survey_id)
        except (TypeError, ValueError):
            errors["survey"] = ["Not a survey id."]
        else:
            if not Survey.objects.filter(pk=survey_id).exists():
                errors["survey"] = ["Unknown survey."]
            clean["survey"] = survey_id
    location = raw.get("location")
    if location not in (None, ""):
        location_id = getattr(location, "pk", location)
        try:
            location_id = int(location_id)
        except (TypeError, ValueError):
            errors["location"] = ["Not a location id."]
        else:
            allowed = Location.objects.filter(pk=location_id)
            if scope.get("region"):
                allowed = allowed.filter(region_id=scope["region"])
            elif scope.get("location"):
                allowed = allowed.filter(pk=scope["location"])
            if not allowed.exists():
                errors["location"] = ["Unknown location, or outside your scope."]
            clean["location"] = location_id
    for name in ("date_from", "date_to"):
        value = raw.get(name)
        if value in (None, ""):
            continue
        day = value if isinstance(value, dt.date) else parse_date(str(value))
        if day is None:
            errors[name] = ["Not a date (YYYY-MM-DD)."]
        else:
            clean[name] = day.isoformat()
    if clean.get("date_from") and clean.get("date_to") and clean["date_from"] > clean["date_to"]:
        errors["date_to"] = ["Must not be before the start date."]
    source = raw.get("source")
    if source not in (None, ""):
        if source not in ResponseSource.values:
            errors["source"] = [f"Must be one of {', '.join(ResponseSource.values)}."]
        clean["source"] = source
    if errors:
        raise ValidationError(errors)
    return clean


@transaction.atomic
def export_request(
    *, organization: Organization, actor: Actor, format: str, filters: dict, scope: dict, requested_by=None
) -> ExportJob:
    """Queue an export of the responses matching ``filters`` inside ``scope`` (see export_scope).

    Raises ValidationError for a bad format or filter, or a location outside the scope.
    The build task is sent when the transaction commits.
    """
    org_id = _check_tenant(organization)
    if format not in FORMATS:
        raise ValidationError({"format": [f"Must be one of {', '.join(FORMATS)}."]})
    if scope and (len(scope) != 1 or next(iter(scope)) not in Response.SCOPE_PATHS):
        raise ValueError(f"bad export scope {scope!r}")
    clean = _clean_filters(filters or {}, scope)
    job = ExportJob.objects.create(
        organization_id=org_id,
        requested_by=requested_by,
        format=format,
        filters={**clean, "scope": scope},
        # Unguessable, and fixed now so a retried build overwrites the same file.
        file_path=f"exports/{org_id}/{uuid.uuid4().hex}.{format}",
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="export.request",
        instance=job,
        changes={"format": format, "filters": job.filters},
    )
    from feedback.export_tasks import export_build

    transaction.on_commit(lambda: export_build.delay(org_id, job.pk))
    return job


def export_downloaded(*, organization: Organization, actor: Actor, job: ExportJob) -> None:
    """Who took a copy of the data, and when (exports leave the platform's access control)."""
    audit_log_write(
        organization=_check_tenant(organization), actor=actor, action="export.download", instance=job
    )


def export_file(job: ExportJob) -> Path | None:
    """The finished file of a job, or None; never a path outside the tenant's export folder."""
    if job.status != ExportJob.Status.DONE or not job.file_path:
        return None
    root = (Path(settings.MEDIA_ROOT) / "exports" / str(job.organization_id)).resolve()
    path = (Path(settings.MEDIA_ROOT) / job.file_path).resolve()
    if path.parent != root or not path.is_file():
        return None
    return path


# --- build ------------------------------------------------------------------------------------


def responses_for(filters: dict, tz):
    """The job's responses: its filters and its frozen scope applied (tenant from the context).

    Dates are whole days in the organization's time zone, both ends included.
    """
    qs = Response.objects.filter(**_scope_filter(filters.get("scope") or {}))
    if filters.get("survey"):
        qs = qs.filter(survey_id=filters["survey"])
    if filters.get("location"):
        qs = qs.filter(location_id=filters["location"])
    if filters.get("source"):
        qs = qs.filter(source=filters["source"])
    if filters.get("date_from"):
        start = dt.datetime.combine(dt.date.fromisoformat(filters["date_from"]), dt.time.min, tzinfo=tz)
        qs = qs.filter(submitted_at__gte=start)
    if filters.get("date_to"):
        end = dt.datetime.combine(dt.date.fromisoformat(filters["date_to"]), dt.time.min, tzinfo=tz)
        qs = qs.filter(submitted_at__lt=end + dt.timedelta(days=1))
    return qs


@dataclass(frozen=True)
class _QuestionColumn:
    key: str
    type: str


def question_columns(filters: dict) -> list[_QuestionColumn]:
    """One column per question key of the surveys in the export, in the order the newest version
    asks them; a key asked by several versions (or surveys) is one column."""
    qs = Question.objects.all()
    if filters.get("survey"):
        qs = qs.filter(version__survey_id=filters["survey"])
    seen: dict[str, _QuestionColumn] = {}
    rows = qs.order_by("version__survey__name", "-version__number", "page", "position", "id").values_list(
        "key", "type"
    )
    for key, qtype in rows:
        seen.setdefault(key, _QuestionColumn(key, qtype))
    return list(seen.values())


def header(columns: list[_QuestionColumn]) -> list[str]:
    out = list(BASE_COLUMNS)
    for c in columns:
        out.append(c.key)
        if c.type == QuestionType.TEXT:
            out += [f"{c.key}_sentiment", f"{c.key}_sentiment_score", f"{c.key}_topics"]
    return out


def escape_cell(value):
    """Neutralise spreadsheet formulas in text cells; numbers and empty cells pass through."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _number(value: Decimal | None):
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


_ANSWERS_SQL = (
    "SELECT response_id, question_key, number, text, choices, sentiment, sentiment_score, topics"
    " FROM feedback_answer WHERE organization_id = %b AND response_id = ANY(%b::bigint[])"
)


def _answers_by_response(org_id: int, response_ids: list[int]) -> dict[int, dict[str, tuple]]:
    """One query for a chunk's answers; RLS applies as on every tenant read.

    Array parameter, server-side binding: ``__in`` with 5,000 placeholders costs more to build
    and parse than the query itself takes to run.
    """
    connection.ensure_connection()
    out: dict[int, dict[str, tuple]] = {}
    with psycopg.Cursor(connection.connection) as cur:
        cur.execute(_ANSWERS_SQL, [org_id, response_ids])
        for response_id, key, number, text, choices, sentiment, score, topics in cur:
            out.setdefault(response_id, {})[key] = (number, text, choices, sentiment, score, topics)
    return out


def _rows(
    org_id: int, tz, columns: list[_QuestionColumn], chunk: list[tuple]
) -> Iterator[list[str | int | float | None]]:
    answers = _answers_by_response(org_id, [r[0] for r in chunk])
    for r in chunk:
        (rid, submitted, survey, version, source, locale, loc_code, loc_name, emp_id, emp_name) = r[:10]
        channel, touchpoint, segment, category = r[10:]
        row = [
            rid,
            submitted.astimezone(tz).isoformat(timespec="seconds"),
            escape_cell(survey),
            version,
            source,
            escape_cell(locale),
            escape_cell(loc_code),
            escape_cell(loc_name),
            escape_cell(emp_id),
            escape_cell(emp_name),
            escape_cell(channel),
            escape_cell(touchpoint),
            escape_cell(segment),
            category,
        ]
        given = answers.get(rid, {})
        for c in columns:
            a = given.get(c.key)
            if a is None:
                row.append(None)
                if c.type == QuestionType.TEXT:
                    row += [None, None, None]
                continue
            number, text, choices, sentiment, score, topics = a
            if c.type == QuestionType.TEXT:
                row += [escape_cell(text), sentiment or None, score, escape_cell("; ".join(topics)) or None]
            elif choices:
                row.append(escape_cell("; ".join(choices)))
            elif number is not None:
                row.append(_number(number))
            else:
                row.append(escape_cell(text) or None)
        yield row


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    it = iter(iterable)
    while chunk := list(islice(it, size)):
        yield chunk


class _CsvSink:
    def __init__(self, path: Path):
        self.file = open(path, "w", newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed in close()
        self.writer = csv.writer(self.file)

    def header(self, names: list[str]) -> None:
        self.writer.writerow(names)

    def rows(self, rows: Iterable[list]) -> None:
        self.writer.writerows(rows)

    def close(self) -> None:
        self.file.close()


class _XlsxSink:
    def __init__(self, path: Path):
        import xlsxwriter

        # constant_memory: each row is flushed to a temp file once the next one starts, so rows
        # must arrive in order (they do). Strings are never turned into formulas or links.
        self.book = xlsxwriter.Workbook(
            str(path),
            {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False},
        )
        self.names: list[str] = []
        self.sheet = None
        self.row = 0
        self.sheets = 0

    def _new_sheet(self) -> None:
        self.sheets += 1
        self.sheet = self.book.add_worksheet("Responses" if self.sheets == 1 else f"Responses {self.sheets}")
        self.sheet.write_row(0, 0, self.names)
        self.row = 1

    def header(self, names: list[str]) -> None:
        self.names = names
        self._new_sheet()

    def rows(self, rows: Iterable[list]) -> None:
        for values in rows:
            if self.row >= XLSX_MAX_ROWS:
                self._new_sheet()
            self.sheet.write_row(self.row, 0, values)
            self.row += 1

    def close(self) -> None:
        self.book.close()


SINKS = {"csv": _CsvSink, "xlsx": _XlsxSink}


def export_build(job: ExportJob) -> int:
    """Write the job's file; returns the number of responses exported. Tenant from the context."""
    org_id = _check_tenant(job.organization_id)
    filters = job.filters or {}
    tz = zoneinfo.ZoneInfo(Organization.objects.get(pk=org_id).time_zone or "UTC")
    qs = responses_for(filters, tz)
    total = qs.count()
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.RUNNING, rows_total=total, rows_done=0, error=""
    )
    columns = question_columns(filters)
    final = Path(settings.MEDIA_ROOT) / job.file_path
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".part")
    sink = SINKS[job.format](partial)
    done = 0
    try:
        sink.header(header(columns))
        rows = qs.order_by("submitted_at", "id").values_list(*_RESPONSE_FIELDS)
        for chunk in _chunks(rows.iterator(chunk_size=CHUNK), CHUNK):
            sink.rows(_rows(org_id, tz, columns, chunk))
            done += len(chunk)
            ExportJob.objects.filter(pk=job.pk).update(rows_done=done)
    finally:
        sink.close()
    os.replace(partial, final)
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.DONE, rows_done=done, rows_total=done, finished_at=timezone.now()
    )
    return done


def export_failed(job_id: int, exc: BaseException) -> None:
    ExportJob.objects.filter(pk=job_id).update(
        status=ExportJob.Status.FAILED,
        error=f"{type(exc).__name__}: {exc}"[:2000],
        finished_at=timezone.now(),
    )
