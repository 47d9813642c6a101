"""The effectiveness statistics on constructed data: a known effect is found, no effect is flagged."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from learning import effectiveness as eff


def _changes(rng, n, mean, sd):
    return [rng.gauss(mean, sd) for _ in range(n)]


def test_a_lesson_with_a_real_effect_is_effective():
    rng = random.Random(7)
    # Both groups drift up by 5 points (regression to the mean); the lesson adds 12 more.
    treated = _changes(rng, 120, 17, 8)
    control = _changes(rng, 30, 5, 8)
    effect = eff.lesson_effect(treated, control)
    assert effect.verdict == eff.EFFECTIVE
    assert effect.ci_low > 0
    assert effect.ci_low < 12 < effect.ci_high
    assert (effect.treated_n, effect.control_n) == (120, 30)


def test_a_lesson_without_effect_is_flagged_ineffective_despite_the_drift():
    rng = random.Random(11)
    # Learners improve by 5 points, but so does the holdout: the lesson adds nothing.
    treated = _changes(rng, 120, 5, 8)
    control = _changes(rng, 30, 5, 8)
    effect = eff.lesson_effect(treated, control)
    assert effect.treated_change > 3  # a naive before/after would call this a success
    assert effect.verdict == eff.INEFFECTIVE
    assert effect.ci_low < 0 < effect.ci_high


def test_too_few_cases_is_insufficient_data_not_a_verdict():
    effect = eff.lesson_effect([10.0] * (eff.MIN_TREATED - 1), [0.0] * 20)
    assert effect.verdict == eff.INSUFFICIENT
    assert effect.ci_low is None and effect.difference == pytest.approx(10.0)
    assert eff.lesson_effect([10.0] * 30, [0.0] * (eff.MIN_CONTROL - 1)).verdict == eff.INSUFFICIENT


def test_welch_interval_matches_a_hand_computation():
    treated = [4.0, 6.0, 8.0, 10.0, 12.0] * 4  # mean 8, var 8.421
    control = [0.0, 2.0, 4.0] * 3  # mean 2, var 3
    effect = eff.lesson_effect(treated, control)
    se2 = 8.421052631578947 / 20 + 3.0 / 9
    df = se2**2 / ((8.421052631578947 / 20) ** 2 / 19 + (3.0 / 9) ** 2 / 8)
    assert df == pytest.approx(24.5, abs=0.1)
    half = 2.0627 * se2**0.5  # t(0.975, 24.5) from tables, interpolated
    assert effect.difference == pytest.approx(6.0)
    assert effect.ci_low == pytest.approx(6.0 - half, abs=0.01)
    assert effect.ci_high == pytest.approx(6.0 + half, abs=0.01)


@pytest.mark.parametrize(("df", "exact"), [(3, 3.182), (5, 2.571), (10, 2.228), (30, 2.042), (120, 1.980)])
def test_t_quantile(df, exact):
    assert eff.t_quantile(0.975, df) == pytest.approx(exact, abs=0.01)


def test_window_change_needs_points_on_both_sides():
    assert eff.window_change([50.0], [80.0, 90.0]) is None
    assert eff.window_change([40.0, 60.0], [80.0, 90.0]) == pytest.approx(35.0)


def test_variances_whose_squares_underflow_still_give_an_interval():
    """Found by hypothesis: subnormal changes made the Welch denominator 0.0 (ZeroDivisionError)."""
    tiny = 1e-100  # variance ~1e-200 > 0, its square underflows to 0.0
    effect = eff.lesson_effect([0.0] * 19 + [tiny], [0.0] * 7 + [tiny])
    assert effect.ci_low <= effect.difference <= effect.ci_high
    assert effect.verdict in (eff.EFFECTIVE, eff.INEFFECTIVE)


@given(
    st.lists(st.floats(-100, 100), min_size=20, max_size=60),
    st.lists(st.floats(-100, 100), min_size=8, max_size=30),
)
def test_interval_always_contains_the_difference(treated, control):
    effect = eff.lesson_effect(treated, control)
    assert effect.ci_low <= effect.difference + 1e-9
    assert effect.difference <= effect.ci_high + 1e-9
    assert effect.verdict in (eff.EFFECTIVE, eff.INEFFECTIVE)
