"""Pages of headless Debian chromium (the session's `browser`, tests/conftest.py) against
pytest-django's live server."""

import pytest


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def login(page, email, password):
    page.goto("/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
