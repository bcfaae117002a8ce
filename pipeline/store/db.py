"""Open the SQLite store in WAL mode and bring its schema up to date.

The schema is versioned with ``PRAGMA user_version``: :data:`MIGRATIONS` is an ordered list,
entry *i* takes the store from version *i* to *i + 1*. Never edit a released migration;
append a new one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import UserError
from pipeline.paths import default_db

MIGRATIONS: list[str] = [
    # 1: issues, timelines and crawl state (crawler)
    """
    CREATE TABLE issues (
        repo TEXT NOT NULL,
        number INTEGER NOT NULL,
        source TEXT NOT NULL,
        url TEXT NOT NULL,
        title TEXT,
        body TEXT,
        state TEXT,
        labels TEXT NOT NULL DEFAULT '[]',      -- JSON list of label names
        is_pull INTEGER NOT NULL DEFAULT 0,
        created_at TEXT,
        updated_at TEXT,
        closed_at TEXT,
        raw TEXT NOT NULL,                      -- the issue object as GitHub sent it
        timeline_for TEXT,                      -- updated_at the stored timeline belongs to
        fetched_at TEXT NOT NULL,
        PRIMARY KEY (repo, number)
    );
    CREATE INDEX issues_source ON issues(source, updated_at);
    CREATE UNIQUE INDEX issues_url ON issues(url);
    CREATE TABLE timeline_events (
        repo TEXT NOT NULL,
        number INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        event TEXT,
        created_at TEXT,
        raw TEXT NOT NULL,
        PRIMARY KEY (repo, number, seq)
    );
    CREATE TABLE crawl_state (
        source TEXT PRIMARY KEY,
        high_water TEXT,
        last_crawl TEXT,
        state TEXT NOT NULL DEFAULT '{}'        -- JSON: resumable cursor of an unfinished run
    );
    CREATE TABLE http_cache (
        url TEXT PRIMARY KEY,
        etag TEXT,
        body TEXT,
        fetched_at TEXT
    );
    """,
    # 2: issue titles, embedding cache and predictions (classifier)
    """
    CREATE TABLE issue_titles (
        url TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        origin TEXT                             -- where the title came from (e.g. the study sheet)
    );
    CREATE TABLE embeddings (
        model_id TEXT NOT NULL,
        text_sha256 TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,                   -- float32, little endian
        created_at TEXT NOT NULL,
        PRIMARY KEY (model_id, text_sha256)
    );
    CREATE TABLE predictions (
        url TEXT NOT NULL,
        dimension TEXT NOT NULL,
        category TEXT NOT NULL,
        probability REAL NOT NULL,
        probs TEXT NOT NULL,                    -- JSON {category: probability} of every category
        model_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (url, dimension, model_id)
    );
    CREATE INDEX predictions_model ON predictions(model_id, created_at);
    """,
    # 3: operators named in each issue (pipeline.operators.store), with what they were extracted from
    """
    CREATE TABLE issue_operators (
        url TEXT NOT NULL,
        namespace TEXT NOT NULL,                -- onnx, aten, tf, paddle, sklearn
        name TEXT NOT NULL,
        PRIMARY KEY (url, namespace, name)
    );
    CREATE TABLE operator_extractions (
        url TEXT PRIMARY KEY,
        text_sha256 TEXT NOT NULL,              -- of the text the operators were extracted from
        version TEXT NOT NULL,                  -- extractor version (rules + dictionary digest)
        extracted_at TEXT NOT NULL
    );
    """,
]


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def connect(path: Path | str | None = None, *, migrate: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the store at ``path`` (default ``data/mine.db``), WAL mode.

    Rows come back as :class:`sqlite3.Row`. Migrations run in one transaction each, so a
    killed process leaves the store at a whole version.
    """
    p = Path(path) if path else default_db()
    if str(p) != ":memory:":
        p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    if migrate:
        _migrate(conn)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``with transaction(conn):`` one write transaction (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error).

    The store runs in autocommit mode; inside a caller's transaction this joins it and lets the
    caller commit.
    """
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_store(path: Path | str | None = None, *, must_exist: bool = False,
               hint: str | None = None) -> sqlite3.Connection:
    """:func:`connect` for a command: a path that cannot be opened as the store (a folder, a
    file that is not SQLite, no permission) is a :class:`UserError`.

    ``must_exist=True`` (commands that only read) refuses to create a new empty store, so a
    mistyped ``--db`` is reported instead of answered with zeros; ``hint`` says how to make one.
    """
    shown = Path(path) if path else default_db()
    if must_exist and not shown.is_file():
        raise UserError(f"{shown}: no store there ({hint or f'crawl into it first: mine crawl --db {shown}'})")
    try:
        return connect(shown)
    except (sqlite3.DatabaseError, OSError) as e:
        raise UserError(f"{shown}: cannot open the store: {e}") from None


def _migrate(conn: sqlite3.Connection) -> None:
    version = schema_version(conn)
    for i, script in enumerate(MIGRATIONS[version:], start=version):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # re-read under the write lock: another process may have migrated meanwhile
            if schema_version(conn) != i:
                conn.execute("ROLLBACK")
                continue
            for stmt in _statements(script):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {i + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit implicitly)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
