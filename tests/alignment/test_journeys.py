"""Journey maps: the services (create with steps, add, update, remove, reorder — positions stay
1..n and unique, a swap happens in one transaction), and the expected-vs-actual selector on
constructed rollup rows (expectation importance vs the touchpoint's scores for the journey's
segment, gaps flagged, the viewer's scope respected)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from alignment import journey_selectors as sel
from alignment import journeys as svc
from alignment.models import JourneyMap, JourneyStep, Measure, Rollup
from cem import models as m
from cem.principals import Actor
from cem.scoping import scope_queryset
from cem.tenancy import tenant_context
from tests import factories as f
from tests.alignment.driver_data import rollup_points


@dataclass
class JW:
    world: object
    org: object
    touchpoints: list
    expectations: dict
    standards: dict
    segment: object
    other_segment: object


@pytest.fixture
def jw(world) -> JW:
    org = world.a.org
    channel = world.a.channel
    tps = [
        world.a.touchpoint,  # checkout, critical
        f.TouchpointFactory(organization=org, channel=channel, code="acme-greet", name="Acme greeting"),
        f.TouchpointFactory(
            organization=org,
            channel=channel,
            code="acme-fitting",
            name="Acme fitting room",
            category=m.InteractionCategory.PLANNED,
        ),
        f.TouchpointFactory(organization=org, channel=channel, code="acme-return", name="Acme returns"),
    ]
    expectations = {
        "essential": f.ExpectationFactory(organization=org, name="acme fast checkout", importance=5),
        "middling": f.ExpectationFactory(organization=org, name="acme friendly greeting", importance=3),
    }
    standards = {
        "fast": f.StandardFactory(organization=org, code="acme-fast", expectation=expectations["essential"]),
        "other": f.StandardFactory(organization=org, code="acme-other"),
    }
    return JW(
        world=world,
        org=org,
        touchpoints=tps,
        expectations=expectations,
        standards=standards,
        segment=f.SegmentFactory(organization=org, name="acme loyal"),
        other_segment=f.SegmentFactory(organization=org, name="acme new"),
    )


def make(jw, *, steps=3, name="acme journey", segment=None):
    with tenant_context(jw.org):
        return svc.journey_create(
            organization=jw.org,
            actor=Actor.system(),
            data={
                "name": name,
                "segment": segment,
                "steps": [{"touchpoint": tp} for tp in jw.touchpoints[:steps]],
            },
        )


def order(jw, journey) -> list[tuple[int, int]]:
    with tenant_context(jw.org):
        return list(
            JourneyStep.objects.filter(journey=journey)
            .order_by("position")
            .values_list("touchpoint_id", "position")
        )


def step_ids(jw, journey) -> list[int]:
    with tenant_context(jw.org):
        return list(
            JourneyStep.objects.filter(journey=journey).order_by("position").values_list("pk", flat=True)
        )


# --- services -------------------------------------------------------------------------------------


def test_create_with_steps_numbers_them_and_logs(jw):
    journey = make(jw)
    tps = [tp.pk for tp in jw.touchpoints[:3]]
    assert order(jw, journey) == list(zip(tps, [1, 2, 3], strict=True))
    with tenant_context(jw.org):
        log = m.AuditLog.objects.get(action="journey_map.create")
    assert log.object_id == str(journey.pk) and len(log.changes["steps"]) == 3


def test_reorder_swaps_positions_in_one_transaction_and_keeps_them_unique(jw):
    journey = make(jw)
    a, b, c = step_ids(jw, journey)
    with tenant_context(jw.org):
        svc.journey_reorder(organization=jw.org, actor=Actor.system(), journey=journey, steps=[c, a, b])
        rows = dict(JourneyStep.objects.filter(journey=journey).values_list("pk", "position"))
        assert rows == {c: 1, a: 2, b: 3}
        # Swapping two neighbours: both rows change in the same UPDATE, the deferred constraint
        # is checked before the service returns.
        svc.step_move(
            organization=jw.org, actor=Actor.system(), step=JourneyStep.objects.get(pk=b), direction="up"
        )
        assert step_ids(jw, journey) == [c, b, a]
        positions = list(JourneyStep.objects.filter(journey=journey).values_list("position", flat=True))
        assert sorted(positions) == [1, 2, 3]
        log = m.AuditLog.objects.filter(action="journey_map.reorder").order_by("-pk").first()
        assert log.changes == {"before": [c, a, b], "after": [c, b, a]}
        # At an end nothing moves.
        svc.step_move(
            organization=jw.org, actor=Actor.system(), step=JourneyStep.objects.get(pk=c), direction="up"
        )
    assert step_ids(jw, journey) == [c, b, a]


def test_duplicate_positions_fail_inside_the_service_not_at_commit(jw):
    journey = make(jw)
    a, b, _ = step_ids(jw, journey)
    with tenant_context(jw.org):
        with pytest.raises(IntegrityError), transaction.atomic():
            JourneyStep.objects.filter(pk=b).update(position=1)  # deferred: accepted for now
            svc._check_positions()
        assert step_ids(jw, journey) == [a, b, _]


def test_a_bad_reorder_names_the_field_and_changes_nothing(jw):
    journey = make(jw)
    ids = step_ids(jw, journey)
    with tenant_context(jw.org):
        for bad in ([ids[0], ids[1]], [ids[0], ids[0], ids[1]], [*ids, 999999], ["x", *ids[1:]]):
            with pytest.raises(ValidationError) as exc:
                svc.journey_reorder(organization=jw.org, actor=Actor.system(), journey=journey, steps=bad)
            assert "steps" in exc.value.message_dict
    assert step_ids(jw, journey) == ids


def test_add_inserts_and_remove_closes_the_gap(jw):
    journey = make(jw, steps=2)
    tp1, tp2, tp3, tp4 = (tp.pk for tp in jw.touchpoints)
    with tenant_context(jw.org):
        svc.step_add(
            organization=jw.org,
            actor=Actor.system(),
            journey=journey,
            touchpoint=jw.touchpoints[2],
            position=1,
        )
        assert order(jw, journey) == [(tp3, 1), (tp1, 2), (tp2, 3)]
        svc.step_add(organization=jw.org, actor=Actor.system(), journey=journey, touchpoint=jw.touchpoints[3])
        assert order(jw, journey)[-1] == (tp4, 4)
        step = JourneyStep.objects.get(journey=journey, touchpoint_id=tp1)
        svc.step_remove(organization=jw.org, actor=Actor.system(), step=step)
        assert order(jw, journey) == [(tp3, 1), (tp2, 2), (tp4, 3)]
        with pytest.raises(ValidationError) as exc:
            svc.step_add(
                organization=jw.org, actor=Actor.system(), journey=journey, touchpoint=jw.touchpoints[1]
            )
        assert "touchpoint" in exc.value.message_dict
        with pytest.raises(ValidationError) as exc:
            svc.step_add(
                organization=jw.org,
                actor=Actor.system(),
                journey=journey,
                touchpoint=jw.touchpoints[0],
                position=9,
            )
        assert "position" in exc.value.message_dict
        assert set(m.AuditLog.objects.values_list("action", flat=True)) >= {
            "journey_step.add",
            "journey_step.remove",
        }


def test_update_replaces_steps_in_order_keeping_the_ids_of_kept_touchpoints(jw):
    journey = make(jw)
    ids = step_ids(jw, journey)
    tps = jw.touchpoints
    with tenant_context(jw.org):
        svc.journey_update(
            organization=jw.org,
            actor=Actor.system(),
            journey=journey,
            data={
                "name": "acme journey renamed",
                "steps": [
                    {"touchpoint": tps[2], "expectation": jw.expectations["essential"], "note": "acme"},
                    {"touchpoint": tps[3]},
                    {"touchpoint": tps[0]},
                ],
            },
        )
        journey.refresh_from_db()
        rows = list(
            JourneyStep.objects.filter(journey=journey)
            .order_by("position")
            .values_list("pk", "touchpoint_id")
        )
    assert journey.name == "acme journey renamed"
    assert [tp for _, tp in rows] == [tps[2].pk, tps[3].pk, tps[0].pk]
    assert rows[0][0] == ids[2] and rows[2][0] == ids[0]  # kept touchpoints keep their step
    assert ids[1] not in [pk for pk, _ in rows]


def test_bad_journey_input_names_the_field(jw, world):
    make(jw)
    with tenant_context(jw.org):
        with pytest.raises(ValidationError) as exc:
            svc.journey_create(organization=jw.org, actor=Actor.system(), data={"name": "ACME journey"})
        assert "name" in exc.value.message_dict  # names are unique, whatever the case
        with pytest.raises(ValidationError) as exc:
            svc.journey_create(organization=jw.org, actor=Actor.system(), data={"name": "  "})
        assert "name" in exc.value.message_dict
        tp = jw.touchpoints[0]
        with pytest.raises(ValidationError) as exc:
            svc.journey_create(
                organization=jw.org,
                actor=Actor.system(),
                data={"name": "acme twice", "steps": [{"touchpoint": tp}, {"touchpoint": tp}]},
            )
        assert "steps" in exc.value.message_dict
        with pytest.raises(ValidationError) as exc:
            svc.journey_create(
                organization=jw.org,
                actor=Actor.system(),
                data={"name": "acme foreign", "steps": [{"touchpoint": world.b.touchpoint}]},
            )
        assert "steps" in exc.value.message_dict
        assert JourneyMap.objects.count() == 1


def test_delete_removes_the_steps_and_logs_them(jw):
    journey = make(jw)
    with tenant_context(jw.org):
        svc.journey_delete(organization=jw.org, actor=Actor.system(), journey=journey)
        assert not JourneyStep.objects.exists()
        log = m.AuditLog.objects.get(action="journey_map.delete")
    assert len(log.changes["before"]["steps"]) == 3


def test_position_constraint_is_deferred_in_the_database(jw):
    with connection.cursor() as cur:
        cur.execute(
            "SELECT condeferrable, condeferred FROM pg_constraint WHERE conname = %s",
            [svc.POSITION_CONSTRAINT],
        )
        assert cur.fetchone() == (True, True)


# --- expected vs actual -------------------------------------------------------------------------


def experience(jw, journey, *, role=m.Role.ORG_ADMIN, membership=None, **kw):
    with tenant_context(jw.org):
        rollups = scope_queryset(Rollup.objects.all(), role=role, membership=membership)
        return sel.journey_experience(journey, rollups=rollups, start=None, end=None, **kw)


def test_expected_vs_actual_and_gaps_on_constructed_rollups(jw):
    tps = jw.touchpoints
    journey = make(jw, steps=4, segment=jw.segment)
    with tenant_context(jw.org):
        steps = list(JourneyStep.objects.filter(journey=journey).order_by("position"))
        svc.step_update(
            organization=jw.org,
            actor=Actor.system(),
            step=steps[0],
            data={"expectation": jw.expectations["essential"]},
        )
        svc.step_update(
            organization=jw.org,
            actor=Actor.system(),
            step=steps[1],
            data={"expectation": jw.expectations["middling"]},
        )
        svc.step_update(
            organization=jw.org,
            actor=Actor.system(),
            step=steps[3],
            data={"expectation": jw.expectations["essential"]},
        )
    loc = jw.world.a.locations["a-n1"]
    # Checkout: the standard serving "fast checkout" scores 60 (20 answers) for the segment; another
    # standard at the same touchpoint scores 90 and another segment 100 — neither counts.
    rollup_points(
        jw.org,
        touchpoint=tps[0],
        measure=Measure.STD_FEEDBACK,
        standard=jw.standards["fast"],
        segment=jw.segment,
        location=loc,
        values=[50, 70] * 10,
    )
    rollup_points(
        jw.org,
        touchpoint=tps[0],
        measure=Measure.STD_FEEDBACK,
        standard=jw.standards["other"],
        segment=jw.segment,
        location=loc,
        values=[90] * 20,
    )
    rollup_points(
        jw.org,
        touchpoint=tps[0],
        measure=Measure.STD_FEEDBACK,
        standard=jw.standards["fast"],
        segment=jw.other_segment,
        location=loc,
        values=[100] * 50,
    )
    # Greeting: no standard data, CSAT 4.0 on 1-5 → 75 (12 answers); expected 50 → exceeds by 25.
    rollup_points(
        jw.org, touchpoint=tps[1], measure=Measure.CSAT, segment=jw.segment, location=loc, values=[4] * 12
    )
    # Fitting room: no expectation; every standard at the touchpoint: 80.
    rollup_points(
        jw.org,
        touchpoint=tps[2],
        measure=Measure.STD_FEEDBACK,
        standard=jw.standards["other"],
        segment=jw.segment,
        location=loc,
        values=[80] * 15,
    )
    # Returns: expected 100, three answers of 40: a gap, but too few answers to flag.
    rollup_points(
        jw.org,
        touchpoint=tps[3],
        measure=Measure.STD_FEEDBACK,
        standard=jw.standards["other"],
        segment=jw.segment,
        location=loc,
        values=[40] * 3,
    )

    checkout, greeting, fitting, returns = experience(jw, journey)
    assert (checkout["expected"], checkout["actual"], checkout["n"], checkout["gap"]) == (
        100.0,
        60.0,
        20,
        40.0,
    )
    assert checkout["status"] == sel.LARGE_GAP and checkout["highlight"] is True
    assert checkout["source"] == "expectation_standards"
    assert checkout["actual_low"] < 60 < checkout["actual_high"]
    assert checkout["category"] == "critical" and checkout["category_label"] == "Critical"

    assert (greeting["expected"], greeting["actual"], greeting["gap"]) == (50.0, 75.0, -25.0)
    assert greeting["status"] == sel.EXCEEDS and greeting["source"] == "csat" and not greeting["highlight"]

    assert fitting["expected"] is None and fitting["gap"] is None and fitting["actual"] == 80.0
    assert fitting["status"] == sel.NO_EXPECTATION and fitting["source"] == "touchpoint_standards"
    assert fitting["category"] == "planned"

    assert returns["gap"] == 60.0 and returns["status"] == sel.UNCERTAIN and not returns["highlight"]
    assert [r["position"] for r in (checkout, greeting, fitting, returns)] == [1, 2, 3, 4]


def test_a_journey_without_segment_reads_every_segment(jw):
    journey = make(jw, steps=1)
    tp = jw.touchpoints[0]
    rollup_points(
        jw.org,
        touchpoint=tp,
        measure=Measure.STD_FEEDBACK,
        standard=jw.standards["other"],
        segment=jw.segment,
        values=[60] * 10,
    )
    rollup_points(
        jw.org,
        touchpoint=tp,
        measure=Measure.STD_FEEDBACK,
        standard=jw.standards["other"],
        segment=None,
        values=[80] * 10,
    )
    [row] = experience(jw, journey)
    assert row["actual"] == 70.0 and row["n"] == 20 and row["status"] == sel.NO_EXPECTATION


def test_actual_follows_the_viewers_scope_and_location_filter(jw):
    journey = make(jw, steps=1)
    tp = jw.touchpoints[0]
    t = jw.world.a
    rollup_points(
        jw.org,
        touchpoint=tp,
        measure=Measure.STD_FEEDBACK,
        standard=jw.standards["other"],
        location=t.locations["a-n1"],
        values=[40] * 10,
    )
    rollup_points(
        jw.org,
        touchpoint=tp,
        measure=Measure.STD_FEEDBACK,
        standard=jw.standards["other"],
        location=t.locations["a-s1"],
        values=[100] * 30,
    )
    assert experience(jw, journey)[0]["actual"] == 85.0
    with tenant_context(jw.org):
        manager = m.Membership.objects.get(user=jw.world.users["manager"])
    [row] = experience(jw, journey, role=m.Role.STORE_MANAGER, membership=manager)
    assert (row["actual"], row["n"]) == (40.0, 10)
    [row] = experience(jw, journey, location_id=t.locations["a-s1"].pk)
    assert (row["actual"], row["n"]) == (100.0, 30)


def test_expected_maps_importance_linearly():
    assert [sel.expected_from_importance(i) for i in (1, 2, 3, 4, 5)] == [0, 25, 50, 75, 100]
    assert sel.expected_from_importance(None) is None


def test_experience_query_count_does_not_grow_with_steps(jw, django_assert_max_num_queries):
    journey = make(jw, steps=4)
    with django_assert_max_num_queries(4):
        experience(jw, journey)
