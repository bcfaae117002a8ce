"""The HTTP layer (GitHubClient) on its own: retries, backoff, rate limits, 304, scrubbing."""

from __future__ import annotations

import pytest

from pipeline.crawl.backend import IssueBackend, shift_time
from pipeline.crawl.client import (ApiUnusable, BudgetExhausted, CrawlError, GitHubClient, NotFound, brief,
                                  parse_link, scrub)

server = pytest.importorskip("pipeline.emulator.server", reason="the GitHub emulator is not there yet")


def emu(**kw):
    return server.run_emulator(server.EmulatorConfig(**{"issues": 30, **kw}))


def test_pure_helpers():
    assert scrub("Authorization: token abc123 failed for abc123", "abc123") == "Authorization: token *** failed for ***"
    assert scrub("nothing", None) == "nothing"
    assert parse_link('<http://x/a?page=2>; rel="next", <http://x/a?page=5>; rel="last"') == {
        "next": "http://x/a?page=2", "last": "http://x/a?page=5"}
    assert parse_link(None) == {}
    assert brief("x: http://h:1/repos/a/b/issues?state=closed&labels=a%3Ab: gave up; see https://d/x?y=1") == \
        "x: http://h:1/repos/a/b/issues: gave up; see https://d/x"
    assert shift_time("2024-01-01T00:00:30Z", -60) == "2023-12-31T23:59:30Z"


def test_5xx_is_retried_with_exponential_backoff_then_reported():
    delays: list[float] = []
    with emu(error_rate=1.0) as e:
        c = GitHubClient(e.url, max_attempts=4, backoff_base=1.0, sleep=delays.append)
        with pytest.raises(CrawlError, match=r"/repos/pytorch/pytorch/issues\?state=closed: gave up after 4 attempts: HTTP 50[23]"):
            c.get("repos/pytorch/pytorch/issues", {"state": "closed"})
        assert e.stats()["requests"] == 4 and c.requests == 4
    assert len(delays) == 3                  # between attempts only: no sleep after the last one
    for i, d in enumerate(delays):           # equal jitter: between half and all of base * 2^i
        assert 2 ** i * 0.5 <= d <= 2 ** i


def test_nothing_listening_is_one_error_at_once_but_a_dropped_server_is_retried():
    """A refused connection before anything answered is a wrong --api-url: no retry, no sleep.
    Once the API has answered, a refused connection is a blip (a restart): backoff and retry."""
    import socket

    token = "ghp_secretsecretsecret"
    slept: list[float] = []
    c = GitHubClient("http://127.0.0.1:9/", token, max_attempts=5, sleep=slept.append)
    with pytest.raises(ApiUnusable) as info:
        c.get("repos/a/b/issues")
    message = str(info.value)
    assert "http://127.0.0.1:9/repos/a/b/issues: connection refused" in message and "--api-url" in message
    assert token not in message and len(brief(message)) < 200
    assert slept == [] and c.requests == 1
    assert c.has_token and token not in repr(c.__dict__.get("_budgets"))
    with emu() as e:
        c = GitHubClient(e.url, max_attempts=3, sleep=slept.append)
        c.get("repos/pytorch/pytorch")
        url = e.url
    with socket.socket() as s:                       # the port is free again: nothing listens
        if s.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1]))) == 0:
            pytest.skip("the emulator's port was taken again")
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:              # a new thread: a new connection, not the kept-alive one
        with pytest.raises(CrawlError, match=r"gave up after 3 attempts: connection refused") as info:
            pool.submit(c.get, "repos/pytorch/pytorch").result()
    assert not isinstance(info.value, ApiUnusable) and len(slept) == 2


def test_etag_304_and_not_found():
    with emu() as e:
        c = GitHubClient(e.url)
        first = c.get("repos/onnx/tensorflow-onnx/issues", {"state": "closed"})
        assert first.status == 200 and first.etag and isinstance(first.data, list)
        again = c.get("repos/onnx/tensorflow-onnx/issues", {"state": "closed"}, etag=first.etag)
        assert again.not_modified and again.data is None and c.not_modified == 1
        with pytest.raises(NotFound):
            IssueBackend(c).timeline("onnx/tensorflow-onnx", 987654)


def test_primary_limit_waits_or_stops():
    waits: list[tuple[float, str]] = []
    with emu(rate_limit=3, reset_seconds=3600) as e:
        c = GitHubClient(e.url, max_wait=10, on_wait=lambda s, r: waits.append((s, r)))
        for _ in range(3):
            c.get("repos/pytorch/pytorch/issues")
        assert c.rate.remaining == 0 and c.rate.limit == 3
        with pytest.raises(BudgetExhausted, match="max-wait"):
            c.get("repos/pytorch/pytorch/issues")
        assert e.stats()["requests"] == 3          # known spent budget: no request was even sent
    assert waits == []


def test_secondary_limit_honours_retry_after():
    waits: list[tuple[float, str]] = []
    with emu(secondary_every=2) as e:
        c = GitHubClient(e.url, on_wait=lambda s, r: waits.append((s, r)))
        c.get("repos/pytorch/pytorch/issues")
        resp = c.get("repos/pytorch/pytorch/issues")   # 2nd request answered 403 + Retry-After: 1, then retried
        assert resp.status == 200
    assert waits and 0.9 < waits[0][0] <= 1.0 and "secondary" in waits[0][1]   # Retry-After: 1


def test_a_rate_limit_wait_holds_every_thread():
    """GitHub asks clients to stop sending while limited: while one thread sleeps through a
    Retry-After, the other threads of the crawl send nothing (at most the requests already in
    flight arrive)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    with emu(secondary_every=40) as e:
        sent_during: list[int] = []
        waiting = threading.Lock()

        def on_wait(seconds: float, reason: str) -> None:
            assert waiting.acquire(blocking=False), "two threads waiting at once"
            try:
                before = e.stats()["requests"]
                time.sleep(0.3)
                sent_during.append(e.stats()["requests"] - before)
            finally:
                waiting.release()

        c = GitHubClient(e.url, on_wait=on_wait)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: c.get("repos/pytorch/pytorch/issues", {"page": str(i % 3 + 1)}), range(120)))
    assert len(sent_during) >= 2
    assert max(sent_during) <= 3, sent_during      # the 3 other threads' in-flight requests at most


def test_cancel_ends_a_wait_and_stops_requests():
    import threading

    with emu(rate_limit=2, reset_seconds=3600) as e:
        c = GitHubClient(e.url)                    # default wait: sleeps until the reset (an hour)
        for _ in range(2):
            c.get("repos/pytorch/pytorch/issues")
        threading.Timer(0.2, c.cancel).start()
        with pytest.raises(CrawlError, match="cancelled"):
            c.get("repos/pytorch/pytorch/issues")
        assert e.stats()["requests"] == 2


def test_a_malformed_api_url_is_not_retried():
    slept: list[float] = []
    c = GitHubClient("ftp://127.0.0.1:9/", sleep=slept.append)
    with pytest.raises(CrawlError, match="InvalidSchema"):
        c.get("repos/a/b/issues")
    assert slept == [] and c.retries == 0


def test_a_spent_budget_without_a_reset_time_waits_the_bounded_minimum_then_probes():
    """Limited, and GitHub said nothing about when it ends (no X-RateLimit-Reset): wait
    ``stale_reset_wait`` (GitHub: "at least one minute"), then try once."""
    now = [1_000.0]
    waits: list[float] = []

    def on_wait(seconds: float, reason: str) -> None:
        waits.append(round(seconds))
        now[0] += seconds

    with emu() as e:
        c = GitHubClient(e.url, stale_reset_wait=60, on_wait=on_wait, clock=lambda: now[0])
        c.budgets[0].remaining, c.budgets[0].reset = 0, None     # as after an answer without a reset header
        assert c.get("repos/pytorch/pytorch").status == 200
        assert e.stats()["requests"] == 1
    assert waits == [60]
    assert c.budgets[0].remaining == c.budgets[0].limit - 1     # the answer's figures took over
