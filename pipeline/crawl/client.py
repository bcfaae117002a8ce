"""HTTP layer of the crawler: speaks GitHub's REST API and nothing else.

One :class:`GitHubClient` is shared by the crawler's threads; each thread gets its own
``requests.Session``. The client owns everything GitHub-protocol-shaped:

- the ``Authorization`` header (the token lives only in the session headers: it is never part of
  a URL, a cache key, a log line or an exception message; :func:`scrub` removes it from any text
  that leaves this module);
- rate-limit accounting from ``X-RateLimit-Limit/Remaining/Reset``; when the budget is spent it
  waits for the reset (through the injectable ``on_wait`` callback, which the CLI turns into a
  countdown), or raises :class:`BudgetExhausted` when the wait would exceed ``max_wait``;
- the secondary limit (403/429 with ``Retry-After``), honoured the same way;
- every wait pauses the whole client, not only the thread that was told to wait: the other
  threads hold their next request until the wait is over (GitHub asks clients to stop sending
  while limited, and penalises those that keep going);
- retries with exponential backoff and jitter for 5xx answers, connection errors and malformed
  (e.g. truncated) JSON bodies, with a bounded number of attempts; ``sleep`` and
  ``backoff_base`` are injectable so tests never sleep long;
- conditional requests: ``get(..., etag=...)`` sends ``If-None-Match`` and reports a 304.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urljoin

import requests

DEFAULT_API_URL = "https://api.github.com"
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


class CrawlError(Exception):
    """A request that could not be completed (after retries); the message names the URL."""


class NotFound(CrawlError):
    """HTTP 404/410: the resource is gone (e.g. an issue deleted or made private meanwhile)."""


class BudgetExhausted(CrawlError):
    """The rate-limit wait would exceed ``max_wait``: the crawl stops cleanly, resumable later."""

    def __init__(self, message: str, reset_at: float | None = None) -> None:
        super().__init__(message)
        self.reset_at = reset_at


def scrub(text: str, token: str | None) -> str:
    """``text`` with every occurrence of ``token`` replaced by ``***``, and of each of its
    whitespace-separated parts too (an exception may quote the token escaped, e.g. ``'\\n'``)."""
    if token and text:
        for part in sorted({token, *token.split()}, key=len, reverse=True):
            if part:
                text = text.replace(part, "***")
    return text


def parse_link(header: str | None) -> dict[str, str]:
    """A ``Link`` header as ``{rel: url}``."""
    return {rel: url for url, rel in _LINK_RE.findall(header or "")}


@dataclass
class RateState:
    """The last rate-limit figures GitHub reported (``None`` until the first answer)."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # epoch seconds


@dataclass
class Response:
    """A decoded answer: ``status`` 200 with ``data``, or 304 (``not_modified``) without it."""

    url: str
    status: int
    data: Any = None
    etag: str | None = None
    links: dict[str, str] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class GitHubClient:
    """A small, thread-safe GitHub REST client (see the module docstring for what it handles).

    ``on_wait(seconds, reason)`` is called for every rate-limit wait (it must block for that
    long, or until :attr:`cancelled` is set; the default sleeps); ``sleep`` is used for retry
    backoff (default: a sleep that :meth:`cancel` cuts short). While one thread waits for a
    rate limit, the others hold their requests (see :meth:`_hold`).
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        token: str | None = None,
        *,
        max_wait: float | None = None,
        max_attempts: int = 6,
        max_rate_waits: int = 20,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        timeout: float = 30.0,
        sleep: Callable[[float], None] | None = None,
        on_wait: Callable[[float, str], None] | None = None,
        clock: Callable[[], float] = time.time,
        user_agent: str = "converter-failure-mining",
    ) -> None:
        self.api_url = api_url.rstrip("/") + "/"
        # a token read from a file often ends in a newline: it would make the header invalid
        self._token = (token or "").strip() or None
        self.max_wait = max_wait
        self.max_attempts = max(1, max_attempts)
        self.max_rate_waits = max_rate_waits
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        self._sleep = sleep or (lambda seconds: self.cancelled.wait(seconds))   # cancel() cuts it short
        # set by cancel() (e.g. on Ctrl-C): waits end early and no further request is sent
        self.cancelled = threading.Event()
        self._on_wait = on_wait or self._sleep_wait
        self._clock = clock
        self._user_agent = user_agent
        self._local = threading.local()
        self._lock = threading.Lock()
        # held by the one thread that sleeps through a rate-limit wait; every request passes
        # through it first, so no thread sends while another one is told to wait
        self._gate = threading.Lock()
        self._resume_at = 0.0
        self._resume_reason = ""
        self.rate = RateState()
        self.requests = 0        # requests sent (every attempt, 304s included)
        self.not_modified = 0    # of which answered 304 (free on GitHub)
        self.retries = 0

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def cancel(self) -> None:
        """Stop: a rate-limit wait in progress ends (an ``on_wait`` callback should watch
        :attr:`cancelled`), and every later :meth:`get` raises :class:`CrawlError`."""
        self.cancelled.set()

    def _sleep_wait(self, seconds: float, reason: str) -> None:
        self.cancelled.wait(max(0.0, seconds))

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise CrawlError("cancelled")

    # -- plumbing -----------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["Accept"] = "application/vnd.github+json"
            s.headers["User-Agent"] = self._user_agent
            s.headers["X-GitHub-Api-Version"] = "2022-11-28"
            if self._token:
                s.headers["Authorization"] = f"token {self._token}"
            self._local.session = s
        return s

    def _scrub(self, text: str) -> str:
        return scrub(text, self._token)

    def url_for(self, path_or_url: str, params: dict | None = None) -> str:
        """The full URL (query included) a request goes to; it is also the ETag cache key."""
        url = path_or_url if "://" in path_or_url else urljoin(self.api_url, path_or_url.lstrip("/"))
        return requests.Request("GET", url, params=params or None).prepare().url or url

    def _update_rate(self, headers: Any) -> None:
        def num(name: str) -> int | None:
            v = headers.get(name)
            try:
                return int(v) if v is not None else None
            except ValueError:
                return None

        limit, remaining, reset = num("X-RateLimit-Limit"), num("X-RateLimit-Remaining"), num("X-RateLimit-Reset")
        with self._lock:
            if limit is not None:
                self.rate.limit = limit
            if remaining is not None:
                self.rate.remaining = remaining
            if reset is not None:
                self.rate.reset = float(reset)

    def _wait(self, seconds: float, reason: str) -> None:
        seconds = max(0.0, seconds)
        if self.max_wait is not None and seconds > self.max_wait:
            raise BudgetExhausted(
                f"{reason}: would wait {seconds:.0f}s, more than --max-wait {self.max_wait:.0f}s",
                reset_at=self._clock() + seconds,
            )
        with self._lock:
            until = self._clock() + seconds
            if until > self._resume_at:
                self._resume_at, self._resume_reason = until, reason
        self._hold()

    def _hold(self) -> None:
        """Block while a rate-limit wait is in progress (one thread sleeps it, the rest queue)."""
        with self._gate:
            with self._lock:
                target, reason = self._resume_at, self._resume_reason
                left = target - self._clock()
            if left <= 0:
                return
            self._on_wait(left, reason)
            self._check_cancelled()
            with self._lock:
                if self._resume_at == target:   # not extended meanwhile: the wait is over
                    self._resume_at = 0.0

    def _await_budget(self) -> None:
        """Block (or stop) while the primary budget is known to be spent."""
        with self._lock:
            remaining, reset = self.rate.remaining, self.rate.reset
            spent = remaining is not None and remaining <= 0 and reset is not None and reset > self._clock()
            if not spent and remaining is not None:
                # reserve one request so concurrent threads do not overshoot the last ones
                self.rate.remaining = remaining - 1
        if spent:
            self._wait(reset - self._clock() + 1, "rate limit spent, waiting for reset")
            with self._lock:
                if self.rate.reset is not None and self.rate.reset <= self._clock():
                    self.rate.remaining = None  # unknown until the next answer

    def _backoff(self, attempt: int) -> None:
        delay = min(self.backoff_cap, self.backoff_base * (2 ** attempt))
        with self._lock:
            self.retries += 1
        self._sleep(delay * (0.5 + random.random() / 2))  # "equal jitter"

    # -- the one public verb ------------------------------------------------------------------
    def get(self, path_or_url: str, params: dict | None = None, etag: str | None = None) -> Response:
        """GET a JSON resource, retrying what can be retried; raises :class:`CrawlError`."""
        url = self.url_for(path_or_url, params)
        headers = {"If-None-Match": etag} if etag else {}
        attempt = 0
        rate_waits = 0
        last = "no attempt"
        while attempt < self.max_attempts:
            self._check_cancelled()
            self._hold()
            self._await_budget()
            self._check_cancelled()
            try:
                r = self._session().get(url, headers=headers, timeout=self.timeout)
                body = r.content  # read fully here: a truncated stream raises now, not later
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                    requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader) as e:
                # a bad URL or header never gets better: no retry
                raise CrawlError(f"{url}: {type(e).__name__}: {self._scrub(str(e))}") from None
            except requests.RequestException as e:
                with self._lock:
                    self.requests += 1
                last = f"{type(e).__name__}: {self._scrub(str(e))}"
                self._backoff(attempt)
                attempt += 1
                continue
            with self._lock:
                self.requests += 1
            self._update_rate(r.headers)
            status = r.status_code
            if status == 304:
                with self._lock:
                    self.not_modified += 1
                return Response(url, 304, None, r.headers.get("ETag") or etag, parse_link(r.headers.get("Link")))
            if status in (403, 429) and rate_waits < self.max_rate_waits:
                wait = self._rate_limit_wait(r, body)
                if wait is not None:
                    rate_waits += 1
                    self._wait(wait[0], wait[1])
                    continue
            if status >= 500:
                last = f"HTTP {status}"
                self._backoff(attempt)
                attempt += 1
                continue
            if status in (404, 410):
                raise NotFound(f"{url}: HTTP {status}: {self._scrub(_message(body))}")
            if status >= 400:
                raise CrawlError(f"{url}: HTTP {status}: {self._scrub(_message(body))}")
            try:
                data = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                last = f"malformed JSON body ({len(body)} bytes): {e}"
                self._backoff(attempt)
                attempt += 1
                continue
            return Response(url, status, data, r.headers.get("ETag"), parse_link(r.headers.get("Link")))
        raise CrawlError(f"{url}: gave up after {self.max_attempts} attempts: {last}")

    def _rate_limit_wait(self, r: requests.Response, body: bytes) -> tuple[float, str] | None:
        """How long a 403/429 asks us to wait, or ``None`` if it is a plain "forbidden"."""
        retry_after = r.headers.get("Retry-After")
        if retry_after is not None:
            try:
                return max(1.0, float(retry_after)), "secondary rate limit (Retry-After)"
            except ValueError:
                return 60.0, "secondary rate limit"
        if r.headers.get("X-RateLimit-Remaining") == "0":
            reset = self.rate.reset or (self._clock() + 60)
            return max(1.0, reset - self._clock() + 1), "rate limit spent, waiting for reset"
        msg = _message(body).lower()
        if "secondary rate limit" in msg or "abuse" in msg:
            return 60.0, "secondary rate limit"
        if r.status_code == 429:
            return 60.0, "too many requests"
        return None

    def rate_limit(self) -> RateState:
        """Ask ``/rate_limit`` (free on GitHub) and return the core budget."""
        resp = self.get("rate_limit")
        core = (resp.data or {}).get("resources", {}).get("core") or (resp.data or {}).get("rate") or {}
        with self._lock:
            if "limit" in core:
                self.rate.limit = int(core["limit"])
            if "remaining" in core:
                self.rate.remaining = int(core["remaining"])
            if "reset" in core:
                self.rate.reset = float(core["reset"])
        return self.rate


def _message(body: bytes) -> str:
    try:
        data = json.loads(body.decode("utf-8"))
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
    except (ValueError, UnicodeDecodeError):
        pass
    return body[:200].decode("utf-8", "replace")
