"""The few generic texts respondents see, in each supported language, and per-locale text picking.

A plain dict rather than gettext catalogues: the texts are few, they must work on a fresh machine
without compiling .mo files, and the language is the survey's (chosen per request), not the
site's. Survey content itself (question text, choices, help) is per-locale JSON on the models.
"""

from __future__ import annotations

import re

DEFAULT = "en"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "page_of": "Page {page} of {pages}",
        "next": "Next",
        "back": "Back",
        "submit": "Submit",
        "required": "Required",
        "optional": "Optional",
        "yes": "Yes",
        "no": "No",
        "language": "Language",
        "fix_errors": "Please check the highlighted questions.",
        "thanks_title": "Thank you!",
        "thanks_body": "Your feedback has been received. It helps us serve you better.",
        "used_title": "You have already answered",
        "used_body": "This survey link has already been used. Thank you for your feedback!",
        "expired_title": "This link has expired",
        "expired_body": "Sorry, this survey is no longer open for answers.",
        "closed_title": "This survey is closed",
        "closed_body": "Sorry, this survey is not accepting answers at the moment.",
        "not_found_title": "Survey not found",
        "not_found_body": "We could not find this survey. Please check that the link is complete.",
        "today_title": "Already answered today",
        "today_body": (
            "You have already answered this survey today. Thank you! You can answer again tomorrow."
        ),
        "slow_down_title": "Too many answers",
        "slow_down_body": "Too many answers came from your network. Please try again later.",
        "too_large_title": "Answer too long",
        "too_large_body": "What you sent is too long for this survey. Please shorten your answers.",
        "restart": "Your earlier answers could not be read; please answer again.",
        "nps_low": "Not at all likely",
        "nps_high": "Extremely likely",
        "csat_1": "Very dissatisfied",
        "csat_2": "Dissatisfied",
        "csat_3": "Neutral",
        "csat_4": "Satisfied",
        "csat_5": "Very satisfied",
        "ces_low": "Very difficult",
        "ces_high": "Very easy",
        "rating_low": "Lowest",
        "rating_high": "Highest",
        "choose_any": "Choose all that apply.",
        "question_n": "Question {n}",
        "close": "Close",
        # Answer validation (feedback.answers raises these in English).
        "This question is required.": "This question is required.",
        "Answer at least one question.": "Answer at least one question.",
        "Must be a whole number.": "Choose a number on the scale.",
        "Must be text.": "Must be text.",
        "Answer yes or no.": "Answer yes or no.",
        "Choose one option.": "Choose one option.",
        "Unknown question.": "Unknown question.",
        "Must be between {0} and {1}.": "Choose a value between {0} and {1}.",
        "At most {0} characters.": "At most {0} characters.",
        "Not an option: {0}.": "Not an option: {0}.",
    },
    "es": {
        "page_of": "Página {page} de {pages}",
        "next": "Siguiente",
        "back": "Atrás",
        "submit": "Enviar",
        "required": "Obligatoria",
        "optional": "Opcional",
        "yes": "Sí",
        "no": "No",
        "language": "Idioma",
        "fix_errors": "Revise las preguntas marcadas.",
        "thanks_title": "¡Gracias!",
        "thanks_body": "Hemos recibido su opinión. Nos ayuda a atenderle mejor.",
        "used_title": "Ya ha respondido",
        "used_body": "Este enlace de encuesta ya se utilizó. ¡Gracias por su opinión!",
        "expired_title": "Este enlace ha caducado",
        "expired_body": "Lo sentimos, esta encuesta ya no admite respuestas.",
        "closed_title": "Esta encuesta está cerrada",
        "closed_body": "Lo sentimos, esta encuesta no admite respuestas en este momento.",
        "not_found_title": "Encuesta no encontrada",
        "not_found_body": "No encontramos esta encuesta. Compruebe que el enlace esté completo.",
        "today_title": "Ya respondió hoy",
        "today_body": "Ya respondió esta encuesta hoy. ¡Gracias! Podrá responder de nuevo mañana.",
        "slow_down_title": "Demasiadas respuestas",
        "slow_down_body": "Llegaron demasiadas respuestas desde su red. Inténtelo de nuevo más tarde.",
        "too_large_title": "Respuesta demasiado larga",
        "too_large_body": "Lo que envió es demasiado largo para esta encuesta. Acorte sus respuestas.",
        "restart": "No pudimos leer sus respuestas anteriores; responda de nuevo, por favor.",
        "nps_low": "Nada probable",
        "nps_high": "Muy probable",
        "csat_1": "Muy insatisfecho",
        "csat_2": "Insatisfecho",
        "csat_3": "Neutral",
        "csat_4": "Satisfecho",
        "csat_5": "Muy satisfecho",
        "ces_low": "Muy difícil",
        "ces_high": "Muy fácil",
        "rating_low": "Mínimo",
        "rating_high": "Máximo",
        "choose_any": "Elija todas las que correspondan.",
        "question_n": "Pregunta {n}",
        "close": "Cerrar",
        "This question is required.": "Esta pregunta es obligatoria.",
        "Answer at least one question.": "Responda al menos una pregunta.",
        "Must be a whole number.": "Elija un número de la escala.",
        "Must be text.": "Debe ser texto.",
        "Answer yes or no.": "Responda sí o no.",
        "Choose one option.": "Elija una opción.",
        "Unknown question.": "Pregunta desconocida.",
        "Must be between {0} and {1}.": "Elija un valor entre {0} y {1}.",
        "At most {0} characters.": "Como máximo {0} caracteres.",
        "Not an option: {0}.": "Opción no válida: {0}.",
    },
}

# feedback.answers formats some messages; match them back to a template to translate them.
_PATTERNS = [
    (re.compile(r"^Must be between (-?\d+) and (-?\d+)\.$"), "Must be between {0} and {1}."),
    (re.compile(r"^At most (\d+) characters\.$"), "At most {0} characters."),
    (re.compile(r"^Not an option: (.*)\.$"), "Not an option: {0}."),
]


def base_language(tag: str) -> str:
    return (tag or "").strip().lower().replace("_", "-").split("-")[0]


def msg(lang: str, key: str, **params) -> str:
    table = MESSAGES.get(base_language(lang)) or MESSAGES[DEFAULT]
    text = table.get(key) or MESSAGES[DEFAULT].get(key) or key
    return text.format(**params) if params else text


def translate_error(lang: str, message: str) -> str:
    """A validation message from feedback.answers in the respondent's language."""
    if message in MESSAGES[DEFAULT]:
        return msg(lang, message)
    for pattern, template in _PATTERNS:
        found = pattern.match(message)
        if found:
            return msg(lang, template).format(*found.groups())
    return message


def pick(texts, lang: str, default_locale: str) -> str:
    """The text for ``lang``, else the survey default, else any non-empty one; '' only if none."""
    if isinstance(texts, str):
        return texts.strip()
    if not isinstance(texts, dict):
        return ""
    for candidate in (lang, base_language(lang), default_locale, base_language(default_locale), DEFAULT):
        value = texts.get(candidate)
        if isinstance(value, str) and value.strip():
            return value.strip()
    for value in texts.values():
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def survey_languages(survey) -> list[str]:
    languages = [survey.default_locale or DEFAULT]
    for tag in survey.locales or []:
        if tag and tag not in languages:
            languages.append(tag)
    return languages


def choose_language(survey, *, explicit: str = "", preferred: str = "", accept_language: str = "") -> str:
    """``?lang=`` wins, then the invitation's locale, then the browser's, then the survey default."""
    available = survey_languages(survey)
    by_base = {}
    for tag in available:
        by_base.setdefault(base_language(tag), tag)

    def match(tag: str) -> str | None:
        if not tag:
            return None
        if tag in available:
            return tag
        return by_base.get(base_language(tag))

    for tag in (explicit, preferred):
        found = match(tag)
        if found:
            return found
    ranked = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, index, tag))
    for _q, _i, tag in sorted(ranked):
        found = match(tag)
        if found:
            return found
    return available[0]
