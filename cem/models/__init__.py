from .access import ApiKey, Membership, Role
from .audit import AuditLog
from .customers import Customer, Segment
from .events import HandlerDelivery, IdempotencyRecord, OutboxEvent
from .hierarchy import Employee, EmployeeAssignment, Location, Region, Team
from .interactions import Interaction, InteractionEmployee
from .organization import Organization
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
    "BrandMessage",
    "Channel",
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
    "Region",
    "Role",
    "Segment",
    "SkillCategory",
    "Standard",
    "Team",
    "Touchpoint",
    "WebhookDelivery",
    "WebhookEndpoint",
]
