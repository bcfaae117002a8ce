"""The GitHub emulator over real HTTP: listing semantics, Link headers, ETag/304, rate limits,
fault injection, touch and stats, and a real PyGithub client pointed at it."""

from __future__ import annotations

import calendar
import json
import re
import subprocess
import sys
import time
from collections import Counter

import pytest
import requests

from pipeline.emulator.data import LINKAGE_KINDS, Dataset, expected_issue_numbers, iso, study_relevant
from pipeline.emulator.server import EmulatorConfig, run_emulator
from pipeline.paths import PROJECT_ROOT

PT = "pytorch/pytorch"
TF = "onnx/tensorflow-onnx"
LINK_PART = re.compile(r'^<(http://127\.0\.0\.1:\d+/[^>]+)>; rel="(next|last|first|prev)"$')


def get(emu, path, **kw):
    return requests.get(emu.url + path, timeout=10, **kw)


def links(resp) -> dict[str, str]:
    """Parse a Link header strictly in GitHub's format (parts joined by ', ')."""
    out = {}
    header = resp.headers.get("Link")
    if not header:
        return out
    for part in header.split(", "):
        m = LINK_PART.match(part)
        assert m, f"malformed Link part {part!r}"
        out[m.group(2)] = m.group(1)
    return out


def walk(emu, path, params=None, headers=None) -> list:
    """Follow rel=next from the first page; return every item."""
    items, url = [], emu.url + path
    r = requests.get(url, params=params, headers=headers, timeout=10)
    while True:
        assert r.status_code == 200, r.text
        items += r.json()
        nxt = links(r).get("next")
        if not nxt:
            return items
        r = requests.get(nxt, headers=headers, timeout=10)


# ---------------------------------------------------------------------------- listings


def test_listing_follows_link_headers_to_the_expected_issues(emulator):
    params = {"state": "closed", "labels": "module: onnx", "per_page": "10"}
    first = get(emulator, f"/repos/{PT}/issues", params=params)
    assert first.status_code == 200
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    rel = links(first)
    assert set(rel) == {"next", "last"}  # first page: no first/prev, as on GitHub
    assert "page=2" in rel["next"] and "labels=module%3A+onnx" in rel["next"] and "per_page=10" in rel["next"]
    # Order of the parts: next, last, first, prev (as in the recordings).
    second = requests.get(rel["next"], timeout=10)
    assert [m.group(2) for m in map(LINK_PART.match, second.headers["Link"].split(", "))] == [
        "next", "last", "first", "prev"]
    last = requests.get(rel["last"], timeout=10)
    assert set(links(last)) == {"first", "prev"}
    got = [i["number"] for i in walk(emulator, f"/repos/{PT}/issues", params)]
    assert got == expected_issue_numbers(emulator.cfg, PT, state="closed", labels=["module: onnx"])
    assert len(got) > 10


@pytest.mark.parametrize("emulator", [{"issues": 100}], indirect=True)
def test_listing_defaults_and_per_page_cap(emulator):
    r = get(emulator, f"/repos/{TF}/issues")  # default state=open
    assert r.status_code == 200 and r.json() and all(i["state"] == "open" for i in r.json())
    r = get(emulator, f"/repos/{TF}/issues", params={"state": "all"})
    assert r.status_code == 200 and len(r.json()) == 30
    created = [i["created_at"] for i in r.json()]
    assert created == sorted(created, reverse=True)  # sort=created, direction=desc
    r = get(emulator, f"/repos/{TF}/issues", params={"state": "all", "per_page": "500"})
    assert len(r.json()) == 100
    total = len(emulator.dataset.issues[TF])
    assert len(walk(emulator, f"/repos/{TF}/issues", {"state": "all", "per_page": "100"})) == total
    # A single page has no Link header; an out-of-range page is an empty list.
    assert "Link" not in get(emulator, f"/repos/{TF}/issues", params={"state": "all", "per_page": "100",
                                                                       "labels": "no-such-label"}).headers
    assert get(emulator, f"/repos/{TF}/issues", params={"page": "999"}).json() == []


def test_state_labels_and_pull_requests(emulator):
    everything = walk(emulator, f"/repos/{PT}/issues", {"state": "all", "per_page": "100"})
    assert len(everything) == len(emulator.dataset.issues[PT]) == 60 + 15  # PRs come on top
    prs = [i for i in everything if "pull_request" in i]
    assert len(prs) == 15 and all(i["html_url"].endswith(f"/pull/{i['number']}") for i in prs)
    assert all("pull_request" not in i for i in everything if "/issues/" in i["html_url"])
    both = walk(emulator, f"/repos/{PT}/issues", {"state": "all", "labels": "MODULE: ONNX,triaged"})
    assert both and all({"module: onnx", "triaged"} <= {x["name"] for x in i["labels"]} for i in both)
    onnx = walk(emulator, f"/repos/{PT}/issues", {"state": "all", "labels": "module: onnx"})
    assert len(both) < len(onnx) < len(everything)  # the label filter matters
    tf_labels = Counter(x["name"] for i in walk(emulator, f"/repos/{TF}/issues", {"state": "all"})
                        for x in i["labels"])
    assert tf_labels["question"] and tf_labels["pending on user response"]
    r = get(emulator, f"/repos/{PT}/issues", params={"state": "bogus"})
    assert r.status_code == 422


def test_since_sort_and_direction(emulator):
    recs = sorted(emulator.dataset.issues[PT].values(), key=lambda x: x.updated_at)
    pivot = recs[len(recs) // 2]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(pivot.updated_at))
    got = walk(emulator, f"/repos/{PT}/issues", {"state": "all", "since": since, "sort": "updated",
                                                 "direction": "asc"})
    assert got[0]["updated_at"] == since  # "at or after"
    assert [i["updated_at"] for i in got] == sorted(i["updated_at"] for i in got)
    assert {i["number"] for i in got} == {x.number for x in recs if x.updated_at >= pivot.updated_at}
    by_comments = get(emulator, f"/repos/{PT}/issues", params={"state": "all", "sort": "comments"}).json()
    assert [i["comments"] for i in by_comments] == sorted((i["comments"] for i in by_comments), reverse=True)
    assert get(emulator, f"/repos/{PT}/issues", params={"since": "yesterday"}).status_code == 422


def test_single_issue_repo_label_and_not_found(emulator):
    num = expected_issue_numbers(emulator.cfg, PT, state="closed", include_prs=False)[0]
    issue = get(emulator, f"/repos/{PT}/issues/{num}").json()
    assert issue["number"] == num and issue["closed_by"] is not None and issue["state"] == "closed"
    assert issue["closed_at"] >= issue["created_at"] and issue["updated_at"] >= issue["closed_at"]
    assert get(emulator, f"/repos/PyTorch/PyTorch/issues/{num}").json()["id"] == issue["id"]
    repo = get(emulator, f"/repos/{TF}").json()
    assert repo["full_name"] == TF and repo["url"] == f"{emulator.url}/repos/{TF}"
    label = get(emulator, f"/repos/{PT}/labels/module%3A%20onnx").json()
    assert label["name"] == "module: onnx"
    for path in (f"/repos/{PT}/issues/1", "/repos/other/repo/issues", "/nope", f"/repos/{PT}/issues/{num}/x"):
        r = get(emulator, path)
        assert r.status_code == 404 and r.json()["message"] == "Not Found" and "documentation_url" in r.json()


def test_timeline_and_comments_pagination(emulator):
    long = [x for x in emulator.dataset.issues[PT].values() if len(x.events) > 30]
    assert long
    rec = long[0]
    first = get(emulator, f"/repos/{PT}/issues/{rec.number}/timeline")
    assert len(first.json()) == 30 and "next" in links(first)
    events = walk(emulator, f"/repos/{PT}/issues/{rec.number}/timeline", {"per_page": "100"})
    assert len(events) == len(rec.events)
    comments = walk(emulator, f"/repos/{PT}/issues/{rec.number}/comments", {"per_page": "7"})
    assert [c["body"] for c in comments] == [e["body"] for e in events if e["event"] == "commented"]
    assert get(emulator, f"/repos/{PT}/issues/{rec.number}").json()["comments"] == len(comments)
    very_long = [x for x in emulator.dataset.issues[TF].values() if len(x.events) > 100]
    assert very_long, "some timeline spans two pages at per_page=100"


# ---------------------------------------------------------------------------- data


def test_dataset_is_deterministic_and_exercises_every_filter_rule():
    a, b, c = Dataset(seed=0, issues=200), Dataset(seed=0, issues=200), Dataset(seed=1, issues=200)
    snap = lambda ds: [(r.number, r.title, r.state, r.updated_at, len(r.events)) for r in ds.issues[PT].values()]
    assert snap(a) == snap(b) and snap(a) != snap(c)
    for repo in (PT, TF):
        recs = list(a.issues[repo].values())
        relevant = [r for r in recs if study_relevant(r)]
        assert set(LINKAGE_KINDS) <= {r.linkage for r in relevant}, repo
        assert 0.2 < sum(r.data_available for r in relevant) / len(relevant) < 0.6
        kinds = Counter(e.kind for r in recs for e in r.events)
        for k in ("closed", "referenced", "cross-referenced", "connected", "labeled", "subscribed",
                  "mentioned", "commented", "committed"):
            assert kinds[k], (repo, k)
        closed = [e for r in recs for e in r.events if e.kind == "closed"]
        assert any(e.data["commit_id"] for e in closed) and any(not e.data["commit_id"] for e in closed)
        refs = [e for r in recs for e in r.events if e.kind == "referenced"]
        assert any(e.data["commit_id"] for e in refs) and any(not e.data["commit_id"] for e in refs)
        bodies = "\n".join(r.body for r in recs)
        assert "<script>alert(1)</script>" in bodies and "onerror=alert(1)" in bodies and "Traceback" in bodies
        assert "```python" in bodies
        for r in recs:
            assert r.updated_at >= r.created_at and (r.closed_at is None) == (r.state == "open")
            assert all(e.at <= r.updated_at for e in r.events)
    pt_titles = " ".join(r.title for r in a.issues[PT].values())
    assert "to ONNX opset version" in pt_titles
    assert any(r.title.startswith("ValueError: tensorflow op") for r in a.issues[TF].values())


def test_cross_references_point_at_real_issues(emulator):
    ds = emulator.dataset
    seen = Counter()
    for repo in (PT, TF):
        for rec in ds.issues[repo].values():
            for e in rec.events:
                if e.kind == "cross-referenced":
                    src_repo, num = e.data["source"]
                    src = ds.get(src_repo, num) or ds.foreign[(src_repo, num)]
                    seen[(src_repo in (PT, TF), src.state)] += 1
    assert seen[(True, "closed")] and seen[(True, "open")] and seen[(False, "closed")]
    rec = next(r for r in ds.issues[PT].values() if r.linkage == "xref_closed_study")
    ev = [e for e in walk(emulator, f"/repos/{PT}/issues/{rec.number}/timeline") if e["event"] == "cross-referenced"]
    src = ev[0]["source"]["issue"]
    assert src["repository"]["full_name"] == TF and src["state"] == "closed"
    assert get(emulator, f"/repos/{TF}/issues/{src['number']}").json()["state"] == "closed"


# ---------------------------------------------------------------------------- caching and limits


def test_etag_304_does_not_count(emulator):
    path = f"/repos/{PT}/issues"
    r1 = get(emulator, path)
    etag = r1.headers["ETag"]
    assert re.fullmatch(r'W/"[0-9a-f]{64}"', etag)
    used = int(r1.headers["X-RateLimit-Used"])
    r2 = get(emulator, path, headers={"If-None-Match": etag})
    assert r2.status_code == 304 and r2.content == b"" and r2.headers["ETag"] == etag
    assert int(r2.headers["X-RateLimit-Used"]) == used
    r3 = get(emulator, path, headers={"If-None-Match": '"something-else"'})
    assert r3.status_code == 200 and int(r3.headers["X-RateLimit-Used"]) == used + 1
    assert emulator.stats()["not_modified"] == 1


@pytest.mark.parametrize("emulator", [{"rate_limit": 3, "reset_seconds": 1}], indirect=True)
def test_rate_limit_403_per_token_and_reset(emulator):
    auth = {"Authorization": "token secret-a"}
    statuses = [get(emulator, f"/repos/{PT}", headers=auth).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    r = get(emulator, f"/repos/{PT}", headers=auth)
    assert r.status_code == 403
    assert r.json()["message"].startswith("API rate limit exceeded") and "documentation_url" in r.json()
    assert r.headers["X-RateLimit-Remaining"] == "0" and r.headers["X-RateLimit-Resource"] == "core"
    # /rate_limit reports the spent budget and does not count.
    rl = get(emulator, "/rate_limit", headers=auth).json()
    assert rl["resources"]["core"]["remaining"] == 0 and rl["rate"] == rl["resources"]["core"]
    # Another token (Bearer form) has its own bucket.
    assert get(emulator, f"/repos/{PT}", headers={"Authorization": "Bearer secret-b"}).status_code == 200
    reset = int(r.headers["X-RateLimit-Reset"])
    while time.time() < reset:  # waits at most ~1 s (reset_seconds=1)
        time.sleep(0.05)
    r = get(emulator, f"/repos/{PT}", headers=auth)
    assert r.status_code == 200 and r.headers["X-RateLimit-Remaining"] == "2"
    assert emulator.stats()["rate_limited"] == 1
    assert "secret" not in json.dumps(emulator.stats())


@pytest.mark.parametrize("emulator", [{"secondary_every": 2}], indirect=True)
def test_secondary_limit_alternates_403_and_429(emulator):
    rs = [get(emulator, f"/repos/{PT}/issues") for _ in range(4)]
    assert [r.status_code for r in rs] == [200, 403, 200, 429]
    for r in (rs[1], rs[3]):
        assert r.headers["Retry-After"] == "1"
        assert r.json()["message"].startswith("You have exceeded a secondary rate limit")
    assert int(rs[2].headers["X-RateLimit-Used"]) == 2  # secondary answers do not use the budget
    assert get(emulator, "/rate_limit").status_code == 200  # /rate_limit is never faulted
    assert emulator.stats()["secondary_limited"] == 2


def _statuses(cfg, n=40):
    with run_emulator(cfg) as emu:
        out = [get(emu, f"/repos/{TF}/issues/{num}").status_code
               for num in expected_issue_numbers(cfg, TF, state="all")[:n]]
        return out, emu.stats()


def test_error_injection_is_deterministic():
    cfg = EmulatorConfig(issues=60, error_rate=0.3, seed=7)
    a, stats = _statuses(cfg)
    b, _ = _statuses(EmulatorConfig(issues=60, error_rate=0.3, seed=7))
    assert a == b and {502, 503} <= set(a) and 200 in a
    assert stats["errors"] == sum(s >= 500 for s in a)
    all_bad, _ = _statuses(EmulatorConfig(issues=60, error_rate=1.0), n=5)
    assert all(s in (502, 503) for s in all_bad)


def test_error_body_and_truncation():
    with run_emulator(EmulatorConfig(issues=60, error_rate=1.0)) as emu:
        r = get(emu, f"/repos/{PT}")
        assert r.status_code in (502, 503) and r.json()["message"] in ("Server Error", "Service Unavailable")
        assert "X-RateLimit-Remaining" in r.headers
    with run_emulator(EmulatorConfig(issues=60, truncate_rate=1.0)) as emu:
        r = get(emu, f"/repos/{PT}/issues")
        assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(r.content) > 0
        with pytest.raises(ValueError):
            json.loads(r.content)
        assert emu.stats()["truncated"] == 1
    with run_emulator(EmulatorConfig(issues=60, truncate_rate=0.5, seed=3)) as emu:
        ok = 0
        for _ in range(20):
            try:
                json.loads(get(emu, f"/repos/{PT}").content)
                ok += 1
            except ValueError:
                pass
        assert 0 < ok < 20 and emu.stats()["truncated"] == 20 - ok


@pytest.mark.parametrize("emulator", [{"latency_ms": 20}], indirect=True)
def test_latency_setting_still_serves(emulator):
    assert get(emulator, f"/repos/{PT}").status_code == 200


# ---------------------------------------------------------------------------- admin


def test_touch_updates_issues_and_timelines(emulator):
    before = walk(emulator, f"/repos/{PT}/issues", {"state": "all", "per_page": "100"})
    newest = max(i["updated_at"] for i in before)
    touched = emulator.touch(PT, 3)
    assert len(touched) == 3 and len(set(touched)) == 3
    for n in touched:
        rec = emulator.dataset.get(PT, n)
        assert study_relevant(rec)
    after = {i["number"]: i for i in walk(emulator, f"/repos/{PT}/issues", {"state": "all", "per_page": "100"})}
    assert all(after[n]["updated_at"] > newest for n in touched)
    # A since-crawl from the previous newest timestamp (exclusive) sees exactly the touched issues.
    since = iso(calendar.timegm(time.strptime(newest, "%Y-%m-%dT%H:%M:%SZ")) + 1)
    got = walk(emulator, f"/repos/{PT}/issues", {"state": "all", "since": since})
    assert sorted(i["number"] for i in got) == sorted(touched)
    tl = walk(emulator, f"/repos/{PT}/issues/{touched[0]}/timeline", {"per_page": "100"})
    assert tl[-1]["event"] == "commented" and tl[-1]["body"] and tl[-1]["created_at"] == after[touched[0]]["updated_at"]
    # Over HTTP, and strictly later again; the issue's ETag changes.
    etag = get(emulator, f"/repos/{PT}/issues/{touched[0]}").headers["ETag"]
    r = requests.post(f"{emulator.url}/_emulator/touch", params={"repo": PT, "n": "2"}, timeout=10)
    again = r.json()["touched"]
    assert r.status_code == 200 and len(again) == 2 and not set(again) & set(touched)
    assert emulator.stats()["touched"] == 5
    assert requests.post(f"{emulator.url}/_emulator/touch", params={"repo": "x/y"}, timeout=10).status_code == 422
    assert get(emulator, f"/repos/{PT}/issues/{touched[0]}", headers={"If-None-Match": etag}).status_code == 304


def test_stats_count_api_requests_only(emulator):
    get(emulator, f"/repos/{PT}")
    get(emulator, f"/repos/{PT}/issues")
    get(emulator, f"/repos/{PT}/issues", params={"page": "2"})
    get(emulator, "/rate_limit")
    get(emulator, "/missing")
    s = requests.get(f"{emulator.url}/_emulator/stats", timeout=10).json()
    assert s["requests"] == 5
    assert s["by_endpoint"] == {"/rate_limit": 1, "/repos/{owner}/{repo}": 1, "/repos/{owner}/{repo}/issues": 2,
                                "other": 1}
    assert s["not_found"] == 1 and s["errors"] == 0 and s["rate_limited"] == 0
    assert {k: v for k, v in emulator.stats().items()} == s
    emulator.reset_stats()
    assert emulator.stats()["requests"] == 0


# ---------------------------------------------------------------------------- clients


def test_pygithub_paginates_to_exactly_the_defined_issues(emulator):
    github = pytest.importorskip("github")
    # seconds_between_requests=0: PyGithub otherwise throttles itself to 4 requests per second.
    g = github.Github(base_url=emulator.url, per_page=100, retry=None, seconds_between_requests=0)
    repo = g.get_repo(PT)
    got = [i.number for i in repo.get_issues(state="closed", labels=["module: onnx"])]
    assert got == expected_issue_numbers(emulator.cfg, PT, state="closed", labels=["module: onnx"])
    g30 = github.Github(base_url=emulator.url, retry=None, seconds_between_requests=0)  # default per_page 30: several pages
    tf = g30.get_repo(TF)
    got_tf = [i.number for i in tf.get_issues(state="all")]
    assert got_tf == expected_issue_numbers(emulator.cfg, TF, state="all") and len(got_tf) > 30
    issue = repo.get_issue(got[0])
    events = list(issue.get_timeline())
    assert len(events) == len(emulator.dataset.get(PT, got[0]).events)
    assert all(e.event for e in events)
    assert g.get_rate_limit().resources.core.limit == 5000


@pytest.mark.parametrize("emulator", [{"rate_limit": 2}], indirect=True)
def test_pygithub_sees_rate_limit_exception(emulator):
    github = pytest.importorskip("github")
    g = github.Github(base_url=emulator.url, retry=None, seconds_between_requests=0)
    g.get_repo(PT)
    g.get_repo(TF)
    with pytest.raises(github.RateLimitExceededException):
        g.get_repo(PT)


def test_cli_emulate_serves_until_terminated():
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "emulate", "--port", "0", "--issues", "5",
                             "--seed", "2"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        r = requests.get(f"{m.group(0)}/repos/{PT}/issues", params={"state": "all"}, timeout=10)
        assert r.status_code == 200 and len(r.json()) == 5 + 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_cli_emulate_rejects_bad_options():
    r = subprocess.run([sys.executable, "-m", "pipeline", "emulate", "--truncate-rate", "1.5"], cwd=PROJECT_ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "truncate_rate" in r.stderr and "Traceback" not in r.stderr


def test_cli_emulate_rejects_a_port_out_of_range_in_one_line():
    r = subprocess.run([sys.executable, "-m", "pipeline", "emulate", "--port", "99999"], cwd=PROJECT_ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "port" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
