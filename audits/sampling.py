"""Random sampling of interactions for monitoring: reproducible, per agent, stratified.

``sample`` picks N interactions per agent for a period from the candidates, never one that was
already evaluated, giving the Critical stratum its share first (Critical interactions matter
most to the relationship, so they are over-sampled), then filling from the rest. The same seed
and candidates always give the same sample, so a stored seed reproduces any past sample.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    interaction_id: int
    agent_id: int
    channel: str = ""
    category: str = ""


def sample(
    candidates: Iterable[Candidate],
    *,
    per_agent: int,
    seed: str,
    already_evaluated: Iterable[int] = (),
    critical_share: float = 0.5,
    channels: Iterable[str] | None = None,
) -> dict[int, list[int]]:
    """``{agent_id: [interaction ids]}``; at most ``per_agent`` each, sorted for stable output."""
    if per_agent < 0 or not 0 <= critical_share <= 1:
        raise ValueError("per_agent must be >= 0 and critical_share within [0, 1]")
    done = set(already_evaluated)
    wanted_channels = set(channels) if channels is not None else None
    by_agent: dict[int, list[Candidate]] = defaultdict(list)
    for c in candidates:
        if c.interaction_id in done:
            continue
        if wanted_channels is not None and c.channel not in wanted_channels:
            continue
        by_agent[c.agent_id].append(c)
    picked: dict[int, list[int]] = {}
    for agent_id in sorted(by_agent):
        # One generator per agent: adding an agent never changes another agent's sample.
        rng = random.Random(f"{seed}:{agent_id}")
        pool = sorted(by_agent[agent_id], key=lambda c: c.interaction_id)
        critical = [c for c in pool if c.category == "critical"]
        others = [c for c in pool if c.category != "critical"]
        quota = min(len(critical), math.ceil(per_agent * critical_share))
        chosen = rng.sample(critical, quota)
        rest = per_agent - len(chosen)
        chosen += rng.sample(others, min(rest, len(others)))
        if len(chosen) < per_agent:  # too few others: top up from the remaining critical ones
            left = [c for c in critical if c not in chosen]
            chosen += rng.sample(left, min(per_agent - len(chosen), len(left)))
        picked[agent_id] = sorted(c.interaction_id for c in chosen)
    return picked
