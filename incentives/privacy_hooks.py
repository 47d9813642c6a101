"""What incentives adds to an employee's erasure (cem.privacy): the wallet's name and their name
in recognition messages. Transactions, entries and balances are untouched, so the ledger stays
balanced (``manage.py ledger_check``); transaction notes are append-only and keep their text."""

from __future__ import annotations

from cem.privacy import EMPLOYEE, Contributor, register
from incentives.models import Account, Recognition


class IncentivesPrivacy(Contributor):
    name = "incentives"

    def erase(self, subject, *, redactor, reason, options):
        if subject.type != EMPLOYEE:
            return {}
        return {
            "wallets_renamed": Account.objects.filter(
                kind=Account.Kind.WALLET, employee_id=subject.pk
            ).update(name=f"Wallet: Erased employee #{subject.pk}"),
            "recognitions_redacted": redactor.rewrite(Recognition.objects.all(), text_fields=["message"]),
        }


register(IncentivesPrivacy())
