from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, SessionAuthentication

from cem.principals import ApiKeyPrincipal


class ApiKeyAuthentication(BaseAuthentication):
    """Accepts the key TenantMiddleware already verified; an invalid key never reaches a view."""

    def authenticate(self, request):
        key = getattr(request._request, "api_key", None)
        if key is None:
            return None
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class TenantSessionAuthentication(SessionAuthentication):
    """Session login (CSRF enforced) that counts only for users with a membership."""

    def authenticate(self, request):
        if getattr(request._request, "membership", None) is None:
            return None
        return super().authenticate(request)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "cem.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "API key: `Authorization: Bearer cem_…`"}


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "cem.api.authentication.TenantSessionAuthentication"
    name = "Session"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
