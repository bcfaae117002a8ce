"""The operators of every issue in the store (tables ``issue_operators`` and ``operator_extractions``).

:func:`refresh_operators` extracts the operators of each issue whose text (title, body,
comments) or whose extractor version (:func:`pipeline.operators.extract.extractor_version`)
changed since the last extraction, and nothing else; :func:`operators_by_url` reads them.
Issues known only by title (``issue_titles``: the study's issues without crawled text) are
extracted from their title.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.operators.extract import Operator, extract_operators, extractor_version
from pipeline.store.db import transaction


@dataclass
class IssueText:
    url: str
    repo: str
    title: str
    body: str
    comments: list[str]

    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.repo, self.title, self.body, self.comments]).encode()).hexdigest()


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def issue_texts(conn: sqlite3.Connection) -> Iterator[IssueText]:
    """Every issue the store has text for: crawled issues (with their comments), then title-only issues."""
    from pipeline.classify.text import comment_bodies
    from pipeline.sources import parse_issue_url

    seen = set()
    for r in conn.execute("SELECT url, repo, number, title, body FROM issues WHERE is_pull = 0 ORDER BY url").fetchall():
        seen.add(r["url"])
        yield IssueText(r["url"], r["repo"], r["title"] or "", r["body"] or "", comment_bodies(conn, r["repo"], r["number"]))
    if _has_table(conn, "issue_titles"):
        for url, title in conn.execute("SELECT url, title FROM issue_titles ORDER BY url").fetchall():
            if url not in seen:
                try:
                    repo = parse_issue_url(url)[0]
                except ValueError:
                    continue
                yield IssueText(url, repo, title or "", "", [])


@dataclass
class RefreshResult:
    issues: int          # issues with text
    extracted: int       # of which (re-)extracted now
    version: str


def refresh_operators(conn: sqlite3.Connection, *, progress: bool = False, batch: int = 200) -> RefreshResult:
    """Extract the operators of issues whose text or extractor version changed; returns what was done."""
    version = extractor_version()
    known = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT url, text_sha256, version FROM operator_extractions")}
    texts = list(issue_texts(conn))
    todo = [(t, t.digest()) for t in texts if known.get(t.url) != (t.digest(), version)]
    if todo:
        from datetime import UTC, datetime

        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        track = _progress(progress, len(todo))
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            rows = [(t.url, extract_operators(t.title, t.body, t.comments, t.repo), digest) for t, digest in chunk]
            with transaction(conn):
                for url, ops, digest in rows:
                    conn.execute("DELETE FROM issue_operators WHERE url = ?", (url,))
                    conn.executemany("INSERT INTO issue_operators(url, namespace, name) VALUES (?, ?, ?)",
                                     [(url, o.namespace, o.name) for o in ops])
                    conn.execute("INSERT INTO operator_extractions(url, text_sha256, version, extracted_at) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT(url) DO UPDATE SET text_sha256 = excluded.text_sha256, "
                                 "version = excluded.version, extracted_at = excluded.extracted_at",
                                 (url, digest, version, now))
            track(len(chunk))
        track(None)
    return RefreshResult(len(texts), len(todo), version)


def _progress(enabled: bool, total: int):
    """A callback advancing a rich progress bar on stderr (``None`` closes it); a no-op when disabled."""
    if not enabled:
        return lambda n: None
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    task = bar.add_task("extracting operators", total=total)
    bar.start()

    def step(n: int | None) -> None:
        if n is None:
            bar.stop()
        else:
            bar.advance(task, n)

    return step


def operators_by_url(conn: sqlite3.Connection) -> dict[str, list[Operator]]:
    """``{url: [Operator, ...]}`` of every extracted issue (issues naming none map to ``[]``)."""
    out: dict[str, list[Operator]] = {r[0]: [] for r in conn.execute("SELECT url FROM operator_extractions")}
    for url, ns, name in conn.execute("SELECT url, namespace, name FROM issue_operators ORDER BY url, namespace, name"):
        out.setdefault(url, []).append(Operator(ns, name))
    return out


def operators_for(conn: sqlite3.Connection, url: str) -> list[Operator]:
    """The stored operators of one issue (``[]`` when none or not extracted, or on a store without the tables)."""
    if not _has_table(conn, "issue_operators"):
        return []
    return [Operator(r[0], r[1]) for r in conn.execute(
        "SELECT namespace, name FROM issue_operators WHERE url = ? ORDER BY namespace, name", (url,))]
