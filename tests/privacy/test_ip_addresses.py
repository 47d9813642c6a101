"""No raw IP address is stored: no model has an address field of its own, django-axes gets a
pseudonym, and a real anonymous survey POST and a failed login leave the address nowhere."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
import time_machine
from django.apps import apps
from django.db import models
from django.test import override_settings

from cem.ip_hashing import hash_ip
from cem.tenancy import tenant_context, unscoped
from feedback import models as fm
from tests.feedback.conftest import make_survey
from tests.privacy.helpers import NOW, db_columns_containing

pytestmark = pytest.mark.django_db
ADDRESS = "203.0.113.77"
_IP_NAMES = ("ip", "ip_address", "ipaddress", "remote_addr", "client_ip", "address_ip")


def test_no_model_stores_an_address_except_axes_pseudonyms():
    offenders = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            is_ip_field = isinstance(field, models.GenericIPAddressField)
            looks_like_ip = field.name.lower() in _IP_NAMES
            if (is_ip_field or looks_like_ip) and model._meta.app_label != "axes":
                offenders.append(f"{model._meta.label}.{field.name}")
    assert offenders == []


def test_the_hash_rotates_and_its_salt_is_never_in_the_database():
    assert hash_ip(ADDRESS) == hash_ip(ADDRESS)
    with time_machine.travel(NOW + dt.timedelta(days=2), tick=False):
        later = hash_ip(ADDRESS)
    assert later != hash_ip(ADDRESS)
    assert ADDRESS not in later


def test_an_anonymous_response_and_a_failed_login_leave_no_address(world, client):
    org = world.a.org
    survey, _, _ = make_survey(org, name="QR survey", touchpoint=world.a.touchpoint)
    with tenant_context(org):
        link = fm.AnonymousLink.objects.create(
            organization=org, survey=survey, location=world.a.locations["a-n1"]
        )
    url = f"/r/a/{link.token}/"
    client.get(url, REMOTE_ADDR=ADDRESS)
    resp = client.post(url, {"q-nps": "9", "q-comment": "fine"}, REMOTE_ADDR=ADDRESS)
    assert resp.status_code == 200 and 'data-testid="thank-you"' in resp.content.decode()
    with unscoped():
        [response] = fm.Response.objects.filter(survey=survey)
    assert response.ip_hash == hash_ip(ADDRESS)

    with override_settings(AXES_ENABLED=True):
        resp = client.post(
            "/login/", {"username": "admin@acme.test", "password": "wrong"}, REMOTE_ADDR=ADDRESS
        )
    assert resp.status_code in (200, 429)
    from axes.models import AccessAttempt

    attempts = list(AccessAttempt.objects.values_list("ip_address", flat=True))
    assert attempts and all(ipaddress.ip_address(a) in ipaddress.ip_network("fd00::/8") for a in attempts)
    assert db_columns_containing(ADDRESS) == []
