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


# Common Spanish sentiment words on VADER's scale (-4 … 4), valued like their English
# counterparts in VADER's own lexicon ("bueno" = "good" 1.9, "pésimo" ≈ "worst" -3.1). Forms
# with and without accents, since respondents often type without them. VADER already flips a
# word two places after "no" ("no fue bueno"), which covers the commonest Spanish negation.
SPANISH_LEXICON: dict[str, float] = {
    # positive
    "bueno": 1.9,
    "buena": 1.9,
    "buenos": 1.9,
    "buenas": 1.9,
    "bien": 1.6,
    "excelente": 2.7,
    "excelentes": 2.7,
    "genial": 2.8,
    "fantástico": 2.6,
    "fantastico": 2.6,
    "fantástica": 2.6,
    "maravilloso": 2.7,
    "maravillosa": 2.7,
    "perfecto": 2.7,
    "perfecta": 2.7,
    "estupendo": 2.7,
    "increíble": 2.8,
    "increible": 2.8,
    "amable": 2.2,
    "amables": 2.2,
    "simpático": 2.2,
    "simpatico": 2.2,
    "atento": 1.8,
    "atenta": 1.8,
    "atentos": 1.8,
    "rápido": 1.3,
    "rapido": 1.3,
    "rápida": 1.3,
    "rapida": 1.3,
    "eficiente": 1.8,
    "limpio": 1.7,
    "limpia": 1.7,
    "contento": 2.2,
    "contenta": 2.2,
    "feliz": 2.7,
    "satisfecho": 1.8,
    "satisfecha": 1.8,
    "encanta": 3.0,
    "encantó": 3.0,
    "encanto": 3.0,
    "gracias": 1.9,
    "recomiendo": 1.5,
    "agradable": 2.3,
    "útil": 1.8,
    "util": 1.8,
    "mejor": 2.0,
    # negative
    "malo": -2.5,
    "mala": -2.5,
    "malos": -2.5,
    "malas": -2.5,
    "mal": -2.5,
    "pésimo": -3.1,
    "pesimo": -3.1,
    "pésima": -3.1,
    "pesima": -3.1,
    "peor": -3.1,
    "terrible": -2.1,
    "horrible": -2.5,
    "fatal": -2.1,
    "lento": -1.3,
    "lenta": -1.3,
    "sucio": -1.9,
    "sucia": -1.9,
    "grosero": -2.0,
    "grosera": -2.0,
    "maleducado": -2.0,
    "maleducada": -2.0,
    "antipático": -2.0,
    "antipatico": -2.0,
    "decepcionado": -2.1,
    "decepcionada": -2.1,
    "decepción": -2.1,
    "decepcion": -2.1,
    "enojado": -2.3,
    "enfadado": -2.3,
    "molesto": -1.7,
    "molesta": -1.7,
    "triste": -2.1,
    "caro": -1.0,
    "problema": -1.7,
    "problemas": -1.7,
    "queja": -1.5,
    "inaceptable": -2.0,
    "desastre": -3.1,
    "inútil": -1.8,
    "inutil": -1.8,
    "odio": -2.7,
    "nunca": -0.5,
}

# VADER strips only ASCII punctuation from a word's ends; the Spanish opening marks would
# otherwise glue to the first word ("¡excelente") and hide it from the lexicon.
_SPANISH_MARKS = str.maketrans({"¡": " ", "¿": " "})


@lru_cache(maxsize=1)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    # Only words VADER does not know, so every English score stays exactly as it was.
    analyzer.lexicon.update({w: v for w, v in SPANISH_LEXICON.items() if w not in analyzer.lexicon})
    return analyzer


def sentiment(text: str) -> tuple[str, float] | None:
    """(label, compound score in [-1, 1]) for a comment, or None for an empty one."""
    text = (text or "").strip()
    if not text:
        return None
    compound = round(_analyzer().polarity_scores(text.translate(_SPANISH_MARKS))["compound"], 4)
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
