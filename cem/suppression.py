"""The suppression list: identifiers that must never be contacted again, kept only as keyed hashes.

**What goes on it.** When a customer is erased, or opts out of everything (the unsubscribe link,
a consent withdrawal on channel ``all``, a customer update that sets ``opted_out_at``), their email
(stripped, lower-cased), phone (E.164 digits: ``+1 (555) 010-0000`` → ``15550100000``) and external
id are added as HMAC-SHA256 hashes under a server secret (``settings.PRIVACY_HASH_KEY``, which
falls back to ``SECRET_KEY``: pin it before rotating that) and the organization's id, so the
list names nobody, cannot be reversed without the secret, and one organization's list says
nothing about another's.

**What it does.** Every path that creates or updates a customer consults it (the customers API,
the interaction ingest that creates customers by external id, single or bulk, JSON or CSV); every
path that contacts one checks it again (scheduling and sending invitations and reminders on
email, SMS and IVR — in the very UPDATE that claims the send —, the contact details copied onto a
case, the case's "customer contacted" step). A customer that arrives with a suppressed identifier
is **kept** — the interaction and its feedback still count — but **stored opted out** with no
channel consent and is never contacted; a consent record (source ``suppression``) says why. An
email or phone number suppressed because its owner was *erased* is not stored at all: the new
record keeps only what links the interaction (its external id), since a contact detail nobody may
use has no purpose, and the erased person's address must not quietly return. A create or update
cannot opt a suppressed customer back in.

**Lifting it** takes the person's fresh consent: recording it on the consent API or page
(channel ``all`` granted: the customer's own identifiers leave the list), or an org admin removing
one identifier they type in (:func:`suppression_lift`, with a reason; audit-logged) — for an
erased person with no record left, before their details are stored again.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from cem.models import Customer
from cem.models.privacy import SuppressedIdentifier
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write

Kind = SuppressedIdentifier.Kind
Reason = SuppressedIdentifier.Reason
# Fewer digits are a typo or an extension, not a number anyone could be reached on.
MIN_PHONE_DIGITS = 7
LIFT_REASON_MAX = 300
# The contact details an erasure suppresses are not stored again (see the module docstring).
CONTACT_FIELDS = {Kind.EMAIL: "email", Kind.PHONE: "phone"}


def normalise(kind: str, value) -> str:
    """The form an identifier is hashed in; "" when there is nothing to hash."""
    value = str(value or "").strip()
    if not value:
        return ""
    if kind == Kind.EMAIL:
        return value.lower()
    if kind == Kind.PHONE:
        digits = re.sub(r"\D", "", value)
        if value.startswith("00"):
            digits = digits[2:]  # 0044… is +44…
        return digits if len(digits) >= MIN_PHONE_DIGITS else ""
    return value


def _key() -> bytes:
    # Its own setting, so a SECRET_KEY rotation leaves the list valid (cem/settings.py says how).
    return settings.PRIVACY_HASH_KEY.encode()


def identifier_hash(org_id: int, kind: str, value) -> str:
    """HMAC-SHA256 of the normalised identifier; "" when there is none."""
    normal = normalise(kind, value)
    if not normal:
        return ""
    message = f"suppression:{org_id}:{kind}:{normal}".encode()
    return hmac.new(_key(), message, hashlib.sha256).hexdigest()


def identifiers(org_id: int, *, email="", phone="", external_id="") -> dict[str, str]:
    """{kind: hash} of the identifiers given (the empty ones left out)."""
    found = {}
    for kind, value in ((Kind.EMAIL, email), (Kind.PHONE, phone), (Kind.EXTERNAL_ID, external_id)):
        hashed = identifier_hash(org_id, kind, value)
        if hashed:
            found[kind] = hashed
    return found


def customer_identifiers(customer: Customer) -> dict[str, str]:
    return identifiers(
        customer.organization_id, email=customer.email, phone=customer.phone, external_id=customer.external_id
    )


def matches(hashes: dict[str, str]) -> dict[str, set[str]]:
    """{kind: reasons} of the given identifiers that are on the current tenant's list."""
    if not hashes:
        return {}
    kind_of = {h: k for k, h in hashes.items()}
    found: dict[str, set[str]] = defaultdict(set)
    rows = SuppressedIdentifier.objects.filter(value_hash__in=list(kind_of)).values_list(
        "value_hash", "reason"
    )
    for value_hash, reason in rows:
        found[kind_of[value_hash]].add(reason)
    return dict(found)


def suppressed_customer_ids(customers: Iterable[Customer]) -> set[int]:
    """The customers (of the current tenant) any of whose identifiers is suppressed; one query."""
    owners: dict[str, list[int]] = defaultdict(list)
    for customer in customers:
        if customer is None:
            continue
        for value_hash in customer_identifiers(customer).values():
            owners[value_hash].append(customer.pk)
    if not owners:
        return set()
    hit = SuppressedIdentifier.objects.filter(value_hash__in=list(owners)).values_list(
        "value_hash", flat=True
    )
    return {pk for value_hash in hit for pk in owners[value_hash]}


def is_suppressed(customer: Customer | None) -> bool:
    return customer is not None and bool(suppressed_customer_ids([customer]))


def suppressed_hashes_filter(customer: Customer | None) -> list[str]:
    """The customer's hashes, for an ``Exists`` check inside a claiming UPDATE."""
    return list(customer_identifiers(customer).values()) if customer is not None else []


def add(org_id: int, hashes: dict[str, str], reason: str) -> int:
    """Put identifiers on the list (call inside the caller's transaction); how many were new."""
    if not hashes:
        return 0
    rows = [
        SuppressedIdentifier(organization_id=org_id, kind=kind, value_hash=value_hash, reason=reason)
        for kind, value_hash in hashes.items()
    ]
    before = SuppressedIdentifier.objects.filter(value_hash__in=list(hashes.values()), reason=reason).count()
    SuppressedIdentifier.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows) - before


def remove(hashes: dict[str, str]) -> int:
    """Take identifiers off the list, whatever put them there; how many rows went."""
    if not hashes:
        return 0
    return SuppressedIdentifier.objects.filter(value_hash__in=list(hashes.values())).delete()[0]


def screen(org_id: int, values: dict) -> tuple[dict, dict[str, set[str]]]:
    """What a customer create or update may store, given the list.

    ``values`` are the customer's fields after the write (email, phone, external_id, the consent
    flags, opted_out_at). Returns the changes to apply ({} when nothing is suppressed) and the
    matches: opted out (keeping an earlier opt-out time), no channel consent, and the email or
    phone left empty where it was suppressed by an erasure.
    """
    found = matches(
        identifiers(
            org_id,
            email=values.get("email"),
            phone=values.get("phone"),
            external_id=values.get("external_id"),
        )
    )
    if not found:
        return {}, {}
    changes = {
        "opted_out_at": values.get("opted_out_at") or timezone.now(),
        "consent_email": False,
        "consent_sms": False,
    }
    for kind, name in CONTACT_FIELDS.items():
        if Reason.ERASURE in found.get(kind, ()):
            changes[name] = ""
    return changes, found


def describe(found: dict[str, set[str]]) -> str:
    """For a consent record's detail: which identifiers matched, never their values."""
    kinds = ", ".join(Kind(k).label.lower() for k in sorted(found))
    return f"identifier on the suppression list ({kinds})"


# --- what admins see and do -------------------------------------------------------------------


def summary() -> dict:
    """Counts of the current tenant's list, by kind and by reason."""
    rows = SuppressedIdentifier.objects.order_by().values("kind", "reason").annotate(n=Count("pk"))
    by_kind = dict.fromkeys(Kind.values, 0)
    by_reason = dict.fromkeys(Reason.values, 0)
    for row in rows:
        by_kind[row["kind"]] += row["n"]
        by_reason[row["reason"]] += row["n"]
    return {"total": sum(by_kind.values()), "by_kind": by_kind, "by_reason": by_reason}


def _without(text: str, value) -> str:
    value = str(value or "").strip()
    return re.sub(re.escape(value), "[identifier]", text, flags=re.IGNORECASE) if value else text


@transaction.atomic
def suppression_lift(*, organization, actor: Actor, kind: str, value: str, reason: str) -> int:
    """Remove one identifier from the list on the person's fresh consent; rows removed.

    The identifier is typed in (only its hash is kept, so it cannot be picked from a list);
    400 naming the kind (``email``, ``phone``, ``external_id``) when it is not on the list,
    ``reason`` when no consent is cited. The audit row records the kind, the count and the
    reason, never the identifier.
    """
    org_id = _check_tenant(organization)
    if kind not in Kind.values:
        raise ValidationError({"kind": f"Must be one of {', '.join(Kind.values)}."})
    reason = " ".join((reason or "").split())
    if not reason:
        raise ValidationError({"reason": "Cite the person's consent (when and how they gave it)."})
    if len(reason) > LIFT_REASON_MAX:
        raise ValidationError({"reason": f"At most {LIFT_REASON_MAX} characters."})
    value_hash = identifier_hash(org_id, kind, value)
    if not value_hash:
        raise ValidationError({kind: f"Not a usable {Kind(kind).label.lower()}."})
    removed = remove({kind: value_hash})
    if not removed:
        raise ValidationError({kind: f"This {Kind(kind).label.lower()} is not on the suppression list."})
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="privacy.suppression.lift",
        object_type=SuppressedIdentifier._meta.label,
        # The reason may quote the identifier ("consent email from jane@…"): never stored.
        changes={"kind": kind, "removed": removed, "reason": _without(reason, value)},
    )
    return removed


__all__ = [
    "add",
    "customer_identifiers",
    "identifier_hash",
    "identifiers",
    "is_suppressed",
    "matches",
    "normalise",
    "remove",
    "screen",
    "summary",
    "suppressed_customer_ids",
    "suppression_lift",
]
