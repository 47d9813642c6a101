"""The feedback app's API routes, registered on the core router (cem.api.urls).

Each area lives in its own module with a ``register(router)`` function.
"""

from feedback.api import cases, exports, metrics, responses, surveys

AREAS = (surveys, responses, metrics, cases, exports)


def register(router) -> None:
    for area in AREAS:
        area.register(router)
