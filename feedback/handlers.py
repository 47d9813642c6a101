"""Event handlers of the feedback app (registered with cem.events.handles)."""
