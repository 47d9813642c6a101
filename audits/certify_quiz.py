"""Interim shopper certification quizzes, defined as data.

Until the learning app delivers certification courses and tests, a shopper certifies for a
programme by passing this short fixed quiz (audits/pages/certify.py). The learning app's quizzes
will replace it and call the same service, audits.workforce.shopper_certify, so job eligibility
(audits.jobs) does not change. One quiz per programme kind; every programme of a kind shares it.
"""

from __future__ import annotations

from decimal import Decimal

from audits.workforce import DEFAULT_PASS_MARK

PASS_MARK = DEFAULT_PASS_MARK

MYSTERY_SHOP_QUIZ = (
    {
        "key": "scenario",
        "question": "What do you do during the visit?",
        "choices": (
            ("a", "Follow the scenario exactly as written, without telling staff you are auditing"),
            ("b", "Improvise whatever seems most interesting"),
            ("c", "Tell the staff you are a mystery shopper so they can help"),
        ),
        "answer": "a",
    },
    {
        "key": "timing",
        "question": "When may you make the visit?",
        "choices": (
            ("a", "Any time that suits you"),
            ("b", "Only within the job's visit window"),
            ("c", "The day after the window closes"),
        ),
        "answer": "b",
    },
    {
        "key": "photos",
        "question": "What photos should you upload?",
        "choices": (
            ("a", "Selfies with the staff"),
            ("b", "None; photos are optional"),
            ("c", "The photos the form asks for (e.g. the receipt), taken discreetly"),
        ),
        "answer": "c",
    },
)

QUIZZES = {"mystery_shop": MYSTERY_SHOP_QUIZ}


def quiz_for(program) -> tuple[dict, ...]:
    return QUIZZES.get(program.kind, MYSTERY_SHOP_QUIZ)


def score(quiz, answers) -> Decimal:
    """Percentage of correct answers (0 to 100, two decimals); ``answers`` maps question key → choice."""
    if not quiz:
        return Decimal(0)
    correct = sum(1 for q in quiz if answers.get(q["key"]) == q["answer"])
    return (Decimal(100) * correct / len(quiz)).quantize(Decimal("0.01"))
