"""Celery: a task run with org B's tenant_id but org A's ids changes nothing of org A.

Sweeps every registered TenantTask (the base every tenant task uses: it opens the tenant
context, so the scoped managers and PostgreSQL row-level security both apply). Each parameter
after tenant_id gets org A's ids of the model it names; a task whose parameters cannot be
filled fails the sweep until PARAM_MODELS / TASK_IDS say what they are. Org A's data carries
work that is due (an invitation to send, one to expire, an event to deliver), so a task that
read across tenants would have something to do.
"""

from __future__ import annotations

import datetime as dt
import inspect
import typing

import pytest
from django.apps import apps
from django.core import mail
from django.db import transaction
from django.utils import timezone

import tests.test_cross_tenant_sweep as sweep
from audits import models as am
from cem import events, webhooks
from cem import models as m
from cem.celery import app
from cem.tasking import TenantTask
from cem.tenancy import TenantModel, tenant_context, unscoped
from feedback import models as fm
from feedback.tokens import new_token
from learning import models as lm
from tests.test_cross_tenant_sweep import sweep_world  # noqa: F401 - the fixture

# Parameter name → the model whose org A ids it gets (list[int] parameters get them all).
PARAM_MODELS = {
    "event_id": m.OutboxEvent,
    "delivery_id": m.WebhookDelivery,
    "job_id": fm.ExportJob,
    "case_id": fm.Case,
    "case_ids": fm.Case,
    "invitation_ids": fm.Invitation,
    "statement_ids": lm.Statement,
    "program_ids": am.Program,
}
# Tasks whose ``ids`` are of a model the name does not say.
TASK_IDS = {
    "audits.assignments_auto_assign": am.Assignment,
    "audits.assignments_expire_revisions": am.Assignment,
    "audits.assignments_release_overdue": am.Assignment,
    "audits.assignments_remind": am.Assignment,
    "learning.holdouts_release": lm.Assignment,
}


def _tenant_tasks() -> dict:
    app.loader.import_default_modules()
    return {name: task for name, task in sorted(app.tasks.items()) if isinstance(task, TenantTask)}


def _model_for(task_name: str, param: str):
    if param == "ids":
        return TASK_IDS.get(task_name)
    if param in PARAM_MODELS:
        return PARAM_MODELS[param]
    # A new task's "<model>_id(s)": the one tenant model of that name, if there is exactly one.
    stem = param.removesuffix("_ids").removesuffix("_id").replace("_", "")
    found = [
        model
        for model in apps.get_models()
        if issubclass(model, TenantModel) and model.__name__.lower().endswith(stem)
    ]
    return found[0] if len(found) == 1 else None


def _org_a_ids(org_a, model) -> list[int]:
    with unscoped():
        return list(model.objects.filter(organization=org_a).order_by("pk").values_list("pk", flat=True)[:50])


def _calls(world, name, task) -> list[tuple]:
    """The argument tuples to run ``task`` with: org B's tenant id, org A's ids."""
    params = list(inspect.signature(task.run).parameters.values())[1:]  # after tenant_id
    hints = typing.get_type_hints(task.run)
    calls = [()]
    for p in params:
        hint = hints.get(p.name)
        if p.name == "handler_name":
            names = sorted({h for t in events.EVENT_TYPES for h in events.handlers_for(t)})
            values = names or ["none"]
        elif p.name == "assignee_id":
            values = [world.users["manager"].pk]
        elif p.name == "now":
            values = [timezone.now().isoformat()]
        elif p.default is not inspect.Parameter.empty and hint not in (int, list[int]):
            values = [p.default]
        elif hint is str:
            values = ["sweep"]
        else:
            model = _model_for(name, p.name)
            assert model is not None, (
                f"{name}({p.name}): say which model's ids it takes in PARAM_MODELS/TASK_IDS"
            )
            ids = _org_a_ids(world.a.org, model)
            assert ids, f"org A has no {model.__name__} for {name}({p.name}): add one to a sweep_*.py"
            values = [ids] if "list" in str(hint) else ids[:3]
        calls = [(*c, v) for c in calls for v in values]
    return [(world.b.org.pk, *c) for c in calls]


@pytest.fixture
def due_in_org_a(sweep_world):  # noqa: F811 - the imported fixture
    """Org A work a leaky task would pick up: invitations due to send and past expiry."""
    world = sweep_world
    org = world.a.org
    survey = None
    with tenant_context(org):
        survey = fm.Survey.objects.filter(name="Sweep links acme").first()
        version = survey.versions.order_by("-number").first()
        past = timezone.now() - dt.timedelta(days=1)
        for status, expires in (
            (fm.Invitation.Status.SCHEDULED, timezone.now() + dt.timedelta(days=5)),
            (fm.Invitation.Status.SENT, past),
        ):
            fm.Invitation.objects.create(
                organization=org,
                survey=survey,
                version=version,
                location=world.a.locations["a-n1"],
                customer=world.a.customer,
                delivery_channel="email",
                token_hash=new_token()[1],
                status=status,
                send_at=past,
                expires_at=expires,
            )
    return world


def test_every_tenant_task_with_org_b_tenant_and_org_a_ids_changes_nothing_of_org_a(
    due_in_org_a, monkeypatch, django_capture_on_commit_callbacks
):
    world = due_in_org_a
    sweep._org_a_id = world.a.org.pk
    sent = []
    monkeypatch.setattr(webhooks, "TRANSPORT", lambda url, body, headers: sent.append(url))
    before = sweep._fingerprint()
    tasks = _tenant_tasks()
    assert len(tasks) >= 20, sorted(tasks)
    ran = {}
    for name, task in tasks.items():
        outcomes = []
        for args in _calls(world, name, task):
            try:
                with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
                    task.apply(args=args, throw=True)
                outcomes.append("ok")
            except Exception as exc:  # not finding org A's row is a fine outcome
                outcomes.append(type(exc).__name__)
        ran[name] = outcomes
        assert sweep._fingerprint() == before, f"{name} with org B's tenant changed org A's data"
    assert sent == [], "a webhook of org A was sent from org B's task"
    org_a_recipients = {world.a.customer.email} - {""}
    assert not [msg for msg in mail.outbox if set(msg.to) & org_a_recipients], "org A's customer was mailed"
    assert set(ran) == set(tasks)
    print({name: sorted(set(o)) for name, o in ran.items()})  # shown with -s
    # The control: the same org A work, run with org A's own tenant, does change org A.
    expire = tasks["feedback.invitations_expire"]
    with django_capture_on_commit_callbacks(execute=True):
        assert expire.apply(args=(world.a.org.pk,), throw=True).get() >= 1
    assert sweep._fingerprint() != before


def test_a_task_refuses_to_run_without_a_tenant_id():
    task = _tenant_tasks()["feedback.export_build"]
    with pytest.raises(TypeError):
        task.apply(args=("not-a-tenant", 1), throw=True)
