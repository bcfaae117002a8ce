"""Open the SQLite store in WAL mode and bring its schema up to date, never touching a file
that is not a mine store.

The schema is versioned with ``PRAGMA user_version``: :data:`MIGRATIONS` is an ordered list,
entry *i* takes the store from version *i* to *i + 1*. Never edit a released migration;
append a new one.

A store is marked with ``PRAGMA application_id`` = :data:`APPLICATION_ID`. Before anything is
written, :func:`check_store` inspects the file through a read-only connection and refuses
(:class:`StoreError`, one line, exit 2, the file's bytes unchanged): a folder, a missing folder,
a file or folder the user cannot write, a file that is not SQLite, another program's SQLite
database, a store whose schema is newer than this release knows, and a damaged store
(``PRAGMA quick_check``). Stores written before the mark existed (application_id 0, a known
schema version, the tables of that version) are recognised and get the mark.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.paths import PROJECT_ROOT, default_db

# "MINE" in ASCII: SQLite's header field for "which program's file is this" (file(1) shows it too)
APPLICATION_ID = 0x4D494E45
_SQLITE_MAGIC = b"SQLite format 3\x00"
# the folder of the default store is the project's own: created when missing (any other
# folder must exist, so a mistyped --db is an error instead of a new empty store)
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"


class StoreError(UserError):
    """A path that must not be opened as the store; the message names it and says why."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: cannot open the store: {reason}")


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
    # 4: the classifier's `text` part of each issue text (pipeline.classify.features.text_parts), so a
    # run whose embeddings are cached does not reduce Markdown and tokenise every thread again
    """
    CREATE TABLE text_parts (
        key TEXT PRIMARY KEY,                   -- sha256 of the text code, tokenizer, spec and the issue's text
        text TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
]


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _tables_of(version: int) -> set[str]:
    """Tables a store of schema ``version`` holds (from the migrations' CREATE TABLE lines)."""
    text = "\n".join(MIGRATIONS[:version])
    return set(re.findall(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", text, re.IGNORECASE))


@dataclass(frozen=True)
class StoreCheck:
    """What :func:`check_store` found: ``kind`` is ``new`` (no file, an empty file or an empty
    database), ``store`` (marked) or ``unmarked`` (a store of a release before the mark)."""

    path: Path
    kind: str
    version: int = 0


def check_store(path: Path | str) -> StoreCheck:
    """Inspect ``path`` without writing to it; :class:`StoreError` if it must not be opened as
    the store (see the module docstring). Creates the project's ``data/`` folder when missing."""
    p = Path(path)
    if p.is_dir():
        raise StoreError(p, f"is a folder, not a store file (e.g. --db {p / 'mine.db'})")
    folder = p.parent
    if not folder.exists() and folder.resolve() == DEFAULT_DATA_DIR.resolve():
        folder.mkdir(parents=True, exist_ok=True)
    if not folder.is_dir():
        raise StoreError(p, f"the folder {folder} does not exist; create it first (mkdir -p {folder}) "
                         "or check the path")
    exists = p.exists()
    if exists and not os.access(p, os.R_OK):
        raise StoreError(p, "not readable by you; nothing was written")
    if exists and not os.access(p, os.W_OK):
        raise StoreError(p, "read-only (not writable by you); nothing was written; make it writable "
                         "(chmod u+w) or work on a copy")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(p, f"the folder {folder} is not writable by you (the store keeps its -wal, -shm "
                         "and lock files beside it); nothing was written")
    if not exists:
        return StoreCheck(p, "new")
    with open(p, "rb") as f:
        head = f.read(100)
    if not head:
        return StoreCheck(p, "new")   # an empty file is an empty SQLite database
    if not head.startswith(_SQLITE_MAGIC):
        raise StoreError(p, "not an SQLite database file; nothing was written")
    try:
        return _inspect(p)
    except sqlite3.DatabaseError as e:
        raise StoreError(p, f"the store is damaged (SQLite: {e}); nothing was written; restore a backup, "
                         f"or salvage it: sqlite3 {p} .recover | sqlite3 recovered.db") from None


def _inspect(p: Path) -> StoreCheck:
    # read-only: a foreign or damaged file must come out byte for byte as it went in
    with closing(sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True, timeout=30)) as ro:
        app_id = ro.execute("PRAGMA application_id").fetchone()[0]
        version = schema_version(ro)
        tables = {r[0] for r in ro.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        known = len(MIGRATIONS)
        if app_id == APPLICATION_ID:
            kind = "store"
        elif app_id == 0 and not tables and version == 0:
            return StoreCheck(p, "new")
        elif app_id == 0 and version >= 1 and _tables_of(min(version, known)) <= tables:
            kind = "unmarked"
        else:
            shown = ", ".join(sorted(tables)[:6]) + (", ..." if len(tables) > 6 else "")
            raise StoreError(p, "not a mine store but another program's SQLite database "
                             f"(application_id {app_id:#x}, user_version {version}, tables: {shown or 'none'}); "
                             "nothing was written; choose another --db")
        if version > known:
            raise StoreError(p, f"the store's schema version {version} is newer than this release knows "
                             f"({known}); nothing was written; update the pipeline (git pull; make install)")
        problems = [r[0] for r in ro.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise StoreError(p, f"the store is damaged (SQLite quick_check: {problems[0]}); nothing was written; "
                             f"restore a backup, or salvage it: sqlite3 {p} .recover | sqlite3 recovered.db")
        return StoreCheck(p, kind, version)


def connect(path: Path | str | None = None, *, migrate: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the store at ``path`` (default ``data/mine.db``), WAL mode.

    :func:`check_store` runs first: a path that is not (or cannot become) a mine store raises
    :class:`StoreError` before anything is written. Rows come back as :class:`sqlite3.Row`.
    Migrations run in one transaction each, so a killed process leaves the store at a whole version.
    """
    p = Path(path) if path else default_db()
    if str(p) != ":memory:":
        check_store(p)
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


def copy_embeddings(conn: sqlite3.Connection, source: Path | str) -> int:
    """Copy the cached embeddings of the store at ``source`` into ``conn``'s store; returns how many were new.

    Embeddings are keyed by (embedding model id, sha256 of the text), so they are valid in any
    store: a second store over the same issues (the demo's, a test's) need not embed them again.
    ``source`` goes through :func:`check_store` first and is only read.
    """
    if check_store(source).kind not in ("store", "unmarked"):
        raise StoreError(Path(source), "not a mine store with embeddings to copy")
    before = conn.total_changes
    conn.execute("ATTACH DATABASE ? AS src", (str(Path(source).resolve()),))
    try:
        with transaction(conn):
            conn.execute("INSERT OR IGNORE INTO embeddings SELECT * FROM src.embeddings")
    finally:
        conn.execute("DETACH DATABASE src")
    return conn.total_changes - before


def open_store(path: Path | str | None = None, *, must_exist: bool = False,
               hint: str | None = None) -> sqlite3.Connection:
    """:func:`connect` for a command: every refusal of :func:`check_store` and any other
    failure to open is a :class:`UserError` (one line, exit 2).

    ``must_exist=True`` (commands that only read) refuses to create a new empty store, so a
    mistyped ``--db`` is reported instead of answered with zeros; ``hint`` says how to make one.
    """
    shown = Path(path) if path else default_db()
    if must_exist and not (shown.is_file() and shown.stat().st_size > 0):
        raise UserError(f"{shown}: no store there ({hint or f'crawl into it first: mine crawl --db {shown}'})")
    try:
        return connect(shown)
    except StoreError:
        raise
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
    if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        # a new store, or one written before the mark existed (check_store recognised it)
        with transaction(conn):
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")


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
