"""Org A rows behind the respondent pages and the anonymous-link / QR pages, for the cross-tenant sweep."""

import datetime as dt

from django.utils import timezone

from cem.tenancy import tenant_context
from feedback import models as fm
from feedback.tokens import new_token
from tests.feedback.conftest import make_survey


def populate(world):
    org = world.a.org
    survey, version, _ = make_survey(org, name="Sweep links acme")
    with tenant_context(org):
        fm.AnonymousLink.objects.create(
            organization=org, survey=survey, location=world.a.locations["a-n1"], touchpoint=world.a.touchpoint
        )
        _raw, hashed = new_token()
        fm.Invitation.objects.create(
            organization=org,
            survey=survey,
            version=version,
            location=world.a.locations["a-n1"],
            delivery_channel="email",
            token_hash=hashed,
            status=fm.Invitation.Status.SENT,
            send_at=timezone.now(),
            expires_at=timezone.now() + dt.timedelta(days=7),
        )
