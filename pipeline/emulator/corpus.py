"""Real issues for the emulator: read a corpus file (JSONL) and prepare it to be served.

The format is the one of ``../shared/github-issues/*.jsonl`` (see its README): one JSON object
per line with the keys

``url, repo, number``        the issue (``url`` must be ``https://github.com/{repo}/issues/{number}``)
``title, state, labels``     as on GitHub: a string, ``open``/``closed``, a list of label names
``created_at, author``       the day the description was written (``YYYY-MM-DD``) and its author;
                             ``null`` when the excerpt starts later in the thread
``body``                     the description (GitHub Markdown) or ``null``
``comments``                 the following comments in order: ``{author, created_at, body}``
``truncated``                ``true`` when the excerpt was cut (metadata only)

:func:`load_corpus` validates every line and returns :class:`CorpusIssue` records; a bad
line is a :class:`~pipeline.errors.UserError` naming ``file:line`` and the field, and nothing
of the file is returned then. :func:`as_sampled` gives an issue the state and labels the study
saw when it sampled it (closed, its source's required labels, none of the excluded ones).
How records become GitHub objects and timelines is :mod:`pipeline.emulator.data`'s job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any, Iterable

from pipeline.errors import UserError
from pipeline.sources import Source, issue_url

_REPO_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+")
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_KEYS = ("url", "repo", "number", "title", "state", "labels", "created_at", "author", "body", "comments", "truncated")
_COMMENT_KEYS = ("author", "created_at", "body")


@dataclass(frozen=True)
class CorpusComment:
    """One comment of an excerpt: who wrote it, on which day, and its Markdown text."""

    author: str | None
    created_at: str
    body: str


@dataclass(frozen=True)
class CorpusIssue:
    """One issue of a corpus file, as the file gives it (``where`` = ``file:line``)."""

    url: str
    repo: str
    number: int
    title: str
    state: str
    labels: tuple[str, ...]
    created_at: str | None
    author: str | None
    body: str | None
    comments: tuple[CorpusComment, ...]
    truncated: bool
    where: str = ""


class _Bad(Exception):
    """A field at fault in one line (turned into a UserError with the file and line)."""


def _text(obj: dict, key: str, *, nullable: bool = False, nonempty: bool = False, where: str = "") -> str | None:
    value = obj[key]
    if value is None and nullable:
        return None
    if not isinstance(value, str) or (nonempty and not value.strip()):
        want = "a non-empty string" if nonempty else "a string"
        raise _Bad(f"field '{where}{key}' must be {want}{' or null' if nullable else ''} (got {_show(value)})")
    return value


def _day(obj: dict, key: str, *, nullable: bool, where: str = "") -> str | None:
    value = obj[key]
    if value is None and nullable:
        return None
    ok = isinstance(value, str) and _DAY_RE.fullmatch(value)
    if ok:
        try:
            date.fromisoformat(value)
        except ValueError:
            ok = False
    if not ok:
        raise _Bad(f"field '{where}{key}' must be a day YYYY-MM-DD{' or null' if nullable else ''} (got {_show(value)})")
    return value


def _login(obj: dict, key: str, where: str = "") -> str | None:
    value = obj[key]
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
        raise _Bad(f"field '{where}{key}' must be a GitHub login or null (got {_show(value)})")
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_keys(obj: Any, keys: tuple[str, ...], what: str) -> dict:
    if not isinstance(obj, dict):
        raise _Bad(f"{what} must be a JSON object (got {_show(obj)})")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise _Bad(f"{what} lacks field(s) {', '.join(missing)}")
    unknown = sorted(set(obj) - set(keys))
    if unknown:
        raise _Bad(f"{what} has unknown field(s) {', '.join(unknown)}; known: {', '.join(keys)}")
    return obj


def parse_issue(obj: Any, where: str = "") -> CorpusIssue:
    """One decoded line -> :class:`CorpusIssue`; ``_Bad`` names the field at fault."""
    obj = _check_keys(obj, _KEYS, "the line")
    repo = _text(obj, "repo", nonempty=True)
    if not _REPO_RE.fullmatch(repo):
        raise _Bad(f"field 'repo' must be owner/name (got {_show(repo)})")
    number = obj["number"]
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise _Bad(f"field 'number' must be a positive integer (got {_show(number)})")
    url = _text(obj, "url", nonempty=True)
    if url.rstrip("/") != issue_url(repo, number):
        raise _Bad(f"field 'url' must be {issue_url(repo, number)} for repo {repo} and number {number} (got {_show(url)})")
    title = _text(obj, "title", nonempty=True)
    state = obj["state"]
    if state not in ("open", "closed"):
        raise _Bad(f"field 'state' must be open or closed (got {_show(state)})")
    labels = obj["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, str) and x.strip() for x in labels):
        raise _Bad(f"field 'labels' must be a list of label names (got {_show(labels)})")
    created = _day(obj, "created_at", nullable=True)
    author = _login(obj, "author")
    body = _text(obj, "body", nullable=True)
    if not isinstance(obj["comments"], list):
        raise _Bad(f"field 'comments' must be a list (got {_show(obj['comments'])})")
    comments = []
    previous = created
    for i, c in enumerate(obj["comments"]):
        at = f"comments[{i}]."
        c = _check_keys(c, _COMMENT_KEYS, f"field 'comments[{i}]'")
        day = _day(c, "created_at", nullable=False, where=at)
        if previous is not None and day < previous:
            # a thread's entries are in order: an earlier day means the excerpt is damaged
            raise _Bad(f"field '{at}created_at' {day} is before the previous entry's day {previous}")
        previous = day
        comments.append(CorpusComment(author=_login(c, "author", at), created_at=day, body=_text(c, "body", where=at)))
    if not isinstance(obj["truncated"], bool):
        raise _Bad(f"field 'truncated' must be true or false (got {_show(obj['truncated'])})")
    return CorpusIssue(url=issue_url(repo, number), repo=repo, number=number, title=title, state=state,
                       labels=tuple(dict.fromkeys(labels)), created_at=created, author=author, body=body,
                       comments=tuple(comments), truncated=obj["truncated"], where=where)


def load_corpus(path: Path | str) -> list[CorpusIssue]:
    """Every issue of a corpus file, validated; a :class:`UserError` names ``file:line`` and the field
    at fault (a repeated issue, a bad value, a line that is not JSON), and then nothing is returned."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{p}: corpus file not found") from None
    except IsADirectoryError:
        raise UserError(f"{p}: is a folder; --corpus takes a JSONL file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{p}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise UserError(f"{p}: cannot read the corpus file: {e.strerror or e}") from None
    out: list[CorpusIssue] = []
    seen: dict[tuple[str, int], int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        try:
            rec = parse_issue(obj, where)
        except _Bad as e:
            raise UserError(f"{where}: {e}") from None
        key = (rec.repo.lower(), rec.number)
        if key in seen:
            raise UserError(f"{where}: issue {rec.url} is already on line {seen[key]}")
        seen[key] = n
        out.append(rec)
    if not out:
        raise UserError(f"{p}: no issues in the corpus file")
    return out


def as_sampled(issue: CorpusIssue, source: Source | None) -> CorpusIssue:
    """The issue as the study saw it when it sampled it: closed, carrying ``source``'s required
    labels and none of its excluded ones (label names compared case-insensitively, as GitHub
    does). Without a source (a repository no source covers) only the state changes."""
    labels = list(issue.labels)
    if source is not None:
        excluded = {x.casefold() for x in source.exclude_labels}
        labels = [x for x in labels if x.casefold() not in excluded]
        have = {x.casefold() for x in labels}
        labels += [x for x in source.labels if x.casefold() not in have]
    return replace(issue, state="closed", labels=tuple(labels))


def merge_corpora(parts: Iterable[list[CorpusIssue]]) -> list[CorpusIssue]:
    """Issues of several files in order; an issue given twice is a :class:`UserError` naming both places."""
    seen: dict[tuple[str, int], CorpusIssue] = {}
    out = []
    for issues in parts:
        for rec in issues:
            key = (rec.repo.lower(), rec.number)
            if key in seen:
                raise UserError(f"{rec.where}: issue {rec.url} is already given at {seen[key].where}")
            seen[key] = rec
            out.append(rec)
    return out


def served_corpus(corpus: Iterable[Path | str] = (), relevant: Iterable[Path | str] = (),
                  sources_file: Path | str | None = None) -> list[CorpusIssue]:
    """The real issues an emulator serves: ``corpus`` files as they are, ``relevant`` files as the
    study sampled them (:func:`as_sampled`, rules from ``sources_file``, default the packaged
    ``sources.yaml`` or ``$MINE_SOURCES``)."""
    parts = [load_corpus(p) for p in corpus]
    relevant = list(relevant)
    if relevant:
        from pipeline.sources import load_sources

        by_repo = {s.repo.lower(): s for s in load_sources(sources_file)}
        parts += [[as_sampled(x, by_repo.get(x.repo.lower())) for x in load_corpus(p)] for p in relevant]
    return merge_corpora(parts)
