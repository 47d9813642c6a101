"""Incentives API: ledger."""


def register(router) -> None:
    pass
