"""A trainer writes a lesson in Markdown (with an attempted script), previews, saves and publishes
it in a real browser; an employee finds it in the library and reads it — nothing runs."""

import pytest

from cem.tenancy import tenant_context
from learning.models import Lesson
from tests.browser.conftest import login
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BODY = (
    "# Greet every customer\n\n"
    "Within **ten seconds**, with eye contact.\n\n"
    "| Step | Say |\n|---|---|\n| 1 | Good morning |\n\n"
    '<img src="x.png" onerror="window.__xss = 1"><script>window.__xss = 2</script>\n\n'
    "[Help](javascript:window.__xss=3)\n"
)


def test_trainer_writes_and_publishes_a_lesson_an_employee_reads_it(world, page, browser, live_server):
    login(page, "trainer@acme.test", PASSWORD)
    page.wait_for_url("**/")
    page.get_by_role("link", name="Lessons", exact=True).click()
    page.wait_for_url("**/learning/content/")
    page.get_by_test_id("new-lesson").click()
    page.fill("input[name=title]", "Greeting in ten seconds")
    page.fill("input[name=summary]", "The first impression")
    page.fill("textarea[name=body]", BODY)
    page.check(f"input[name=standards][value='{world.a.standard.pk}']")
    page.fill("input[name=translation_title]", "Saludo en diez segundos")
    page.fill("textarea[name=translation_body]", "Salude a cada cliente.")
    page.get_by_test_id("preview").click()
    preview = page.get_by_test_id("preview-body")
    preview.wait_for()
    assert preview.locator("h1").inner_text() == "Greet every customer"
    assert preview.locator("table td").first.inner_text() == "1"
    assert page.evaluate("window.__xss") is None
    page.get_by_test_id("submit").click()
    page.wait_for_url("**/edit/")
    page.get_by_test_id("publish").click()
    page.wait_for_url("**/edit/")
    assert "Published" in page.get_by_test_id("lesson-state").inner_text()
    with tenant_context(world.a.org):
        lesson = Lesson.objects.get(title="Greeting in ten seconds")
        assert lesson.status == "published" and lesson.current_version.number == 1

    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    reader = context.new_page()
    login(reader, "employee@acme.test", PASSWORD)
    reader.wait_for_url("**/")
    reader.goto("/learning/content/?q=impression")
    reader.get_by_test_id("lesson-link").click()
    reader.wait_for_url(f"**/learning/content/lessons/{lesson.pk}/")
    body = reader.get_by_test_id("lesson-body")
    assert "ten seconds" in body.inner_text()
    assert body.locator("script").count() == 0
    assert body.locator("a[href^='javascript'], [onerror]").count() == 0
    assert reader.evaluate("window.__xss") is None
    reader.get_by_role("link", name="Español").click()
    assert reader.get_by_test_id("lesson-title").inner_text() == "Saludo en diez segundos"
    context.close()
