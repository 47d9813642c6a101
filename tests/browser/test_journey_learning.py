"""Issue 6 acceptance, on a phone: a poor audit is published for a store; a gap rule on the
"Greeting" standard assigns its lesson at once; the store's employee sees it on My learning with
the reason in plain words, reads it, passes its quiz and sees the explanations; the trainer finds
it among the most-sent lessons (one automatic)."""

import time
from decimal import Decimal

import pytest

from audits import audit_services
from audits.models import StandardScore
from cem.principals import Actor
from cem.tenancy import tenant_context
from learning import content
from learning import models as lm
from tests import factories as f
from tests.audits.sweep_forms import make_audit, make_form
from tests.browser.conftest import login
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LESSON_BODY = (
    "# Greet every customer\n\n"
    "Look up, smile and say hello **within ten seconds** of a customer coming in, "
    "even when you are busy: a nod and *I'll be with you in a moment* count.\n"
)
QUESTIONS = [
    {
        "kind": "single",
        "text": "How soon should a customer be greeted?",
        "choices": [
            {"key": "a", "text": "Within ten seconds", "correct": True},
            {"key": "b", "text": "When they reach the till", "correct": False},
            {"key": "c", "text": "Only if they ask for help", "correct": False},
        ],
        "explanation": "Ten seconds: the customer knows they have been seen.",
    },
    {
        "kind": "true_false",
        "text": "When you are busy, a nod is better than nothing.",
        "answer": True,
        "explanation": "Acknowledging the customer is what matters.",
    },
    {
        "kind": "multi",
        "text": "Which belong to a good greeting?",
        "choices": [
            {"key": "a", "text": "A smile", "correct": True},
            {"key": "b", "text": "Eye contact", "correct": True},
            {"key": "c", "text": "Looking at your phone", "correct": False},
        ],
        "explanation": "A smile and eye contact; never the phone.",
    },
]
# What to tick, by the label shown (the quiz shuffles questions and choices).
RIGHT_ANSWERS = ["Within ten seconds", "True", "A smile", "Eye contact"]
POOR = {"greeted": "no", "smile": "2", "wait": "300", "id_check": "yes", "upsell": "asked"}


def _setup(world, api):
    """The "Greeting" standard, its published lesson ending with a quiz, and the gap rule."""
    org, trainer = world.a.org, world.users["trainer"]
    actor = Actor(user_id=trainer.pk)
    greeting = f.StandardFactory(organization=org, code="greeting", title="Greeting")
    checkout = f.StandardFactory(organization=org, code="checkout", title="Checkout")
    with tenant_context(org):
        lesson = content.lesson_create(
            organization=org,
            actor=actor,
            data={
                "title": "Greeting in ten seconds",
                "summary": "The first impression",
                "body": LESSON_BODY,
                "estimated_minutes": 4,
                "standards": [greeting.pk],
            },
        )
        lesson = content.lesson_publish(organization=org, actor=actor, lesson=lesson)
        quiz = content.quiz_create(
            organization=org,
            actor=actor,
            data={
                "title": "Greeting check",
                "lesson": lesson.pk,
                "pass_mark": 70,
                "attempts_allowed": 3,
                "status": "published",
                "questions": QUESTIONS,
            },
        )
    resp = api(trainer).post(
        "/api/v1/gap-rules/",
        {
            "name": "Greeting below 70 at a store",
            "standard": greeting.pk,
            "subject": "location",
            "target": "location",
            "source": "any",
            "threshold": "70",
            "window_days": 30,
            "min_points": 1,
            "lesson": lesson.pk,
            "holdout_share": "0",
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    _form, version = make_form(org, greeting, checkout, name="Store visit")
    return greeting, lesson, quiz, version


class Console:
    """Errors the pages log (console.error, uncaught exceptions), checked page by page."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda msg: self._console(page, msg))
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))

    def _console(self, page, msg):
        if msg.type == "error":
            self.errors.append(f"{page.url}: {msg.text} ({msg.location.get('url')})")

    def assert_clean(self):
        assert not self.errors, self.errors


def _fits_the_phone(page):
    """Nothing wider than the 390 px viewport (tables may scroll inside their own wrapper)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} is {width} px wide on a 390 px phone"


def _sign_in(page, email):
    page.context.clear_cookies()
    login(page, email, PASSWORD)
    page.wait_for_url(lambda url: "/login/" not in url)


def test_poor_audit_assigns_the_lesson_the_employee_passes_it_the_trainer_sees_it(world, page, api):
    greeting, lesson, quiz, version = _setup(world, api)
    org, store, employee = world.a.org, world.a.locations["a-n1"], world.a.employees["a-n1"]
    console = Console(page)

    # The employee's store has nothing to learn yet.
    _sign_in(page, "employee@acme.test")
    page.goto("/learning/")
    page.get_by_test_id("empty").wait_for()
    console.assert_clean()

    # A poor visit is published for the store.
    audit = make_audit(org, version, POOR, location=store)
    with tenant_context(org):
        audit_services.audit_publish(organization=org, actor=Actor.system(), audit=audit)
        greeting_score = StandardScore.objects.get(audit=audit, standard=greeting).value
    assert greeting_score < Decimal(70)

    # Within seconds the lesson is on the employee's portal, no one lifting a finger.
    card = page.locator(f"[data-testid=section-assigned] article:has-text('{lesson.title}')")
    deadline = time.monotonic() + 5
    while True:
        page.goto("/learning/")
        if card.count() or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert card.count() == 1, page.inner_text("main")
    with tenant_context(org):
        assignment = lm.Assignment.objects.get(employee=employee, lesson=lesson)
    assert assignment.source == lm.Assignment.Source.RULE
    reason = card.get_by_test_id("reason").inner_text()
    assert "Greeting" in reason and f"{greeting_score:.0f}%" in reason and "your store" in reason, reason
    assert "ends with a quiz" in card.inner_text()
    _fits_the_phone(page)
    console.assert_clean()

    # It opens with the same reason; opening it starts it, and reading to the end saves the
    # progress, which a reload shows.
    card.get_by_test_id(f"open-{assignment.pk}").click()
    page.wait_for_url(f"**/learning/assignments/{assignment.pk}/")
    assert page.get_by_test_id("reason").inner_text() == reason
    assert page.get_by_test_id("lesson-title").inner_text() == "Greeting in ten seconds"
    assert "within ten seconds" in page.get_by_test_id("lesson-body").inner_text()
    page.get_by_test_id("complete").scroll_into_view_if_needed()  # read to the end
    with tenant_context(org):
        deadline = time.monotonic() + 5
        while True:
            saved = lm.Assignment.objects.get(pk=assignment.pk)
            if saved.status == lm.Assignment.Status.IN_PROGRESS and saved.progress == 99:
                break
            assert time.monotonic() < deadline, f"reading saved {saved.status} {saved.progress} %"
            time.sleep(0.2)
    page.reload()
    assert page.get_by_test_id("progress").inner_text() == "99 % done"
    _fits_the_phone(page)
    console.assert_clean()

    # Read it: the quiz follows.
    page.get_by_test_id("complete").click()
    page.wait_for_url(f"**/learning/quizzes/{quiz.pk}/")
    assert page.get_by_test_id("attempts-left").inner_text() == "3"
    page.get_by_test_id("start-attempt").click()
    page.wait_for_url("**/learning/attempts/*/")
    form = page.get_by_test_id("attempt-form")
    for label in RIGHT_ANSWERS:
        form.get_by_label(label, exact=True).check()
    _fits_the_phone(page)
    console.assert_clean()
    page.get_by_test_id("submit-attempt").click()
    page.wait_for_selector("[data-testid=result-verdict]:has-text('Passed')")
    assert "100 %" in page.get_by_test_id("result-verdict").inner_text()
    explanations = page.get_by_test_id("explanation").all_inner_texts()
    assert sorted(explanations) == sorted(q["explanation"] for q in QUESTIONS)
    assert page.locator("[data-testid^=result-q].right").count() == 3
    _fits_the_phone(page)
    console.assert_clean()

    # My learning: completed.
    page.get_by_role("link", name="My learning").last.click()
    page.wait_for_url("**/learning/")
    done = page.get_by_test_id("section-completed").get_by_test_id(f"assignment-{assignment.pk}")
    assert "Completed" in done.inner_text()
    assert page.get_by_test_id("section-assigned").count() == 0
    with tenant_context(org):
        assignment.refresh_from_db()
        assert assignment.status == lm.Assignment.Status.COMPLETED
        assert lm.Completion.objects.filter(assignment=assignment, lesson=lesson).count() == 1
    _fits_the_phone(page)
    console.assert_clean()

    # The trainer sees it among the most-sent lessons: one sent, automatically.
    _sign_in(page, "trainer@acme.test")
    page.goto("/learning/analytics/")
    page.wait_for_selector('[data-testid="chart-most-sent"] svg.main-svg')
    row = page.locator(f'[data-testid="lesson-row"][data-lesson="{lesson.pk}"]')
    assert row.get_attribute("data-sent") == "1"
    assert row.get_attribute("data-automatic") == "1" and row.get_attribute("data-manual") == "0"
    assert "Greeting in ten seconds" in row.inner_text()
    console.assert_clean()
