"""Call and chat monitoring: samples, evaluator queues, evaluations, acknowledgement, calibration.

Monitored calls and chats are ordinary core Interactions (channel kind phone / chat / email, the
agents as the interaction's employees, ``attributes`` holding ``duration``, ``recording_url`` or
``transcript``). They come in through the existing ``POST /api/v1/interactions/`` and
``/api/v1/interactions/bulk/`` endpoints (JSON or CSV, idempotent on ``external_id``); this module
adds no import path of its own.

Flow:

1. ``sample_draw`` picks, per programme and period, ``sample_per_agent`` interactions per agent with
   ``audits.sampling.sample`` (reproducible from the stored seed, Critical stratum first), never one
   already evaluated or sampled, and deals them round-robin to the organization's evaluators.
   Beat draws last week's sample for every active monitoring programme (audits/monitoring_tasks.py).
2. The evaluator fills a draft (``evaluation_save``) and submits it (``evaluation_submit``): it is
   scored with audits.scoring, published at once (monitoring has no shopper to review) and
   ``EvaluationPublished`` goes on the spine. The agent sees it and acknowledges it once.
3. Calibration: evaluators score one interaction blind (``calibration_evaluate``); an evaluator or
   admin closes the session with the consensus answers (``calibration_close``); the results and the
   per-evaluator trend come from ``audits.calibration.calibrate``. Nobody sees another evaluator's
   answers before the session is closed (``calibration_visible_audits``).

Services (keyword-only, organization first, atomic, audit-logged) and selectors live together
here; the API is audits/api/monitoring.py.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from audits.audit_services import audit_publish, scoring_item
from audits.calibration import calibrate
from audits.models import (
    Audit,
    AuditAnswer,
    AuditForm,
    AuditFormVersion,
    CalibrationSession,
    FormItem,
    MonitoringSample,
    Program,
    ProgramKind,
    SampleItem,
)
from audits.sampling import Candidate, sample
from audits.scoring import AuditScore, Item, ScoringError, failed_without_comment, item_fraction, score_audit
from cem.models import Channel, Interaction, InteractionEmployee, Membership, Role
from cem.principals import Actor
from cem.services import audit_log_write
from cem.tenancy import current_tenant_id

DEFAULT_CHANNEL_KINDS = (Channel.Kind.PHONE, Channel.Kind.CHAT, Channel.Kind.EMAIL)
ANSWER_MAX = 200  # AuditAnswer.value
# Samples are weekly; a quarter is the most a manual draw may cover (the candidate scan grows with it).
MAX_PERIOD = dt.timedelta(days=92)


class Conflict(Exception):
    """The request is valid but the object's state does not allow it (HTTP 409)."""


def _org_id(organization) -> int:
    org_id = getattr(organization, "pk", organization)
    if org_id != current_tenant_id():
        raise PermissionError(f"service called for organization {org_id} inside tenant {current_tenant_id()}")
    return org_id


# --- forms and scoring helpers -------------------------------------------------------------------


def form_current_version(form: AuditForm) -> AuditFormVersion:
    version = AuditFormVersion.objects.filter(form=form).order_by("-number").first()
    if version is None:
        raise ValidationError({"program": "The programme's form has no version yet."})
    return version


def scoring_items(items: Iterable[FormItem]) -> list[Item]:
    return [scoring_item(i, i.section.key) for i in items]


def version_items(version: AuditFormVersion) -> list[FormItem]:
    return list(
        FormItem.objects.filter(version=version)
        .select_related("section")
        .order_by("section__position", "position", "pk")
    )


def _answers_of(audit: Audit) -> dict[str, AuditAnswer]:
    return {a.item.key: a for a in AuditAnswer.objects.filter(audit=audit).select_related("item")}


def _write_answers(*, org_id: int, audit: Audit, answers: Mapping[str, Mapping]) -> None:
    """Upsert answers by item key; each answer is checked now so mistakes surface on the draft."""
    items = {i.key: i for i in version_items(audit.version)}
    scored = {i.key: i for i in scoring_items(items.values())}
    errors = {}
    unknown = sorted(set(answers) - set(items))
    if unknown:
        errors["answers"] = [f"unknown item: {key}" for key in unknown]
    for key, answer in answers.items():
        if key not in items:
            continue
        value = answer.get("value")
        value = "" if value is None else str(value)
        if len(value) > ANSWER_MAX:
            errors[key] = f"at most {ANSWER_MAX} characters"
            continue
        if key in scored:
            try:
                item_fraction(scored[key], value)
            except ScoringError as exc:
                errors[key] = exc.message
    if errors:
        raise ValidationError(errors)
    for key, answer in answers.items():
        value = answer.get("value")
        AuditAnswer.objects.update_or_create(
            organization_id=org_id,
            audit=audit,
            item=items[key],
            defaults={
                "value": "" if value is None else str(value),
                "comment": str(answer.get("comment") or ""),
                "text": str(answer.get("text") or ""),
            },
        )


def _score(audit: Audit) -> tuple[AuditScore, list[FormItem]]:
    items = version_items(audit.version)
    answers = _answers_of(audit)
    missing = [
        i.key
        for i in items
        if i.required
        and i.type not in ("text", "photo")
        and not (answers.get(i.key) and answers[i.key].value)
    ]
    if missing:
        raise ValidationError({key: "an answer is required" for key in missing})
    form = audit.version.form
    result = score_audit(
        scoring_items(items),
        {k: a.value for k, a in answers.items()},
        critical_policy=form.critical_policy,
        critical_cap=form.critical_cap,
    )
    needs_comment = {i.key for i in items if i.comment_required_on_fail}
    uncommented = [
        k
        for k in failed_without_comment(result, {k: a.comment for k, a in answers.items()})
        if k in needs_comment
    ]
    if uncommented:
        raise ValidationError({key: "a failed item needs a comment" for key in uncommented})
    return result, items


def _store_score(audit: Audit, result: AuditScore) -> None:
    """Calibration audits only: scored like any audit (same stored shape as audit_services), but
    they leave no StandardScore rows, because they say nothing about an agent or a location."""
    audit.score = result.total
    audit.raw_score = result.raw_total
    audit.critical_failed = result.critical_failed
    audit.section_scores = {
        key: {
            "score": None if sc.value is None else str(sc.value),
            "earned": str(sc.earned.quantize(Decimal("0.001"))),
            "possible": str(sc.possible.quantize(Decimal("0.001"))),
        }
        for key, sc in result.sections.items()
    }


# --- sampling ------------------------------------------------------------------------------------


def program_channel_kinds(program: Program) -> tuple[str, ...]:
    """The channels a programme monitors: its form's section channels, else phone, chat and email."""
    version = AuditFormVersion.objects.filter(form_id=program.form_id).order_by("-number").first()
    kinds = set()
    if version is not None:
        kinds = set(version.sections.exclude(channel_kind="").values_list("channel_kind", flat=True))
    return tuple(sorted(kinds)) if kinds else DEFAULT_CHANNEL_KINDS


def default_seed(program: Program, period_start: dt.datetime) -> str:
    return f"{program.pk}:{period_start.isoformat()}"


def _candidates(program: Program, period_start, period_end) -> list[Candidate]:
    interactions = Interaction.objects.filter(
        occurred_at__gte=period_start,
        occurred_at__lt=period_end,
        channel__kind__in=program_channel_kinds(program),
    )
    rows = dict(interactions.values_list("pk", "category"))
    if not rows:
        return []
    ids = list(rows)
    taken = set(Audit.objects.filter(interaction_id__in=ids).values_list("interaction_id", flat=True)) | set(
        SampleItem.objects.filter(interaction_id__in=ids).values_list("interaction_id", flat=True)
    )
    agents: dict[int, int] = {}
    # The agent is the first employee recorded on the interaction (lowest link id).
    for interaction_id, employee_id in (
        InteractionEmployee.objects.filter(interaction_id__in=ids)
        .order_by("interaction_id", "pk")
        .values_list("interaction_id", "employee_id")
    ):
        agents.setdefault(interaction_id, employee_id)
    return [
        Candidate(
            interaction_id=iid,
            agent_id=agents[iid],
            category=rows[iid],  # audits.sampling's Critical stratum is the category value "critical"
        )
        for iid in ids
        if iid in agents and iid not in taken
    ]


def org_evaluators() -> list[int]:
    return list(
        Membership.objects.filter(role=Role.EVALUATOR, is_active=True)
        .order_by("pk")
        .values_list("user_id", flat=True)
    )


@transaction.atomic
def sample_draw(
    *, organization, actor: Actor, program: Program, period_start, period_end, seed: str | None = None
) -> tuple[MonitoringSample, bool]:
    """Draw the programme's sample for a period; ``(sample, created)``. A drawn period is returned as is."""
    org_id = _org_id(organization)
    if period_end <= period_start:
        raise ValidationError({"period_end": "Must be after period_start."})
    if period_end - period_start > MAX_PERIOD:
        raise ValidationError({"period_end": f"A sample covers at most {MAX_PERIOD.days} days."})
    # Locking the programme serialises two draws of the same period (beat and a manual draw).
    program = Program.objects.select_for_update().get(pk=program.pk)
    if program.kind != ProgramKind.MONITORING:
        raise ValidationError({"program": "Only monitoring programmes draw samples."})
    existing = MonitoringSample.objects.filter(program=program, period_start=period_start).first()
    if existing is not None:
        return existing, False
    seed = seed or default_seed(program, period_start)
    drawn = MonitoringSample.objects.create(
        organization_id=org_id, program=program, period_start=period_start, period_end=period_end, seed=seed
    )
    picked = sample(
        _candidates(program, period_start, period_end),
        per_agent=program.sample_per_agent,
        seed=seed,
        critical_share=float(program.sample_critical_share),
    )
    evaluators = org_evaluators()
    # Continue the rotation where the programme's previous samples stopped, so a small sample
    # does not land on the first evaluator every week.
    offset = SampleItem.objects.filter(sample__program=program).count()
    rows = [(agent_id, interaction_id) for agent_id in sorted(picked) for interaction_id in picked[agent_id]]
    SampleItem.objects.bulk_create(
        SampleItem(
            organization_id=org_id,
            sample=drawn,
            interaction_id=interaction_id,
            agent_id=agent_id,
            evaluator_id=evaluators[(offset + n) % len(evaluators)] if evaluators else None,
        )
        for n, (agent_id, interaction_id) in enumerate(rows)
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="monitoring.sample_draw",
        instance=drawn,
        changes={
            "program": program.pk,
            "period_start": period_start.isoformat(),
            "period_end": period_end.isoformat(),
            "seed": seed,
            "items": len(rows),
        },
    )
    return drawn, True


def last_week(now: dt.datetime, time_zone: str) -> tuple[dt.datetime, dt.datetime]:
    """Monday 00:00 to Monday 00:00 of the last complete week in the organization's time zone."""
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(time_zone))
    this_monday = (local - dt.timedelta(days=local.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    start = this_monday - dt.timedelta(days=7)
    # Rebuilding from the date keeps midnight right across a DST change inside the week.
    tz = ZoneInfo(time_zone)
    return (
        dt.datetime.combine(start.date(), dt.time(), tz),
        dt.datetime.combine(this_monday.date(), dt.time(), tz),
    )


# --- evaluations ---------------------------------------------------------------------------------


def _claim(item: SampleItem, actor: Actor) -> None:
    if item.evaluator_id is not None and item.evaluator_id != actor.user_id:
        raise PermissionDenied("This interaction is in another evaluator's queue.")


@transaction.atomic
def evaluation_save(
    *, organization, actor: Actor, sample_item: SampleItem, answers: Mapping[str, Mapping]
) -> Audit:
    """Create or update the draft evaluation of a sampled interaction."""
    org_id = _org_id(organization)
    item = (
        SampleItem.objects.select_for_update().select_related("sample__program__form").get(pk=sample_item.pk)
    )
    _claim(item, actor)
    created = item.audit_id is None
    if created:
        interaction = Interaction.objects.get(pk=item.interaction_id)
        audit = Audit.objects.create(
            organization_id=org_id,
            version=form_current_version(item.sample.program.form),
            interaction_id=item.interaction_id,
            evaluator_id=actor.user_id,
            employee_id=item.agent_id,
            location_id=interaction.location_id,
            visited_at=interaction.occurred_at,
        )
        item.audit = audit
        item.evaluator_id = actor.user_id
        item.save(update_fields=["audit", "evaluator"])
    else:
        audit = Audit.objects.select_for_update().get(pk=item.audit_id)
        if audit.status != Audit.Status.DRAFT:
            raise Conflict("The evaluation is already published.")
    _write_answers(org_id=org_id, audit=audit, answers=answers)
    audit.save(update_fields=["updated_at"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="monitoring.evaluation_save",
        instance=audit,
        changes={"sample_item": item.pk, "created": created, "items": sorted(answers)},
    )
    return audit


@transaction.atomic
def evaluation_submit(*, organization, actor: Actor, sample_item: SampleItem) -> Audit:
    """Score the draft and publish it to the agent; emits EvaluationPublished."""
    org_id = _org_id(organization)
    item = SampleItem.objects.select_for_update().get(pk=sample_item.pk)
    _claim(item, actor)
    if item.audit_id is None:
        raise Conflict("Nothing to submit: save the evaluation first.")
    audit = Audit.objects.select_for_update().select_related("version__form").get(pk=item.audit_id)
    if audit.status != Audit.Status.DRAFT:
        raise Conflict("The evaluation is already published.")
    _score(audit)  # completeness: required answers and comments on failed items
    # One publish path for every audit: scores, StandardScore rows, the event (EvaluationPublished
    # for an evaluation), audit log.
    return audit_publish(organization=org_id, actor=actor, audit=audit)


@transaction.atomic
def evaluation_acknowledge(*, organization, actor: Actor, audit: Audit, employee_id: int | None) -> Audit:
    """The agent confirms they have read the evaluation; the first acknowledgement is kept."""
    org_id = _org_id(organization)
    audit = Audit.objects.select_for_update().get(pk=audit.pk)
    if employee_id is None or audit.employee_id != employee_id:
        raise PermissionDenied("Only the evaluated agent acknowledges an evaluation.")
    if audit.status != Audit.Status.PUBLISHED:
        raise Conflict("The evaluation is not published.")
    if audit.acknowledged_at is None:
        audit.acknowledged_at = timezone.now()
        audit.save(update_fields=["acknowledged_at", "updated_at"])
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="monitoring.evaluation_acknowledge",
            instance=audit,
            changes={"acknowledged_at": audit.acknowledged_at.isoformat()},
        )
    return audit


def evaluations_only(audits):
    """Published monitoring evaluations (never calibration audits or mystery-shop visits)."""
    return audits.filter(
        interaction__isnull=False,
        calibration__isnull=True,
        assignment__isnull=True,
        status=Audit.Status.PUBLISHED,
    )


def audits_released(audits):
    """What the generic audit routes may show: never the answers of an open calibration session
    (evaluators score blind until it closes) nor a monitoring draft (the agent sees it published)."""
    return audits.exclude(calibration__isnull=False, calibration__closed_at__isnull=True).exclude(
        interaction__isnull=False,
        assignment__isnull=True,
        calibration__isnull=True,
        status=Audit.Status.DRAFT,
    )


def sample_item_status_q(status: str) -> Q:
    if status == "open":
        return Q(audit__isnull=True) | Q(audit__status=Audit.Status.DRAFT)
    if status == "done":
        return Q(audit__status=Audit.Status.PUBLISHED)
    return Q()


# --- calibration ---------------------------------------------------------------------------------


@transaction.atomic
def calibration_create(
    *,
    organization,
    actor: Actor,
    program: Program,
    interaction: Interaction,
    evaluators: Iterable[int] = (),
) -> CalibrationSession:
    """A session for one interaction; ``evaluators`` (user ids) limits who scores it, else anyone may."""
    org_id = _org_id(organization)
    if program.kind != ProgramKind.MONITORING:
        raise ValidationError({"program": "Calibration sessions belong to monitoring programmes."})
    form_current_version(program.form)
    chosen = sorted(set(evaluators))
    strangers = sorted(set(chosen) - set(org_evaluators()))
    if strangers:
        raise ValidationError({"evaluators": f"Not evaluators of this organization: {strangers}"})
    session = CalibrationSession.objects.create(
        organization_id=org_id, program=program, interaction=interaction, evaluators=chosen
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="monitoring.calibration_create",
        instance=session,
        changes={"program": program.pk, "interaction": interaction.pk, "evaluators": chosen},
    )
    return session


def calibration_may_evaluate(session: CalibrationSession, user_id: int | None) -> bool:
    return user_id is not None and (not session.evaluators or user_id in session.evaluators)


def _open_session(session: CalibrationSession) -> CalibrationSession:
    session = (
        CalibrationSession.objects.select_for_update().select_related("program__form").get(pk=session.pk)
    )
    if session.closed_at is not None:
        raise Conflict("The calibration session is closed.")
    return session


def _session_audit(*, org_id, session, actor: Actor, version) -> Audit:
    return Audit.objects.create(
        organization_id=org_id,
        version=version,
        interaction_id=session.interaction_id,
        calibration=session,
        evaluator_id=actor.user_id,
        # No agent and no location: a calibration score is about the evaluators, never the agent.
    )


@transaction.atomic
def calibration_evaluate(
    *, organization, actor: Actor, session: CalibrationSession, answers: Mapping[str, Mapping]
) -> Audit:
    """The caller's blind, scored evaluation for the session; may be revised until it closes."""
    org_id = _org_id(organization)
    if actor.user_id is None:
        raise PermissionDenied("Calibration evaluations are personal: sign in as an evaluator.")
    session = _open_session(session)
    if not calibration_may_evaluate(session, actor.user_id):
        raise PermissionDenied("You are not one of this session's evaluators.")
    audit = (
        Audit.objects.filter(calibration=session, evaluator_id=actor.user_id)
        .exclude(pk=session.final_audit_id or 0)
        .first()
    )
    if audit is None:
        audit = _session_audit(
            org_id=org_id, session=session, actor=actor, version=form_current_version(session.program.form)
        )
    _write_answers(org_id=org_id, audit=audit, answers=answers)
    result, _ = _score(audit)
    _store_score(audit, result)
    audit.status = Audit.Status.SUBMITTED
    audit.save()
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="monitoring.calibration_evaluate",
        instance=audit,
        changes={"session": session.pk, "score": None if audit.score is None else str(audit.score)},
    )
    return audit


@transaction.atomic
def calibration_close(
    *, organization, actor: Actor, session: CalibrationSession, answers: Mapping[str, Mapping]
) -> CalibrationSession:
    """Store the consensus answers as the session's final audit and reveal all evaluations."""
    org_id = _org_id(organization)
    session = _open_session(session)
    if not Audit.objects.filter(calibration=session).exists():
        raise Conflict("No evaluator has scored this session yet.")
    final = _session_audit(
        org_id=org_id, session=session, actor=actor, version=form_current_version(session.program.form)
    )
    _write_answers(org_id=org_id, audit=final, answers=answers)
    result, _ = _score(final)
    _store_score(final, result)
    final.status = Audit.Status.SUBMITTED
    final.save()
    session.final_audit = final
    session.closed_at = timezone.now()
    session.save(update_fields=["final_audit", "closed_at"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="monitoring.calibration_close",
        instance=session,
        changes={"final_audit": final.pk, "score": None if final.score is None else str(final.score)},
    )
    return session


def calibration_evaluator_audits(session: CalibrationSession):
    return Audit.objects.filter(calibration=session).exclude(pk=session.final_audit_id or 0)


def calibration_visible_audits(session: CalibrationSession, *, user_id: int | None):
    """Blindness: until the session closes a caller sees only their own evaluation."""
    audits = calibration_evaluator_audits(session)
    if session.closed_at is None:
        audits = audits.filter(evaluator_id=user_id) if user_id is not None else audits.none()
    return audits.select_related("evaluator").order_by("pk")


def _answer_values(audit_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    values: dict[int, dict[str, str]] = defaultdict(dict)
    for audit_id, key, value in AuditAnswer.objects.filter(audit_id__in=list(audit_ids)).values_list(
        "audit_id", "item__key", "value"
    ):
        values[audit_id][key] = value
    return values


def calibration_results(session: CalibrationSession) -> dict:
    if session.closed_at is None or session.final_audit_id is None:
        raise Conflict("Results are shown once the session is closed.")
    final = Audit.objects.select_related("version").get(pk=session.final_audit_id)
    items = scoring_items(version_items(final.version))
    audits = list(calibration_evaluator_audits(session).select_related("evaluator").order_by("pk"))
    values = _answer_values([final.pk, *(a.pk for a in audits)])
    result = calibrate(items, values[final.pk], {a.pk: values[a.pk] for a in audits})
    return {
        "session": session.pk,
        "final_score": final.score,
        "items": [
            {"key": key, "disagreement": share, "final": values[final.pk].get(key, "")}
            for key, share in result.disagreement.items()
        ],
        "evaluators": [
            {
                "evaluator": a.evaluator_id,
                "evaluator_email": a.evaluator.email if a.evaluator else "",
                "audit": a.pk,
                "score": a.score,
                "alignment": result.alignment[a.pk],
                # Per item: the answer given and whether it differs from the final one.
                "answers": values[a.pk],
                "differs": sorted(result.differs[a.pk]),
            }
            for a in audits
        ],
    }


def calibration_trends(*, evaluator_id: int | None = None, since=None, until=None) -> list[dict]:
    """Alignment per evaluator per closed session, oldest first, with each evaluator's mean."""
    sessions = CalibrationSession.objects.filter(closed_at__isnull=False, final_audit__isnull=False)
    if since is not None:
        sessions = sessions.filter(closed_at__gte=since)
    if until is not None:
        sessions = sessions.filter(closed_at__lt=until)
    sessions = list(sessions.order_by("closed_at", "pk"))
    if not sessions:
        return []
    audits = Audit.objects.filter(calibration__in=sessions).exclude(
        pk__in=[s.final_audit_id for s in sessions]
    )
    if evaluator_id is not None:
        audits = audits.filter(evaluator_id=evaluator_id)
    audits = list(audits.select_related("evaluator", "version"))
    finals = {
        a.pk: a
        for a in Audit.objects.filter(pk__in=[s.final_audit_id for s in sessions]).select_related("version")
    }
    values = _answer_values([*finals, *(a.pk for a in audits)])
    items_by_version: dict[int, list[Item]] = {}
    by_session: dict[int, list[Audit]] = defaultdict(list)
    for a in audits:
        by_session[a.calibration_id].append(a)
    series: dict[int, dict] = {}
    for s in sessions:
        if not by_session.get(s.pk):
            continue
        final = finals[s.final_audit_id]
        if final.version_id not in items_by_version:
            items_by_version[final.version_id] = scoring_items(version_items(final.version))
        result = calibrate(
            items_by_version[final.version_id],
            values[final.pk],
            {a.pk: values[a.pk] for a in by_session[s.pk]},
        )
        for a in by_session[s.pk]:
            entry = series.setdefault(
                a.evaluator_id,
                {
                    "evaluator": a.evaluator_id,
                    "evaluator_email": a.evaluator.email if a.evaluator else "",
                    "points": [],
                },
            )
            entry["points"].append(
                {"session": s.pk, "closed_at": s.closed_at, "alignment": result.alignment[a.pk]}
            )
    out = []
    for entry in series.values():
        scored = [p["alignment"] for p in entry["points"] if p["alignment"] is not None]
        entry["sessions"] = len(entry["points"])
        entry["mean_alignment"] = (sum(scored) / len(scored)).quantize(Decimal("0.01")) if scored else None
        out.append(entry)
    return sorted(out, key=lambda e: (e["evaluator_email"], e["evaluator"] or 0))


# --- reads for the monitoring pages ----------------------------------------------------------------


def evaluator_queue(*, user_id: int | None, status: str = "open"):
    """The sampled interactions waiting for (or done by) one evaluator, oldest period first."""
    items = SampleItem.objects.filter(evaluator_id=user_id).filter(sample_item_status_q(status))
    return items.select_related("sample__program", "agent", "audit", "interaction__channel").order_by(
        "sample__period_start", "interaction__occurred_at", "pk"
    )


def evaluator_queue_counts(*, user_id: int | None) -> dict[str, int]:
    counts = SampleItem.objects.filter(evaluator_id=user_id).aggregate(
        new=Count("pk", filter=Q(audit__isnull=True)),
        draft=Count("pk", filter=Q(audit__status=Audit.Status.DRAFT)),
        done=Count("pk", filter=Q(audit__status=Audit.Status.PUBLISHED)),
    )
    counts["open"] = counts["new"] + counts["draft"]
    return counts


def samples_overview(*, program_id: int | None = None):
    """Drawn samples, newest period first, with their item and published-evaluation counts."""
    samples = MonitoringSample.objects.all()
    if program_id is not None:
        samples = samples.filter(program_id=program_id)
    return (
        samples.select_related("program")
        .annotate(
            item_count=Count("items"),
            done_count=Count("items", filter=Q(items__audit__status=Audit.Status.PUBLISHED)),
        )
        .order_by("-period_start", "-pk")
    )


def sample_agent_counts(sample: MonitoringSample) -> list[dict]:
    """Per agent of one sample: interactions drawn, Critical ones, drafts and published evaluations."""
    return list(
        SampleItem.objects.filter(sample=sample)
        .values("agent_id", "agent__name")
        .annotate(
            items=Count("pk"),
            critical=Count("pk", filter=Q(interaction__category="critical")),
            drafts=Count("pk", filter=Q(audit__status=Audit.Status.DRAFT)),
            done=Count("pk", filter=Q(audit__status=Audit.Status.PUBLISHED)),
        )
        .order_by("agent__name", "agent_id")
    )


def calibration_sessions():
    """Sessions, newest first, with the number of evaluators who scored (never their scores)."""
    scored = Q(audits__isnull=False) & (Q(final_audit__isnull=True) | ~Q(audits__pk=F("final_audit_id")))
    return (
        CalibrationSession.objects.select_related("program", "final_audit")
        .annotate(scored_count=Count("audits", filter=scored))
        .order_by("-created_at", "-pk")
    )


def evaluation_item_results(audit: Audit) -> list[dict]:
    """Each item of a published evaluation with the answer, comment and what it earned (audits.scoring)."""
    items = version_items(audit.version)
    answers = _answers_of(audit)
    form = audit.version.form
    try:
        scored = score_audit(
            scoring_items(items),
            {k: a.value for k, a in answers.items()},
            critical_policy=form.critical_policy,
            critical_cap=form.critical_cap,
        ).items
    except ScoringError:
        scored = {}  # a form edited after publishing: show the answers without points
    rows = []
    for item in items:
        answer = answers.get(item.key)
        result = scored.get(item.key)
        rows.append(
            {
                "item": item,
                "value": answer.value if answer else "",
                "text": answer.text if answer else "",
                "comment": answer.comment if answer else "",
                "applicable": bool(result and result.applicable),
                "earned": result.earned if result else None,
                "possible": result.possible if result else None,
                "failed": bool(result and result.failed),
            }
        )
    return rows
