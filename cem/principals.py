"""Who is calling: a session user with a membership, or an integrator's API key."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from django.db.models.base import ModelState
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from cem.models import ApiKey, Membership, Organization, Role
from cem.tenancy import unscoped


@dataclass(frozen=True)
class Actor:
    """The author of a write, recorded in the audit log."""

    user_id: int | None = None
    api_key_id: int | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls()

    @classmethod
    def from_request(cls, request) -> Actor:
        key = getattr(request, "api_key", None)
        if key is not None:
            return cls(api_key_id=key.pk)
        user = getattr(request, "user", None)
        return cls(user_id=user.pk if user is not None and user.is_authenticated else None)


class ApiKeyPrincipal:
    """Stands in for request.user when an API key authenticates (DRF wants a user object)."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.username = f"apikey:{api_key.prefix}"

    def __str__(self):
        return self.username


# Verified keys, by the hash of the whole token, for a few seconds: an integrator's every call
# would otherwise pay a look-up (and two tenant switches) before anything else. Revoking a key
# forgets it at once in the process that revoked it; other web processes stop accepting it
# within API_KEY_CACHE_SECONDS. Only tokens that verified are kept, so a wrong secret never
# skips the database check, and the cache is bounded by the number of live keys.
API_KEY_CACHE_SECONDS = 5.0
_verified: dict[str, tuple[float, ApiKey]] = {}


def api_key_from_header(header: str) -> ApiKey | None:
    """Return the active key for an ``Authorization: Bearer cem_<prefix>_<secret>`` header.

    Each call gets its own copy of the key and its organization, so nothing a request does to
    them outlives it.
    """
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    token = token.strip()
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != ApiKey.PREFIX:
        return None
    hashed = ApiKey.hash_secret(token)
    now = time.monotonic()
    cached = _verified.get(hashed)
    if cached is not None and cached[0] > now:
        return _copy(cached[1])
    # Authentication happens before a tenant is known: the prefix is a global lookup key.
    with unscoped():
        key = ApiKey.objects.select_related("organization").filter(prefix=parts[1]).first()
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.hashed_key, hashed):
        return None
    _verified[hashed] = (now + API_KEY_CACHE_SECONDS, key)
    return _copy(key)


def _copy(key: ApiKey) -> ApiKey:
    copied = _shallow(key)
    copied._state.fields_cache["organization"] = _shallow(key.organization)
    return copied


def _shallow(instance):
    # copy.copy goes through __reduce_ex__, several times slower than this on every API call.
    copied = instance.__class__.__new__(instance.__class__)
    copied.__dict__.update(instance.__dict__)
    copied._state = ModelState()
    copied._state.db, copied._state.adding = instance._state.db, False
    return copied


def forget_api_key(key_id: int) -> None:
    """Drop a key from this process's cache of verified keys (revocation, deletion)."""
    for hashed, (_, key) in list(_verified.items()):
        if key.pk == key_id:
            _verified.pop(hashed, None)


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
def _forget_changed_key(sender, instance, **kwargs):
    forget_api_key(instance.pk)


def touch_api_key(key: ApiKey) -> None:
    now = timezone.now()
    # Writing on every call would make the key row a hot spot; a minute's precision is plenty.
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        for _, cached in [v for v in _verified.values() if v[1].pk == key.pk]:
            cached.last_used_at = now


def memberships_of(user) -> list[Membership]:
    if user is None or not user.is_authenticated:
        return []
    with unscoped():
        return list(
            Membership.objects.select_related("organization")
            .filter(user_id=user.pk, is_active=True)
            .order_by("organization__name")
        )


def pick_membership(memberships: list[Membership], organization_id: int | None) -> Membership | None:
    for membership in memberships:
        if membership.organization_id == organization_id:
            return membership
    return memberships[0] if memberships else None


def organization_for(api_key: ApiKey) -> Organization:
    return api_key.organization


INTEGRATOR_ROLE = Role.INTEGRATOR
