"""Reproducible per-converter samples and the labelling queue file format."""

from __future__ import annotations

import pytest

from pipeline.crawl.backend import event_fields, issue_fields
from pipeline.errors import UserError
from pipeline.sample.sample import read_queue, sample_issues, write_queue
from pipeline.sources import Source
from pipeline.store import connect
from pipeline.store.crawlstore import save_issue

SOURCES = [Source("torch.onnx", "pytorch/pytorch"), Source("tf2onnx", "onnx/tensorflow-onnx")]


@pytest.fixture
def conn(tmp_path):
    conn = connect(tmp_path / "s.db")
    for repo, src, count in (("pytorch/pytorch", "torch.onnx", 40), ("onnx/tensorflow-onnx", "tf2onnx", 8)):
        for n in range(1, count + 1):
            events = [{"event": "connected"}] if n % 2 else [{"event": "commented", "body": "x"}]
            issue = {"number": n, "state": "closed", "labels": [], "updated_at": "2024-01-01T00:00:00Z"}
            save_issue(conn, issue_fields(issue, repo, src), [event_fields(e, i) for i, e in enumerate(events)],
                       fetched_at="2024-01-01T00:00:00Z")
    return conn


def test_sample_is_reproducible_and_drawn_from_kept(conn):
    a = sample_issues(conn, n=10, seed=0, sources=SOURCES)
    assert a == sample_issues(conn, n=10, seed=0, sources=SOURCES)
    assert a != sample_issues(conn, n=10, seed=1, sources=SOURCES)
    assert len(a["torch.onnx"]) == 10 and len(set(a["torch.onnx"])) == 10
    assert len(a["tf2onnx"]) == 4          # only 4 kept issues: all of them
    assert all(int(u.rsplit("/", 1)[1]) % 2 == 1 for urls in a.values() for u in urls)
    # one converter's draw does not depend on the other converters configured
    assert sample_issues(conn, n=10, seed=0, sources=SOURCES[:1])["torch.onnx"] == a["torch.onnx"]


def test_queue_roundtrip(conn, tmp_path):
    samples = sample_issues(conn, n=5, seed=3, sources=SOURCES)
    path = write_queue(tmp_path / "q" / "queue.txt", samples, n=5, seed=3)
    text = path.read_text()
    assert text.startswith("# labelling queue") and "# converter: torch.onnx\n" in text
    items = read_queue(path)
    assert [(i.converter, i.url) for i in items] == [(k, u) for k, urls in samples.items() for u in urls]


def test_queue_bad_line_names_file_and_line(tmp_path):
    p = tmp_path / "q.txt"
    p.write_text("# converter: tf2onnx\n\nhttps://github.com/a/b/issues/1\nnot a url\n")
    with pytest.raises(UserError, match=r"q.txt:4"):
        read_queue(p)


def test_sample_cli(conn, tmp_path):
    from tests.helpers import run_mine

    db = conn.execute("PRAGMA database_list").fetchone()[2]
    conn.close()
    out = tmp_path / "queue.txt"
    r = run_mine("sample", "--n", "3", "--seed", "0", "--db", db, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert len(read_queue(out)) == 6
    r2 = run_mine("sample", "--n", "3", "--seed", "0", "--db", db, "--out", str(tmp_path / "again.txt"))
    assert r2.returncode == 0, r2.stderr
    assert (tmp_path / "again.txt").read_text() == out.read_text()


def test_sample_and_filter_bad_paths_are_one_line_user_errors(conn, tmp_path):
    """--out naming a folder or an unwritable place, and a --db that is not a store: exit 2,
    one line naming the path, no traceback."""
    from tests.helpers import run_mine

    db = conn.execute("PRAGMA database_list").fetchone()[2]
    conn.close()
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("not sqlite\n")
    cases = [
        (("sample", "--n", "3", "--db", db, "--out", str(tmp_path)), "is a folder"),
        (("sample", "--n", "3", "--db", db, "--out", "/proc/queue.txt"), "cannot write the queue file"),
        (("sample", "--n", "3", "--db", str(not_a_db)), "cannot open the store"),
        (("filter", "--db", str(not_a_db)), "cannot open the store"),
    ]
    for args, message in cases:
        r = run_mine(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not_a_db.read_text() == "not sqlite\n"
