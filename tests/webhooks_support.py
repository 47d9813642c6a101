"""Helpers of the webhook tests: endpoints, events, a fake transport and a real local receiver."""

from __future__ import annotations

import http.server
import threading
import time
from dataclasses import dataclass, field

import pytest

from cem import webhooks
from cem.events import emit
from cem.models import WebhookDelivery
from cem.principals import Actor
from cem.tenancy import tenant_context


def make_endpoint(org, *, events=("CaseOpened",), url="http://127.0.0.1:9/acme-hook", **kw):
    with tenant_context(org):
        endpoint, secret = webhooks.endpoint_create(
            organization=org, actor=Actor.system(), url=url, event_types=list(events), **kw
        )
    return endpoint, secret


def make_event(org, event_type="CaseOpened", payload=None):
    with tenant_context(org):
        return emit(organization=org, event_type=event_type, payload=payload or {"case_id": 7})


def make_delivery(org, endpoint, event_type="CaseOpened", payload=None) -> WebhookDelivery:
    """An event fanned out to its subscribed endpoints; returns the delivery of ``endpoint``."""
    event = make_event(org, event_type, payload)
    with tenant_context(org):
        webhooks.fan_out(event)
        return WebhookDelivery.objects.get(endpoint=endpoint, event_id=event.pk)


@dataclass
class Call:
    url: str
    body: bytes
    headers: dict


@dataclass
class FakeReceiver:
    """A transport answering with ``codes`` in turn (the last one repeats); an exception is raised."""

    codes: list = field(default_factory=lambda: [200])
    calls: list[Call] = field(default_factory=list)

    def __call__(self, url, body, headers):
        self.calls.append(Call(url, body, dict(headers)))
        code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        if isinstance(code, Exception):
            raise code
        return webhooks.Reply(code, "" if 200 <= code < 300 else "receiver says no")


@pytest.fixture(name="receiver")
def receiver_fixture(monkeypatch):
    fake = FakeReceiver()
    monkeypatch.setattr(webhooks, "TRANSPORT", fake)
    return fake


class LocalReceiver:
    """A real HTTP server on 127.0.0.1 recording what it gets and answering ``status`` after ``delay``."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        self.status = 200
        self.delay = 0.0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((dict(self.headers), body))
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if outer.status < 300 else b"boom " * 200)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, host="127.0.0.1", path="/hooks/acme") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(name="local_receiver")
def local_receiver_fixture():
    server = LocalReceiver()
    yield server
    server.close()
