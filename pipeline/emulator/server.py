"""A local HTTP server that behaves like api.github.com for what an issue crawler uses.

Serves deterministic synthetic data (see :mod:`pipeline.emulator.data`) for the six ONNX
converters' repositories, and real issues of corpus files
(``EmulatorConfig.corpus`` / ``relevant_corpus``, see :mod:`pipeline.emulator.corpus`)::

    from pipeline.emulator.server import EmulatorConfig, run_emulator
    with run_emulator(EmulatorConfig(issues=60)) as emu:
        emu.url            # "http://127.0.0.1:PORT": the API base URL
        emu.stats()        # same dict as GET /_emulator/stats
        emu.touch("pytorch/pytorch", 5)

Endpoints: ``GET /repos/{o}/{r}``, ``/repos/{o}/{r}/issues`` (state, labels, since,
sort, direction, per_page, page), ``/repos/{o}/{r}/issues/{n}``, ``.../timeline``,
``.../comments`` (both paginated), ``/repos/{o}/{r}/labels`` (paginated),
``/repos/{o}/{r}/labels/{name}`` (case-insensitive, as on GitHub), ``/rate_limit``.

Clock: ``clock_skew`` seconds are added to the emulator's clock, which drives the rate-limit
windows, ``X-RateLimit-Reset``, ``/rate_limit``, the ``Date`` header and touched issues'
``updated_at``: a GitHub whose clock differs from the client's. ``reset_skew`` moves only the
reset times it reports (headers and ``/rate_limit``), not its windows nor its ``Date``: a
reset already past while requests are still refused, or one later than the truth. Tokens: with ``tokens`` set,
only those are accepted (any other answers 401 Bad credentials, as GitHub does); each token
has its own budget of ``rate_limit`` requests per window either way.
Admin endpoints under ``/_emulator/`` (``GET stats``, ``POST touch?repo=O/N&n=K``,
``POST delete?repo=O/N&number=K`` (the issue answers 410 Gone and leaves the listings, as a
deleted issue on GitHub), ``POST reset_stats``) are never rate limited or faulted.

Faults, in the order they are checked for an API request (``/rate_limit`` excluded):

1. secondary limit: every ``secondary_every``-th request answers 403, the next such one 429,
   alternately, with ``Retry-After: 1``;
2. ``error_rate``: that fraction of requests answers 502 or 503;
3. primary limit: ``rate_limit`` requests per ``reset_seconds`` window per token (one bucket
   for unauthenticated clients); when spent, 403 with remaining 0 until the reset time;
4. ``If-None-Match`` equal to the body's ETag: 304, not counted against the limit;
5. ``truncate_rate``: that fraction of 200 responses carries half a body.

Fault draws are deterministic functions of the seed and a request counter. Only answers
produced by the API itself (200, 404, 422) use up the primary budget; 304s, injected
errors and secondary-limit answers do not.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from pipeline.emulator import render
from pipeline.emulator.corpus import served_corpus
from pipeline.emulator.data import Dataset, filter_issues

DOCS = "https://docs.github.com/rest"
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"


@dataclass
class EmulatorConfig:
    """Settings of one emulator instance (all faults off by default).

    ``issues`` is the number of real issues per repository; pull requests come on top
    (about ``issues // 4``), interleaved in the numbering.
    """

    seed: int = 0
    issues: int = 200
    latency_ms: int = 0
    error_rate: float = 0.0
    rate_limit: int = 5000
    reset_seconds: int = 3600
    secondary_every: int = 0
    truncate_rate: float = 0.0
    clock_skew: float = 0.0          # seconds added to the emulator's clock (GitHub's clock vs the client's)
    reset_skew: int = 0              # seconds added to the reset times it reports, not to its clock
    tokens: tuple[str, ...] = ()     # accepted tokens (empty: any); each has its own budget
    host: str = "127.0.0.1"
    port: int = 0
    # real issues (JSONL files, see pipeline.emulator.corpus): served as the file says, or as the
    # study saw them when it sampled them (closed, with the source's labels; rules from `sources`)
    corpus: tuple[str, ...] = ()
    relevant_corpus: tuple[str, ...] = ()
    sources: str | None = None
    synthetic: bool = True  # False: only the corpus issues
    repo_issues: dict[str, int] = field(default_factory=dict)  # synthetic issues per repository, overriding `issues`

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first out-of-range field."""
        for name in ("issues", "latency_ms", "rate_limit", "secondary_every", "port"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for repo, n in self.repo_issues.items():
            if n < 0:
                raise ValueError(f"repo_issues[{repo!r}] must be >= 0, got {n}")
        if self.port > 65535:
            raise ValueError(f"port must be within [0, 65535], got {self.port}")
        if self.reset_seconds <= 0:
            raise ValueError(f"reset_seconds must be > 0, got {self.reset_seconds}")
        for name in ("error_rate", "truncate_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        for i, t in enumerate(self.tokens, 1):
            if not t or any(c.isspace() for c in t) or not t.isprintable():
                raise ValueError(f"tokens: token {i} is empty or contains spaces or control characters")


@dataclass
class _Bucket:
    reset: int  # epoch seconds at which the window ends
    used: int = 0


class _Reply:
    """A response under construction."""

    def __init__(self, status: int, obj: Any = None, headers: dict[str, str] | None = None):
        self.status = status
        self.obj = obj
        self.headers = headers or {}


def _draw(seed: int, counter: int, what: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, counter, what)."""
    h = hashlib.blake2b(f"{seed}:{counter}:{what}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def _parse_since(value: str) -> int:
    v = value.strip()
    # An unencoded "+01:00" offset arrives as " 01:00" after query decoding.
    v = re.sub(r" (\d\d:?\d\d)$", r"+\1", v)
    if v.endswith("Z"):
        v = v[:-1] + "+00:00"
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(math.ceil(dt.timestamp()))


def _etag(body: bytes) -> str:
    return 'W/"' + hashlib.sha256(body).hexdigest() + '"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    want = etag.removeprefix("W/")
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == want:
            return True
    return False


class Emulator:
    """The emulator: dataset, counters, and the HTTP server that serves them."""

    def __init__(self, cfg: EmulatorConfig | None = None):
        self.cfg = cfg or EmulatorConfig()
        self.cfg.validate()
        corpus = served_corpus(self.cfg.corpus, self.cfg.relevant_corpus, self.cfg.sources)
        self.dataset = Dataset(seed=self.cfg.seed, issues=self.cfg.issues, corpus=corpus,
                               synthetic=self.cfg.synthetic, sizes=self.cfg.repo_issues)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._buckets: dict[str, _Bucket] = {}
        self._fault_counter = 0
        self._reset_counters()

    # ------------------------------------------------------------------ lifecycle

    def _bind(self) -> ThreadingHTTPServer:
        if self._server is None:
            handler = type("_BoundHandler", (_Handler,), {"emulator": self})
            self._server = _Server((self.cfg.host, self.cfg.port), handler)
        return self._server

    def start(self) -> "Emulator":
        """Bind (port 0 picks a free port) and serve in a background daemon thread."""
        server = self._bind()
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="github-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Bind and serve in the calling thread until interrupted (for the CLI)."""
        server = self._bind()
        try:
            server.serve_forever()
        finally:
            server.server_close()
            self._server = None

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join(timeout=5)
                self._thread = None
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Emulator":
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._bind().server_address[1]

    @property
    def url(self) -> str:
        """Base URL of the API, e.g. ``http://127.0.0.1:PORT``."""
        host = self.cfg.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def now(self) -> float:
        """The emulator's clock (this machine's, moved by ``clock_skew``)."""
        return time.time() + self.cfg.clock_skew

    # ------------------------------------------------------------------ admin

    def _reset_counters(self) -> None:
        self._requests = 0
        self._by_endpoint: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._counts: Counter[str] = Counter()
        self._by_token: Counter[str] = Counter()
        self._first_limited_at: int | None = None   # API requests received when the first limit answer went out

    def stats(self) -> dict[str, Any]:
        """Counters since start (or the last :meth:`reset_stats`): same dict as GET /_emulator/stats.

        ``by_token`` counts API requests per accepted token by its position in ``tokens``
        (1, 2, ...; ``other`` for any other token, ``none`` without one); tokens themselves are
        never shown."""
        with self._lock:
            config = asdict(self.cfg)
            config["tokens"] = len(self.cfg.tokens)
            return {
                "requests": self._requests,
                "by_endpoint": dict(sorted(self._by_endpoint.items())),
                "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
                "ok": self._counts["ok"],
                "not_modified": self._counts["not_modified"],
                "rate_limited": self._counts["rate_limited"],
                "secondary_limited": self._counts["secondary_limited"],
                "errors": self._counts["errors"],
                "truncated": self._counts["truncated"],
                "not_found": self._counts["not_found"],
                "touched": self._counts["touched"],
                "bad_credentials": self._counts["bad_credentials"],
                "by_token": dict(sorted(self._by_token.items())),
                "first_limited_at": self._first_limited_at,
                "config": json.loads(_dump(config)),  # JSON-shaped: tuples as lists
            }

    def reset_stats(self) -> None:
        """Zero the counters of :meth:`stats` (rate-limit buckets are kept)."""
        with self._lock:
            self._reset_counters()

    def _served_repo(self, repo: str) -> str:
        """The dataset's spelling of ``owner/name``; ``KeyError`` when it is not served."""
        owner, _, name = repo.partition("/")
        full = self.dataset.canonical_repo(owner, name)
        if full is None:
            raise KeyError(f"unknown repository {repo!r}")
        return full

    def touch(self, repo: str, n: int) -> list[int]:
        """Update ``n`` closed issues of ``repo`` (see ``Dataset.touch``); returns their numbers."""
        full = self._served_repo(repo)
        with self._lock:
            touched = self.dataset.touch(full, n, int(self.now()))
            self._counts["touched"] += len(touched)
            return touched

    def delete(self, repo: str, number: int) -> bool:
        """Delete an issue (see ``Dataset.delete``): 410 Gone from now on, no longer listed."""
        full = self._served_repo(repo)
        with self._lock:
            return self.dataset.delete(full, number)

    # ------------------------------------------------------------------ request handling

    def _note_limited(self) -> None:
        if self._first_limited_at is None:
            self._first_limited_at = self._requests

    def _token_label(self, auth: str | None) -> str:
        """``none``, ``other`` or the token's position in ``tokens`` (never the token)."""
        if not auth:
            return "none"
        token = auth.split(None, 1)[-1]
        return next((str(i) for i, t in enumerate(self.cfg.tokens, 1) if t == token), "other")

    def _bucket(self, auth: str | None, now: float) -> _Bucket:
        key = "anonymous"
        if auth:
            # The token itself is never stored or logged: only a digest names its bucket.
            token = auth.split(None, 1)[-1]
            key = hashlib.sha256(token.encode()).hexdigest()[:16]
        b = self._buckets.get(key)
        if b is None or now >= b.reset:
            b = self._buckets[key] = _Bucket(reset=int(math.ceil(now + self.cfg.reset_seconds)))
        return b

    def _rate_headers(self, b: _Bucket) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.cfg.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.cfg.rate_limit - b.used)),
            "X-RateLimit-Reset": str(b.reset + self.cfg.reset_skew),
            "X-RateLimit-Used": str(b.used),
            "X-RateLimit-Resource": "core",
        }

    def handle(self, h: "_Handler", method: str) -> None:
        """Answer one request (called by the HTTP handler thread)."""
        parts = urlsplit(h.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qsl(parts.query, keep_blank_values=True)
        if path.startswith("/_emulator/"):
            return self._admin(h, method, path, dict(query))
        endpoint, route = _route(path)
        with self._lock:
            self._requests += 1
            self._by_endpoint[endpoint] += 1
            self._by_token[self._token_label(h.headers.get("Authorization"))] += 1
        if self.cfg.latency_ms:
            time.sleep(self.cfg.latency_ms / 1000)
        # Decide under the lock (counters, buckets, data touched concurrently), send outside it
        # so that a slow reader never holds up other clients.
        with self._lock:
            reply, rate, kind, body = self._decide(h, method, endpoint, route, query, parts.path)
        self._send(h, method, reply, rate, kind, body=body)

    def _decide(self, h: "_Handler", method: str, endpoint: str, route: tuple, query: list,
                raw_path: str) -> tuple[_Reply, dict[str, str], str, bytes | None]:
        auth = h.headers.get("Authorization")
        if self.cfg.tokens and auth and self._token_label(auth) == "other":
            # GitHub answers an unknown token 401 without rate-limit headers
            return _Reply(401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}), {}, \
                "bad_credentials", None
        b = self._bucket(auth, self.now())
        rate = self._rate_headers(b)
        if method not in ("GET", "HEAD"):
            return _not_found(), rate, "not_found", None
        if endpoint == "/rate_limit":  # never faulted, never counted (as on GitHub)
            core = {"limit": self.cfg.rate_limit, "used": b.used,
                    "remaining": max(0, self.cfg.rate_limit - b.used), "reset": b.reset + self.cfg.reset_skew}
            return _Reply(200, _rate_limit_body(core)), rate, "ok", None

        self._fault_counter += 1
        n = self._fault_counter
        k = self.cfg.secondary_every
        if k and n % k == 0:
            status = 403 if (n // k) % 2 == 1 else 429
            msg = ("You have exceeded a secondary rate limit. Please wait a few minutes before you "
                   "try again. If you reach out to GitHub Support for help, please include the request "
                   f"ID EMU:{n:08X}.")
            reply = _Reply(status, {"message": msg, "documentation_url": SECONDARY_DOCS}, {"Retry-After": "1"})
            self._note_limited()
            return reply, rate, "secondary_limited", None
        if self.cfg.error_rate and _draw(self.cfg.seed, n, "error") < self.cfg.error_rate:
            if _draw(self.cfg.seed, n, "which") < 0.5:
                reply = _Reply(502, {"message": "Server Error", "documentation_url": DOCS})
            else:
                reply = _Reply(503, {"message": "Service Unavailable", "documentation_url": DOCS})
            return reply, rate, "errors", None
        if b.used >= self.cfg.rate_limit:
            auth = h.headers.get("Authorization")
            msg = f"API rate limit exceeded for {'user ID 1' if auth else h.client_address[0]}."
            if not auth:
                msg += (" (But here's the good news: Authenticated requests get a higher rate limit. "
                        "Check out the documentation for more details.)")
            self._note_limited()
            return _Reply(403, {"message": msg, "documentation_url": RATE_DOCS}), rate, "rate_limited", None

        base = f"http://{h.headers['Host']}" if h.headers.get("Host") else self.url
        reply = self._api(route, dict(query), query, base, raw_path)
        body = _dump(reply.obj)
        etag = _etag(body)
        reply.headers["ETag"] = etag
        if reply.status == 200 and _etag_matches(h.headers.get("If-None-Match"), etag):
            return _Reply(304, None, reply.headers), rate, "not_modified", b""
        b.used += 1
        rate = self._rate_headers(b)
        if reply.status == 200 and self.cfg.truncate_rate and _draw(self.cfg.seed, n, "truncate") < self.cfg.truncate_rate:
            # Valid headers, half a JSON body; Content-Length matches what is sent.
            return reply, rate, "truncated", body[: len(body) // 2]
        kind = "ok" if reply.status == 200 else "not_found" if reply.status in (404, 410) else "invalid"
        return reply, rate, kind, body

    def _api(self, route: tuple, params: dict[str, str], pairs: list, base: str, raw_path: str) -> _Reply:
        ds = self.dataset
        if route[0] == "missing":
            return _not_found()
        full = ds.canonical_repo(route[1], route[2])
        if full is None:
            return _not_found()
        if route[0] == "repo":
            return _Reply(200, render.repository(base, ds, ds.repos[full]))
        if route[0] == "issues":
            return self._list_issues(full, params, pairs, base, raw_path)
        if route[0] == "label":
            repo = ds.repos[full]
            name = next((x for x in repo.label_colors if x.casefold() == route[3].casefold()), None)
            return _Reply(200, render.label(base, repo, name)) if name else _not_found()
        if route[0] == "labels":
            repo = ds.repos[full]
            items = [render.label(base, repo, x) for x in _page_slice(list(repo.label_colors), params)]
            return self._paged(items, len(repo.label_colors), params, pairs, base, raw_path)
        rec = ds.get(full, route[3])
        if rec is None:
            return _not_found()
        if ds.is_deleted(full, rec.number):
            return _gone()
        if route[0] == "issue":
            return _Reply(200, render.issue(base, ds, rec, single=True))
        if route[0] == "timeline":
            items = [render.timeline_event(base, ds, rec, e) for e in _page_slice(rec.events, params)]
            return self._paged(items, len(rec.events), params, pairs, base, raw_path)
        if route[0] == "comments":
            comments = [e for e in rec.events if e.kind == "commented"]
            items = [render.comment(base, rec, e) for e in _page_slice(comments, params)]
            return self._paged(items, len(comments), params, pairs, base, raw_path)
        return _not_found()

    def _list_issues(self, full: str, params: dict[str, str], pairs: list, base: str, raw_path: str) -> _Reply:
        state = params.get("state", "open") or "open"
        sort = params.get("sort", "created") or "created"
        direction = params.get("direction", "desc") or "desc"
        for name, value, allowed in (("state", state, ("open", "closed", "all")),
                                     ("sort", sort, ("created", "updated", "comments")),
                                     ("direction", direction, ("asc", "desc"))):
            if value not in allowed:
                return _invalid(name, value)
        since = None
        if params.get("since"):
            try:
                since = _parse_since(params["since"])
            except ValueError:
                return _invalid("since", params["since"])
        labels = [x for x in params.get("labels", "").split(",") if x.strip()]
        recs = filter_issues(self.dataset.listed(full), state=state, labels=labels, since=since)
        key = {"created": lambda x: (x.created_at, x.number), "updated": lambda x: (x.updated_at, x.number),
               "comments": lambda x: (x.comments, x.number)}[sort]
        recs.sort(key=key, reverse=direction == "desc")
        items = [render.issue(base, self.dataset, r) for r in _page_slice(recs, params)]
        return self._paged(items, len(recs), params, pairs, base, raw_path)

    def _paged(self, items: list, total: int, params: dict[str, str], pairs: list, base: str,
               raw_path: str) -> _Reply:
        per_page, page = _page_params(params)
        last = max(1, math.ceil(total / per_page))
        headers = {}
        if last > 1 or page > 1:
            headers["Link"] = _link_header(base, raw_path, pairs, page, last)
        return _Reply(200, items, headers)

    def _admin(self, h: "_Handler", method: str, path: str, params: dict[str, str]) -> None:
        if path == "/_emulator/stats" and method == "GET":
            return self._send(h, method, _Reply(200, self.stats()), {}, None)
        if path == "/_emulator/reset_stats" and method == "POST":
            self.reset_stats()
            return self._send(h, method, _Reply(200, {"reset": True}), {}, None)
        if path == "/_emulator/touch" and method == "POST":
            try:
                n = int(params.get("n", "1"))
                touched = self.touch(params.get("repo", ""), n)
            except (KeyError, ValueError) as e:
                return self._send(h, method, _Reply(422, {"message": f"bad touch request: {e}"}), {}, None)
            return self._send(h, method, _Reply(200, {"touched": touched}), {}, None)
        if path == "/_emulator/delete" and method == "POST":
            try:
                deleted = self.delete(params.get("repo", ""), int(params.get("number", "")))
            except (KeyError, ValueError) as e:
                return self._send(h, method, _Reply(422, {"message": f"bad delete request: {e}"}), {}, None)
            return self._send(h, method, _Reply(200, {"deleted": deleted}), {}, None)
        return self._send(h, method, _not_found(), {}, None)

    def _send(self, h: "_Handler", method: str, reply: _Reply, rate: dict[str, str], kind: str | None,
              body: bytes | None = None) -> None:
        if body is None:
            body = _dump(reply.obj)
        if kind is not None:
            with self._lock:
                self._counts[kind] += 1
                self._by_status[reply.status] += 1
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Cache-Control": "private, max-age=60, s-maxage=60",
            "Vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
            "X-GitHub-Media-Type": "github.v3; format=json",
            "x-github-api-version-selected": "2022-11-28",
            **rate,
            **reply.headers,
        }
        if reply.status != 304:
            headers.setdefault("ETag", _etag(body))
        h.send_response(reply.status)
        for k, v in headers.items():
            h.send_header(k, v)
        if reply.status != 304:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if method != "HEAD" and reply.status != 304:
            h.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-response (timeouts, Ctrl-C) are normal; anything else is a bug.
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Thin adapter from ``http.server`` to :meth:`Emulator.handle`."""

    emulator: Emulator
    protocol_version = "HTTP/1.1"  # keep-alive, as api.github.com
    # One buffered write per response and no Nagle: avoids 40 ms delayed-ACK stalls.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return "GitHub.com"

    def date_time_string(self, timestamp: float | None = None) -> str:
        # the Date header tells the emulator's (possibly skewed) clock, as GitHub's tells its own
        return super().date_time_string(self.emulator.now() if timestamp is None else timestamp)

    def _dispatch(self, method: str) -> None:
        try:
            self.emulator.handle(self, method)
        except (ConnectionError, TimeoutError):
            raise
        except Exception as e:  # a bug here must not hang the client: answer 500 and say why
            body = _dump({"message": f"emulator error: {type(e).__name__}: {e}", "documentation_url": DOCS})
            self.send_response(500)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            raise

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self._dispatch("POST")

    do_PATCH = do_PUT = do_DELETE = do_POST

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Silent: request lines could carry tokens in query strings, and tests stay quiet.
        pass


# ---------------------------------------------------------------------- helpers


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _not_found() -> _Reply:
    return _Reply(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})


def _gone() -> _Reply:
    """A deleted issue, as GitHub answers it."""
    return _Reply(410, {"message": "This issue was deleted", "documentation_url": DOCS, "status": "410"})


def _invalid(name: str, value: str) -> _Reply:
    return _Reply(422, {"message": "Validation Failed",
                        "errors": [{"resource": "Issue", "field": name, "code": "invalid", "value": value}],
                        "documentation_url": "https://docs.github.com/rest/issues/issues#list-repository-issues",
                        "status": "422"})


def _route(path: str) -> tuple[str, tuple]:
    """Map a path to (endpoint template for stats, route tuple)."""
    if path == "/rate_limit":
        return "/rate_limit", ("rate_limit",)
    seg = path.strip("/").split("/")
    if len(seg) >= 3 and seg[0] == "repos":
        owner, name = seg[1], seg[2]
        rest = seg[3:]
        if not rest:
            return "/repos/{owner}/{repo}", ("repo", owner, name)
        if rest == ["issues"]:
            return "/repos/{owner}/{repo}/issues", ("issues", owner, name)
        if rest == ["labels"]:
            return "/repos/{owner}/{repo}/labels", ("labels", owner, name)
        if len(rest) == 2 and rest[0] == "labels":
            return "/repos/{owner}/{repo}/labels/{name}", ("label", owner, name, unquote(rest[1]))
        if len(rest) >= 2 and rest[0] == "issues" and rest[1].isdigit():
            number = int(rest[1])
            if len(rest) == 2:
                return "/repos/{owner}/{repo}/issues/{number}", ("issue", owner, name, number)
            if rest[2:] == ["timeline"]:
                return "/repos/{owner}/{repo}/issues/{number}/timeline", ("timeline", owner, name, number)
            if rest[2:] == ["comments"]:
                return "/repos/{owner}/{repo}/issues/{number}/comments", ("comments", owner, name, number)
    return "other", ("missing",)


def _page_params(params: dict[str, str]) -> tuple[int, int]:
    try:
        per_page = int(params.get("per_page", "30"))
    except ValueError:
        per_page = 30
    per_page = 30 if per_page < 1 else min(per_page, 100)
    try:
        page = max(1, int(params.get("page", "1")))
    except ValueError:
        page = 1
    return per_page, page


def _page_slice(items: list, params: dict[str, str]) -> list:
    """The items on the requested page."""
    per_page, page = _page_params(params)
    return items[(page - 1) * per_page : page * per_page]


def _link_header(base: str, raw_path: str, pairs: list, page: int, last: int) -> str:
    """GitHub's ``Link`` header: next, last, first, prev (as in the recordings)."""

    def url(p: int) -> str:
        q = [(k, v) for k, v in pairs if k != "page"] + [("page", str(p))]
        return f"{base}{raw_path}?{urlencode(q)}"

    links = []
    if page < last:
        links.append(f'<{url(page + 1)}>; rel="next"')
        links.append(f'<{url(last)}>; rel="last"')
    if page > 1:
        links.append(f'<{url(1)}>; rel="first"')
        links.append(f'<{url(page - 1)}>; rel="prev"')
    return ", ".join(links)


def _rate_limit_body(core: dict[str, int]) -> dict[str, Any]:
    """``GET /rate_limit``, shaped like the recording (other resources are untouched)."""
    reset = core["reset"]

    def full(limit: int) -> dict[str, int]:
        return {"limit": limit, "used": 0, "remaining": limit, "reset": reset}

    return {
        "resources": {
            "core": dict(core), "search": full(30), "graphql": full(5000), "integration_manifest": full(5000),
            "source_import": full(100), "code_scanning_upload": full(1000), "code_scanning_autofix": full(10),
            "actions_runner_registration": full(10000), "scim": full(15000), "dependency_snapshots": full(100),
            "audit_log": full(1750), "audit_log_streaming": full(15), "code_search": full(10),
        },
        "rate": dict(core),
    }


@contextlib.contextmanager
def run_emulator(cfg: EmulatorConfig | None = None) -> Iterator[Emulator]:
    """Start an emulator in a background thread for the ``with`` block, then stop it."""
    emu = Emulator(cfg).start()
    try:
        yield emu
    finally:
        emu.stop()
