"""Persona journeys in headless chromium on the demo data (``manage.py seed_demo``).

The demo data is loaded once, into the test database, before the first journey of this package
and removed after the last (a flush, like any transactional test's). The journeys do not use
pytest-django's ``live_server``: that fixture pulls in ``transactional_db``, which flushes every
table after each test and would take the demo data with it. They run against their own live
server thread instead and reach the database outside any test transaction, so what a journey
writes is committed and seen by the server, as in production. Each journey therefore works on
rows no other journey changes (or creates its own), so the journeys do not depend on their order.

``CEM_E2E_KEEP_DEMO=1`` (with pytest's default ``--reuse-db``) keeps the loaded demo in the test
database after the run and reuses it on the next one: for working on the journeys only.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction

from cem.management.commands.seed_demo import PASSWORD as DEMO_PASSWORD
from cem.management.commands.seed_demo import kicks_left_to_sweep
from cem.models import Organization
from cem.tenancy import tenant_context, unscoped
from tests.browser.test_journey_learning import Console

ARTIFACTS = Path(__file__).parent / "artifacts"

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def _django_db_helper(django_db_setup, django_db_blocker):
    """The ``django_db`` mark without the test transaction and without the flush afterwards.

    Overrides pytest-django's internal fixture for this package only: the mark still makes
    pytest-django create the test database, but a journey's writes must be committed for the
    live server's threads to see them, and the demo data must outlive each journey.
    """
    with django_db_blocker.unblock():
        yield


def _demo_loaded() -> bool:
    with unscoped():
        return Organization.objects.filter(slug="northwind").exists()


@dataclass
class Demo:
    seconds: float  # loading it: the seed and the work a worker does once it commits
    orgs: dict[str, Organization] = field(default_factory=dict)


@pytest.fixture(scope="package")
def demo(browser, django_db_setup, django_db_blocker, tmp_path_factory):
    """seed_demo in the test database; requested after chromium, so no chromium loads nothing.

    The seed commits in one transaction; what it leaves for after the commit then runs here, as
    a worker would run it (eager Celery): the outbox kicks of its InteractionRecorded events and
    the lesson-effect figures. Its full-history recompute of alignment scores is left out — the
    seed itself computes the latest periods the dashboards show, and the rest takes a worker
    about ten minutes on this machine.

    The full demo (``--scale 1``), as ``./run`` loads it: at ``--scale 0.5`` the seed takes a
    quarter of the time, but the trainer's ineffective lesson turns into "insufficient data".
    """
    keep = os.environ.get("CEM_E2E_KEEP_DEMO") == "1"
    started = time.monotonic()
    with django_db_blocker.unblock():
        if not (keep and _demo_loaded()):
            call_command("flush", interactive=False, verbosity=0)
            out = StringIO()
            with transaction.atomic(), kicks_left_to_sweep(enabled=True) as after_commit:
                logins = tmp_path_factory.mktemp("demo") / "logins.txt"
                call_command("seed_demo", logins_file=str(logins), stdout=out)
            seeded = time.monotonic() - started
            spent = Counter()
            for _savepoint, callback, _robust in after_commit:
                name = callback.__qualname__
                if not name.startswith("finish_alignment."):
                    t0 = time.monotonic()
                    callback()
                    spent[name] += time.monotonic() - t0
            print(f"\nseed_demo: {seeded:.1f} s; after its commit: {dict(spent)}")
        with unscoped():
            orgs = {o.slug: o for o in Organization.objects.filter(slug__in=["northwind", "contoso"])}
    yield Demo(seconds=time.monotonic() - started, orgs=orgs)
    if not keep:
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="package")
def demo_server(demo):
    """A live server thread on the demo data (pytest-django's helper, without its fixture)."""
    from pytest_django.live_server_helper import LiveServer

    server = LiveServer("localhost")
    yield server
    server.stop()


class Journey:
    """One persona's journey: browser pages on the demo server, console errors, screenshots."""

    def __init__(self, browser, server, name: str):
        self.browser, self.server, self.name = browser, server, name
        self.pages = []
        self.consoles: list[Console] = []

    def new_page(self, viewport=DESKTOP):
        context = self.browser.new_context(base_url=self.server.url, viewport=viewport)
        page = context.new_page()
        page.set_default_timeout(20_000)
        self.pages.append(page)
        self.consoles.append(Console(page))
        return page

    def sign_in(self, page, email: str, password: str = DEMO_PASSWORD):
        page.context.clear_cookies()
        page.goto("/login/")
        page.fill("input[name=username]", email)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/login/" not in url)

    @property
    def console_errors(self) -> list[str]:
        return [e for c in self.consoles for e in c.errors]

    def assert_no_console_errors(self):
        assert not self.console_errors, self.console_errors

    def screenshot(self, page, suffix: str = ""):
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{self.name}{suffix}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self):
        for page in self.pages:
            page.context.close()


@pytest.fixture
def journey(browser, demo_server, request):
    """Pages for one journey, each screenshotted at the end, passed or failed."""
    j = Journey(browser, demo_server, request.node.name)
    started = time.monotonic()
    yield j
    for n, page in enumerate(j.pages, start=1):
        try:
            j.screenshot(page, "-end" if len(j.pages) == 1 else f"-end-{n}")
        except Exception as exc:  # a crashed page must not hide the test's own failure
            print(f"no end screenshot of page {n} for {j.name}: {exc!r}")
    j.close()
    print(f"\n{request.node.name}: {time.monotonic() - started:.1f} s")


def answer_quiz(page, quiz):
    """Tick the right choices of an open quiz attempt (questions and choices come shuffled)."""
    from learning.models import QuizQuestion

    with tenant_context(quiz.organization_id):
        right = {
            q.text: [c["key"] for c in q.choices if c["correct"]]
            for q in QuizQuestion.objects.filter(quiz=quiz)
        }
    for question in page.get_by_test_id("attempt-form").locator("fieldset").all():
        text = re.sub(r"^\d+\.\s*", "", question.locator("legend").inner_text())
        text = text.removesuffix("(choose all that apply)").strip()
        for key in right[text]:
            question.locator(f"input[value='{key}']").check()


def digits(text: str) -> int:
    return int(re.sub(r"[^\d-]", "", text))
