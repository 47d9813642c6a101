"""Incentives API: catalog."""


def register(router) -> None:
    pass
