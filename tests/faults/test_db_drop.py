"""PostgreSQL drops the request's connection mid-request: a clean 503 with Retry-After, nothing of
the request stored, and the same request (same Idempotency-Key) goes through once retried.

The connection is cut the way a failover or an operator's pg_terminate_backend cuts it: from a
second connection, at a controlled point of the request (a signal receiver on the model about to
be written), after earlier statements of the same transaction already ran.
"""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from rest_framework.test import APIClient

from cem import models as m
from cem.tenancy import tenant_context
from feedback import models as fm
from tests.feedback.conftest import make_survey

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]


def _owner_conninfo() -> str:
    s = connection.settings_dict
    return psycopg.conninfo.make_conninfo(
        dbname=s["NAME"], user=s["USER"] or "postgres", password=s.get("PASSWORD") or None,
        host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432,
    )  # fmt: skip


def _terminate(pid: int) -> None:
    with psycopg.connect(_owner_conninfo(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        # Gone for sure before the request's next statement runs.
        for _ in range(100):
            if not other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                return
            other.execute("SELECT pg_sleep(0.02)")
    raise AssertionError(f"backend {pid} still alive")


class Cut:
    """Terminates this thread's connection to PostgreSQL right before or right after the first
    statement containing ``fragment`` (a Django execute wrapper: the statement is the hook)."""

    def __init__(self, fragment: str, *, after: bool = False):
        self.fragment, self.after, self.cuts = fragment, after, 0
        self._wrapper = None

    def __call__(self, execute, sql, params, many, context):
        hit = self.cuts == 0 and self.fragment in sql
        if hit and not self.after:
            self._cut(context)
        result = execute(sql, params, many, context)
        if hit and self.after:
            self._cut(context)
        return result

    def _cut(self, context):
        self.cuts += 1
        _terminate(context["connection"].connection.info.backend_pid)

    def __enter__(self):
        self._wrapper = connection.execute_wrapper(self)
        self._wrapper.__enter__()
        return self

    def __exit__(self, *exc):
        self._wrapper.__exit__(*exc)


def _client(key: str) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def _counts(org) -> dict:
    # What a server does after every request (request_finished), which the test client skips:
    # a connection the request found broken is closed, so the next query opens a fresh one.
    connection.close_if_unusable_or_obsolete()
    with tenant_context(org):
        return {
            "responses": fm.Response.objects.count(),
            "answers": fm.Answer.objects.count(),
            "events": m.OutboxEvent.objects.count(),
            "audit_log": m.AuditLog.objects.filter(action__startswith="response").count(),
            "idempotency": m.IdempotencyRecord.objects.count(),
        }


def _assert_clean_503(resp):
    assert resp.status_code == 503, resp.content
    assert int(resp["Retry-After"]) > 0
    body = resp.json()
    assert body["status"] == 503 and "unavailable" in body["detail"]
    assert "Traceback" not in resp.content.decode() and "psycopg" not in resp.content.decode()


def test_connection_dropped_inside_the_write_is_a_clean_503_and_nothing_is_stored(world):
    org = world.a.org
    survey, _, _ = make_survey(org, name="drop survey")
    body = {
        "survey": survey.pk,
        "location": "a-n1",
        "source": "api",
        "answers": {"nps": 3, "comment": "slow"},
    }
    before = _counts(org)

    # The response, its answers, outbox event and audit-log row are inserted (one statement);
    # the connection dies before the transaction commits.
    with Cut("INSERT INTO feedback_response", after=True) as cut:
        resp = _client(world.a.api_key).post(
            "/api/v1/responses/", body, format="json", HTTP_IDEMPOTENCY_KEY="drop-1"
        )
    assert cut.cuts == 1, (resp.status_code, resp.content[:500])
    _assert_clean_503(resp)
    assert _counts(org) == before  # no partial write, and the idempotency key is free again

    # The client retries with the same key once Retry-After has passed: stored once.
    again = _client(world.a.api_key).post(
        "/api/v1/responses/", body, format="json", HTTP_IDEMPOTENCY_KEY="drop-1"
    )
    assert again.status_code == 201, again.content
    after = _counts(org)
    assert after["responses"] == before["responses"] + 1
    assert after["events"] == before["events"] + 1


def test_connection_dropped_as_the_outcome_is_stored_keeps_neither_and_the_key_is_not_stuck(world):
    """Cut after the view wrote, right before the Idempotency-Key's row is marked done: the write
    and the stored outcome are one transaction, so neither stays. The key's row is left in flight
    with no lock held, and the retry runs the request (once) instead of a 409 for 24 hours."""
    org = world.a.org
    survey, _, _ = make_survey(org, name="drop survey 3")
    body = {"survey": survey.pk, "location": "a-n1", "source": "api", "answers": {"nps": 7}}
    before = _counts(org)
    with Cut('UPDATE "cem_idempotencyrecord"') as cut:
        resp = _client(world.a.api_key).post(
            "/api/v1/responses/", body, format="json", HTTP_IDEMPOTENCY_KEY="drop-3"
        )
    assert cut.cuts == 1, (resp.status_code, resp.content[:500])
    _assert_clean_503(resp)
    after = _counts(org)
    assert after == {**before, "idempotency": before["idempotency"] + 1}
    with tenant_context(org):
        assert m.IdempotencyRecord.objects.get(key="drop-3").state == m.IdempotencyRecord.State.IN_FLIGHT

    again = _client(world.a.api_key).post(
        "/api/v1/responses/", body, format="json", HTTP_IDEMPOTENCY_KEY="drop-3"
    )
    assert again.status_code == 201, again.content
    replay = _client(world.a.api_key).post(
        "/api/v1/responses/", body, format="json", HTTP_IDEMPOTENCY_KEY="drop-3"
    )
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    final = _counts(org)
    assert final["responses"] == before["responses"] + 1
    assert final["events"] == before["events"] + 1


def test_connection_dropped_before_the_view_is_a_clean_503(world):
    """Cut while the middleware writes the Idempotency-Key's in-flight row: outside any view, so
    Django's handler500 answers, and it too must say 503, not 500."""
    org = world.a.org
    survey, _, _ = make_survey(org, name="drop survey 2")
    body = {"survey": survey.pk, "location": "a-n1", "source": "api", "answers": {"nps": 9}}
    before = _counts(org)
    with Cut('INSERT INTO "cem_idempotencyrecord"') as cut:
        resp = _client(world.a.api_key).post(
            "/api/v1/responses/", body, format="json", HTTP_IDEMPOTENCY_KEY="drop-2"
        )
    assert cut.cuts == 1, (resp.status_code, resp.content[:500])
    _assert_clean_503(resp)
    assert _counts(org) == before
    again = _client(world.a.api_key).post(
        "/api/v1/responses/", body, format="json", HTTP_IDEMPOTENCY_KEY="drop-2"
    )
    assert again.status_code == 201, again.content


def test_connection_dropped_on_a_page_is_a_503_page(world, client):
    """A page form (not the API) whose connection drops as it saves: the 503 page, Retry-After,
    and no region half-created."""
    client.raise_request_exception = False
    client.force_login(world.users["admin"])
    with Cut('INSERT INTO "cem_region"', after=True) as cut:
        resp = client.post("/manage/regions/new/", {"name": "Acme West", "code": "a-west"})
    assert cut.cuts == 1, (resp.status_code, resp.content[:500])
    assert resp.status_code == 503
    assert int(resp["Retry-After"]) > 0
    assert b"Traceback" not in resp.content
    with tenant_context(world.a.org):
        assert not m.Region.objects.filter(code="a-west").exists()
        assert not m.AuditLog.objects.filter(object_type="region", changes__code="a-west").exists()
    again = client.post("/manage/regions/new/", {"name": "Acme West", "code": "a-west"})
    assert again.status_code == 302
