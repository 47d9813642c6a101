"""The alignment app's API routes, registered on the core router (cem.api.urls), one module per area."""

from alignment.api import business, drivers, journeys, overview, rollups, scores

AREAS: tuple = (rollups, overview, business, drivers, journeys, scores)


def register(router) -> None:
    for area in AREAS:
        area.register(router)
