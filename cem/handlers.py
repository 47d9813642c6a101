"""The core's event handlers: outgoing webhooks subscribe to the key events (cem.webhooks)."""

from cem import webhooks  # noqa: F401 - registers one fan-out handler per subscribable event type
