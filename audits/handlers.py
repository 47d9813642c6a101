"""Event handlers of the audits app (registered with cem.events.handles on import)."""

from audits import (
    certification,
    notifications,  # noqa: F401 - AuditPublished: email the store's managers
)
from cem.events import handles


@handles("ShopperApproved", name="audits.certification_assign_after_approval")
def certification_assign_after_approval(event) -> None:
    certification.assign_after_approval(
        organization=event.organization_id, shopper_id=event.payload.get("shopper_id")
    )


@handles("PathCompleted", name="audits.certify_after_path")
def certify_after_path(event) -> None:
    """A learner finished a path; if it is a programme's certification path and the learner an
    approved shopper, they are certified (once per certificate, even if the event is replayed)."""
    payload = event.payload
    certification.certify_after_path(
        organization=event.organization_id,
        path_id=payload.get("path_id"),
        user_id=payload.get("user_id"),
        certificate_id=payload.get("certificate_id"),
    )
