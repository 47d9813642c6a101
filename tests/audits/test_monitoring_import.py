"""Calls and chats reach monitoring through the interaction import (single, bulk, CSV; idempotent on
external_id) with their metadata, and are then sampled for evaluators."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone

from audits import monitoring
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_monitoring import make_program, phone_channel

pytestmark = pytest.mark.django_db


def test_calls_and_chats_imported_single_bulk_and_csv_are_sampled(world, api):
    phone_channel(world)
    f.ChannelFactory(organization=world.a.org, code="acme-chat", name="acme chat", kind="chat")
    program = make_program(world, per_agent=10)
    client = api(key=world.a.api_key)
    when = (timezone.now() - dt.timedelta(days=2)).replace(microsecond=0)
    call = {
        "external_id": "mon-call-1",
        "occurred_at": when.isoformat(),
        "location": "a-n1",
        "channel": "acme-phone",
        "customer": "cust-mon-1",
        "category": "critical",
        "employees": ["acme-emp-a-n1"],
        "attributes": {"duration": 312, "recording_url": "https://rec.example/mon-call-1.mp3"},
    }
    first = client.post("/api/v1/interactions/", call, format="json")
    assert first.status_code == 201, first.content
    replay = client.post("/api/v1/interactions/", call, format="json")
    assert replay.status_code == 200 and replay.json()["id"] == first.json()["id"]

    chat = {
        **call,
        "external_id": "mon-chat-1",
        "channel": "acme-chat",
        "occurred_at": (when + dt.timedelta(minutes=5)).isoformat(),
        "attributes": {"duration": 95, "transcript": "customer: hi\nagent: hello"},
    }
    resp = client.post("/api/v1/interactions/bulk/", [chat, call, chat], format="json")
    assert resp.status_code == 200, resp.content
    assert [r["status"] for r in resp.json()["results"]] == ["created", "duplicate", "duplicate"]

    at = (when + dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    csv_text = (
        "external_id,occurred_at,location,channel,customer,category,employees,duration,recording_url\n"
        f"mon-call-2,{at},a-n1,acme-phone,cust-mon-2,planned,acme-emp-a-n1,47,https://rec.example/2.mp3\n"
    )
    for _ in range(2):  # the same file twice stores one call
        upload = io.BytesIO(csv_text.encode())
        upload.name = "calls.csv"
        resp = client.post("/api/v1/interactions/bulk/", {"file": upload}, format="multipart")
        assert resp.status_code == 200, resp.content
    assert [r["status"] for r in resp.json()["results"]] == ["duplicate"]

    with tenant_context(world.a.org):
        stored = {
            i.external_id: i
            for i in m.Interaction.objects.filter(external_id__startswith="mon-").prefetch_related(
                "employees"
            )
        }
        assert set(stored) == {"mon-call-1", "mon-chat-1", "mon-call-2"}
        assert stored["mon-call-1"].attributes["recording_url"].endswith("mon-call-1.mp3")
        assert stored["mon-chat-1"].attributes["transcript"].startswith("customer: hi")
        assert stored["mon-call-2"].attributes == {
            "duration": "47",
            "recording_url": "https://rec.example/2.mp3",
        }
        assert all([e.external_id for e in i.employees.all()] == ["acme-emp-a-n1"] for i in stored.values())
        drawn, created = monitoring.sample_draw(
            organization=world.a.org,
            actor=Actor.system(),
            program=program,
            period_start=when - dt.timedelta(hours=1),
            period_end=when + dt.timedelta(hours=1),
        )
        assert created
        assert set(drawn.items.values_list("interaction_id", flat=True)) >= {i.pk for i in stored.values()}
