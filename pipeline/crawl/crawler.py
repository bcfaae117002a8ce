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
- Before anything is listed, each source's labels (required and excluded) are looked up
  (``GET /repos/{o}/{r}/labels/{name}``): GitHub answers a listing by an unknown label with an
  empty list, which would make a typo find nothing and ``--full`` delete every stored issue.
  An unknown label is a :class:`UnknownLabel` naming the closest existing ones. A label once
  found is remembered with its ETag (``http_cache``); it is looked up again (a free 304) by
  ``full`` runs and when an incremental listing comes back empty.
- ``full`` refuses to remove more than ``max_removal_share`` (20%) of a source's stored issues
  unless ``allow_removals``: the source's removals are reported (``would_remove``), none is made.
- When the rate-limit wait would exceed ``max_wait``, the run stops at the cursor, reports itself
  partial (CLI exit code 3) and the next run continues; the client sends nothing more.
- An ``--api-url`` that is not GitHub's API (:class:`~pipeline.crawl.client.ApiUnusable`) stops
  the whole run at once, before anything is written.
- One crawl per store at a time: a run holds an exclusive ``flock`` on ``<store>.crawl-lock``
  (released by the kernel even on ``kill -9``). A second run (e.g. tonight's cron while last
  night's still waits for a rate-limit reset) stops at once instead of spending the budget twice.
"""

from __future__ import annotations

import difflib
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
from pipeline.crawl.client import ApiUnusable, BudgetExhausted, CrawlError, GitHubClient, NotFound
from pipeline.errors import UserError
from pipeline.sources import Source
from pipeline.store import crawlstore as cs

OVERLAP_SECONDS = 60
MAX_REMOVAL_SHARE = 0.2   # --full removes at most this share of a source's stored issues unless allowed


class UnknownLabel(UserError):
    """A source names a label its repository does not have (or spells it differently)."""


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
    label_checks: int = 0     # label lookups sent (see verify_labels)
    stored: int = 0           # --full: the source's stored issues when its listing completed
    would_remove: list[int] = field(default_factory=list)   # --full removals refused (numbers)
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
    refused: list[str] = field(default_factory=list)    # --full removals refused, one line per source
    tokens: list[dict] = field(default_factory=list)    # per token, by position: limit, remaining, reset, requests

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def totals(self) -> dict[str, int]:
        keys = ("new", "updated", "unchanged", "removed", "skipped", "timelines", "listing_pages", "label_checks")
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
    allow_removals: bool = False,
    max_removal_share: float = MAX_REMOVAL_SHARE,
    concurrency: int = 4,
    overlap_seconds: int = OVERLAP_SECONDS,
    progress: CrawlProgress | None = None,
) -> CrawlSummary:
    """Crawl ``sources`` into the store ``conn``; returns what happened (a source that fails
    after retries is reported in ``errors`` and left resumable). Raises :class:`UserError` when
    another crawl is writing the same store, a source names an unknown label
    (:class:`UnknownLabel`), or the API URL is not GitHub's (:class:`ApiUnusable`)."""
    with crawl_lock(conn):
        return _crawl(conn, sources, client, since=since, full=full, concurrency=concurrency,
                      overlap_seconds=overlap_seconds, progress=progress, allow_removals=allow_removals,
                      max_removal_share=max_removal_share)


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
           overlap_seconds: int, progress: CrawlProgress | None, allow_removals: bool = False,
           max_removal_share: float = MAX_REMOVAL_SHARE) -> CrawlSummary:
    t0 = time.monotonic()
    r0, n0, x0 = client.requests, client.not_modified, client.retries   # the client may be reused
    summary = CrawlSummary()
    backend = IssueBackend(client)
    concurrency = max(1, concurrency)
    summary.sources = {source.name: SourceSummary(source.name) for source in sources}
    checked: list[Source] = []
    for source in sources:
        # every source's labels before any listing: a typo stops the run before it writes anything
        s = summary.sources[source.name]
        try:
            verify_labels(conn, source, backend, force=full, summary=s)
            checked.append(source)
        except BudgetExhausted as e:
            s.error = summary.stop_reason = str(e)
            summary.partial = True
            break
        except (ApiUnusable, UnknownLabel):
            raise
        except CrawlError as e:
            s.error = str(e)
            summary.errors.append(f"{source.name}: {e}")
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="timeline") as pool:
        for source in checked if not summary.partial else []:
            s = summary.sources[source.name]
            try:
                _crawl_source(conn, source, backend, pool, s, since, concurrency, overlap_seconds, progress,
                              full=full, allow_removals=allow_removals, max_removal_share=max_removal_share)
                if s.would_remove:
                    summary.refused.append(_refusal(source, s, max_removal_share))
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
            except ApiUnusable:
                client.cancel()
                raise
            except CrawlError as e:
                s.error = str(e)
                summary.errors.append(f"{source.name}: {e}")
            finally:
                if progress and s.complete:   # an unfinished source keeps its bar short of full
                    progress.finish(source.name)
    summary.requests = client.requests - r0
    summary.not_modified = client.not_modified - n0
    summary.retries = client.retries - x0
    rate = client.rate
    summary.rate_limit, summary.rate_remaining, summary.rate_reset = rate.limit, rate.remaining, rate.reset
    summary.tokens = [b.summary() for b in client.budgets]
    summary.seconds = time.monotonic() - t0
    return summary


def _refusal(source: Source, s: SourceSummary, share: float) -> str:
    return (f"{source.name}: --full would remove {len(s.would_remove)} of the {s.stored} stored issues "
            f"({100 * len(s.would_remove) / max(1, s.stored):.0f}%, more than {100 * share:.0f}%): none removed; "
            "check the source's labels and state, or run again with --allow-removals if they are really gone")


def verify_labels(conn, source: Source, backend: IssueBackend, *, force: bool = False,
                  summary: SourceSummary | None = None) -> None:
    """Check that every label ``source`` requires or excludes exists in its repository, spelled
    exactly so (the listing matches labels case-insensitively, the relevance rule exactly).

    A label found before is remembered with its ETag and not asked again unless ``force``
    (then a conditional request: a 304, free on GitHub). Raises :class:`UnknownLabel` naming the
    closest existing labels (``GET /repos/{o}/{r}/labels``)."""
    for name in dict.fromkeys((*source.labels, *source.exclude_labels)):
        url = backend.label_url(source.repo, name)
        etag, meta = cs.cache_get(conn, url)
        known = meta is not None and meta.get("label") == name
        if known and not force:
            continue
        if summary is not None:
            summary.label_checks += 1
        try:
            resp = backend.label(source.repo, name, etag=etag if known else None)
        except NotFound:
            raise UnknownLabel(_unknown_label(source, name, backend)) from None
        if resp.not_modified:
            continue
        actual = (resp.data or {}).get("name") if isinstance(resp.data, dict) else None
        if actual != name:
            raise UnknownLabel(f"source {source.name!r}: label {name!r} is spelled {actual!r} in {source.repo}; "
                               "labels must match exactly: fix the sources file")
        cs.cache_put(conn, url, resp.etag, {"label": name})


def _unknown_label(source: Source, name: str, backend: IssueBackend) -> str:
    kind = "excluded label" if name in source.exclude_labels and name not in source.labels else "label"
    try:
        names = backend.repo_labels(source.repo)
    except NotFound:
        return (f"source {source.name!r}: repository {source.repo} not found (or not visible with this token), "
                f"so its {kind} {name!r} cannot be checked")
    folded = {n.casefold(): n for n in names}
    close = [folded[n] for n in difflib.get_close_matches(name.casefold(), list(folded), n=3, cutoff=0.6)]
    hint = (f"closest: {', '.join(repr(n) for n in close)}" if close
            else f"it has {len(names)} labels" + (f", e.g. {', '.join(repr(n) for n in sorted(names)[:3])}" if names else ""))
    return f"source {source.name!r}: {kind} {name!r} does not exist in {source.repo} ({hint}); fix the sources file"


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
                  full: bool = False, allow_removals: bool = False,
                  max_removal_share: float = MAX_REMOVAL_SHARE) -> None:
    st = cs.get_crawl_state(conn, source.name)
    cursor, query_since = (None, None) if full else _start_point(st, since, overlap)
    s.since = query_since

    def state() -> dict:
        return {"running": True, "cursor": cursor}

    # the run's state is first written with its first answered page: a run that gets no answer
    # (a wrong --api-url) leaves the store as it was
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
    any_seen = False                         # any page listed an item (or was unchanged: a 304)
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
                any_seen = any_seen or page.seen > 0 or page.not_modified
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
                if head.number not in known:
                    s.skipped += 1
                elif full:
                    listed.discard(head.number)     # counted, and guarded, once the listing is complete
                else:
                    cs.delete_issue(conn, source.repo, head.number, source_state=(source.name, state()))
                    known.pop(head.number, None)
                    s.removed += 1
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
        stored = [n for (n,) in conn.execute("SELECT number FROM issues WHERE repo = ? AND source = ?",
                                             (source.repo, source.name))]
        gone = sorted(n for n in stored if n not in listed)
        s.stored = len(stored)
        if gone and len(gone) > max_removal_share * len(stored) and not allow_removals:
            # an implausible listing (a label emptied or renamed, a wrong rule): keep everything
            s.would_remove = gone
        else:
            for number in gone:
                cs.delete_issue(conn, source.repo, number)
            s.removed += len(gone)
    elif s.listing_pages and not any_seen and source.labels:
        # an empty listing may mean the label was renamed or deleted since it was checked
        verify_labels(conn, source, backend, force=True, summary=s)
    high_water = max(filter(None, [st.high_water, cursor]), default=None)
    cs.set_crawl_state(conn, source.name, high_water=high_water, last_crawl=cs.now_utc(), state={})
    s.high_water = high_water
    s.complete = True


def _cancel(queue: "deque[_Entry]") -> None:
    """Cancel the timeline fetches that have not started (running ones finish)."""
    for e in queue:
        if e.future is not None:
            e.future.cancel()
