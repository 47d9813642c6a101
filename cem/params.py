"""Reading ids, moments and text out of request parameters and payloads."""

import datetime as dt
import re


def id_of(value) -> int | None:
    """A database id from an int or a string of ASCII digits, else None.

    ``"²".isdigit()`` is true yet ``int("²")`` raises, and an id longer than 18 digits overflows
    bigint: both would turn hostile input into a server error.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


# PostgreSQL stores neither in text or jsonb, and psycopg cannot encode a lone surrogate: either one
# in a lookup or an insert would be a server error. JSON can carry both (\u0000, "\ud800").
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "Contains a NUL character or an unpaired surrogate, which cannot be stored."


def unstorable_path(value, path: str = "") -> str | None:
    """Where in a parsed JSON value the first unstorable string is (key or value), e.g.
    ``answers.nps`` or ``[3].location``; ``""`` for the value itself; None when all can be stored."""
    if isinstance(value, str):
        return path if _UNSTORABLE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            # The path is echoed in the error: a bad key shows with U+FFFD in place of the bad character.
            shown = _UNSTORABLE.sub("\ufffd", str(key))
            name = f"{path}.{shown}" if path else shown
            if isinstance(key, str) and shown != key:
                return name
            if (found := unstorable_path(item, name)) is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if (found := unstorable_path(item, f"{path}[{index}]")) is not None:
                return found
    return None


def as_utc(moment: dt.datetime) -> dt.datetime | None:
    """An aware moment in UTC; None when it falls outside Python's years 1-9999 there.

    ISO 8601 and Python accept offsets up to ±23:59, PostgreSQL only up to ±15:59: a moment with
    a larger one, sent as given, was a server error.
    """
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        return None
