"""Comment sentiment (VADER, offline) and topic tags from per-organization keyword lists."""

from __future__ import annotations

import re
from functools import lru_cache

DEFAULT_TOPICS: dict[str, list[str]] = {
    "wait": ["wait", "waiting", "queue", "line", "slow", "long time", "espera", "cola", "lento"],
    "rude": ["rude", "impolite", "unfriendly", "ignored", "grosero", "maleducado", "antipático"],
    "price": ["price", "expensive", "cost", "cheap", "precio", "caro", "barato"],
    "staff": ["staff", "employee", "cashier", "agent", "personal", "empleado", "cajero", "agente"],
    "cleanliness": ["dirty", "clean", "messy", "sucio", "limpio"],
    "product": ["product", "stock", "quality", "out of stock", "producto", "calidad", "agotado"],
}

# VADER's thresholds from its authors: compound >= 0.05 positive, <= -0.05 negative.
POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05


@lru_cache(maxsize=1)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment(text: str) -> tuple[str, float] | None:
    """(label, compound score in [-1, 1]) for a comment, or None for an empty one."""
    text = (text or "").strip()
    if not text:
        return None
    compound = round(_analyzer().polarity_scores(text)["compound"], 4)
    if compound >= POSITIVE_AT:
        return "positive", compound
    if compound <= NEGATIVE_AT:
        return "negative", compound
    return "neutral", compound


def topic_keywords(org_settings: dict | None) -> dict[str, list[str]]:
    """The organization's keyword lists (settings["feedback_topics"]), or the defaults."""
    custom = (org_settings or {}).get("feedback_topics")
    return custom if isinstance(custom, dict) and custom else DEFAULT_TOPICS


@lru_cache(maxsize=64)
def _patterns(items: tuple[tuple[str, tuple[str, ...]], ...]) -> list[tuple[str, re.Pattern]]:
    return [
        # Keywords match as word stems: "wait" finds "waited" and "waiting".
        (topic, re.compile(r"\b(?:" + "|".join(re.escape(k.lower()) for k in words) + r")\w*", re.IGNORECASE))
        for topic, words in items
        if words
    ]


def topics(text: str, keywords: dict[str, list[str]]) -> list[str]:
    text = (text or "").lower()
    if not text:
        return []
    frozen = tuple(sorted((t, tuple(w)) for t, w in keywords.items()))
    return [topic for topic, pattern in _patterns(frozen) if pattern.search(text)]
