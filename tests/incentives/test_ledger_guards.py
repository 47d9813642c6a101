"""The database itself keeps the ledger append-only and balanced, whatever code writes to it."""

import pytest
from django.db import IntegrityError, InternalError, transaction
from django.db.utils import DatabaseError
from django.utils import timezone

from cem.tenancy import tenant_context
from incentives.models import Account, LedgerEntry, LedgerTransaction


def _accounts(org, emp):
    issuance = Account.objects.create(organization=org, kind=Account.Kind.ISSUANCE, name="Issued")
    wallet = Account.objects.create(organization=org, kind=Account.Kind.WALLET, name="Wallet", employee=emp)
    return issuance, wallet


def _tx(org, *legs):
    now = timezone.now()
    tx = LedgerTransaction.objects.create(organization=org, kind="adjust", created_at=now)
    for account, amount in legs:
        LedgerEntry.objects.create(
            organization=org, transaction=tx, account=account, amount=amount, balance_after=0, created_at=now
        )
    return tx


@pytest.mark.django_db(transaction=True)
def test_unbalanced_transaction_is_refused_at_commit(world):
    org, emp = world.a.org, world.a.employees["a-n1"]
    with tenant_context(org):
        issuance, wallet = _accounts(org, emp)
        with pytest.raises(IntegrityError, match="does not balance"), transaction.atomic():
            _tx(org, (issuance, -10), (wallet, 9))
        with transaction.atomic():
            _tx(org, (issuance, -10), (wallet, 10))
        assert LedgerEntry.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_entries_and_transactions_cannot_be_edited_or_deleted(world):
    org, emp = world.a.org, world.a.employees["a-n1"]
    with tenant_context(org):
        issuance, wallet = _accounts(org, emp)
        with transaction.atomic():
            tx = _tx(org, (issuance, -5), (wallet, 5))
        for attempt in (
            lambda: LedgerEntry.objects.filter(transaction=tx).update(amount=50),
            lambda: LedgerEntry.objects.filter(transaction=tx).delete(),
            lambda: LedgerTransaction.objects.filter(pk=tx.pk).update(note="edited"),
        ):
            errors = (InternalError, IntegrityError, DatabaseError)
            with pytest.raises(errors, match="append-only"), transaction.atomic():
                attempt()
        assert sorted(LedgerEntry.objects.values_list("amount", flat=True)) == [-5, 5]


def test_a_wallet_balance_cannot_go_negative(world):
    org, emp = world.a.org, world.a.employees["a-n1"]
    with tenant_context(org):
        _, wallet = _accounts(org, emp)
        with pytest.raises(IntegrityError, match="account_balance_not_negative"), transaction.atomic():
            Account.objects.filter(pk=wallet.pk).update(balance=-1)
