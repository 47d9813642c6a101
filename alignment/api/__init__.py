"""The alignment app's API routes, registered on the core router (cem.api.urls), one module per area."""

from alignment.api import drivers, journeys, overview

AREAS: tuple = (overview, drivers, journeys)


def register(router) -> None:
    for area in AREAS:
        area.register(router)
