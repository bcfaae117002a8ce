"""The crawler's store: schema version, WAL, idempotent upserts, atomic timeline replacement."""

from __future__ import annotations

import sqlite3

from pipeline.crawl.backend import event_fields, issue_fields
from pipeline.store import connect, schema_version
from pipeline.store.crawlstore import (cache_get, cache_put, delete_issue, get_crawl_state, known_issues,
                                       save_issue, set_crawl_state, source_status)
from pipeline.store.db import MIGRATIONS


def _issue(n, updated="2024-01-01T00:00:00Z", title="t"):
    return {"number": n, "title": title, "state": "closed", "labels": [{"name": "module: onnx"}],
            "updated_at": updated, "created_at": "2023-01-01T00:00:00Z", "closed_at": updated}


def _dump(conn):
    issues = conn.execute("SELECT repo, number, source, url, title, labels, updated_at, timeline_for, raw FROM issues ORDER BY 1, 2").fetchall()
    events = conn.execute("SELECT * FROM timeline_events ORDER BY 1, 2, 3").fetchall()
    return [tuple(r) for r in issues], [tuple(r) for r in events]


def test_schema_is_versioned_and_wal(tmp_path):
    conn = connect(tmp_path / "a.db")
    assert schema_version(conn) == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"issues", "timeline_events", "crawl_state", "http_cache"} <= tables
    conn.close()
    assert schema_version(connect(tmp_path / "a.db")) == len(MIGRATIONS)   # reopening is a no-op


def test_upsert_is_idempotent_and_replaces_timeline(tmp_path):
    conn = connect(tmp_path / "a.db")
    f = issue_fields(_issue(5), "pytorch/pytorch", "torch.onnx")
    ev = [event_fields({"event": "commented", "body": "hello", "created_at": "2024-01-01T00:00:00Z"}, 0),
          event_fields({"event": "closed", "commit_id": "abc"}, 1)]
    save_issue(conn, f, ev, fetched_at="x")
    first = _dump(conn)
    save_issue(conn, f, ev, fetched_at="y")
    assert _dump(conn) == first
    assert first[0][0][3] == "https://github.com/pytorch/pytorch/issues/5"
    assert first[0][0][5] == '["module: onnx"]'
    assert first[0][0][7] == "2024-01-01T00:00:00Z"          # timeline_for
    assert '"body":"hello"' in first[1][0][5]                # comment bodies are stored
    # a newer version with a shorter timeline replaces the old one entirely
    f2 = issue_fields(_issue(5, "2024-02-01T00:00:00Z", "new"), "pytorch/pytorch", "torch.onnx")
    save_issue(conn, f2, [event_fields({"event": "closed", "commit_id": None}, 0)], fetched_at="z")
    issues, events = _dump(conn)
    assert len(issues) == 1 and issues[0][4] == "new" and issues[0][7] == "2024-02-01T00:00:00Z"
    assert len(events) == 1
    assert known_issues(conn, "pytorch/pytorch") == {5: ("2024-02-01T00:00:00Z", "2024-02-01T00:00:00Z")}
    delete_issue(conn, "pytorch/pytorch", 5)
    assert _dump(conn) == ([], [])


def test_failed_write_leaves_nothing_half_done(tmp_path):
    conn = connect(tmp_path / "a.db")
    f = issue_fields(_issue(1), "onnx/tensorflow-onnx", "tf2onnx")
    save_issue(conn, f, [event_fields({"event": "connected"}, 0)], fetched_at="x")
    before = _dump(conn)
    f2 = issue_fields(_issue(1, "2024-03-01T00:00:00Z"), "onnx/tensorflow-onnx", "tf2onnx")
    bad = [event_fields({"event": "a"}, 0), event_fields({"event": "b"}, 0)]   # duplicate seq: fails
    try:
        save_issue(conn, f2, bad, fetched_at="y", source_state=("tf2onnx", {"cursor": "2024-03-01T00:00:00Z"}))
    except sqlite3.IntegrityError:
        pass
    assert _dump(conn) == before
    assert get_crawl_state(conn, "tf2onnx").state is None


def test_crawl_state_cache_and_status(tmp_path):
    conn = connect(tmp_path / "a.db")
    assert get_crawl_state(conn, "tf2onnx").high_water is None
    set_crawl_state(conn, "tf2onnx", high_water="2024-01-01T00:00:00Z", last_crawl="2024-01-02T00:00:00Z", state={})
    st = get_crawl_state(conn, "tf2onnx")
    assert (st.high_water, st.last_crawl, st.state) == ("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", {})
    cache_put(conn, "http://h/repos/a/b/issues?since=1", '"e1"', {"next": None})
    cache_put(conn, "http://h/repos/a/b/issues?since=2", '"e2"', {"next": None}, replace_prefix="http://h/repos/a/b/issues")
    assert cache_get(conn, "http://h/repos/a/b/issues?since=1") == (None, None)
    assert cache_get(conn, "http://h/repos/a/b/issues?since=2") == ('"e2"', {"next": None})
    save_issue(conn, issue_fields(_issue(3), "onnx/tensorflow-onnx", "tf2onnx"), [], fetched_at="x")
    assert source_status(conn, ["torch.onnx", "tf2onnx"]) == {
        "torch.onnx": {"issues": 0, "timelines": 0, "last_crawl": None, "high_water": None},
        "tf2onnx": {"issues": 1, "timelines": 1, "last_crawl": "2024-01-02T00:00:00Z", "high_water": "2024-01-01T00:00:00Z"},
    }


def test_copy_embeddings_between_stores_adds_only_the_missing_and_leaves_the_source_alone(tmp_path):
    import pytest

    from pipeline.errors import UserError
    from pipeline.store.db import copy_embeddings

    src, dst = tmp_path / "a.db", tmp_path / "b.db"
    rows = [("m@1", f"{i:064x}", 2, bytes(8), "2026-01-01T00:00:00+00:00") for i in range(3)]
    a = connect(src)
    a.executemany("INSERT INTO embeddings VALUES (?, ?, ?, ?, ?)", rows)
    a.close()
    before = src.read_bytes()
    b = connect(dst)
    b.execute("INSERT INTO embeddings VALUES (?, ?, ?, ?, ?)", rows[0])
    assert copy_embeddings(b, src) == 2
    assert copy_embeddings(b, src) == 0
    assert b.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 3
    assert src.read_bytes() == before
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as f:
        f.execute("CREATE TABLE embeddings (x)")
    with pytest.raises(UserError, match="another program"):
        copy_embeddings(b, foreign)
    with pytest.raises(UserError, match="not a mine store"):
        copy_embeddings(b, tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
