"""Learning API: content."""


def register(router) -> None:
    pass
