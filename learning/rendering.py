"""Lesson Markdown → safe HTML.

Authors write CommonMark (with tables); markdown-it-py renders it and nh3 (Ammonia) keeps only
an allow-list of tags and attributes. Inline HTML is let through the renderer on purpose, so a
trainer may paste a simple table or ``<br>``; whatever is not on the list — scripts, styles,
iframes, ``on*`` handlers, ``javascript:`` or ``data:`` URLs — is dropped by the sanitiser, which
is the one place that decides. Rendering happens once, when a version is saved; pages show the
stored ``body_html`` and never render from a request.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt

TAGS = {
    "h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "blockquote",
    "ul", "ol", "li", "strong", "em", "b", "i", "s", "del", "sub", "sup",
    "a", "img", "code", "pre",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "th": {"colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
}
LINK_SCHEMES = {"http", "https", "mailto"}
IMAGE_SCHEMES = {"http", "https"}

_md = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table")


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    # Images load without a click, so only web addresses or paths of this site (no mailto:,
    # no data: payloads) may be their source.
    if tag == "img" and attribute == "src":
        scheme = urlsplit(value.strip()).scheme.lower()
        if scheme and scheme not in IMAGE_SCHEMES:
            return None
        if value.strip().startswith("//"):
            return None  # protocol-relative: an http(s) fetch in disguise; ask for the scheme
    return value


def sanitise(html: str) -> str:
    return nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=LINK_SCHEMES,
        link_rel="noopener noreferrer",
        attribute_filter=_attribute_filter,
        strip_comments=True,
    )


def render_markdown(text: str) -> str:
    """The learner-facing HTML of a lesson body (sanitised)."""
    return sanitise(_md.render(text or ""))
