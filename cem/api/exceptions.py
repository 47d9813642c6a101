from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from cem.tenancy import TenantNotSet


def exception_handler(exc, context):
    """DRF's handler, plus the domain errors services raise, as clear 4xx responses."""
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
