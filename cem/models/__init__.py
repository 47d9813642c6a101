from .access import ApiKey, Membership, Role
from .audit import AuditLog
from .customers import Customer, Segment
from .events import BeatClaim, HandlerDelivery, IdempotencyRecord, OutboxEvent
from .hierarchy import Employee, EmployeeAssignment, Location, Region, Team
from .interactions import Interaction, InteractionEmployee
from .organization import Organization
from .privacy import ConsentRecord, PrivacyRequest, RetentionPolicy, SuppressedIdentifier
from .standards import (
    BrandMessage,
    Channel,
    CustomerExpectation,
    InteractionCategory,
    SkillCategory,
    Standard,
    Touchpoint,
)
from .webhooks import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "AuditLog",
    "BeatClaim",
    "BrandMessage",
    "Channel",
    "ConsentRecord",
    "Customer",
    "CustomerExpectation",
    "Employee",
    "EmployeeAssignment",
    "HandlerDelivery",
    "IdempotencyRecord",
    "Interaction",
    "InteractionCategory",
    "InteractionEmployee",
    "Location",
    "Membership",
    "Organization",
    "OutboxEvent",
    "PrivacyRequest",
    "Region",
    "RetentionPolicy",
    "Role",
    "Segment",
    "SkillCategory",
    "Standard",
    "SuppressedIdentifier",
    "Team",
    "Touchpoint",
    "WebhookDelivery",
    "WebhookEndpoint",
]
