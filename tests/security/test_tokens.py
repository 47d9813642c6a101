"""Tokens in links and keys cannot be guessed, are stored only as hashes, and signed ones cannot
be altered.

- Invitation links: a random placeholder (256 bits from ``secrets``) until sent, then a token
  derived as HMAC-SHA256 under SECRET_KEY (256 bits; the reminder carries the same link without
  the raw token ever being stored). Only SHA-256 hashes reach the database.
- Anonymous links, widget keys, API keys and webhook secrets: ``secrets`` with ≥ 128 bits.
- Unsubscribe links: signed with a purpose salt; any change fails and opts nobody out.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets

import pytest
from django.core import signing
from django.test import Client, override_settings
from django.utils import timezone

from cem.models import ApiKey
from cem.models.webhooks import new_webhook_secret
from cem.tenancy import tenant_context
from feedback import invitations
from feedback import models as fm
from feedback.tokens import hash_token, new_token
from feedback.unsubscribe import read_unsubscribe_token, unsubscribe_token
from tests.feedback.conftest import make_survey

MIN_BITS = 128


def _bits_of_urlsafe(token: str) -> int:
    return len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8


@pytest.fixture
def drawn(monkeypatch):
    """Every secrets.token_urlsafe/token_hex call: the bytes asked for."""
    calls = []
    real_urlsafe, real_hex = secrets.token_urlsafe, secrets.token_hex

    def urlsafe(nbytes=None):
        calls.append(nbytes)
        return real_urlsafe(nbytes)

    def hexed(nbytes=None):
        calls.append(nbytes)
        return real_hex(nbytes)

    monkeypatch.setattr(secrets, "token_urlsafe", urlsafe)
    monkeypatch.setattr(secrets, "token_hex", hexed)
    return calls


def test_unsent_invitation_placeholder_is_drawn_from_secrets_and_hashed(drawn):
    raw, stored = new_token()
    assert drawn == [32] and _bits_of_urlsafe(raw) == 256
    assert stored == hashlib.sha256(raw.encode()).hexdigest() and raw not in stored


def test_public_link_and_widget_tokens_are_drawn_from_secrets(world, drawn):
    survey, _, _ = make_survey(world.a.org, name="Tokens")
    with tenant_context(world.a.org):
        link = fm.AnonymousLink.objects.create(
            organization=world.a.org, survey=survey, location=world.a.locations["a-n1"]
        )
    assert len(drawn) == 2 and all(n * 8 >= MIN_BITS for n in drawn)
    for token in (survey.public_key, link.token):
        assert _bits_of_urlsafe(token) >= MIN_BITS


def test_api_keys_and_webhook_secrets_are_drawn_from_secrets(drawn):
    full, _prefix, hashed = ApiKey.generate()
    assert hashed == hashlib.sha256(full.encode()).hexdigest() and full not in hashed
    secret = new_webhook_secret()
    assert _bits_of_urlsafe(secret.removeprefix("whsec_")) == 256
    assert sum(n for n in drawn if n and n >= 16) * 8 >= 2 * 256


@pytest.fixture
def sent(world):
    org = world.a.org
    survey, version, _ = make_survey(org, name="Sent links")
    with tenant_context(org):
        made = []
        for _ in range(3):
            inv = fm.Invitation.objects.create(
                organization=org,
                survey=survey,
                version=version,
                location=world.a.locations["a-n1"],
                delivery_channel="email",
                token_hash=new_token()[1],
                status=fm.Invitation.Status.SENT,
                send_at=timezone.now(),
                expires_at=timezone.now() + dt.timedelta(days=7),
            )
            raw = invitations.invitation_token(inv)
            fm.Invitation.objects.filter(pk=inv.pk).update(token_hash=hash_token(raw))
            made.append((inv.pk, raw))
    return world, made


def test_sent_link_tokens_are_256_bit_keyed_and_only_their_hash_is_stored(sent):
    world, made = sent
    raws = [raw for _, raw in made]
    assert len(set(raws)) == len(raws)
    assert all(_bits_of_urlsafe(raw) == 256 for raw in raws)
    with tenant_context(world.a.org):
        for pk, raw in made:
            row = fm.Invitation.objects.filter(pk=pk).values().get()
            assert row["token_hash"] == hash_token(raw)
            assert raw not in json.dumps(row, default=str)  # nowhere in the row
            # Keyed by SECRET_KEY: the database alone (ids, times) does not rebuild the link.
            inv = fm.Invitation.objects.get(pk=pk)
            with override_settings(SECRET_KEY="another-" + "k" * 50):
                assert invitations.invitation_token(inv) != raw
            assert Client().get(f"/r/i/{raw}/").status_code == 200
            assert Client().get(f"/r/i/{raw[:-1]}{'A' if raw[-1] != 'A' else 'B'}/").status_code == 404


# --- unsubscribe: signed --------------------------------------------------------------------


def test_unsubscribe_token_cannot_be_repointed_or_borrowed(world, client):
    org, customer = world.a.org, world.a.customer
    good = unsubscribe_token(org.pk, customer.pk)
    payload, signature = good.split(":", 1)
    # The same signature over another customer's id.
    other_payload = signing.dumps([org.pk, customer.pk + 1], salt="feedback.unsubscribe").split(":", 1)[0]
    repointed = f"{other_payload}:{signature}"
    assert read_unsubscribe_token(repointed) is None
    # Signed for another purpose (the same SECRET_KEY, another salt).
    borrowed = signing.dumps([org.pk, customer.pk], salt="feedback.ballot.device")
    assert read_unsubscribe_token(borrowed) is None
    # Signed with another key.
    with override_settings(SECRET_KEY="another-" + "k" * 50):
        forged = unsubscribe_token(org.pk, customer.pk)
    assert read_unsubscribe_token(forged) is None
    for token in (repointed, borrowed, forged, payload):
        assert client.post(f"/r/u/{token}/").status_code == 404
    with tenant_context(org):
        customer.refresh_from_db()
    assert customer.opted_out_at is None
    assert read_unsubscribe_token(good) == (org.pk, customer.pk)
