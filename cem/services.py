"""Every write in the core goes through here (HackSoft styleguide, Zulip's actions).

Each service is keyword-only with the organization first, runs in one transaction, leaves an
audit-log row and, where other apps care, an outbox event in that same transaction.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from functools import partial

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from cem.context import request_id_var
from cem.events import emit
from cem.models import ApiKey, AuditLog, Employee, EmployeeAssignment, Membership, Organization, Team
from cem.principals import Actor, forget_api_key
from cem.tenancy import current_tenant_id


def _jsonable(value):
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _snapshot(instance: models.Model) -> dict:
    return {k: _jsonable(v) for k, v in model_to_dict(instance).items()}


def _check_tenant(organization) -> int:
    org_id = getattr(organization, "pk", organization)
    if org_id != current_tenant_id():
        raise PermissionError(f"service called for organization {org_id} inside tenant {current_tenant_id()}")
    return org_id


def audit_log_write(
    *,
    organization,
    actor: Actor,
    action: str,
    instance=None,
    object_type: str = "",
    object_id="",
    changes=None,
) -> AuditLog:
    return AuditLog.objects.create(
        organization_id=getattr(organization, "pk", organization),
        actor_user_id=actor.user_id,
        actor_api_key_id=actor.api_key_id,
        action=action,
        object_type=object_type or (instance._meta.label if instance is not None else ""),
        object_id=str(object_id or (instance.pk if instance is not None else "")),
        changes=changes or {},
        request_id=request_id_var.get(),
    )


# --- generic records (reference data and hierarchy) ------------------------------------------


def _split_m2m(model, data: dict) -> tuple[dict, dict]:
    m2m_names = {f.name for f in model._meta.many_to_many}
    plain = {k: v for k, v in data.items() if k not in m2m_names}
    return plain, {k: v for k, v in data.items() if k in m2m_names}


@transaction.atomic
def record_create(*, organization, actor: Actor, model, data: dict):
    org_id = _check_tenant(organization)
    plain, m2m = _split_m2m(model, data)
    instance = model(**plain)
    if hasattr(instance, "organization_id"):
        instance.organization_id = org_id
    instance.full_clean(validate_unique=True)
    instance.save()
    for name, values in m2m.items():
        getattr(instance, name).set(values)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="create",
        instance=instance,
        changes={"after": _snapshot(instance)},
    )
    return instance


@transaction.atomic
def record_update(*, organization, actor: Actor, instance, data: dict):
    org_id = _check_tenant(organization)
    before = _snapshot(instance)
    plain, m2m = _split_m2m(type(instance), data)
    for name, value in plain.items():
        setattr(instance, name, value)
    instance.full_clean(validate_unique=True)
    instance.save()
    for name, values in m2m.items():
        getattr(instance, name).set(values)
    after = _snapshot(instance)
    changed = {k: {"before": before.get(k), "after": v} for k, v in after.items() if before.get(k) != v}
    audit_log_write(organization=org_id, actor=actor, action="update", instance=instance, changes=changed)
    return instance


@transaction.atomic
def record_delete(*, organization, actor: Actor, instance) -> None:
    org_id = _check_tenant(organization)
    before = _snapshot(instance)
    object_id = instance.pk
    instance.delete()
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="delete",
        object_type=instance._meta.label,
        object_id=object_id,
        changes={"before": before},
    )


# --- organization ----------------------------------------------------------------------------


@transaction.atomic
def organization_update(*, organization: Organization, actor: Actor, data: dict) -> Organization:
    return record_update(organization=organization, actor=actor, instance=organization, data=data)


# --- employees -------------------------------------------------------------------------------


@transaction.atomic
def employee_move(
    *,
    organization,
    actor: Actor,
    employee: Employee,
    location,
    team: Team | None = None,
    start_date: dt.date | None = None,
) -> EmployeeAssignment:
    """Close the employee's open assignment and open a new one; history is kept."""
    org_id = _check_tenant(organization)
    start_date = start_date or timezone.localdate()
    if team is not None and team.location_id != location.pk:
        raise ValidationError({"team": "The team belongs to another location."})
    employee = Employee.objects.select_for_update().get(pk=employee.pk)
    current = EmployeeAssignment.objects.filter(employee=employee, end_date__isnull=True).first()
    if current is not None:
        if start_date < current.start_date:
            raise ValidationError(
                {"start_date": f"Must be on or after the current assignment's start ({current.start_date})."}
            )
        current.end_date = start_date
        current.save(update_fields=["end_date"])
    assignment = EmployeeAssignment.objects.create(
        organization_id=org_id, employee=employee, location=location, team=team, start_date=start_date
    )
    employee.current_location = location
    employee.current_team = team
    employee.save(update_fields=["current_location", "current_team"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="employee.move",
        instance=employee,
        changes={
            "from_location": current.location_id if current else None,
            "to_location": location.pk,
            "team": team.pk if team else None,
            "start_date": start_date.isoformat(),
        },
    )
    return assignment


@transaction.atomic
def employee_create(
    *, organization, actor: Actor, data: dict, location=None, team=None, start_date=None
) -> Employee:
    employee = record_create(organization=organization, actor=actor, model=Employee, data=data)
    if location is not None:
        employee_move(
            organization=organization,
            actor=actor,
            employee=employee,
            location=location,
            team=team,
            start_date=start_date,
        )
        employee.refresh_from_db()
    return employee


# --- members and API keys --------------------------------------------------------------------


@transaction.atomic
def membership_create(
    *,
    organization,
    actor: Actor,
    email: str,
    role: str,
    password: str | None = None,
    region=None,
    location=None,
    team=None,
    employee=None,
) -> Membership:
    org_id = _check_tenant(organization)
    user_model = get_user_model()
    email = user_model.objects.normalize_email(email).lower()
    user = user_model.objects.filter(username=email).first()
    if user is None:
        user = user_model(username=email, email=email)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    if Membership.objects.filter(user=user).exists():
        raise ValidationError({"email": "This person is already a member of the organization."})
    membership = Membership(
        organization_id=org_id,
        user=user,
        role=role,
        region=region,
        location=location,
        team=team,
        employee=employee,
    )
    membership.full_clean(exclude=["user"])
    membership.save()
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="membership.create",
        instance=membership,
        changes={"email": email, "role": role},
    )
    if not user.has_usable_password():
        # Nobody told them a password: they get a link to choose one (after the commit).
        from cem.passwords import invitation_on_commit

        invitation_on_commit(organization_id=org_id, membership_id=membership.pk)
    return membership


@transaction.atomic
def api_key_create(
    *, organization, actor: Actor, name: str, scopes: list[str], rate_limit_per_minute: int | None = None
) -> tuple[ApiKey, str]:
    """Create a key and return it with its full secret, which is never retrievable again."""
    org_id = _check_tenant(organization)
    full, prefix, hashed = ApiKey.generate()
    key = ApiKey.objects.create(
        organization_id=org_id,
        name=name,
        prefix=prefix,
        hashed_key=hashed,
        scopes=sorted(set(scopes)),
        rate_limit_per_minute=rate_limit_per_minute,
        created_by_id=actor.user_id,
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="api_key.create",
        instance=key,
        changes={"name": name, "scopes": key.scopes, "prefix": prefix},
    )
    return key, full


@transaction.atomic
def api_key_revoke(*, organization, actor: Actor, api_key: ApiKey) -> ApiKey:
    org_id = _check_tenant(organization)
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db()
    # Before commit another request could still verify the key and cache it again: forget it
    # now and once more when the revocation is visible.
    forget_api_key(api_key.pk)
    transaction.on_commit(partial(forget_api_key, api_key.pk))
    if updated:
        audit_log_write(organization=org_id, actor=actor, action="api_key.revoke", instance=api_key)
    return api_key


__all__ = [
    "api_key_create",
    "api_key_revoke",
    "audit_log_write",
    "emit",
    "employee_create",
    "employee_move",
    "membership_create",
    "organization_update",
    "record_create",
    "record_delete",
    "record_update",
]


# --- customers -------------------------------------------------------------------------------


@transaction.atomic
def customer_opt_out(
    *, organization, actor: Actor, customer, source: str = "unsubscribe_link", detail: str = ""
):
    """The customer wants no more surveys; idempotent (the first opt-out time is kept).

    The opt-out is recorded as a consent withdrawal (time, source) and withdraws what was
    scheduled for them (cem.privacy).
    """
    from cem import privacy
    from cem.models import Customer  # appended service: keeps the shared import block untouched

    org_id = _check_tenant(organization)
    # Locked so an invitation run counting this customer's contacts waits and then sees the opt-out.
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.opted_out_at is None:
        customer.opted_out_at = timezone.now()
        customer.save(update_fields=["opted_out_at"])
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="customer.opt_out",
            instance=customer,
            changes={"opted_out_at": customer.opted_out_at.isoformat()},
        )
        privacy.consent_changes_record(
            organization=org_id,
            actor=actor,
            customer=customer,
            changes=[("all", False)],
            source=source,
            detail=detail,
        )
    return customer


__all__ += ["customer_opt_out"]
