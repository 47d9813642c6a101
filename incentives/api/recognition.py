"""Incentives API: recognition."""


def register(router) -> None:
    pass
