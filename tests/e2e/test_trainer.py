"""Trainer (trainer@northwind.demo): reads the lesson effectiveness page (the demo's checkout lesson
shows no improvement beyond noise against its held-out control group, the others work), then
assigns the "Service recovery essentials" path to everyone at one of the misaligned stores, with a
due date and a note; the people who already have it open are skipped with the reason."""

import datetime as dt

import pytest
from django.utils import timezone

from cem.models import Employee, Location
from cem.tenancy import tenant_context
from learning.models import Assignment, LearningPath, LessonEffect

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

PATH = "Service recovery essentials"
STORE = "S013"
NOTE = "Customers at your store rate recovery after a problem low: this path covers it."


def test_trainer_reads_lesson_effectiveness_and_assigns_a_path(demo, journey):
    org = demo.orgs["northwind"]
    with tenant_context(org):
        effects = dict(LessonEffect.objects.values_list("lesson__title", "verdict"))
        path = LearningPath.objects.get(name=PATH)
        store = Location.objects.get(code=STORE)
        staff = set(Employee.objects.filter(current_location=store, active=True).values_list("pk", flat=True))
        already = set(
            Assignment.objects.filter(path=path, employee__in=staff)
            .exclude(status__in=[Assignment.Status.COMPLETED, Assignment.Status.WITHDRAWN])
            .values_list("employee_id", flat=True)
        )
    assert "ineffective" in effects.values() and "effective" in effects.values(), effects
    page = journey.new_page()
    journey.sign_in(page, "trainer@northwind.demo")

    # Lesson effectiveness: the flag names the ineffective lesson; each row has its verdict.
    page.get_by_role("link", name="Training analytics").click()
    page.get_by_test_id("effectiveness-link").click()
    page.wait_for_url("**/learning/analytics/effectiveness/")
    flagged = [title for title, verdict in effects.items() if verdict == "ineffective"]
    flag = page.get_by_test_id("ineffective-flag").inner_text()
    assert all(title in flag for title in flagged), flag
    page.wait_for_selector('[data-testid="chart-effects"] svg.main-svg')
    verdicts = page.get_by_test_id("effect-row").evaluate_all("rows => rows.map(r => r.dataset.verdict)")
    assert sorted(verdicts) == sorted(effects.values())
    journey.screenshot(page, "-effectiveness")
    journey.assert_no_console_errors()

    # Assign the path to the store, due in two weeks, with a note.
    page.get_by_role("link", name="Training", exact=True).click()
    page.get_by_test_id("assign-link").click()
    page.wait_for_url("**/learning/assign/new/")
    form = page.get_by_test_id("assign-form")
    form.locator("select[name=path]").select_option(label=PATH)
    form.locator("select[name=location]").select_option(label=store.name)
    due = timezone.localdate() + dt.timedelta(days=14)
    form.locator("input[name=due_at]").fill(due.isoformat())
    form.locator("input[name=reason]").fill(NOTE)
    page.get_by_test_id("submit").click()
    result = page.get_by_test_id("assign-result")
    result.wait_for()
    assigned = result.get_by_test_id("assigned").count()
    skipped = result.get_by_test_id("skipped").all_inner_texts()
    assert assigned > 0 and assigned + len(skipped) == len(staff), result.inner_text()
    # Skipped with the reason: already on it, or at the organization's cap of open assignments.
    assert len(skipped) >= len(already)
    assert all("already" in row for row in skipped), skipped
    assert f"due {due.isoformat()}" in result.get_by_test_id("assigned").first.inner_text()
    with tenant_context(org):
        made = Assignment.objects.filter(path=path, employee__in=staff, reason=NOTE)
        assert made.count() == assigned
        assert {a.source for a in made} == {Assignment.Source.MANUAL}
    journey.assert_no_console_errors()

    # The assignments list, filtered to the store, shows them due on the day chosen.
    page.get_by_role("link", name="Assignments").click()
    page.wait_for_url("**/learning/assign/")
    filters = page.get_by_test_id("assignment-filters")
    filters.locator("select[name=location]").select_option(label=store.name)
    filters.get_by_role("button", name="Filter").click()
    page.wait_for_url(f"**location={store.pk}**")
    rows = page.get_by_test_id("assignment-row").filter(has_text=PATH)
    assert rows.count() == assigned
    assert all(due.isoformat() in row for row in rows.all_inner_texts())
    journey.assert_no_console_errors()
