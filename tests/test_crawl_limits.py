"""Rate limits against the emulator: a GitHub clock off by 30 s, reset times already past,
no request once the budget is known to be spent (concurrency 16), a --max-wait stop that
stops every thread, and token pools with separate budgets."""

from __future__ import annotations

import json
import time

import pytest
import requests

from pipeline.crawl.client import GitHubClient, TokenBudget
from tests.helpers import run_mine
from tests.test_crawl import SOURCES, Waits, dump, emulator, run_crawl

POOL = ("ghp_PoolTokenA_1f2e3d", "ghp_PoolTokenB_4c5b6a", "ghp_PoolTokenC_7d8e9f")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Stores of fault-free, unlimited crawls, by issues per repository."""
    out = {}

    def get(issues: int = 120, repo_issues: dict[str, int] | None = None):
        key = (issues, tuple(sorted((repo_issues or {}).items())))
        if key not in out:
            db = tmp_path_factory.mktemp("ref") / f"ref{issues}.db"
            with emulator(issues=issues, repo_issues=dict(repo_issues or {})) as emu:
                summary = run_crawl(db, emu.url)
                assert not summary.errors and not summary.partial
                out[key] = dump(db, emu.url)
        return out[key]

    return get


def test_bookkeeping_never_goes_back_up_on_late_answers():
    b = TokenBudget(1)
    b.note(5000, 10, 1000.0)
    b.note(5000, 12, 1000.0)          # an older answer of the same window, arriving late
    assert (b.remaining, b.reset) == (10, 1000.0)
    b.note(5000, 4999, 4600.0)        # the next window
    assert (b.remaining, b.reset) == (4999, 4600.0)
    b.note(5000, 0, 1000.0)           # a straggler from the window before: says nothing now
    assert (b.remaining, b.reset) == (4999, 4600.0)
    b.note(5000, 4990, None)          # no reset header: still only downwards
    b.note(None, 4995, None)
    assert b.remaining == 4990 and b.limit == 5000


@pytest.mark.parametrize("skew", [30, -30])
def test_a_github_clock_30s_off_completes_identically(tmp_path, reference, skew):
    """GitHub's clock 30 s ahead of ours, or behind (the reset times it sends are then already
    past by our clock while it still refuses): the crawl waits GitHub's reset, read on GitHub's
    clock (the Date header), and the store equals a clean crawl."""
    waits = Waits(cap=10)              # really wait: the emulator resets on its own clock
    db = tmp_path / "m.db"
    with emulator(clock_skew=skew, rate_limit=60, reset_seconds=2) as emu:
        summary = run_crawl(db, emu.url, waits=waits)
        assert dump(db, emu.url) == reference()
        stats = emu.stats()
    assert not summary.errors and not summary.partial
    assert waits.calls and all(seconds <= 4 for seconds, _ in waits.calls), waits.calls   # 2 s windows, not 2 ± 30
    assert stats["rate_limited"] == 0


def test_a_reset_already_past_while_limited_is_waited_out_not_a_tight_loop():
    """The reset GitHub reports is 30 s in the past although it still refuses (its reset
    figures, not its clock, are off): the client asks /rate_limit, then waits the bounded
    minimum, once per window, instead of retrying every second until it gives up."""
    waits: list[tuple[float, str]] = []

    def on_wait(seconds: float, reason: str) -> None:
        waits.append((seconds, reason))
        time.sleep(seconds)

    with emulator(issues=5, rate_limit=3, reset_seconds=5, reset_skew=-30) as emu:
        c = GitHubClient(emu.url, stale_reset_wait=6, on_wait=on_wait, max_rate_waits=3)
        for _ in range(7):
            assert c.get("repos/pytorch/pytorch").status == 200
        stats = emu.stats()
    assert stats["rate_limited"] == 2                       # one refused request per spent window
    assert stats["by_endpoint"]["/rate_limit"] == 2         # the free question, once each
    assert [round(s) for s, _ in waits] == [6, 6], waits


def test_concurrency_16_with_a_small_budget_sends_nothing_once_it_is_spent(tmp_path, reference):
    db = tmp_path / "m.db"
    with emulator(rate_limit=40, reset_seconds=2) as emu:
        summary = run_crawl(db, emu.url, waits=Waits(cap=10), concurrency=16)
        assert dump(db, emu.url) == reference()
        stats = emu.stats()
    assert not summary.errors and not summary.partial and summary.requests == stats["requests"]
    assert stats["rate_limited"] == 0, stats                 # no request answered "limit spent"


def test_a_pool_at_concurrency_16_spreads_the_budget_and_never_overshoots(tmp_path, reference):
    db = tmp_path / "m.db"
    waits = Waits(cap=10)
    with emulator(rate_limit=20, reset_seconds=2, tokens=POOL) as emu:
        summary = run_crawl(db, emu.url, waits=waits, concurrency=16, token=list(POOL))
        assert dump(db, emu.url) == reference()
        stats = emu.stats()
    assert not summary.errors and stats["rate_limited"] == 0, stats
    assert all(stats["by_token"].get(str(i), 0) > 20 for i in (1, 2, 3)), stats["by_token"]   # each past one window
    assert all("all 3 tokens" in reason for _, reason in waits.calls if "rate limit" in reason)


@pytest.mark.parametrize("concurrency", [4, 16])
def test_a_max_wait_stop_stops_every_thread(tmp_path, concurrency):
    """A Retry-After longer than --max-wait stops the crawl: the other threads send nothing
    more (at most the requests already on their way arrive after the limit answer)."""
    db = tmp_path / "m.db"
    with emulator(secondary_every=60, latency_ms=5) as emu:
        summary = run_crawl(db, emu.url, concurrency=concurrency, max_wait=0.5)
        stats = emu.stats()
    assert summary.partial and "max-wait" in (summary.stop_reason or "")
    after = stats["requests"] - stats["first_limited_at"]
    assert after <= concurrency - 1, (after, stats["requests"], stats["first_limited_at"])
    stored = dump(db)[0]
    assert stored and all(row[13] == row[10] for row in stored)      # whole issues only


def test_a_pool_uses_the_token_with_most_left_and_waits_only_when_all_are_spent(tmp_path, reference):
    db = tmp_path / "m.db"
    waits = Waits()
    # the two study repositories only: the four other converters' issues would not fit the pool's 120 requests
    study_only = {s.repo: 0 for s in SOURCES if s.name not in ("torch.onnx", "tf2onnx")}
    with emulator(issues=60, rate_limit=40, reset_seconds=3600, tokens=POOL, repo_issues=study_only) as emu:
        for _ in range(25):         # someone else spent most of token 2 today
            requests.get(f"{emu.url}/repos/pytorch/pytorch", headers={"Authorization": f"token {POOL[1]}"},
                         timeout=10).raise_for_status()
        emu.reset_stats()
        summary = run_crawl(db, emu.url, waits=waits, token=list(POOL), max_wait=5)
        stats = emu.stats()
        assert dump(db, emu.url) == reference(60, study_only)
    assert not summary.partial and not summary.errors and waits.calls == []
    assert stats["rate_limited"] == 0 and stats["requests"] > 40     # more than any one token holds
    used = {b["token"]: b["requests"] for b in summary.tokens}
    assert used[2] < min(used[1], used[3]) and used[2] <= 15, used
    left = [b["remaining"] for b in summary.tokens]
    assert max(left) - min(left) <= 5, summary.tokens                # the most-left token goes first
    assert [b["token"] for b in summary.tokens] == [1, 2, 3]


def test_a_spent_pool_stops_at_max_wait_with_each_budget_shown_by_position(tmp_path):
    db = tmp_path / "m.db"
    with emulator(issues=60, rate_limit=15, reset_seconds=3600, tokens=POOL[:2]) as emu:
        text = run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--max-wait", "5",
                        env={"GITHUB_TOKENS": ",".join(POOL[:2]), "GITHUB_TOKEN": ""})
        stats = emu.stats()
        js = run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--max-wait", "5", "--format", "json",
                      "--token", POOL[0], "--token", POOL[1])
    assert text.returncode == js.returncode == 3, text.stderr
    assert stats["rate_limited"] == 0 and stats["by_token"] == {"1": 15, "2": 15}, stats
    assert "token 1 0/15" in text.stdout and "token 2 0/15" in text.stdout, text.stdout
    assert "all 2 tokens" in text.stderr and "stopped early" in text.stderr
    out = json.loads(js.stdout)
    assert [(t["token"], t["remaining"]) for t in out["tokens"]] == [(1, 0), (2, 0)]
    assert js.stdout.count("ghp_") == 0 and all(t not in text.stdout + text.stderr for t in POOL)
    assert {s.name for s in SOURCES} == set(out["sources"])
