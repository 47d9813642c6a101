"""Driver analysis on constructed data: the standard NPS depends on ranks first with an effect
whose interval excludes 0, the one it does not depend on has an interval around 0; too few
respondents is a clear refusal, never a number; the value of a one-point improvement comes out
of constructed business metrics; the pure statistics behave (relative weights add up to R²,
collinearity is handled)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from alignment import driver_tasks, drivers
from alignment.models import DriverAnalysis
from cem.tenancy import tenant_context
from tests.alignment.driver_data import DriverWorld, business_panel


@pytest.fixture
def dw(world):
    return DriverWorld(world)


def compute(dw):
    with tenant_context(dw.org):
        drivers.drivers_compute(organization=dw.org)


def snapshot(dw, *, outcome="nps", location=None):
    with tenant_context(dw.org):
        qs = DriverAnalysis.objects.filter(outcome=outcome)
        qs = qs.filter(location__isnull=True) if location is None else qs.filter(location=location)
        return qs.get()


# --- pure statistics ------------------------------------------------------------------------------


def test_relative_weights_add_up_to_r_squared_and_match_ols():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    x[:, 2] += 0.6 * x[:, 0]  # correlated predictors
    y = 0.8 * x[:, 0] + 0.3 * x[:, 1] + rng.normal(size=2000)
    corr = np.corrcoef(np.column_stack([y, x]), rowvar=False)
    weights = drivers.relative_weights(corr[1:, 1:], corr[1:, 0])
    beta = np.linalg.solve(corr[1:, 1:], corr[1:, 0])
    r2 = beta @ corr[1:, 0]
    assert weights.sum() == pytest.approx(r2, rel=1e-9)
    assert np.argmax(weights) == 0
    # Same as OLS on standardized data.
    z = (x - x.mean(0)) / x.std(0)
    ols = np.linalg.lstsq(z, (y - y.mean()) / y.std(), rcond=None)[0]
    assert beta == pytest.approx(ols, rel=1e-6)


def test_near_duplicate_standards_are_dropped_with_a_note():
    rng = np.random.default_rng(1)
    a = rng.normal(70, 15, 500)
    copy = a + rng.normal(0, 1, 500)  # the same thing measured twice
    b = rng.normal(70, 15, 500)
    y = 0.05 * a + rng.normal(5, 1, 500)
    design = drivers.Design(
        outcomes=np.column_stack([y]),
        predictors=np.column_stack([a, copy, b]),
        keys=[1, 2, 3],
        names=["A", "A again", "B"],
    )
    result = drivers.fit(design, min_n=100, min_per_predictor=30, seed=1)
    assert len(result.kept) == 2 and 3 in result.kept
    assert any("moves with" in note for note in result.notes)


def test_ill_conditioned_standards_get_a_ridge():
    rng = np.random.default_rng(2)
    base = rng.normal(size=800)
    x = np.column_stack([base + rng.normal(0, 0.03, 800) for _ in range(4)])  # r ~ 0.999
    y = base + rng.normal(size=800)
    corr = np.corrcoef(x, rowvar=False)
    assert drivers.ridge_for(corr) > 0
    design = drivers.Design(outcomes=y[:, None], predictors=x, keys=[1, 2, 3, 4], names=list("ABCD"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(drivers, "NEAR_DUPLICATE_R", 0.99999)
        result = drivers.fit(design, min_n=100, min_per_predictor=30, seed=2)
    assert result.ridge > 0
    assert any("ridge" in note for note in result.notes)
    assert np.isfinite(result.beta).all()


def test_pairwise_moments_use_the_rows_where_both_are_present():
    values = np.array([[1.0, 2.0], [2.0, np.nan], [3.0, 6.0], [4.0, 8.0]])
    count, mean, _, corr = drivers._moments(values, np.ones(4))
    assert count[0, 1] == 3 and count[0, 0] == 4
    assert mean[0] == pytest.approx(2.5)
    assert corr[0, 1] == pytest.approx(1.0)


# --- NPS, respondent level ------------------------------------------------------------------------


def test_the_standard_nps_depends_on_ranks_first_with_an_interval_above_zero(dw):
    dw.respondents(400, effect_a=0.7, effect_b=0.0)
    compute(dw)
    snap = snapshot(dw)
    assert snap.n == 400
    assert snap.value_per_point["status"] == "ok"
    first, second = snap.drivers
    assert first["standard_id"] == dw.std_a.pk and first["rank"] == 1
    assert first["effect"] > 0 and first["low"] > 0, first
    assert second["standard_id"] == dw.std_b.pk
    assert second["low"] <= 0 <= second["high"], second
    assert first["importance"] > 80 and first["importance"] + second["importance"] == pytest.approx(
        100, abs=0.05
    )
    assert first["n"] == 400 and second["n"] == 400
    assert 0.5 < snap.r_squared <= 1
    # Per point: NPS points per point on the standard; positive for A, unclear for B.
    assert first["per_point"] > 0 and first["per_point_low"] > 0
    assert second["per_point_low"] <= 0 <= second["per_point_high"]
    # The item behind A carries it, with its n.
    [item] = first["items"]
    assert item["key"] == "greet" and item["n"] == 400 and item["r"] > 0.5 and "Acme greeted" in item["label"]
    assert "relative weights" in snap.method
    # The location where the respondents were has its own analysis; the others refuse.
    assert snapshot(dw, location=dw.world.a.locations["a-n1"]).drivers[0]["standard_id"] == dw.std_a.pk
    other = snapshot(dw, location=dw.world.a.locations["a-s1"])
    assert other.drivers == [] and other.value_per_point["status"] == "not_enough_data"


def test_reruns_give_the_same_figures_and_replace_the_snapshot(dw):
    dw.respondents(200)
    compute(dw)
    first = snapshot(dw).drivers
    compute(dw)
    assert snapshot(dw).drivers == first  # seeded bootstrap, upserted on its key


def test_too_few_respondents_is_a_clear_refusal(dw):
    dw.respondents(42)
    compute(dw)
    snap = snapshot(dw)
    assert snap.drivers == [] and snap.r_squared is None and snap.n == 42
    message = snap.value_per_point["message"]
    assert message.startswith("Not enough data")
    assert "42 respondents" in message and f"at least {drivers.MIN_RESPONDENTS}" in message


def test_no_data_at_all_is_a_refusal_too(world):
    org = world.a.org
    with tenant_context(org):
        drivers.drivers_compute(organization=org)
        snap = DriverAnalysis.objects.get(outcome="nps", location__isnull=True)
        sales = DriverAnalysis.objects.get(outcome="sales", location__isnull=True)
    assert snap.n == 0 and "0 respondents" in snap.value_per_point["message"]
    assert "no sales figures" in sales.value_per_point["message"]


def test_nps_answers_linked_to_a_standard_are_never_predictors(dw):
    with tenant_context(dw.org):
        dw.q_nps.standard = dw.std_b
        dw.q_nps.save()
    dw.respondents(150)
    with tenant_context(dw.org):
        from feedback.models import Answer

        Answer.objects.filter(question_key="nps").update(standard=dw.std_b)
    compute(dw)
    snap = snapshot(dw)
    b = next(d for d in snap.drivers if d["standard_id"] == dw.std_b.pk)
    assert b["low"] <= 0 <= b["high"]  # B is still judged on the tidy question alone
    assert [i["key"] for i in b["items"]] == ["tidy"]


def test_the_read_is_capped_at_the_most_recent_responses(dw, monkeypatch):
    monkeypatch.setattr(drivers, "MAX_RESPONSES", 150)
    monkeypatch.setattr(drivers, "MIN_RESPONDENTS", 50)
    dw.respondents(100, days_ago=40, seed=1)
    dw.respondents(150, days_ago=5, seed=2)
    compute(dw)
    snap = snapshot(dw)
    assert snap.n == 150
    assert any("Capped at the 150 most recent" in note for note in snap.value_per_point["notes"])


def test_a_standard_with_too_few_answers_is_left_out_and_noted(dw):
    dw.respondents(150)
    with tenant_context(dw.org):
        from feedback.models import Answer

        keep = list(Answer.objects.filter(question_key="tidy").values_list("pk", flat=True)[:10])
        Answer.objects.filter(question_key="tidy").exclude(pk__in=keep).delete()
    compute(dw)
    snap = snapshot(dw)
    assert [d["standard_id"] for d in snap.drivers] == [dw.std_a.pk]
    assert any("10 answers" in note for note in snap.value_per_point["notes"])


# --- business outcomes and the value of a point -------------------------------------------------


def test_value_of_one_point_from_constructed_business_metrics(dw):
    business_panel(dw, locations=8, months=10, sales_per_nps=300.0)
    dw.respondents(300)
    compute(dw)

    sales = snapshot(dw, outcome="sales")
    assert sales.value_per_point["status"] == "ok", sales.value_per_point
    assert sales.n == 80 and "fixed effects" in sales.method
    [driver] = sales.drivers
    assert driver["standard_id"] == dw.std_a.pk
    assert 45 < driver["mean"] < 95  # the standard's own level, not the demeaned one
    [value] = sales.value_per_point["values"]
    assert value["outcome"] == "sales" and "per location per month" in value["unit"]
    # sales = 300 x NPS and NPS = 2 x A - 100: one point on A is worth ~600, one NPS point ~300.
    per_a = value["per_standard"][0]
    assert per_a["low"] < 600 < per_a["high"] and per_a["value"] == pytest.approx(600, rel=0.1)
    per_nps = value["per_nps_point"]
    assert per_nps["low"] < 300 < per_nps["high"] and per_nps["n"] == 80
    assert sales.value_per_point["caveats"]

    # The NPS analysis carries the same per-NPS-point value, chained through each standard.
    nps = snapshot(dw)
    [chained] = nps.value_per_point["values"]
    assert chained["outcome"] == "sales" and chained["per_nps_point"]["value"] == per_nps["value"]
    a = next(v for v in chained["per_standard"] if v["standard_id"] == dw.std_a.pk)
    a_driver = next(d for d in nps.drivers if d["standard_id"] == dw.std_a.pk)
    assert a["value"] == pytest.approx(a_driver["per_point"] * per_nps["value"], rel=1e-3)
    assert a["low"] < a["value"] < a["high"]

    # No retention figures were imported: said so, with no number.
    retention = snapshot(dw, outcome="retention_rate")
    assert retention.drivers == [] and "no retention rate figures" in retention.value_per_point["message"]


def test_too_few_location_periods_say_so_with_the_count(dw):
    business_panel(dw, locations=2, months=6)
    compute(dw)
    sales = snapshot(dw, outcome="sales")
    assert sales.drivers == [] and sales.n == 12
    assert "12 location-periods" in sales.value_per_point["message"]
    assert f"at least {drivers.MIN_LOCATION_PERIODS}" in sales.value_per_point["message"]


# --- period, task, pruning ----------------------------------------------------------------------


def test_bad_periods_name_the_field():
    from django.core.exceptions import ValidationError

    d = dt.date(2026, 1, 10)
    with pytest.raises(ValidationError) as exc:
        drivers.validate_period(d, d - dt.timedelta(days=1))
    assert "period_end" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        drivers.validate_period(d, None)
    assert "period_end" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        drivers.validate_period(d - dt.timedelta(days=drivers.MAX_WINDOW_DAYS), d)
    assert "period_start" in exc.value.message_dict


def test_the_named_task_takes_the_tenant_and_a_period(dw):
    dw.respondents(120)
    end = dt.date.today()
    start = end - dt.timedelta(days=29)
    assert driver_tasks.drivers_compute_task(dw.org.pk, start.isoformat(), end.isoformat()) > 0
    snap = snapshot(dw)
    assert (snap.period_start, snap.period_end) == (start, end) and snap.n == 120
    with pytest.raises(TypeError):
        driver_tasks.drivers_compute_task(str(dw.org.pk))


def test_dispatch_queues_organizations_with_data(dw, monkeypatch):
    dw.respondents(5)
    queued = []
    monkeypatch.setattr(driver_tasks.drivers_compute_task, "delay", queued.append)
    assert driver_tasks.drivers_dispatch() == 1
    assert queued == [dw.org.pk]


def test_old_snapshots_are_pruned(dw):
    dw.respondents(20)
    compute(dw)
    with tenant_context(dw.org):
        old = DriverAnalysis.objects.first()
        DriverAnalysis.objects.filter(pk=old.pk).update(
            period_end=old.period_end - dt.timedelta(days=200),
            computed_at=old.computed_at - dt.timedelta(days=drivers.KEEP_DAYS + 1),
        )
    compute(dw)
    with tenant_context(dw.org):
        assert not DriverAnalysis.objects.filter(pk=old.pk).exists()
