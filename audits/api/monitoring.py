def register(router) -> None:
    """Add this area's viewsets to the core router."""
