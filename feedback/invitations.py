"""Feedback invitations: created after interactions, sent, reminded and expired under contact rules.

Lifecycle: SCHEDULED → SENT → RESPONDED, or EXPIRED; SUPPRESSED when a contact rule says no
(opt-out, an identifier on the suppression list, no consent, no address, contact cap) and FAILED
when the channel refused the address.

Scheduling rules (``send_at``):

- ``occurred_at + survey.send_delay_minutes``, never earlier than now (a late-arriving interaction
  is invited at once, not "in the past");
- moved out of the organization's quiet hours (``contact_rules.quiet_hours``, local time): a send
  time in the evening or night goes out when quiet hours end the next morning. This is also how
  the "same day" rule is honoured: a delay that would carry the invitation past the end of the
  customer's day lands in quiet hours and is sent first thing the next morning instead of at night;
- an interaction older than the survey's expiry is not invited at all (a back-filled history must
  not turn into a mailing), and no row is written for it.

Tokens: the link token is derived when the invitation is sent, as an HMAC of the invitation's
identity under SECRET_KEY (``invitation_token``); only its SHA-256 is stored. Deriving it rather
than drawing it at random lets the reminder carry the same link as the first message without
ever storing the raw token; a database leak alone still yields no links. Until an invitation is
sent its ``token_hash`` is the hash of a random token nobody kept, so it opens nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, Min, Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from cem import suppression
from cem.events import handles
from cem.models import Customer, Interaction, InteractionEmployee, Organization, SuppressedIdentifier
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from feedback.models import DeliveryChannel, Invitation, Survey, SurveyTrigger, SurveyVersion
from feedback.tokens import hash_token, new_token

logger = logging.getLogger(__name__)

DEFAULT_CAP_DAYS = 30
SEND_BATCH = 500
_LINK_HMAC_SALT = "feedback.invitation"
# What counts against the contact cap: invitations that reached (or will reach) the customer.
_CONTACTED = Q(
    status__in=[Invitation.Status.SCHEDULED, Invitation.Status.SENT, Invitation.Status.RESPONDED]
) | Q(status=Invitation.Status.EXPIRED, sent_at__isnull=False)


# --- contact rules --------------------------------------------------------------------------


def contact_rules(organization: Organization) -> dict:
    return (organization.settings or {}).get("contact_rules") or {}


def cap_days(organization: Organization) -> int:
    value = contact_rules(organization).get("max_invitations_per_customer_days", DEFAULT_CAP_DAYS)
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return DEFAULT_CAP_DAYS


def _quiet_hours(organization: Organization) -> tuple[dt.time, dt.time] | None:
    value = contact_rules(organization).get("quiet_hours")
    if not value or len(value) != 2:
        return None
    try:
        start, end = (dt.time.fromisoformat(str(v)) for v in value)
    except ValueError:
        logger.warning("organization %s has malformed quiet_hours %r; ignored", organization.pk, value)
        return None
    return None if start == end else (start, end)


def _tz(organization: Organization) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(organization.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def quiet_until(organization: Organization, at: dt.datetime) -> dt.datetime | None:
    """When the quiet period that ``at`` falls in ends (aware, UTC), or None outside quiet hours."""
    quiet = _quiet_hours(organization)
    if quiet is None:
        return None
    start, end = quiet
    tz = _tz(organization)
    local = at.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    if start < end:  # e.g. 12:00-14:00 within one day
        if not start <= t < end:
            return None
        end_date = local.date()
    else:  # wraps midnight, e.g. 21:00-08:00
        if end <= t < start:
            return None
        end_date = local.date() + dt.timedelta(days=1) if t >= start else local.date()
    return dt.datetime.combine(end_date, end, tzinfo=tz).astimezone(dt.UTC)


def schedule_send_at(
    organization: Organization, occurred_at: dt.datetime, delay_minutes: int, now
) -> dt.datetime:
    send_at = max(occurred_at + dt.timedelta(minutes=delay_minutes), now)
    return quiet_until(organization, send_at) or send_at


SUPPRESSED_IDENTIFIER = "identifier on the suppression list"


def suppression_reason(customer: Customer | None, channel: str, *, suppressed: bool = False) -> str:
    """Why this customer may not be contacted on this channel now ("" when they may).

    ``suppressed``: one of their identifiers is on the suppression list (an erased or opted-out
    person's address or number under another record; cem.suppression).
    """
    if customer is None:
        return "no customer"
    if customer.opted_out_at is not None:
        return "customer opted out"
    if suppressed:
        return SUPPRESSED_IDENTIFIER
    if channel == DeliveryChannel.EMAIL:
        if not customer.email:
            return "no email address"
        if not customer.consent_email:
            return "no email consent"
    else:
        # IVR calls the same number as SMS; the customer's phone consent covers both.
        if not customer.phone:
            return "no phone number"
        if not customer.consent_sms:
            return "no phone consent"
    return ""


def channel_consent(channel: str) -> Q:
    """The invitation's customer may be contacted on ``channel`` (as a filter on invitations)."""
    if channel == DeliveryChannel.EMAIL:
        return Q(customer__consent_email=True) & ~Q(customer__email="")
    return Q(customer__consent_sms=True) & ~Q(customer__phone="")


def invitation_token(invitation: Invitation) -> str:
    """The raw link token of a sent invitation, derived (not stored); see the module docstring."""
    value = f"{invitation.organization_id}:{invitation.pk}:{invitation.created_at.isoformat()}"
    digest = salted_hmac(_LINK_HMAC_SALT, value, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- creation -------------------------------------------------------------------------------


@dataclass
class _Candidate:
    survey: Survey
    version_id: int
    interaction: dict
    employee_id: int | None
    send_at: dt.datetime


def _matching_surveys(interactions: list[dict]) -> dict[int, list[int]]:
    """interaction id → ids of active surveys whose trigger matches its touchpoint and/or channel."""
    touchpoints = {i["touchpoint_id"] for i in interactions if i["touchpoint_id"]}
    channels = {i["channel_id"] for i in interactions if i["channel_id"]}
    triggers = list(
        SurveyTrigger.objects.filter(survey__status=Survey.Status.ACTIVE)
        .filter(Q(touchpoint_id__in=touchpoints) | Q(channel_id__in=channels))
        .values_list("survey_id", "channel_id", "touchpoint_id")
    )
    matched: dict[int, list[int]] = {}
    for interaction in interactions:
        found = []
        for survey_id, channel_id, touchpoint_id in triggers:
            # A trigger naming both a channel and a touchpoint needs both to match.
            if channel_id is not None and channel_id != interaction["channel_id"]:
                continue
            if touchpoint_id is not None and touchpoint_id != interaction["touchpoint_id"]:
                continue
            if survey_id not in found:
                found.append(survey_id)
        if found:
            matched[interaction["id"]] = found
    return matched


@transaction.atomic
def invitations_create(*, organization, actor: Actor, interaction_ids: list[int], now=None) -> dict[str, int]:
    """Create the invitations a batch of interactions calls for; idempotent per (survey, interaction).

    Set-based: a fixed number of queries whatever the batch size. The customers concerned are
    locked (in id order, so two runs cannot deadlock) before the contact cap is counted, so two
    runs for the same customer at once are serialised and the second sees the first's invitation.
    """
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    org = Organization.objects.get(pk=org_id)
    interactions = list(
        Interaction.objects.filter(pk__in=list(interaction_ids))
        .order_by("occurred_at", "pk")
        .values("id", "customer_id", "location_id", "channel_id", "touchpoint_id", "occurred_at")
    )
    matched = _matching_surveys(interactions)
    if not matched:
        return {"scheduled": 0, "suppressed": 0}
    survey_ids = {s for ids in matched.values() for s in ids}
    surveys = {s.pk: s for s in Survey.objects.filter(pk__in=survey_ids)}
    versions = dict(
        SurveyVersion.objects.filter(survey_id__in=survey_ids)
        .order_by("survey_id", "-number")
        .distinct("survey_id")
        .values_list("survey_id", "id")
    )
    existing = set(
        Invitation.objects.filter(interaction_id__in=list(matched)).values_list("survey_id", "interaction_id")
    )
    employees = dict(
        InteractionEmployee.objects.filter(interaction_id__in=list(matched))
        .values("interaction_id")
        .annotate(first=Min("employee_id"))
        .values_list("interaction_id", "first")
    )

    candidates: list[_Candidate] = []
    for interaction in interactions:
        for survey_id in matched.get(interaction["id"], ()):
            survey = surveys[survey_id]
            if survey_id not in versions or (survey_id, interaction["id"]) in existing:
                continue
            if interaction["occurred_at"] + dt.timedelta(days=survey.expires_after_days) <= now:
                continue  # too old to ask about; see the module docstring
            send_at = schedule_send_at(org, interaction["occurred_at"], survey.send_delay_minutes, now)
            candidates.append(
                _Candidate(
                    survey, versions[survey_id], interaction, employees.get(interaction["id"]), send_at
                )
            )
    if not candidates:
        return {"scheduled": 0, "suppressed": 0}
    candidates.sort(key=lambda c: (c.send_at, c.interaction["id"], c.survey.pk))

    customer_ids = sorted({c.interaction["customer_id"] for c in candidates if c.interaction["customer_id"]})
    customers = {
        c.pk: c for c in Customer.objects.filter(pk__in=customer_ids).order_by("pk").select_for_update()
    }
    window = dt.timedelta(days=cap_days(org))
    contacted: dict[int, list[dt.datetime]] = defaultdict(list)
    if window and customers:
        lo = candidates[0].send_at - window
        hi = candidates[-1].send_at + window
        for customer_id, send_at in Invitation.objects.filter(
            _CONTACTED, customer_id__in=list(customers), send_at__gt=lo, send_at__lt=hi
        ).values_list("customer_id", "send_at"):
            contacted[customer_id].append(send_at)

    suppressed = suppression.suppressed_customer_ids(customers.values())
    rows = []
    counts = {"scheduled": 0, "suppressed": 0}
    for c in candidates:
        survey = c.survey
        customer = customers.get(c.interaction["customer_id"])
        reason = suppression_reason(
            customer, survey.delivery_channel, suppressed=c.interaction["customer_id"] in suppressed
        )
        if not reason and window and any(abs(s - c.send_at) < window for s in contacted[customer.pk]):
            reason = f"contact cap: already invited within {window.days} days"
        if not reason and window:
            contacted[customer.pk].append(c.send_at)  # counts for the rest of this batch too
        expires_at = c.send_at + dt.timedelta(days=survey.expires_after_days)
        reminder_due_at = None
        if survey.reminder_after_days and survey.reminder_after_days < survey.expires_after_days:
            reminder_due_at = c.send_at + dt.timedelta(days=survey.reminder_after_days)
        rows.append(
            Invitation(
                organization_id=org_id,
                survey_id=survey.pk,
                version_id=c.version_id,
                interaction_id=c.interaction["id"],
                customer_id=c.interaction["customer_id"],
                location_id=c.interaction["location_id"],
                employee_id=c.employee_id,
                delivery_channel=survey.delivery_channel,
                locale=(customer.locale if customer else "") or org.locale,
                token_hash=new_token()[1],
                status=Invitation.Status.SUPPRESSED if reason else Invitation.Status.SCHEDULED,
                suppressed_reason=reason,
                send_at=c.send_at,
                reminder_due_at=None if reason else reminder_due_at,
                expires_at=expires_at,
            )
        )
        counts["suppressed" if reason else "scheduled"] += 1
    # A concurrent run that got here first for the same (survey, interaction) wins the conflict.
    Invitation.objects.bulk_create(rows, ignore_conflicts=True)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="invitations.create",
        object_type=Invitation._meta.label,
        changes={"interactions": len(interactions), **counts},
    )
    return counts


@handles("InteractionRecorded", name="feedback.invitations_create")
def invitations_create_handler(event) -> None:
    invitations_create(
        organization=event.organization_id,
        actor=Actor.system(),
        interaction_ids=event.payload.get("interaction_ids") or [],
    )


# --- sending, reminders, expiry -------------------------------------------------------------


def _send(org: Organization, invitation: Invitation, now, *, reminder: bool) -> str:
    """Claim one invitation with a conditional UPDATE and send it; returns what happened.

    The claim and the send share one transaction: a concurrent worker's UPDATE waits on the row
    and then matches nothing, so each message goes out once. Should the commit itself fail after
    the provider accepted the message, it is sent again on the next run (at least once, never lost).
    """
    from feedback.senders import SendFailed, send_invitation

    # Checked again in the claiming UPDATE itself: an opt-out, a withdrawn consent or an
    # identifier put on the suppression list, committed after the batch was read, still stops it.
    reachable = (
        Q(customer__opted_out_at__isnull=True)
        & channel_consent(invitation.delivery_channel)
        & ~Exists(
            SuppressedIdentifier.objects.filter(
                value_hash__in=suppression.suppressed_hashes_filter(invitation.customer)
            )
        )
    )
    with transaction.atomic():
        if reminder:
            raw = invitation_token(invitation)
            if hash_token(raw) != invitation.token_hash:
                # Sent by another path whose raw token we cannot rebuild: no link to remind with.
                Invitation.objects.filter(pk=invitation.pk).update(reminder_due_at=None)
                return "skipped"
            claimed = (
                Invitation.objects.filter(reachable, pk=invitation.pk, status=Invitation.Status.SENT)
                .filter(reminded_at__isnull=True)
                .update(reminded_at=now)
            )
        else:
            raw = invitation_token(invitation)
            claimed = Invitation.objects.filter(
                reachable, pk=invitation.pk, status=Invitation.Status.SCHEDULED
            ).update(status=Invitation.Status.SENT, sent_at=now, token_hash=hash_token(raw))
        if not claimed:
            return "skipped"
        try:
            send_invitation(organization=org, invitation=invitation, raw_token=raw, reminder=reminder)
        except SendFailed as exc:
            if reminder:
                return "failed"
            Invitation.objects.filter(pk=invitation.pk).update(
                status=Invitation.Status.FAILED, suppressed_reason=str(exc)[:200]
            )
            return "failed"
    return "reminded" if reminder else "sent"


def _run(org: Organization, invitations: list[Invitation], now, *, reminder: bool) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    suppressed = suppression.suppressed_customer_ids(i.customer for i in invitations)
    for invitation in invitations:
        reason = suppression_reason(
            invitation.customer, invitation.delivery_channel, suppressed=invitation.customer_id in suppressed
        )
        if reason:
            # Re-checked at send time: an opt-out since scheduling wins.
            if reminder:
                Invitation.objects.filter(pk=invitation.pk, reminded_at__isnull=True).update(
                    reminder_due_at=None
                )
            else:
                Invitation.objects.filter(pk=invitation.pk, status=Invitation.Status.SCHEDULED).update(
                    status=Invitation.Status.SUPPRESSED, suppressed_reason=reason
                )
            counts["suppressed"] += 1
            continue
        try:
            counts[_send(org, invitation, now, reminder=reminder)] += 1
        except Exception:
            # A provider outage leaves the invitation due; the next run tries again.
            logger.exception("sending invitation %s failed; left for the next run", invitation.pk)
            counts["retry"] += 1
    return dict(counts)


def _audit(org_id: int, action: str, counts: dict[str, int]) -> None:
    if any(counts.values()):
        audit_log_write(
            organization=org_id,
            actor=Actor.system(),
            action=action,
            object_type=Invitation._meta.label,
            changes=counts,
        )


def invitations_send_due(*, organization, invitation_ids=None, now=None, limit=SEND_BATCH) -> dict[str, int]:
    """Send SCHEDULED invitations whose time has come; during quiet hours, postpone them instead."""
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    org = Organization.objects.get(pk=org_id)
    due = Invitation.objects.filter(status=Invitation.Status.SCHEDULED, send_at__lte=now)
    if invitation_ids is not None:
        due = due.filter(pk__in=list(invitation_ids))
    quiet_end = quiet_until(org, now)
    if quiet_end is not None:
        counts = {"delayed": due.update(send_at=quiet_end)}
    else:
        batch = list(
            due.filter(expires_at__gt=now)
            .select_related("customer", "survey")
            .order_by("send_at", "pk")[:limit]
        )
        counts = _run(org, batch, now, reminder=False)
    _audit(org_id, "invitations.send", counts)
    return counts


def invitations_remind(*, organization, invitation_ids=None, now=None, limit=SEND_BATCH) -> dict[str, int]:
    """One reminder per unanswered invitation once reminder_due_at has passed; never a second one."""
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    org = Organization.objects.get(pk=org_id)
    if quiet_until(org, now) is not None:
        return {}  # still due after quiet hours: the next run sends them
    due = Invitation.objects.filter(
        status=Invitation.Status.SENT, reminded_at__isnull=True, reminder_due_at__lte=now, expires_at__gt=now
    )
    if invitation_ids is not None:
        due = due.filter(pk__in=list(invitation_ids))
    batch = list(due.select_related("customer", "survey").order_by("reminder_due_at", "pk")[:limit])
    counts = _run(org, batch, now, reminder=True)
    _audit(org_id, "invitations.remind", counts)
    return counts


@transaction.atomic
def invitations_expire(*, organization, now=None) -> int:
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    expired = Invitation.objects.filter(
        status__in=[Invitation.Status.SCHEDULED, Invitation.Status.SENT], expires_at__lte=now
    ).update(status=Invitation.Status.EXPIRED)
    _audit(org_id, "invitations.expire", {"expired": expired})
    return expired


@transaction.atomic
def invitations_suppress_for_customer(*, organization, actor: Actor, customer: Customer, reason: str) -> int:
    """Withdraw a customer's invitations not sent yet (after an opt-out)."""
    org_id = _check_tenant(organization)
    count = Invitation.objects.filter(customer=customer, status=Invitation.Status.SCHEDULED).update(
        status=Invitation.Status.SUPPRESSED, suppressed_reason=reason[:200]
    )
    if count:
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="invitations.suppress",
            instance=customer,
            changes={"suppressed": count, "reason": reason},
        )
    return count


def invitation_mark_responded(*, organization, invitation: Invitation, responded_at=None) -> bool:
    """Mark an invitation answered (call inside the response's transaction). False if it was not open.

    Conditional, so a double submit or a response racing the expiry job changes it once.
    """
    _check_tenant(organization)
    responded_at = responded_at or timezone.now()
    updated = Invitation.objects.filter(
        pk=invitation.pk, status__in=[Invitation.Status.SENT, Invitation.Status.SCHEDULED]
    ).update(status=Invitation.Status.RESPONDED, responded_at=responded_at, reminder_due_at=None)
    if updated:
        invitation.status, invitation.responded_at = Invitation.Status.RESPONDED, responded_at
    return bool(updated)


# --- cross-tenant listing for the periodic dispatchers (call inside unscoped()) ------------


def due_for_sending(now, limit: int) -> list[tuple[int, int]]:
    return list(
        Invitation.objects.filter(status=Invitation.Status.SCHEDULED, send_at__lte=now)
        .order_by("send_at", "pk")
        .values_list("organization_id", "pk")[:limit]
    )


def due_for_reminder(now, limit: int) -> list[tuple[int, int]]:
    return list(
        Invitation.objects.filter(
            status=Invitation.Status.SENT,
            reminded_at__isnull=True,
            reminder_due_at__lte=now,
            expires_at__gt=now,
        )
        .order_by("reminder_due_at", "pk")
        .values_list("organization_id", "pk")[:limit]
    )


def tenants_with_expiring(now) -> list[int]:
    return list(
        Invitation.objects.filter(
            status__in=[Invitation.Status.SCHEDULED, Invitation.Status.SENT], expires_at__lte=now
        )
        .order_by()
        .values_list("organization_id", flat=True)
        .distinct()
    )
