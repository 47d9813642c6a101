from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from cem.availability import RETRY_AFTER_SECONDS, is_unavailable, unavailable_body
from cem.tenancy import TenantNotSet


def exception_handler(exc, context):
    """DRF's handler, plus the domain errors services raise, as clear 4xx responses, and an
    outage of the database or Redis as 503 + Retry-After (cem/availability.py)."""
    if is_unavailable(exc):
        set_rollback()
        body = unavailable_body(context.get("request"))
        response = Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        if "__all__" in detail:
            detail["non_field_errors"] = detail.pop("__all__")
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, ProtectedError | RestrictedError):
        blockers = sorted(
            {type(o).__name__ for o in exc.protected_objects if o is not None}
            if isinstance(exc, ProtectedError)
            else {type(o).__name__ for o in exc.restricted_objects}
        )
        return Response(
            {"detail": "Still referenced; deactivate it instead of deleting.", "referenced_by": blockers},
            status=status.HTTP_409_CONFLICT,
        )
    elif isinstance(exc, TenantNotSet):
        exc = exceptions.NotFound()
    return drf_exception_handler(exc, context)
