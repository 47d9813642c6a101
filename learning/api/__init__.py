"""The learning app's API routes, registered on the core router (cem.api.urls), one module per area."""

from learning.api import analytics, assignments, content, portal

AREAS = (content, assignments, portal, analytics)


def register(router) -> None:
    for area in AREAS:
        area.register(router)
