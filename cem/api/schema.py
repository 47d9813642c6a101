"""OpenAPI post-processing: the error responses every operation can give, documented once.

drf-spectacular documents the success response of each view; the errors come from shared code
(TenantMiddleware's 401, RolePermission's 403, the scoped lookup's 404, the rate limit's 429,
cem.api.exceptions' 400/409, DRF's 415), so they are added here rather than on each of 400-odd
operations. An error a view documents itself keeps its description; it gains the body schema if
it has none.
"""

from __future__ import annotations

ERROR_DETAIL = "ErrorDetail"
VALIDATION_ERROR = "ValidationError"

_SCHEMAS = {
    ERROR_DETAIL: {
        "type": "object",
        "description": "Why the request failed, in `detail`; some errors add fields (e.g. `referenced_by`).",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    },
    VALIDATION_ERROR: {
        "type": "object",
        "description": "Each key names a field at fault (`non_field_errors`: the object as a whole; "
        "`detail`: a body that could not be parsed). Values are lists of messages, or the same shape "
        "for nested objects and lists.",
        "additionalProperties": {},
        "minProperties": 1,
    },
}

_DESCRIPTIONS = {
    "400": "Invalid input: the fields at fault",
    "401": "Missing, invalid, revoked or malformed API key",
    "403": "The role or the API key's scopes do not allow this",
    "404": "No such object in your organization (or a page or cursor that is not one)",
    "409": "Still referenced, or changed since it was read",
    "415": "The body's Content-Type is missing or not one this operation takes",
    "429": "Rate limit exceeded; see Retry-After",
}

_METHODS = ("get", "post", "put", "patch", "delete")
# Errors raised before a view runs (a URL no route matches, e.g. /regions/abc/; a request Django
# refuses) are answered by cem.errors as RFC 9457 problem+json, with `detail` too.
_DJANGO_HANDLED = {"400", "403", "404"}


def _ref(name: str) -> dict:
    return {"schema": {"$ref": f"#/components/schemas/{name}"}}


def _content(status: str) -> dict:
    content = {"application/json": _ref(VALIDATION_ERROR if status == "400" else ERROR_DETAIL)}
    if status in _DJANGO_HANDLED:
        content["application/problem+json"] = _ref(ERROR_DETAIL)
    return content


def _statuses(path: str, method: str, operation: dict) -> list[str]:
    statuses = ["401", "403", "429"]
    parameters = operation.get("parameters", [])
    takes_input = "requestBody" in operation or any(p.get("in") == "query" for p in parameters)
    if takes_input:
        statuses.append("400")
    if "requestBody" in operation:
        statuses.append("415")
    if "{" in path or any(p.get("name") in ("page", "cursor") for p in parameters):
        statuses.append("404")
    if method == "delete":
        statuses.append("409")
    return statuses


def document_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {}).update(_SCHEMAS)
    for path, item in result.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method, operation):
                responses.setdefault(status, {"description": _DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status.startswith("4") and "content" not in response:
                    response["content"] = _content(status)
    return result
