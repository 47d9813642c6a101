"""Audit scoring: weights, N/A, critical auto-fail, sections and standards, rescoring."""

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audits.scoring import (
    NA,
    CriticalPolicy,
    Item,
    ItemType,
    ScoringError,
    failed_without_comment,
    score_audit,
)

FORM = [
    Item("greet", ItemType.YES_NO, D(2), section="entrance", standard_id=1),
    Item("wait", ItemType.TIME, D(1), section="entrance", standard_id=1, target_max=D(30)),
    Item("needs", ItemType.SCALE, D(3), section="floor", standard_id=2, scale_min=1, scale_max=5),
    Item("upsell", ItemType.YES_NO_NA, D(1), section="floor", standard_id=2),
    Item(
        "close",
        ItemType.CHOICE,
        D(2),
        section="checkout",
        standard_id=3,
        choice_points={"asked": D(1), "hinted": D("0.5"), "none": D(0)},
    ),
    Item("rude", ItemType.YES_NO, D(1), section="checkout", standard_id=4, critical=True),
    Item("notes", ItemType.TEXT, section="checkout"),
]
PERFECT = {
    "greet": "yes",
    "wait": 12,
    "needs": 5,
    "upsell": "yes",
    "close": "asked",
    "rude": "yes",
    "notes": "ok",
}


def test_weights_give_a_weighted_percentage():
    score = score_audit(FORM, {**PERFECT, "needs": 3, "close": "hinted"})
    # earned: greet 2 + wait 1 + needs 3*0.5 + upsell 1 + close 2*0.5 + rude 1 = 7.5 of 10
    assert score.total == D("75.00")
    assert score.sections["floor"].value == D("62.50")  # (1.5 + 1) / 4
    assert score.standards[3].value == D("50.00")
    assert score_audit(FORM, PERFECT).total == D("100.00")


def test_na_leaves_the_denominator():
    with_na = score_audit(FORM, {**PERFECT, "upsell": NA, "needs": 1})
    # needs earns 0 of 3; upsell is not applicable: 6 of 9 (with upsell counted it would be 7 of 10)
    assert with_na.total == D("66.67")
    assert not with_na.items["upsell"].applicable
    assert with_na.standards[2].possible == D(3)


def test_na_only_where_the_item_allows_it():
    with pytest.raises(ScoringError) as exc:
        score_audit(FORM, {**PERFECT, "greet": NA})
    assert exc.value.key == "greet"


def test_time_targets():
    assert score_audit(FORM, {**PERFECT, "wait": 45}).items["wait"].earned == 0
    assert score_audit(FORM, {**PERFECT, "wait": 30}).items["wait"].earned == 1
    with pytest.raises(ScoringError):
        score_audit(FORM, {**PERFECT, "wait": -1})


@pytest.mark.parametrize(
    ("policy", "cap", "expected"), [(CriticalPolicy.ZERO, D(0), D(0)), (CriticalPolicy.CAP, D(50), D(50))]
)
def test_critical_item_fails_the_whole_audit(policy, cap, expected):
    score = score_audit(FORM, {**PERFECT, "rude": "no"}, critical_policy=policy, critical_cap=cap)
    assert score.critical_failed and score.raw_total == D("90.00")
    assert score.total == expected
    assert score.sections["entrance"].value == D("100.00")  # sections show what was earned
    assert score.failed_items == ("rude",)


def test_cap_never_raises_a_lower_score():
    answers = {**PERFECT, "rude": "no", "greet": "no", "needs": 1, "close": "none"}
    score = score_audit(FORM, answers, critical_policy=CriticalPolicy.CAP, critical_cap=D(50))
    assert score.raw_total == D("20.00") and score.total == D("20.00")


def test_failed_items_need_a_comment():
    score = score_audit(FORM, {**PERFECT, "greet": "no", "close": "hinted"})
    assert score.failed_items == ("greet", "close")
    assert failed_without_comment(score, {"greet": "Walked past me"}) == ["close"]


def test_rescoring_after_a_dispute_changes_only_what_changed():
    before = score_audit(FORM, {**PERFECT, "greet": "no"})
    after = score_audit(FORM, {**PERFECT, "greet": "yes"})  # the dispute was accepted
    assert (before.total, after.total) == (D("80.00"), D("100.00"))
    assert before.standards[2] == after.standards[2]
    assert before.standards[1].value == D("33.33") and after.standards[1].value == D("100.00")


def test_nothing_applicable_scores_none():
    score = score_audit([Item("upsell", ItemType.YES_NO_NA)], {"upsell": NA})
    assert score.total is None and score.sections[""].value is None


def test_bad_answers_name_the_item():
    for answers, key in [
        ({"needs": 7}, "needs"),
        ({"needs": 2.5}, "needs"),
        ({"close": "begged"}, "close"),
        ({"greet": "maybe"}, "greet"),
        ({"wait": "soon"}, "wait"),
    ]:
        with pytest.raises(ScoringError) as exc:
            score_audit(FORM, {**PERFECT, **answers})
        assert exc.value.key == key


answer_values = st.fixed_dictionaries(
    {
        "greet": st.sampled_from(["yes", "no", None]),
        "wait": st.one_of(st.none(), st.integers(0, 600)),
        "needs": st.one_of(st.none(), st.integers(1, 5)),
        "upsell": st.sampled_from(["yes", "no", NA, None]),
        "close": st.sampled_from(["asked", "hinted", "none", None]),
        "rude": st.sampled_from(["yes", "no", None]),
    }
)


@given(answer_values, st.decimals(0, 100, places=2))
def test_score_is_a_percentage_and_never_above_the_raw_score(answers, cap):
    score = score_audit(FORM, answers, critical_policy=CriticalPolicy.CAP, critical_cap=cap)
    if score.raw_total is None:
        assert score.total is None
        return
    assert D(0) <= score.total <= score.raw_total <= D(100)
    applicable = [r for r in score.items.values() if r.applicable]
    expected = D(100) * sum(r.earned for r in applicable) / sum(r.possible for r in applicable)
    assert abs(score.raw_total - expected) <= D("0.005")
    assert score.critical_failed == (answers["rude"] == "no")
