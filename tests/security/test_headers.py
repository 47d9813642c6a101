"""Security headers: CSP (no inline script without the nonce), framing, referrer, HSTS, check --deploy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from csp.middleware import CSPMiddleware
from django.conf import settings as django_settings
from django.http import HttpResponse
from django.template import engines
from django.test import RequestFactory

from cem.tenancy import tenant_context
from feedback import models as fm
from tests.conftest import PASSWORD
from tests.feedback.conftest import make_survey
from tests.security.production_settings import production_manage, production_settings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("*/templates")]


def directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_strict_csp(response):
    csp = directives(response)
    assert csp["default-src"] == ["'self'"]
    script = csp["script-src"]
    assert script[0] == "'self'" and all(v.startswith("'nonce-") for v in script[1:]), script
    for loose in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "https:", "http:"):
        assert loose not in script, f"script-src allows {loose}"
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["connect-src"] == ["'self'"]


@pytest.fixture
def public_urls(world):
    org = world.a.org
    survey, _version, _questions = make_survey(org, name="Header survey")
    with tenant_context(org):
        link = fm.AnonymousLink.objects.create(
            organization=org, survey=survey, location=world.a.locations["a-n1"]
        )
        fm.Survey.objects.filter(pk=survey.pk).update(allowed_origins=["https://shop.acme.test"])
    return {"respondent": f"/r/a/{link.token}/", "widget": f"/r/w/{survey.public_key}/survey.json"}


def _pages(client, world, public_urls):
    yield "login", client.get("/login/")
    yield "respondent", client.get(public_urls["respondent"])
    yield "widget json", client.get(public_urls["widget"], HTTP_ORIGIN="https://shop.acme.test")
    yield "404", client.get("/no-such-page/")
    client.force_login(world.users["admin"])
    yield "home", client.get("/")
    yield "feedback dashboard", client.get("/feedback/")
    yield "account", client.get("/account/")
    yield "api docs", client.get("/api/docs/")
    yield "api", client.get("/api/v1/regions/")


def test_every_kind_of_response_carries_the_strict_policy_and_framing_headers(world, client, public_urls):
    seen = 0
    for name, resp in _pages(client, world, public_urls):
        assert resp.status_code in (200, 404), (name, resp.status_code)
        assert_strict_csp(resp)
        assert resp["X-Frame-Options"] == "DENY", name
        assert resp["Referrer-Policy"] == "same-origin", name
        assert resp["X-Content-Type-Options"] == "nosniff", name
        seen += 1
    assert seen == 9


def test_the_widget_is_not_framed_so_nothing_needs_framing():
    # The widget builds its pop-up in the host page's DOM and fetches JSON (CORS), so DENY and
    # frame-ancestors 'none' cost it nothing. If it ever used an iframe, this would have to change.
    source = (ROOT / "static" / "feedback" / "widget.js").read_text()
    assert "iframe" not in source.lower()
    assert "fetch(" in source or "XMLHttpRequest" in source


def test_swagger_ui_start_up_script_is_a_file(world, client):
    client.force_login(world.users["admin"])
    html = client.get("/api/docs/").content.decode()
    inline = [s for s in re.findall(r"<script([^>]*)>", html) if "src=" not in s]
    assert inline == [], inline


def test_a_nonce_used_by_a_template_is_added_to_the_header():
    request = RequestFactory().get("/")
    middleware = CSPMiddleware(lambda r: HttpResponse())
    middleware.process_request(request)
    html = engines["django"].from_string('<script nonce="{{ request.csp_nonce }}">go()</script>').render(
        request=request
    )
    nonce = re.search(r'nonce="([^"]+)"', html).group(1)
    response = middleware.process_response(request, HttpResponse(html))
    assert f"'nonce-{nonce}'" in directives(response)["script-src"]
    # A request that renders no nonce gets none in its header (and so no inline script runs).
    other = RequestFactory().get("/")
    middleware.process_request(other)
    assert directives(middleware.process_response(other, HttpResponse("x")))["script-src"] == ["'self'"]


# --- templates: nothing inline that the policy would block ----------------------------------------

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
HANDLER_ATTR = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE | re.DOTALL)
JAVASCRIPT_URL = re.compile(r"""(href|src|action)\s*=\s*["']\s*javascript:""", re.IGNORECASE)


def _templates():
    for folder in TEMPLATE_DIRS:
        yield from sorted(folder.rglob("*.html"))


def test_templates_have_no_inline_script_without_the_nonce():
    offenders = []
    for path in _templates():
        for attrs in SCRIPT_TAG.findall(path.read_text()):
            if "src=" in attrs or 'type="application/json"' in attrs:
                continue
            if "nonce=\"{{ request.csp_nonce }}\"" not in attrs:
                offenders.append(f"{path.relative_to(ROOT)}: <script{attrs}>")
    assert offenders == []


def test_templates_have_no_inline_event_handlers_or_javascript_urls():
    offenders = []
    for path in _templates():
        text = path.read_text()
        if HANDLER_ATTR.search(text) or JAVASCRIPT_URL.search(text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_htmx_needs_no_eval():
    # hx-on, hx-vars and js: values make htmx call eval, which script-src refuses.
    offenders = []
    for path in _templates():
        text = path.read_text()
        if re.search(r"hx-on[:-]|hx-vars=|hx-vals=[\"']\s*js:", text):
            offenders.append(str(path.relative_to(ROOT)))
        # An event filter (keyup[ctrlKey]) is evaluated; a CSS selector after from: is not.
        for trigger in re.findall(r'hx-trigger="([^"]*)"', text):
            if any("[" in spec.split()[0] for spec in trigger.split(",") if spec.strip()):
                offenders.append(f"{path.relative_to(ROOT)}: {trigger}")
    assert offenders == []


# --- HSTS and deploy checks -----------------------------------------------------------------------


def test_hsts_is_sent_over_https(world, client, settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    secure = client.get("/login/", secure=True)
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "Strict-Transport-Security" not in client.get("/login/")


def test_production_settings_turn_on_hsts_and_https():
    got = production_settings(
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SECURE_SSL_REDIRECT",
        "SECURE_PROXY_SSL_HEADER",
        "X_FRAME_OPTIONS",
        "SECURE_REFERRER_POLICY",
        "CONTENT_SECURITY_POLICY",
    )
    assert got["SECURE_HSTS_SECONDS"] >= 31_536_000
    assert got["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True and got["SECURE_HSTS_PRELOAD"] is True
    assert got["SECURE_SSL_REDIRECT"] is True
    assert got["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert got["X_FRAME_OPTIONS"] == "DENY" and got["SECURE_REFERRER_POLICY"] == "same-origin"
    # The policy is the same in every environment.
    prod_policy = got["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]
    assert prod_policy["frame-ancestors"] == ["'none'"]
    assert set(prod_policy) == set(django_settings.CONTENT_SECURITY_POLICY["DIRECTIVES"])


@pytest.mark.slow
def test_check_deploy_is_clean_with_production_settings():
    result = production_manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_login_page_headers_after_login(world, client):
    # The session cookie and the pages behind it carry the same headers as the login page.
    client.post("/login/", {"username": "admin@acme.test", "password": PASSWORD})
    resp = client.get("/interactions/")
    assert resp.status_code == 200
    assert_strict_csp(resp)
    assert resp["X-Frame-Options"] == "DENY"
