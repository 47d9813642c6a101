"""The visit form on a phone that loses its connection (static/audits/autosave.js): edits made
offline are kept on the phone, shown as queued, and saved when the connection returns, also after
the tab was closed; submitting is held back while offline; a queue older than the server's draft
is discarded rather than written over newer answers; a failing server is retried."""

import time

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from audits import jobs
from audits import models as am
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests.audits.sweep_workforce import make_job, make_program, make_shopper
from tests.browser.conftest import login
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "shopper@acme.test"
SAVED = "[data-testid=save-status] [data-testid=saved]"


@pytest.fixture
def job(world):
    org = world.a.org
    program, scenario = make_program(org)
    shopper = make_shopper(org, email=EMAIL, user=world.users["shopper"], certify_program=program)
    return make_job(
        org,
        program,
        scenario,
        world.a.locations["a-n1"],
        shopper=shopper,
        status=am.Assignment.Status.IN_PROGRESS,
        assigned_at=timezone.now(),
    )


def _open(page, job):
    login(page, EMAIL, PASSWORD)
    page.wait_for_url(lambda url: "/login/" not in url)
    page.goto(f"/audits/jobs/{job.pk}/")


def _stored(world, job, key, field="value"):
    with tenant_context(world.a.org):
        answer = am.AuditAnswer.objects.filter(audit__assignment=job, item__key=key).first()
        return getattr(answer, field) if answer else None


def _eventually(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError("the server never got the queued answers")
        time.sleep(0.1)


def test_edits_made_offline_are_queued_and_saved_when_the_connection_returns(world, job, page):
    _open(page, job)
    page.locator("input[name=value-greeted][value=yes]").check()
    page.wait_for_selector(SAVED)
    assert _stored(world, job, "greeted") == "yes"

    page.context.set_offline(True)
    page.locator("input[name=value-greeted][value=no]").check()
    page.locator("textarea[name=comment-greeted]").fill("Nobody at the door.")
    status = page.get_by_test_id("offline-status")
    expect(status).to_contain_text("Offline — 2 changes saved on this phone, will retry")
    expect(page.get_by_test_id("submit-report")).to_be_disabled()
    expect(page.get_by_test_id("submit-offline")).to_be_visible()
    page.get_by_test_id("save-draft").click()  # held back too: no browser error page
    expect(status).to_contain_text("Offline")
    assert f"/audits/jobs/{job.pk}/" in page.url
    assert _stored(world, job, "greeted") == "yes"

    page.context.set_offline(False)
    expect(status).to_be_hidden()
    expect(page.get_by_test_id("submit-report")).to_be_enabled()
    page.wait_for_selector(SAVED)
    _eventually(lambda: _stored(world, job, "greeted") == "no")
    assert _stored(world, job, "greeted", "comment") == "Nobody at the door."


def test_a_queue_left_by_a_closed_tab_is_resubmitted_on_the_next_visit(world, job, page):
    _open(page, job)
    context = page.context
    page.locator("input[name=value-greeted][value=yes]").check()
    page.wait_for_selector(SAVED)

    context.set_offline(True)
    page.locator("input[name=value-wait]").fill("90")
    expect(page.get_by_test_id("offline-status")).to_contain_text("1 change saved on this phone")
    page.close()  # the shopper closes the browser while still offline
    assert not _stored(world, job, "wait")  # the earlier autosave stored it empty

    context.set_offline(False)
    again = context.new_page()
    again.goto(f"/audits/jobs/{job.pk}/")
    _eventually(lambda: _stored(world, job, "wait") == "90")
    expect(again.locator("input[name=value-wait]")).to_have_value("90")
    expect(again.get_by_test_id("offline-status")).to_be_hidden()
    again.wait_for_selector(SAVED)
    again.reload()  # nothing queued any more: the page just shows the saved draft
    expect(again.locator("input[name=value-wait]")).to_have_value("90")
    expect(again.get_by_test_id("offline-status")).to_be_hidden()


def test_a_queue_older_than_the_servers_draft_is_discarded_not_written(world, job, page):
    _open(page, job)
    page.locator("input[name=value-greeted][value=yes]").check()
    page.wait_for_selector(SAVED)

    page.context.set_offline(True)
    page.locator("input[name=value-greeted][value=no]").check()
    expect(page.get_by_test_id("offline-status")).to_contain_text("Offline")
    # Meanwhile the report is saved from another device.
    with tenant_context(world.a.org):
        jobs.assignment_draft_save(
            organization=world.a.org,
            actor=Actor.system(),
            shopper=am.Shopper.objects.get(pk=job.shopper_id),
            assignment=job,
            answers=[{"item": "greeted", "value": "yes", "comment": "from the tablet"}],
        )

    page.context.set_offline(False)
    expect(page.get_by_test_id("offline-status")).to_contain_text("discarded")
    expect(page.locator("textarea[name=comment-greeted]")).to_have_value("from the tablet")
    assert page.locator("input[name=value-greeted][value=yes]").is_checked()
    assert _stored(world, job, "greeted") == "yes"


def test_a_failing_server_is_retried_with_backoff(world, job, page):
    _open(page, job)
    failures = []

    def unavailable(route):
        failures.append(route.request.url)
        route.fulfill(status=503, body="down for maintenance")

    page.route("**/draft/", unavailable)
    page.locator("input[name=value-greeted][value=yes]").check()
    status = page.get_by_test_id("offline-status")
    expect(status).to_contain_text(
        "Not saved yet (connection problem) — 1 change saved on this phone, retrying"
    )
    assert _stored(world, job, "greeted") is None
    page.unroute("**/draft/")
    page.wait_for_selector(SAVED)  # the next retry goes through
    expect(status).to_be_hidden()
    assert failures and _stored(world, job, "greeted") == "yes"
