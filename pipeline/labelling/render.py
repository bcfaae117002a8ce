"""Issue text (GitHub Markdown) to safe HTML for the labelling page, as GitHub renders it.

Real issue bodies fold logs in ``<details>``/``<summary>``, use ``<sub>``, ``<br>``, tables and
task lists, so raw HTML is parsed, then cut down to GitHub's own allow-list (html-pipeline's
``SanitizationFilter``: :data:`GITHUB_TAGS`, a few presentational attributes, ``http``/``https``/
``mailto`` URLs) by nh3, the one line of defence that decides what reaches the page. Where we
differ from GitHub, it is on the safe side:

* a raw tag outside the allow-list (``<script>``, ``<iframe>``, ``<svg>``, a stray
  ``<Tensor>``) is shown as text, as GitHub's ``tagfilter`` does for ``<script>`` and
  ``<iframe>``: the rater sees what the author wrote instead of a silent gap;
* no ``id``/``name``/``class``/``style`` from the author (an ``id="page-data"`` would shadow
  the page's own elements); task-list classes come only from the Markdown renderer;
* images are never loaded: GitHub proxies them through camo, a local tool has no proxy, and
  a remote image would tell its host who read the issue and when. Each image becomes a link
  ("image: alt text") the rater can open on purpose; the page's CSP has no remote ``img-src``;
* relative links resolve against the issue's GitHub URL (as they do on GitHub), or are
  dropped when there is none; every link opens in a new tab with ``noopener noreferrer``.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from posixpath import basename
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt

# html-pipeline's SanitizationFilter (the list GitHub's markup pipeline uses)
GITHUB_TAGS = frozenset({
    "h1", "h2", "h3", "h4", "h5", "h6", "br", "b", "i", "strong", "em", "a", "pre", "code", "img", "tt",
    "div", "ins", "del", "sup", "sub", "p", "ol", "ul", "table", "thead", "tbody", "tfoot", "blockquote",
    "dl", "dt", "dd", "kbd", "q", "samp", "var", "hr", "ruby", "rt", "rp", "li", "tr", "td", "th", "s",
    "strike", "summary", "details", "caption", "figure", "figcaption", "abbr", "bdo", "cite", "dfn",
    "mark", "small", "span", "time", "wbr",
})
# the presentational part of GitHub's attribute list; form, focus and keyboard attributes
# (accesskey, tabindex, action, ...) would reach into the page's own keyboard handling
ALLOWED_ATTRIBUTES = {
    "*": {"align", "alt", "title", "dir", "lang", "abbr", "valign", "colspan", "rowspan", "width", "height"},
    "a": {"href"},
    "img": {"src"},
    "ol": {"start"},
    "details": {"open"},
    "time": {"datetime"},
    "input": {"checked"},
}
URL_SCHEMES = {"http", "https", "mailto"}
# task lists: the Markdown renderer's checkboxes, always disabled (an author's raw <input> is text)
TASK_CLASSES = {"ul": {"contains-task-list"}, "ol": {"contains-task-list"}, "li": {"task-list-item"},
                "input": {"task-list-item-checkbox"}, "a": {"image-link"}, "span": {"image-link"}}
_CHECKBOX = '<input class="task-list-item-checkbox" '
_RAW_TAG = re.compile(r"<(?=/?([A-Za-z][A-Za-z0-9-]*))")
# nh3 (html5ever) writes every attribute as name="value" with '"' escaped, so this matches its <img>
_IMG = re.compile(r'<img((?:\s+[a-z-]+="[^"]*")*)\s*/?>')
_ATTR = re.compile(r'([a-z-]+)="([^"]*)"')


def _tagfilter(raw: str) -> str:
    """Raw HTML with every tag outside :data:`GITHUB_TAGS` turned into text (its ``<`` escaped)."""
    if raw.startswith(_CHECKBOX):
        # the task-list plugin's checkbox (an author who types the same gets the same inert,
        # disabled checkbox: sanitize() forces those attributes on every <input>)
        return raw
    return _RAW_TAG.sub(lambda m: "<" if m.group(1).lower() in GITHUB_TAGS else "&lt;", raw)


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    from mdit_py_plugins.tasklists import tasklists_plugin

    # GitHub keeps single newlines as line breaks: tracebacks pasted without a fence stay readable
    # and bare URLs become links (GitHub's autolink extension)
    md = MarkdownIt("commonmark", {"html": True, "breaks": True, "linkify": True}).enable(
        ["table", "strikethrough", "linkify"])
    md.use(tasklists_plugin)
    for rule in ("html_block", "html_inline"):
        md.add_render_rule(rule, lambda renderer, tokens, idx, options, env: _tagfilter(tokens[idx].content))
    return md


def sanitize(html_text: str, base_url: str | None = None) -> str:
    """Clean HTML against GitHub's allow-list; relative URLs resolve against ``base_url`` (else dropped)."""
    return nh3.clean(
        html_text,
        tags=GITHUB_TAGS | {"input"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        url_relative=("rewrite_with_base", base_url) if base_url else "deny",
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}, "input": {"type": "checkbox", "disabled": "disabled"}},
        allowed_classes=TASK_CLASSES,
        clean_content_tags={"script", "style"},
        strip_comments=True,
    )


def _image_link(match: re.Match) -> str:
    attrs = {k: html.unescape(v) for k, v in _ATTR.findall(match.group(1))}
    src = attrs.get("src", "")
    label = attrs.get("alt") or attrs.get("title") or basename(urlsplit(src).path) or "image"
    text = f"image: {label}"
    if not src:  # its URL was unsafe (javascript:, data:) and is gone
        return f'<span class="image-link">{html.escape(text)} (not shown)</span>'
    return (f'<a class="image-link" href="{html.escape(src)}" title="image, not loaded: opens on its host">'
            f"{html.escape(text)}</a>")


def render_markdown(text: str | None, base_url: str | None = None) -> str:
    """Render an issue or comment body to sanitized HTML (empty string for no text).

    ``base_url`` is the issue's GitHub URL: relative links in the text resolve against it.
    """
    if not text or not str(text).strip():
        return ""
    clean = sanitize(_markdown().render(str(text)), base_url)
    # the link placeholders are built from already-clean values, then cleaned once more
    return sanitize(_IMG.sub(_image_link, clean), base_url)
