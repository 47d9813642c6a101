"""Event handlers of the audits app (registered with cem.events.handles on import)."""
