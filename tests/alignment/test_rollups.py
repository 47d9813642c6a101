"""The rollup: handlers add what their event touched, once; a rescore applies the
difference; and any sequence of events applied incrementally equals a rebuild from raw data."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignment import rollups
from alignment.models import Rollup
from audits.models import StandardScore
from cem import outbox
from cem.tenancy import tenant_context
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
        rollups.rebuild(gw.org, replace=True)
        assert rollups.compare(gw.org) == {}


_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("response"),
            st.lists(st.integers(1, 5), min_size=1, max_size=3),
            st.sampled_from(["a-n1", "a-n2", None]),
            st.integers(0, 3),
        ),
        st.tuples(
            st.just("audit"), st.integers(0, 100), st.sampled_from(["a-n1", "a-n2"]), st.integers(0, 3)
        ),
        st.tuples(st.just("rescore"), st.integers(0, 9), st.integers(0, 100), st.just(0)),
        st.tuples(st.just("redeliver"), st.integers(0, 9), st.just(None), st.just(0)),
    ),
    min_size=1,
    max_size=8,
)


@pytest.mark.django_db(transaction=False)
def test_incremental_equals_rebuild_on_random_event_sequences(world):
    gw = GapWorld(world, name="acme prop")
    baseline(gw.org)
    examples = []

    @settings(
        max_examples=200,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(ops=_ops)
    def check(ops):
        examples.append(len(ops))
        with tenant_context(gw.org), transaction.atomic():
            audits, applied = [], []
            for op, a, b, days in ops:
                when = NOW - dt.timedelta(days=days, hours=days * 7)
                if op == "response":
                    ids = gw.answers(a, location=b, when=when)
                    rollups.apply(gw.org, "response", ids)
                    applied.append(("response", ids))
                elif op == "audit":
                    [audit] = gw.audits([a], location=b, when=when)
                    audits.append(audit)
                    rollups.apply(gw.org, "audit", [audit.pk])
                    applied.append(("audit", audit.pk))
                elif op == "rescore" and audits:
                    audit = audits[a % len(audits)]
                    StandardScore.objects.filter(audit=audit).update(value=b)
                    rollups.apply(gw.org, "audit", [audit.pk])
                elif op == "redeliver" and applied:
                    kind, ref = applied[a % len(applied)]
                    if kind == "response":
                        rollups.apply(gw.org, "response", ref)
                    else:
                        rollups.apply(gw.org, "audit", [ref])
            assert rollups.compare(gw.org) == {}
            transaction.set_rollback(True)

    check()
    assert len(examples) >= 200


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
