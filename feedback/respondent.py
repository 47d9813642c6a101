"""Public respondent pages: personal invitation links (``/r/i/<token>/``) and anonymous links /
QR codes (``/r/a/<token>/``). No login and so no tenant from the session: the tenant comes from
the token alone, found by one narrow ``unscoped()`` look-up of (organization id, row id); the rest
of the request — loading, validating, writing, rendering — runs inside ``tenant_context(org)``, so
the scoped managers and row-level security keep it inside that organization.

GET only ever reads (mail scanners and link previews open links); answers are stored by POST,
through ``feedback.services.response_record`` only. Multi-page surveys page on the server: the
answers of earlier pages travel in a signed hidden field bound to this link, so no JavaScript and
no session are needed, and a respondent cannot forge answers they were never asked.
"""

from __future__ import annotations

import json

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.shortcuts import render
from django.utils import timezone
from django.views import View

from cem import public_throttle
from cem.models import Interaction, Touchpoint
from cem.principals import Actor
from cem.tenancy import tenant_context, unscoped
from feedback import ballot
from feedback.answers import clean_value, is_shown
from feedback.models import AnonymousLink, Invitation, QuestionType, Response, ResponseSource, Survey
from feedback.respondent_text import choose_language, msg, pick, survey_languages, translate_error
from feedback.services import Dimensions, current_version, response_record, version_questions
from feedback.tokens import hash_token

FIELD_PREFIX = "q-"
MAX_FIELD = 6000
# A page of the form, with the signed state of earlier pages, is far below this; the site-wide
# DATA_UPLOAD_MAX_MEMORY_SIZE (32 MB, for the bulk API) is no limit for an anonymous public form.
MAX_BODY = 1024 * 1024
_OPEN_INVITATION = (Invitation.Status.SCHEDULED, Invitation.Status.SENT)
_LANGUAGE_NAMES = {"en": "English", "es": "Español", "fr": "Français", "de": "Deutsch", "pt": "Português"}


class Unavailable(Exception):
    """The link cannot take an answer now; ``kind`` names the friendly page to show."""

    def __init__(self, kind: str, status: int, retry_after: int | None = None):
        super().__init__(kind)
        self.kind, self.status, self.retry_after = kind, status, retry_after


# --- the form: questions of one page, in one language -----------------------------------------


def _scale_options(question, lang: str) -> tuple[list[dict], str, str]:
    qtype = question.type
    if qtype == QuestionType.NPS:
        return (
            [{"value": str(n), "label": str(n)} for n in range(11)],
            msg(lang, "nps_low"),
            msg(lang, "nps_high"),
        )
    if qtype == QuestionType.CSAT:
        options = [{"value": str(n), "label": str(n), "caption": msg(lang, f"csat_{n}")} for n in range(1, 6)]
        return options, "", ""
    if qtype == QuestionType.CES:
        return (
            [{"value": str(n), "label": str(n)} for n in range(1, 8)],
            msg(lang, "ces_low"),
            msg(lang, "ces_high"),
        )
    low = question.scale_min if question.scale_min is not None else 1
    high = question.scale_max if question.scale_max is not None else 5
    options = [{"value": str(n), "label": str(n)} for n in range(low, high + 1)]
    return options, msg(lang, "rating_low"), msg(lang, "rating_high")


def _question_view(question, number: int, lang: str, default_locale: str, value, errors) -> dict:
    qtype = question.type
    item = {
        "key": question.key,
        "name": FIELD_PREFIX + question.key,
        "type": qtype,
        "label": pick(question.text, lang, default_locale) or msg(lang, "question_n", n=number),
        "help": pick(question.help_text, lang, default_locale),
        "required": question.required,
        "errors": [translate_error(lang, e) for e in errors],
        "value": "" if isinstance(value, list) else (value or ""),
        "show_if": json.dumps(question.show_if) if question.show_if else "",
        "options": [],
        "low": "",
        "high": "",
    }
    picked = {str(v) for v in (value if isinstance(value, list) else [value]) if v not in (None, "")}
    if qtype in (QuestionType.NPS, QuestionType.CSAT, QuestionType.CES, QuestionType.RATING):
        item["options"], item["low"], item["high"] = _scale_options(question, lang)
        item["widget"] = "scale"
    elif qtype == QuestionType.FCR:
        item["options"] = [
            {"value": "yes", "label": msg(lang, "yes")},
            {"value": "no", "label": msg(lang, "no")},
        ]
        item["widget"] = "radio"
    elif qtype in (QuestionType.SINGLE, QuestionType.MULTI):
        for choice in question.choices or []:
            if not isinstance(choice, dict) or choice.get("value") in (None, ""):
                continue
            value_text = str(choice["value"])
            label = (
                pick(choice.get("label"), lang, default_locale) or value_text.replace("_", " ").capitalize()
            )
            item["options"].append({"value": value_text, "label": label})
        item["widget"] = "checkbox" if qtype == QuestionType.MULTI else "radio"
    else:
        item["widget"] = "text"
    for option in item["options"]:
        option.setdefault("caption", "")
        option["checked"] = option["value"] in picked
        if qtype == QuestionType.FCR:
            option["checked"] = bool(
                picked & ({"yes", "1", "true"} if option["value"] == "yes" else {"no", "0"})
            )
    return item


# --- paging and skip logic ---------------------------------------------------------------------


def _given(questions, values: dict, before_page: int | None = None) -> dict:
    """Cleaned answers of the shown questions (optionally only of pages before ``before_page``)."""
    given = {}
    for question in questions:
        if before_page is not None and question.page >= before_page:
            break
        if not is_shown(question, given):
            continue
        value = values.get(question.key)
        if value in (None, "", []):
            continue
        try:
            given[question.key] = clean_value(question, value)
        except ValueError:
            continue
    return given


def _displayed(question, given: dict, page_keys: set[str], undecided: set[str] = frozenset()) -> bool:
    condition = question.show_if
    # A condition on a question of the same page cannot be known before that page is sent; it
    # is shown and decided on submit (respond.js hides it live where scripts run). One on a
    # question still to be asked counts as possible, so the page count does not jump up later.
    if condition and condition.get("question") in (page_keys | undecided):
        return True
    return is_shown(question, given)


def _pages(questions) -> list[int]:
    return sorted({q.page for q in questions})


def _page_questions(questions, page: int, values: dict, undecided: set[str] = frozenset()) -> list:
    on_page = [q for q in questions if q.page == page]
    keys = {q.key for q in on_page}
    given = _given(questions, values, before_page=page)
    return [q for q in on_page if _displayed(q, given, keys, undecided)]


def _visible_pages(questions, values: dict, current: int | None = None) -> list[int]:
    """Pages with something to ask, given the answers so far (for paging and "Page x of y")."""
    undecided = set()
    if current is not None:
        undecided = {q.key for q in questions if q.page >= current and q.key not in values}
    return [p for p in _pages(questions) if _page_questions(questions, p, values, undecided)]


def _validate_page(questions, values: dict, page: int) -> dict[str, list[str]]:
    given, errors = {}, {}
    for question in questions:
        if question.page > page:
            break
        if not is_shown(question, given):
            continue
        value = values.get(question.key)
        if value in (None, "", []):
            if question.required and question.page == page:
                errors[question.key] = ["This question is required."]
            continue
        try:
            given[question.key] = clean_value(question, value)
        except ValueError as exc:
            if question.page == page:
                errors[question.key] = [str(exc)]
    return errors


# --- the views ---------------------------------------------------------------------------------


def _message_page(request, kind: str, lang: str, status: int, *, survey=None, retry_after=None):
    response = render(
        request,
        "feedback/respond/message.html",
        {
            "kind": kind,
            "lang": lang,
            "title": msg(lang, f"{kind}_title"),
            "body": msg(lang, f"{kind}_body"),
            "survey_name": survey.name if survey is not None else "",
        },
        status=status,
    )
    if retry_after:
        response["Retry-After"] = str(retry_after)
    return response


class PublicSurveyView(View):
    """Resolve the tenant from the token, then serve the survey inside that tenant only.

    ``model`` names the row a token resolves to (the cross-tenant page sweep reads it).
    """

    model = None
    http_method_names = ["get", "post"]

    def find(self, token: str) -> tuple[int, int] | None:
        raise NotImplementedError

    def load(self, pk: int):
        raise NotImplementedError

    def dispatch(self, request, *args, **kwargs):
        token = kwargs.get("token", "")
        if request.method.lower() not in self.http_method_names:
            return self.http_method_not_allowed(request, *args, **kwargs)
        if request.method == "POST" and ballot.content_length(request) > MAX_BODY:
            lang = choose_language(_NoSurvey, accept_language=request.headers.get("Accept-Language", ""))
            return _message_page(request, "too_large", lang, 413)
        wait = public_throttle.blocked_for(request, "unknown_token")
        if not wait and request.method == "POST":
            wait = public_throttle.wait_seconds(request, "respond_post")
        if wait:
            lang = choose_language(_NoSurvey, accept_language=request.headers.get("Accept-Language", ""))
            return _message_page(request, "slow_down", lang, 429, retry_after=wait)
        found = self.find(token) if 8 <= len(token) <= 200 else None
        if found is None:
            public_throttle.wait_seconds(request, "unknown_token")
            lang = choose_language(_NoSurvey, accept_language=request.headers.get("Accept-Language", ""))
            return _message_page(request, "not_found", lang, 404)
        org_id, pk = found
        with tenant_context(org_id):
            try:
                self.obj = self.load(pk)
            except self.model.DoesNotExist:
                raise Http404 from None
            self.survey = self.obj.survey
            self.organization = self.obj.organization
            self.lang = choose_language(
                self.survey,
                explicit=request.POST.get("lang", "")
                if request.method == "POST"
                else request.GET.get("lang", ""),
                preferred=self.preferred_language(),
                accept_language=request.headers.get("Accept-Language", ""),
            )
            response = super().dispatch(request, *args, **kwargs)
            self.finish(request, response)
            return response

    # Hooks
    def preferred_language(self) -> str:
        return ""

    def check_open(self, request) -> None:
        """Raise Unavailable when the link cannot be answered."""

    def version(self):
        return current_version(self.survey)

    def record(self, request, values: dict):
        raise NotImplementedError

    def finish(self, request, response) -> None:
        """Adjust the response (cookies) inside the tenant context."""

    # Flow
    def _state_salt(self) -> str:
        return f"feedback.respond:{self.model._meta.label_lower}:{self.obj.pk}"

    def _load_state(self, request, version) -> tuple[dict, int | None, bool]:
        raw = request.POST.get("state", "")
        if not raw:
            return {}, None, False
        try:
            data = signing.loads(raw, salt=self._state_salt(), max_age=24 * 3600)
        except signing.BadSignature:
            return {}, None, True
        if not isinstance(data, dict) or data.get("v") != version.pk:
            return {}, None, True
        return dict(data.get("a") or {}), data.get("p"), False

    def _dump_state(self, version, values: dict, page: int) -> str:
        return signing.dumps(
            {"v": version.pk, "p": page, "a": values}, salt=self._state_salt(), compress=True
        )

    def _render_page(self, request, version, questions, values, page, errors=None, notice="", status=200):
        errors = errors or {}
        visible = _visible_pages(questions, values, current=page)
        if page not in visible:
            visible = sorted({*visible, page})
        shown = _page_questions(questions, page, values)
        numbers = {q.key: i + 1 for i, q in enumerate(questions)}
        items = [
            _question_view(
                q,
                numbers[q.key],
                self.lang,
                self.survey.default_locale,
                values.get(q.key),
                errors.get(q.key, []),
            )
            for q in shown
        ]
        general = [translate_error(self.lang, e) for e in errors.get("non_field_errors", [])]
        if errors and not general:
            general = [msg(self.lang, "fix_errors")]
        position = visible.index(page) + 1
        languages = [
            {
                "code": code,
                "name": _LANGUAGE_NAMES.get(code.split("-")[0], code),
                "current": code == self.lang,
            }
            for code in survey_languages(self.survey)
        ]
        context = {
            "lang": self.lang,
            "title": self.survey.name,
            "survey_name": self.survey.name,
            "survey_description": self.survey.description,
            "questions": items,
            "state": self._dump_state(version, values, page),
            "page": position,
            "pages": len(visible),
            "progress_label": msg(self.lang, "page_of", page=position, pages=len(visible)),
            "is_last": position == len(visible),
            "has_back": position > 1,
            "general_errors": general,
            "notice": notice,
            "languages": languages if len(languages) > 1 else [],
            "t": {
                k: msg(self.lang, k) for k in ("next", "back", "submit", "required", "language", "choose_any")
            },
        }
        return render(request, "feedback/respond/form.html", context, status=status)

    def _open_survey(self, request):
        """(version, questions) when the survey can be answered, else the page that says why."""
        try:
            self.check_open(request)
            version = self.version()
        except Unavailable as exc:
            return None, _message_page(
                request, exc.kind, self.lang, exc.status, survey=self.survey, retry_after=exc.retry_after
            )
        except ValidationError:
            return None, _message_page(request, "closed", self.lang, 410, survey=self.survey)
        questions = version_questions(version)
        if not questions:
            return None, _message_page(request, "closed", self.lang, 410, survey=self.survey)
        return (version, questions), None

    def get(self, request, *args, **kwargs):
        opened, refusal = self._open_survey(request)
        if refusal is not None:
            return refusal
        version, questions = opened
        first = _visible_pages(questions, {})[:1] or _pages(questions)[:1]
        return self._render_page(request, version, questions, {}, first[0])

    def post(self, request, *args, **kwargs):
        opened, refusal = self._open_survey(request)
        if refusal is not None:
            return refusal
        version, questions = opened
        known = {q.key: q for q in questions}
        # Fields for questions this survey does not have (another survey's keys or ids) are
        # never produced by our form: refuse them rather than silently dropping them.
        unknown = [
            name
            for name in request.POST
            if name.startswith(FIELD_PREFIX) and name[len(FIELD_PREFIX) :] not in known
        ]
        if unknown:
            return _message_page(request, "not_found", self.lang, 400, survey=self.survey)
        values, page, restarted = self._load_state(request, version)
        pages = _pages(questions)
        if page not in pages:
            page = (_visible_pages(questions, {}) or pages)[0]
            if request.POST.get("state"):
                restarted = True
        if restarted:
            values = {}
            page = (_visible_pages(questions, {}) or pages)[0]
            return self._render_page(
                request, version, questions, values, page, notice=msg(self.lang, "restart")
            )

        for question in _page_questions(questions, page, values):
            name = FIELD_PREFIX + question.key
            if question.type == QuestionType.MULTI:
                submitted = [v[:MAX_FIELD] for v in request.POST.getlist(name) if v]
            else:
                submitted = request.POST.get(name, "")[:MAX_FIELD]
            if submitted in ("", []):
                values.pop(question.key, None)
            else:
                values[question.key] = submitted

        if request.POST.get("nav") == "back":
            earlier = [p for p in _visible_pages(questions, values) if p < page]
            return self._render_page(request, version, questions, values, earlier[-1] if earlier else page)

        errors = _validate_page(questions, values, page)
        if errors:
            return self._render_page(request, version, questions, values, page, errors=errors, status=200)
        later = [p for p in _visible_pages(questions, values) if p > page]
        if later:
            return self._render_page(request, version, questions, values, later[0])

        shown_values = {k: v for k, v in values.items() if k in known}
        try:
            self.record(request, shown_values, version)
        except Unavailable as exc:
            return _message_page(
                request, exc.kind, self.lang, exc.status, survey=self.survey, retry_after=exc.retry_after
            )
        except ValidationError as exc:
            found = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
            bad_pages = [known[k].page for k in found if k in known]
            return self._render_page(
                request, version, questions, values, min(bad_pages) if bad_pages else page, errors=found
            )
        return render(
            request,
            "feedback/respond/message.html",
            {
                "kind": "thanks",
                "lang": self.lang,
                "title": msg(self.lang, "thanks_title"),
                "body": msg(self.lang, "thanks_body"),
                "survey_name": self.survey.name,
            },
        )


class _NoSurvey:
    """Language choice before any survey is known (unknown token): the generic texts' languages."""

    default_locale = "en"
    locales = ["en", "es"]


class InvitationRespondView(PublicSurveyView):
    """A personal, single-use link: the first complete submission wins, later ones see a notice."""

    model = Invitation

    def find(self, token):
        with unscoped():
            return (
                Invitation.objects.filter(token_hash=hash_token(token))
                .values_list("organization_id", "pk")
                .first()
            )

    def load(self, pk):
        return Invitation.objects.select_related("survey", "version", "organization").get(pk=pk)

    def preferred_language(self):
        return self.obj.locale

    def version(self):
        return self.obj.version

    def check_open(self, request):
        inv = self.obj
        if inv.status == Invitation.Status.RESPONDED:
            raise Unavailable("used", 410)
        if inv.status not in _OPEN_INVITATION or inv.expires_at <= timezone.now():
            raise Unavailable("expired", 410)
        if self.survey.status == Survey.Status.ARCHIVED:
            raise Unavailable("closed", 410)

    def _dimensions(self) -> tuple[Dimensions, Interaction | None]:
        inv = self.obj
        interaction = None
        if inv.interaction_id:
            interaction = Interaction.objects.select_related("customer").filter(pk=inv.interaction_id).first()
        if interaction is not None:
            return Dimensions.from_interaction(interaction, employee_id=inv.employee_id), interaction
        segment_id = None
        if inv.customer_id:
            segment_id = inv.customer.segment_id if inv.customer else None
        return (
            Dimensions(
                location_id=inv.location_id,
                employee_id=inv.employee_id,
                customer_id=inv.customer_id,
                segment_id=segment_id,
            ),
            None,
        )

    def record(self, request, values, version):
        inv = self.obj
        dimensions, interaction = self._dimensions()
        now = timezone.now()
        try:
            with transaction.atomic():
                # Conditional claim: of two concurrent submissions the second waits on the row
                # lock, then finds it no longer open; the unique constraint backs this up.
                claimed = Invitation.objects.filter(
                    pk=inv.pk, status__in=_OPEN_INVITATION, expires_at__gt=now
                ).update(status=Invitation.Status.RESPONDED, responded_at=now, reminder_due_at=None)
                if not claimed:
                    raise Unavailable("used", 410)
                return response_record(
                    organization=self.organization,
                    actor=Actor.system(),
                    survey=self.survey,
                    version=version,
                    values=values,
                    source=inv.delivery_channel if inv.delivery_channel in ResponseSource.values else "email",
                    dimensions=dimensions,
                    invitation=inv,
                    interaction=interaction,
                    locale=self.lang,
                    submitted_at=now,
                )
        except IntegrityError:
            raise Unavailable("used", 410) from None


class AnonymousRespondView(PublicSurveyView):
    """An anonymous link (printed as a QR code at a location): one counted answer per device a day."""

    model = AnonymousLink

    def find(self, token):
        with unscoped():
            return AnonymousLink.objects.filter(token=token).values_list("organization_id", "pk").first()

    def load(self, pk):
        return AnonymousLink.objects.select_related("survey", "organization", "touchpoint").get(pk=pk)

    def _device(self, request) -> str:
        if not hasattr(self, "_device_id"):
            token = request.COOKIES.get(ballot.DEVICE_COOKIE)
            device_id = ballot.device_id_from(token)
            self._new_device_token = None
            if device_id is None:
                self._new_device_token = ballot.new_device_token()
                device_id = ballot.device_id_from(self._new_device_token)
            self._device_id = device_id
        return self._device_id

    def check_open(self, request):
        if not self.obj.active or self.survey.status != Survey.Status.ACTIVE:
            raise Unavailable("closed", 410)
        if request.method == "GET" and request.COOKIES.get(ballot.DEVICE_COOKIE):
            hashed = ballot.device_hash(self._device(request))
            start, end = ballot.local_day_bounds(self.organization)
            if Response.objects.filter(
                survey=self.survey, device_hash=hashed, submitted_at__gte=start, submitted_at__lt=end
            ).exists():
                raise Unavailable("today", 200)

    def record(self, request, values, version):
        link = self.obj
        hashed_ip = ballot.ip_hash(request)
        wait = ballot.rate_limited(self.survey.pk, hashed_ip)
        if wait:
            raise Unavailable("slow_down", 429, retry_after=wait)
        hashed_device = ballot.device_hash(self._device(request))
        touchpoint: Touchpoint | None = link.touchpoint
        dimensions = Dimensions(
            location_id=link.location_id,
            touchpoint_id=link.touchpoint_id,
            channel_id=touchpoint.channel_id if touchpoint else None,
            category=touchpoint.category if touchpoint else "",
        )
        try:
            return ballot.record_once_per_day(
                organization=self.organization,
                survey=self.survey,
                hashed_device=hashed_device,
                record=lambda: response_record(
                    organization=self.organization,
                    actor=Actor.system(),
                    survey=self.survey,
                    version=version,
                    values=values,
                    source=ResponseSource.QR,
                    dimensions=dimensions,
                    locale=self.lang,
                    device_hash=hashed_device,
                    ip_hash=hashed_ip,
                ),
            )
        except ballot.AlreadyAnswered:
            raise Unavailable("today", 409) from None

    def finish(self, request, response):
        self._device(request)
        if self._new_device_token:
            response.set_cookie(
                ballot.DEVICE_COOKIE,
                self._new_device_token,
                max_age=ballot.DEVICE_COOKIE_AGE,
                path="/r/",
                secure=request.is_secure(),
                httponly=True,
                samesite="Lax",
            )
