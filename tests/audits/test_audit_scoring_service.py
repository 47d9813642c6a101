"""audit_score_compute and audit_publish: what is stored, and the AuditPublished event."""

from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError

from audits import audit_services
from audits.models import Audit, AuditAnswer, StandardScore
from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_forms import GOOD, SYSTEM, make_audit, make_form


@pytest.fixture
def form(world):
    org = world.a.org
    std_b = f.StandardFactory(organization=org)
    form, version = make_form(org, world.a.standard, std_b)
    return form, version, world.a.standard, std_b


def _score(world, version, answers):
    org = world.a.org
    audit = make_audit(org, version, answers, location=world.a.locations["a-n1"])
    with tenant_context(org):
        audit = audit_services.audit_score_compute(organization=org, actor=SYSTEM, audit=audit)
        rows = {s.standard_id: s for s in StandardScore.objects.filter(audit=audit)}
    return audit, rows


def test_weights_sections_and_standards(world, form):
    _, version, std_a, std_b = form
    # greeted no (0 of 2), smile 3 of 1..5 (0.5 of 1), wait 90 s over 60 (0), id yes (1), upsell hinted (0.5)
    answers = {"greeted": "no", "smile": "3", "wait": "90", "id_check": "yes", "upsell": "hinted"}
    audit, rows = _score(world, version, answers)
    assert audit.score == D("33.33") and audit.raw_score == D("33.33")
    assert audit.critical_failed is False
    assert audit.section_scores == {
        "greeting": {"score": "12.50", "earned": "0.500", "possible": "4.000"},
        "checkout": {"score": "75.00", "earned": "1.500", "possible": "2.000"},
    }
    assert set(rows) == {std_a.pk, std_b.pk}
    assert (rows[std_a.pk].value, rows[std_a.pk].earned, rows[std_a.pk].possible) == (
        D("12.50"),
        D("0.5"),
        D(4),
    )
    assert rows[std_b.pk].value == D("75.00")
    assert rows[std_a.pk].location_id == world.a.locations["a-n1"].pk
    assert rows[std_a.pk].published_at is None


def test_na_and_unanswered_leave_the_denominator(world, form):
    _, version, std_a, _ = form
    audit, rows = _score(world, version, {**GOOD, "greeted": "n/a", "smile": "1"})
    # Without greeted (weight 2): smile 0 of 1, wait 1, id 1, upsell 1 → 3 of 4.
    assert audit.score == D("75.00")
    assert rows[std_a.pk].value == D("50.00") and rows[std_a.pk].possible == D(2)
    audit, _ = _score(world, version, {"id_check": "yes", "greeted": ""})
    assert audit.score == D("100.00") and audit.section_scores["greeting"]["score"] is None


def test_critical_failure_zeroes_or_caps(world, form):
    form_obj, version, _, std_b = form
    failed = {**GOOD, "id_check": "no"}
    audit, rows = _score(world, version, failed)
    assert audit.critical_failed is True
    assert audit.score == D("0.00") and audit.raw_score == D("83.33")
    # Sections and standards still show what was earned there.
    assert audit.section_scores["checkout"]["score"] == "50.00" and rows[std_b.pk].value == D("50.00")

    org = world.a.org
    with tenant_context(org):
        type(form_obj).objects.filter(pk=form_obj.pk).update(critical_policy="cap", critical_cap=D("50"))
    audit, _ = _score(world, version, failed)
    assert audit.score == D("50.00") and audit.raw_score == D("83.33")
    # Below the cap the raw score stands.
    audit, _ = _score(
        world, version, {"greeted": "no", "smile": "1", "wait": "90", "id_check": "no", "upsell": "asked"}
    )
    assert audit.score == D("16.67") and audit.critical_failed


def test_recompute_replaces_rows(world, form):
    _, version, std_a, _ = form
    org = world.a.org
    audit, _ = _score(world, version, GOOD)
    assert audit.score == D("100.00")
    with tenant_context(org):
        AuditAnswer.objects.filter(audit=audit, item__key="greeted").update(value="no")
        audit = audit_services.audit_score_compute(organization=org, actor=SYSTEM, audit=audit)
        assert StandardScore.objects.filter(audit=audit).count() == 2
        assert StandardScore.objects.get(audit=audit, standard=std_a).value == D("50.00")
        assert audit.score == D("66.67")
        assert m.AuditLog.objects.filter(action="audit.score", object_id=str(audit.pk)).count() == 2


def test_unscorable_answer_names_the_item(world, form):
    _, version, _, _ = form
    org = world.a.org
    audit = make_audit(org, version, {**GOOD, "smile": "9"})
    with tenant_context(org), pytest.raises(ValidationError) as exc:
        audit_services.audit_score_compute(organization=org, actor=SYSTEM, audit=audit)
    assert "answers.smile" in exc.value.message_dict


def test_publish_emits_once_and_stamps_scores(world, form):
    _, version, std_a, std_b = form
    org = world.a.org
    audit = make_audit(
        org, version, GOOD, location=world.a.locations["a-n1"], employee=world.a.employees["a-n1"]
    )
    with tenant_context(org):
        audit_services.audit_publish(organization=org, actor=SYSTEM, audit=audit)
        audit_services.audit_publish(organization=org, actor=SYSTEM, audit=audit)
        audit = Audit.objects.get(pk=audit.pk)
        assert audit.status == Audit.Status.PUBLISHED and audit.published_at is not None
        assert audit.score == D("100.00")
        stamps = set(StandardScore.objects.filter(audit=audit).values_list("published_at", flat=True))
        assert stamps == {audit.published_at}
        [event] = m.OutboxEvent.objects.filter(event_type="AuditPublished")
    assert event.payload == {
        "audit_id": audit.pk,
        "location_id": world.a.locations["a-n1"].pk,
        "employee_id": world.a.employees["a-n1"].pk,
        "standard_ids": sorted([std_a.pk, std_b.pk]),
        "score": "100.00",
    }


def test_services_refuse_another_tenant(world, form):
    _, version, _, _ = form
    audit = make_audit(world.a.org, version, GOOD)
    with tenant_context(world.b.org), pytest.raises(PermissionError):
        audit_services.audit_score_compute(organization=world.a.org, actor=SYSTEM, audit=audit)
