"""The published OpenAPI schema, loaded through the app itself, and the checks every response must pass.

Shared by the schemathesis fuzz (test_api_schema_fuzz.py) and the regression tests of what it found
(test_api_regressions.py).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re

import schemathesis
from django.core.wsgi import get_wsgi_application
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import factories as f
from tests.conftest import World, build_world

SCHEMA_URL = "/api/schema/"
_TRACEBACK = re.compile(rb"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")


@functools.cache
def load_schema():
    """The schema as /api/schema/ serves it, bound to the WSGI app (requests run in process)."""
    return schemathesis.openapi.from_wsgi(SCHEMA_URL, get_wsgi_application())


@schemathesis.check
def no_traceback_in_response(ctx, response, case):
    """Internals stay in the server log: no response shows a stack, whatever its status."""
    if _TRACEBACK.search(response.content or b""):
        raise AssertionError("The response body shows a traceback")


@schemathesis.check
def bad_request_names_the_field(ctx, response, case):
    """A 400 says what is wrong: a JSON object keyed by the field (or non_field_errors / detail)."""
    if response.status_code != 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not body:
        raise AssertionError(f"A 400 without the field at fault: {response.content[:200]!r}")


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    no_traceback_in_response,
    bad_request_names_the_field,
]


def _populators():
    import tests

    for info in pkgutil.walk_packages(tests.__path__, prefix="tests."):
        if info.name.rsplit(".", 1)[-1].startswith("sweep_"):
            yield importlib.import_module(info.name).populate


def seed() -> World:
    """Both tenants, and in org A a row behind every API route (the cross-tenant sweep's populators)."""
    world = build_world()
    org = world.a.org
    f.SegmentFactory(organization=org, name="acme-segment")
    f.BrandMessageFactory(organization=org, title="acme-brand")
    f.TeamFactory(organization=org, name="acme-team", location=world.a.locations["a-n1"])
    for populate in _populators():
        populate(world)
    return world


def call(label: str, headers: dict, **case_kwargs):
    """Send one request to the operation named by its label ("GET /api/v1/…") and run CHECKS on it."""
    operation = load_schema().find_operation_by_label(label)
    assert operation is not None, f"{label} is not in the schema"
    return operation.Case(**case_kwargs).call_and_validate(headers=headers, checks=CHECKS)
