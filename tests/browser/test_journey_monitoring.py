"""Call monitoring on a phone: the evaluator scores a sampled call (htmx autosave, resume, publish),
the agent reads the evaluation item by item and acknowledges it."""

import datetime as dt

import pytest

from audits import monitoring
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests.audits.sweep_monitoring import make_calls, make_program
from tests.browser.conftest import login
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_evaluator_scores_a_call_and_the_agent_acknowledges(world, page):
    program = make_program(world, per_agent=1)
    calls = make_calls(world, agent_key="a-n1", count=1)
    with tenant_context(world.a.org):
        monitoring.sample_draw(
            organization=world.a.org,
            actor=Actor.system(),
            program=program,
            period_start=calls[0].occurred_at - dt.timedelta(hours=1),
            period_end=calls[0].occurred_at + dt.timedelta(hours=1),
        )

    login(page, "evaluator@acme.test", PASSWORD)
    page.click("nav >> text=Monitoring")
    assert page.inner_text("[data-testid=count-new] strong") == "1"
    page.click("[data-testid=queue-item] a")
    assert "acme: hello" in page.inner_text("[data-testid=transcript]")

    page.check("input[name=value-greet][value=yes]")
    page.wait_for_selector("[data-testid=saved]")
    assert page.inner_text("[data-testid=progress]") == "1/4 answered"
    page.reload()  # the draft resumes
    assert page.is_checked("input[name=value-greet][value=yes]")

    page.click("[data-testid=publish-evaluation]")  # incomplete: errors next to the items
    assert page.is_visible("[data-testid=error-verify]")
    page.check("input[name=value-verify][value=no]")
    page.check("input[name=value-resolve][value=yes]")
    page.check("input[name=value-tone][value='4']")
    page.fill("textarea[name=comment-verify]", "Did not ask for the account number.")
    page.click("[data-testid=publish-evaluation]")
    page.wait_for_url("**/audits/monitoring/")
    assert page.inner_text("[data-testid=count-done] strong") == "1"

    page.context.clear_cookies()
    login(page, "employee@acme.test", PASSWORD)
    page.click("nav >> text=Evaluations")
    page.click("[data-testid=evaluation-row] a")
    assert "Did not ask for the account number." in page.inner_text("[data-testid=result-verify]")
    page.click("[data-testid=acknowledge]")
    assert page.is_visible("[data-testid=acknowledged]")
