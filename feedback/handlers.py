"""Event handlers of the feedback app (registered with cem.events.handles)."""
from feedback import cases  # noqa: E402, F401 - alert rules open cases on ResponseReceived
from feedback import invitations  # noqa: F401 - InteractionRecorded creates invitations
