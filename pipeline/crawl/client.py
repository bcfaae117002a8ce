"""HTTP layer of the crawler: speaks GitHub's REST API and nothing else.

One :class:`GitHubClient` is shared by the crawler's threads; each thread gets its own
``requests.Session``. The client owns everything GitHub-protocol-shaped:

- tokens: one, several (a pool) or none. Each token lives only in the ``Authorization`` header
  of a request: it is never part of a URL, a cache key, a log line or an exception message
  (:func:`scrub` removes every token of the pool from any text that leaves this module); the
  summary names tokens by position (token 1, token 2, ...);
- rate-limit accounting per token from ``X-RateLimit-Limit/Remaining/Reset``. The figures only
  ever go down within a window (an answer that arrives late, carrying an older count, never
  raises them), and requests in flight are counted against the budget before their answers
  come back, so no request leaves once the budget is known to be spent. Each request goes out
  with the token that has the most left; when every token is spent the client waits for the
  earliest reset (through the injectable ``on_wait`` callback, which the CLI turns into a
  countdown), or raises :class:`BudgetExhausted` when the wait would exceed ``max_wait``;
- GitHub's clock, not ours: the ``Date`` header of each answer gives the offset between the two
  clocks, and every reset time is compared with GitHub's time. When GitHub still answers
  "limit spent" although its reset time has passed (or sends none), the client asks
  ``GET /rate_limit`` (free) for the reset, and failing that waits ``stale_reset_wait``
  seconds (GitHub: "otherwise, wait for at least one minute"), never retrying in a tight loop;
- the secondary limit (403/429 with ``Retry-After``), honoured the same way;
- every wait pauses the whole client, not only the thread that was told to wait: the other
  threads hold their next request until the wait is over (GitHub asks clients to stop sending
  while limited, and penalises those that keep going). A wait beyond ``max_wait`` stops the
  whole client: no thread sends another request;
- retries with exponential backoff and jitter for 5xx answers, connection errors and malformed
  (e.g. truncated) JSON bodies, with a bounded number of attempts and no sleep after the last;
  ``sleep`` and ``backoff_base`` are injectable so tests never sleep long;
- answers that are not GitHub's API (an HTML page, any non-JSON answer below 500, a refused
  connection or an unknown host before anything answered, a token refused with 401) raise
  :class:`ApiUnusable` at once: retrying them only wastes minutes;
- conditional requests: ``get(..., etag=...)`` sends ``If-None-Match`` and reports a 304.
"""

from __future__ import annotations

import json
import math
import random
import re
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urljoin, urlsplit

import requests

from pipeline.errors import UserError

DEFAULT_API_URL = "https://api.github.com"
STALE_RESET_WAIT = 60.0    # GitHub's guidance when the headers do not say how long: at least a minute
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')
_URL_QUERY_RE = re.compile(r"(https?://[^\s?]+)\?[^\s:]*")


class CrawlError(Exception):
    """A request that could not be completed (after retries); the message names the URL."""


class NotFound(CrawlError):
    """HTTP 404/410: the resource is gone (e.g. an issue deleted or made private meanwhile)."""


class BudgetExhausted(CrawlError):
    """The rate-limit wait would exceed ``max_wait``: the crawl stops cleanly, resumable later."""

    def __init__(self, message: str, reset_at: float | None = None) -> None:
        super().__init__(message)
        self.reset_at = reset_at


class ApiUnusable(CrawlError, UserError):
    """``--api-url`` does not answer as GitHub's API (HTML, nothing listening, token refused):
    the whole crawl stops at once; the CLI prints the message on one line and exits 2."""


def scrub(text: str, token: str | Iterable[str | None] | None) -> str:
    """``text`` with every occurrence of ``token`` (or of each token of a pool) replaced by
    ``***``, and of each of its whitespace-separated parts too (an exception may quote the token
    escaped, e.g. ``'\\n'``)."""
    tokens = [token] if isinstance(token, str) or token is None else list(token)
    parts = {p for t in tokens if t for p in (t, *t.split()) if p}
    if text:
        for part in sorted(parts, key=len, reverse=True):
            text = text.replace(part, "***")
    return text


def brief(text: str) -> str:
    """``text`` with the query strings of its URLs left out: error lines for a terminal."""
    return _URL_QUERY_RE.sub(r"\1", text)


def parse_link(header: str | None) -> dict[str, str]:
    """A ``Link`` header as ``{rel: url}``."""
    return {rel: url for url, rel in _LINK_RE.findall(header or "")}


def collect_tokens(values: Sequence[str] | None, environ: Mapping[str, str]) -> list[str]:
    """The token pool: the ``--token`` values if any, else ``GITHUB_TOKENS`` (comma-separated)
    followed by ``GITHUB_TOKEN``; stripped (a token read from a file ends in a newline), empty
    ones and repeats dropped. A token with inner whitespace or control characters is a
    :class:`UserError` naming its position, never its value."""
    if values:
        raw = list(values)
    else:
        raw = (environ.get("GITHUB_TOKENS") or "").split(",") + [environ.get("GITHUB_TOKEN") or ""]
    pool: list[str] = []
    for t in (v.strip() for v in raw):
        if t and t not in pool:
            pool.append(t)
    for i, t in enumerate(pool, 1):
        if any(c.isspace() for c in t) or not t.isprintable():
            where = f"token {i} of {len(pool)}" if len(pool) > 1 else "the token"
            raise UserError(f"--token / GITHUB_TOKENS / GITHUB_TOKEN: {where} contains spaces or control "
                            "characters (not shown); check how it was set")
    return pool


@dataclass
class RateState:
    """Rate-limit figures: one token's, or the pool's sums (``None`` until known)."""

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None  # epoch seconds, GitHub's clock


@dataclass
class TokenBudget:
    """One token's rate-limit bookkeeping (the token itself is kept elsewhere)."""

    position: int                 # 1, 2, ... in the pool; 0 = unauthenticated
    limit: int | None = None
    remaining: int | None = None  # as GitHub last reported it for the current window
    reset: float | None = None    # end of the current window, GitHub's clock
    in_flight: int = 0            # sent, not answered yet
    requests: int = 0             # sent with this token (every attempt)
    blocked_until: float = 0.0    # GitHub's clock: nothing goes out before (a stale reset)

    def note(self, limit: int | None, remaining: int | None, reset: float | None) -> None:
        """Take a reported count, never going back up within a window: answers can arrive out
        of order, and an older answer's count is higher than the truth."""
        if limit is not None:
            self.limit = limit
        if remaining is None:
            return
        if reset is None or reset == self.reset:
            self.remaining = remaining if self.remaining is None else min(self.remaining, remaining)
        elif self.reset is None or reset > self.reset:
            self.reset, self.remaining = reset, remaining      # a new window
        # else: an answer from an earlier window, arriving late: it says nothing about this one

    def summary(self) -> dict[str, Any]:
        return {"token": self.position, "limit": self.limit, "remaining": self.remaining, "reset": self.reset,
                "requests": self.requests}


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

    ``token`` is one token, a list of tokens (a pool) or ``None``. ``on_wait(seconds, reason)``
    is called for every rate-limit wait (it must block for that long, or until
    :attr:`cancelled` is set; the default sleeps); ``sleep`` is used for retry backoff
    (default: a sleep that :meth:`cancel` cuts short). While one thread waits for a rate
    limit, the others hold their requests (see :meth:`_hold`). ``clock`` is this machine's
    clock; GitHub's is derived from it and the ``Date`` headers.
    """

    def __init__(
        self,
        api_url: str = DEFAULT_API_URL,
        token: str | Sequence[str] | None = None,
        *,
        max_wait: float | None = None,
        max_attempts: int = 6,
        max_rate_waits: int = 20,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        timeout: float = 30.0,
        stale_reset_wait: float = STALE_RESET_WAIT,
        sleep: Callable[[float], None] | None = None,
        on_wait: Callable[[float, str], None] | None = None,
        clock: Callable[[], float] = time.time,
        user_agent: str = "converter-failure-mining",
    ) -> None:
        self.api_url = api_url.rstrip("/") + "/"
        raw = [token] if isinstance(token, str) or token is None else list(token)
        # a token read from a file often ends in a newline: it would make the header invalid
        secrets = list(dict.fromkeys(t.strip() for t in raw if t and t.strip()))
        self._secrets: list[str | None] = secrets or [None]
        self._budgets = [TokenBudget(i + 1 if secrets else 0) for i in range(len(self._secrets))]
        self.max_wait = max_wait
        self.max_attempts = max(1, max_attempts)
        self.max_rate_waits = max_rate_waits
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        self.stale_reset_wait = stale_reset_wait
        self._sleep = sleep or (lambda seconds: self.cancelled.wait(seconds))   # cancel() cuts it short
        # set by cancel() (e.g. on Ctrl-C) or by a stop at --max-wait: waits end early and no
        # further request is sent
        self.cancelled = threading.Event()
        self._halted: BudgetExhausted | None = None
        self._on_wait = on_wait or self._sleep_wait
        self._clock = clock
        self._user_agent = user_agent
        self._local = threading.local()
        self._lock = threading.Condition()   # guards the budgets; notified when an answer arrives
        # held by the one thread that sleeps through a rate-limit wait; every request passes
        # through it first, so no thread sends while another one is told to wait
        self._gate = threading.Lock()
        self._resume_at = 0.0
        self._resume_reason = ""
        self._offsets: deque[float] = deque(maxlen=16)   # GitHub's clock minus ours, per answer
        self._answered = False   # any HTTP answer yet: a refused connection after one is transient
        self.requests = 0        # requests sent (every attempt, 304s included)
        self.not_modified = 0    # of which answered 304 (free on GitHub)
        self.retries = 0

    @property
    def has_token(self) -> bool:
        return self._secrets[0] is not None

    @property
    def budgets(self) -> list[TokenBudget]:
        """Each token's bookkeeping, in pool order (position 0: no token)."""
        return self._budgets

    @property
    def rate(self) -> RateState:
        """The pool's figures: limits and remaining budgets summed, the earliest reset."""
        with self._lock:
            known = [b for b in self._budgets if b.remaining is not None]
            resets = [b.reset for b in self._budgets if b.reset is not None]
            return RateState(
                limit=sum(b.limit for b in self._budgets if b.limit is not None) if any(
                    b.limit is not None for b in self._budgets) else None,
                remaining=sum(max(0, b.remaining) for b in known) if known else None,
                reset=min(resets) if resets else None)

    def cancel(self) -> None:
        """Stop: a rate-limit wait in progress ends (an ``on_wait`` callback should watch
        :attr:`cancelled`), and every later :meth:`get` raises :class:`CrawlError`."""
        self.cancelled.set()

    def github_time(self) -> float:
        """GitHub's clock now, as far as the ``Date`` headers tell (ours until an answer came)."""
        # Date has whole seconds, cut down: the largest recent offset is the closest one
        with self._lock:
            return self._clock() + (max(self._offsets) if self._offsets else 0.0)

    def _sleep_wait(self, seconds: float, reason: str) -> None:
        self.cancelled.wait(max(0.0, seconds))

    def _check_cancelled(self) -> None:
        if self.cancelled.is_set():
            if self._halted is not None:
                raise BudgetExhausted(str(self._halted), self._halted.reset_at)
            raise CrawlError("cancelled")

    # -- plumbing -----------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = requests.Session()
            s.headers["Accept"] = "application/vnd.github+json"
            s.headers["User-Agent"] = self._user_agent
            s.headers["X-GitHub-Api-Version"] = "2022-11-28"
            self._local.session = s
        return s

    def _auth(self, budget: TokenBudget) -> dict[str, str]:
        secret = self._secrets[max(0, budget.position - 1)]
        return {"Authorization": f"token {secret}"} if secret else {}

    def _scrub(self, text: str) -> str:
        return scrub(text, self._secrets)

    def _host(self) -> str:
        return urlsplit(self.api_url).netloc or self.api_url

    def url_for(self, path_or_url: str, params: dict | None = None) -> str:
        """The full URL (query included) a request goes to; it is also the ETag cache key."""
        url = path_or_url if "://" in path_or_url else urljoin(self.api_url, path_or_url.lstrip("/"))
        return requests.Request("GET", url, params=params or None).prepare().url or url

    def _release(self, budget: TokenBudget, headers: Any, *, sent: bool = True) -> None:
        """A request with ``budget``'s token came back (``headers`` ``None``: no answer)."""
        received = self._clock()
        with self._lock:
            budget.in_flight -= 1
            if sent:
                budget.requests += 1
                self.requests += 1
            if headers is not None:
                self._answered = True
                budget.note(*_rate_headers(headers))
                date = _parse_date(headers.get("Date"))
                if date is not None:
                    self._offsets.append(date - received)
            self._lock.notify_all()

    def _acquire(self) -> TokenBudget:
        """The token for the next request (the one with the most left); blocks, or stops with
        :class:`BudgetExhausted`, while every token is spent."""
        while True:
            with self._lock:
                while True:
                    self._check_cancelled()
                    now = self.github_time()
                    best, best_left = None, 0.0
                    for b in self._budgets:
                        if now < b.blocked_until:
                            continue
                        if b.remaining is not None and b.remaining <= 0 and b.reset is None:
                            # spent, and no reset time to wait for: GitHub's "wait at least a minute"
                            b.blocked_until, b.remaining = now + self.stale_reset_wait, None
                            continue
                        if b.remaining is not None and b.reset is not None and now >= b.reset:
                            # the window is over: a full budget (the next answer says exactly)
                            b.remaining = b.limit
                        left = math.inf if b.remaining is None else b.remaining - b.in_flight
                        if left > best_left:
                            best, best_left = b, left
                    if best is not None:
                        best.in_flight += 1
                        return best
                    if any(b.in_flight and now >= b.blocked_until and (b.remaining or 0) > 0 for b in self._budgets):
                        # answers in flight may hand budget back (a 304 or a 5xx costs nothing)
                        self._lock.wait(0.5)
                        continue
                    until = min(self._usable_at(b, now) for b in self._budgets)
                    break
            n = len(self._budgets)
            self._wait(until - now, "rate limit spent, waiting for reset" + (f" (all {n} tokens)" if n > 1 else ""))

    def _usable_at(self, b: TokenBudget, now: float) -> float:
        """When (GitHub's clock) a spent token may send again."""
        if now < b.blocked_until:
            return b.blocked_until
        if b.reset is not None and b.reset > now:
            return b.reset + 1      # the Date header has whole seconds: one more for safety
        return now + self.stale_reset_wait

    def _wait(self, seconds: float, reason: str) -> None:
        seconds = max(0.0, seconds)
        if self.max_wait is not None and seconds > self.max_wait:
            # GitHub's reset in this machine's time, for the summary and a scheduler
            reset_at = self._clock() + seconds
            stop = BudgetExhausted(
                f"{reason}: would wait {seconds:.0f}s, more than --max-wait {self.max_wait:.0f}s", reset_at=reset_at)
            self._halted = stop
            self.cancelled.set()     # every other thread stops too: nothing more is sent
            raise stop
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

    def _next_attempt(self, attempt: int) -> int:
        """Count a failed attempt, backing off before the next one (never after the last)."""
        attempt += 1
        if attempt < self.max_attempts:
            self._backoff(attempt - 1)
        return attempt

    def _backoff(self, attempt: int) -> None:
        delay = min(self.backoff_cap, self.backoff_base * (2 ** attempt))
        with self._lock:
            self.retries += 1
        self._sleep(delay * (0.5 + random.random() / 2))  # "equal jitter"

    # -- the one public verb ------------------------------------------------------------------
    def get(self, path_or_url: str, params: dict | None = None, etag: str | None = None) -> Response:
        """GET a JSON resource, retrying what can be retried; raises :class:`CrawlError`
        (:class:`ApiUnusable` when the answer shows the URL is not GitHub's API)."""
        url = self.url_for(path_or_url, params)
        headers = {"If-None-Match": etag} if etag else {}
        attempt = 0
        rate_waits = 0
        last = "no attempt"
        while attempt < self.max_attempts:
            self._check_cancelled()
            self._hold()
            budget = self._acquire()
            if self.cancelled.is_set():          # stopped while this thread waited for a token
                self._release(budget, None, sent=False)
                self._check_cancelled()
            try:
                r = self._session().get(url, headers={**headers, **self._auth(budget)}, timeout=self.timeout)
                body = r.content  # read fully here: a truncated stream raises now, not later
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                    requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader) as e:
                self._release(budget, None)
                # a bad URL or header never gets better: no retry
                raise CrawlError(f"{url}: {type(e).__name__}: {self._scrub(str(e))}") from None
            except requests.RequestException as e:
                self._release(budget, None)
                kind, text = network_reason(e, self.timeout)
                if kind in ("refused", "dns", "tls") and not self._answered:
                    # nothing has ever answered at this address: a wrong --api-url, not a blip
                    raise ApiUnusable(f"{url}: {text}; is --api-url {self.api_url.rstrip('/')} right "
                                      "(e.g. https://api.github.com)?") from None
                last = self._scrub(text)
                attempt = self._next_attempt(attempt)
                continue
            except BaseException:
                self._release(budget, None)
                raise
            self._release(budget, r.headers)
            status = r.status_code
            if status == 304:
                with self._lock:
                    self.not_modified += 1
                return Response(url, 304, None, r.headers.get("ETag") or etag, parse_link(r.headers.get("Link")))
            if status < 500 and not _is_json(r.headers.get("Content-Type"), body):
                raise ApiUnusable(f"{url}: {self._host()} answered HTTP {status} with "
                                  f"{_describe_body(r.headers.get('Content-Type'), body)}, not GitHub's JSON; is "
                                  f"--api-url {self.api_url.rstrip('/')} the GitHub REST API (e.g. https://api.github.com)?")
            if status == 401:
                who = f"token {budget.position}" if len(self._budgets) > 1 else "the token"
                raise ApiUnusable(f"{url}: {self._host()} refused {who} (HTTP 401: {self._scrub(_message(body))}); "
                                  "is it mistyped, expired or revoked?")
            if status in (403, 429) and rate_waits < self.max_rate_waits:
                wait = self._rate_limit_wait(budget, r, body)
                if wait is not None:
                    rate_waits += 1
                    if wait[0] > 0:
                        self._wait(wait[0], wait[1])
                    continue
            if status >= 500:
                last = f"HTTP {status}"
                attempt = self._next_attempt(attempt)
                continue
            if status in (404, 410):
                raise NotFound(f"{url}: HTTP {status}: {self._scrub(_message(body))}")
            if status >= 400:
                raise CrawlError(f"{url}: HTTP {status}: {self._scrub(_message(body))}")
            try:
                data = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                last = f"malformed JSON body ({len(body)} bytes): {e}"
                attempt = self._next_attempt(attempt)
                continue
            return Response(url, status, data, r.headers.get("ETag"), parse_link(r.headers.get("Link")))
        raise CrawlError(f"{url}: gave up after {self.max_attempts} attempts: {last}")

    def _rate_limit_wait(self, budget: TokenBudget, r: requests.Response, body: bytes) -> tuple[float, str] | None:
        """How long a 403/429 asks the client to pause (0: retry now, the next request is gated
        by the budgets), or ``None`` if it is a plain "forbidden"."""
        retry_after = r.headers.get("Retry-After")
        if retry_after is not None:
            try:
                return max(1.0, float(retry_after)), "secondary rate limit (Retry-After)"
            except ValueError:
                return STALE_RESET_WAIT, "secondary rate limit"
        if r.headers.get("X-RateLimit-Remaining") == "0":
            _, _, reset = _rate_headers(r.headers)
            with self._lock:
                budget.remaining = 0
                now = self.github_time()
                stale = reset is None or reset <= now
            if stale:
                # limited, and no reset ahead: ask GitHub (free), else wait the bounded minimum
                core = self._fetch_core(budget)
                with self._lock:
                    now = self.github_time()
                    if core is not None and (core.get("remaining") or 0) > 0:
                        budget.remaining = None      # the window has just reset
                    elif core is not None and (core.get("reset") or 0) > now:
                        budget.reset, budget.remaining = float(core["reset"]), 0
                    else:
                        budget.blocked_until = now + self.stale_reset_wait
            return 0.0, ""      # the budgets decide: another token, or a wait for the reset
        msg = _message(body).lower()
        if "secondary rate limit" in msg or "abuse" in msg:
            return STALE_RESET_WAIT, "secondary rate limit"
        if r.status_code == 429:
            return STALE_RESET_WAIT, "too many requests"
        return None

    def _fetch_core(self, budget: TokenBudget) -> dict | None:
        """``GET /rate_limit``'s core figures for ``budget``'s token (free on GitHub); ``None``
        when it does not answer them."""
        with self._lock:
            budget.in_flight += 1
        try:
            r = self._session().get(self.url_for("rate_limit"), headers=self._auth(budget), timeout=self.timeout)
        except requests.RequestException:
            self._release(budget, None)
            return None
        self._release(budget, r.headers)
        try:
            data = r.json() if r.status_code == 200 else None
        except ValueError:
            return None
        core = ((data or {}).get("resources") or {}).get("core") or (data or {}).get("rate")
        if not isinstance(core, dict):
            return None
        with self._lock:
            if core.get("reset") is not None and core.get("remaining") is not None:
                budget.note(core.get("limit"), int(core["remaining"]), float(core["reset"]))
        return core

    def rate_limit(self) -> RateState:
        """Ask ``/rate_limit`` (free on GitHub) for every token; return the pool's figures."""
        for b in self._budgets:
            self._fetch_core(b)
        return self.rate


def network_reason(e: BaseException, timeout: float | None = None) -> tuple[str, str]:
    """``(kind, words)`` for a failed request: kind is refused, dns, tls, timeout, reset,
    truncated or other; the words fit in an error line (requests' own text runs to 500+
    characters and repeats the URL)."""
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return "timeout", f"no connection within {timeout:g}s" if timeout else "connection timed out"
    if isinstance(e, requests.exceptions.ReadTimeout):
        return "timeout", f"no answer within {timeout:g}s" if timeout else "read timed out"
    seen: list[BaseException] = []
    todo: list[Any] = [e]
    while todo:
        x = todo.pop()
        if not isinstance(x, BaseException) or any(x is s for s in seen) or len(seen) > 20:
            continue
        seen.append(x)
        todo += [x.__cause__, x.__context__, getattr(x, "reason", None), *getattr(x, "args", ())]
    for x in seen:
        if isinstance(x, ConnectionRefusedError):
            return "refused", "connection refused (nothing is listening there)"
    for x in seen:
        if isinstance(x, socket.gaierror) or type(x).__name__ == "NameResolutionError":
            return "dns", "host name not found (DNS)"
        if isinstance(x, ssl.SSLError):
            return "tls", f"TLS handshake failed ({getattr(x, 'reason', None) or 'SSL error'})"
    for x in seen:
        if isinstance(x, ConnectionResetError):
            return "reset", "connection reset by the server"
        if isinstance(x, (TimeoutError, socket.timeout)):
            return "timeout", "timed out"
        if type(x).__name__ in ("IncompleteRead", "ProtocolError", "ChunkedEncodingError", "RemoteDisconnected"):
            return "truncated", "connection closed in the middle of the answer"
    text = str(e).split(" (Caused by ")[0]
    return "other", f"{type(e).__name__}: {text[:120]}"


def _rate_headers(headers: Any) -> tuple[int | None, int | None, float | None]:
    def num(name: str) -> int | None:
        v = headers.get(name)
        try:
            return int(v) if v is not None else None
        except ValueError:
            return None

    reset = num("X-RateLimit-Reset")
    return num("X-RateLimit-Limit"), num("X-RateLimit-Remaining"), float(reset) if reset is not None else None


def _parse_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _is_json(content_type: str | None, body: bytes) -> bool:
    """Whether an answer claims (or, without a Content-Type, looks like) JSON."""
    if content_type:
        return "json" in content_type.lower()
    return not body.lstrip()[:1] == b"<"


def _describe_body(content_type: str | None, body: bytes) -> str:
    start = body.lstrip()[:15].lower()
    html = start.startswith((b"<!doctype html", b"<html")) or (content_type or "").lower().startswith("text/html")
    kind = "an HTML page" if html else "a body"
    return f"{kind} ({(content_type or 'no Content-Type').split(';')[0]}, {len(body)} bytes)"


def _message(body: bytes) -> str:
    try:
        data = json.loads(body.decode("utf-8"))
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])
    except (ValueError, UnicodeDecodeError):
        pass
    text = body[:200].decode("utf-8", "replace")
    return "".join(c if c.isprintable() else " " for c in text)
