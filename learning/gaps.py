"""Gap rules: when a subject's score on a standard falls below a rule's threshold, assign a lesson.

Evaluation is driven by the events that bring new data (learning/handlers.py) and looks only at
what those events touch: the rules on the event's standards, and the employees / locations /
teams the new data is about. Each (rule, subject) costs a fixed handful of queries — the score
reads go through ``feedback.selectors.standard_points`` and ``audits.selectors.standard_points``
on their (organization, standard, time) indexes — so a handler's cost does not grow with the
organization's history.

Score of a subject on a standard over the last ``window_days``: the mean of its data points on
0-100 — survey answers linked to the standard, put on 0-100 from their scale, and published
audit and monitoring standard scores — as chosen by ``rule.source``. Below ``threshold`` with at
least ``min_points`` points is a gap, recorded as a :class:`GapTrigger` with its evidence.

Then, in order: a subject whose previous trigger of the rule is still held out is skipped; each
person who already has the content open, had it within ``cooldown_days``, or is at the open
cap is skipped (and named in the evidence); a deterministic draw puts ``holdout_share`` of the
triggers in the control group (assigned after the cooldown by :func:`holdouts_release` if the gap
still holds); everyone else is assigned, with the reason in plain words.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audits import selectors as audit_selectors
from cem.models import Employee, Location, Team
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from feedback import selectors as feedback_selectors
from learning import assignments as services
from learning.models import Assignment, GapRule, GapTrigger

R = GapRule
T = GapTrigger.Outcome
FEEDBACK_SOURCES = (R.Source.ANY, R.Source.FEEDBACK)
AUDIT_SOURCES = (R.Source.ANY, R.Source.AUDITS)


@dataclass(frozen=True)
class Subject:
    kind: str  # GapRule.Subject
    id: int

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    def filters(self) -> dict:
        return {f"{self.kind}_id": self.id}


def rule_shape_errors(*, subject, target, lesson, path) -> dict[str, str]:
    """What makes a rule unworkable, by field (the API and the editor share it)."""
    errors = {}
    if (lesson is None) == (path is None):
        errors["lesson"] = "Give a lesson or a learning path (exactly one)."
    subject, target = subject or R.Subject.EMPLOYEE, target or R.Target.EMPLOYEE
    if target == R.Target.EMPLOYEE and subject != R.Subject.EMPLOYEE:
        errors["target"] = "Only an employee rule assigns to the employee; choose the location or the team."
    elif target == R.Target.TEAM and subject == R.Subject.LOCATION:
        errors["target"] = "A location has no one team; assign to the location."
    return errors


# --- scores ---------------------------------------------------------------------------------------


def _native(points: dict) -> str:
    """The survey mean on its own scale when the answers share one ("2.1/5"), else on 0-100."""
    types = points["by_type"]
    if len(types) == 1:
        t = types[0]
        if t["type"] == "fcr":
            return f"{t['mean'] * 100:.0f}% yes"
        if t["low"] in (0, 1):
            return f"{t['mean']:.1f}/{t['high']}"
    return f"{points['mean']:.0f}/100"


def score(rule: GapRule, subject: Subject, *, now: dt.datetime) -> dict:
    """The subject's score on the rule's standard over its window, with the evidence per source."""
    since = now - dt.timedelta(days=rule.window_days)
    args = {"standard_id": rule.standard_id, "since": since, **subject.filters()}
    evidence: dict = {"window_days": rule.window_days, "since": since.isoformat(), "source": rule.source}
    total, n = Decimal(0), 0
    if rule.source in FEEDBACK_SOURCES:
        fb = feedback_selectors.standard_points(**args)
        evidence["feedback"] = {"n": fb["n"], "mean": fb["mean"]}
        if fb["n"]:
            evidence["feedback"]["native"] = _native(fb)
            evidence["feedback"]["by_type"] = fb["by_type"]
            total += Decimal(str(fb["mean"])) * fb["n"]
            n += fb["n"]
    if rule.source in AUDIT_SOURCES:
        au = audit_selectors.standard_points(**args)
        evidence["audits"] = {"n": au["n"], "mean": au["mean"]}
        if au["n"]:
            total += Decimal(str(au["mean"])) * au["n"]
            n += au["n"]
    evidence["n"] = n
    evidence["mean"] = float(round(total / n, 2)) if n else None
    return evidence


def is_gap(rule: GapRule, evidence: dict) -> bool:
    return (
        evidence["n"] >= rule.min_points
        and evidence["mean"] is not None
        and (Decimal(str(evidence["mean"])) < rule.threshold)
    )


_WHERE = {
    R.Subject.EMPLOYEE: "for you",
    R.Subject.TEAM: "in your team",
}


def _where(subject_kind: str, location: Location | None) -> str:
    if subject_kind == R.Subject.LOCATION:
        kind = location.kind if location is not None else Location.Kind.STORE
        return {Location.Kind.STORE: "at your store", Location.Kind.BRANCH: "at your branch"}.get(
            kind, "at your location"
        )
    return _WHERE[subject_kind]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def reason_text(rule: GapRule, subject_kind: str, evidence: dict, location: Location | None = None) -> str:
    """ "Customers rated Greeting 2.1/5 at your store over the last 30 days (14 answers)"."""
    std = rule.standard.title
    fb, au = evidence.get("feedback") or {}, evidence.get("audits") or {}
    said, counts = [], []
    if fb.get("n"):
        said.append(f"Customers rated {std} {fb['native']}")
        counts.append(_plural(fb["n"], "answer"))
    if au.get("n"):
        said.append(f"{'audits' if said else 'Audits'} scored {'it' if said else std} {au['mean']:.0f}%")
        counts.append(_plural(au["n"], "audit"))
    return (
        f"{' and '.join(said)} {_where(subject_kind, location)} over the last {rule.window_days} days "
        f"({', '.join(counts)})."
    )


# --- who is concerned ----------------------------------------------------------------------------


@dataclass
class Place:
    """Where a subject sits: its location (for scope and wording) and team."""

    location: Location | None = None
    team_id: int | None = None
    employee: Employee | None = None


def _place(subject: Subject) -> Place:
    if subject.kind == R.Subject.EMPLOYEE:
        e = Employee.objects.select_related("current_location").filter(pk=subject.id).first()
        return Place(
            location=e.current_location if e else None, team_id=e.current_team_id if e else None, employee=e
        )
    if subject.kind == R.Subject.TEAM:
        team = Team.objects.select_related("location").filter(pk=subject.id).first()
        return Place(location=team.location if team else None, team_id=subject.id)
    return Place(location=Location.objects.filter(pk=subject.id).first())


def targets(rule: GapRule, subject: Subject, place: Place) -> list[Employee]:
    """The employee, all active employees of the location, or the team."""
    if rule.target == R.Target.EMPLOYEE:
        return [place.employee] if place.employee is not None else []
    if rule.target == R.Target.TEAM:
        return (
            list(Employee.objects.filter(current_team_id=place.team_id, active=True)) if place.team_id else []
        )
    if place.location is None:
        return []
    return list(Employee.objects.filter(current_location_id=place.location.pk, active=True))


# --- holdout ---------------------------------------------------------------------------------------


def holdout_draw(rule: GapRule, subject: Subject, now: dt.datetime) -> bool:
    """Deterministic: the same rule, subject and cooldown period always draw the same way."""
    share = Decimal(rule.holdout_share or 0)
    if share <= 0:
        return False
    period = int(now.timestamp() // (max(rule.cooldown_days, 1) * 86400))
    digest = hashlib.sha256(f"{rule.pk}:{subject.key}:{period}".encode()).digest()
    return Decimal(int.from_bytes(digest[:8], "big")) / Decimal(2**64) < share


# --- evaluation ------------------------------------------------------------------------------------


# A gap that stays open is found again with every new answer or audit; the same skip for the same
# reason is recorded once a day, so the list of gaps stays readable.
SKIP_REPEAT = dt.timedelta(days=1)


def _trigger(rule, subject, place, evidence, outcome, *, now, skip_reason="", holdout_until=None):
    skip_reason = skip_reason[:200]
    if outcome == T.SKIPPED:
        same = (
            GapTrigger.objects.filter(
                rule=rule,
                subject=subject.kind,
                outcome=T.SKIPPED,
                skip_reason=skip_reason,
                created_at__gt=now - SKIP_REPEAT,
                **subject.filters(),
            )
            .order_by("-created_at")
            .first()
        )
        if same is not None:
            return same
    return GapTrigger.objects.create(
        organization_id=rule.organization_id,
        rule=rule,
        standard_id=rule.standard_id,
        subject=subject.kind,
        location=place.location,
        team_id=place.team_id if subject.kind != R.Subject.LOCATION else None,
        employee=place.employee if subject.kind == R.Subject.EMPLOYEE else None,
        score=Decimal(str(evidence["mean"])),
        points=evidence["n"],
        evidence=evidence,
        outcome=outcome,
        skip_reason=skip_reason,
        holdout_until=holdout_until,
        event_id=uuid.UUID(int=evidence["event"]) if evidence.get("event") else None,
        created_at=now,
    )


def evaluate(rule: GapRule, subject: Subject, *, now: dt.datetime | None = None, event_pk: int | None = None):
    """Evaluate one rule for one subject; returns the GapTrigger, or None when there is no gap."""
    now = now or timezone.now()
    evidence = score(rule, subject, now=now)
    if not is_gap(rule, evidence):
        return None
    if event_pk is not None:
        evidence["event"] = event_pk
    place = _place(subject)
    held = (
        GapTrigger.objects.filter(
            rule=rule, subject=subject.kind, outcome=T.HOLDOUT, holdout_until__gt=now, **subject.filters()
        )
        .order_by("-holdout_until")
        .values_list("holdout_until", flat=True)
        .first()
    )
    if held is not None:
        why = f"In the control group until {held:%Y-%m-%d}; assigned then if the gap is still there."
        return _trigger(rule, subject, place, evidence, T.SKIPPED, now=now, skip_reason=why)
    people = targets(rule, subject, place)
    if not people:
        return _trigger(
            rule, subject, place, evidence, T.SKIPPED, now=now, skip_reason="Nobody to assign it to."
        )
    ok, skipped = services.screen(
        org_id=rule.organization_id,
        employees=people,
        lesson=rule.lesson,
        path=rule.path,
        cooldown_days=rule.cooldown_days,
        now=now,
    )
    if skipped:
        evidence["skipped"] = skipped
    if not ok:
        who = "Everyone concerned" if len(people) > 1 else "The employee"
        why = f"{who} {'; '.join(sorted({s['reason'] for s in skipped}))}."
        return _trigger(rule, subject, place, evidence, T.SKIPPED, now=now, skip_reason=why)
    # Drawn only among cases that would be assigned, so the control group is comparable.
    if holdout_draw(rule, subject, now):
        until = now + dt.timedelta(days=rule.cooldown_days)
        return _trigger(rule, subject, place, evidence, T.HOLDOUT, now=now, holdout_until=until)
    trigger = _trigger(rule, subject, place, evidence, T.ASSIGNED, now=now)
    result = services.create_assignments(
        org_id=rule.organization_id,
        employees=ok,
        lesson=rule.lesson,
        path=rule.path,
        due_at=now + dt.timedelta(days=rule.due_days),
        source=Assignment.Source.RULE,
        reason=reason_text(rule, subject.kind, evidence, place.location),
        rule=rule,
        trigger=trigger,
        now=now,
    )
    if result.skipped:  # lost a race with another assign
        trigger.evidence = {**trigger.evidence, "skipped": skipped + result.skipped}
        if not result.created:
            trigger.outcome, trigger.skip_reason = T.SKIPPED, SKIPPED_RACE
        trigger.save(update_fields=["evidence", "outcome", "skip_reason"])
    if result.created:
        audit_log_write(
            organization=rule.organization_id,
            actor=Actor.system(),
            action="learning.gap_assign",
            instance=trigger,
            changes={"rule": rule.pk, "assignment_ids": [a.pk for a in result.created]},
        )
    return trigger


SKIPPED_RACE = "Assigned meanwhile by another assign."


# --- what an event touches ---------------------------------------------------------------------------


def rules_for(standard_ids, *, sources) -> list[GapRule]:
    if not standard_ids:
        return []
    return list(
        GapRule.objects.filter(active=True, standard_id__in=list(standard_ids), source__in=sources)
        .select_related("standard", "lesson", "path")
        .order_by("pk")
    )


def subjects_for(rule: GapRule, touched, teams: dict[int, int | None]) -> set[Subject]:
    """The rule's subjects among the touched (standard, location, employee) triples."""
    out = set()
    for standard_id, location_id, employee_id in touched:
        if standard_id != rule.standard_id:
            continue
        if rule.subject == R.Subject.EMPLOYEE and employee_id:
            out.add(Subject(R.Subject.EMPLOYEE, employee_id))
        elif rule.subject == R.Subject.LOCATION and location_id:
            out.add(Subject(R.Subject.LOCATION, location_id))
        elif rule.subject == R.Subject.TEAM and employee_id and teams.get(employee_id):
            out.add(Subject(R.Subject.TEAM, teams[employee_id]))
    return out


def evaluate_touched(*, touched, sources, now=None, event_pk=None) -> list[GapTrigger]:
    """Evaluate the active rules on the touched standards, for the touched subjects only."""
    now = now or timezone.now()
    touched = list(touched)
    rules = rules_for({t[0] for t in touched}, sources=sources)
    if not rules:
        return []
    teams = {}
    if any(r.subject == R.Subject.TEAM for r in rules):
        employee_ids = {t[2] for t in touched if t[2]}
        teams = dict(Employee.objects.filter(pk__in=employee_ids).values_list("pk", "current_team_id"))
    found = []
    for rule in rules:
        for subject in sorted(subjects_for(rule, touched, teams), key=lambda s: s.key):
            trigger = evaluate(rule, subject, now=now, event_pk=event_pk)
            if trigger is not None:
                found.append(trigger)
    return found


# --- holdout release (beat) -----------------------------------------------------------------------


def holdouts_due(now) -> list[tuple[int, int]]:
    """(tenant_id, trigger id) of held-out triggers past their date; call inside unscoped()."""
    return list(
        GapTrigger.objects.filter(outcome=T.HOLDOUT, holdout_until__lte=now)
        .exclude(evidence__has_key="released")
        .order_by("organization_id", "pk")
        .values_list("organization_id", "pk")
    )


def _subject_of(trigger: GapTrigger) -> Subject:
    return Subject(
        trigger.subject,
        {"employee": trigger.employee_id, "location": trigger.location_id, "team": trigger.team_id}[
            trigger.subject
        ],
    )


def holdouts_release(*, organization, ids: list[int] | None = None, now=None) -> list[int]:
    """Assign held-out cases whose time has come, if the gap still holds; either way mark them
    released (in the evidence: the trigger stays a holdout, the control group is a fact)."""
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    released = []
    qs = GapTrigger.objects.filter(outcome=T.HOLDOUT, holdout_until__lte=now).exclude(
        evidence__has_key="released"
    )
    if ids is not None:
        qs = qs.filter(pk__in=ids)
    for pk in qs.order_by("pk").values_list("pk", flat=True):
        with transaction.atomic():
            trigger = (
                GapTrigger.objects.select_for_update(of=("self",))
                .select_related("rule__standard", "rule__lesson", "rule__path")
                .filter(pk=pk, outcome=T.HOLDOUT)
                .exclude(evidence__has_key="released")
                .first()
            )
            if trigger is None:
                continue
            rule, subject = trigger.rule, _subject_of(trigger)
            evidence = score(rule, subject, now=now)
            note = {"at": now.isoformat(), "score": evidence["mean"], "n": evidence["n"]}
            if rule.active and is_gap(rule, evidence):
                place = _place(subject)
                people = targets(rule, subject, place)
                result = services.assign_employees(
                    org_id=org_id,
                    employees=people,
                    lesson=rule.lesson,
                    path=rule.path,
                    due_at=now + dt.timedelta(days=rule.due_days),
                    source=Assignment.Source.RULE,
                    reason=reason_text(rule, subject.kind, evidence, place.location),
                    rule=rule,
                    trigger=trigger,
                    now=now,
                )
                note.update(assigned=[a.pk for a in result.created], skipped=result.skipped)
            else:
                note["gap_closed"] = True
            trigger.evidence = {**trigger.evidence, "released": note}
            trigger.save(update_fields=["evidence"])
            audit_log_write(
                organization=org_id,
                actor=Actor.system(),
                action="learning.holdout_release",
                instance=trigger,
                changes=note,
            )
            released.append(pk)
    return released


# --- disputes -----------------------------------------------------------------------------------------


def withdraw_closed_gaps(*, standard_ids, location_id, employee_id, now=None) -> list[int]:
    """After a dispute rescored an audit: unstarted rule assignments whose gap is gone are withdrawn.

    Only assignments whose trigger is on one of the audit's standards and about its subject
    (the employee, the location, or the employee's team) are looked at.
    """
    now = now or timezone.now()
    if not standard_ids:
        return []
    about = Q()
    if employee_id:
        about |= Q(trigger__subject=R.Subject.EMPLOYEE, trigger__employee_id=employee_id)
        team_id = Employee.objects.filter(pk=employee_id).values_list("current_team_id", flat=True).first()
        if team_id:
            about |= Q(trigger__subject=R.Subject.TEAM, trigger__team_id=team_id)
    if location_id:
        about |= Q(trigger__subject=R.Subject.LOCATION, trigger__location_id=location_id)
    if not about:
        return []
    candidates = list(
        Assignment.objects.select_for_update(of=("self",))
        .filter(
            about,
            source=Assignment.Source.RULE,
            status=Assignment.Status.ASSIGNED,
            started_at__isnull=True,
            trigger__standard_id__in=list(standard_ids),
            trigger__rule__source__in=AUDIT_SOURCES,
        )
        .select_related("trigger__rule__standard")
        .order_by("pk")
    )
    by_trigger: dict[int, list[Assignment]] = {}
    for a in candidates:
        by_trigger.setdefault(a.trigger_id, []).append(a)
    withdrawn = []
    for group in by_trigger.values():
        trigger = group[0].trigger
        rule = trigger.rule
        evidence = score(rule, _subject_of(trigger), now=now)
        if is_gap(rule, evidence):
            continue
        if evidence["n"] < rule.min_points:
            now_said = f"there are now only {_plural(evidence['n'], 'data point')}"
        else:
            now_said = f"{rule.standard.title} now scores {evidence['mean']:.0f}/100"
        note = (
            f"Withdrawn: after a dispute was accepted the gap closed ({now_said}; "
            f"the rule's threshold is {rule.threshold:.0f})."
        )
        for a in group:
            services.withdraw_locked(rule.organization_id, Actor.system(), a, note, now)
            withdrawn.append(a.pk)
    return withdrawn


__all__ = [
    "Subject",
    "evaluate",
    "evaluate_touched",
    "holdout_draw",
    "holdouts_due",
    "holdouts_release",
    "is_gap",
    "reason_text",
    "rule_shape_errors",
    "score",
    "withdraw_closed_gaps",
]
