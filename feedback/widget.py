"""JSON endpoints behind the embeddable pop-up (``static/feedback/widget.js``).

``GET /r/w/<public_key>/survey.json`` gives the current version's questions in the visitor's
language; ``POST /r/w/<public_key>/responses`` stores one response (source "widget").

The public key names the survey and, through it, the tenant (one narrow ``unscoped()`` look-up);
it is not a secret, so what protects the survey is: CORS and an Origin check limited to
``survey.allowed_origins`` (never ``*``), and the ballot-stuffing rules of ``feedback.ballot``.
CSRF does not apply (cross-origin, no cookies, no session): the views are csrf_exempt.

Device identity: third-party cookies are often blocked, so the device token (signed, issued by
survey.json) is kept by the script in the host page's localStorage and sent back in the body as
``device``; a submission without a valid token is refused, so every counted response belongs to
a device we issued.
"""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.utils.cache import patch_vary_headers
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from cem.principals import Actor
from cem.tenancy import tenant_context, unscoped
from feedback import ballot
from feedback.models import QUESTION_SCALES, QuestionType, Response, ResponseSource, Survey
from feedback.respondent_text import choose_language, msg, pick, translate_error
from feedback.services import Dimensions, current_version, response_record, version_questions

MAX_BODY = 64 * 1024
PREFLIGHT_MAX_AGE = 600


def _normal_origin(origin: str) -> str:
    return (origin or "").strip().rstrip("/").lower()


def origin_allowed(survey: Survey, origin: str) -> bool:
    if not origin or origin == "null":
        return False
    allowed = {_normal_origin(o) for o in survey.allowed_origins or [] if o and o.strip() != "*"}
    return _normal_origin(origin) in allowed


def _json(data: dict, status: int = 200, *, origin: str = "", allowed: bool = False) -> JsonResponse:
    response = JsonResponse(data, status=status)
    patch_vary_headers(response, ["Origin"])
    if allowed:
        response["Access-Control-Allow-Origin"] = origin
    response["Cache-Control"] = "no-store"
    return response


def _question_json(question, lang: str, default_locale: str, number: int) -> dict:
    item = {
        "key": question.key,
        "type": question.type,
        "required": question.required,
        "page": question.page,
        "text": pick(question.text, lang, default_locale) or msg(lang, "question_n", n=number),
        "help": pick(question.help_text, lang, default_locale),
        "show_if": question.show_if or None,
    }
    if question.type in (QuestionType.SINGLE, QuestionType.MULTI):
        item["choices"] = [
            {
                "value": str(c["value"]),
                "label": pick(c.get("label"), lang, default_locale) or str(c["value"]).replace("_", " "),
            }
            for c in question.choices or []
            if isinstance(c, dict) and c.get("value") not in (None, "")
        ]
    elif question.type == QuestionType.FCR:
        item["choices"] = [
            {"value": "yes", "label": msg(lang, "yes")},
            {"value": "no", "label": msg(lang, "no")},
        ]
    elif question.type != QuestionType.TEXT:
        low, high = QUESTION_SCALES.get(
            question.type,
            (
                question.scale_min if question.scale_min is not None else 1,
                question.scale_max if question.scale_max is not None else 5,
            ),
        )
        item["scale"] = {"min": low, "max": high}
        if question.type == QuestionType.CSAT:
            item["scale"]["labels"] = {str(n): msg(lang, f"csat_{n}") for n in range(1, 6)}
        else:
            prefix = {"nps": "nps", "ces": "ces"}.get(question.type, "rating")
            item["scale"]["low"] = msg(lang, f"{prefix}_low")
            item["scale"]["high"] = msg(lang, f"{prefix}_high")
    return item


@method_decorator(csrf_exempt, name="dispatch")
class _WidgetView(View):
    """Resolve the survey (and so the tenant) from the public key; CORS for allowed origins only."""

    model = Survey  # what the key resolves to (read by the cross-tenant page sweep)
    allow_methods = "GET, OPTIONS"

    def dispatch(self, request, *args, **kwargs):
        key = kwargs.get("public_key", "")
        origin = request.headers.get("Origin", "")
        found = None
        if 8 <= len(key) <= 40:
            with unscoped():
                found = Survey.objects.filter(public_key=key).values_list("organization_id", "pk").first()
        if found is None:
            return _json({"detail": "Unknown survey key."}, 404)
        org_id, pk = found
        with tenant_context(org_id):
            self.survey = Survey.objects.select_related("organization").get(pk=pk)
            self.origin = origin
            self.allowed = origin_allowed(self.survey, origin)
            if origin and not self.allowed:
                return _json({"detail": "This origin may not use this survey."}, 403)
            return super().dispatch(request, *args, **kwargs)

    def options(self, request, *args, **kwargs):
        if not self.allowed:
            return _json({"detail": "This origin may not use this survey."}, 403)
        response = _json({}, 200, origin=self.origin, allowed=True)
        response["Access-Control-Allow-Methods"] = self.allow_methods
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
        return response

    def reply(self, data: dict, status: int = 200) -> JsonResponse:
        return _json(data, status, origin=self.origin, allowed=self.allowed)

    def language(self, request, requested: str = "") -> str:
        return choose_language(
            self.survey,
            explicit=requested or request.GET.get("lang", ""),
            accept_language=request.headers.get("Accept-Language", ""),
        )


class WidgetSurveyView(_WidgetView):
    http_method_names = ["get", "options"]

    def get(self, request, *args, **kwargs):
        survey = self.survey
        lang = self.language(request)
        if survey.status != Survey.Status.ACTIVE:
            return self.reply({"detail": msg(lang, "closed_body"), "code": "closed"}, 410)
        try:
            version = current_version(survey)
        except ValidationError:
            return self.reply({"detail": msg(lang, "closed_body"), "code": "closed"}, 410)
        questions = version_questions(version)
        device_token = request.GET.get("device", "")
        device_id = ballot.device_id_from(device_token)
        answered_today = False
        if device_id is None:
            device_token = ballot.new_device_token()
        else:
            start, end = ballot.local_day_bounds(survey.organization)
            answered_today = Response.objects.filter(
                survey=survey,
                device_hash=ballot.device_hash(device_id),
                submitted_at__gte=start,
                submitted_at__lt=end,
            ).exists()
        return self.reply(
            {
                "key": survey.public_key,
                "name": survey.name,
                "lang": lang,
                "device": device_token,
                "answered_today": answered_today,
                "questions": [
                    _question_json(q, lang, survey.default_locale, i + 1) for i, q in enumerate(questions)
                ],
                "texts": {
                    k: msg(lang, k)
                    for k in (
                        "submit",
                        "close",
                        "thanks_title",
                        "thanks_body",
                        "today_body",
                        "required",
                        "yes",
                        "no",
                    )
                },
            }
        )


class WidgetSubmitView(_WidgetView):
    http_method_names = ["post", "options"]
    allow_methods = "POST, OPTIONS"

    def post(self, request, *args, **kwargs):
        survey = self.survey
        # Browsers always send Origin on a cross-origin (and same-origin) POST; without an allowed
        # one this is not our widget.
        if not self.allowed:
            return self.reply({"detail": "This origin may not use this survey."}, 403)
        # Content-Length first: request.body would read up to DATA_UPLOAD_MAX_MEMORY_SIZE (32 MB).
        if ballot.content_length(request) > MAX_BODY or len(request.body) > MAX_BODY:
            return self.reply({"detail": "Request body too large."}, 413)
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return self.reply({"detail": "Body must be JSON."}, 400)
        if not isinstance(body, dict) or not isinstance(body.get("answers"), dict):
            return self.reply({"detail": "Body must be a JSON object with an 'answers' object."}, 400)
        lang = self.language(request, str(body.get("lang") or ""))
        if survey.status != Survey.Status.ACTIVE:
            return self.reply({"detail": msg(lang, "closed_body"), "code": "closed"}, 410)
        device_id = ballot.device_id_from(str(body.get("device") or ""))
        if device_id is None:
            return self.reply(
                {"detail": "Missing or invalid device token; fetch survey.json first.", "code": "device"}, 400
            )
        hashed_ip = ballot.ip_hash(request)
        wait = ballot.rate_limited(survey.pk, hashed_ip)
        if wait:
            response = self.reply({"detail": msg(lang, "slow_down_body"), "code": "rate_limited"}, 429)
            response["Retry-After"] = str(wait)
            return response
        hashed_device = ballot.device_hash(device_id)
        try:
            ballot.record_once_per_day(
                organization=survey.organization,
                survey=survey,
                hashed_device=hashed_device,
                record=lambda: response_record(
                    organization=survey.organization,
                    actor=Actor.system(),
                    survey=survey,
                    values=body["answers"],
                    source=ResponseSource.WIDGET,
                    dimensions=Dimensions(),
                    locale=lang,
                    device_hash=hashed_device,
                    ip_hash=hashed_ip,
                ),
            )
        except ballot.AlreadyAnswered:
            return self.reply({"detail": msg(lang, "today_body"), "code": "already_answered"}, 409)
        except ValidationError as exc:
            found = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
            errors = {k: [translate_error(lang, m) for m in v] for k, v in found.items()}
            return self.reply({"detail": msg(lang, "fix_errors"), "errors": errors}, 400)
        return self.reply(
            {"ok": True, "title": msg(lang, "thanks_title"), "message": msg(lang, "thanks_body")}, 201
        )
