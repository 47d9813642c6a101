"""Learning API: analytics."""


def register(router) -> None:
    pass
