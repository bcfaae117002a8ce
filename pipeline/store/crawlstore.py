"""Crawler-side reads and writes of the store: issues, timelines, crawl state, ETag cache.

Every write that changes an issue is one transaction holding the issue row, its whole timeline
and the source's resume cursor, so a process killed at any instant leaves either the old issue
or the new issue-with-timeline, never half of one, and the cursor never runs ahead of what is
stored. Upserts are idempotent: writing the same issue twice leaves the same rows.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from pipeline.store.db import transaction

ISSUE_COLUMNS = ("repo", "number", "source", "url", "title", "body", "state", "labels", "is_pull",
                 "created_at", "updated_at", "closed_at", "raw")


def now_utc() -> str:
    """The current time in GitHub's timestamp format."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class CrawlState:
    """A source's crawl bookkeeping: high-water mark, last finished crawl, unfinished-run cursor."""

    source: str
    high_water: str | None = None
    last_crawl: str | None = None
    state: dict | None = None


def known_issues(conn: sqlite3.Connection, repo: str) -> dict[int, tuple[str | None, str | None]]:
    """``{number: (updated_at, timeline_for)}`` of the stored issues of ``repo``."""
    rows = conn.execute("SELECT number, updated_at, timeline_for FROM issues WHERE repo = ?", (repo,))
    return {r[0]: (r[1], r[2]) for r in rows}


def get_crawl_state(conn: sqlite3.Connection, source: str) -> CrawlState:
    row = conn.execute("SELECT high_water, last_crawl, state FROM crawl_state WHERE source = ?", (source,)).fetchone()
    if row is None:
        return CrawlState(source)
    return CrawlState(source, row[0], row[1], json.loads(row[2] or "{}"))


def _put_state(conn: sqlite3.Connection, source: str, **fields: Any) -> None:
    conn.execute("INSERT INTO crawl_state(source) VALUES (?) ON CONFLICT(source) DO NOTHING", (source,))
    for key, value in fields.items():
        if key == "state":
            value = json.dumps(value or {}, sort_keys=True)
        conn.execute(f"UPDATE crawl_state SET {key} = ? WHERE source = ?", (value, source))


def set_crawl_state(conn: sqlite3.Connection, source: str, **fields: Any) -> None:
    """Update ``high_water``, ``last_crawl`` and/or ``state`` (a dict) of ``source`` atomically."""
    with transaction(conn):
        _put_state(conn, source, **fields)


def save_issue(
    conn: sqlite3.Connection,
    fields: dict[str, Any],
    events: Iterable[dict[str, Any]],
    *,
    fetched_at: str,
    source_state: tuple[str, dict] | None = None,
) -> None:
    """Upsert one issue and replace its timeline, in one transaction.

    ``events`` are :func:`pipeline.crawl.backend.event_fields` dicts. ``timeline_for`` is set
    to the issue's ``updated_at``: the timeline belongs to that version of the issue.
    ``source_state=(source, state)`` also records the resume cursor in the same transaction.
    """
    cols = ", ".join(ISSUE_COLUMNS) + ", timeline_for, fetched_at"
    marks = ", ".join("?" for _ in ISSUE_COLUMNS) + ", ?, ?"
    updates = ", ".join(f"{c} = excluded.{c}" for c in ISSUE_COLUMNS[2:]) + ", timeline_for = excluded.timeline_for, fetched_at = excluded.fetched_at"
    values = [fields[c] for c in ISSUE_COLUMNS] + [fields["updated_at"], fetched_at]
    with transaction(conn):
        conn.execute(f"INSERT INTO issues ({cols}) VALUES ({marks}) ON CONFLICT(repo, number) DO UPDATE SET {updates}", values)
        conn.execute("DELETE FROM timeline_events WHERE repo = ? AND number = ?", (fields["repo"], fields["number"]))
        conn.executemany(
            "INSERT INTO timeline_events (repo, number, seq, event, created_at, raw) VALUES (?, ?, ?, ?, ?, ?)",
            [(fields["repo"], fields["number"], e["seq"], e["event"], e["created_at"], e["raw"]) for e in events],
        )
        if source_state:
            _put_state(conn, source_state[0], state=source_state[1])


def delete_issue(conn: sqlite3.Connection, repo: str, number: int, source_state: tuple[str, dict] | None = None) -> None:
    """Remove an issue that is no longer relevant (e.g. it gained an excluded label)."""
    with transaction(conn):
        conn.execute("DELETE FROM timeline_events WHERE repo = ? AND number = ?", (repo, number))
        conn.execute("DELETE FROM issues WHERE repo = ? AND number = ?", (repo, number))
        if source_state:
            _put_state(conn, source_state[0], state=source_state[1])


def cache_get(conn: sqlite3.Connection, url: str) -> tuple[str | None, dict | None]:
    """The cached ``(etag, meta)`` of a URL (the key never contains a token)."""
    row = conn.execute("SELECT etag, body FROM http_cache WHERE url = ?", (url,)).fetchone()
    if row is None:
        return None, None
    return row[0], json.loads(row[1]) if row[1] else None


def cache_put(conn: sqlite3.Connection, url: str, etag: str | None, meta: dict, *, replace_prefix: str | None = None,
              source_state: tuple[str, dict] | None = None) -> None:
    """Remember a page's ETag and meta; ``replace_prefix`` drops older entries of that listing."""
    with transaction(conn):
        if replace_prefix:
            conn.execute("DELETE FROM http_cache WHERE substr(url, 1, ?) = ?", (len(replace_prefix), replace_prefix))
        if etag:
            conn.execute(
                "INSERT INTO http_cache (url, etag, body, fetched_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(url) DO UPDATE SET etag = excluded.etag, body = excluded.body, fetched_at = excluded.fetched_at",
                (url, etag, json.dumps(meta, sort_keys=True), now_utc()),
            )
        if source_state:
            _put_state(conn, source_state[0], state=source_state[1])


def source_status(conn: sqlite3.Connection, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per source: issues, issues with a timeline, last crawl time, high-water mark."""
    out: dict[str, dict[str, Any]] = {}
    names = list(names)   # read twice below: a generator would be empty the second time
    counts = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT source, COUNT(*), SUM(timeline_for IS NOT NULL) FROM issues GROUP BY source")}
    states = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT source, high_water, last_crawl FROM crawl_state")}
    for name in names + sorted((set(counts) | set(states)) - set(names)):
        n, t = counts.get(name, (0, 0))
        hw, last = states.get(name, (None, None))
        out[name] = {"issues": int(n or 0), "timelines": int(t or 0), "last_crawl": last, "high_water": hw}
    return out
