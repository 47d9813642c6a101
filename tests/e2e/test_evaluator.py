"""QA evaluator (evaluator@contoso.demo, Contoso Care's contact centre): opens their sample queue,
scores a sampled call and publishes it, then calibrates on the same call with a colleague
(evaluator2@contoso.demo): both score it blind, the facilitator closes the session with the agreed
answers, and the disagreement table shows where they differed."""

import pytest

from audits import models as am
from cem.tenancy import tenant_context

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

# The demo's "Call and chat quality" form, a good call (explained 4/5, a 45 s hold).
GOOD_CALL = {
    "greeting": "yes",
    "verified": "yes",
    "reason": "asked",
    "explained": "4",
    "owned": "yes",
    "self-service": "n/a",
    "summary": "yes",
    "reference": "yes",
    "anything-else": "yes",
}


def _score(form, answers: dict, hold_seconds: str = "45"):
    for key, value in answers.items():
        form.locator(f"input[name=value-{key}][value='{value}']").check()
    form.locator("input[name=value-hold-seconds]").fill(hold_seconds)


def test_evaluator_scores_a_sampled_call_and_calibrates_on_it(demo, journey):
    org = demo.orgs["contoso"]
    page = journey.new_page()
    journey.sign_in(page, "evaluator@contoso.demo")

    # The queue: sampled calls not yet evaluated.
    page.get_by_role("link", name="Monitoring", exact=True).click()
    page.wait_for_url("**/audits/monitoring/")
    new_before = int(page.get_by_test_id("count-new").locator("strong").inner_text())
    done_before = int(page.get_by_test_id("count-done").locator("strong").inner_text())
    assert new_before > 0
    page.get_by_test_id("queue-item").filter(has_text="New").first.get_by_role("link").click()
    page.wait_for_url("**/audits/monitoring/items/*/")
    item_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    with tenant_context(org):
        sample_item = am.SampleItem.objects.select_related("agent", "sample__program").get(pk=item_id)
        program = sample_item.sample.program
    assert page.locator("h1").inner_text() == sample_item.agent.name
    journey.assert_no_console_errors()

    # Score it (drafts autosave) and publish.
    form = page.locator("#evaluation-form")
    _score(form, GOOD_CALL)
    form.locator("textarea[name=text-coaching]").fill("Clear explanation; confirm the reference by SMS.")
    page.wait_for_selector("[data-testid=saved]")
    journey.screenshot(page, "-evaluation")
    page.get_by_test_id("publish-evaluation").click()
    page.wait_for_url("**/audits/monitoring/")
    assert int(page.get_by_test_id("count-done").locator("strong").inner_text()) == done_before + 1
    assert int(page.get_by_test_id("count-new").locator("strong").inner_text()) == new_before - 1
    with tenant_context(org):
        sample_item.refresh_from_db()
        evaluation = sample_item.audit
    assert evaluation.status == am.Audit.Status.PUBLISHED and evaluation.score is not None
    journey.assert_no_console_errors()

    # Calibrate on the same call: from the evaluation, a session with a colleague.
    page.goto(f"/audits/monitoring/evaluations/{evaluation.pk}/")
    page.get_by_role("link", name="Calibrate on this interaction").click()
    create = page.get_by_test_id("calibration-form")
    assert create.locator("input[name=interaction]").input_value() == str(sample_item.interaction_id)
    create.locator("select[name=program]").select_option(label=program.name)
    for email in ("evaluator@contoso.demo", "evaluator2@contoso.demo"):
        create.get_by_label(email).check()
    page.get_by_test_id("create-calibration").click()
    page.wait_for_url("**/audits/monitoring/calibrations/*/")
    session_url = page.url
    assert "Open: scoring is blind" in page.get_by_test_id("session-status").inner_text()

    # Both score blind; the colleague hears the agent skip the summary.
    scoring = page.get_by_test_id("calibration-evaluate")
    _score(scoring, GOOD_CALL)
    page.get_by_test_id("submit-calibration").click()
    page.get_by_test_id("roster").filter(has_text="evaluator@contoso.demo: scored").wait_for()
    colleague = journey.new_page()
    journey.sign_in(colleague, "evaluator2@contoso.demo")
    colleague.goto(session_url)
    theirs = colleague.get_by_test_id("calibration-evaluate")
    _score(theirs, {**GOOD_CALL, "summary": "no"})
    theirs.locator("textarea[name=comment-summary]").fill("No recap of the refund steps.")
    colleague.get_by_test_id("submit-calibration").click()
    colleague.get_by_test_id("roster").filter(has_text="evaluator2@contoso.demo: scored").wait_for()
    journey.assert_no_console_errors()

    # The facilitator closes with the agreed answers: the scores and the disagreement appear.
    page.goto(session_url)
    page.get_by_test_id("close-link").click()
    _score(page.get_by_test_id("close-form"), GOOD_CALL)
    page.get_by_test_id("close-session").click()
    page.wait_for_url(session_url)
    assert "Closed" in page.get_by_test_id("session-status").inner_text()
    assert page.get_by_test_id("final-score").inner_text()
    summary_row = page.get_by_test_id("disagreement-summary")
    assert summary_row.get_by_test_id("disagree-cell").count() == 1, summary_row.inner_text()
    assert page.get_by_test_id("disagreement").get_by_test_id("disagree-cell").count() == 1
    alignment = page.get_by_test_id("alignment-evaluator@contoso.demo").locator("strong").inner_text()
    assert float(alignment) == 100, alignment
    journey.screenshot(page, "-calibration")
    journey.assert_no_console_errors()
