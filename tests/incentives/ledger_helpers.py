"""Shared set-up for the ledger tests: a funded budget and a rule drawing on it."""

from __future__ import annotations

import datetime as dt
import io

from django.core.management import call_command
from django.core.management.base import CommandError

from incentives import ledger
from incentives.models import RewardRule


def funded_budget(org, points=1000, name="acme budget"):
    budget = ledger.budget_create(org=org, name=name)
    if points:
        ledger.budget_fund(org=org, budget=budget, points=points, note="seed")
    return budget


def rule_on(org, budget, name="acme rule", points=10):
    return RewardRule.objects.create(
        organization=org,
        name=name,
        trigger=RewardRule.Trigger.LESSON_COMPLETED,
        recipients=RewardRule.Recipients.LEARNER,
        points=points,
        budget=budget,
        effective_from=dt.date(2026, 1, 1),
    )


def ledger_check() -> tuple[int, str]:
    """(exit code, output) of manage.py ledger_check."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("ledger_check", stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, err.getvalue() + str(exc)
    return 0, out.getvalue()
