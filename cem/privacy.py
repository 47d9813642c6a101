"""Privacy (GDPR / CCPA) services: consent, data-subject exports and erasures, retention.

**Subjects** are customers (found by external id or email) and employees (external id, email or
id). What the organization holds about one is found mechanically: every tenant model with a
foreign key to ``Customer`` (or to ``Employee`` and the employee's logins) is walked, so a model
added later is exported and detached without anyone editing this file. What a foreign key
cannot reach (a customer's answers hang off their responses; names written into comments) is
handled by each app's ``privacy_hooks`` module (:class:`Contributor`), discovered like admin.py.

**Erasure keeps the numbers and drops the person**, in two steps.

1. **In the request** (one transaction): the person's own records. The request record is written
   (status ``redacting``) with the audit-log row, and the sweep is queued for when they commit.

   - A customer: their comments, the case notes about them, their interactions' attributes and
     the audit log about them are redacted of their email, phone, external id and any name the
     request gives (``redact_terms``); scheduled invitations are withdrawn; their identifiers go
     on the suppression list; responses, interactions and invitations lose the link to them
     (``customer = NULL``) but keep their scores, so every aggregate stays as it was; their CRM
     purchases and consent history are deleted, then the customer row itself. With
     ``delete_responses`` their responses are deleted instead, and ``ResponseErased`` takes them
     out of the rollups and reverses what they earned.
   - An employee: their name, email and external id are replaced, their logins are deactivated
     and anonymised (unless the login also belongs to another organization: then only this
     organization's membership is ended), their wallet renamed, their name redacted from their
     learning statements, certificates and the notes of their own ledger transactions and
     redemptions. Scores, audits, lessons and the points ledger stay attributed to the (now
     anonymous) employee row, so rollups, rankings and the ledger are unchanged: in the ledger
     only the note text changes, through the one path its append-only guard lets by
     (``cem.db.purge.ledger_redaction``), never an amount, an account or an id.

   The request's own reason is redacted before it is recorded.

2. **After it** (:func:`erasure_sweep`, Celery task ``cem.privacy_erasure_sweep``, retried,
   idempotent): the organization's free text. What the apps name in ``Contributor.sweep`` (an
   employee's every name in comments, case notes, audit answers, disputes and recognitions),
   then the distinctive identifiers (email, phone, full name) in every free-text column of every
   tenant table, found from the field types so a table added later is covered: notes about
   colleagues, ledger notes, event and webhook payloads, stored API responses, the audit log.
   Whole tables are read there, which on a large organization takes minutes: never inside a
   web request, and in short transactions (primary-key windows). Then the request is ``done``
   with the counts and ``finished_at``.

Every request leaves a :class:`PrivacyRequest` (type and id of the subject, never its identity)
and an audit-log row. Exports are ZIP files of JSON, built by a Celery task
(``cem.privacy_export_build``) and kept ``RetentionPolicy.exports_days``.

**Retention** (:func:`retention_apply`, daily from beat per organization): comments, invitations,
contact details on closed cases and the abuse-control hashes older than the organization's
limits are removed; aggregates stay. It also queues again the sweep of an erasure still
``redacting`` an hour after it was asked.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import hashlib
import json
import re
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, models, transaction
from django.db.models import F, Func, Min, Q, Value
from django.db.models.functions import Cast, Left
from django.db.models.lookups import IRegex, Regex
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from cem import suppression
from cem.models import AuditLog, Customer, Employee, Interaction, Membership, Organization
from cem.models.privacy import (
    ConsentChannel,
    ConsentRecord,
    ConsentSource,
    PrivacyRequest,
    RetentionPolicy,
    SuppressedIdentifier,
)
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write, record_create, record_update
from cem.tenancy import tenant_models, unscoped
from cem.throttle import keyed_hash

REDACTED = "[redacted]"
UPDATE_CHUNK = 5000
REASON_MAX = 500
EXPORT_CHUNK = 2000
CUSTOMER = PrivacyRequest.SubjectType.CUSTOMER
EMPLOYEE = PrivacyRequest.SubjectType.EMPLOYEE
# User fields an export shows (never the password hash).
USER_EXPORT_FIELDS = (
    "id",
    "username",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "date_joined",
    "last_login",
)


# --- subjects -----------------------------------------------------------------------------------


@dataclass
class Subject:
    type: str
    instance: Customer | Employee
    user_ids: list[int] = field(default_factory=list)
    # Strings to redact wherever they are written: matched case-insensitively as whole words.
    terms: list[str] = field(default_factory=list)
    # Single name parts ("Jane"): matched only as written, so "will" is not taken for "Will".
    name_parts: list[str] = field(default_factory=list)

    @property
    def pk(self) -> int:
        return self.instance.pk

    @property
    def model(self) -> type[models.Model]:
        return type(self.instance)

    def label(self) -> str:
        return f"{self.type} #{self.pk}"


def _clean_terms(values: Iterable[str]) -> list[str]:
    """Terms worth redacting: short ones ("12", "Al") would eat ordinary words and dates."""
    out = []
    for value in values or ():
        value = " ".join(str(value or "").split())
        too_short = len(value) < 3 or (value.isdigit() and len(value) < 5)
        if not too_short and value not in out:
            out.append(value)
    return out


def distinctive(term: str) -> bool:
    """An identifier nobody else shares (an email, a phone number, a full name): safe to redact
    wherever it appears, not only in rows about the subject."""
    digits = sum(c.isdigit() for c in term)
    return "@" in term or digits >= 7 or (" " in term and not term.replace(" ", "").isdigit())


def customer_subject(customer: Customer, redact_terms: Iterable[str] = ()) -> Subject:
    terms = _clean_terms([customer.external_id, customer.email, customer.phone, *redact_terms])
    return Subject(CUSTOMER, customer, terms=terms)


def _employee_users(employee: Employee) -> list[int]:
    return list(
        Membership.objects.filter(employee=employee).order_by("user_id").values_list("user_id", flat=True)
    )


def employee_subject(employee: Employee, redact_terms: Iterable[str] = ()) -> Subject:
    user_ids = _employee_users(employee)
    logins = list(get_user_model().objects.filter(pk__in=user_ids).values_list("username", "email"))
    terms = _clean_terms(
        [
            employee.name,
            employee.email,
            employee.external_id,
            *(v for pair in logins for v in pair),
            *redact_terms,
        ]
    )
    parts = [p for p in re.split(r"[\s,]+", employee.name or "") if len(p) >= 3 and p[0].isupper()]
    return Subject(EMPLOYEE, employee, user_ids=user_ids, terms=terms, name_parts=_clean_terms(parts))


def find_subject(subject_type: str, *, id=None, external_id: str = "", email: str = ""):
    """The customer or employee a request names, by id, external id or email; 400 naming the field."""
    model = {CUSTOMER: Customer, EMPLOYEE: Employee}.get(subject_type)
    if model is None:
        raise ValidationError({"subject_type": "Must be 'customer' or 'employee'."})
    given = {
        k: v for k, v in (("id", id), ("external_id", external_id), ("email", email)) if v not in (None, "")
    }
    if len(given) != 1:
        raise ValidationError({"external_id": "Give exactly one of id, external_id or email."})
    ((name, value),) = given.items()
    qs = model.objects.all()
    if name == "id":
        try:
            qs = qs.filter(pk=int(value))
        except (TypeError, ValueError):
            raise ValidationError({"id": "Not an id."}) from None
    elif name == "external_id":
        qs = qs.filter(external_id=str(value).strip())
    else:
        qs = qs.filter(email__iexact=str(value).strip())
    found = list(qs[:2])
    if not found:
        raise ValidationError({name: f"No {subject_type} with this {name.replace('_', ' ')}."})
    if len(found) > 1:
        raise ValidationError({name: f"Several {subject_type}s have this {name}; use the external id."})
    return found[0]


def subject_hash(subject_type: str, instance) -> str:
    """Recognises the same person in a later request without keeping who they are."""
    return keyed_hash("privacy-subject", f"{subject_type}:{instance.external_id}")


# --- contributors (one per app, in <app>/privacy_hooks.py) --------------------------------------


class Contributor:
    """What an app adds to exports, erasures, consent withdrawals and retention.

    Each method runs inside the caller's transaction and tenant and returns counts for the
    audit log; the default does nothing. ``erase`` handles the subject's own rows, in the
    erasure's request; text anyone may have written about them, across the organization, is
    named by ``sweep`` and rewritten after the request by the erasure's sweep task.
    """

    name = ""

    def export(self, subject: Subject) -> Iterable[tuple[type[models.Model], models.QuerySet]]:
        return ()

    def erase(self, subject: Subject, *, redactor: Redactor, reason: str, options: dict) -> dict:
        return {}

    def sweep(self, subject_type: str) -> Iterable[SweepTarget]:
        return ()

    def consent_withdrawn(self, customer: Customer, channel: str, reason: str) -> dict:
        return {}

    def retention(self, policy: RetentionPolicy, now: dt.datetime) -> dict:
        return {}


_contributors: dict[str, Contributor] = {}
_discovered = False


def register(contributor: Contributor) -> Contributor:
    _contributors[contributor.name] = contributor
    return contributor


def contributors() -> list[Contributor]:
    global _discovered
    if not _discovered:
        autodiscover_modules("privacy_hooks")
        _discovered = True
    return [_contributors[name] for name in sorted(_contributors)]


# --- redaction ----------------------------------------------------------------------------------


class Redactor:
    """Replaces a subject's identifiers with ``[redacted]`` in text and in JSON string values.

    ``terms`` match case-insensitively, ``name_parts`` ("Jane") only as written, both as whole
    words. Text columns are rewritten by PostgreSQL (:meth:`rewrite`: one UPDATE with
    ``regexp_replace``, the same pattern as :meth:`text` written for its regex engine), so rows
    are never loaded into Python; JSON and bytes are walked in Python, on the rows the database
    picked out.
    """

    def __init__(self, terms: Iterable[str], name_parts: Iterable[str] = (), *, distinctive_only=False):
        terms = [t for t in terms if distinctive(t)] if distinctive_only else list(terms)
        insensitive = sorted(terms, key=len, reverse=True)
        parts = [] if distinctive_only else list(name_parts)
        sensitive = [p for p in parts if p.lower() not in {t.lower() for t in insensitive}]
        alternatives = [rf"(?i:{re.escape(t)})" for t in insensitive] + [re.escape(p) for p in sensitive]
        self.terms, self.name_parts = insensitive, sensitive
        self.words = insensitive + sensitive
        self.pattern = (
            re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)") if alternatives else None
        )
        # PostgreSQL's regex has no case-insensitive group: [jJ][aA]… stands for (?i:ja…).
        sql_alternatives = [_sql_literal(t, fold=True) for t in insensitive]
        sql_alternatives += [_sql_literal(p, fold=False) for p in sensitive]
        word = "[[:alnum:]_]"
        self.sql_pattern = f"(?<!{word})(?:{'|'.join(sql_alternatives)})(?!{word})"
        # Rows that may mention a word, for what is checked in Python (JSON): a superset, so
        # case-insensitive and without the word boundaries (JSON text escapes what is around).
        self.sql_candidates = "(?:" + "|".join(_sql_literal(w, fold=False) for w in self.words) + ")"

    @classmethod
    def of(cls, subject: Subject, *, distinctive_only: bool = False) -> Redactor:
        return cls(subject.terms, subject.name_parts, distinctive_only=distinctive_only)

    def text(self, value: str) -> str:
        if not value or self.pattern is None:
            return value
        return self.pattern.sub(REDACTED, value)

    def json(self, value):
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, dict):
            return {k: self.json(v) for k, v in value.items()}
        return value

    def mentions(self, field_name: str, *, json: bool = False) -> Q:
        """Rows whose ``field_name`` may mention a word (a superset; JSON is cast to text)."""
        value = Cast(field_name, models.TextField()) if json else F(field_name)
        return Q(IRegex(value, self.sql_candidates))

    def rewrite(self, queryset, text_fields=(), json_fields=(), batch: int = 500) -> int:
        """Redact the fields of every row of ``queryset`` that mentions the subject; rows changed."""
        if self.pattern is None:
            return 0
        changed = set()
        if text_fields:
            changed |= self._rewrite_text(queryset, list(text_fields))
        if json_fields:
            changed |= self._rewrite_json(queryset, list(json_fields), batch)
        return len(changed)

    def _rewrite_text(self, queryset, fields: list[str]) -> set:
        model = queryset.model
        match = Q(pk__in=[])
        for name in fields:
            match |= Q(Regex(F(name), self.sql_pattern)) & ~Q(**{name: ""})
        pks = set(queryset.filter(match).values_list("pk", flat=True))
        if not pks:
            return pks
        values = {}
        for name in fields:
            new = Func(
                F(name), Value(self.sql_pattern), Value(REDACTED), Value("g"), function="regexp_replace"
            )
            # "[redacted]" can be longer than what it replaces ("Al Li"): never past the column's size.
            limit = model._meta.get_field(name).max_length
            values[name] = Left(new, limit) if limit else new
        # The pattern again: a row another sweep redacted meanwhile is left alone. In chunks: an
        # employee's own notes can be more rows than one statement takes parameters.
        ordered = sorted(pks)
        for start in range(0, len(ordered), UPDATE_CHUNK):
            chunk = ordered[start : start + UPDATE_CHUNK]
            model._base_manager.filter(pk__in=chunk).filter(match).update(**values)
        return pks

    def _rewrite_json(self, queryset, fields: list[str], batch: int) -> set:
        where = Q(pk__in=[])
        for name in fields:
            where |= self.mentions(name, json=True)
        changed, pks = [], set()
        for obj in queryset.filter(where).only("pk", *fields).iterator(chunk_size=batch):
            dirty = False
            for name in fields:
                new = self.json(getattr(obj, name))
                dirty |= new != getattr(obj, name)
                setattr(obj, name, new)
            if dirty:
                changed.append(obj)
                pks.add(obj.pk)
            if len(changed) >= batch:
                queryset.model._base_manager.bulk_update(changed, fields)
                changed = []
        if changed:
            queryset.model._base_manager.bulk_update(changed, fields)
        return pks

    def rewrite_binary(self, queryset, field_name: str) -> int:
        """Redact UTF-8 text kept as bytes (stored API responses); rows changed."""
        if self.pattern is None:
            return 0
        escaped = Func(F(field_name), Value("escape"), function="encode", output_field=models.TextField())
        where = Q(pk__in=[])
        for word in self.words:
            where |= Q(_escaped__icontains=_bytea_escape(word.encode()))
        total = 0
        rows = queryset.annotate(_escaped=escaped).filter(where).values_list("pk", field_name)
        for pk, value in rows.iterator(chunk_size=200):
            try:
                text = bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                continue
            new = self.text(text)
            if new != text:
                queryset.model.objects.filter(pk=pk).update(**{field_name: new.encode("utf-8")})
                total += 1
        return total


def _sql_literal(value: str, *, fold: bool) -> str:
    """``value`` as a literal in a PostgreSQL regex; ``fold``: every cased letter as [xX]."""
    out = []
    for char in value:
        lower, upper = char.lower(), char.upper()
        if fold and lower != upper and len(lower) == len(upper) == 1:
            out.append(f"[{lower}{upper}]")
        elif char in _SQL_REGEX_SPECIAL:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


_SQL_REGEX_SPECIAL = set("\\^$.|?*+()[]{}")


def _bytea_escape(data: bytes) -> str:
    """``data`` as PostgreSQL's ``encode(…, 'escape')`` writes it, to search bytea columns."""
    out = []
    for byte in data:
        if byte == 0x5C:
            out.append("\\\\")
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


# --- free text anywhere -------------------------------------------------------------------------

# Columns that identify their own row (another customer's email, an employee's or a survey's
# name, a code) or are keys, hashes and paths: the sweep never rewrites them. The subject's own
# row is anonymised or deleted explicitly; another person's is theirs, even with the same name.
_IDENTITY_NAMES = {"name", "email", "phone", "external_id", "code", "key", "username", "locale"}
_IDENTITY_SUFFIXES = ("_hash", "_path", "_name", "_id", "_key", "secret", "_token")


def _unique_fields(model) -> set[str]:
    names = {f.name for f in model._meta.concrete_fields if f.unique}
    for constraint in model._meta.constraints:
        if isinstance(constraint, models.UniqueConstraint):
            names.update(constraint.fields)
    for together in model._meta.unique_together:
        names.update(together)
    return names


def free_text_fields(model) -> tuple[list[str], list[str], list[str]]:
    """(text, JSON, bytes) columns of a tenant model that can hold someone's words or a copy of
    them: what the erasure sweep rewrites. Found from the field types, so a model added later is
    covered; choices, identifiers and unique columns are left out (see ``_IDENTITY_NAMES``), and
    a model whose columns only code writes, with numbers and ids, says so with
    ``PRIVACY_FREE_TEXT = ()`` (its columns are then not scanned), and one column the sweep must
    not touch with ``PRIVACY_SWEEP_SKIP`` (the erasure's own ``sweep_identifiers``)."""
    if getattr(model, "PRIVACY_FREE_TEXT", None) == ():
        return [], [], []
    unique = _unique_fields(model) | set(getattr(model, "PRIVACY_SWEEP_SKIP", ()))
    text, json_, binary = [], [], []
    for f in model._meta.concrete_fields:
        name = f.name
        if (
            f.primary_key
            or f.choices
            or name in unique
            or name in _IDENTITY_NAMES
            or name.endswith(_IDENTITY_SUFFIXES)
        ):
            continue
        if isinstance(f, models.JSONField):
            json_.append(name)
        elif isinstance(f, models.BinaryField):
            binary.append(name)
        elif isinstance(f, models.CharField | models.TextField) and not isinstance(
            f, models.EmailField | models.URLField | models.SlugField
        ):
            text.append(name)
    return text, json_, binary


@dataclass(frozen=True)
class SweepTarget:
    """Rows an erasure's sweep rewrites (``Contributor.sweep``): the fields to redact in them,
    and the name of their count on the request. ``distinctive_only``: only the identifiers
    nobody else shares (email, phone, full name), for text about anyone."""

    key: str
    queryset: models.QuerySet
    text_fields: tuple[str, ...] = ()
    json_fields: tuple[str, ...] = ()
    binary_fields: tuple[str, ...] = ()
    distinctive_only: bool = False


def everywhere_targets() -> list[SweepTarget]:
    """Every free-text column of every tenant table (:func:`free_text_fields`): notes, messages,
    ledger notes, event and webhook payloads, stored API responses, the audit log."""
    targets = []
    for model in sorted(tenant_models(), key=lambda m: m._meta.label):
        text, json_, binary = free_text_fields(model)
        if text or json_ or binary:
            targets.append(
                SweepTarget(
                    f"{model._meta.label}.redacted",
                    model.objects.all(),
                    tuple(text),
                    tuple(json_),
                    tuple(binary),
                    distinctive_only=True,
                )
            )
    return targets


# Primary-key values per sweep transaction: short transactions (a few tens of ms each on the
# demo's 600,000 answers) instead of one that holds its row locks for the whole tenant.
SWEEP_WINDOW = 20_000
_INTEGER_PKS = {"AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField"}


def _pk_windows(queryset) -> Iterator[models.QuerySet]:
    """``queryset`` cut into ranges of ``SWEEP_WINDOW`` primary-key values (skipping gaps)."""
    if queryset.model._meta.pk.get_internal_type() not in _INTEGER_PKS:
        yield queryset
        return
    low = queryset.aggregate(low=Min("pk"))["low"]
    while low is not None:
        high = low + SWEEP_WINDOW
        yield queryset.filter(pk__gte=low, pk__lt=high)
        low = queryset.filter(pk__gte=high).aggregate(low=Min("pk"))["low"]


def _add_counts(request_id: int, counts: dict[str, int]) -> None:
    request = PrivacyRequest.objects.select_for_update().only("counts").get(pk=request_id)
    for key, n in counts.items():
        request.counts[key] = request.counts.get(key, 0) + n
    PrivacyRequest.objects.filter(pk=request_id).update(counts=request.counts)


def sweep_target(request_id: int, target: SweepTarget, redactor: Redactor) -> int:
    """Redact one target window by window, each window's rewrite and its count on the request in
    one transaction: a sweep stopped half-way has lost nothing and counted nothing twice, and
    the next run finds nothing left in the windows already done. A model the database keeps
    append-only names the one way past its guard in ``privacy_redaction_guard`` (the points
    ledger: ``cem.db.purge.ledger_redaction``, which lets only the note change)."""
    if redactor.pattern is None:
        return 0  # nothing to look for (a customer known by an external id only)
    guard = getattr(target.queryset.model, "privacy_redaction_guard", None) or contextlib.nullcontext
    total = 0
    for window in _pk_windows(target.queryset):
        with transaction.atomic():
            with guard():
                changed = redactor.rewrite(window, target.text_fields, target.json_fields)
                for name in target.binary_fields:
                    changed += redactor.rewrite_binary(window, name)
            if changed:
                _add_counts(request_id, {target.key: changed})
        total += changed
    return total


def _sweep_lock(request_id: int) -> int:
    digest = hashlib.sha256(f"privacy-erasure-sweep:{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def erasure_sweep(request_id: int) -> dict:
    """The second half of an erasure (``cem.privacy_erasure_sweep``, queued when the request
    commits): the person's identifiers out of the organization's free text — what the apps'
    contributors name (comments, case notes, audit answers and recognitions mentioning an
    employee: every name they go by), then every free-text column of every tenant table (email,
    phone, full name). Then the request is ``done``: counts, ``finished_at``, the identifiers
    it kept for this emptied, an audit-log row. Running it again changes nothing: a finished
    request is left as it is, and an interrupted one only redoes what is left."""
    request = PrivacyRequest.objects.filter(pk=request_id, kind=PrivacyRequest.Kind.ERASURE).first()
    if request is None or request.status != PrivacyRequest.Status.REDACTING:
        return {}
    lock = _sweep_lock(request_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock])
        if not cursor.fetchone()[0]:
            return {}  # a redelivered copy while the first still runs: that one finishes it
    try:
        identifiers = request.sweep_identifiers or {}
        full = Redactor(identifiers.get("terms", ()), identifiers.get("name_parts", ()))
        distinctive_only = Redactor(full.terms, distinctive_only=True)
        targets = [t for c in contributors() for t in c.sweep(request.subject_type)]
        for target in [*targets, *everywhere_targets()]:
            sweep_target(request_id, target, distinctive_only if target.distinctive_only else full)
        return _erasure_completed(request_id)
    finally:
        # A lost connection took the lock with it.
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock])


@transaction.atomic
def _erasure_completed(request_id: int) -> dict:
    request = PrivacyRequest.objects.select_for_update().get(pk=request_id)
    if request.status != PrivacyRequest.Status.REDACTING:
        return {}
    request.status = PrivacyRequest.Status.DONE
    request.finished_at = timezone.now()
    request.sweep_identifiers = {}
    request.error = ""
    request.save(update_fields=["status", "finished_at", "sweep_identifiers", "error"])
    audit_log_write(
        organization=request.organization_id,
        actor=Actor.system(),
        action="privacy.erase.completed",
        instance=request,
        changes={"counts": request.counts},
    )
    return request.counts


def erasure_sweep_failed(request_id: int, exc: Exception) -> None:
    """The request stays ``redacting`` (the task retries); the error names the kind of failure
    only, since a message could quote a row or the pattern."""
    PrivacyRequest.objects.filter(pk=request_id, status=PrivacyRequest.Status.REDACTING).update(
        error=f"Redacting free text was interrupted ({type(exc).__name__}); it is retried."
    )


# --- who holds what -----------------------------------------------------------------------------


def relations_to(target: type[models.Model]) -> list[tuple[type[models.Model], str]]:
    """(tenant model, field name) for every foreign key to ``target``, in a stable order."""
    found = []
    for model in sorted(tenant_models(), key=lambda m: m._meta.label):
        for f in model._meta.get_fields():
            if f.concrete and (f.many_to_one or f.one_to_one) and f.related_model is target:
                found.append((model, f.name))
    return found


def holdings(subject: Subject) -> list[tuple[type[models.Model], models.QuerySet]]:
    """Every queryset of rows about the subject: foreign keys walked, then the apps' additions."""
    by_model: dict[type[models.Model], Q] = {}

    def add(model, q):
        by_model[model] = by_model[model] | q if model in by_model else q

    add(subject.model, Q(pk=subject.pk))
    for model, name in relations_to(subject.model):
        add(model, Q(**{name: subject.pk}))
    if subject.user_ids:
        for model, name in relations_to(get_user_model()):
            add(model, Q(**{f"{name}__in": subject.user_ids}))
    found = [(model, model.objects.filter(q)) for model, q in by_model.items()]
    for contributor in contributors():
        found.extend(contributor.export(subject))
    return found


def holding_counts(subject: Subject) -> list[tuple[str, str, int]]:
    """(label, verbose name, rows) of every model holding something about the subject."""
    out: dict[str, list] = {}
    for model, qs in holdings(subject):
        label = model._meta.label
        n = qs.count()
        if n:
            entry = out.setdefault(label, [label, str(model._meta.verbose_name_plural), 0])
            entry[2] += n
    return [tuple(v) for v in out.values()]


# --- consent ------------------------------------------------------------------------------------

_CHANNEL_FIELD = {ConsentChannel.EMAIL: "consent_email", ConsentChannel.SMS: "consent_sms"}


def _apply_consent(customer: Customer, channel: str, granted: bool, at) -> bool:
    """Set the customer's flags; False when nothing changes."""
    if channel == ConsentChannel.ALL:
        opted_out = customer.opted_out_at is not None
        if granted == (not opted_out):
            return False
        customer.opted_out_at = None if granted else at
        return True
    name = _CHANNEL_FIELD[channel]
    if getattr(customer, name) == granted:
        return False
    setattr(customer, name, granted)
    return True


def _consent_row(org_id, actor: Actor, customer, channel, granted, source, detail, at) -> ConsentRecord:
    return ConsentRecord.objects.create(
        organization_id=org_id,
        customer=customer,
        channel=channel,
        granted=granted,
        source=source,
        detail=(detail or "")[:200],
        recorded_at=at,
        actor_user_id=actor.user_id,
        actor_api_key_id=actor.api_key_id,
    )


# Worded like the invitations' own suppression reasons (feedback.invitations.suppression_reason).
_WITHDRAWAL_REASONS = {
    ConsentChannel.ALL: "customer opted out",
    ConsentChannel.EMAIL: "no email consent",
    ConsentChannel.SMS: "no phone consent",
}


def _after_withdrawal(customer: Customer, channel: str) -> dict:
    counts: dict = {}
    for contributor in contributors():
        counts.update(contributor.consent_withdrawn(customer, channel, _WITHDRAWAL_REASONS[channel]))
    if channel == ConsentChannel.ALL:
        # A later import of the same address or number, under any record, stays uncontacted.
        counts["suppressed_identifiers"] = suppression.add(
            customer.organization_id,
            suppression.customer_identifiers(customer),
            SuppressedIdentifier.Reason.OPT_OUT,
        )
    return counts


@transaction.atomic
def consent_record(
    *,
    organization,
    actor: Actor,
    customer: Customer,
    channel: str,
    granted: bool,
    source: str,
    detail: str = "",
    at=None,
) -> ConsentRecord:
    """Record that the customer gave or withdrew consent (time, source, channel) and apply it.

    ``channel="all"`` is the opt-out (withdrawn) or opting back in (granted; the per-channel
    consents stay as they were). A withdrawal also withdraws what was scheduled on that channel
    and clears the contact details cases carry; opting out puts the customer's identifiers on
    the suppression list and opting back in takes them off (cem.suppression). Recorded even
    when nothing changes: a repeated confirmation is evidence too.
    """
    org_id = _check_tenant(organization)
    if channel not in ConsentChannel.values:
        raise ValidationError({"channel": f"Must be one of {', '.join(ConsentChannel.values)}."})
    if source not in ConsentSource.values:
        raise ValidationError({"source": f"Must be one of {', '.join(ConsentSource.values)}."})
    at = at or timezone.now()
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if _apply_consent(customer, channel, granted, at):
        customer.save(update_fields=["consent_email", "consent_sms", "opted_out_at"])
    record = _consent_row(org_id, actor, customer, channel, granted, source, detail, at)
    if not granted:
        effects = _after_withdrawal(customer, channel)
    elif channel == ConsentChannel.ALL:
        # Their fresh consent, recorded with its source: their identifiers leave the list.
        effects = {"suppression_lifted": suppression.remove(suppression.customer_identifiers(customer))}
    else:
        effects = {}
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="customer.consent",
        instance=customer,
        changes={"channel": channel, "granted": granted, "source": source, "record": record.pk, **effects},
    )
    return record


def _consent_changes(before: dict, customer: Customer) -> list[tuple[str, bool]]:
    changes = []
    for channel, name in _CHANNEL_FIELD.items():
        if before.get(name) != getattr(customer, name):
            changes.append((channel, bool(getattr(customer, name))))
    was_out = before.get("opted_out_at") is not None
    if was_out != (customer.opted_out_at is not None):
        changes.append((ConsentChannel.ALL, not (customer.opted_out_at is not None)))
    return changes


def consent_changes_record(
    *, organization, actor: Actor, customer: Customer, changes: list[tuple[str, bool]], source: str, detail=""
) -> None:
    """Record consent changes another service already applied to the customer's flags."""
    org_id = _check_tenant(organization)
    at = timezone.now()
    for channel, granted in changes:
        _consent_row(org_id, actor, customer, channel, granted, source, detail, at)
        if not granted:
            _after_withdrawal(customer, channel)


def imported_consent_records(customers, *, at, source=ConsentSource.IMPORT, detail="") -> list[ConsentRecord]:
    """Unsaved records of the consent bulk-created customers arrived with (for bulk_create)."""
    records = []
    for customer in customers:
        common = {"organization_id": customer.organization_id, "customer_id": customer.pk, "source": source}
        for channel, name in _CHANNEL_FIELD.items():
            if getattr(customer, name):
                records.append(
                    ConsentRecord(channel=channel, granted=True, recorded_at=at, detail=detail, **common)
                )
        if customer.opted_out_at is not None:
            records.append(
                ConsentRecord(
                    channel=ConsentChannel.ALL,
                    granted=False,
                    recorded_at=customer.opted_out_at,
                    detail=detail,
                    **common,
                )
            )
    return records


def _record_changes(org_id, actor, customer, changes, source, detail) -> None:
    consent_changes_record(
        organization=org_id, actor=actor, customer=customer, changes=changes, source=source, detail=detail
    )


_SCREENED = ("external_id", "email", "phone", "opted_out_at")


def _screened(org_id: int, data: dict, current: Customer | None, source, detail):
    """``data`` as the suppression list lets it be stored, and the consent source and detail to
    record (cem.suppression: opted out, no channel consent, an erased person's address dropped)."""
    values = {name: data.get(name, getattr(current, name, None)) for name in _SCREENED}
    if current is not None and current.opted_out_at is not None:
        values["opted_out_at"] = current.opted_out_at  # the first opt-out time stands
    changes, found = suppression.screen(org_id, values)
    if not found:
        return data, source, detail
    return {**data, **changes}, ConsentSource.SUPPRESSION, suppression.describe(found)


def _keep_suppressed(customer: Customer) -> None:
    """An opted-out customer's identifiers are on the list, the ones they arrived with too."""
    if customer.opted_out_at is not None:
        suppression.add(
            customer.organization_id,
            suppression.customer_identifiers(customer),
            SuppressedIdentifier.Reason.OPT_OUT,
        )


@transaction.atomic
def customer_create(
    *, organization, actor: Actor, data: dict, source=ConsentSource.API, detail=""
) -> Customer:
    """Create a customer; each consent given with it is recorded (time, source, channel).

    An identifier on the suppression list makes it an opted-out customer (see cem.suppression).
    """
    org_id = _check_tenant(organization)
    data, source, detail = _screened(org_id, data, None, source, detail)
    customer = record_create(organization=organization, actor=actor, model=Customer, data=data)
    changes = _consent_changes({"consent_email": False, "consent_sms": False, "opted_out_at": None}, customer)
    _record_changes(org_id, actor, customer, changes, source, detail)
    _keep_suppressed(customer)
    return customer


@transaction.atomic
def customer_update(
    *, organization, actor: Actor, customer: Customer, data: dict, source=ConsentSource.API, detail=""
) -> Customer:
    """Update a customer; every consent it grants or withdraws is recorded and applied.

    A suppressed identifier keeps (or makes) them opted out: only their consent, recorded on
    the consent API or page, opts them back in (see cem.suppression).
    """
    org_id = _check_tenant(organization)
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    before = {"consent_email": customer.consent_email, "consent_sms": customer.consent_sms}
    before["opted_out_at"] = customer.opted_out_at
    data, source, detail = _screened(org_id, data, customer, source, detail)
    customer = record_update(organization=organization, actor=actor, instance=customer, data=data)
    _record_changes(org_id, actor, customer, _consent_changes(before, customer), source, detail)
    _keep_suppressed(customer)
    return customer


# --- erasure ------------------------------------------------------------------------------------


def _clean_reason(reason: str) -> str:
    reason = " ".join((reason or "").split())
    if not reason:
        raise ValidationError({"reason": "Say why (e.g. the customer's request of 2 March, ticket 123)."})
    if len(reason) > REASON_MAX:
        raise ValidationError({"reason": f"At most {REASON_MAX} characters."})
    return reason


def _check_confirm(confirm: str, expected: str, what: str) -> None:
    if (confirm or "").strip() != expected:
        raise ValidationError({"confirm": f"Type the {what}'s external id ({expected}) to confirm."})


def _redact_audit_log(subject: Subject, redactor: Redactor) -> int:
    """The rows about the subject (and their memberships) lose every identifier; the rest of the
    log only the distinctive ones (:func:`erasure_sweep`), so another employee called Jordan
    keeps their name there."""
    about = Q(object_type=subject.model._meta.label, object_id=str(subject.pk))
    if subject.user_ids:
        memberships = Membership.objects.filter(user_id__in=subject.user_ids).values_list("pk", flat=True)
        about |= Q(object_type=Membership._meta.label, object_id__in=[str(pk) for pk in memberships])
    return redactor.rewrite(AuditLog.objects.filter(about), json_fields=["changes"])


def _request_row(
    org_id,
    actor,
    kind,
    subject: Subject,
    *,
    reason="",
    status,
    counts=None,
    hashed="",
    file_path="",
    sweep_identifiers=None,
):
    now = timezone.now()
    return PrivacyRequest.objects.create(
        organization_id=org_id,
        file_path=file_path,
        kind=kind,
        subject_type=subject.type,
        subject_id=subject.pk,
        subject_hash=hashed,
        reason=reason,
        status=status,
        counts=counts or {},
        sweep_identifiers=sweep_identifiers or {},
        requested_by_id=actor.user_id,
        requested_by_api_key_id=actor.api_key_id,
        finished_at=now if status == PrivacyRequest.Status.DONE else None,
    )


def _sweep_identifiers(subject: Subject) -> dict:
    """What the sweep needs to find the person once their records are gone, and no more: a
    customer's distinctive identifiers (no contributor sweeps for customers); an employee's
    every term and name part (their colleagues' comments name them by first name)."""
    if subject.type == CUSTOMER:
        return {"terms": [t for t in subject.terms if distinctive(t)], "name_parts": []}
    return {"terms": list(subject.terms), "name_parts": list(subject.name_parts)}


def _erasure_recorded(org_id, actor, subject: Subject, model, *, reason, counts, hashed, extra=None):
    """The erasure's request record (``redacting``) and its audit-log row, and the sweep of the
    organization's free text queued for when they commit (the same for customers and employees).

    The sweep's identifiers stay on the request (``sweep_identifiers``) rather than in the task's
    arguments: the task then carries ids only (no identifiers in the broker, its logs or a
    monitoring tool), a lost or exhausted task can be queued again from the database
    (``retention_apply`` does, daily), and the identifiers are emptied in the transaction that
    completes the sweep — they live exactly as long as it does.
    """
    request = _request_row(
        org_id,
        actor,
        PrivacyRequest.Kind.ERASURE,
        subject,
        reason=reason,
        status=PrivacyRequest.Status.REDACTING,
        counts=counts,
        hashed=hashed,
        sweep_identifiers=_sweep_identifiers(subject),
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="privacy.erase",
        object_type=model._meta.label,
        object_id=subject.pk,
        changes={"request": request.pk, "reason": reason, "counts": counts, **(extra or {})},
    )
    _queue_sweep(org_id, request.pk)
    return request


def _queue_sweep(org_id: int, request_id: int) -> None:
    def enqueue():
        from cem.privacy_tasks import privacy_erasure_sweep

        privacy_erasure_sweep.delay(org_id, request_id)

    # Robust: the erasure is committed; a broker that refuses the task leaves the request
    # "redacting" for the daily requeue instead of failing the page after the fact.
    transaction.on_commit(enqueue, robust=True)


def _erase_with_contributors(subject, redactor, reason, options) -> dict:
    counts: dict = {}
    for contributor in contributors():
        for key, value in contributor.erase(
            subject, redactor=redactor, reason=reason, options=options
        ).items():
            counts[key] = counts.get(key, 0) + value
    return counts


@transaction.atomic
def customer_erase(
    *,
    organization,
    actor: Actor,
    customer: Customer,
    reason: str,
    confirm: str,
    redact_terms: Iterable[str] = (),
    delete_responses: bool = False,
) -> PrivacyRequest:
    """Erase a customer on request (see the module docstring); returns the request record."""
    org_id = _check_tenant(organization)
    reason = _clean_reason(reason)
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    _check_confirm(confirm, customer.external_id, "customer")
    customer_id = customer.pk
    subject = customer_subject(customer, redact_terms)
    hashed = subject_hash(CUSTOMER, customer)
    redactor = Redactor.of(subject)
    # The request's own words may name the person: the record of the erasure must not.
    reason = redactor.text(reason)
    options = {"delete_responses": bool(delete_responses)}
    counts = _erase_with_contributors(subject, redactor, reason, options)
    counts["interactions_redacted"] = redactor.rewrite(
        Interaction.objects.filter(customer_id=customer.pk), json_fields=["attributes"]
    )
    counts["audit_log_redacted"] = _redact_audit_log(subject, redactor)
    # Only keyed hashes: a later import of the same address, number or id is never contacted.
    counts["suppressed_identifiers"] = suppression.add(
        org_id, suppression.customer_identifiers(customer), SuppressedIdentifier.Reason.ERASURE
    )
    for model, name in relations_to(Customer):
        n = model.objects.filter(**{name: customer.pk}).count()
        if n:
            verb = "detached" if model._meta.get_field(name).null else "deleted"
            counts[f"{model._meta.label}.{verb}"] = n
    # The collector nulls every nullable reference (responses, interactions, invitations keep their
    # scores and facts) and deletes what only makes sense with the person (CRM purchases, consent).
    customer.delete()
    customer.pk = customer_id  # the request records whom it was about (the collector cleared it)
    return _erasure_recorded(
        org_id, actor, subject, Customer, reason=reason, counts=counts, hashed=hashed, extra=options
    )


def _anonymise_logins(org_id: int, user_ids: list[int], actor: Actor) -> dict:
    """Deactivate the logins; anonymise those that belong to no other organization."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    if actor.user_id in user_ids:
        raise ValidationError({"confirm": "You cannot erase your own login."})
    Membership.objects.filter(user_id__in=user_ids).update(is_active=False)
    with unscoped():
        shared = set(
            Membership.objects.filter(user_id__in=user_ids)
            .exclude(organization_id=org_id)
            .values_list("user_id", flat=True)
        )
    users = get_user_model().objects.filter(pk__in=[u for u in user_ids if u not in shared])
    anonymised = 0
    for user in users:
        old_names = {user.username, user.email} - {""}
        user.username = f"erased-{user.pk}"
        user.email = user.first_name = user.last_name = ""
        user.is_active = False
        user.set_unusable_password()
        user.save()
        # Login attempts name the account; the addresses in them are pseudonymous already.
        for model in (AccessAttempt, AccessLog, AccessFailureLog):
            model.objects.filter(username__in=old_names).delete()
        anonymised += 1
    return {"logins_anonymised": anonymised, "logins_shared_with_other_organizations": len(shared)}


@transaction.atomic
def employee_erase(
    *,
    organization,
    actor: Actor,
    employee: Employee,
    reason: str,
    confirm: str,
    redact_terms: Iterable[str] = (),
) -> PrivacyRequest:
    """Anonymise an employee on request (see the module docstring); returns the request record."""
    org_id = _check_tenant(organization)
    reason = _clean_reason(reason)
    employee = Employee.objects.select_for_update().get(pk=employee.pk)
    _check_confirm(confirm, employee.external_id, "employee")
    subject = employee_subject(employee, redact_terms)
    hashed = subject_hash(EMPLOYEE, employee)
    redactor = Redactor.of(subject)
    reason = redactor.text(reason)
    counts = _erase_with_contributors(subject, redactor, reason, {})
    counts["audit_log_redacted"] = _redact_audit_log(subject, redactor)
    counts.update(_anonymise_logins(org_id, subject.user_ids, actor))
    Employee.objects.filter(pk=employee.pk).update(
        name=f"Erased employee #{employee.pk}", email="", external_id=f"erased-{employee.pk}", active=False
    )
    return _erasure_recorded(org_id, actor, subject, Employee, reason=reason, counts=counts, hashed=hashed)


# --- export -------------------------------------------------------------------------------------


def export_root(org_id: int) -> Path:
    return (Path(settings.MEDIA_ROOT) / "privacy" / str(org_id)).resolve()


@transaction.atomic
def export_request(*, organization, actor: Actor, subject_type: str, instance) -> PrivacyRequest:
    """Queue an export of everything held about a customer or employee (a ZIP of JSON)."""
    org_id = _check_tenant(organization)
    subject = customer_subject(instance) if subject_type == CUSTOMER else employee_subject(instance)
    request = _request_row(
        org_id,
        actor,
        PrivacyRequest.Kind.EXPORT,
        subject,
        status=PrivacyRequest.Status.QUEUED,
        hashed=subject_hash(subject_type, instance),
        file_path=f"privacy/{org_id}/{uuid.uuid4().hex}.zip",
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="privacy.export",
        instance=request,
        changes={"subject_type": subject_type, "subject_id": instance.pk},
    )

    def enqueue():
        from cem.privacy_tasks import privacy_export_build

        privacy_export_build.delay(org_id, request.pk)

    transaction.on_commit(enqueue)
    return request


def _json_rows(queryset) -> Iterator[dict]:
    yield from queryset.order_by("pk").values().iterator(chunk_size=EXPORT_CHUNK)


def _write_json_array(archive: zipfile.ZipFile, name: str, rows: Iterable[dict]) -> int:
    count = 0
    with archive.open(name, "w") as out:
        out.write(b"[")
        for row in rows:
            out.write((b",\n" if count else b"\n") + json.dumps(row, cls=DjangoJSONEncoder).encode())
            count += 1
        out.write(b"\n]\n")
    return count


def _subject_of(request: PrivacyRequest) -> Subject | None:
    if request.subject_type == CUSTOMER:
        customer = Customer.objects.filter(pk=request.subject_id).first()
        return customer_subject(customer) if customer else None
    employee = Employee.objects.filter(pk=request.subject_id).first()
    return employee_subject(employee) if employee else None


def export_build(request: PrivacyRequest) -> dict:
    """Write the ZIP: manifest.json and one JSON array per model, rows streamed in chunks."""
    if not PrivacyRequest.objects.filter(
        pk=request.pk, status__in=[PrivacyRequest.Status.QUEUED, PrivacyRequest.Status.RUNNING]
    ).update(status=PrivacyRequest.Status.RUNNING):
        return {}
    subject = _subject_of(request)
    if subject is None:
        raise ValidationError("The subject no longer exists (erased since the export was asked for).")
    final = Path(settings.MEDIA_ROOT) / request.file_path
    if final.resolve().parent != export_root(request.organization_id):
        raise ValidationError("Export path outside the organization's folder.")
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_suffix(".part")
    by_model: dict[type[models.Model], list[models.QuerySet]] = {}
    for model, qs in holdings(subject):
        by_model.setdefault(model, []).append(qs)
    counts: dict[str, int] = {}
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for model, querysets in sorted(by_model.items(), key=lambda kv: kv[0]._meta.label):
            combined = querysets[0]
            for qs in querysets[1:]:
                combined = combined | qs
            if not combined.exists():
                continue  # nothing about the person there: no empty file
            label = model._meta.label
            counts[label] = _write_json_array(archive, f"{label}.json", _json_rows(combined))
        if subject.user_ids:
            users = get_user_model().objects.filter(pk__in=subject.user_ids).values(*USER_EXPORT_FIELDS)
            counts["auth.User"] = _write_json_array(archive, "auth.User.json", users.iterator())
        org = Organization.objects.get(pk=request.organization_id)
        manifest = {
            "organization": org.name,
            "subject": {"type": subject.type, "id": subject.pk},
            "generated_at": timezone.now(),
            "request": request.pk,
            "files": {f"{label}.json": n for label, n in counts.items()},
            "note": "One JSON array per model holding data about the subject; ids refer across files.",
        }
        archive.writestr("manifest.json", json.dumps(manifest, cls=DjangoJSONEncoder, indent=2))
    partial.replace(final)
    PrivacyRequest.objects.filter(pk=request.pk).update(
        status=PrivacyRequest.Status.DONE,
        counts=counts,
        file_size=final.stat().st_size,
        finished_at=timezone.now(),
    )
    return counts


def export_failed(request_id: int, exc: Exception) -> None:
    PrivacyRequest.objects.filter(pk=request_id).update(
        status=PrivacyRequest.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
    )


def export_file(request: PrivacyRequest) -> Path | None:
    """The finished ZIP of an export, or None; never a path outside the tenant's folder."""
    if request.kind != PrivacyRequest.Kind.EXPORT or request.status != PrivacyRequest.Status.DONE:
        return None
    if not request.file_path:
        return None
    path = (Path(settings.MEDIA_ROOT) / request.file_path).resolve()
    if path.parent != export_root(request.organization_id) or not path.is_file():
        return None
    return path


def export_downloaded(*, organization, actor: Actor, request: PrivacyRequest) -> None:
    org_id = _check_tenant(organization)
    audit_log_write(organization=org_id, actor=actor, action="privacy.export.download", instance=request)


# --- retention ----------------------------------------------------------------------------------


def months_before(at: dt.datetime, months: int) -> dt.datetime:
    year, month = divmod(at.month - 1 - months, 12)
    year, month = at.year + year, month + 1
    day = min(at.day, calendar.monthrange(year, month)[1])
    return at.replace(year=year, month=month, day=day)


def retention_policy_for(organization) -> RetentionPolicy:
    org_id = _check_tenant(organization)
    policy, _ = RetentionPolicy.objects.get_or_create(organization_id=org_id)
    return policy


@transaction.atomic
def retention_policy_update(*, organization, actor: Actor, policy: RetentionPolicy, data: dict):
    allowed = {
        k: v
        for k, v in data.items()
        if k
        in {
            "comments_months",
            "invitations_months",
            "case_contacts_months",
            "abuse_hashes_days",
            "exports_days",
        }
    }
    return record_update(organization=organization, actor=actor, instance=policy, data=allowed)


def _expire_exports(policy: RetentionPolicy, now: dt.datetime) -> int:
    cutoff = now - dt.timedelta(days=policy.exports_days)
    expired = 0
    for request in PrivacyRequest.objects.filter(
        kind=PrivacyRequest.Kind.EXPORT, status=PrivacyRequest.Status.DONE, finished_at__lt=cutoff
    ).only("pk", "file_path", "organization_id"):
        path = (Path(settings.MEDIA_ROOT) / request.file_path).resolve() if request.file_path else None
        if path is not None and path.parent == export_root(request.organization_id):
            path.unlink(missing_ok=True)
        PrivacyRequest.objects.filter(pk=request.pk).update(
            status=PrivacyRequest.Status.EXPIRED, file_path=""
        )
        expired += 1
    return expired


# An erasure still redacting this long after it was asked lost its task (broker flushed, retries
# spent): queue its sweep again. A copy still running holds the sweep's lock; the new one stops.
SWEEP_REQUEUE_AFTER = dt.timedelta(hours=1)


def _requeue_sweeps(org_id: int, now: dt.datetime) -> int:
    stalled = list(
        PrivacyRequest.objects.filter(
            kind=PrivacyRequest.Kind.ERASURE,
            status=PrivacyRequest.Status.REDACTING,
            created_at__lt=now - SWEEP_REQUEUE_AFTER,
        ).values_list("pk", flat=True)
    )
    for request_id in stalled:
        _queue_sweep(org_id, request_id)
    return len(stalled)


@transaction.atomic
def retention_apply(*, organization, now=None) -> dict:
    """Remove what the organization's policy says is kept too long; counts per kind."""
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    policy = retention_policy_for(org_id)
    counts: dict[str, int] = {}
    for contributor in contributors():
        counts.update(contributor.retention(policy, now))
    counts["export_files_deleted"] = _expire_exports(policy, now)
    counts["erasure_sweeps_requeued"] = _requeue_sweeps(org_id, now)
    RetentionPolicy.objects.filter(pk=policy.pk).update(last_run_at=now, last_run_counts=counts)
    if any(counts.values()):
        audit_log_write(
            organization=org_id,
            actor=Actor.system(),
            action="privacy.retention",
            instance=policy,
            changes=counts,
        )
    return counts


def organizations_for_retention() -> list[int]:
    """Every organization (call inside unscoped()): a missing policy means the defaults apply."""
    return list(Organization.objects.order_by("pk").values_list("pk", flat=True))


__all__ = [
    "Contributor",
    "Redactor",
    "Subject",
    "SweepTarget",
    "consent_changes_record",
    "consent_record",
    "customer_create",
    "customer_erase",
    "customer_update",
    "employee_erase",
    "erasure_sweep",
    "export_build",
    "export_request",
    "find_subject",
    "free_text_fields",
    "holding_counts",
    "holdings",
    "imported_consent_records",
    "register",
    "retention_apply",
    "retention_policy_for",
    "retention_policy_update",
]
