"""Error responses that show no internals: a page for people, a problem+json body for the API.

Wired as Django's handler400/403/404/500 in cem/urls.py. Django calls them only when DEBUG is
off, after it has logged the exception (with its traceback) for us; the response carries the
request id so a report can be matched to that log line, and nothing else about the failure.
"""

from __future__ import annotations

import sys

from django.http import HttpResponse, JsonResponse
from django.template import loader
from django.views import defaults

from cem.availability import RETRY_AFTER_SECONDS, is_unavailable, unavailable_body
from cem.middleware import API_PREFIX

TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    500: "Server error",
}
DETAILS = {
    400: "The request could not be understood.",
    403: "You may not do this.",
    404: "Nothing is here.",
    500: "Something went wrong on our side. It has been logged; quote the request id if you report it.",
}


def _is_api(request) -> bool:
    return request.path.startswith((API_PREFIX, "/api/"))


def problem(request, status: int) -> JsonResponse:
    """An RFC 9457 problem body; ``detail`` as in the API's other errors."""
    body = {
        "type": "about:blank",
        "title": TITLES[status],
        "status": status,
        "detail": DETAILS[status],
        "request_id": getattr(request, "request_id", ""),
    }
    return JsonResponse(body, status=status, content_type="application/problem+json")


def bad_request(request, exception):
    if _is_api(request):
        return problem(request, 400)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    if _is_api(request):
        return problem(request, 403)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    if _is_api(request):
        return problem(request, 404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    # Django calls this inside its except block: a database or Redis outage (cem/availability.py)
    # raised outside the API's exception handler (a middleware, a page) is a 503 to wait out.
    if is_unavailable(sys.exc_info()[1]):
        return service_unavailable(request)
    if _is_api(request):
        return problem(request, 500)
    # Rendered without the request's context processors: whatever failed may fail again there.
    html = loader.get_template("500.html").render({"request_id": getattr(request, "request_id", "")})
    return HttpResponse(html, status=500)


def service_unavailable(request):
    if _is_api(request):
        response = JsonResponse(
            unavailable_body(request), status=503, content_type="application/problem+json"
        )
    else:
        html = loader.get_template("503.html").render({"request_id": getattr(request, "request_id", "")})
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
