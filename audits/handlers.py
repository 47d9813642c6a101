"""Event handlers of the audits app (registered with cem.events.handles on import)."""

from audits import notifications  # noqa: F401 - AuditPublished: email the store's managers
