"""Issue text (GitHub Markdown) to safe HTML for the labelling page.

Markdown is rendered with raw HTML *disabled* (an issue's ``<script>`` shows as text), then
sanitized with nh3 against a strict allowlist as a second line of defence: only http(s) and
mailto links survive, links open in a new tab with ``rel="noopener noreferrer"``, no event
handlers, no iframes, no styles.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "hr", "pre", "code", "blockquote", "em", "strong", "del", "s", "a", "img",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "span",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "code": {"class"},
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # GitHub keeps single newlines as line breaks: tracebacks pasted without a fence stay readable
    return MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])


def sanitize(html: str) -> str:
    """Clean HTML against the allowlist (links: new tab, noopener noreferrer; unsafe URLs dropped)."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        clean_content_tags={"script", "style"},
        strip_comments=True,
    )


def render_markdown(text: str | None) -> str:
    """Render an issue or comment body to sanitized HTML (empty string for no text)."""
    if not text or not str(text).strip():
        return ""
    return sanitize(_markdown().render(str(text)))
