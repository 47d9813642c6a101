"""Downloads and panels swept across tenants: every page and API route as a CSV (or JSON export),
and every dashboard panel by its real key.

tests/test_cross_tenant_sweep.py requests each page once, without a query, and fills every path
parameter with an id, so ``<slug:panel>`` (the dashboards' panels and their ``?format=csv``
downloads) and the API's ``(?P<panel>…)`` action never reached a view. Here each panel is asked
for by its key, as HTML and as CSV, with org A's ids, by org B's user and API key; each list (page
or API) is asked for as CSV and JSON. Export files (responses, payment batches, bonus periods)
are download actions and pages the main sweep already requests with org A's ids, and
tests/security/test_sweep_media.py reads their bytes.
"""

from __future__ import annotations

import re

import pytest

import tests.test_cross_tenant_sweep as sweep
from cem.api.urls import router
from tests.test_cross_tenant_sweep import MARK, PUBLIC_TOKEN_PARAMS, sweep_world  # noqa: F401 - fixture

FORMATS = ("csv", "json", "xlsx")
SKIP = ("api/", "admin/", "logout", "login", "healthz", "favicon.ico", "r/", "shop/")


def _panel_keys(view_class) -> list[str]:
    return [spec.key for spec in getattr(view_class, "panel_specs", ())]


def _all_panel_keys() -> set[str]:
    keys = set()
    for _route, pattern in sweep._page_patterns():
        keys |= set(_panel_keys(getattr(pattern.callback, "view_class", None)))
    return keys


def _page_urls():
    """(url, takes org A's ids) for every page, each panel by its key."""
    for route, pattern in sweep._page_patterns():
        if route.startswith(SKIP) or route.startswith("learning/certificates/verify"):
            continue
        params = dict(getattr(pattern.pattern, "converters", {}))
        if params and set(params) <= PUBLIC_TOKEN_PARAMS:
            continue
        view_class = getattr(pattern.callback, "view_class", None)
        url = "/" + route
        ids = [name for name in params if name != "panel"]
        if ids:
            obj = sweep._a_object_for(view_class.model)
            for name in ids:
                url = re.sub(rf"<(\w+:)?{name}>", str(obj.pk), url)
        if "panel" in params:
            keys = _panel_keys(view_class)
            assert keys, f"{route} takes a panel but its view lists no panel_specs"
            for key in keys:
                yield re.sub(r"<(\w+:)?panel>", key, url), bool(ids)
        else:
            yield url, bool(ids)


@pytest.fixture
def outsider(sweep_world, client):  # noqa: F811 - the imported fixture
    sweep._org_a_id = sweep_world.a.org.pk
    client.force_login(sweep_world.users["outsider"])
    return client


def test_every_page_and_panel_as_csv_hides_org_a(sweep_world, outsider):  # noqa: F811
    before = sweep._fingerprint()
    panels = checked = 0
    for url, with_ids in _page_urls():
        for suffix in ("", "?format=csv"):
            resp = outsider.get(url + suffix)
            if with_ids:
                assert resp.status_code in (403, 404, 405), (url + suffix, resp.status_code)
            else:
                assert resp.status_code in (200, 301, 302, 400, 403, 404, 405), (
                    url + suffix,
                    resp.status_code,
                )
            body = b"".join(resp.streaming_content) if resp.streaming else resp.content
            assert MARK not in body.lower(), f"{url + suffix} leaked org A data"
            checked += 1
        panels += "/panels/" in url
    assert panels >= 20 and checked >= 100, (panels, checked)
    assert sweep._fingerprint() == before


def test_the_panel_urls_swept_are_real(sweep_world, client):  # noqa: F811
    """The control: org A's admin gets each panel's CSV at the URLs the sweep built."""
    sweep._org_a_id = sweep_world.a.org.pk
    client.force_login(sweep_world.users["admin"])
    served = [
        url
        for url, _ in _page_urls()
        if "/panels/" in url and client.get(url + "?format=csv").status_code == 200
    ]
    assert len(served) >= 20, served


@pytest.mark.parametrize("auth", ["session", "key"])
def test_api_lists_as_csv_and_json_and_panels_by_key_hide_org_a(sweep_world, api, auth):  # noqa: F811
    world = sweep_world
    sweep._org_a_id = world.a.org.pk
    client = {"session": api(world.users["outsider"]), "key": api(key=world.b.api_key)}[auth]
    panel_keys = sorted(_all_panel_keys())
    panel_actions = 0
    for prefix, viewset, _basename in router.registry:
        base = f"/api/v1/{prefix}/"
        for fmt in FORMATS:
            resp = client.get(f"{base}?format={fmt}")
            assert resp.status_code < 500, (base, fmt, resp.status_code)
            body = b"".join(resp.streaming_content) if getattr(resp, "streaming", False) else resp.content
            assert MARK not in body.lower(), f"{base}?format={fmt} leaked org A data"
        for extra in viewset.get_extra_actions():
            if "(?P<" not in extra.url_path or not extra.detail:
                continue
            obj = sweep._a_object_for(viewset.queryset.model)
            for key in panel_keys:
                path = re.sub(r"\(\?P<\w+>[^)]*\)", key, extra.url_path)
                for fmt in ("", "?format=csv"):
                    resp = client.get(f"{base}{obj.pk}/{path}/{fmt}")
                    assert resp.status_code in (403, 404), (base, path, resp.status_code)
                    assert MARK not in resp.content.lower()
            panel_actions += 1
    assert panel_actions >= 1
