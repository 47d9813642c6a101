"""What drops replayable dashboard responses (cem.fast_reads) when who may see what changes.

The organization's structure, names and memberships decide which store a viewer may open and
how rows are labelled; any change to them raises the tenant's version (every response kept for
the tenant stops being replayed). A user's or membership's change drops the user's principals,
an organization's change all of its principals (e.g. two-factor becoming required for admins),
logout and switching organization the session's.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from cem import fast_reads
from cem.fast_reads import tenant_version


def _structure_changed(sender, instance, **kwargs):
    fast_reads.changed_on_commit([tenant_version(instance.organization_id)])


def _membership_changed(sender, instance, **kwargs):
    _structure_changed(sender, instance)
    user_id = instance.user_id
    transaction.on_commit(lambda: fast_reads.forget_user(user_id))


def _organization_changed(sender, instance, **kwargs):
    tenant_id = instance.pk
    fast_reads.changed_on_commit([tenant_version(tenant_id)])
    transaction.on_commit(lambda: fast_reads.forget_tenant(tenant_id))


def _user_changed(sender, instance, **kwargs):
    user_id = instance.pk
    transaction.on_commit(lambda: fast_reads.forget_user(user_id))


def _logged_out(sender, request, user, **kwargs):
    session = getattr(request, "session", None)
    fast_reads.forget_session(getattr(session, "session_key", None))


def connect() -> None:
    from cem.models import (
        Channel,
        Employee,
        EmployeeAssignment,
        Location,
        Membership,
        Organization,
        Region,
        Segment,
        Standard,
        Team,
        Touchpoint,
    )

    for model in (
        Region,
        Location,
        Team,
        Employee,
        EmployeeAssignment,
        Standard,
        Channel,
        Touchpoint,
        Segment,
    ):
        for signal in (post_save, post_delete):
            signal.connect(
                _structure_changed, sender=model, dispatch_uid=f"fast_reads.{model.__name__}.{signal}"
            )
    for signal in (post_save, post_delete):
        signal.connect(_membership_changed, sender=Membership, dispatch_uid=f"fast_reads.membership.{signal}")
        signal.connect(_organization_changed, sender=Organization, dispatch_uid=f"fast_reads.org.{signal}")
        signal.connect(_user_changed, sender=get_user_model(), dispatch_uid=f"fast_reads.user.{signal}")
    user_logged_out.connect(_logged_out, dispatch_uid="fast_reads.logout")
