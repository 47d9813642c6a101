"""Incentives API: rules."""


def register(router) -> None:
    pass
