"""The backend's parsing functions on real GitHub payloads (recorded by PyGithub)."""

from __future__ import annotations

import json

import pytest

from pipeline.crawl.backend import event_fields, issue_fields, label_names
from pipeline.crawl.client import parse_link
from pipeline.paths import shared_dir
from pipeline.sample.filter import event_counts, is_available
from pipeline.sources import Source


def _replay(name):
    d = shared_dir() / "github-replay"
    if not (d / f"{name}.txt").is_file():
        pytest.skip(f"recorded GitHub responses not found at {d} (../shared is only on project machines and CI)")
    from pipeline.emulator.replay import parse_replay

    return parse_replay(d / f"{name}.txt")


def test_issue_listing_payloads_map_to_store_fields():
    exchanges = _replay("Repository.testGetIssues")
    items = [i for ex in exchanges if ex.status == 200 for i in (ex.json() or [])]
    assert items
    for item in items:
        f = issue_fields(item, "PyGithub/PyGithub", "x")
        assert f["url"] == f"https://github.com/PyGithub/PyGithub/issues/{item['number']}"
        assert f["updated_at"] == item["updated_at"] and f["state"] == item["state"]
        assert json.loads(f["labels"]) == [lab["name"] for lab in item["labels"]]
        assert json.loads(f["raw"]) == item
        assert f["is_pull"] == int("pull_request" in item)
    # the relevance rule drops pull requests and excluded labels on real objects
    src = Source("any", "PyGithub/PyGithub", state="all")
    assert all(src.is_relevant(i) == ("pull_request" not in i) for i in items)
    labelled = next(i for i in items if i["labels"])
    assert not Source("x", "a/b", state="all", exclude_labels=(label_names(labelled)[0],)).is_relevant(labelled)


def test_listing_link_header_is_parsed():
    exchanges = _replay("PaginatedList.testIteration")
    links = [parse_link(ex.header("Link")) for ex in exchanges if ex.header("Link")]
    assert links and all("next" in lk or "prev" in lk for lk in links)
    assert any("next" in lk and "page=" in lk["next"] for lk in links)


def test_real_timeline_events_parse_and_filter():
    events = [e for ex in _replay("Issue.testGetTimeline") if ex.status == 200 for e in ex.json()]
    kinds = {e["event"] for e in events}
    assert {"closed", "cross-referenced", "commented"} <= kinds
    rows = [event_fields(e, i) for i, e in enumerate(events)]
    assert [r["event"] for r in rows] == [e["event"] for e in events]
    assert all(r["created_at"] for r in rows)
    assert any("Comment created by PyGithub" in r["raw"] for r in rows if r["event"] == "commented")
    # closed without commit, a cross-reference from a closed PyGithub issue: not in the study's repos
    assert not is_available(events)
    # ... but the same timeline counts when PyGithub/PyGithub is an allowed repository
    assert is_available(events, ("pygithub/pygithub",))
    xref = next(e for e in events if e["event"] == "cross-referenced")
    assert xref["source"]["issue"]["state"] == "closed"
    assert event_counts(xref, ("PyGithub/PyGithub",))


def test_pull_request_timeline_parses():
    events = [e for ex in _replay("PullRequest.testGetIssueTimeline") if ex.status == 200 for e in ex.json()]
    assert events
    for i, e in enumerate(events):
        r = event_fields(e, i)
        assert r["seq"] == i and json.loads(r["raw"]) == e
    # a `referenced` event with a commit_id keeps it
    assert any(e["event"] == "referenced" and e["commit_id"] for e in events)
    assert is_available(events)
    assert not is_available([e for e in events if e["event"] != "referenced"])
