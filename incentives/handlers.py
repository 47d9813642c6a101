"""Event handlers of the incentives app (registered on import by IncentivesConfig.ready)."""
