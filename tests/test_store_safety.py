"""A wrong --db or --api-url never damages a store: one line, exit 2, the file's bytes unchanged.

Every case is run through the real CLI (``python -m pipeline ...``) against real files: a
read-only store, a store of another user, a read-only folder, a store with damaged pages,
another program's SQLite database, a store of a newer release, an API URL that answers an HTML
page, and one where nothing listens. Permissions are real: when the tests run as root (who may
write any file), the command runs as the unprivileged user ``nobody`` (``setpriv``) if the
interpreter is reachable for it, else the file or folder is made immutable (``chattr +i``),
which the kernel enforces for root too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.paths import PROJECT_ROOT
from pipeline.store import connect
from pipeline.store import db as store_db
from pipeline.store.db import APPLICATION_ID, MIGRATIONS, StoreError, check_store
from tests.helpers import run_mine

NOBODY = 65534


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line(r: subprocess.CompletedProcess) -> str:
    """The single stderr line of a refused command (asserts there is exactly one, no traceback)."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def _setpriv_works() -> bool:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or not setpriv:
        return False
    probe = subprocess.run([setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable,
                            "-c", "import pipeline"], cwd=PROJECT_ROOT, capture_output=True)
    return probe.returncode == 0


AS_NOBODY = _setpriv_works()


def _chattr(flag: str, path: Path) -> bool:
    chattr = shutil.which("chattr")
    return bool(chattr) and subprocess.run([chattr, flag, str(path)], capture_output=True).returncode == 0


@contextmanager
def unwritable(path: Path, how: str):
    """Make ``path`` not writable for the command run inside the block; yields the command
    prefix to run it with. ``how``: ``mode`` (chmod a-w), ``owner`` (someone else's file),
    ``folder`` (a folder without write permission)."""
    if os.geteuid() != 0:
        if how == "owner":
            pytest.skip("a file owned by another user needs root to set up")
        path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield []
        finally:
            path.chmod(0o755 if path.is_dir() else 0o644)
        return
    if AS_NOBODY:
        folder = path if path.is_dir() else path.parent
        os.chown(folder, NOBODY, NOBODY)
        if how == "mode":
            os.chown(path, NOBODY, NOBODY)
            path.chmod(0o444)
        elif how == "folder":
            for f in path.iterdir():
                os.chown(f, NOBODY, NOBODY)     # the file is theirs; only the folder is not
            os.chown(path, 0, 0)
            path.chmod(0o555)
        yield ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        return
    # root, and nobody cannot run this interpreter: the immutable attribute binds root too
    if not _chattr("+i", path):
        pytest.skip("cannot make a file unwritable for root here (no setpriv to run as nobody, no chattr +i)")
    try:
        yield []
    finally:
        _chattr("-i", path)


@pytest.fixture
def folder():
    """A folder the unprivileged user can enter (pytest's own tmp folders are private to root)."""
    d = Path(tempfile.mkdtemp(prefix="mine-store-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        for p in [d, *d.rglob("*")]:
            _chattr("-i", p) if os.geteuid() == 0 else None
        shutil.rmtree(d, ignore_errors=True)


def make_store(path: Path, rows: int = 3) -> Path:
    """A real store with ``rows`` issues, closed (its WAL checkpointed into the file)."""
    conn = connect(path)
    with conn:
        conn.executemany(
            "INSERT INTO issues (repo, number, source, url, raw, fetched_at) VALUES (?, ?, ?, ?, ?, ?)",
            [("o/r", n, "src", f"https://github.com/o/r/issues/{n}", "x" * 700 + str(n), "2024-01-01T00:00:00Z")
             for n in range(rows)])
    conn.close()
    assert not Path(f"{path}-wal").exists()
    return path


def run_as(prefix: list[str], *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "HOME": tempfile.gettempdir(), "GITHUB_TOKEN": "t0k"}
    return subprocess.run([*prefix, sys.executable, "-m", "pipeline", *args], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


# -- permissions -------------------------------------------------------------------------------

@pytest.mark.parametrize("how, words", [("mode", "read-only"), ("owner", "read-only"),
                                        ("folder", "is not writable")])
def test_an_unwritable_store_or_folder_is_one_line_and_untouched(folder, how, words):
    db = make_store(folder / "m.db")
    before = sha(db)
    with unwritable(folder if how == "folder" else db, how) as prefix:
        # nothing listens at port 9: had the store been accepted, the crawl would fail differently
        crawl = run_as(prefix, "crawl", "--api-url", "http://127.0.0.1:9", "--db", str(db))
        status = run_as(prefix, "status", "--db", str(db))
    for r in (crawl, status):
        line = one_line(r)
        assert str(db) in line and words in line and "nothing was written" in line, line
    assert sha(db) == before
    assert sorted(p.name for p in folder.iterdir()) == ["m.db"]


# -- files that are not (this release's) stores ------------------------------------------------

def _damage_middle_pages(db: Path) -> None:
    with sqlite3.connect(db) as c:
        page = c.execute("PRAGMA page_size").fetchone()[0]
    pages = db.stat().st_size // page
    assert pages > 20
    with open(db, "r+b") as f:
        for k in (pages // 2, pages // 2 + 1, pages // 2 + 3):
            f.seek(k * page)
            f.write(bytes((i * 37 + k) % 251 for i in range(page)))
    ro = sqlite3.connect(db.as_uri() + "?mode=ro", uri=True)
    try:
        assert ro.execute("PRAGMA quick_check").fetchone()[0] != "ok"       # really damaged
    except sqlite3.DatabaseError:
        pass
    finally:
        ro.close()


def _foreign(db: Path) -> None:
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE issues (id INTEGER PRIMARY KEY, title TEXT, severity INTEGER)")
        c.executemany("INSERT INTO issues (title, severity) VALUES (?, ?)", [("printer on fire", 5), ("typo", 1)])
        c.execute("CREATE TABLE people (name TEXT)")
    c.close()


def _newer(db: Path) -> None:
    make_store(db)
    with sqlite3.connect(db) as c:
        c.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    c.close()


CASES = {
    "damaged pages": (lambda db: (make_store(db, rows=400), _damage_middle_pages(db)), "damaged"),
    "foreign database with an issues table": (_foreign, "another program's SQLite database"),
    "newer schema": (_newer, f"schema version {len(MIGRATIONS) + 1} is newer"),
    "not SQLite": (lambda db: db.write_text("name,value\nx,1\n"), "not an SQLite database"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_that_is_not_a_usable_store_is_refused_untouched(tmp_path, case):
    make, words = CASES[case]
    db = tmp_path / "x.db"
    make(db)
    before = sha(db)
    r = run_mine("crawl", "--api-url", "http://127.0.0.1:9", "--db", str(db), "--token", "t0k")
    line = one_line(r)
    assert str(db) in line and words in line and "nothing was written" in line, line
    assert sha(db) == before
    with pytest.raises(StoreError, match=words):
        connect(db)
    assert sha(db) == before


def test_every_command_that_opens_a_store_goes_through_the_check(tmp_path):
    db = tmp_path / "theirs.db"
    _foreign(db)
    before = sha(db)
    commands = [
        ("crawl", "--api-url", "http://127.0.0.1:9"), ("status",), ("filter",), ("sample", "--n", "1"),
        ("report", "--from", "predicted"), ("train",), ("evaluate",),
        ("validate-estimates", "--bootstrap", "10"), ("labels", "export", "--out", str(tmp_path / "t.json")),
        ("label", "--rater", "alice", "--labels-dir", str(tmp_path / "labels")), ("nightly", "--out", str(tmp_path / "night")),
    ]
    for cmd in commands:
        r = run_mine(*cmd, "--db", str(db), env={"GITHUB_TOKEN": "t0k"})
        line = one_line(r)
        assert "another program's SQLite database" in line, (cmd, line)
        assert sha(db) == before, cmd


def test_a_missing_folder_is_an_error_not_created(tmp_path):
    db = tmp_path / "no" / "such" / "m.db"
    r = run_mine("crawl", "--api-url", "http://127.0.0.1:9", "--db", str(db), "--token", "t0k")
    line = one_line(r)
    assert f"the folder {db.parent} does not exist" in line
    assert list(tmp_path.iterdir()) == []


def test_the_default_data_folder_is_created(tmp_path, monkeypatch):
    monkeypatch.setattr(store_db, "DEFAULT_DATA_DIR", tmp_path / "data")
    assert check_store(tmp_path / "data" / "mine.db").kind == "new"
    assert (tmp_path / "data").is_dir()
    with pytest.raises(StoreError, match="does not exist"):
        check_store(tmp_path / "other" / "mine.db")


def test_a_store_of_the_previous_release_opens_and_gets_the_mark(tmp_path):
    """Stores written before application_id existed (it is 0 there) are recognised by their
    schema version and tables, keep their rows, and are marked."""
    db = make_store(tmp_path / "old.db", rows=5)
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA application_id = 0")
    c.close()
    assert check_store(db).kind == "unmarked"
    conn = connect(db)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("SELECT COUNT(*) FROM issues").fetchone()[0] == 5
    conn.close()
    assert check_store(db).kind == "store"
    # an empty SQLite file, and an empty database, become a new store
    (tmp_path / "empty.db").write_bytes(b"")
    sqlite3.connect(tmp_path / "blank.db").close()
    for name in ("empty.db", "blank.db"):
        assert check_store(tmp_path / name).kind == "new"
        connect(tmp_path / name).close()
        assert check_store(tmp_path / name).kind == "store"


# -- --api-url that is not GitHub's API --------------------------------------------------------

class _HtmlPage(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802
        type(self).hits += 1
        body = b"<!DOCTYPE html><html><head><title>Welcome</title></head><body>It works!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def html_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlPage)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_api_url_answering_html_or_nothing_is_one_line_at_once(tmp_path, html_server):
    db = make_store(tmp_path / "m.db")
    before = sha(db)
    _HtmlPage.hits = 0
    html = run_mine("crawl", "--api-url", html_server, "--db", str(db), "--token", "t0k")
    line = one_line(html)
    host = html_server.removeprefix("http://")
    assert f"{host} answered HTTP 200 with an HTML page (text/html" in line and "--api-url" in line, line
    assert _HtmlPage.hits == 1                      # no retry of an answer that is not GitHub's
    port = _free_port()
    refused = run_mine("crawl", "--api-url", f"http://127.0.0.1:{port}", "--db", str(db), "--token", "t0k",
                       "--format", "json")
    line = one_line(refused)
    assert f"127.0.0.1:{port}" in line and "connection refused" in line, line
    assert sha(db) == before
    assert refused.stdout == ""
