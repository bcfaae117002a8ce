"""The text the classifier sees for one issue, built from what the store holds.

:func:`build_issue_text` turns a title, a Markdown/HTML body and the first comments into
plain text that fits the embedding model's token limit (all-MiniLM-L6-v2: 256 word pieces
including the two special tokens). What carries the signal is kept first: the title, then
exception and error lines (``RuntimeError: ONNX export failed ... not supported``), then the
prose of the body, then a few code lines, then comments.

:func:`issue_docs` reads the store under the classifier's one text policy: title, body and
comments wherever the issue was crawled, the recorded title where nothing else is known.
"""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

MODEL_MAX_TOKENS = 256
TEXT_KINDS = ("title", "full")
MAX_COMMENTS = 20  # comments read per issue (oldest first); the model's text keeps only the first few

# An exception or error line: "RuntimeError: ...", "onnx.onnx_cpp2py_export.checker.ValidationError: ...",
# "[ONNXRuntimeError] : 1 : FAIL", "error: ...", "... is not supported", "Unsupported ...", "failed".
_ERROR_RE = re.compile(
    r"(^\s*([A-Za-z_][\w.]*)?(Error|Exception|Warning|Failure|Fault|Fail)\b\s*:)"  # Python exception lines
    r"|(\w*(error|exception)\b)"                                          # ERROR:, [ShapeInferenceError], ...
    r"|(\bnot (yet )?(supported|implemented)\b)|(\bunsupported\b)"
    r"|(\b(fail|failed|fails|failure|cannot|can't|couldn't|unable to)\b)"
    r"|(\bassert(ion)?\b)",
    re.IGNORECASE,
)
_TRACE_NOISE_RE = re.compile(r'^\s*(File ".*", line \d+|Traceback \(most recent call last\):|\^+\s*$|~+\^*~*\s*$)')
_FENCE_RE = re.compile(r"^\s*(```|~~~)")
_HTML_TAG_RE = re.compile(r"<[^>\n]{1,400}>")
_HTML_COMMENT_RE = re.compile(r"<!--.*?-->", re.DOTALL)
_MD_IMAGE_RE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK_RE = re.compile(r"\[([^\]]+)\]\((?:[^()\s]|\([^()\s]*\))*\)")
_URL_RE = re.compile(r"https?://\S+")
_MD_MARKUP_RE = re.compile(r"^\s{0,3}(#{1,6}\s+|>\s?|[-*+]\s+\[[ xX]\]\s+|[-*+]\s+|\d+\.\s+)")
_INLINE_MARKUP_RE = re.compile(r"(\*\*|__|`)")

TokenCounter = Callable[[str], int]


@lru_cache(maxsize=4)
def _tokenizer(model_dir: str):
    from tokenizers import Tokenizer  # the fast tokenizer of the embedding model, no network

    tok = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
    # the file ships with padding/truncation to 128 for batch use; counting needs neither
    tok.no_padding()
    tok.no_truncation()
    return tok


def token_counter(model_dir: Path | str | None = None) -> TokenCounter:
    """Count word pieces with the model's own tokenizer (``tokenizer.json`` in ``model_dir``).

    Falls back to :func:`approx_tokens` when the folder has no ``tokenizer.json``.
    """
    if model_dir is None:
        from pipeline.classify.embed import default_model_path

        model_dir = default_model_path()
    if not (Path(model_dir) / "tokenizer.json").is_file():
        return approx_tokens
    return _ModelTokenCounter(_tokenizer(str(model_dir)))


class _ModelTokenCounter:
    """Word pieces of a text by the model's tokenizer; also knows the token offsets (``ends``), so
    :func:`_cut` finds a prefix within a budget from one tokenisation instead of a binary search."""

    def __init__(self, tok) -> None:
        self.tok = tok

    def __call__(self, text: str) -> int:
        return len(self.tok.encode(text, add_special_tokens=False).ids)

    def ends(self, text: str) -> list[int]:
        """The end offset (in characters of ``text``) of each word piece, in order."""
        return [e for _, e in self.tok.encode(text, add_special_tokens=False).offsets]


def approx_tokens(text: str) -> int:
    """A conservative word-piece estimate: every word or symbol, plus one piece per 3 letters beyond the third."""
    n = 0
    for w in re.findall(r"\w+|[^\w\s]", text):
        n += 1 + max(0, len(w) - 3) // 3 if w[0].isalnum() or w[0] == "_" else 1
    return n


def markdown_to_text(markdown: str) -> tuple[str, list[str]]:
    """Reduce a Markdown/HTML body to prose lines and code lines: ``(prose, code_lines)``.

    Fenced code blocks, indented code and ``<pre>``/``<code>`` blocks go to ``code_lines``;
    HTML tags, comments, images, link targets and Markdown markup are dropped.
    """
    text = html.unescape(_HTML_COMMENT_RE.sub(" ", markdown or ""))
    text = re.sub(r"<details>|</details>|<summary>.*?</summary>", "\n", text, flags=re.IGNORECASE | re.DOTALL)
    text = re.sub(r"<pre[^>]*>", "\n```\n", text, flags=re.IGNORECASE)
    text = re.sub(r"</pre>", "\n```\n", text, flags=re.IGNORECASE)
    text = re.sub(r"<br\s*/?>", "\n", text, flags=re.IGNORECASE)
    prose: list[str] = []
    code: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            continue
        if in_fence or line.startswith("    ") or line.startswith("\t"):
            if line.strip():
                code.append(_HTML_TAG_RE.sub("", line).rstrip())
            continue
        line = _HTML_TAG_RE.sub(" ", line)
        line = _MD_IMAGE_RE.sub(r"\1", line)
        line = _MD_LINK_RE.sub(r"\1", line)
        line = _URL_RE.sub(" ", line)
        line = _MD_MARKUP_RE.sub("", line)
        line = _INLINE_MARKUP_RE.sub("", line)
        line = " ".join(line.split())
        if line and not re.fullmatch(r"[-=_*|: ]+", line):
            prose.append(line)
    return "\n".join(prose), code


def error_lines(code_lines: Iterable[str], prose: str = "") -> list[str]:
    """The lines that name an error: exception lines of tracebacks, ``error:`` lines, "not supported".

    Traceback frames (``File "...", line N``) and caret markers are skipped; duplicates removed.
    """
    out: dict[str, None] = {}
    for line in [*code_lines, *prose.splitlines()]:
        s = " ".join(line.split())
        if not s or _TRACE_NOISE_RE.match(line):
            continue
        if _ERROR_RE.search(s):
            out[s] = None
    return list(out)


def _cut(text: str, budget: int, count: TokenCounter) -> str:
    """The longest word-boundary prefix of ``text`` within ``budget`` tokens."""
    return _cut_counted(text, budget, count)[0]


def _cut_counted(text: str, budget: int, count: TokenCounter) -> tuple[str, int]:
    """:func:`_cut` and the number of tokens of its answer (known on the way: not counted again)."""
    if budget <= 0:
        return "", 0
    ends = getattr(count, "ends", None)
    if ends is not None:
        got = _cut_by_offsets(text, budget, count, *_prefix_ends(text, budget, ends))
        if got is not None:
            return got
    elif (n := count(text)) <= budget:
        return text, n
    return (piece := _cut_search(text, budget, count)), count(piece)


def _cut_search(text: str, budget: int, count: TokenCounter) -> str:
    """The binary search of :func:`_cut` over word prefixes."""
    words = text.split(" ")
    lo, hi = 0, len(words)
    while lo < hi:  # binary search on the number of words
        mid = (lo + hi + 1) // 2
        if count(" ".join(words[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def _prefix_ends(text: str, budget: int, ends: Callable[[str], list[int]]) -> tuple[list[int], bool]:
    """Token end offsets of a prefix of ``text`` ending at a space that holds more than ``budget``
    pieces (or of the whole text): ``(ends, whole)``. A 60 kB log is not tokenised to keep 254 pieces."""
    size = 16 * (budget + 8)
    while size < len(text):
        at = text.rfind(" ", 0, size)
        if at <= 0:
            break
        got = ends(text[:at])
        if len(got) > budget:
            return got, False
        size *= 4
    return ends(text), True


def _cut_by_offsets(text: str, budget: int, count: TokenCounter, ends: list[int],
                    whole: bool = True) -> tuple[str, int] | None:
    """:func:`_cut`'s answer from token end offsets (of the whole text, or of a prefix ending at a
    space that holds more than ``budget`` pieces), or ``None`` when it cannot be confirmed (then
    the binary search decides).

    The candidate is the longest word prefix whose word pieces, read off that tokenisation, fit
    ``budget``. It is the binary search's answer exactly when it fits and one more word does not,
    which two counts of the short prefixes confirm."""
    if len(ends) <= budget:
        return (text, len(ends)) if whole else None
    limit = ends[budget]  # a prefix ending before the end of piece budget+1 holds at most `budget` pieces
    words = text.split(" ")
    lo, pos = 0, -1  # pos: length of the prefix of `lo` words (minus one: no word yet)
    for w in words:
        nxt = pos + 1 + len(w)
        if nxt >= limit:
            break
        lo, pos = lo + 1, nxt
    piece = " ".join(words[:lo])
    n = count(piece)
    if n > budget:
        return None
    if lo < len(words) and count(" ".join(words[: lo + 1])) <= budget:
        return None
    return piece, n


def build_issue_text(
    title: str,
    body: str | None = None,
    comments: Iterable[str] = (),
    *,
    max_tokens: int = MODEL_MAX_TOKENS,
    count_tokens: TokenCounter | None = None,
    max_error_line_tokens: int = 64,
    max_code_lines: int = 4,
) -> str:
    """The text the model sees: title, error lines, body prose, a few code lines, comments.

    The result holds at most ``max_tokens - 2`` word pieces by ``count_tokens`` (default: the
    packaged model's tokenizer), leaving room for the model's two special tokens. Parts are
    filled in order of signal (title, error lines of body and comments, body prose, a few code
    lines, comment prose), each cut at
    a word boundary when the budget runs out; long error lines are cut to
    ``max_error_line_tokens`` so that several fit.
    """
    count = count_tokens or token_counter()
    budget = max_tokens - 2
    parts: list[str] = []

    def add(text: str, limit: int | None = None) -> None:
        nonlocal budget
        text = text.strip()
        if not text or budget <= 0:
            return
        sep = 1 if parts else 0  # the newline joining parts is not a word piece, but be conservative
        piece, n = _cut_counted(text, min(budget - sep, limit if limit is not None else budget), count)
        if piece:
            parts.append(piece)
            budget -= n + sep

    add(" ".join((title or "").split()))
    prose, code = markdown_to_text(body or "")
    reduced = [markdown_to_text(c or "") for c in comments]
    errors = error_lines(code, prose)
    known = set(errors)  # a 100 kB log has thousands of error lines: membership in a list was quadratic
    for c_prose, c_code in reduced:
        for e in error_lines(c_code, c_prose):
            if e not in known:
                known.add(e)
                errors.append(e)
    for line in errors:
        add(line, max_error_line_tokens)
    error_set = set(errors)
    add(" ".join(s for s in prose.splitlines() if " ".join(s.split()) not in error_set))
    shown = [" ".join(c.split()) for c in code if " ".join(c.split()) not in error_set and not _TRACE_NOISE_RE.match(c)]
    add(" ; ".join(shown[:max_code_lines]))
    seen: set[str] = set()
    for c_prose, _ in reduced:
        c_text = " ".join(s for s in c_prose.splitlines() if " ".join(s.split()) not in error_set)
        if c_text not in seen:  # "+1" and "any update?" comments repeat; once is enough
            seen.add(c_text)
            add(c_text)
    return "\n".join(parts)


def comment_bodies(conn: sqlite3.Connection, repo: str, number: int, n: int | None = None) -> list[str]:
    """The raw Markdown bodies of an issue's stored comments, oldest first (the first ``n`` when given)."""
    out: list[str] = []
    for r in conn.execute(
        f"SELECT {_COMMENT_BODY} FROM timeline_events WHERE repo = ? AND number = ? AND event = 'commented' ORDER BY seq",
        (repo, number),
    ):
        if r[0]:
            out.append(r[0])
        if n is not None and len(out) >= n:
            break
    return out


# a comment event's body, extracted by SQLite (NULL for a damaged event or a body that is not text):
# parsing each whole event in Python cost a second per 10,000 issues
_COMMENT_BODY = ("CASE WHEN json_valid(raw) AND json_type(raw, '$.body') = 'text' "
                 "THEN json_extract(raw, '$.body') END")


@dataclass(frozen=True)
class IssueDoc:
    """What the store knows of one issue's text: the one text policy of the classifier.

    ``kind`` is ``"full"`` for a crawled issue (title, body and comments, as GitHub holds them)
    and ``"title"`` for an issue known only by its title (e.g. a study issue recorded by
    ``mine import-study`` that was never crawled). Training, evaluation, classification and the
    reports all read issues through :func:`issue_docs`, so a model sees the same kind of text
    where it is measured and where it is used.
    """

    url: str
    title: str
    body: str | None = None
    comments: tuple[str, ...] = ()
    kind: str = "title"

    def as_title(self) -> "IssueDoc":
        """The same issue known by its title only (for title-only comparisons)."""
        return IssueDoc(self.url, self.title)


def issue_docs(conn: sqlite3.Connection, urls: Iterable[str], *, max_comments: int | None = MAX_COMMENTS) -> dict[str, IssueDoc]:
    """The text of each of ``urls`` the store holds: title, body and comments wherever the issue was
    crawled (kind ``full``), the recorded title where nothing else is known (kind ``title``).

    URLs without any text are left out. At most ``max_comments`` comments per issue are read
    (oldest first): the model's text keeps only the first few, and a 300-comment thread should
    not cost 300 Markdown passes.
    """
    from pipeline.classify.titles import titles_for

    urls = list(dict.fromkeys(urls))
    docs: dict[str, IssueDoc] = {}
    crawled: dict[tuple[str, int], tuple[str, str, str | None]] = {}
    for i in range(0, len(urls), 500):
        chunk = urls[i : i + 500]
        q = f"SELECT url, repo, number, title, body FROM issues WHERE url IN ({','.join('?' * len(chunk))})"
        for r in conn.execute(q, chunk):
            crawled[(r["repo"], r["number"])] = (r["url"], r["title"] or "", r["body"])
    comments: dict[tuple[str, int], list[str]] = {}
    if crawled:
        keys = list(crawled)
        for i in range(0, len(keys), 400):
            chunk = keys[i : i + 400]
            where = " OR ".join("(repo = ? AND number = ?)" for _ in chunk)
            params = [v for k in chunk for v in k]
            for r in conn.execute(f"SELECT repo, number, {_COMMENT_BODY} "
                                  f"FROM timeline_events WHERE event = 'commented' AND ({where}) "
                                  "ORDER BY repo, number, seq", params):
                got = comments.setdefault((r[0], r[1]), [])
                if max_comments is None or len(got) < max_comments:
                    body = r[2]
                    if body:
                        got.append(body)
    crawled_urls = {v[0] for v in crawled.values()}  # once, not once per URL
    titles = titles_for(conn, [u for u in urls if u not in crawled_urls]
                        + [url for url, title, _ in crawled.values() if not title])
    for key, (url, title, body) in crawled.items():
        docs[url] = IssueDoc(url, " ".join((title or titles.get(url, "")).split()), body, tuple(comments.get(key, ())), "full")
    for u in urls:
        if u not in docs and titles.get(u):
            docs[u] = IssueDoc(u, titles[u])
    return {u: docs[u] for u in urls if u in docs}


def describe_kinds(kinds: Iterable[str]) -> str:
    """``"title"``, ``"full"`` or ``"mixed"``: which text an evaluation or model used."""
    ks = set(kinds)
    return ks.pop() if len(ks) == 1 else ("mixed" if ks else "none")
