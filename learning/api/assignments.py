"""Learning API: assignments."""


def register(router) -> None:
    pass
