"""Turning submitted values into answers: type and scale checks, required questions, skip logic.

Shared by every way a response arrives (invitation link, QR, widget, IVR, API, bulk), so a value
is judged the same whatever the channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from feedback.models import QUESTION_SCALES, Question, QuestionType

_YES = {"yes", "y", "true", "1", "si", "sí"}
_NO = {"no", "n", "false", "0"}
MAX_TEXT = 5000


@dataclass(frozen=True)
class CleanAnswer:
    question: Question
    number: Decimal | None = None
    text: str = ""
    choices: tuple[str, ...] = ()


def _scale(question: Question) -> tuple[int, int]:
    if question.type in QUESTION_SCALES:
        return QUESTION_SCALES[question.type]
    return (
        question.scale_min if question.scale_min is not None else 1,
        question.scale_max if question.scale_max is not None else 5,
    )


def _choice_values(question: Question) -> set[str]:
    return {str(c.get("value")) for c in question.choices or [] if isinstance(c, dict)}


def clean_value(question: Question, value) -> CleanAnswer:
    """One value for one question; raises ValueError with a respondent-readable message."""
    qtype = question.type
    if qtype == QuestionType.TEXT:
        if not isinstance(value, str | int | float):
            raise ValueError("Must be text.")
        text = str(value).strip()
        if len(text) > MAX_TEXT:
            raise ValueError(f"At most {MAX_TEXT} characters.")
        return CleanAnswer(question, text=text)
    if qtype == QuestionType.FCR:
        word = str(value).strip().lower() if not isinstance(value, bool) else ("yes" if value else "no")
        if word in _YES:
            return CleanAnswer(question, number=Decimal(1))
        if word in _NO:
            return CleanAnswer(question, number=Decimal(0))
        raise ValueError("Answer yes or no.")
    if qtype in (QuestionType.SINGLE, QuestionType.MULTI):
        allowed = _choice_values(question)
        picked = value if isinstance(value, list) else [value]
        picked = [str(v) for v in picked if v not in (None, "")]
        if qtype == QuestionType.SINGLE and len(picked) != 1:
            raise ValueError("Choose one option.")
        unknown = [v for v in picked if v not in allowed]
        if unknown:
            raise ValueError(f"Not an option: {', '.join(unknown)}.")
        return CleanAnswer(question, choices=tuple(dict.fromkeys(picked)))
    # Scored questions: NPS, CSAT, CES, rating.
    if isinstance(value, bool):
        raise ValueError("Must be a whole number.")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("Must be a whole number.") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError("Must be a whole number.")
    low, high = _scale(question)
    if not low <= number <= high:
        raise ValueError(f"Must be between {low} and {high}.")
    return CleanAnswer(question, number=number)


def _norm(value) -> str:
    """Comparable form of a skip-logic value: 9, "9" and Decimal("9.00") are all "9"; yes/no → 1/0."""
    if isinstance(value, bool):
        return "1" if value else "0"
    text = str(value).strip()
    if text.lower() in _YES - {"1"}:
        return "1"
    if text.lower() in _NO - {"0"}:
        return "0"
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text
    return str(number.normalize()) if number.is_finite() else text


def _condition_holds(condition: dict, given: dict[str, CleanAnswer]) -> bool:
    answer = given.get(condition.get("question"))
    if answer is None:
        return False
    op, expected = condition.get("op", "eq"), condition.get("value")
    if answer.number is not None:
        actual = {_norm(answer.number)}
    elif answer.choices:
        actual = set(answer.choices)
    else:
        actual = {answer.text}
    if op == "eq":
        return _norm(expected) in actual
    if op == "ne":
        return _norm(expected) not in actual
    if op == "in":
        return bool(actual & {_norm(v) for v in (expected if isinstance(expected, list) else [expected])})
    if op in ("lte", "gte") and answer.number is not None:
        try:
            bound = Decimal(str(expected))
        except InvalidOperation:
            return False
        return answer.number <= bound if op == "lte" else answer.number >= bound
    return False


def is_shown(question: Question, given: dict[str, CleanAnswer]) -> bool:
    """Skip logic: a question with ``show_if`` is asked only when its condition holds."""
    return not question.show_if or _condition_holds(question.show_if, given)


def clean_answers(questions: list[Question], values: dict) -> tuple[list[CleanAnswer], dict[str, list[str]]]:
    """Validate a submission against a version's questions (in order). Returns (answers, errors).

    ``values`` is keyed by question key (or by question id as a string). Skipped questions —
    hidden by skip logic or left empty when optional — produce no answer; a value sent for a
    hidden question is ignored, so it can never count in a metric.
    """
    by_id = {str(q.pk): q.key for q in questions}
    values = {by_id.get(str(k), str(k)): v for k, v in (values or {}).items()}
    known = {q.key for q in questions}
    errors: dict[str, list[str]] = {}
    for key in values:
        if key not in known:
            errors.setdefault(key, []).append("Unknown question.")
    given: dict[str, CleanAnswer] = {}
    for question in questions:
        if not is_shown(question, given):
            continue
        value = values.get(question.key)
        empty = value is None or value == "" or value == []
        if empty:
            if question.required:
                errors.setdefault(question.key, []).append("This question is required.")
            continue
        try:
            given[question.key] = clean_value(question, value)
        except ValueError as exc:
            errors.setdefault(question.key, []).append(str(exc))
    if not given and not errors:
        errors["non_field_errors"] = ["Answer at least one question."]
    return list(given.values()), errors
