"""Org A rows behind the webhook routes (``/api/v1/webhooks/``, ``/api/v1/webhook-deliveries/``,
``/manage/webhooks/…``): an endpoint and one delivery of it."""

from __future__ import annotations


def populate(world) -> None:
    from cem import webhooks
    from cem.models import WebhookDelivery
    from cem.principals import Actor
    from cem.tenancy import tenant_context

    org = world.a.org
    with tenant_context(org):
        # Port 9 (discard) refuses at once: nothing in the sweep can reach a real receiver.
        endpoint, _secret = webhooks.endpoint_create(
            organization=org,
            actor=Actor.system(),
            url="http://127.0.0.1:9/acme-webhook",
            description="acme sweep webhook",
            event_types=["CaseOpened"],
        )
        WebhookDelivery.objects.create(
            organization=org,
            endpoint=endpoint,
            event_id=1,
            event_type="CaseOpened",
            payload={"id": 1, "type": "CaseOpened", "data": {"note": "acme case"}},
            status=WebhookDelivery.Status.GAVE_UP,
            attempts=3,
            last_status_code=500,
            last_error="HTTP 500: acme receiver down",
        )
