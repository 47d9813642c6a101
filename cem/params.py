"""Reading ids out of request parameters and payloads."""


def id_of(value) -> int | None:
    """A database id from an int or a string of ASCII digits, else None.

    ``"²".isdigit()`` is true yet ``int("²")`` raises, and an id longer than 18 digits overflows
    bigint: both would turn hostile input into a server error.
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = str(value).strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None
