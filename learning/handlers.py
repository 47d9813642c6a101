"""Event handlers of the learning app (registered on import by LearningConfig.ready)."""
