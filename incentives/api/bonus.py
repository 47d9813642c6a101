"""Incentives API: bonus."""


def register(router) -> None:
    pass
