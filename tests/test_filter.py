"""The study's data-availability filter: each rule, its negatives, the repo mapping, the store query."""

from __future__ import annotations

import json

import pytest

from pipeline.crawl.backend import event_fields, issue_fields
from pipeline.sample.filter import DEFAULT_XREF_REPOS, filter_counts, filtered_issues, is_available
from pipeline.sources import Source
from pipeline.store import connect
from pipeline.store.crawlstore import save_issue


def xref(state="closed", repo="pytorch/pytorch", with_full_name=True):
    issue = {"state": state, "number": 7, "repository_url": f"https://api.github.com/repos/{repo}"}
    if with_full_name:
        issue["repository"] = {"full_name": repo}
    return {"event": "cross-referenced", "source": {"type": "issue", "issue": issue}}


@pytest.mark.parametrize("event, kept", [
    ({"event": "closed", "commit_id": "abc123"}, True),
    ({"event": "closed", "commit_id": None}, False),
    ({"event": "referenced", "commit_id": "abc123"}, True),
    ({"event": "referenced", "commit_id": None}, False),
    ({"event": "connected"}, True),
    ({"event": "commented", "body": "fixed in abc123", "commit_id": "x"}, False),
    ({"event": "committed", "sha": "abc"}, False),
    ({"event": "labeled", "label": {"name": "module: onnx"}}, False),
    (xref(), True),
    (xref(repo="onnx/tensorflow-onnx"), True),
    (xref(repo="ONNX/TensorFlow-ONNX"), True),            # GitHub names are case-insensitive
    (xref(repo="pytorch/pytorch", with_full_name=False), True),  # repository_url fallback
    (xref(state="open"), False),
    (xref(repo="pytorch/vision"), False),
    (xref(repo="someone/pytorch"), False),                # a fork is not "the pytorch repository"
    ({"event": "cross-referenced", "source": {}}, False),
])
def test_each_rule(event, kept):
    assert is_available([event]) is kept


def test_any_event_suffices_and_empty_timeline_is_dropped():
    assert is_available([{"event": "commented"}, {"event": "closed", "commit_id": None}, {"event": "connected"}])
    assert not is_available([])


def test_allowed_repos_are_configurable():
    ev = [xref(repo="PaddlePaddle/Paddle2ONNX")]
    assert not is_available(ev)
    assert is_available(ev, ("PaddlePaddle/Paddle2ONNX",))
    assert Source("x", "a/b").xref_repos == DEFAULT_XREF_REPOS == ("pytorch/pytorch", "onnx/tensorflow-onnx")


def _store(tmp_path):
    conn = connect(tmp_path / "t.db")
    sources = [Source("torch.onnx", "pytorch/pytorch", labels=("module: onnx",)),
               Source("tf2onnx", "onnx/tensorflow-onnx")]
    timelines = {
        ("pytorch/pytorch", 1): [{"event": "commented", "body": "hi"}, {"event": "closed", "commit_id": "c1"}],
        ("pytorch/pytorch", 2): [{"event": "closed", "commit_id": None}],
        ("pytorch/pytorch", 3): [xref(repo="onnx/tensorflow-onnx")],
        ("onnx/tensorflow-onnx", 10): [{"event": "connected"}],
        ("onnx/tensorflow-onnx", 11): [xref(state="open")],
    }
    for (repo, number), events in timelines.items():
        src = "torch.onnx" if repo == "pytorch/pytorch" else "tf2onnx"
        issue = {"number": number, "state": "closed", "labels": [], "updated_at": "2024-01-01T00:00:00Z"}
        save_issue(conn, issue_fields(issue, repo, src), [event_fields(e, i) for i, e in enumerate(events)],
                   fetched_at="2024-01-02T00:00:00Z")
    return conn, sources


def test_filtered_issues_and_counts(tmp_path):
    conn, sources = _store(tmp_path)
    rows = filtered_issues(conn, sources=sources)
    assert [(r["source"], r["number"]) for r in rows] == [("tf2onnx", 10), ("torch.onnx", 1), ("torch.onnx", 3)]
    assert [r["number"] for r in filtered_issues(conn, "tf2onnx", sources=sources)] == [10]
    assert filter_counts(conn, sources) == {
        "torch.onnx": {"relevant": 3, "with_timeline": 3, "kept": 2},
        "tf2onnx": {"relevant": 2, "with_timeline": 2, "kept": 1},
    }
    # a source that allows only its own repo drops the cross-repo reference of issue 3
    narrow = [Source("torch.onnx", "pytorch/pytorch", xref_repos=("pytorch/pytorch",)), sources[1]]
    assert [r["number"] for r in filtered_issues(conn, "torch.onnx", sources=narrow)] == [1]


def test_filter_cli_json(tmp_path):
    from tests.helpers import run_mine

    conn, _ = _store(tmp_path)
    conn.close()
    r = run_mine("filter", "--db", str(tmp_path / "t.db"), "--format", "json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)["sources"]
    assert data["torch.onnx"]["kept"] == 2 and data["tf2onnx"]["kept"] == 1


def test_xref_repos_come_from_the_sources_file(tmp_path):
    from pipeline.sources import load_sources

    p = tmp_path / "sources.yaml"
    p.write_text("sources:\n  - name: paddle2onnx\n    repo: PaddlePaddle/Paddle2ONNX\n"
                 "    xref_repos: [PaddlePaddle/Paddle2ONNX, PaddlePaddle/Paddle]\n"
                 "  - name: tf2onnx\n    repo: onnx/tensorflow-onnx\n")
    paddle, tf = load_sources(p)
    assert paddle.xref_repos == ("PaddlePaddle/Paddle2ONNX", "PaddlePaddle/Paddle")
    assert tf.xref_repos == DEFAULT_XREF_REPOS
    packaged = {s.name: s.xref_repos for s in load_sources()}
    # the study's two sources keep the paper's two repositories; the others count their own first
    assert packaged["torch.onnx"] == packaged["tf2onnx"] == DEFAULT_XREF_REPOS
    assert packaged["paddle2onnx"] == ("PaddlePaddle/Paddle2ONNX", "PaddlePaddle/Paddle", "onnx/onnx")
    for name in ("sklearn-onnx", "onnx2torch", "onnx-tf"):
        assert packaged[name][0] == next(s.repo for s in load_sources() if s.name == name)
