"""What the labelling page shows about one issue, read from the store.

Works on a store at any stage: an issue known only by URL (not crawled yet) still yields a
view with its link, and its title when table ``issue_titles`` has it. Tables written by other
stages (``issue_titles``, ``predictions``) are optional.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field

from pipeline.classify.text import comment_bodies
from pipeline.labelling.render import render_markdown
from pipeline.sources import parse_issue_url

_API_COMMIT_RE = re.compile(r"^https://api\.github\.com/repos/([^/]+/[^/]+)/commits/([0-9a-fA-F]{7,40})$")


@dataclass
class IssueView:
    """Everything the page shows about one issue (HTML fields are already sanitized)."""

    url: str
    repo: str
    number: int
    known: bool = False
    title: str = ""
    state: str = ""
    labels: list[str] = field(default_factory=list)
    created_at: str = ""
    closed_at: str = ""
    author: str = ""
    body_html: str = ""
    comments: list[dict] = field(default_factory=list)   # author, created_at, url, html
    links: list[dict] = field(default_factory=list)      # kind, text, href, created_at
    operators: list[str] = field(default_factory=list)   # "namespace:Name" the issue names (pipeline.operators)


def table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def _github_href(url: object) -> str:
    """Only links to github.com are shown as links (they come from stored API payloads)."""
    u = str(url or "")
    return u if u.startswith("https://github.com/") else ""


def load_issue(conn: sqlite3.Connection, url: str) -> IssueView:
    """The view of ``url``: crawled issue + timeline if stored, else what is known (title)."""
    repo, number = parse_issue_url(url)
    view = IssueView(url=url, repo=repo, number=number)
    row = conn.execute("SELECT * FROM issues WHERE url = ?", (url,)).fetchone() if table_exists(conn, "issues") else None
    if row is None and table_exists(conn, "issues"):
        row = conn.execute("SELECT * FROM issues WHERE repo = ? AND number = ?", (repo, number)).fetchone()
    if row is None:
        if table_exists(conn, "issue_titles"):
            t = conn.execute("SELECT title FROM issue_titles WHERE url = ?", (url,)).fetchone()
            view.title = t[0] if t else ""
        view.operators = issue_operators(conn, url, view.repo, view.title)
        return view
    view.known = True
    view.title = row["title"] or ""
    view.state = row["state"] or ""
    try:
        view.labels = [str(x["name"] if isinstance(x, dict) else x) for x in json.loads(row["labels"] or "[]")]
    except (json.JSONDecodeError, TypeError, KeyError):
        view.labels = []
    view.created_at = row["created_at"] or ""
    view.closed_at = row["closed_at"] or ""
    try:
        view.author = (json.loads(row["raw"] or "{}").get("user") or {}).get("login", "")
    except (json.JSONDecodeError, AttributeError):
        view.author = ""
    view.body_html = render_markdown(row["body"], view.url)
    events = conn.execute(
        "SELECT event, created_at, raw FROM timeline_events WHERE repo = ? AND number = ? ORDER BY seq",
        (row["repo"], row["number"]),
    ).fetchall()
    for ev in events:
        try:
            raw = json.loads(ev["raw"])
        except json.JSONDecodeError:
            continue
        _add_event(view, ev["event"] or raw.get("event") or "", ev["created_at"] or raw.get("created_at") or "", raw)
    view.operators = issue_operators(conn, url, view.repo, view.title, row["body"] or "",
                                     comment_bodies(conn, row["repo"], row["number"]))
    return view


def issue_operators(conn: sqlite3.Connection, url: str, repo: str, title: str, body: str = "",
                    comments: list[str] | None = None) -> list[str]:
    """The operators an issue names: the store's (``mine operators refresh``) when extracted from this
    very text by this extractor, else extracted now (nothing is written)."""
    from pipeline.operators.extract import extract_operators, extractor_version
    from pipeline.operators.store import IssueText, operators_for

    text = IssueText(url, repo, title, body, list(comments or []))
    if table_exists(conn, "operator_extractions"):
        row = conn.execute("SELECT text_sha256, version FROM operator_extractions WHERE url = ?", (url,)).fetchone()
        if row is not None and (row[0], row[1]) == (text.digest(), extractor_version()):
            return [str(o) for o in operators_for(conn, url)]
    return [str(o) for o in extract_operators(title, body, comments or [], repo)]


def _add_event(view: IssueView, kind: str, when: str, raw: dict) -> None:
    who = raw.get("user") or raw.get("actor")
    actor = str(who.get("login") or "") if isinstance(who, dict) else ""
    if kind == "commented":
        view.comments.append({
            "author": actor, "created_at": when, "url": _github_href(raw.get("html_url")),
            "html": render_markdown(raw.get("body"), view.url),
        })
    elif kind in ("closed", "referenced", "committed") and (raw.get("commit_id") or raw.get("sha")):
        sha = str(raw.get("commit_id") or raw.get("sha"))
        m = _API_COMMIT_RE.match(str(raw.get("commit_url") or ""))
        repo = m.group(1) if m else view.repo
        verb = {"closed": "closed by commit", "referenced": "referenced in commit", "committed": "commit"}[kind]
        view.links.append({"kind": verb, "text": f"{repo}@{sha[:10]}",
                           "href": f"https://github.com/{repo}/commit/{sha}", "created_at": when})
    elif kind == "cross-referenced":
        issue = (raw.get("source") or {}).get("issue") or {}
        if issue:
            src_repo = (issue.get("repository") or {}).get("full_name") or ""
            what = "pull request" if "pull_request" in issue else "issue"
            text = f"{src_repo}#{issue.get('number', '?')} {issue.get('title') or ''}".strip()
            view.links.append({"kind": f"mentioned in {what}", "text": text,
                               "href": _github_href(issue.get("html_url")), "created_at": when})
    elif kind in ("connected", "disconnected"):
        # the REST timeline says only that a PR or issue was linked; show it with the actor
        subject = (raw.get("source") or {}).get("issue") or raw.get("subject") or {}
        href = _github_href(subject.get("html_url")) if isinstance(subject, dict) else ""
        text = (subject.get("title") if isinstance(subject, dict) else "") or (f"by {actor}" if actor else "linked item")
        view.links.append({"kind": kind, "text": text, "href": href, "created_at": when})


def predictions_for(conn: sqlite3.Connection, url: str) -> dict[str, dict]:
    """The classifier's latest suggestion per dimension: ``{dim: {category, probability, model_id}}``."""
    if not table_exists(conn, "predictions"):
        return {}
    out: dict[str, dict] = {}
    rows = conn.execute(
        "SELECT dimension, category, probability, model_id FROM predictions WHERE url = ? ORDER BY created_at",
        (url,),
    ).fetchall()
    for r in rows:  # later models win
        out[r["dimension"]] = {"category": r["category"], "probability": float(r["probability"]), "model_id": r["model_id"]}
    return out


def issue_text(view: IssueView, conn: sqlite3.Connection) -> str:
    """Plain text of an issue (title, body, comments) for export; raw Markdown, not HTML."""
    parts = [view.title]
    row = conn.execute("SELECT body FROM issues WHERE repo = ? AND number = ?", (view.repo, view.number)).fetchone() \
        if table_exists(conn, "issues") else None
    if row:
        parts += [row["body"], *comment_bodies(conn, view.repo, view.number)]
    return "\n\n".join(p for p in parts if p)
