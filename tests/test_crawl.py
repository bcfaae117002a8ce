"""The crawler against the project's GitHub emulator (real HTTP on 127.0.0.1).

Each test starts its own small emulator; the crawl runs in-process through the library
(``crawl``) or as ``python -m pipeline crawl`` subprocesses for the CLI, kill -9 and token tests.
Stores are compared whole (issues + timelines), ignoring the ``fetched_at`` column.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from pipeline.crawl.client import CrawlError, GitHubClient
from pipeline.crawl.crawler import crawl
from pipeline.sample.filter import filtered_issues
from pipeline.sources import load_sources
from pipeline.store import connect
from tests.helpers import run_mine

server = pytest.importorskip("pipeline.emulator.server", reason="the GitHub emulator (pipeline.emulator.server) is not there yet")

N = 120                      # issues per repository: small, the suite must stay fast
SOURCES = load_sources()     # the packaged sources: the study's torch.onnx, tf2onnx and four more converters
PROJECT = Path(__file__).resolve().parents[1]


@contextmanager
def emulator(**overrides):
    cfg = dict(seed=0, issues=N, latency_ms=0, error_rate=0.0, rate_limit=100_000, reset_seconds=3600,
               secondary_every=0, truncate_rate=0.0, host="127.0.0.1", port=0)
    cfg.update(overrides)
    with server.run_emulator(server.EmulatorConfig(**cfg)) as emu:
        yield emu


class Waits:
    """Records rate-limit waits; sleeps them for real but capped (the emulator's clock is real)."""

    def __init__(self, cap: float = 0.05) -> None:
        self.cap = cap
        self.calls: list[tuple[float, str]] = []

    def __call__(self, seconds: float, reason: str) -> None:
        self.calls.append((seconds, reason))
        time.sleep(min(seconds, self.cap))


def run_crawl(db: Path, url: str, *, waits: Waits | None = None, concurrency: int = 4, **client_kw):
    client = GitHubClient(url, client_kw.pop("token", None), backoff_base=0.001, sleep=lambda s: time.sleep(min(s, 0.01)),
                          on_wait=waits or Waits(), **client_kw)
    conn = connect(db)
    try:
        return crawl(conn, SOURCES, client, concurrency=concurrency)
    finally:
        conn.close()


def dump(db: Path, api_url: str | None = None) -> tuple[list, list]:
    """The whole store content a crawl is responsible for, minus fetch times.

    API links inside raw objects embed the emulator's address (a new port per emulator):
    ``api_url`` is replaced by a placeholder so crawls of different instances compare."""
    def norm(rows):
        if not api_url:
            return rows
        base = api_url.rstrip("/")
        return [tuple(v.replace(base, "API") if isinstance(v, str) else v for v in r) for r in rows]

    conn = sqlite3.connect(str(db))
    try:
        issues = conn.execute("SELECT repo, number, source, url, title, body, state, labels, is_pull, created_at, "
                              "updated_at, closed_at, raw, timeline_for FROM issues ORDER BY repo, number").fetchall()
        events = conn.execute("SELECT repo, number, seq, event, created_at, raw FROM timeline_events "
                              "ORDER BY repo, number, seq").fetchall()
        return norm(issues), norm(events)
    finally:
        conn.close()


def plain_listing(url: str, source) -> dict[int, str]:
    """What a plain paginated client sees: follow Link rel=next, keep relevant issues."""
    params = {"state": source.state, "per_page": "100"}
    if source.labels:
        params["labels"] = ",".join(source.labels)
    out: dict[int, str] = {}
    nxt = f"{url.rstrip('/')}/repos/{source.repo}/issues"
    while nxt:
        r = requests.get(nxt, params=params, timeout=10)
        r.raise_for_status()
        params = None
        out.update({i["number"]: i["updated_at"] for i in r.json() if source.is_relevant(i)})
        nxt = r.links.get("next", {}).get("url")
    return out


def plain_timeline(url: str, repo: str, number: int) -> list[dict]:
    events, nxt, params = [], f"{url.rstrip('/')}/repos/{repo}/issues/{number}/timeline", {"per_page": "100"}
    while nxt:
        r = requests.get(nxt, params=params, timeout=10)
        r.raise_for_status()
        params = None
        events.extend(r.json())
        nxt = r.links.get("next", {}).get("url")
    return events


def requests_served(emu) -> int:
    return int(emu.stats()["requests"])


@pytest.fixture(scope="module")
def clean_store(tmp_path_factory):
    """An uninterrupted, fault-free crawl of the default emulator: the reference store."""
    db = tmp_path_factory.mktemp("clean") / "clean.db"
    with emulator() as emu:
        summary = run_crawl(db, emu.url)
        assert not summary.errors and not summary.partial
        return dump(db, emu.url)


# -- exactness and cost -------------------------------------------------------------------------

def test_crawl_stores_what_a_plain_client_sees(tmp_path):
    db = tmp_path / "m.db"
    with emulator() as emu:
        summary = run_crawl(db, emu.url)
        assert all(s.complete for s in summary.sources.values()) and not summary.errors
        conn = connect(db)
        for src in SOURCES:
            plain = plain_listing(emu.url, src)
            stored = {r["number"]: r["updated_at"] for r in conn.execute(
                "SELECT number, updated_at FROM issues WHERE source = ?", (src.name,))}
            assert stored == plain and plain, src.name
            assert conn.execute("SELECT COUNT(*) FROM issues WHERE source = ? AND timeline_for IS NULL",
                                (src.name,)).fetchone()[0] == 0
            # timelines are complete, in order, comment bodies included (spot-check a few, incl. long ones)
            longest = [r[0] for r in conn.execute(
                "SELECT number FROM timeline_events WHERE repo = ? GROUP BY number ORDER BY COUNT(*) DESC LIMIT 3",
                (src.repo,))]
            for number in longest + sorted(plain)[:2]:
                stored_events = [json.loads(r[0]) for r in conn.execute(
                    "SELECT raw FROM timeline_events WHERE repo = ? AND number = ? ORDER BY seq", (src.repo, number))]
                assert stored_events == plain_timeline(emu.url, src.repo, number)
        assert conn.execute("SELECT COUNT(*) FROM issues WHERE is_pull = 1").fetchone()[0] == 0
        # a third-party client, PyGithub's own paginated iteration, sees the same issues
        github = pytest.importorskip("github")
        gh = github.Github(base_url=emu.url, per_page=100, retry=None)
        for src in SOURCES:
            listed = gh.get_repo(src.repo).get_issues(state=src.state, labels=list(src.labels))
            # html_url and labels come with the listing (no per-issue completion request)
            seen = {i.number: i.updated_at for i in listed if "/pull/" not in i.html_url
                    and not {lab.name for lab in i.labels} & set(src.exclude_labels)}
            stored = {r[0]: r[1] for r in conn.execute("SELECT number, updated_at FROM issues WHERE source = ?",
                                                         (src.name,))}
            assert set(seen) == set(stored), src.name
            assert all(seen[n].strftime("%Y-%m-%dT%H:%M:%SZ") == stored[n] for n in seen)
        status = json.loads(run_mine("status", "--db", str(db), "--format", "json").stdout)["sources"]
        for src in SOURCES:
            n = summary.sources[src.name].new
            assert status[src.name]["issues"] == status[src.name]["timelines"] == n
            assert status[src.name]["high_water"] and status[src.name]["last_crawl"]
        # the filter agrees with the emulator's ground truth on every stored issue
        data = pytest.importorskip("pipeline.emulator.data")
        ds = data.Dataset(seed=0, issues=N)
        kept = {(r["repo"], r["number"]) for r in filtered_issues(conn, sources=SOURCES)}
        for repo, number in conn.execute("SELECT repo, number FROM issues"):
            assert ((repo, number) in kept) == ds.get(repo, number).data_available, (repo, number)
        conn.close()


def test_request_budget_first_second_and_touched_runs(tmp_path):
    db = tmp_path / "m.db"
    with emulator() as emu:
        before = requests_served(emu)
        s1 = run_crawl(db, emu.url)
        first = requests_served(emu) - before
        issues = sum(s.new for s in s1.sources.values())
        pages = sum(s.listing_pages for s in s1.sources.values())
        # one lookup per label a source requires or excludes, on the first run only
        checks = sum(len(s.labels) + len(s.exclude_labels) for s in SOURCES)
        assert s1.totals()["label_checks"] == checks
        assert first == s1.requests
        assert first <= 1.02 * issues + pages + checks, (first, issues, pages)

        before = requests_served(emu)
        s2 = run_crawl(db, emu.url)
        assert s2.totals()["label_checks"] == 0
        assert requests_served(emu) - before <= 2 * len(SOURCES)
        assert sum(s.timelines for s in s2.sources.values()) == 0
        assert sum(s.unchanged for s in s2.sources.values()) > 0

        # nothing changed again: the same first page is now answered 304 (free on GitHub)
        s3 = run_crawl(db, emu.url)
        assert s3.requests <= 2 * len(SOURCES) and s3.not_modified >= 1

        old = {(r[0], r[1]): r[10] for r in dump(db)[0]}
        k = 5
        for src in SOURCES:
            emu.touch(src.repo, k)
        before = requests_served(emu)
        s4 = run_crawl(db, emu.url)
        spent = requests_served(emu) - before
        new = {(r[0], r[1]): r[10] for r in dump(db)[0]}
        moved = sum(1 for key, v in new.items() if old.get(key) != v)
        assert 1 <= moved <= k * len(SOURCES)
        assert sum(s.timelines for s in s4.sources.values()) == moved
        assert spent <= 2 * len(SOURCES) + moved + 2    # + a second page for a rare >100-event timeline
        # touched issues got their new event
        assert sum(s.updated for s in s4.sources.values()) == moved


# -- faults ---------------------------------------------------------------------------------------

def test_survives_5xx_bursts(tmp_path, clean_store):
    db = tmp_path / "m.db"
    with emulator(error_rate=0.2) as emu:
        summary = run_crawl(db, emu.url, max_attempts=10)
        assert not summary.errors and summary.retries > 0
        assert dump(db, emu.url) == clean_store


def test_survives_truncated_bodies(tmp_path, clean_store):
    db = tmp_path / "m.db"
    with emulator(truncate_rate=0.2) as emu:
        summary = run_crawl(db, emu.url, max_attempts=10)
        assert not summary.errors and summary.retries > 0
        assert dump(db, emu.url) == clean_store


def test_always_truncated_body_is_reported_with_its_url(tmp_path):
    db = tmp_path / "m.db"
    with emulator(truncate_rate=1.0) as emu:
        client = GitHubClient(emu.url, backoff_base=0.001, sleep=lambda s: None, max_attempts=3)
        with pytest.raises(CrawlError, match=r"/repos/pytorch/pytorch/issues.*3 attempts.*malformed|"
                                             r"/repos/pytorch/pytorch/issues.*3 attempts"):
            client.get("repos/pytorch/pytorch/issues", {"state": "closed"})
        summary = run_crawl(db, emu.url, max_attempts=3)
    assert summary.errors and all("/repos/" in e and "attempts" in e for e in summary.errors)
    assert not any(s.complete for s in summary.sources.values())


def test_honours_secondary_rate_limit(tmp_path, clean_store):
    db = tmp_path / "m.db"
    waits = Waits()
    with emulator(secondary_every=25) as emu:
        summary = run_crawl(db, emu.url, waits=waits)
        assert dump(db, emu.url) == clean_store
    assert not summary.errors
    assert any("secondary" in reason for _, reason in waits.calls)


def test_budget_spent_mid_crawl_waits_for_reset(tmp_path, clean_store):
    db = tmp_path / "m.db"
    waits = Waits(cap=10)            # really wait: the emulator resets on its own clock
    with emulator(rate_limit=60, reset_seconds=2) as emu:
        summary = run_crawl(db, emu.url, waits=waits)
        assert dump(db, emu.url) == clean_store
    assert not summary.errors and not summary.partial
    assert any("rate limit" in reason for _, reason in waits.calls)


def test_budget_spent_with_max_wait_stops_then_resumes(tmp_path, clean_store):
    db = tmp_path / "m.db"
    with emulator(rate_limit=60, reset_seconds=2) as emu:
        s1 = run_crawl(db, emu.url, max_wait=0.5)
        assert s1.partial and "max-wait" in (s1.stop_reason or "")
        partial = dump(db)
        assert 0 < len(partial[0]) < len(clean_store[0])
        # state saved: every stored issue has its timeline, and the source remembers its cursor
        assert all(row[13] == row[10] for row in partial[0])
        conn = connect(db)
        states = {r[0]: json.loads(r[1]) for r in conn.execute("SELECT source, state FROM crawl_state")}
        conn.close()
        assert any(st.get("running") for st in states.values())
        assert s1.rate_reset
        time.sleep(max(0.0, s1.rate_reset - time.time()) + 0.2)   # the emulator's window resets
        s2 = run_crawl(db, emu.url, waits=Waits(cap=10))
        assert dump(db, emu.url) == clean_store
    assert not s2.partial and not s2.errors


def test_cli_exit_code_3_when_budget_would_need_a_long_wait(tmp_path):
    db = tmp_path / "m.db"
    with emulator(rate_limit=30, reset_seconds=3600) as emu:
        r = run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--max-wait", "5", "--format", "json",
                     env={"GITHUB_TOKEN": ""})
    assert r.returncode == 3, r.stderr
    out = json.loads(r.stdout)
    assert out["partial"] is True and out["requests"] >= 30
    assert "warning" in r.stderr and "token" in r.stderr     # unauthenticated: warns


def _served_store_issue_count(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM issues").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_kill_9_mid_crawl_then_resume_equals_uninterrupted(tmp_path, clean_store):
    db = tmp_path / "killed.db"
    total = len(clean_store[0])
    with emulator(latency_ms=15) as emu:
        cmd = [sys.executable, "-m", "pipeline", "crawl", "--api-url", emu.url, "--db", str(db), "--format", "json"]
        env = {**os.environ, "GITHUB_TOKEN": "", "COLUMNS": "120"}
        kills = 0
        for target in (total // 4, 3 * total // 4):
            proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while _served_store_issue_count(db) < target and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
        assert kills >= 1
        assert 0 < _served_store_issue_count(db) < total
        r = subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        assert dump(db, emu.url) == clean_store


def test_token_never_appears_in_output_logs_or_store(tmp_path):
    token = "ghp_DistinctiveTok3n_4d8f2b9e1c7a"
    pool = ["ghp_PoolTok3nOne_5e9a0c3d2b1f", "ghp_PoolTok3nTwo_6f0b1d4e3c2a"]
    db = tmp_path / "m.db"
    with emulator(error_rate=0.1, truncate_rate=0.05, tokens=(token, *pool)) as emu:
        fast = ("--backoff-base", "0.01")
        runs = [run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--token", token, *fast),
                run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--format", "json", *fast,
                         env={"GITHUB_TOKEN": token}),
                run_mine("status", "--db", str(db)),
                # an error path: an unreachable API (connection refused) after the emulator
                run_mine("crawl", "--api-url", "http://127.0.0.1:9/", "--db", str(db), "--token", token,
                         "--backoff-base", "0.01", "--max-attempts", "2"),
                # a pool, from the environment and from repeated --token; a full run sends every kind of request
                run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--full", *fast,
                         env={"GITHUB_TOKENS": ",".join(pool), "GITHUB_TOKEN": ""}),
                run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--format", "json", "--token", pool[0],
                         "--token", pool[1], "--token", token, *fast),
                # a token the API refuses: named by position, never shown
                run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--token", pool[0], "--token",
                         pool[1] + "x", *fast)]
        stats = emu.stats()
    for r in runs:
        for t in (token, *pool):
            assert t not in r.stdout and t not in r.stderr
    assert [r.returncode for r in runs] == [0, 0, 0, 2, 0, 0, 2], [r.stderr for r in runs]
    assert "token 2" in runs[6].stderr and "401" in runs[6].stderr
    assert token not in json.dumps(stats) and all(t not in json.dumps(stats) for t in pool)
    assert stats["by_token"]["2"] > 0 and stats["by_token"]["3"] > 0     # both pool tokens were used
    assert [t["token"] for t in json.loads(runs[5].stdout)["tokens"]] == [1, 2, 3]
    for f in tmp_path.iterdir():
        data = f.read_bytes()
        for t in (token, *pool):
            assert t.encode() not in data, f.name


def test_concurrency_one_gives_the_same_store(tmp_path, clean_store):
    db = tmp_path / "m.db"
    with emulator() as emu:
        summary = run_crawl(db, emu.url, concurrency=1)
        assert not summary.errors
        assert dump(db, emu.url) == clean_store


def test_since_limits_the_listing_and_config_changes_remove_issues(tmp_path):
    db = tmp_path / "m.db"
    since = "2024-01-01T00:00:00Z"
    src = next(s for s in SOURCES if s.name == "tf2onnx")
    with emulator() as emu:
        client = GitHubClient(emu.url, backoff_base=0.001)
        conn = connect(db)
        s1 = crawl(conn, [src], client, since=since)
        stored = {r[0]: r[1] for r in conn.execute("SELECT number, updated_at FROM issues")}
        assert stored and all(u >= since for u in stored.values())
        assert stored == {n: u for n, u in plain_listing(emu.url, src).items() if u >= since}
        assert s1.sources["tf2onnx"].complete
        # the user now also excludes a label some stored issues carry: a re-crawl from the same
        # date drops those issues (and their timelines)
        from collections import Counter
        from dataclasses import replace
        counts = Counter(lab for (labels,) in conn.execute("SELECT labels FROM issues") for lab in json.loads(labels))
        label = counts.most_common(1)[0][0]
        stricter = replace(src, exclude_labels=src.exclude_labels + (label,))
        s2 = crawl(conn, [stricter], GitHubClient(emu.url, backoff_base=0.001), since=since)
        left = {r[0] for r in conn.execute("SELECT number FROM issues")}
        assert s2.sources["tf2onnx"].removed == len(stored) - len(left) > 0
        assert left == {n for n, u in plain_listing(emu.url, stricter).items() if u >= since}
        assert conn.execute("SELECT COUNT(*) FROM timeline_events WHERE number NOT IN (SELECT number FROM issues)"
                            ).fetchone()[0] == 0
        conn.close()


def test_issues_updated_during_the_crawl_are_not_lost(tmp_path):
    """Issues touched mid-crawl move to the end of the ascending listing; with page-number
    pagination the issue after a page boundary would slip into the page already read and be
    missed. The run must still store every listed issue (touched ones may keep their older
    version), and the next incremental run must bring the store to exactly the listing."""
    db = tmp_path / "m.db"

    class TouchMidway:
        def __init__(self, emu):
            self.emu, self.seen, self.touched = emu, {}, set()

        def start(self, source, total):
            pass

        def advance(self, source, n=1):
            self.seen[source] = self.seen.get(source, 0) + n
            if self.seen[source] >= 10 and source not in self.touched:
                self.touched.add(source)
                self.emu.touch(next(s.repo for s in SOURCES if s.name == source), 8)

        def finish(self, source):
            pass

    with emulator() as emu:
        conn = connect(db)
        progress = TouchMidway(emu)
        summary = crawl(conn, SOURCES, GitHubClient(emu.url, backoff_base=0.001), concurrency=2, progress=progress)
        assert not summary.errors and progress.touched == {s.name for s in SOURCES}
        for src in SOURCES:
            stored = {r[0] for r in conn.execute("SELECT number FROM issues WHERE source = ?", (src.name,))}
            assert stored == set(plain_listing(emu.url, src)), src.name
        crawl(conn, SOURCES, GitHubClient(emu.url, backoff_base=0.001))
        for src in SOURCES:
            stored = {r[0]: r[1] for r in conn.execute(
                "SELECT number, updated_at FROM issues WHERE source = ? AND timeline_for = updated_at", (src.name,))}
            assert stored == plain_listing(emu.url, src), src.name
        conn.close()


# -- review fixes: disappearing issues, user errors, narrow logs, Ctrl-C --------------------------

class DeleteAfterFirstPage:
    """A progress hook that deletes issues on the emulator once a source's first listing page
    is read and before its timelines are asked: those timelines answer 410 Gone."""

    def __init__(self, emu, repo: str, numbers) -> None:
        self.emu, self.repo, self.numbers, self.done = emu, repo, list(numbers), False

    def start(self, source, total):
        if not self.done and next(s.repo for s in SOURCES if s.name == source) == self.repo:
            self.done = True
            assert all(self.emu.delete(self.repo, n) for n in self.numbers)

    def advance(self, source, n=1):
        pass

    def finish(self, source):
        pass


def test_an_issue_deleted_between_listing_and_timeline_is_dropped_not_an_error(tmp_path):
    db = tmp_path / "m.db"
    torch = SOURCES[0]
    with emulator() as emu:
        listed = plain_listing(emu.url, torch)
        oldest = sorted(listed, key=lambda n: (listed[n], n))[:2]      # on the run's first page
        conn = connect(db)
        s1 = crawl(conn, SOURCES, GitHubClient(emu.url, backoff_base=0.001),
                   progress=DeleteAfterFirstPage(emu, torch.repo, oldest))
        assert not s1.errors and all(s.complete for s in s1.sources.values())
        stored = {r[0] for r in conn.execute("SELECT number FROM issues WHERE source = ?", (torch.name,))}
        assert stored == set(listed) - set(oldest) == set(plain_listing(emu.url, torch))
        # a stored issue that changes, then is deleted before its new timeline is read: removed
        touched = emu.touch(torch.repo, 3)
        s2 = crawl(conn, SOURCES, GitHubClient(emu.url, backoff_base=0.001),
                   progress=DeleteAfterFirstPage(emu, torch.repo, touched[:1]))
        assert not s2.errors and s2.sources[torch.name].complete
        assert (s2.sources[torch.name].removed, s2.sources[torch.name].updated) == (1, 2)
        for table in ("issues", "timeline_events"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE repo = ? AND number = ?",
                                (torch.repo, touched[0])).fetchone()[0] == 0
        conn.close()


def test_emulator_deletes_an_issue_like_github(tmp_path):
    with emulator() as emu:
        number = next(iter(plain_listing(emu.url, SOURCES[1])))
        r = requests.post(f"{emu.url}/_emulator/delete", params={"repo": SOURCES[1].repo, "number": number}, timeout=10)
        assert r.json() == {"deleted": True}
        gone = requests.get(f"{emu.url}/repos/{SOURCES[1].repo}/issues/{number}/timeline", timeout=10)
        assert gone.status_code == 410 and gone.json()["message"] == "This issue was deleted"
        assert number not in plain_listing(emu.url, SOURCES[1])
        assert requests.post(f"{emu.url}/_emulator/delete", params={"repo": "no/such", "number": 1},
                             timeout=10).status_code == 422


def test_crawl_bad_input_is_one_line_exit_2(tmp_path):
    """Bad --since, --api-url, --db: one line naming the value, exit 2, no traceback, no request."""
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello\n")
    with emulator() as emu:
        db = str(tmp_path / "m.db")
        cases = [
            (("--since", "2024-13-01"), "--since '2024-13-01'"),
            (("--since", "yesterday"), "--since 'yesterday'"),
            (("--api-url", "api.github.com"), "--api-url 'api.github.com'"),
            (("--api-url", "ftp://127.0.0.1/"), "--api-url 'ftp://127.0.0.1/'"),
            (("--db", str(not_a_db)), "not an SQLite database"),
        ]
        for extra, message in cases:
            args = ["crawl", "--api-url", emu.url, "--db", db, "--token", "t0k3n_x", *extra]
            r = run_mine(*args)
            assert r.returncode == 2, (extra, r.stderr)
            assert message in r.stderr and "Traceback" not in r.stderr, r.stderr
            assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [r.stderr.strip()], r.stderr
        assert run_mine("crawl", "--api-url", emu.url, "--db", db, "--max-wait", "-1").returncode == 2
        assert requests_served(emu) == 0


def test_status_of_a_missing_store_is_an_error_and_creates_nothing(tmp_path):
    typo = tmp_path / "mine-typo.db"
    for cmd in ("status", "filter", "sample"):
        r = run_mine(cmd, "--db", str(typo))
        assert r.returncode == 2 and "no store there" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_since_takes_dates_times_and_any_utc_offset(tmp_path):
    from pipeline.crawl.commands import parse_since

    assert parse_since("2024-01-31") == "2024-01-31T00:00:00Z"
    assert parse_since("2024-01-31T12:00:00") == "2024-01-31T12:00:00Z"          # no offset: UTC
    assert parse_since("2024-01-31T12:00:00Z") == "2024-01-31T12:00:00Z"
    assert parse_since("2024-01-31T12:00:00+02:00") == "2024-01-31T10:00:00Z"
    assert parse_since("2024-01-31T12:00:00-02:00") == "2024-01-31T14:00:00Z"
    with emulator() as emu:
        r = run_mine("crawl", "--api-url", emu.url, "--db", str(tmp_path / "m.db"), "--source", "tf2onnx",
                     "--since", "2024-06-30T22:00:00-02:00", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sources"]["tf2onnx"]["since"] == "2024-07-01T00:00:00Z"


def test_summary_and_errors_stay_whole_lines_in_an_80_column_log(tmp_path):
    """Cron logs are 80 columns wide (no terminal): every count and every error stays readable
    on its own line, never cut to an ellipsis or folded."""
    db = str(tmp_path / "m.db")
    with emulator() as emu:
        ok = run_mine("crawl", "--api-url", emu.url, "--db", db, env={"COLUMNS": "80"})
    assert ok.returncode == 0, ok.stderr
    conn = connect(db)
    for src in SOURCES:
        n = conn.execute("SELECT COUNT(*) FROM issues WHERE source = ?", (src.name,)).fetchone()[0]
        assert f"{src.name}: {n} new, 0 updated, 0 unchanged, 0 removed; {n} timelines" in ok.stdout, ok.stdout
    conn.close()
    assert "…" not in ok.stdout
    status = run_mine("status", "--db", db, env={"COLUMNS": "80"})
    marks = json.loads(run_mine("status", "--db", db, "--format", "json").stdout)["sources"]
    assert status.returncode == 0 and "…" not in status.stdout
    assert all(m["high_water"] in status.stdout and m["last_crawl"] in status.stdout for m in marks.values())
    with emulator(error_rate=1.0) as emu:
        url = emu.url
        bad = run_mine("crawl", "--api-url", url, "--db", db, "--max-attempts", "2", "--backoff-base", "0.01",
                       env={"COLUMNS": "80"})
        bad_json = run_mine("crawl", "--api-url", url, "--db", db, "--max-attempts", "2", "--backoff-base", "0.01",
                            "--format", "json", env={"COLUMNS": "80"})
    assert bad.returncode == bad_json.returncode == 1
    # errors go to stderr, one line each, the URL without its query string (in full with --format json)
    assert "error" not in bad.stdout
    errors = [ln for ln in bad.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == len(SOURCES), bad.stderr
    assert all(f"{url}/repos/" in e and "gave up after 2 attempts: HTTP 50" in e and "?" not in e
               and len(e) < 160 for e in errors), errors
    full = [ln for ln in bad_json.stderr.splitlines() if ln.startswith("error: ")]
    assert len(full) == len(SOURCES) and all(f"{url}/repos/" in e for e in full), bad_json.stderr
    assert json.loads(bad_json.stdout)["errors"] == [e.removeprefix("error: ") for e in full]


def test_ctrl_c_during_a_rate_limit_wait_stops_at_once_and_keeps_the_store(tmp_path):
    """The budget is spent and the reset is an hour away: the crawl counts down. Ctrl-C must end
    it (not after the hour), with one line saying the state is kept, exit 130."""
    db = tmp_path / "m.db"
    with emulator(rate_limit=25, reset_seconds=3600) as emu:
        cmd = [sys.executable, "-m", "pipeline", "crawl", "--api-url", emu.url, "--db", str(db)]
        env = {**os.environ, "GITHUB_TOKEN": "", "COLUMNS": "120"}
        # a shell's background job starts with Ctrl-C ignored, and a child inherits that: the crawl must
        # see SIGINT as a user at a terminal would, however the test run was started
        proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 60
            while emu.stats()["rate_limited"] == 0 and emu.stats()["requests"] < 25 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)                      # let it reach the countdown
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted: what was stored is kept" in err and "Traceback" not in err, err
    stored = dump(db)[0]
    assert stored and all(row[13] == row[10] for row in stored)     # whole issues only


def test_a_token_with_stray_whitespace_is_never_echoed(tmp_path):
    """A token read from a file keeps its newline: it is stripped (the crawl works); one with
    whitespace inside is refused without being shown; an exception quoting the header escaped
    is scrubbed too."""
    token = "ghp_StrayWhitespaceTok3n_9f7e"
    db = tmp_path / "m.db"
    with emulator() as emu:
        ok = run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--source", "tf2onnx",
                      env={"GITHUB_TOKEN": token + "\n"})
        bad = run_mine("crawl", "--api-url", emu.url, "--db", str(db), env={"GITHUB_TOKEN": "ghp_Half\nOther_Half"})
        client = GitHubClient(emu.url, "ghp_Half\nOther_Half", max_attempts=1)
        with pytest.raises(CrawlError) as info:
            client.get("repos/pytorch/pytorch/issues")
    assert ok.returncode == 0, ok.stderr
    assert bad.returncode == 2 and "not shown" in bad.stderr
    for text in (ok.stdout, ok.stderr, bad.stdout, bad.stderr, str(info.value)):
        assert token not in text and "ghp_Half" not in text and "Other_Half" not in text, text
    for f in tmp_path.iterdir():
        assert token.encode() not in f.read_bytes(), f.name


def test_a_second_crawl_of_the_same_store_stops_at_once(tmp_path):
    """Tonight's cron must not crawl alongside last night's run still waiting for a reset."""
    import fcntl

    db = tmp_path / "m.db"
    with emulator() as emu:
        with open(f"{db}.crawl-lock", "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)             # what a running crawl holds
            held.write("4242\n")
            held.flush()
            r = run_mine("crawl", "--api-url", emu.url, "--db", str(db))
            assert r.returncode == 2 and "another crawl (pid 4242)" in r.stderr, r.stderr
            assert "Traceback" not in r.stderr and requests_served(emu) == 0
        again = run_mine("crawl", "--api-url", emu.url, "--db", str(db))   # lock released
        assert again.returncode == 0, again.stderr


def test_full_listing_drops_issues_the_incremental_listing_cannot_see(tmp_path):
    """Reopened, relabelled and deleted issues never show in a `since=` listing of closed,
    labelled issues: an incremental run keeps them; `--full` lists everything again (pages only,
    no timeline for unchanged issues) and drops them."""
    db = tmp_path / "m.db"
    torch = SOURCES[0]
    with emulator() as emu:
        assert run_mine("crawl", "--api-url", emu.url, "--db", str(db)).returncode == 0
        stored = sorted(plain_listing(emu.url, torch))
        ds = emu.dataset
        newest = max(r.updated_at for r in ds.issues[torch.repo].values())
        reopened, relabelled, deleted = stored[:3]
        ds.get(torch.repo, reopened).state = "open"
        ds.get(torch.repo, relabelled).labels.remove("module: onnx")
        for n in (reopened, relabelled):
            ds.get(torch.repo, n).updated_at = newest + 5
        emu.delete(torch.repo, deleted)
        assert run_mine("crawl", "--api-url", emu.url, "--db", str(db)).returncode == 0
        conn = connect(db)
        numbers = {r[0] for r in conn.execute("SELECT number FROM issues WHERE source = ?", (torch.name,))}
        conn.close()
        assert {reopened, relabelled, deleted} <= numbers          # stale: incremental cannot see it
        before = requests_served(emu)
        r = run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--full", "--format", "json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        served = requests_served(emu) - before
        # the full run kept the incremental runs' cached first pages: nothing new costs one 304 per source
        nightly = json.loads(run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--format", "json").stdout)
        assert (nightly["requests"], nightly["not_modified"]) == (len(SOURCES), len(SOURCES))
    assert out["sources"][torch.name]["removed"] == 3 and out["sources"]["tf2onnx"]["removed"] == 0
    assert sum(s["timelines"] for s in out["sources"].values()) == 0
    # listing pages, and each label looked up again (conditional: answered 304)
    assert served == sum(s["listing_pages"] + s["label_checks"] for s in out["sources"].values())
    named = sum(len(s.labels) + len(s.exclude_labels) for s in SOURCES)  # every label a source names
    assert sum(s["label_checks"] for s in out["sources"].values()) == out["not_modified"] == named
    conn = connect(db)
    numbers = {r[0] for r in conn.execute("SELECT number FROM issues WHERE source = ?", (torch.name,))}
    assert numbers == set(stored) - {reopened, relabelled, deleted}
    assert conn.execute("SELECT COUNT(*) FROM timeline_events WHERE repo = ? AND number IN (?, ?, ?)",
                        (torch.repo, reopened, relabelled, deleted)).fetchone()[0] == 0
    conn.close()
    assert run_mine("crawl", "--db", str(db), "--full", "--since", "2024-01-01").returncode == 2
