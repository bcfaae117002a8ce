"""The crawl itself: walks each source's listing, fetches changed timelines, writes the store.

How a run stays cheap, resumable and exact:

- The listing starts at the source's high-water mark of ``updated_at`` minus a small overlap
  (``OVERLAP_SECONDS``), or at the cursor of an unfinished run, or at ``--since``.
- An issue whose stored ``timeline_for`` equals its ``updated_at`` is unchanged: no request.
  Otherwise its timeline is fetched by a small thread pool (``concurrency``) while this thread,
  the only SQLite writer, consumes the results **in listing order**: each issue is written with
  its whole timeline and the run's cursor in one transaction. The cursor therefore marks a clean
  prefix of the ascending listing; a run killed at any instant resumes from it.
- The high-water mark only moves when a source's run finishes (to the last cursor), so an
  interrupted ``--since`` backfill cannot make the next run skip what the backfill missed.
- The first listing page of a run is cached with its ETag: when nothing changed since, the next
  run's first request is answered 304 (free on GitHub).
- ``full=True`` lists each source from the start again (listing pages only: unchanged issues cost
  no timeline request) and, when the run completes, deletes the stored issues of the source the
  listing no longer returns: reopened, relabelled, deleted or transferred issues, which an
  incremental ``since=`` listing can never show. About one request per 100 listed issues.
- When the rate-limit wait would exceed ``max_wait``, the run stops at the cursor, reports itself
  partial (CLI exit code 3) and the next run continues.
- One crawl per store at a time: a run holds an exclusive ``flock`` on ``<store>.crawl-lock``
  (released by the kernel even on ``kill -9``). A second run (e.g. tonight's cron while last
  night's still waits for a rate-limit reset) stops at once instead of spending the budget twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pipeline.crawl.backend import IssueBackend, ListingPage, event_fields, issue_fields, shift_time
from pipeline.crawl.client import BudgetExhausted, CrawlError, GitHubClient, NotFound
from pipeline.errors import UserError
from pipeline.sources import Source
from pipeline.store import crawlstore as cs

OVERLAP_SECONDS = 60


class CrawlProgress(Protocol):
    """What the crawler reports while it runs (the CLI draws it with rich)."""

    def start(self, source: str, total: int | None) -> None: ...
    def advance(self, source: str, n: int = 1) -> None: ...
    def finish(self, source: str) -> None: ...   # the source's crawl completed


@dataclass
class SourceSummary:
    """What one source's crawl did."""

    name: str
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0          # listed but not relevant (pull requests, excluded labels) and not stored
    timelines: int = 0        # timelines fetched
    listing_pages: int = 0
    since: str | None = None  # where the listing started
    high_water: str | None = None
    complete: bool = False
    error: str | None = None


@dataclass
class CrawlSummary:
    """The closing summary of :func:`crawl` (the CLI prints it, or its JSON)."""

    sources: dict[str, SourceSummary] = field(default_factory=dict)
    requests: int = 0
    not_modified: int = 0
    retries: int = 0
    rate_limit: int | None = None
    rate_remaining: int | None = None
    rate_reset: float | None = None
    seconds: float = 0.0
    partial: bool = False          # stopped by --max-wait: resumable
    stop_reason: str | None = None
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def totals(self) -> dict[str, int]:
        keys = ("new", "updated", "unchanged", "removed", "skipped", "timelines", "listing_pages")
        return {k: sum(getattr(s, k) for s in self.sources.values()) for k in keys}


@dataclass
class _Entry:
    kind: str                       # new | updated | remove | page_end
    number: int = 0
    fields: dict | None = None
    future: Future | None = None
    page: ListingPage | None = None
    first_page: bool = False
    updated_at: str | None = None


def crawl(
    conn,
    sources: list[Source],
    client: GitHubClient,
    *,
    since: str | None = None,
    full: bool = False,
    concurrency: int = 4,
    overlap_seconds: int = OVERLAP_SECONDS,
    progress: CrawlProgress | None = None,
) -> CrawlSummary:
    """Crawl ``sources`` into the store ``conn``; returns what happened (never raises for
    HTTP trouble: a failed source is reported in ``errors`` and left resumable). Raises
    :class:`UserError` when another crawl is writing the same store."""
    with crawl_lock(conn):
        return _crawl(conn, sources, client, since=since, full=full, concurrency=concurrency,
                      overlap_seconds=overlap_seconds, progress=progress)


@contextmanager
def crawl_lock(conn):
    """Hold the store's crawl lock for the ``with`` block (no-op for an in-memory store)."""
    row = conn.execute("PRAGMA database_list").fetchone()
    path = row[2] if row is not None else ""
    if not path:
        yield
        return
    lock_path = f"{path}.crawl-lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise UserError(f"{path}: another crawl (pid {holder}) is writing this store; "
                            "let it finish or stop it, then run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)   # releases the lock


def _crawl(conn, sources: list[Source], client: GitHubClient, *, since: str | None, full: bool, concurrency: int,
           overlap_seconds: int, progress: CrawlProgress | None) -> CrawlSummary:
    t0 = time.monotonic()
    r0, n0, x0 = client.requests, client.not_modified, client.retries   # the client may be reused
    summary = CrawlSummary()
    backend = IssueBackend(client)
    concurrency = max(1, concurrency)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="timeline") as pool:
        for source in sources:
            s = SourceSummary(source.name)
            summary.sources[source.name] = s
            try:
                _crawl_source(conn, source, backend, pool, s, since, concurrency, overlap_seconds, progress,
                              full=full)
            except KeyboardInterrupt:
                # end the fetches still running (a rate-limit wait can last an hour) before the
                # pool joins them; what is stored stays whole and resumable
                client.cancel()
                raise
            except BudgetExhausted as e:
                s.error = str(e)
                summary.partial = True
                summary.stop_reason = str(e)
                break
            except CrawlError as e:
                s.error = str(e)
                summary.errors.append(f"{source.name}: {e}")
            finally:
                if progress and s.complete:   # an unfinished source keeps its bar short of full
                    progress.finish(source.name)
    summary.requests = client.requests - r0
    summary.not_modified = client.not_modified - n0
    summary.retries = client.retries - x0
    summary.rate_limit = client.rate.limit
    summary.rate_remaining = client.rate.remaining
    summary.rate_reset = client.rate.reset
    summary.seconds = time.monotonic() - t0
    return summary


def _start_point(st: cs.CrawlState, since: str | None, overlap: int) -> tuple[str | None, str | None]:
    """(cursor to record, ``since`` to ask) for a run of a source in state ``st``."""
    if since:
        return since, since
    running = st.state or {}
    if running.get("running"):
        start = running.get("cursor")   # an unfinished run: resume at its prefix
    else:
        start = st.high_water
    return start, (shift_time(start, -overlap) if start else None)


def _crawl_source(conn, source: Source, backend: IssueBackend, pool: ThreadPoolExecutor, s: SourceSummary,
                  since: str | None, concurrency: int, overlap: int, progress: CrawlProgress | None,
                  full: bool = False) -> None:
    st = cs.get_crawl_state(conn, source.name)
    cursor, query_since = (None, None) if full else _start_point(st, since, overlap)
    s.since = query_since

    def state() -> dict:
        return {"running": True, "cursor": cursor}

    cs.set_crawl_state(conn, source.name, state=state())
    known = cs.known_issues(conn, source.repo)
    in_run: dict[int, str | None] = {}      # number -> updated_at queued in this run
    listing_prefix = backend.client.url_for(f"repos/{source.repo}/issues")
    queue: deque[_Entry] = deque()
    pending = 0                              # entries with a timeline future in the queue
    # a 304 means "same page as last time", which only implies "nothing to do" if the page was
    # processed under the same relevance rule: the rule's fingerprint is part of the cached meta
    rule = json.dumps([source.state, sorted(source.labels), sorted(source.exclude_labels)])

    def etag_for(url: str) -> tuple[str | None, dict | None]:
        etag, meta = cs.cache_get(conn, url)
        return (etag, meta) if meta and meta.get("rule") == rule else (None, None)

    # a full listing must see every issue: a 304 page would hide the issues it holds
    pages = backend.pages(source, query_since, etag_for=None if full else etag_for)
    listed: set[int] = set()                 # relevant issues this run listed (for ``full``)
    pages_left = True
    first_page = True
    stop: BaseException | None = None

    try:
        while True:
            # keep the pool busy: read listing pages until enough timelines are in flight
            while pages_left and stop is None and pending < concurrency * 4:
                try:
                    page = next(pages)
                except StopIteration:
                    pages_left = False
                    break
                except (BudgetExhausted, CrawlError) as e:
                    stop, pages_left = e, False
                    _cancel(queue)      # keep what is already in flight, start nothing new
                    break
                s.listing_pages += 1
                if first_page and progress:
                    progress.start(source.name, page.total_estimate)
                for issue in page.issues:
                    number, updated = int(issue["number"]), issue.get("updated_at")
                    listed.add(number)
                    if number in in_run and in_run[number] == updated:
                        continue                     # the keyset overlap listed it again
                    prev = known.get(number)
                    first_sight = number not in in_run
                    in_run[number] = updated
                    if prev is not None and prev[1] == updated and prev[0] == updated:
                        if first_sight:
                            s.unchanged += 1
                            if progress:
                                progress.advance(source.name)
                        continue
                    kind = "new" if prev is None and first_sight else "updated"
                    fut = pool.submit(backend.timeline, source.repo, number)
                    queue.append(_Entry(kind, number, issue_fields(issue, source.repo, source.name), fut,
                                        updated_at=updated))
                    pending += 1
                for issue in page.dropped:
                    number = int(issue["number"])
                    if number in known and number not in in_run and "pull_request" not in issue:
                        in_run[number] = issue.get("updated_at")
                        queue.append(_Entry("remove", number, updated_at=issue.get("updated_at")))
                    elif number not in known and number not in in_run:
                        in_run[number] = issue.get("updated_at")
                        s.skipped += 1
                queue.append(_Entry("page_end", page=page, first_page=first_page))
                first_page = False
            if not queue:
                break
            head = queue[0]
            if head.future is not None:
                if head.future.cancelled():
                    break                            # stopping: the rest was never started
                try:
                    events = head.future.result()
                except NotFound:
                    # deleted, transferred or hidden since it was listed: it is not in the corpus
                    pending -= 1
                    head.future, head.kind = None, "remove"
                    continue
                except (BudgetExhausted, CrawlError) as e:
                    stop = stop or e
                    break
                pending -= 1
                cursor = head.updated_at or cursor
                cs.save_issue(conn, head.fields, [event_fields(e, i) for i, e in enumerate(events)],
                              fetched_at=cs.now_utc(), source_state=(source.name, state()))
                known[head.number] = (head.updated_at, head.updated_at)
                s.timelines += 1
                setattr(s, head.kind, getattr(s, head.kind) + 1)
                if progress:
                    progress.advance(source.name)
            elif head.kind == "remove":
                cursor = head.updated_at or cursor
                if head.number in known:
                    cs.delete_issue(conn, source.repo, head.number, source_state=(source.name, state()))
                    known.pop(head.number, None)
                    s.removed += 1
                else:
                    s.skipped += 1
            elif head.kind == "page_end":
                page = head.page
                if page.last_updated and (cursor is None or page.last_updated > cursor):
                    cursor = page.last_updated
                if head.first_page and not page.not_modified and not full:
                    # only a run's first page URL can recur (same high-water mark next run);
                    # a full run's first page never does, and must not evict the incremental one
                    cs.cache_put(conn, page.url, page.etag, {"last_updated": page.last_updated, "next": page.next_url, "rule": rule},
                                 replace_prefix=listing_prefix, source_state=(source.name, state()))
                else:
                    cs.set_crawl_state(conn, source.name, state=state())
            queue.popleft()
    finally:
        _cancel(queue)
    if stop is not None:
        s.high_water = st.high_water
        raise stop
    if full:
        # only a completed listing proves absence; the rows are this source's own
        gone = [n for (n,) in conn.execute("SELECT number FROM issues WHERE repo = ? AND source = ?",
                                           (source.repo, source.name)) if n not in listed]
        for number in gone:
            cs.delete_issue(conn, source.repo, number)
        s.removed += len(gone)
    high_water = max(filter(None, [st.high_water, cursor]), default=None)
    cs.set_crawl_state(conn, source.name, high_water=high_water, last_crawl=cs.now_utc(), state={})
    s.high_water = high_water
    s.complete = True


def _cancel(queue: "deque[_Entry]") -> None:
    """Cancel the timeline fetches that have not started (running ones finish)."""
    for e in queue:
        if e.future is not None:
            e.future.cancel()
