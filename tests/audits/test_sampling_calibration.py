"""Monitoring samples and calibration figures."""

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from audits.calibration import calibrate
from audits.sampling import Candidate, sample
from audits.scoring import NA, Item, ItemType


def _pool():
    out = []
    for agent in (7, 8, 9):
        for i in range(40):
            iid = agent * 1000 + i
            out.append(
                Candidate(
                    iid,
                    agent,
                    channel="phone" if i % 2 else "chat",
                    category="critical" if i % 5 == 0 else "stabilizing",
                )
            )
    return out


def test_same_seed_same_sample_and_n_per_agent():
    first = sample(_pool(), per_agent=4, seed="2026-W48")
    assert first == sample(list(reversed(_pool())), per_agent=4, seed="2026-W48")
    assert {agent: len(ids) for agent, ids in first.items()} == {7: 4, 8: 4, 9: 4}
    assert sample(_pool(), per_agent=4, seed="2026-W49") != first


def test_no_re_evaluation():
    first = sample(_pool(), per_agent=4, seed="s")
    evaluated = [i for ids in first.values() for i in ids]
    second = sample(_pool(), per_agent=4, seed="s", already_evaluated=evaluated)
    assert not set(evaluated) & {i for ids in second.values() for i in ids}


def test_critical_stratum_honoured():
    picked = sample(_pool(), per_agent=4, seed="s", critical_share=0.5)
    critical = {c.interaction_id for c in _pool() if c.category == "critical"}
    for ids in picked.values():
        assert len(set(ids) & critical) == 2
    # Only 8 critical per agent exist: asking for all-critical 10 tops up from the rest.
    picked = sample(_pool(), per_agent=10, seed="s", critical_share=1.0)
    for ids in picked.values():
        assert len(set(ids) & critical) == 8 and len(ids) == 10


def test_channel_stratum_and_small_pools():
    picked = sample(_pool(), per_agent=3, seed="s", channels=["chat"])
    chats = {c.interaction_id for c in _pool() if c.channel == "chat"}
    assert all(set(ids) <= chats for ids in picked.values())
    few = [Candidate(1, 1), Candidate(2, 1)]
    assert sample(few, per_agent=4, seed="s") == {1: [1, 2]}


@given(st.integers(0, 12), st.floats(0, 1), st.text(max_size=8))
def test_sample_properties(n, share, seed):
    picked = sample(_pool(), per_agent=n, seed=seed, critical_share=share)
    for agent, ids in picked.items():
        assert len(ids) == min(n, 40) and len(set(ids)) == len(ids)
        assert all(i // 1000 == agent for i in ids)


ITEMS = [
    Item("greet", ItemType.YES_NO),
    Item("verify", ItemType.YES_NO_NA),
    Item("empathy", ItemType.SCALE, scale_min=1, scale_max=5),
    Item("resolve", ItemType.YES_NO),
]


def test_known_disagreement_matrix():
    final = {"greet": "yes", "verify": "yes", "empathy": 5, "resolve": "no"}
    evaluations = {
        "ana": {"greet": "yes", "verify": "yes", "empathy": 5, "resolve": "no"},  # matches everything
        "ben": {"greet": "no", "verify": "yes", "empathy": 3, "resolve": "no"},  # gaps 1, 0, 0.5, 0
        "cy": {"greet": "no", "verify": NA, "empathy": 1, "resolve": "yes"},  # gaps 1, 1, 1, 1
    }
    result = calibrate(ITEMS, final, evaluations)
    assert result.alignment == {"ana": D("100.00"), "ben": D("62.50"), "cy": D("0.00")}
    assert result.disagreement == {
        "greet": D("66.67"),
        "verify": D("33.33"),
        "empathy": D("66.67"),
        "resolve": D("33.33"),
    }


def test_items_both_marked_na_are_left_out():
    final = {"greet": "yes", "verify": NA}
    result = calibrate(ITEMS[:2], final, {"ana": {"greet": "yes", "verify": NA}})
    assert result.alignment == {"ana": D("100.00")} and result.disagreement["verify"] == 0
