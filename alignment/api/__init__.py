"""The alignment app's API routes, registered on the core router (cem.api.urls), one module per area."""

AREAS: tuple = ()


def register(router) -> None:
    for area in AREAS:
        area.register(router)
