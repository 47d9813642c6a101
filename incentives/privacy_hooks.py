"""What incentives adds to an employee's erasure (cem.privacy): the wallet's name and the notes of
their own ledger transactions and redemptions (every word that names them, first names
included), in the request; their name in recognition messages, by the erasure's sweep after
it. Only the note text changes: transactions, entries and balances stay as they were, so the
ledger stays balanced (``manage.py ledger_check``); the append-only guard lets exactly that
edit through (``cem.db.purge.ledger_redaction``). Notes about other people lose the employee's
full name and email with every other table (``cem.privacy.erasure_sweep``)."""

from __future__ import annotations

from cem.db.purge import ledger_redaction
from cem.privacy import EMPLOYEE, Contributor, SweepTarget, register
from incentives.models import Account, LedgerTransaction, Recognition, Redemption


class IncentivesPrivacy(Contributor):
    name = "incentives"

    def erase(self, subject, *, redactor, reason, options):
        if subject.type != EMPLOYEE:
            return {}
        with ledger_redaction():
            ledger_notes = redactor.rewrite(
                LedgerTransaction.objects.filter(employee_id=subject.pk), text_fields=["note"]
            )
        return {
            "wallets_renamed": Account.objects.filter(
                kind=Account.Kind.WALLET, employee_id=subject.pk
            ).update(name=f"Wallet: Erased employee #{subject.pk}"),
            "ledger_notes_redacted": ledger_notes,
            "redemption_notes_redacted": redactor.rewrite(
                Redemption.objects.filter(employee_id=subject.pk), text_fields=["note"]
            ),
        }

    def sweep(self, subject_type):
        if subject_type != EMPLOYEE:
            return []
        # Anyone's recognition of them, with every name they go by.
        return [SweepTarget("recognitions_redacted", Recognition.objects.all(), ("message",))]


register(IncentivesPrivacy())
