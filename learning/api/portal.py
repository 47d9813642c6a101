"""Learning API: portal."""


def register(router) -> None:
    pass
