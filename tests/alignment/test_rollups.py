"""The rollup: handlers add what their event touched, once; a rescore applies the difference;
any sequence of events applied incrementally equals a rebuild from raw data, in Python and in
SQL; and the nightly check finds what differs, records it and repairs it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignment import rebuild, rebuild_tasks, rollups, scores
from alignment.models import Rollup, RollupCheck, RollupSource
from audits.models import StandardScore
from cem import outbox
from cem.tenancy import tenant_context
from tests.alignment.rollup_world import RollupWorld
from tests.learning.gap_data import NOW, GapWorld

H_RESPONSE = "alignment.rollup_response"
H_AUDIT = "alignment.rollup_audit"
H_EVAL = "alignment.rollup_evaluation"
H_RESCORE = "alignment.rollup_rescore"


def baseline(org):
    """The shared world holds raw data whose events never ran: start from a rollup that matches it."""
    with tenant_context(org):
        rollups.rebuild(org, replace=True)


@pytest.fixture
def gw(world):
    gw = GapWorld(world, name="acme align")
    baseline(gw.org)
    return gw


def run(gw, event, handler):
    with tenant_context(gw.org):
        return outbox.run_handler(event.pk, handler)


def rollup(gw):
    with tenant_context(gw.org):
        return rollups.stored(gw.org)


def sums(gw, **kw):
    with tenant_context(gw.org):
        rows = Rollup.objects.filter(**kw)
        return sum(r.n for r in rows), sum((r.total for r in rows), Decimal(0))


def test_response_handler_adds_each_answer_on_0_to_100(gw):
    ids = gw.answers([5, 1], qtype="csat")  # csat 1-5: 100 and 0
    assert run(gw, gw.response_event(ids), H_RESPONSE) is True
    assert sums(gw, measure="std_feedback") == (2, Decimal("100"))
    [key] = [k for k in rollup(gw) if k[-1] == "std_feedback"]
    t = gw.world.a
    assert key[1:5] == (t.locations["a-n1"].pk, t.employees["a-n1"].pk, gw.std.pk, t.channel.pk)
    csat = {k: v for k, v in rollup(gw).items() if k[-1] == "csat"}
    assert [(v[0], v[1], v[3], v[4]) for v in csat.values()] == [(2, Decimal("6"), 1, 1)]
    with tenant_context(gw.org):
        assert rollups.compare(gw.org) == {}


def test_redelivery_changes_nothing(gw):
    ids = gw.answers([4, 4, 2])
    event = gw.response_event(ids)
    run(gw, event, H_RESPONSE)
    before = rollup(gw)
    assert run(gw, event, H_RESPONSE) is False
    with tenant_context(gw.org):
        from alignment import handlers

        handlers.rollup_response(event)  # even outside the delivery bookkeeping
    assert rollup(gw) == before


def test_audit_counted_once_under_either_event_name(gw):
    [audit] = gw.audits([40])
    run(gw, gw.audit_event(audit=audit), H_AUDIT)
    run(gw, gw.audit_event("EvaluationPublished", audit=audit), H_EVAL)
    assert sums(gw, measure="std_audit") == (1, Decimal("40"))


def test_rescore_changes_the_rollup_by_exactly_the_difference(gw):
    audits = gw.audits([40, 70])
    for a in audits:
        run(gw, gw.audit_event(audit=a), H_AUDIT)
    assert sums(gw, measure="std_audit") == (2, Decimal("110"))
    with tenant_context(gw.org):
        StandardScore.objects.filter(audit=audits[0]).update(value=90)  # the dispute's rescoring
    run(gw, gw.audit_event("AuditRescored", audit=audits[0]), H_RESCORE)
    assert sums(gw, measure="std_audit") == (2, Decimal("160"))
    with tenant_context(gw.org):
        assert rollups.compare(gw.org) == {}


def test_compare_reports_a_difference_and_rebuild_repairs_it(gw):
    run(gw, gw.response_event(gw.answers([3])), H_RESPONSE)
    with tenant_context(gw.org):
        Rollup.objects.filter(measure="std_feedback").update(n=7)
        assert len(rollups.compare(gw.org)) == 1
        assert_derived_equal(gw.org)  # an UPDATE by anyone reaches the period sums (the trigger)
        rollups.rebuild(gw.org, replace=True)
        assert rollups.compare(gw.org) == {}
        assert_derived_equal(gw.org)


def _run_all(org, event_type, handler):
    from cem import models as m

    with tenant_context(org):
        events = list(m.OutboxEvent.objects.filter(event_type=event_type).order_by("pk"))
        for event in events:
            outbox.run_handler(event.pk, handler)
    return events


def test_real_services_fill_the_rollup_and_a_dispute_moves_it_by_the_difference(world):
    from audits import audit_services
    from cem.models import Membership
    from cem.principals import Actor
    from feedback.services import Dimensions, response_record
    from tests.audits.sweep_forms import GOOD, SYSTEM, make_audit, make_form
    from tests.feedback.conftest import make_survey

    t = world.a
    baseline(t.org)
    survey, _version, _questions = make_survey(t.org, name="acme rollup visit", standard=t.standard)
    interaction = t.interactions["a-n1"]
    with tenant_context(t.org):
        response_record(
            organization=t.org,
            actor=Actor.system(),
            survey=survey,
            values={"nps": 9, "csat": "4"},
            source="api",
            dimensions=Dimensions.from_interaction(interaction),
            interaction=interaction,
        )
    assert len(_run_all(t.org, "ResponseReceived", H_RESPONSE)) == 1
    assert sums_org(t.org, measure="std_feedback") == (1, Decimal("75"))  # csat 4 on 1..5

    from tests import factories as f

    std_b = f.StandardFactory(organization=t.org, code="acme-rollup-b")
    _form, version = make_form(t.org, t.standard, std_b, name="acme rollup form")
    audit = make_audit(
        t.org, version, {**GOOD, "smile": "2"}, location=t.locations["a-n1"], employee=t.employees["a-n1"]
    )
    with tenant_context(t.org):
        audit_services.audit_publish(organization=t.org, actor=SYSTEM, audit=audit)
    _run_all(t.org, "AuditPublished", H_AUDIT)
    _run_all(t.org, "EvaluationPublished", H_EVAL)
    with tenant_context(t.org):
        published = {s.standard_id: s.value for s in StandardScore.objects.filter(audit=audit)}
    before = sums_org(t.org, measure="std_audit")
    assert before == (len(published), sum(published.values(), Decimal(0)))
    with tenant_context(t.org):
        dispute = audit_services.dispute_open(
            organization=t.org,
            actor=Actor(user_id=world.users["manager"].pk),
            audit=audit,
            item_key="smile",
            reason="acme: closing time",
            proposed_value="5",
            membership=Membership.objects.get(user=world.users["manager"], organization=t.org),
        )
        audit_services.dispute_accept(organization=t.org, actor=SYSTEM, dispute=dispute)
        rescored = {s.standard_id: s.value for s in StandardScore.objects.filter(audit=audit)}
    assert rescored != published
    _run_all(t.org, "AuditRescored", H_RESCORE)
    diff = sum(rescored.values(), Decimal(0)) - sum(published.values(), Decimal(0))
    assert sums_org(t.org, measure="std_audit") == (before[0], before[1] + diff)
    with tenant_context(t.org):
        assert rollups.compare(t.org) == {}


def sums_org(org, **kw):
    with tenant_context(org):
        rows = Rollup.objects.filter(**kw)
        return sum(r.n for r in rows), sum((r.total for r in rows), Decimal(0))


# --- every kind of source: incremental == Python rebuild == SQL rebuild -------------------------


def three_ways_equal(org) -> dict:
    """The stored (incremental) rollup, the Python rebuild and the SQL scratch rebuild agree, and
    what is derived from the rollup equals a GROUP BY over it."""
    python = rollups.rebuild(org)
    assert rollups.stored(org) == python
    with transaction.atomic():
        rebuild.build_scratch(org)
        assert rebuild.scratch_rows(org) == python
        assert rebuild.compare(org).count == 0
    assert_derived_equal(org)
    return python


def assert_derived_equal(org) -> None:
    """PeriodRollup holds, per period and group, how many rollup rows there are and their sums
    (computed here in Python from the rollup rows); every location with rows has a generation."""
    from alignment import score_periods
    from alignment.models import PERIOD_MEASURES, PeriodRollup, RollupGeneration

    expected: dict = {}
    rows = Rollup.objects.filter(organization_id=org.pk, measure__in=PERIOD_MEASURES).values_list(
        "day", "location_id", "standard_id", "category", "measure", "n", "total", "sumsq", "top", "bottom"
    )
    for day, loc, std, cat, measure, *values in rows:
        for kind, start in score_periods.periods_containing(day):
            group = (str(kind), start, loc, std, cat, measure)
            held = expected.setdefault(group, [0, 0, Decimal(0), Decimal(0), 0, 0])
            for i, v in enumerate((1, *values)):
                held[i] += v
    stored = {
        (p.period, p.period_start, p.location_id, p.standard_id, p.category, p.measure): [
            p.rows, p.n, p.total, p.sumsq, p.top, p.bottom,
        ]
        for p in PeriodRollup.objects.filter(organization_id=org.pk)
    }  # fmt: skip
    gone = {k: v for k, v in stored.items() if k not in expected}
    assert all(v == [0, 0, 0, 0, 0, 0] for v in gone.values()), gone  # groups whose rows were deleted
    assert {k: v for k, v in stored.items() if k in expected} == expected
    counted = set(RollupGeneration.objects.filter(organization_id=org.pk, generation__gt=0).values_list(
        "location_id", flat=True
    ))  # fmt: skip
    assert set(Rollup.objects.filter(organization_id=org.pk).values_list("location_id", flat=True)) <= counted


_when = st.tuples(st.integers(0, 3), st.integers(0, 23))  # days and hours back from NOW
_place = {"location": st.integers(0, 3), "employee": st.integers(0, 3), "when": _when}
_answer = st.one_of(
    st.tuples(st.just("nps"), st.integers(0, 10).map(Decimal)),
    st.tuples(st.just("csat"), st.integers(1, 5).map(Decimal)),  # linked to the standard
    st.tuples(st.just("ces"), st.integers(1, 7).map(Decimal)),
    st.tuples(st.just("fcr"), st.integers(0, 1).map(Decimal)),
    st.tuples(st.just("rating8"), st.decimals(1, 8, places=2)),  # x/7: never ends
    st.tuples(st.just("rating32"), st.decimals(0, 32, places=2)),  # x/32: ties at the 5th decimal
    st.tuples(st.just("rating_open"), st.integers(1, 5).map(Decimal)),
)
_score = st.none() | st.decimals(0, 100, places=2)
_pick = st.integers(0, 9)
_event_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("response"),
            st.fixed_dictionaries(
                {
                    "answers": st.lists(_answer, max_size=4),
                    "dims": st.integers(0, 2),
                    "segment": st.booleans(),
                    **_place,
                }
            ),
        ),
        st.tuples(st.just("erase"), st.fixed_dictionaries({"pick": _pick})),
        st.tuples(
            st.just("audit"),
            st.fixed_dictionaries(
                {
                    "score": _score,
                    "values": st.lists(st.tuples(st.integers(0, 1), _score), max_size=2),
                    "evaluation": st.booleans(),
                    "dims": st.integers(0, 2),
                    **_place,
                }
            ),
        ),
        st.tuples(
            st.just("rescore"), st.fixed_dictionaries({"pick": _pick, "score": _score, "value": _score})
        ),
        st.tuples(
            st.just("interaction"),
            st.fixed_dictionaries(
                {"employees": st.lists(st.integers(0, 3), max_size=3), "dims": st.integers(0, 2), **_place}
            ),
        ),
        st.tuples(
            st.just("completion"),
            st.fixed_dictionaries(
                {
                    "lesson": st.sampled_from(["std", "both", "none"]),
                    "on_time": st.sampled_from([True, False, None]),
                    **_place,
                }
            ),
        ),
        st.tuples(
            st.just("award"),
            st.fixed_dictionaries(
                {"points": st.integers(1, 50), "employee": st.integers(0, 3), "rule": st.integers(0, 1)}
            ),
        ),
        st.tuples(st.just("reverse"), st.fixed_dictionaries({"pick": _pick})),
        st.tuples(st.just("redeliver"), st.fixed_dictionaries({"pick": _pick})),
    ),
    min_size=1,
    max_size=10,
)


def _at(when) -> dt.datetime:
    days, hours = when
    return NOW - dt.timedelta(days=days, hours=hours, minutes=15 * hours)


def _play(rw, ops) -> list[tuple]:
    """Write each op's raw data and apply it as its handler would; returns what was applied."""
    org = rw.org
    stds = [rw.std, rw.std_b]
    responses, audits, awards, applied = [], [], [], []

    def apply(kind, ids):
        rollups.apply(org, kind, ids)
        applied.append((kind, list(ids)))

    for op, a in ops:
        if op == "response":
            rid = rw.response(
                a["answers"], location=a["location"], employee=a["employee"], when=_at(a["when"]),
                dims=a["dims"], segment=a["segment"],
            )  # fmt: skip
            responses.append(rid)
            apply("response", [rid])
        elif op == "erase" and responses:
            rid = responses.pop(a["pick"] % len(responses))
            rw.erase(rid)
            apply("response", [rid])  # ResponseErased
        elif op == "audit":
            interaction = None
            if a["evaluation"]:  # a monitored call: recorded first, then evaluated
                interaction = rw.interaction(location=a["location"], dims=a["dims"], when=_at(a["when"]))
                apply("interaction", [interaction.pk])
            audit = rw.audit(
                a["score"], [(stds[i], v) for i, v in a["values"]], location=a["location"],
                employee=a["employee"], when=_at(a["when"]), interaction=interaction,
            )  # fmt: skip
            audits.append(audit)
            apply("audit", [audit.pk])  # AuditPublished / EvaluationPublished
        elif op == "rescore" and audits:
            audit = audits[a["pick"] % len(audits)]
            rw.rescore(audit, a["score"], a["value"])
            apply("audit", [audit.pk])  # AuditRescored
        elif op == "interaction":
            i = rw.interaction(
                location=a["location"], employees=a["employees"], dims=a["dims"], when=_at(a["when"])
            )
            apply("interaction", [i.pk])
        elif op == "completion":
            cid = rw.completion(
                a["lesson"], on_time=a["on_time"], location=a["location"], employee=a["employee"],
                when=_at(a["when"]),
            )  # fmt: skip
            apply("completion", [cid])
        elif op == "award":
            tx = rw.award(a["points"], employee=a["employee"], rule=a["rule"])
            awards.append(tx)
            apply("award", [tx.pk])
        elif op == "reverse" and awards:
            tx = awards.pop(a["pick"] % len(awards))
            rw.reverse(tx)
            apply("award", [tx.pk])  # PointsReversed names the reversed award
        elif op == "redeliver" and applied:
            kind, ids = applied[a["pick"] % len(applied)]
            rollups.apply(org, kind, ids)
    return applied


@pytest.mark.django_db(transaction=False)
def test_incremental_equals_python_and_sql_rebuild_on_random_event_sequences(world):
    """≥ 200 random sequences of every event the rollup follows, each rolled back after."""
    rw = RollupWorld(world, name="acme prop")
    baseline(rw.org)
    examples, kinds = [], set()

    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ops=_event_ops)
    def check(ops):
        examples.append(len(ops))
        with tenant_context(rw.org), transaction.atomic():
            kinds.update(kind for kind, _ in _play(rw, ops))
            kinds.update(op for op, _ in ops)
            three_ways_equal(rw.org)
            transaction.set_rollback(True)

    check()
    assert len(examples) >= 200
    assert {"response", "erase", "audit", "rescore", "interaction", "completion", "award", "reverse"} <= kinds


def _everything(rw) -> dict:
    """One of each kind of source, incl. the edge cases, applied by the handlers' function."""
    org, stds = rw.org, [rw.std, rw.std_b]
    late = NOW - dt.timedelta(days=2, hours=20)  # another local day in Kathmandu than in UTC
    monitored = rw.interaction(dims=1)
    out = {
        "responses": [
            rw.response([("nps", Decimal(9)), ("csat", Decimal(2)), ("rating32", Decimal("0.01"))]),
            rw.response(
                [("rating8", Decimal("3.33")), ("fcr", Decimal(1)), ("ces", Decimal(6))],
                dims=1,
                segment=True,
                location=1,
                employee=2,
                when=late,
            ),
            rw.response([("rating_open", Decimal(4)), ("nps", Decimal(3))], location=3, employee=3, dims=2),
        ],
        "audits": [
            rw.audit(Decimal("66.67"), [(stds[0], Decimal("33.33")), (stds[1], None)]),
            rw.audit(None, [(stds[1], Decimal(80))], location=1, when=late),
            rw.audit(
                Decimal(90), [(stds[0], Decimal(90))], interaction=monitored, employee=1
            ),  # an evaluation
        ],
        "interactions": [
            rw.interaction(employees=[1, 0], dims=0),
            rw.interaction(location=2, when=late),
            monitored,
        ],
        "completions": [
            rw.completion("std", on_time=True),
            rw.completion("both", on_time=False, employee=1, when=late),
            rw.completion("none", on_time=None, employee=2),
        ],
        "awards": [rw.award(25), rw.award(10, employee=2, rule=1), rw.award(5, employee=1)],
    }
    rw.reverse(out["awards"][2])
    with tenant_context(org):
        rollups.apply(org, "response", out["responses"])
        rollups.apply(org, "audit", [a.pk for a in out["audits"]])
        rollups.apply(org, "interaction", [i.pk for i in out["interactions"]])
        rollups.apply(org, "completion", out["completions"])
        rollups.apply(org, "award", [t.pk for t in out["awards"]])
    return out


@pytest.fixture
def rw(world):
    rw = RollupWorld(world)
    baseline(rw.org)
    rw.data = _everything(rw)
    return rw


def test_sql_rebuild_reproduces_every_contribution(rw):
    with tenant_context(rw.org):
        rows = three_ways_equal(rw.org)
    measures = {key[-1] for key in rows}
    assert {
        "responses", "nps", "csat", "ces", "fcr", "std_feedback", "audit", "monitoring", "std_audit",
        "std_monitoring", "interactions", "lessons", "lesson_std", "points",
    } <= measures  # fmt: skip
    t = rw.world.a
    # The first response's CSAT 2 (25 points) and 0.01 on 0..32 (0.03125 points: half-up to
    # 0.0313, squared 0.00097969 → 0.0010) land on the same standard and key.
    [pair] = [v for k, v in rows.items() if k[-1] == "std_feedback" and k[3] == rw.std.pk and v[0] == 2]
    assert pair[1:3] == (Decimal("25.0313"), Decimal("625.0010"))
    # The points: the reversed award counts nothing; a-n1's employee worked at a-n2 around today.
    points = {(k[1], k[2], k[3]): v[1] for k, v in rows.items() if k[-1] == "points"}
    assert points == {
        (t.locations["a-n2"].pk, t.employees["a-n1"].pk, rw.std.pk): Decimal(25),
        (None, rw.nomad.pk, None): Decimal(10),
    }
    # The interaction with two employees goes to the first (lowest id).
    first = min(t.employees["a-n1"].pk, t.employees["a-n2"].pk)
    assert any(k[-1] == "interactions" and k[2] == first and v[0] == 1 for k, v in rows.items())


def test_replace_writes_the_rollup_and_every_source_as_the_python_rebuild_would(rw):
    org = rw.org
    with tenant_context(org):
        before = {(s.kind, s.source_id): rollups._from_json(s.rows) for s in RollupSource.objects.all()}
        Rollup.objects.all().delete()
        RollupSource.objects.all().delete()
        timings = rebuild.replace(org)
        assert timings["rollup_rows"] == len(rollups.rebuild(org))
        assert rollups.compare(org) == {}
        assert_derived_equal(org)
        after = {(s.kind, s.source_id): rollups._from_json(s.rows) for s in RollupSource.objects.all()}
    assert after == {k: v for k, v in before.items() if v}  # sources that add nothing have no row
    # and handlers carry on from there: redelivery adds nothing, a rescore only the difference
    audit = rw.data["audits"][0]
    with tenant_context(org):
        assert rollups.apply(org, "response", rw.data["responses"]) == set()
        n, total = sums_org(org, measure="std_audit")
        rw.rescore(audit, Decimal(70), Decimal(43), standard=rw.std)
        rollups.apply(org, "audit", [audit.pk])
        assert sums_org(org, measure="std_audit") == (n, total + Decimal("9.67"))
        assert rollups.compare(org) == {}
        assert_derived_equal(org)


def _sources_sum(org) -> dict:
    total = {}
    for s in RollupSource.objects.filter(organization_id=org.pk):
        rollups.merge(total, rollups._from_json(s.rows))
    return {k: v for k, v in total.items() if any(v)}


def _verify(org):
    with tenant_context(org):
        return rebuild_tasks.rollups_verify(org.pk)


def test_nightly_task_finds_a_corrupted_row_records_it_and_repairs_it(rw, caplog, monkeypatch):
    org = rw.org
    recomputed = []
    monkeypatch.setattr(
        scores, "recompute_touched", lambda o, touched: recomputed.append((o, touched)), raising=False
    )
    with tenant_context(org):
        row = Rollup.objects.filter(measure="std_audit").order_by("pk").first()
        Rollup.objects.filter(pk=row.pk).update(n=row.n + 3, total=row.total + 1)
    with caplog.at_level("WARNING", logger="alignment.rebuild"):
        result = _verify(org)
    assert result["differences"] == 1 and result["repaired"] is True
    with tenant_context(org):
        check = RollupCheck.objects.get(pk=result["check_id"])
        assert rollups.compare(org) == {}
        assert_derived_equal(org)
        assert rollups.stored(org) == _sources_sum(org)
    assert check.finished_at >= check.started_at and check.rows_compared >= len(rollups_of(org))
    [item] = check.sample
    assert item["key"]["measure"] == "std_audit" and item["key"]["day"] == row.day.isoformat()
    assert item["stored"]["n"] == row.n + 3 and item["rebuilt"]["n"] == row.n
    assert item["rebuilt"]["total"] == str(row.total)
    assert any("1 of" in r.getMessage() and "differ" in r.getMessage() for r in caplog.records)
    assert recomputed == [(org.pk, {(row.day.isoformat(), row.location_id, row.employee_id)})]
    # the next night finds nothing
    again = _verify(org)
    assert again["differences"] == 0 and again["repaired"] is False


def rollups_of(org):
    with tenant_context(org):
        return rollups.stored(org)


def test_nightly_task_repairs_a_missing_source_and_its_late_event_then_adds_nothing(rw):
    org = rw.org
    rid = rw.response([("nps", Decimal(2)), ("csat", Decimal(5))], location=1, employee=1)  # event lost
    with tenant_context(org):
        assert not RollupSource.objects.filter(kind="response", source_id=rid).exists()
    result = _verify(org)
    assert result["differences"] >= 3 and result["repaired"] is True  # responses, nps, csat, std_feedback
    with tenant_context(org):
        held = rollups._from_json(RollupSource.objects.get(kind="response", source_id=rid).rows)
        assert held == rollups.points_for(org, "response", [rid])[rid]
        before = rollups.stored(org)
        assert rollups.apply(org, "response", [rid]) == set()  # the event arrives after all
        assert rollups.stored(org) == before == _sources_sum(org)
        check = RollupCheck.objects.get(pk=result["check_id"])
    assert {item["stored"] is None for item in check.sample} == {True}


def test_nightly_task_repairs_a_doubled_source_and_a_later_rescore_moves_it_by_the_difference(rw):
    org = rw.org
    audit = rw.data["audits"][0]
    with tenant_context(org):
        rows = rollups.points_for(org, "audit", [audit.pk])[audit.pk]
        rollups.apply_points(org, rows)  # counted twice: a redelivery that bypassed RollupSource
        doubled = sums_org(org, measure="std_audit")
    result = _verify(org)
    assert result["differences"] == len(rows) and result["repaired"] is True
    n, total = sums_org(org, measure="std_audit")
    assert (n, total) == (doubled[0] - 1, doubled[1] - Decimal("33.33"))
    rw.rescore(audit, Decimal(50), Decimal("41.5"), standard=rw.std)
    with tenant_context(org):
        rollups.apply(org, "audit", [audit.pk])  # AuditRescored
        assert sums_org(org, measure="std_audit") == (n, total + Decimal("8.17"))
        assert rollups.compare(org) == {}
        assert_derived_equal(org)
        assert rollups.stored(org) == _sources_sum(org)


def test_a_source_with_stale_rows_on_another_day_is_repaired_on_both(rw):
    """Raw data moved to another day without its event: both days differ, both are mended."""
    org = rw.org
    audit = rw.data["audits"][0]
    with tenant_context(org):
        from audits.models import Audit

        Audit.objects.filter(pk=audit.pk).update(published_at=NOW - dt.timedelta(days=5))
    result = _verify(org)
    assert result["repaired"] is True
    with tenant_context(org):
        assert (
            len({item["key"]["day"] for item in RollupCheck.objects.get(pk=result["check_id"]).sample}) == 2
        )
        assert rollups.compare(org) == {} and rollups.stored(org) == _sources_sum(org)
        assert_derived_equal(org)


def test_check_without_repair_only_records(rw):
    org = rw.org
    with tenant_context(org):
        Rollup.objects.filter(measure="points").delete()
        check = rebuild.verify(org, repair=False)
        assert check.differences == 2 and check.repaired is False
        assert len(rollups.compare(org)) == 2


def test_a_window_checks_only_its_days(rw):
    org = rw.org
    with tenant_context(org):
        today = NOW.astimezone(rw.tz).date()
        Rollup.objects.filter(day__lt=today).update(n=99)
        inside = rebuild.verify(org, repair=False, window=rebuild.Window.between(today, today))
        assert inside.differences == 0
        earlier = rebuild.verify(org, window=rebuild.Window.between(today - dt.timedelta(days=7), today))
        assert earlier.differences > 0 and earlier.repaired
        assert rollups.compare(org) == {}
        assert_derived_equal(org)


def test_other_tenants_rows_are_neither_compared_nor_touched(rw, world):
    b = world.b.org
    with tenant_context(b):
        rollups.rebuild(b, replace=True)
        before = rollups.stored(b)
    with tenant_context(rw.org):
        Rollup.objects.filter(measure="nps").update(n=42)
    assert _verify(rw.org)["repaired"] is True
    with tenant_context(b):
        assert rollups.stored(b) == before


def test_nightly_beat_entry_and_tasks(world, monkeypatch):
    from django.conf import settings as django_settings

    from cem.celery import app

    entry = django_settings.CELERY_BEAT_SCHEDULE["alignment-rollups-verify"]
    assert entry["task"] == "alignment.rollups_verify_dispatch"
    assert entry["schedule"].hour == {3} and entry["schedule"].minute == {15}
    app.loader.import_default_modules()
    assert {"alignment.rollups_verify", "alignment.rollups_verify_dispatch"} <= set(app.tasks)
    sent = []
    monkeypatch.setattr(rebuild_tasks.rollups_verify, "delay", lambda tenant_id: sent.append(tenant_id))
    assert rebuild_tasks.rollups_verify_dispatch() == len(sent)
    assert {world.a.org.pk, world.b.org.pk} <= set(sent)


def test_management_command_checks_repairs_and_replaces(rw):
    import io

    from django.core.management import CommandError, call_command

    org = rw.org
    out = io.StringIO()
    call_command("alignment_rebuild", "--org", org.slug, stdout=out)
    assert "0 differ" in out.getvalue()
    with tenant_context(org):
        Rollup.objects.filter(measure="lessons").update(top=7)
    with pytest.raises(CommandError, match=org.slug):
        call_command("alignment_rebuild", "--org", org.slug, "--check", stdout=io.StringIO())
    out = io.StringIO()
    call_command("alignment_rebuild", "--org", org.slug, "--repair", stdout=out)
    assert "repaired" in out.getvalue()
    with tenant_context(org):
        assert rollups.compare(org) == {}
        assert_derived_equal(org)
    out = io.StringIO()
    call_command("alignment_rebuild", "--org", org.slug, "--replace", stdout=out)
    assert "replaced with" in out.getvalue()
    with tenant_context(org):
        assert rollups.compare(org) == {}
        assert_derived_equal(org)
    with pytest.raises(CommandError, match="--org"):
        call_command("alignment_rebuild", "--org", "acme-nowhere")
    with pytest.raises(CommandError, match="--to"):
        call_command("alignment_rebuild", "--from", "2026-02-01", "--to", "2026-01-01")
