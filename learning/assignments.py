"""Assigning lessons and paths: manual assigns, withdrawals, reminders, overdue notices, escalation.

Manual and gap-triggered assigns share :func:`assign_employees`, which applies the same skips to
both (already open, cooldown for rules, the organization's cap on open assignments) in a fixed
number of queries however many people are assigned, writes the rows with one INSERT and their
``LessonAssigned`` events with one more. The partial unique indexes on open assignments are the
last word when two assigns race: a conflict is reported as "already open", never as an error.

Reminders, overdue notices and escalations are each sent once: the "sent" column is set by a
conditional UPDATE (``… WHERE reminder_sent_at IS NULL``) and the email goes out only if that
UPDATE changed the row, after the transaction commits.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from dataclasses import dataclass, field

from django.conf import settings as dj_settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from kombu.exceptions import OperationalError as KombuOperationalError

from cem import webhooks
from cem.models import Employee, Location, Membership, Organization, OutboxEvent, Role, Team
from cem.params import as_utc
from cem.principals import Actor
from cem.scoping import scope_queryset
from cem.services import _check_tenant, audit_log_write
from cem.tenancy import unscoped
from learning.models import Assignment, Audience, ContentStatus, LearningPath, LearningSettings, Lesson

logger = logging.getLogger(__name__)

S = Assignment.Status
OPEN = list(Assignment.OPEN)
DEFAULT_DUE_DAYS = 7
NOTE_MAX = 400
BATCH = 500  # rows per periodic pass and tenant; the next beat run takes the rest

SKIP_OPEN = "already has it open"
SKIP_INACTIVE = "is no longer active"


def learning_settings(org_id: int) -> LearningSettings:
    """The organization's settings row, or the defaults when none was saved."""
    return LearningSettings.objects.filter(organization_id=org_id).first() or LearningSettings(
        organization_id=org_id
    )


SETTINGS_FIELDS = ("max_open_assignments", "reminder_days_before_due", "escalate_days_overdue", "lrs_url")


@transaction.atomic
def learning_settings_save(*, organization, actor: Actor, data: dict) -> LearningSettings:
    """Save the organization's learning settings (one row, created on first save).

    ``data``: any of SETTINGS_FIELDS and ``lrs_secret``; an empty or missing secret keeps the
    stored one (it is never shown back), ``clear_lrs_secret`` removes it. The audit row says the
    secret changed, never what it is.
    """
    org_id = _check_tenant(organization)
    row = LearningSettings.objects.select_for_update().filter(organization_id=org_id).first()
    if row is None:
        row = LearningSettings(organization_id=org_id)
    changes = {}
    for name in SETTINGS_FIELDS:
        if name in data and data[name] != getattr(row, name):
            changes[name] = [getattr(row, name), data[name]]
            setattr(row, name, data[name])
    secret = (data.get("lrs_secret") or "").strip()
    if data.get("clear_lrs_secret") and row.lrs_secret:
        row.lrs_secret, changes["lrs_secret"] = "", "removed"
    elif secret and secret != row.lrs_secret:
        row.lrs_secret, changes["lrs_secret"] = secret, "changed"
    if row.lrs_url and not row.lrs_url.lower().startswith("https://"):
        raise ValidationError({"lrs_url": "Use an https address (statements are personal data)."})
    if "lrs_url" in changes and row.lrs_url:
        # The same SSRF rule as webhooks: in production, only hosts with public addresses.
        try:
            webhooks.check_url(row.lrs_url)
        except webhooks.UnsafeDestination as exc:
            raise ValidationError({"lrs_url": str(exc)}) from None
    if row.lrs_url and not row.lrs_secret:
        # learning.xapi.forward sends nothing unsigned.
        raise ValidationError({"lrs_secret": "Set a signing secret to forward statements to the LRS."})
    row.full_clean(exclude=["organization"])
    row.save()
    audit_log_write(
        organization=org_id, actor=actor, action="learning.settings", instance=row, changes=changes
    )
    return row


@dataclass
class AssignResult:
    created: list[Assignment] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"employee_id", "name", "reason"}

    def as_dict(self) -> dict:
        return {
            "created": [
                {"id": a.pk, "employee_id": a.employee_id, "due_at": a.due_at.isoformat()}
                for a in self.created
            ],
            "skipped": self.skipped,
        }


def _content_label(lesson: Lesson | None, path: LearningPath | None) -> str:
    return lesson.title if lesson is not None else path.name


def _emit_assigned(org_id: int, assignments: list[Assignment]) -> None:
    """One LessonAssigned per assignment, written with one INSERT and kicked after commit.

    ``cem.events.emit`` writes one row and registers one callback per event; a location-wide
    assign of a hundred people would pay that a hundred times.
    """
    if not assignments:
        return
    events = OutboxEvent.objects.bulk_create(
        [
            OutboxEvent(
                organization_id=org_id,
                event_type="LessonAssigned",
                aggregate_type="Assignment",
                aggregate_id=str(a.pk),
                payload={
                    "assignment_id": a.pk,
                    "lesson_id": a.lesson_id,
                    "path_id": a.path_id,
                    "employee_id": a.employee_id,
                    "user_id": a.user_id,
                    "location_id": a.location_id,
                    "source": a.source,
                    "rule_id": a.rule_id,
                    "due_at": a.due_at.isoformat(),
                },
            )
            for a in assignments
        ]
    )
    event_ids = [e.pk for e in events]

    def kick():
        from cem.tasks import events_deliver

        try:
            for event_id in event_ids:
                events_deliver.delay(org_id, event_id)
        except (KombuOperationalError, ConnectionError, OSError):
            logger.warning("broker unavailable; %s LessonAssigned events left for the sweep", len(event_ids))

    transaction.on_commit(kick)


def screen(
    *,
    org_id: int,
    employees: list[Employee],
    lesson: Lesson | None,
    path: LearningPath | None,
    cooldown_days: int | None = None,
    now: dt.datetime | None = None,
) -> tuple[list[Employee], list[dict]]:
    """Split people into those who may be assigned this content and those skipped, with why.

    Three queries however many people: open assignments of this content, the cooldown (rules
    only), and the open counts against the organization's cap.
    """
    now = now or timezone.now()
    people = {e.pk: e for e in employees}
    if not people:
        return [], []
    content = {"lesson": lesson} if lesson is not None else {"path": path}
    ids = list(people)
    mine = Assignment.objects.filter(employee_id__in=ids, **content)
    open_now = set(mine.filter(status__in=OPEN).values_list("employee_id", flat=True))
    recent = set()
    if cooldown_days:
        recent = set(
            mine.filter(assigned_at__gte=now - dt.timedelta(days=cooldown_days))
            .exclude(status=S.WITHDRAWN)
            .values_list("employee_id", flat=True)
        )
    counts = dict(
        Assignment.objects.filter(employee_id__in=ids, status__in=OPEN)
        .order_by()
        .values("employee_id")
        .annotate(n=Count("pk"))
        .values_list("employee_id", "n")
    )
    cap = learning_settings(org_id).max_open_assignments
    ok, skipped = [], []
    for pk, employee in sorted(people.items()):
        if not employee.active:
            why = SKIP_INACTIVE
        elif pk in open_now:
            why = SKIP_OPEN
        elif pk in recent:
            why = f"was assigned it within the last {cooldown_days} days (cooldown)"
        elif counts.get(pk, 0) >= cap:
            why = f"already has {counts[pk]} open assignments (the most allowed is {cap})"
        else:
            ok.append(employee)
            continue
        skipped.append({"employee_id": pk, "name": employee.name, "reason": why})
    return ok, skipped


def create_assignments(
    *,
    org_id: int,
    employees: list[Employee],
    lesson: Lesson | None,
    path: LearningPath | None,
    due_at: dt.datetime,
    source: str,
    reason: str,
    assigned_by_id: int | None = None,
    rule=None,
    trigger=None,
    now: dt.datetime | None = None,
) -> AssignResult:
    """Insert the (screened) assignments with one INSERT and their events with one more."""
    now = now or timezone.now()
    result = AssignResult()
    content = {"lesson": lesson} if lesson is not None else {"path": path}
    rows = [
        Assignment(
            organization_id=org_id,
            employee=employee,
            location_id=employee.current_location_id,
            team_id=employee.current_team_id,
            role=employee.role,
            source=source,
            assigned_by_id=assigned_by_id,
            rule=rule,
            trigger=trigger,
            reason=reason[:400],
            assigned_at=now,
            due_at=due_at,
            **content,
        )
        for employee in employees
    ]
    try:
        with transaction.atomic():
            result.created = Assignment.objects.bulk_create(rows)
    except IntegrityError:
        # Someone assigned the same content meanwhile: insert one by one, skipping the conflicts.
        for row in rows:
            row.pk = None
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
                result.created.append(row)
            except IntegrityError:
                row.pk = None
                result.skipped.append(
                    {"employee_id": row.employee_id, "name": row.employee.name, "reason": SKIP_OPEN}
                )
    _emit_assigned(org_id, result.created)
    return result


def assign_employees(
    *,
    org_id: int,
    employees: list[Employee],
    lesson: Lesson | None,
    path: LearningPath | None,
    cooldown_days: int | None = None,
    now: dt.datetime | None = None,
    **create,
) -> AssignResult:
    """Screen, then create: open assignments for those who may get one, the others reported."""
    now = now or timezone.now()
    ok, skipped = screen(
        org_id=org_id, employees=employees, lesson=lesson, path=path, cooldown_days=cooldown_days, now=now
    )
    result = create_assignments(org_id=org_id, employees=ok, lesson=lesson, path=path, now=now, **create)
    result.skipped = skipped + result.skipped
    return result


# --- manual assigns ---------------------------------------------------------------------------------


def _org_tz(org_id: int) -> zoneinfo.ZoneInfo:
    with unscoped():
        name = Organization.objects.filter(pk=org_id).values_list("time_zone", flat=True).first()
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def parse_due(value, *, org_id: int, now: dt.datetime) -> dt.datetime:
    """A date means the end of that day in the organization's time zone; empty means a week."""
    if value in (None, ""):
        return now + dt.timedelta(days=DEFAULT_DUE_DAYS)
    if isinstance(value, dt.datetime):
        due = value
    elif isinstance(value, dt.date):
        due = dt.datetime.combine(value, dt.time(23, 59), tzinfo=_org_tz(org_id))
    else:
        text = str(value).strip()
        due = parse_datetime(text)
        if due is None:
            try:
                day = parse_date(text)
            except ValueError:
                day = None
            if day is None:
                raise ValidationError({"due_at": "Give a date (YYYY-MM-DD) or a date and time."})
            due = dt.datetime.combine(day, dt.time(23, 59), tzinfo=_org_tz(org_id))
    if timezone.is_naive(due):
        due = timezone.make_aware(due, _org_tz(org_id))
    elif (due := as_utc(due)) is None:  # an offset PostgreSQL refuses is fine in UTC
        raise ValidationError({"due_at": "Out of range."})
    if due <= now:
        raise ValidationError({"due_at": "The due date must be in the future."})
    return due


def _check_content(lesson, path) -> None:
    if (lesson is None) == (path is None):
        raise ValidationError({"lesson": "Choose a lesson or a learning path (one of the two)."})
    item, name = (lesson, "lesson") if lesson is not None else (path, "path")
    if item.status != ContentStatus.PUBLISHED:
        raise ValidationError(
            {name: f"Only published content can be assigned; this {name} is {item.status}."}
        )
    if item.audience == Audience.SHOPPERS:
        raise ValidationError({name: f"This {name} is for mystery shoppers, not employees."})


def _ids(value, name: str) -> list[int]:
    if value in (None, "", []):
        return []
    values = value if isinstance(value, list | tuple | set) else [value]
    out = []
    for v in values:
        pk = getattr(v, "pk", v)
        try:
            out.append(int(pk))
        except (TypeError, ValueError):
            raise ValidationError({name: f"{v!r} is not an id."}) from None
    return out


def manual_targets(*, membership, data: dict) -> list[Employee]:
    """The active employees chosen by ids, a team, a location and/or an employee role, within the
    caller's scope. Ids outside the scope (or the tenant) are refused, naming the field."""
    role = membership.role if membership is not None else None
    scoped = scope_queryset(Employee.objects.all(), role=role, membership=membership)
    employee_ids = _ids(data.get("employees"), "employees")
    team_id = (_ids(data.get("team"), "team") or [None])[0]
    location_id = (_ids(data.get("location"), "location") or [None])[0]
    employee_role = (data.get("role") or "").strip()
    if employee_role and employee_role not in Employee.Role.values:
        raise ValidationError({"role": f"Choose one of: {', '.join(Employee.Role.values)}."})
    if not (employee_ids or team_id or location_id or employee_role):
        raise ValidationError({"employees": "Choose people, a team, a location or a role."})
    chosen: dict[int, Employee] = {}
    if employee_ids:
        found = {e.pk: e for e in scoped.filter(pk__in=employee_ids)}
        missing = sorted(set(employee_ids) - set(found))
        if missing:
            raise ValidationError({"employees": f"Unknown or outside your scope: {missing}."})
        chosen.update(found)
    group = None
    if team_id is not None:
        if not scope_queryset(Team.objects.filter(pk=team_id), role=role, membership=membership).exists():
            raise ValidationError({"team": "Unknown team, or outside your scope."})
        group = scoped.filter(current_team_id=team_id, active=True)
    if location_id is not None:
        if not scope_queryset(
            Location.objects.filter(pk=location_id), role=role, membership=membership
        ).exists():
            raise ValidationError({"location": "Unknown location, or outside your scope."})
        group = (group if group is not None else scoped.filter(active=True)).filter(
            current_location_id=location_id
        )
    if employee_role:
        group = (group if group is not None else scoped.filter(active=True)).filter(role=employee_role)
    if group is not None:
        chosen.update({e.pk: e for e in group})
    return list(chosen.values())


@transaction.atomic
def assignment_create(*, organization, actor: Actor, membership, data: dict, now=None) -> AssignResult:
    """A trainer or manager assigns a lesson or a path to people, a team, a location or a role.

    ``data``: lesson | path, and any of employees (ids), team, location, role (an employee role,
    e.g. "store_manager"); due_at (date or datetime, default a week); reason (optional note).
    Managers reach only their own people (cem.scoping). People who already have it open, or
    are at the organization's cap of open assignments, are skipped and reported.
    """
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    lesson, path = data.get("lesson"), data.get("path")
    _check_content(lesson, path)
    due_at = parse_due(data.get("due_at"), org_id=org_id, now=now)
    employees = manual_targets(membership=membership, data=data)
    note = (data.get("reason") or "").strip()
    if len(note) > NOTE_MAX:
        raise ValidationError({"reason": f"At most {NOTE_MAX} characters."})
    if not note:
        # The role, not the assigner's name: the note is copied to every assignment and reminder,
        # and a person's name there would outlive their erasure (assigned_by keeps who it was).
        note = f"Assigned by your {_role_label(membership)}."
    result = assign_employees(
        org_id=org_id,
        employees=employees,
        lesson=lesson,
        path=path,
        due_at=due_at,
        source=Assignment.Source.MANUAL,
        reason=note,
        assigned_by_id=actor.user_id,
        now=now,
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="learning.assign",
        instance=lesson if lesson is not None else path,
        changes={
            "assignment_ids": [a.pk for a in result.created],
            "skipped": [{"employee_id": s["employee_id"], "reason": s["reason"]} for s in result.skipped],
            "due_at": due_at.isoformat(),
            "targets": {
                k: getattr(data[k], "pk", data[k]) for k in ("team", "location", "role") if data.get(k)
            },
        },
    )
    return result


@transaction.atomic
def assignment_withdraw(
    *, organization, actor: Actor, assignment: Assignment, note: str, now=None
) -> Assignment:
    """Withdraw an open assignment, saying why; emits AssignmentWithdrawn."""
    org_id = _check_tenant(organization)
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": "Say why the assignment is withdrawn."})
    if len(note) > NOTE_MAX:
        raise ValidationError({"note": f"At most {NOTE_MAX} characters."})
    assignment = Assignment.objects.select_for_update().get(pk=assignment.pk)
    if assignment.status not in OPEN:
        raise ValidationError(
            {"status": f"Only open assignments can be withdrawn; this one is {assignment.status}."}
        )
    withdraw_locked(org_id, actor, assignment, note, now or timezone.now())
    return assignment


def withdraw_locked(org_id: int, actor: Actor, assignment: Assignment, note: str, now: dt.datetime) -> None:
    """Withdraw an open assignment the caller has locked (select_for_update); emits AssignmentWithdrawn."""
    before = assignment.status
    assignment.status = S.WITHDRAWN
    assignment.withdrawn_at = now
    assignment.withdrawn_note = note[:NOTE_MAX]
    assignment.save(update_fields=["status", "withdrawn_at", "withdrawn_note"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="learning.withdraw",
        instance=assignment,
        changes={"before": before, "note": assignment.withdrawn_note},
    )
    from cem.events import emit

    emit(
        organization=org_id,
        event_type="AssignmentWithdrawn",
        aggregate=assignment,
        payload={
            "assignment_id": assignment.pk,
            "rule_id": assignment.rule_id,
            "note": assignment.withdrawn_note,
        },
    )


# --- reminders, overdue notices, escalation (beat) ---------------------------------------------------


def tenants_with_open_assignments() -> list[int]:
    """Organizations with any open assignment; call inside unscoped()."""
    return sorted(
        Assignment.objects.filter(status__in=OPEN)
        .order_by()
        .values_list("organization_id", flat=True)
        .distinct()
    )


def _portal_url() -> str:
    try:
        path = reverse("learning_portal")
    except NoReverseMatch:
        path = "/learning/"
    return dj_settings.SITE_URL.rstrip("/") + path


def _role_label(membership) -> str:
    role = getattr(membership, "role", "")
    if role not in Role.values or role in (Role.EMPLOYEE, Role.INTEGRATOR):
        return "trainer"
    return Role(role).label.split(" (")[0].lower()


def _message(template: str, subject: str, context: dict, to: list[str]) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=subject[:200],
        body=render_to_string(f"learning/assign/email/{template}.txt", context),
        from_email=dj_settings.DEFAULT_FROM_EMAIL,
        to=to,
    )
    message.attach_alternative(
        render_to_string(f"learning/assign/email/{template}.html", context), "text/html"
    )
    return message


def _send_after_commit(messages: list[EmailMultiAlternatives]) -> None:
    if not messages:
        return

    def send():
        with get_connection() as connection:
            connection.send_messages(messages)

    transaction.on_commit(send)


def _claim(pk: int, column: str, now: dt.datetime) -> bool:
    """Set ``column`` if still empty and the assignment still open: True for the one caller that did."""
    return bool(
        Assignment.objects.filter(pk=pk, status__in=OPEN, **{f"{column}__isnull": True}).update(
            **{column: now}
        )
    )


def _learner_mail(kind: str, assignment: Assignment, now: dt.datetime) -> EmailMultiAlternatives | None:
    # Staff by their employee record's address; shoppers (no employee row) by their account's.
    if assignment.employee_id:
        email, name = assignment.employee.email, assignment.employee.name
    else:
        user = assignment.user
        email, name = user.email, user.get_full_name() or user.get_username()
    if not email:
        return None
    title = _content_label(assignment.lesson, assignment.path)
    due = timezone.localtime(assignment.due_at).strftime("%Y-%m-%d")
    context = {
        "assignment": assignment,
        "name": name,
        "title": title,
        "due": due,
        "url": _portal_url(),
        "kind": kind,
    }
    subject = (
        f"Reminder: “{title}” is due on {due}"
        if kind == "reminder"
        else f"Overdue: “{title}” was due on {due}"
    )
    return _message(f"learner_{kind}", subject, context, [email])


@transaction.atomic
def assignments_notify(*, organization, now=None) -> dict[str, list[int]]:
    """Reminders before the due date, overdue notices, and escalations to the store's managers
    (the region's managers when the store has none).

    Each is sent once per assignment (conditional updates); a run handles up to BATCH of each.
    """
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    conf = learning_settings(org_id)
    base = Assignment.objects.filter(status__in=OPEN).select_related(
        "employee", "user", "lesson", "path", "location"
    )
    done: dict[str, list[int]] = {"reminded": [], "overdue": [], "escalated": []}
    messages: list[EmailMultiAlternatives] = []

    soon = base.filter(
        reminder_sent_at__isnull=True,
        due_at__gt=now,
        due_at__lte=now + dt.timedelta(days=conf.reminder_days_before_due),
    )
    if conf.reminder_days_before_due:
        for a in soon.order_by("due_at", "pk")[:BATCH]:
            if _claim(a.pk, "reminder_sent_at", now):
                done["reminded"].append(a.pk)
                if (m := _learner_mail("reminder", a, now)) is not None:
                    messages.append(m)

    for a in base.filter(overdue_notified_at__isnull=True, due_at__lte=now).order_by("due_at", "pk")[:BATCH]:
        if _claim(a.pk, "overdue_notified_at", now):
            done["overdue"].append(a.pk)
            if (m := _learner_mail("overdue", a, now)) is not None:
                messages.append(m)

    # Escalation is to the learner's managers: staff only (shoppers have none in the hierarchy).
    late = list(
        base.filter(
            employee__isnull=False,
            escalated_at__isnull=True,
            due_at__lte=now - dt.timedelta(days=conf.escalate_days_overdue),
        ).order_by("due_at", "pk")[:BATCH]
    )
    managers: dict[int, list[str]] = {}
    for loc_id, email in Membership.objects.filter(
        role=Role.STORE_MANAGER,
        is_active=True,
        user__is_active=True,
        location_id__in={a.location_id for a in late if a.location_id},
    ).values_list("location_id", "user__email"):
        if email:
            managers.setdefault(loc_id, []).append(email)
    # A store without a store manager escalates to its regional managers: the overdue training
    # must reach someone who manages the learner.
    unmanaged = {a.location_id for a in late if a.location_id and a.location_id not in managers}
    if unmanaged:
        region_of = dict(Location.objects.filter(pk__in=unmanaged).values_list("pk", "region_id"))
        regional: dict[int, list[str]] = {}
        for region_id, email in Membership.objects.filter(
            role=Role.REGIONAL_MANAGER,
            is_active=True,
            user__is_active=True,
            region_id__in={r for r in region_of.values() if r},
        ).values_list("region_id", "user__email"):
            if email:
                regional.setdefault(region_id, []).append(email)
        for loc_id, region_id in region_of.items():
            if regional.get(region_id):
                managers[loc_id] = regional[region_id]
    for a in late:
        if not _claim(a.pk, "escalated_at", now):
            continue
        done["escalated"].append(a.pk)
        to = sorted(set(managers.get(a.location_id, [])))
        if to:
            title = _content_label(a.lesson, a.path)
            context = {
                "assignment": a,
                "title": title,
                "due": timezone.localtime(a.due_at).strftime("%Y-%m-%d"),
                "days": (now - a.due_at).days,
                "url": dj_settings.SITE_URL.rstrip("/") + reverse("learning_assignments"),
            }
            messages.append(
                _message("manager_escalation", f"Overdue training: {a.employee.name} — {title}", context, to)
            )

    for kind, ids in done.items():
        if ids:
            audit_log_write(
                organization=org_id,
                actor=Actor.system(),
                action=f"learning.{kind}",
                object_type=Assignment._meta.label,
                changes={"assignment_ids": ids},
            )
    _send_after_commit(messages)
    return done


__all__ = [
    "AssignResult",
    "assign_employees",
    "assignment_create",
    "assignment_withdraw",
    "assignments_notify",
    "create_assignments",
    "learning_settings",
    "learning_settings_save",
    "manual_targets",
    "parse_due",
    "screen",
    "tenants_with_open_assignments",
    "withdraw_locked",
]
