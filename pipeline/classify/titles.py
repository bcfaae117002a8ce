"""Issue titles known without crawling (the study's spreadsheet), kept in table ``issue_titles``.

The study's 200 issues are labelled, but only their titles are available offline; the
import of the study (``mine import-study --db``) records them here so the classifier can
train and evaluate on them. Titles are data from the shared folder and are never committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from pipeline.store.db import transaction
from pipeline.errors import UserError
from pipeline.sources import parse_issue_url


def record_titles(conn: sqlite3.Connection, rows: Iterable[tuple[str, str]], origin: str = "study") -> int:
    """Store ``(url, title)`` pairs in ``issue_titles`` (insert or replace); returns how many were written.

    Empty titles are skipped; a URL that is not a GitHub issue URL raises :class:`UserError`.
    """
    clean: list[tuple[str, str, str]] = []
    for url, title in rows:
        url = str(url or "").strip()
        title = " ".join(str(title or "").split())
        if not url or not title or title.lower() == "nan":
            continue
        try:
            parse_issue_url(url)
        except ValueError as e:
            raise UserError(f"issue title for {url!r}: {e}") from None
        clean.append((url, title, origin))
    with transaction(conn):
        conn.executemany(
            "INSERT INTO issue_titles(url, title, origin) VALUES (?, ?, ?) "
            "ON CONFLICT(url) DO UPDATE SET title = excluded.title, origin = excluded.origin",
            clean,
        )
    return len(clean)


def titles_for(conn: sqlite3.Connection, urls: Iterable[str] | None = None) -> dict[str, str]:
    """Known titles by URL: from ``issue_titles`` first, then from crawled ``issues`` for the rest."""
    out: dict[str, str] = {}
    if urls is None:
        for r in conn.execute("SELECT url, title FROM issue_titles"):
            out[r[0]] = r[1]
        for r in conn.execute("SELECT url, title FROM issues WHERE title IS NOT NULL"):
            out.setdefault(r[0], r[1])
        return out
    wanted = list(dict.fromkeys(urls))
    for table in ("issue_titles", "issues"):
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            q = f"SELECT url, title FROM {table} WHERE title IS NOT NULL AND url IN ({','.join('?' * len(chunk))})"
            for r in conn.execute(q, chunk):
                out.setdefault(r[0], r[1])
    return {u: out[u] for u in wanted if u in out}
