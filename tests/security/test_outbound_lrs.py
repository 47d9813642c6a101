"""The xAPI forwarding to an organization's LRS obeys the webhooks' SSRF rules (bandit B310 fix).

An LRS URL is typed by an org admin like a webhook URL, so in production it may only reach
public addresses (checked when saved and again when connecting) and a redirect is not followed.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.exceptions import ValidationError

from cem.principals import Actor
from cem.tenancy import tenant_context
from learning import xapi
from learning.assignments import learning_settings_save


class _Redirecting(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self):
        self.hits.append(self.path)
        self.send_response(302)
        self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def redirecting_server():
    _Redirecting.hits = []
    server = HTTPServer(("127.0.0.1", 0), _Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_private_address_refused_before_connecting(settings, redirecting_server):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    with pytest.raises(OSError, match="private, loopback or reserved"):
        xapi.http_post(f"{redirecting_server}/statements", b"[]", {}, 5)
    assert _Redirecting.hits == []


def test_other_schemes_refused(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    for url in ("file:///etc/passwd", "ftp://example.com/x", "gopher://127.0.0.1/"):
        with pytest.raises(OSError, match="Only http"):
            xapi.http_post(url, b"[]", {}, 5)


def test_redirect_is_not_followed(settings, redirecting_server):
    settings.WEBHOOKS_ALLOW_PRIVATE = True  # the test receiver is on loopback
    assert xapi.http_post(f"{redirecting_server}/statements", b"[]", {}, 5) == 302
    assert _Redirecting.hits == ["/statements"]


def test_lrs_url_resolving_to_a_private_address_is_refused_on_save(world, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    org = world.a.org
    with tenant_context(org), pytest.raises(ValidationError) as err:
        learning_settings_save(
            organization=org,
            actor=Actor.system(),
            data={"lrs_url": "https://127.0.0.1/lrs", "lrs_secret": "s3cret-value"},
        )
    assert "lrs_url" in err.value.message_dict
