"""Celery tasks of the password emails (thin: the work is cem.passwords)."""

from celery import shared_task

from cem import passwords
from cem.tasking import TenantTask

RETRY = {"bind": True, "max_retries": 5, "retry_backoff": True, "retry_backoff_max": 600}


@shared_task(name="cem.password_reset_send", **RETRY)
def password_reset_send(self, user_id: int) -> bool:
    # A login is no tenant's row: the reset reads the user alone and names no organization.
    try:
        return passwords.reset_email_send(user_id=user_id)
    except OSError as exc:  # SMTP unreachable or refused: try again later
        raise self.retry(exc=exc) from exc


@shared_task(name="cem.password_set_send", base=TenantTask, **RETRY)
def password_set_send(self, tenant_id: int, membership_id: int) -> bool:
    try:
        return passwords.invitation_email_send(membership_id=membership_id)
    except OSError as exc:
        raise self.retry(exc=exc) from exc
