"""The incentives app's API routes, registered on the core router (cem.api.urls), one module per area."""

from incentives.api import bonus, catalog, ledger, recognition, rules

AREAS = (ledger, rules, recognition, catalog, bonus)


def register(router) -> None:
    for area in AREAS:
        area.register(router)
