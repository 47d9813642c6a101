"""Store managers hear about a published audit at once, exactly once."""

from audits import audit_services
from cem import models as m
from cem import outbox
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_forms import GOOD, make_audit, make_form


def test_store_manager_is_emailed_once_when_an_audit_publishes(
    world, mailoutbox, django_capture_on_commit_callbacks
):
    org = world.a.org
    std_b = f.StandardFactory(organization=org, code="acme-notify")
    _form, version = make_form(org, world.a.standard, std_b, name="acme notify form")
    audit = make_audit(org, version, GOOD, location=world.a.locations["a-n1"])
    with django_capture_on_commit_callbacks(execute=True), tenant_context(org):
        audit_services.audit_publish(organization=org, actor=Actor.system(), audit=audit)
    assert [mail.to for mail in mailoutbox] == [["manager@acme.test"]]
    assert "a-n1" in mailoutbox[0].subject and f"/audits/results/{audit.pk}/" in mailoutbox[0].body
    # A redelivered event is a no-op: the handler already ran for it.
    with tenant_context(org):
        event = m.OutboxEvent.objects.get(event_type="AuditPublished")
        with django_capture_on_commit_callbacks(execute=True):
            assert outbox.run_handler(event.pk, "audits.notify_store_managers") is False
    assert len(mailoutbox) == 1


def test_no_email_for_a_store_without_a_manager(world, mailoutbox, django_capture_on_commit_callbacks):
    org = world.a.org
    std_b = f.StandardFactory(organization=org, code="acme-notify-2")
    _form, version = make_form(org, world.a.standard, std_b, name="acme notify form 2")
    audit = make_audit(org, version, GOOD, location=world.a.locations["a-s1"])
    with django_capture_on_commit_callbacks(execute=True), tenant_context(org):
        audit_services.audit_publish(organization=org, actor=Actor.system(), audit=audit)
    assert mailoutbox == []
