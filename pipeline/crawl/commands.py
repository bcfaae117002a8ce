"""CLI commands of the crawl stage (thin wrappers over library calls): ``crawl``, ``status``."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from pipeline.errors import UserError

EXIT_PARTIAL = 3   # stopped by --max-wait (state saved): run again to resume
EXIT_ERROR = 1     # a source failed after retries (state saved)


class RichProgress:
    """Crawl progress bars plus a countdown bar for rate-limit waits (one live display)."""

    def __init__(self, console: Console) -> None:
        # imported here, not at module level: `mine --help` and the other commands never need it
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False)
        self.tasks: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.totals: dict[str, int | None] = {}
        self._lock = threading.Lock()
        self._live = False
        self.cancelled = threading.Event()   # a set event ends a wait early (the CLI passes the client's)

    def __enter__(self) -> "RichProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self._live:
            self.progress.stop()

    def _show(self) -> None:
        # drawn from the first bar on: a run refused before any listing prints its one error line only
        if not self._live:
            self._live = True
            self.progress.start()

    def start(self, source: str, total: int | None) -> None:
        with self._lock:
            self._show()
            if source not in self.tasks:
                self.tasks[source] = self.progress.add_task(f"{source}: issues", total=total)
                self.counts[source], self.totals[source] = 0, total

    def advance(self, source: str, n: int = 1) -> None:
        self.start(source, None)
        with self._lock:
            self.counts[source] += n
            total = self.totals[source]
            if total is not None and self.counts[source] > total:
                self.totals[source] = self.counts[source]   # the listing estimate was low
            self.progress.update(self.tasks[source], completed=self.counts[source], total=self.totals[source])

    def finish(self, source: str) -> None:
        with self._lock:
            if source in self.tasks:
                self.totals[source] = self.counts[source]
                self.progress.update(self.tasks[source], total=self.counts[source], completed=self.counts[source])

    def wait(self, seconds: float, reason: str) -> None:
        """Block ``seconds`` with a visible countdown (called from any crawler thread)."""
        end = time.monotonic() + seconds
        with self._lock:
            self._show()
        task = self.progress.add_task(f"[yellow]{reason}: {seconds:.0f}s", total=max(seconds, 0.001))
        try:
            while (left := end - time.monotonic()) > 0:
                self.progress.update(task, completed=seconds - left,
                                     description=f"[yellow]{reason}: {left:.0f}s left")
                if self.cancelled.wait(min(1.0, left)):
                    return
        finally:
            self.progress.remove_task(task)


def _budget_text(summary) -> str:
    """What is left of the rate limit: the budget, or each token's by position (never the token)."""
    def reset(t: float | None) -> str:
        return time.strftime("%H:%M:%S UTC", time.gmtime(t)) if t else "?"

    def left(b: dict) -> str:
        return (f"{b['remaining'] if b['remaining'] is not None else '?'}/{b['limit'] if b['limit'] is not None else '?'}"
                f" (reset {reset(b['reset'])})")

    tokens = summary.tokens or [{"token": 0, "limit": summary.rate_limit, "remaining": summary.rate_remaining,
                                 "reset": summary.rate_reset, "requests": summary.requests}]
    if len(tokens) == 1:
        return f"rate limit left: {left(tokens[0])}" + (" without a token" if tokens[0]["token"] == 0 else "")
    return "rate limit left: " + ", ".join(f"token {b['token']} {left(b)}, {b['requests']} requests" for b in tokens)


def _print_summary(console: Console, summary) -> None:
    """One line per source and one for the budget: readable in a terminal and in a cron log
    (``soft_wrap``: a line is never cut or folded at the console width)."""
    for s in summary.sources.values():
        state = "complete" if s.complete else "not finished (resumes next run)"
        if s.would_remove:
            state += f", {len(s.would_remove)} removals refused"
        console.print(f"{s.name}: {s.new} new, {s.updated} updated, {s.unchanged} unchanged, {s.removed} removed; "
                      f"{s.timelines} timelines, {s.listing_pages} listing pages; "
                      f"high-water mark {s.high_water or '-'}; {state}", soft_wrap=True, markup=False)
    console.print(f"requests spent: {summary.requests} ({summary.not_modified} answered 304, {summary.retries} retries); "
                  f"{_budget_text(summary)}; {summary.seconds:.1f}s", soft_wrap=True, markup=False)


def _print_problems(err: Console, summary, repos: dict[str, str], full_urls: bool) -> None:
    """Stops, errors and refusals on stderr, one line each (URLs without their query string
    unless ``full_urls``, i.e. ``--format json``); a refusal is followed by what it would have
    removed (the first ten issues; the JSON summary lists all)."""
    from pipeline.crawl.client import brief
    from pipeline.sources import issue_url

    def line(text: str) -> str:
        return text if full_urls else brief(text)

    if summary.partial:
        err.print(f"stopped early, state saved; run again to resume: {line(summary.stop_reason or '')}",
                  soft_wrap=True, markup=False, style="yellow")
    for e in summary.errors:
        err.print(f"error: {line(e)}", soft_wrap=True, markup=False, style="red")
    for r in summary.refused:
        err.print(f"error: {r}", soft_wrap=True, markup=False, style="red")
    for s in summary.sources.values():
        shown = s.would_remove[:10]
        for n in shown:
            err.print(f"  would remove {issue_url(repos[s.name], n)}", soft_wrap=True, markup=False)
        if len(s.would_remove) > len(shown):
            err.print(f"  ... and {len(s.would_remove) - len(shown)} more of {s.name} (all: --format json)",
                      soft_wrap=True, markup=False)


def parse_since(value: str) -> str:
    """``--since``: a date (``YYYY-MM-DD``) or an ISO 8601 time, with or without an offset
    (none = UTC), in GitHub's format; a :class:`UserError` otherwise."""
    from datetime import datetime, timezone

    from pipeline.crawl.backend import format_time

    text = value.strip()
    try:
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise UserError(f"--since {value!r}: not a date (use YYYY-MM-DD or 2024-01-31T12:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return format_time(dt)


def check_api_url(value: str) -> str:
    """``--api-url``: an http(s) URL with a host; a :class:`UserError` otherwise."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UserError(f"--api-url {value!r}: not an http(s) API base URL (e.g. https://api.github.com "
                        "or http://127.0.0.1:8765)")
    return value


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the `mine` app."""

    @app.command("crawl")
    def crawl_cmd(
        source: Optional[list[str]] = typer.Option(None, "--source", metavar="NAME", help="Crawl only this source (repeatable); default all."),
        sources_file: Optional[Path] = typer.Option(None, "--sources", metavar="FILE", help="Sources YAML (default: pipeline/sources.yaml)."),
        api_url: str = typer.Option("https://api.github.com", "--api-url", metavar="URL", help="GitHub REST API base URL (e.g. an emulator)."),
        db: Optional[Path] = typer.Option(None, "--db", metavar="PATH", help="SQLite store (default data/mine.db). Its folder must exist (data/ is created); a file that is not a mine store is refused, untouched."),
        since: Optional[str] = typer.Option(None, "--since", metavar="DATE", help="Fetch issues updated since DATE (YYYY-MM-DD, or ISO 8601; UTC unless it has an offset) instead of from the high-water mark (e.g. a backfill); later runs continue from the high-water mark."),
        full: bool = typer.Option(False, "--full", help="List every issue again (about one request per 100 issues; unchanged issues cost no timeline request) and drop stored issues no longer listed: reopened, relabelled, deleted or transferred ones, which the incremental listing cannot see. E.g. once a week. Refuses to drop more than 20% of a source's issues (see --allow-removals)."),
        allow_removals: bool = typer.Option(False, "--allow-removals", help="With --full: drop the issues no longer listed even when they are more than 20% of a source's stored issues."),
        token: Optional[list[str]] = typer.Option(None, "--token", metavar="TOKEN", help="GitHub token; repeat for a pool (each request uses the token with the most budget left). Default: $GITHUB_TOKENS (comma-separated) and $GITHUB_TOKEN, preferable: a --token value shows in the process list. Never printed, logged or stored.", show_default=False),
        max_wait: Optional[float] = typer.Option(None, "--max-wait", min=0, metavar="SECONDS", help="Longest rate-limit wait in seconds; beyond it stop cleanly (exit 3) and resume next run. Default: wait as long as GitHub asks, with a countdown."),
        concurrency: int = typer.Option(4, "--concurrency", min=1, max=32, metavar="N", help="Timelines fetched in parallel."),
        fmt: str = typer.Option("text", "--format", metavar="text|json", help="Summary format: text or json (error lines then carry full URLs)."),
        backoff_base: float = typer.Option(1.0, "--backoff-base", hidden=True, help="First retry delay in seconds (tests)."),
        max_attempts: int = typer.Option(6, "--max-attempts", min=1, metavar="N", help="Attempts per request on 5xx, connection errors and malformed bodies."),
    ) -> None:
        """Crawl converter issues and their timelines from GitHub into the store (incremental, resumable).

        The summary goes to stdout, errors to stderr. Exit codes: 0 done, 1 a source failed after
        retries, 2 bad input or refused (an unusable --db or --api-url, an unknown label, a token
        GitHub refuses, --full removals over 20%), 3 stopped by --max-wait (state saved; run
        again to resume)."""
        from pipeline.crawl.client import ApiUnusable, GitHubClient, brief, collect_tokens
        from pipeline.crawl.crawler import crawl
        from pipeline.sources import get_source, load_sources
        from pipeline.store.db import open_store

        if fmt not in ("text", "json"):
            raise UserError(f"--format {fmt!r}: use text or json")
        if full and since:
            raise UserError("--full and --since: choose one (--full lists from the start)")
        if allow_removals and not full:
            raise UserError("--allow-removals only applies to --full (an incremental run removes only issues it sees change)")
        check_api_url(api_url)
        all_sources = load_sources(sources_file)
        chosen = [get_source(n, all_sources) for n in dict.fromkeys(source)] if source else all_sources
        since_norm = parse_since(since) if since else None
        tokens = collect_tokens(token, os.environ)
        err = Console(stderr=True, highlight=False)
        conn = open_store(db)
        if not tokens:
            err.print("[yellow]warning:[/] no GitHub token (GITHUB_TOKEN or --token): unauthenticated requests "
                      "are limited to 60 an hour; the crawl will wait for resets (or stop with --max-wait).",
                      soft_wrap=True)
        try:
            with RichProgress(err) as prog:
                client = GitHubClient(api_url, tokens, max_wait=max_wait, on_wait=prog.wait,
                                      backoff_base=backoff_base, max_attempts=max_attempts)
                prog.cancelled = client.cancelled
                summary = crawl(conn, chosen, client, since=since_norm, full=full, allow_removals=allow_removals,
                                concurrency=concurrency, progress=prog)
        except KeyboardInterrupt:
            # every stored issue is whole and the resume point is saved with it
            err.print("interrupted: what was stored is kept; run the same command again to resume",
                      soft_wrap=True, markup=False)
            raise typer.Exit(130) from None
        except ApiUnusable as e:
            raise UserError(str(e) if fmt == "json" else brief(str(e))) from None
        finally:
            conn.close()
        if fmt == "json":
            sys.stdout.write(json.dumps(summary.to_dict(), indent=2) + "\n")
        else:
            _print_summary(Console(highlight=False), summary)
        _print_problems(err, summary, {s.name: s.repo for s in chosen}, full_urls=fmt == "json")
        if summary.refused:
            raise typer.Exit(UserError.exit_code)
        if summary.partial:
            raise typer.Exit(EXIT_PARTIAL)
        if summary.errors:
            raise typer.Exit(EXIT_ERROR)

    @app.command("status")
    def status_cmd(
        db: Optional[Path] = typer.Option(None, "--db", help="SQLite store (default data/mine.db)."),
        sources_file: Optional[Path] = typer.Option(None, "--sources", help="Sources YAML (default: pipeline/sources.yaml)."),
        fmt: str = typer.Option("text", "--format", help="text or json."),
    ) -> None:
        """Per source: stored issues, issues with a timeline, last crawl time, high-water mark."""
        from rich import box
        from rich.table import Table

        from pipeline.sources import load_sources
        from pipeline.store.crawlstore import source_status
        from pipeline.store.db import open_store

        if fmt not in ("text", "json"):
            raise UserError(f"--format {fmt!r}: use text or json")
        conn = open_store(db, must_exist=True)
        data = source_status(conn, [s.name for s in load_sources(sources_file)])
        conn.close()
        if fmt == "json":
            sys.stdout.write(json.dumps({"sources": data}, indent=2) + "\n")
            return
        # no outer border or edge: the two timestamps fit whole in 80 columns (a cron log), six sources too
        table = Table(title="store status", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        for col in ("source", "issues", "timelines", "last crawl", "high-water mark"):
            table.add_column(col, no_wrap=True)
        for name, d in data.items():
            table.add_row(name, str(d["issues"]), str(d["timelines"]), d["last_crawl"] or "-", d["high_water"] or "-")
        Console(highlight=False).print(table)
