"""Repeated store-panel reads replayed in front of Django (cem.fast_reads, alignment.panel_cache):
the same answer Django gave, to the same session and scope only, never once something it was
computed from has changed, and Django whenever anything is missing."""

from __future__ import annotations

import io
import json
import sys
import time

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client, override_settings

from alignment import rollup_derived
from cem import fast_reads
from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f
from tests.alignment.dashboard_data import nps_counts, put
from tests.alignment.test_dashboard_store_api import store


class Django:
    """Django's WSGI handler, counting the requests it answers."""

    def __init__(self):
        self.handler, self.calls = WSGIHandler(), 0

    def __call__(self, environ, start_response):
        self.calls += 1
        return self.handler(environ, start_response)


@pytest.fixture
def app(redis_cache):
    django = Django()
    return fast_reads.FastReads(django), django


def get(app, path, *, session: str | None = None, query: str = "", **headers):
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "HTTP_ACCEPT": "application/json",
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
    }
    if session:
        environ["HTTP_COOKIE"] = f"{settings.SESSION_COOKIE_NAME}={session}"
    answered = {}

    def start_response(status, response_headers, exc_info=None):
        answered["status"], answered["headers"] = int(status.split()[0]), dict(response_headers)

    # As Django's test client does: the test's transaction must outlive the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = app(environ, start_response)
        body = b"".join(result)
        if hasattr(result, "close"):
            result.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return answered["status"], answered["headers"], body


def session_of(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _row(body: bytes, measure: str) -> dict:
    return next(r for r in json.loads(body)["rows"] if r["measure"] == measure)


def _nps(body: bytes) -> int:
    return _row(body, "nps")["n"]


@pytest.fixture
def shop(world, django_capture_on_commit_callbacks):
    a = world.a
    with django_capture_on_commit_callbacks(execute=True):
        put(
            a.org,
            [
                {"measure": "nps", "location": a.locations["a-n1"].pk, **nps_counts([10, 9, 3])},
                {"measure": "nps", "location": a.locations["a-n2"].pk, **nps_counts([0])},
            ],
        )
    return world


def event(world, code: str, values, capture) -> None:
    """A response's rollup change at a store, committed (its on-commit work run)."""
    with capture(execute=True):
        put(world.a.org, [{"measure": "nps", "location": world.a.locations[code].pk, **nps_counts(values)}])


def test_a_repeated_view_is_djangos_answer_replayed_without_django(shop, app):
    fast, django = app
    session, url = session_of(shop.users["manager"]), store(shop, panel="kpis")
    status, first_headers, first = get(fast, url, session=session, query="period=90")
    assert status == 200 and django.calls == 1 and _nps(first) == 3
    for _ in range(3):
        status, headers, again = get(fast, url, session=session, query="period=90")
        assert status == 200 and again == first
    assert django.calls == 1  # answered three times without Django
    for name in ("Content-Type", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options", "Vary"):
        assert headers.get(name) == first_headers.get(name), name
    assert headers["Content-Length"] == str(len(first))
    assert headers["X-Request-ID"] != first_headers["X-Request-ID"]
    # One rate-limit counter for both paths.
    assert int(headers["X-RateLimit-Remaining"]) == int(first_headers["X-RateLimit-Remaining"]) - 3
    assert headers["X-RateLimit-Limit"] == first_headers["X-RateLimit-Limit"]
    status, _, _ = get(fast, url, session=session, query="period=30")  # other filters: Django
    assert status == 200 and django.calls == 2


def test_an_event_at_the_store_shows_on_the_next_view(shop, app, django_capture_on_commit_callbacks):
    fast, django = app
    session = session_of(shop.users["manager"])
    kpis, comparison = store(shop, panel="kpis"), store(shop, panel="comparison")
    get(fast, kpis, session=session)
    get(fast, comparison, session=session)
    assert django.calls == 2

    event(shop, "a-n1", [2], django_capture_on_commit_callbacks)
    _, _, body = get(fast, kpis, session=session)
    assert django.calls == 3 and _nps(body) == 4

    # Another store's event leaves this store's own panel replayed, not the comparison.
    calls = django.calls
    get(fast, kpis, session=session)
    _, _, before = get(fast, comparison, session=session)
    assert django.calls == calls + 1  # kpis replayed; the comparison's first view after the event
    event(shop, "a-s1", [9, 9], django_capture_on_commit_callbacks)
    get(fast, kpis, session=session)
    assert django.calls == calls + 1
    _, _, after = get(fast, comparison, session=session)
    assert django.calls == calls + 2
    company = [
        next(r for r in json.loads(b)["rows"] if r["measure"] == "nps")["company_n"] for b in (before, after)
    ]
    assert company[1] == company[0] + 2


def test_a_change_committing_while_django_computes_is_not_replayed_as_current(shop, app, monkeypatch):
    """The view reads the versions before the database: a change that commits in between leaves
    the kept answer outdated at once."""
    fast, django = app
    session, url = session_of(shop.users["manager"]), store(shop, panel="kpis")
    from alignment import panel_cache

    computed = panel_cache.rows

    def rows_while_an_event_commits(spec, view):
        found = computed(spec, view)
        fast_reads.changed([rollup_derived.location_version(shop.a.org.pk, shop.a.locations["a-n1"].pk)])
        return found

    monkeypatch.setattr(panel_cache, "rows", rows_while_an_event_commits)
    get(fast, url, session=session)
    monkeypatch.setattr(panel_cache, "rows", computed)
    get(fast, url, session=session)
    assert django.calls == 2  # the first answer was kept under the version before the change
    get(fast, url, session=session)
    assert django.calls == 2


def test_only_the_same_session_and_scope_are_answered_from_a_kept_response(shop, app):
    fast, django = app
    url = store(shop, panel="kpis")
    manager = session_of(shop.users["manager"])
    _, _, managers = get(fast, url, session=manager)
    get(fast, url, session=manager)
    assert django.calls == 1

    # The employee of that store: another session and scope; Django, with their own rows.
    status, _, employees = get(fast, url, session=session_of(shop.users["employee"]))
    assert status == 200 and django.calls == 2 and employees != managers
    # Another tenant's admin, another store's manager (the regional of the south), nobody: Django says no.
    status, _, _ = get(fast, url, session=session_of(shop.users["outsider"]))
    assert status == 404 and django.calls == 3
    with tenant_context(shop.a.org):
        south = f.UserFactory()
        m.Membership.objects.create(
            organization=shop.a.org, user=south, role=m.Role.STORE_MANAGER, location=shop.a.locations["a-s1"]
        )
    status, _, _ = get(fast, url, session=session_of(south))
    assert status == 404 and django.calls == 4
    status, _, _ = get(fast, url)
    assert status in (401, 403) and django.calls == 5
    status, _, _ = get(fast, url, session="not-a-session")
    assert status in (401, 403) and django.calls == 6
    # An API key is never answered from a kept response, even with the manager's cookie.
    status, _, _ = get(fast, url, session=manager, authorization=f"Bearer {shop.a.api_key}")
    assert django.calls == 7


def test_logout_ends_replays_at_once(shop, app):
    fast, django = app
    url = store(shop, panel="kpis")
    client = Client()
    client.force_login(shop.users["manager"])
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    get(fast, url, session=session)
    get(fast, url, session=session)
    assert django.calls == 1
    client.post("/logout/")
    status, _, _ = get(fast, url, session=session)
    assert status in (401, 403) and django.calls == 2


def test_a_membership_or_user_change_ends_the_users_replays(shop, app, django_capture_on_commit_callbacks):
    fast, django = app
    url = store(shop, panel="kpis")
    user = shop.users["manager"]
    session = session_of(user)
    get(fast, url, session=session)
    with tenant_context(shop.a.org), django_capture_on_commit_callbacks(execute=True):
        membership = m.Membership.objects.get(user=user)
        membership.location = shop.a.locations["a-s1"]  # moved to another store
        membership.save()
    status, _, _ = get(fast, url, session=session)
    assert status == 404 and django.calls == 2

    other = session_of(shop.users["regional"])
    get(fast, url, session=other)
    get(fast, url, session=other)
    assert django.calls == 3
    with django_capture_on_commit_callbacks(execute=True):
        regional = shop.users["regional"]
        regional.is_active = False
        regional.save()
    status, _, _ = get(fast, url, session=other)
    assert status in (401, 403) and django.calls == 4


def test_renaming_a_standard_or_rebuilding_the_rollup_ends_replays(
    shop, app, django_capture_on_commit_callbacks
):
    fast, django = app
    a = shop.a
    with tenant_context(a.org), django_capture_on_commit_callbacks(execute=True):
        std = f.StandardFactory(organization=a.org, code="acme-greet", title="Greeting")
    with django_capture_on_commit_callbacks(execute=True):
        put(
            a.org,
            [
                {
                    "measure": "std_feedback",
                    "location": a.locations["a-n1"].pk,
                    "standard": std.pk,
                    "total": 80,
                }
            ],
        )
    session, url = session_of(shop.users["manager"]), store(shop, panel="heatmap")
    get(fast, url, session=session)
    get(fast, url, session=session)
    assert django.calls == 1
    with tenant_context(a.org), django_capture_on_commit_callbacks(execute=True):
        std.title = "Warm greeting"
        std.save()
    _, _, body = get(fast, url, session=session)
    assert django.calls == 2 and {r["standard"] for r in json.loads(body)["rows"]} == {"Warm greeting"}

    from alignment import rollups

    get(fast, url, session=session)
    assert django.calls == 2
    with tenant_context(a.org), django_capture_on_commit_callbacks(execute=True):
        rollups.rebuild(a.org, replace=True)
    get(fast, url, session=session)
    assert django.calls == 3


def test_replays_count_against_the_rate_limit(shop, app):
    fast, django = app
    session, url = session_of(shop.users["manager"]), store(shop, panel="kpis")
    with override_settings(API_RATE_LIMIT_PER_MINUTE=3):
        statuses = [get(fast, url, session=session)[0] for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    assert django.calls == 3  # the first, then each refusal (Django answers over the limit)


def test_kept_responses_expire_within_a_minute_and_by_the_organizations_midnight(shop, app, redis_cache):
    fast, _ = app
    session = session_of(shop.users["manager"])
    get(fast, store(shop, panel="kpis"), session=session)
    client = redis_cache._cache.get_client(redis_cache.make_key("x"), write=True)
    bodies = list(client.scan_iter(match=redis_cache.make_key("fr:body:*")))
    principals = list(client.scan_iter(match=redis_cache.make_key("fr:who:*")))
    assert len(bodies) == 1 and len(principals) == 1
    assert 0 < client.ttl(bodies[0]) <= fast_reads.BODY_TTL
    assert 0 < client.ttl(principals[0]) <= fast_reads.WHO_TTL
    # Near the organization's midnight a kept response lives only until then.
    soon = time.time() + 5
    offered = {}
    real_offer = fast_reads.offer

    def capture(request, **kwargs):
        offered.update(kwargs)
        real_offer(request, **{**kwargs, "expires_at": soon})

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fast_reads, "offer", capture)
        get(fast, store(shop, panel="nps"), session=session)
    assert offered["expires_at"] > time.time()
    tomorrow_midnight = offered["expires_at"]
    assert tomorrow_midnight - time.time() <= 86_400 + 3_600  # the local midnight to come (DST included)
    nps_bodies = [k for k in client.scan_iter(match=redis_cache.make_key("fr:body:*")) if k not in bodies]
    assert len(nps_bodies) == 1 and client.ttl(nps_bodies[0]) <= 5


def test_redis_unreachable_means_django_answers(shop, app, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    fast, django = app
    session, url = session_of(shop.users["manager"]), store(shop, panel="kpis")
    get(fast, url, session=session)

    def down(*args, **kwargs):
        raise RedisConnectionError("down")

    monkeypatch.setattr(fast_reads._redis(), "lookup", down)
    status, _, body = get(fast, url, session=session)
    assert status == 200 and django.calls == 2 and _nps(body) == 3


def test_without_a_redis_cache_everything_goes_to_django(shop):
    django = Django()
    fast = fast_reads.FastReads(django)
    session, url = session_of(shop.users["manager"]), store(shop, panel="kpis")
    for _ in range(2):
        assert get(fast, url, session=session)[0] == 200
    assert django.calls == 2


def test_uncached_panels_and_other_routes_are_not_replayed(shop, app):
    fast, django = app
    session = session_of(shop.users["manager"])
    for url in (store(shop, panel="cases"), store(shop, panel="training"), store(shop)):
        get(fast, url, session=session)
        get(fast, url, session=session)
    assert django.calls == 6


def test_only_json_is_kept_never_the_browsable_apis_html(shop, app):
    """The HTML names the signed-in user and carries their CSRF token: never replayed to another."""
    fast, django = app
    session, url = session_of(shop.users["manager"]), store(shop, panel="kpis")
    for _ in range(2):
        status, headers, _ = get(fast, url, session=session, accept="text/html")
        assert status == 200
    if not headers["Content-Type"].startswith("text/html"):
        pytest.skip("no browsable API in these settings")
    assert django.calls == 2


def test_a_redis_that_forgot_the_script_or_closed_the_connection_still_replays(shop, app, redis_cache):
    fast, django = app
    session, url = session_of(shop.users["manager"]), store(shop, panel="kpis")
    get(fast, url, session=session)
    assert get(fast, url, session=session)[0] == 200 and django.calls == 1
    client = redis_cache._cache.get_client(redis_cache.make_key("x"), write=True)
    client.script_flush()  # a restarted Redis has no scripts
    assert get(fast, url, session=session)[0] == 200 and django.calls == 1
    client.client_kill_filter(_type="normal", skipme=True)  # idle connections closed by the server
    assert get(fast, url, session=session)[0] == 200 and django.calls == 1


def test_with_a_streaming_replica_only_rows_as_new_as_the_primary_are_kept(shop, app, settings, monkeypatch):
    """The versions are read from Redis, the rows from the replica: a replica behind the primary
    must not have its rows kept under the newer versions."""
    from alignment import panel_cache

    fast, django = app
    settings.DATABASE_REPLICA_URL = "postgres://replica.invalid/cem"  # routing itself stays as in the tests
    session, url = session_of(shop.users["manager"]), store(shop, panel="kpis")
    current = panel_cache._current
    monkeypatch.setattr(panel_cache, "_current", lambda location, spans: current(location, spans) - 1)
    get(fast, url, session=session)
    get(fast, url, session=session)
    assert django.calls == 2  # the replica's generation was behind: nothing kept
    monkeypatch.setattr(panel_cache, "_current", current)
    get(fast, url, session=session)
    get(fast, url, session=session)
    assert django.calls == 3  # caught up: kept and replayed
