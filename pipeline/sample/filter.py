"""The study's data-availability filter on issue timelines (Jajal et al., ISSTA 2024).

Keep an issue if any event of its timeline is

- a ``closed`` event with a ``commit_id`` (closed by a commit),
- a ``referenced`` event with a ``commit_id`` (a commit mentions the issue),
- a ``cross-referenced`` event whose source issue is closed and lives in one of the issue's
  source's cross-reference repositories (the study: "the pytorch or tensorflow-onnx
  repository"), or
- a ``connected`` event (an issue or pull request was linked to it).

The cross-reference repositories are per source: ``xref_repos`` in ``sources.yaml``, compared
case-insensitively. The default, and what the study's two sources use, reads "the pytorch or
tensorflow-onnx repository" as ``pytorch/pytorch`` and ``onnx/tensorflow-onnx`` for both
converters alike (a torch.onnx issue cross-referenced by a closed tf2onnx issue counts). The
other converters list their own repository, the framework they convert from or to and
``onnx/onnx`` (see the comments in ``sources.yaml``): a fix usually lands in one of those. An
issue whose source is not in the sources file gets the default. The source issue's repository is
``source.issue.repository.full_name``, or else parsed from ``source.issue.repository_url``.
A cross-referencing pull request counts like an issue (GitHub's timeline calls both "issue";
a merged pull request is ``closed``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable

from pipeline.sources import DEFAULT_XREF_REPOS, Source, load_sources

_EVENTS = ("closed", "referenced", "cross-referenced", "connected")


def _source_repo(issue: dict) -> str | None:
    repo = issue.get("repository")
    if isinstance(repo, dict) and repo.get("full_name"):
        return str(repo["full_name"])
    url = issue.get("repository_url") or ""
    if "/repos/" in url:
        return url.split("/repos/", 1)[1].strip("/")
    return None


def event_counts(event: dict, xref_repos: Iterable[str] = DEFAULT_XREF_REPOS) -> bool:
    """Whether one timeline event satisfies the filter on its own."""
    kind = event.get("event")
    if kind in ("closed", "referenced"):
        return bool(event.get("commit_id"))
    if kind == "connected":
        return True
    if kind == "cross-referenced":
        issue = (event.get("source") or {}).get("issue") or {}
        repo = _source_repo(issue)
        allowed = {r.lower() for r in xref_repos}
        return issue.get("state") == "closed" and repo is not None and repo.lower() in allowed
    return False


def is_available(timeline_events: Iterable[dict], xref_repos: Iterable[str] = DEFAULT_XREF_REPOS) -> bool:
    """The data-availability filter: does any event of this timeline keep the issue?"""
    xref = tuple(xref_repos)
    return any(event_counts(e, xref) for e in timeline_events)


def _xref_for(sources: list[Source]) -> dict[str, tuple[str, ...]]:
    return {s.name: tuple(s.xref_repos) for s in sources}


_LIGHT_COLUMNS = ", ".join(f"i.{c}" for c in ("repo", "number", "source", "url", "title", "state", "labels", "is_pull",
                                                "created_at", "updated_at", "closed_at", "timeline_for", "fetched_at"))


def filtered_issues(conn: sqlite3.Connection, source: str | None = None,
                    sources: list[Source] | None = None) -> list[sqlite3.Row]:
    """Stored issues (rows of ``issues`` without its two large columns, ``body`` and ``raw``) that
    have a timeline and pass the filter, by source then number. ``source`` limits to one
    converter; ``sources`` defaults to ``load_sources()``."""
    xref = _xref_for(sources if sources is not None else load_sources())
    where, args = "i.timeline_for IS NOT NULL AND i.is_pull = 0", []
    if source is not None:
        where += " AND i.source = ?"
        args.append(source)
    marks = ",".join("?" for _ in _EVENTS)
    # candidate events only: the filter never looks at comments, labels, ...
    cand: dict[tuple[str, int], list[dict]] = {}
    for repo, number, raw in conn.execute(
            f"SELECT e.repo, e.number, e.raw FROM timeline_events e JOIN issues i ON i.repo = e.repo AND i.number = e.number "
            f"WHERE {where} AND e.event IN ({marks})", [*args, *_EVENTS]):
        cand.setdefault((repo, number), []).append(json.loads(raw))
    # not body and raw: 10,000 issues hold over 100 MB of them, and no caller reads them from here
    rows = conn.execute(f"SELECT {_LIGHT_COLUMNS} FROM issues i WHERE {where} ORDER BY i.source, i.number",
                        args).fetchall()
    return [r for r in rows
            if is_available(cand.get((r["repo"], r["number"]), ()), xref.get(r["source"], DEFAULT_XREF_REPOS))]


def filter_counts(conn: sqlite3.Connection, sources: list[Source] | None = None) -> dict[str, dict[str, Any]]:
    """Per source: relevant issues stored, of which with a timeline, and kept by the filter."""
    sources = sources if sources is not None else load_sources()
    kept: dict[str, int] = {}
    for r in filtered_issues(conn, sources=sources):
        kept[r["source"]] = kept.get(r["source"], 0) + 1
    stored = {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT source, COUNT(*), SUM(timeline_for IS NOT NULL) FROM issues WHERE is_pull = 0 GROUP BY source")}
    names = [s.name for s in sources] + sorted(set(stored) - {s.name for s in sources})
    out = {}
    for name in names:
        relevant, with_tl = stored.get(name, (0, 0))
        out[name] = {"relevant": int(relevant or 0), "with_timeline": int(with_tl or 0), "kept": kept.get(name, 0)}
    return out
