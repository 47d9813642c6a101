"""Per-request facts that services and the audit log need without threading them through."""

from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("cem_request_id", default="")
