"""The audits app's API routes, registered on the core router (cem.api.urls), one module per area."""

from audits.api import forms, monitoring, payments, workforce

AREAS = (forms, workforce, monitoring, payments)


def register(router) -> None:
    for area in AREAS:
        area.register(router)
