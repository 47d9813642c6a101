from rest_framework.permissions import SAFE_METHODS, BasePermission

from cem.models import Role
from cem.permissions import role_can

_VERB_BY_METHOD = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


def caller_role(request) -> str | None:
    if getattr(request, "auth", None) is not None and getattr(request._request, "api_key", None) is not None:
        return Role.INTEGRATOR
    membership = getattr(request._request, "membership", None)
    return membership.role if membership is not None else None


class RolePermission(BasePermission):
    """Role → actions (cem.permissions), plus the API key's app scopes for integrators.

    A view names its ``resource``; an action may override the verb with ``action_verbs``
    (e.g. a POST that only reads, or a custom action that changes).
    """

    message = "Your role does not allow this action."

    def has_permission(self, request, view):
        role = caller_role(request)
        if role is None or getattr(request._request, "tenant", None) is None:
            return False
        resource = getattr(view, "resource", None)
        if resource is None:
            return False
        verb = getattr(view, "action_verbs", {}).get(getattr(view, "action", None)) or _VERB_BY_METHOD.get(
            request.method
        )
        if verb is None or not role_can(role, f"{resource}.{verb}"):
            return False
        key = getattr(request._request, "api_key", None)
        if key is not None:
            write = verb != "view" and request.method not in SAFE_METHODS
            return key.has_scope(getattr(view, "api_app", "core"), write=write)
        return True
