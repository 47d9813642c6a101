"""The metric definitions (feedback.metrics): published test vectors and properties over random data."""

from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from feedback import metrics


def _nps_vector(detractors: int, passives: int, promoters: int) -> list[int]:
    return [3] * detractors + [7] * passives + [10] * promoters


def test_nps_vector_20_10_70_is_50():
    assert metrics.nps(_nps_vector(20, 10, 70)) == metrics.Metric(Decimal("50.00"), 100)
    assert metrics.nps(_nps_vector(2, 1, 7)).as_dict() == {"value": 50.0, "n": 10}


def test_nps_vector_mixed_scores_rounds_half_up():
    # 2 promoters, 1 detractor of 6 → 16.666… → 16.67
    assert metrics.nps([1, 7, 7, 8, 9, 10]).as_dict() == {"value": 16.67, "n": 6}


def test_csat_top_two_boxes():
    assert metrics.csat([1, 2, 3, 4, 5]).as_dict() == {"value": 40.0, "n": 5}


def test_ces_mean_and_fcr_percent_yes():
    assert metrics.ces([1, 2, 7]).as_dict() == {"value": 3.33, "n": 3}
    assert metrics.fcr([1, 0, 1, None]).as_dict() == {"value": 66.67, "n": 3}


def test_skipped_answers_are_not_in_the_denominator():
    assert metrics.nps([10, None, None, 0]).as_dict() == {"value": 0.0, "n": 2}
    assert metrics.csat([None, 5]).as_dict() == {"value": 100.0, "n": 1}


def test_empty_sets_are_null_not_zero():
    for name in metrics.METRICS:
        assert metrics.compute(name, []).as_dict() == {"value": None, "n": 0}
        assert metrics.compute(name, [None, None]).as_dict() == {"value": None, "n": 0}


def test_negative_ties_round_away_from_zero():
    # -1/6 of 100 = -16.666… → -16.67; a true tie: -1/8 → -12.5 exactly.
    assert metrics.nps([0, 7, 7, 7, 7, 7]).value == Decimal("-16.67")
    assert metrics.nps_from_counts(promoters=0, detractors=1, n=8).value == Decimal("-12.50")
    # 1/200 of 100 = 0.5 exactly; 1/2000 of 100 = 0.05 → 0.05; 1/40000 → 0.0025 → 0.00
    assert metrics.percent_from_counts(hits=1, n=40000).value == Decimal("0.00")
    assert metrics.percent_from_counts(hits=1, n=20000).value == Decimal("0.01")  # 0.005 half-up


nps_scores = st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=10)), max_size=300)


def _exact(value: Fraction) -> Decimal:
    return metrics._round(Decimal(value.numerator) / Decimal(value.denominator))


@given(nps_scores)
def test_nps_property_matches_definition_and_range(scores):
    result = metrics.nps(scores)
    answered = [s for s in scores if s is not None]
    assert result.n == len(answered)
    if not answered:
        assert result.value is None
        return
    promoters = Fraction(sum(s >= 9 for s in answered) * 100, len(answered))
    detractors = Fraction(sum(s <= 6 for s in answered) * 100, len(answered))
    assert result.value == _exact(promoters - detractors)
    assert Decimal(-100) <= result.value <= Decimal(100)
    assert result.value == result.value.quantize(Decimal("0.01"))


@given(st.lists(st.one_of(st.none(), st.integers(min_value=1, max_value=5)), max_size=300))
def test_csat_property_in_0_100(scores):
    result = metrics.csat(scores)
    answered = [s for s in scores if s is not None]
    if not answered:
        assert result.value is None
        return
    assert Decimal(0) <= result.value <= Decimal(100)
    assert result.value == _exact(Fraction(sum(s >= 4 for s in answered) * 100, len(answered)))


@given(st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=1)), max_size=300))
def test_fcr_property_in_0_100(values):
    result = metrics.fcr(values)
    answered = [v for v in values if v is not None]
    assert result.n == len(answered)
    if answered:
        assert Decimal(0) <= result.value <= Decimal(100)
    else:
        assert result.value is None


@given(st.lists(st.one_of(st.none(), st.integers(min_value=1, max_value=7)), max_size=300))
def test_ces_property_in_1_7(scores):
    result = metrics.ces(scores)
    answered = [s for s in scores if s is not None]
    if not answered:
        assert result.value is None
        return
    assert Decimal(1) <= result.value <= Decimal(7)
    assert result.value == _exact(Fraction(sum(answered), len(answered)))
