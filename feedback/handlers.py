"""Event handlers of the feedback app (registered with cem.events.handles on import)."""

from feedback import (
    cases,  # noqa: F401 - ResponseReceived: alert rules open cases
    invitations,  # noqa: F401 - InteractionRecorded: invitations under the contact rules
)
