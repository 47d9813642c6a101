"""Alignment link scores (placeholder until the scoring module lands)."""


def recompute_touched(org, touched) -> None:
    return None
