"""GitHub issues backend: turns API pages into issue and timeline dicts (no storage here).

Listing strategy (why it is shaped like this):

- ``sort=updated&direction=asc`` with ``since=``: the crawl sees issues oldest-change first, so
  what a killed run stored is a clean prefix and the high-water mark is simply the last
  ``updated_at`` of that prefix.
- keyset pagination: after each page the next query restarts at ``since=<last updated_at - 1s>``
  instead of following ``page=N+1``. With page numbers, an issue updated *during* the crawl moves
  to the end of the ordering and shifts every later issue one slot forward, so one issue would
  slip unseen across a page boundary. Re-querying from the last seen timestamp cannot skip
  anything; the 1 s overlap only re-lists issues that are skipped as unchanged. When a page brings
  nothing new (more than a page of issues sharing one timestamp) we fall back to the ``next``
  link of the current query so the crawl always progresses.
- labels the source requires are sent as ``labels=`` (a small listing); excluded labels,
  state and pull requests are filtered client-side with :meth:`Source.is_relevant`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator
from urllib.parse import quote

from pipeline.crawl.client import GitHubClient, Response
from pipeline.sources import Source, issue_url, label_names

PER_PAGE = 100
TIMELINE_ACCEPT = "application/vnd.github.mockingbird-preview+json"


def parse_time(value: str) -> datetime:
    """GitHub's ``2024-01-02T03:04:05Z`` as an aware UTC datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)


def format_time(value: datetime) -> str:
    """An aware datetime in GitHub's format (seconds, ``Z``)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def shift_time(value: str, seconds: float) -> str:
    """``value`` moved by ``seconds`` (negative = earlier), in GitHub's format."""
    return format_time(parse_time(value) + timedelta(seconds=seconds))


def issue_fields(issue: dict, repo: str, source: str) -> dict[str, Any]:
    """The store's columns for one GitHub issue object (the raw JSON is kept whole)."""
    number = int(issue["number"])
    return {
        "repo": repo,
        "number": number,
        "source": source,
        "url": issue_url(repo, number),
        "title": issue.get("title"),
        "body": issue.get("body"),
        "state": issue.get("state"),
        "labels": json.dumps(label_names(issue)),
        "is_pull": int("pull_request" in issue),
        "created_at": issue.get("created_at"),
        "updated_at": issue.get("updated_at"),
        "closed_at": issue.get("closed_at"),
        "raw": json.dumps(issue, sort_keys=True, separators=(",", ":")),
    }


def event_fields(event: dict, seq: int) -> dict[str, Any]:
    """The store's columns for one timeline event; comments keep their body inside ``raw``."""
    created = event.get("created_at") or event.get("submitted_at") or (event.get("committer") or {}).get("date")
    return {
        "seq": seq,
        "event": event.get("event"),
        "created_at": created,
        "raw": json.dumps(event, sort_keys=True, separators=(",", ":")),
    }


@dataclass
class ListingPage:
    """One answered listing request: its relevant issues and how to resume after it."""

    url: str
    etag: str | None
    not_modified: bool
    issues: list[dict]                  # relevant issues (PRs and excluded labels dropped)
    seen: int                           # items GitHub returned (before filtering)
    dropped: list[dict] = field(default_factory=list)  # returned but not relevant
    last_updated: str | None = None     # max updated_at on the page
    next_url: str | None = None         # rel="next" of this answer
    total_estimate: int | None = None   # from rel="last" on a first page


class IssueBackend:
    """Fetches a source's issues (listing) and an issue's timeline through a client."""

    def __init__(self, client: GitHubClient, per_page: int = PER_PAGE) -> None:
        self.client = client
        self.per_page = per_page

    def listing_params(self, source: Source, since: str | None) -> dict[str, str]:
        params = {"state": source.state, "sort": "updated", "direction": "asc", "per_page": str(self.per_page)}
        if source.labels:
            params["labels"] = ",".join(source.labels)
        if since:
            params["since"] = since
        return params

    def pages(
        self,
        source: Source,
        since: str | None,
        etag_for: Callable[[str], tuple[str | None, dict | None]] | None = None,
    ) -> Iterator[ListingPage]:
        """Yield the listing pages of ``source`` changed at or after ``since``, oldest first.

        ``etag_for(url) -> (etag, meta)`` supplies a cached ETag and the page's remembered meta
        (``{"last_updated", "next"}``); a 304 answer then yields an empty page carrying
        that meta, so the walk continues exactly where the cached page ended.
        """
        path = f"repos/{source.repo}/issues"
        next_url: str | None = None
        query_since = since
        first = True
        while True:
            url = next_url or self.client.url_for(path, self.listing_params(source, query_since))
            etag, meta = etag_for(url) if etag_for else (None, None)
            resp = self.client.get(url, etag=etag)
            if resp.not_modified and meta is not None:
                page = ListingPage(url, resp.etag or etag, True, [], 0, last_updated=meta.get("last_updated"),
                                   next_url=meta.get("next"))
            else:
                page = self._page(source, resp, first)
            first = False
            yield page
            if not page.next_url:
                return
            keyset = shift_time(page.last_updated, -1) if page.last_updated else None
            if keyset and (query_since is None or keyset > query_since):
                # keyset step: restart the query just before the last timestamp seen
                query_since, next_url = keyset, None
            else:
                # a page's worth of issues share one timestamp: page on within this query
                next_url = page.next_url

    def _page(self, source: Source, resp: Response, first: bool) -> ListingPage:
        items = resp.data if isinstance(resp.data, list) else []
        relevant: list[dict] = []
        dropped: list[dict] = []
        for i in items:
            (relevant if source.is_relevant(i) else dropped).append(i)
        stamps = [i.get("updated_at") for i in items if i.get("updated_at")]
        total = None
        if first and "last" in resp.links:
            total = _page_number(resp.links["last"]) * self.per_page
        elif first:
            total = len(items)
        return ListingPage(resp.url, resp.etag, False, relevant, len(items), dropped,
                           max(stamps) if stamps else None, resp.links.get("next"), total)

    def label(self, repo: str, name: str, etag: str | None = None) -> Response:
        """``GET /repos/{repo}/labels/{name}`` (conditional with ``etag``); raises
        :class:`~pipeline.crawl.client.NotFound` when the repository has no such label."""
        return self.client.get(self.label_url(repo, name), etag=etag)

    def label_url(self, repo: str, name: str) -> str:
        # every character of a label name can occur (spaces, ':', '/'): all of them quoted
        return self.client.url_for(f"repos/{repo}/labels/{quote(name, safe='')}")

    def repo_labels(self, repo: str) -> list[str]:
        """The names of every label of ``repo`` (``GET /repos/{repo}/labels``, all pages)."""
        names: list[str] = []
        resp = self.client.get(f"repos/{repo}/labels", {"per_page": str(self.per_page)})
        while True:
            names += [lab["name"] for lab in resp.data or [] if isinstance(lab, dict) and "name" in lab]
            nxt = resp.links.get("next")
            if not nxt:
                return names
            resp = self.client.get(nxt)

    def timeline(self, repo: str, number: int) -> list[dict]:
        """All timeline events of one issue, in GitHub's order (follows ``Link`` pagination)."""
        events: list[dict] = []
        resp = self.client.get(f"repos/{repo}/issues/{number}/timeline", {"per_page": str(self.per_page)})
        while True:
            if isinstance(resp.data, list):
                events.extend(resp.data)
            nxt = resp.links.get("next")
            if not nxt:
                return events
            resp = self.client.get(nxt)


def _page_number(url: str) -> int:
    from urllib.parse import parse_qs, urlparse

    try:
        return int(parse_qs(urlparse(url).query).get("page", ["1"])[0])
    except ValueError:
        return 1
