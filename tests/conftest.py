"""Shared fixtures: two tenants with a small hierarchy each, and one persona per role.

Org A ("Acme"): regions north (stores a-n1, a-n2) and south (store a-s1); employees at each.
Org B ("Beta"): one region, one store — org B's admin is the outsider in every isolation test.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from dataclasses import dataclass, field

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from cem import models as m
from cem import services
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f

PASSWORD = "correct-horse-battery"


@dataclass
class Tenant:
    org: m.Organization
    regions: dict[str, m.Region] = field(default_factory=dict)
    locations: dict[str, m.Location] = field(default_factory=dict)
    employees: dict[str, m.Employee] = field(default_factory=dict)
    channel: m.Channel | None = None
    touchpoint: m.Touchpoint | None = None
    standard: m.Standard | None = None
    customer: m.Customer | None = None
    interactions: dict[str, m.Interaction] = field(default_factory=dict)
    api_key: str = ""
    api_key_obj: m.ApiKey | None = None


@dataclass
class World:
    a: Tenant
    b: Tenant
    users: dict[str, object]


def _tenant(name: str, slug: str, stores: dict[str, str]) -> Tenant:
    org = f.OrganizationFactory(name=name, slug=slug)
    t = Tenant(org=org)
    for region_code in sorted(set(stores.values())):
        t.regions[region_code] = f.RegionFactory(
            organization=org, code=f"{slug}-{region_code}", name=region_code
        )
    for store_code, region_code in stores.items():
        t.locations[store_code] = f.LocationFactory(
            organization=org, code=store_code, name=f"{name} {store_code}", region=t.regions[region_code]
        )
        t.employees[store_code] = f.EmployeeFactory(
            organization=org, external_id=f"{slug}-emp-{store_code}", current_location=t.locations[store_code]
        )
    t.channel = f.ChannelFactory(organization=org, code="in_store", name="In store")
    t.touchpoint = f.TouchpointFactory(
        organization=org, channel=t.channel, code="checkout", category=m.InteractionCategory.CRITICAL
    )
    t.standard = f.StandardFactory(organization=org)
    t.customer = f.CustomerFactory(organization=org, external_id=f"{slug}-cust-1")
    for store_code, location in t.locations.items():
        t.interactions[store_code] = f.InteractionFactory(
            organization=org,
            external_id=f"{slug}-int-{store_code}",
            location=location,
            channel=t.channel,
            touchpoint=t.touchpoint,
            category=t.touchpoint.category,
            customer=t.customer,
            employees=[t.employees[store_code]],
            occurred_at=timezone.now() - dt.timedelta(days=1),
        )
    with tenant_context(org):
        key, full = services.api_key_create(
            organization=org, actor=Actor.system(), name="integration", scopes=["*"]
        )
    t.api_key, t.api_key_obj = full, key
    return t


def _member(t: Tenant, email: str, role: str, **scope) -> object:
    user = f.UserFactory(username=email, email=email, password=PASSWORD)
    f.MembershipFactory(organization=t.org, user=user, role=role, **scope)
    return user


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def world(db) -> World:
    return build_world()


def build_world() -> World:
    """The two tenants and the personas; for fixtures of a wider scope than ``world``."""
    a = _tenant("Acme", "acme", {"a-n1": "north", "a-n2": "north", "a-s1": "south"})
    b = _tenant("Beta", "beta", {"b-1": "main"})
    users = {
        "admin": _member(a, "admin@acme.test", m.Role.ORG_ADMIN),
        "executive": _member(a, "exec@acme.test", m.Role.EXECUTIVE),
        "regional": _member(a, "regional@acme.test", m.Role.REGIONAL_MANAGER, region=a.regions["north"]),
        "manager": _member(a, "manager@acme.test", m.Role.STORE_MANAGER, location=a.locations["a-n1"]),
        "employee": _member(a, "employee@acme.test", m.Role.EMPLOYEE, employee=a.employees["a-n1"]),
        "trainer": _member(a, "trainer@acme.test", m.Role.TRAINER),
        "evaluator": _member(a, "evaluator@acme.test", m.Role.EVALUATOR),
        "shopper": _member(a, "shopper@acme.test", m.Role.SHOPPER),
        "outsider": _member(b, "admin@beta.test", m.Role.ORG_ADMIN),
    }
    return World(a=a, b=b, users=users)


@pytest.fixture
def api():
    """api(user) → a session client for that persona; api(key="cem_…") → a Bearer client."""

    def make(user=None, *, key: str | None = None) -> APIClient:
        client = APIClient(enforce_csrf_checks=False)
        if key:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        elif user is not None:
            client.force_login(user)
        return client

    return make


# --- headless chromium --------------------------------------------------------------------------
# One Playwright for the whole run, here at the root: tests/browser and tests/e2e both drive it,
# and a second sync_playwright() in the same process fails (its event loop is already running).
CHROMIUM = os.environ.get("CEM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"chromium not found at {CHROMIUM}; the test command installs it")
        pytest.skip(f"chromium not found at {CHROMIUM}")
    # Playwright's sync API runs an event loop in this thread; the ORM calls in fixtures are
    # still synchronous and safe.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def redis_cache():
    """The shared cache on Redis, as in production (the tests' default is in memory), under a key
    prefix of its own that is emptied afterwards."""
    import uuid

    from django.conf import settings
    from django.core.cache import caches
    from django.test import override_settings

    config = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.REDIS_URL,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
        }
    }
    with override_settings(CACHES=config):
        from django.core.cache import cache as redis_backed

        yield redis_backed
        client = redis_backed._cache.get_client(redis_backed.make_key("x"), write=True)
        for key in client.scan_iter(match=redis_backed.make_key("*")):
            client.delete(key)
    caches["default"].clear()
