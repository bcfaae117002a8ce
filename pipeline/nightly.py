"""The nightly run (``mine nightly``): crawl incrementally, filter, classify what changed, report.

One run:

1. crawls every source incrementally (ETag-cached first pages, ``since`` high-water marks: a
   run when nothing changed costs a couple of requests);
2. finds the issues that are new or changed since the previous run: it compares the store
   (url -> ``updated_at``) with the state the previous run left in ``seen.json`` in the output
   folder, so issues crawled in between (a manual ``mine crawl``, a run that failed before its
   summary) are still reported once; the first run compares with the store as it was before
   its own crawl;
3. takes the trained model the labels call current (the shipped one, ``data/model`` from
   ``mine train``, or a retrain when the labels say one is due, cached beside the store; see
   :mod:`pipeline.classify.resolve`), stores its predictions for the changed issues in
   ``predictions``;
4. writes the report (``report.html``, ``report.json``, ``report.md`` and every table and
   figure) over every filtered issue (``--from both``: human labels where they exist, corrected
   estimates for the rest), and the change summary (``changes.md``, ``changes.json``): new and
   updated issues with their predicted stage and symptom, and the shifts of the shares since the
   previous run, kept in ``history.json`` in the output folder.

Exit codes: 0 success, 3 partial (rate limit reached; the crawl resumes next run; the report
is still written from what the store holds), 1 failure (a source failed).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import urlsplit

import typer

EXIT_OK, EXIT_FAILURE, EXIT_PARTIAL = 0, 1, 3
HISTORY_FILE = "history.json"
SEEN_FILE = "seen.json"  # url -> updated_at of every issue the last completed run reported on
HISTORY_KEEP = 400  # runs kept in history.json (about a year of nights)
SHIFT_MIN_PP = 0.5  # share changes smaller than this are not listed


@dataclass
class NightlyResult:
    """What one nightly run did (also written as ``changes.json``)."""

    run_at: str
    exit_code: int = EXIT_OK
    requests: int = 0
    not_modified: int = 0
    partial: bool = False
    errors: list[str] = field(default_factory=list)
    new: list[dict] = field(default_factory=list)       # new relevant issues
    updated: list[dict] = field(default_factory=list)   # relevant issues changed since the last run
    filtered: int = 0
    source: str = "both"
    shifts: list[dict] = field(default_factory=list)
    previous_run: str | None = None
    report: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _snapshot(conn) -> dict[str, str | None]:
    return {r[0]: r[1] for r in conn.execute("SELECT url, updated_at FROM issues WHERE is_pull = 0")}


def _shares(rep) -> dict[str, dict[str, float]]:
    return {dim: {r["category"]: r["share"]["total"] for r in rep.tables.get(dim, [])}
            for dim in ("stage", "symptom", "cause") if dim in rep.tables}


def share_shifts(prev: dict | None, cur: dict, min_pp: float = SHIFT_MIN_PP) -> list[dict]:
    """Categories whose total share moved by at least ``min_pp`` percentage points, largest first."""
    if not prev:
        return []
    out = []
    for dim, cats in cur.items():
        before_cats = prev.get(dim, {})
        # a category present only before (e.g. now merged into 'other') moved to 0
        for cat in [*cats, *(c for c in before_cats if c not in cats)]:
            share, before = cats.get(cat, 0.0), before_cats.get(cat, 0.0)
            delta = 100 * (share - before)
            if abs(delta) >= min_pp:
                out.append({"dimension": dim, "category": cat, "before": before, "after": share,
                            "delta_pp": round(delta, 2)})
    return sorted(out, key=lambda d: -abs(d["delta_pp"]))


def load_seen(out_dir: Path) -> dict[str, str | None] | None:
    """The store state (url -> ``updated_at``) the previous completed run reported on; ``None`` if unknown."""
    p = out_dir / SEEN_FILE
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # damaged: fall back to the store as it was before this run's crawl
    return data if isinstance(data, dict) else None


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file (a killed run never leaves half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_history(out_dir: Path) -> list[dict]:
    p = out_dir / HISTORY_FILE
    if not p.is_file():
        return []
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return []  # a damaged history only loses the shift comparison
    return data if isinstance(data, list) else []


def run_nightly(
    db: Path | str,
    out_dir: Path | str,
    *,
    api_url: str = "https://api.github.com",
    token: str | list[str] | None = None,
    label_files: Sequence[Path | str] | None = None,
    max_wait: float | None = 600.0,
    bootstrap: int = 500,
    concurrency: int = 4,
    model_path: Path | str | None = None,
    validation: dict | None = None,
    log=print,
) -> NightlyResult:
    """One nightly run (see the module docstring); never raises for crawl trouble (see ``exit_code``)."""
    from pipeline.classify.data import default_label_files
    from pipeline.crawl.client import GitHubClient
    from pipeline.crawl.crawler import crawl
    from pipeline.errors import UserError
    from pipeline.label_files.files import read_many
    from pipeline.report.commands import write_report_files
    from pipeline.report.estimate import load_store_data
    from pipeline.report.render import render
    from pipeline.report.trends import full_report
    from pipeline.sources import load_sources
    from pipeline.store.db import open_store

    # bad input fails here, before any request is spent (UserError: one line, exit 2)
    if urlsplit(api_url).scheme not in ("http", "https") or not urlsplit(api_url).netloc:
        raise UserError(f"--api-url {api_url!r}: not an http(s) URL (e.g. https://api.github.com)")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: --out must be a folder, this is a file")
    labels = read_many(list(label_files) if label_files else default_label_files())
    out.mkdir(parents=True, exist_ok=True)
    res = NightlyResult(run_at=datetime.now(UTC).isoformat(timespec="seconds"))
    conn = open_store(db)  # an unusable --db is a one-line error, before any request
    seen = load_seen(out)
    before = seen if seen is not None else _snapshot(conn)

    # 1. crawl
    client = GitHubClient(api_url, token or None, max_wait=max_wait)
    summary = crawl(conn, load_sources(), client, concurrency=concurrency)
    res.requests, res.not_modified = summary.requests, summary.not_modified
    res.partial, res.errors = summary.partial, list(summary.errors)
    log(f"crawl: {summary.requests} requests ({summary.not_modified} not modified)"
        + (" - partial: rate limit reached, resumable" if summary.partial else ""))

    # 2. what changed
    after = _snapshot(conn)
    new_urls = sorted(u for u in after if u not in before)
    upd_urls = sorted(u for u in after if u in before and after[u] != before[u])
    from pipeline.sample.filter import filtered_issues

    kept = {r["url"]: r for r in filtered_issues(conn)}
    res.filtered = len(kept)

    # 3. the model, predictions for the changed issues, estimates
    data = None
    predicted: dict[str, dict[str, str]] = {}
    try:
        data = load_store_data(conn, labels, model_path=model_path, cache_dir=Path(db).parent / "models",
                               log=log) if kept else None
    except UserError as e:
        # said once, in the change summary
        res.notes.append(f"no predictions ({e}): the report counts the {len(labels)} human-labelled issues only")
    if data is not None:
        predicted = _classify_changed(conn, data, new_urls + upd_urls)
        res.notes.append(f"classifier: {data.evidence.model_note}")
        res.source = "both"
    else:
        res.source = "gold"
    info = {u: conn.execute("SELECT url, source, title FROM issues WHERE url = ?", (u,)).fetchone() for u in new_urls + upd_urls}

    def describe(u: str) -> dict:
        row = info[u]
        p = predicted.get(u, {})
        return {"url": u, "converter": row["source"], "title": row["title"] or "", "kept": u in kept,
                "stage": p.get("stage", ""), "symptom": p.get("symptom", "")}

    res.new = [describe(u) for u in new_urls]
    res.updated = [describe(u) for u in upd_urls]

    # 4. report + change summary
    rep, trends, _ = full_report(labels, res.source, conn if data is not None or kept else None,
                                 bootstrap=bootstrap, data=data)
    history = load_history(out)
    cur = _shares(rep)
    prev = next((h for h in reversed(history) if h.get("source") == res.source), None)
    res.previous_run = prev.get("run_at") if prev else None
    res.shifts = share_shifts(prev.get("shares") if prev else None, cur)
    changes = change_lines(res)
    shown = [{**d, "stage": _display("stage", d["stage"]), "symptom": _display("symptom", d["symptom"])}
             for d in res.new + res.updated]
    write_report_files(rep, trends, out, changes=changes, new_issues=shown, validation=validation,
                       title="ONNX converter failures: nightly report")
    (out / "report.md").write_text(render(rep.with_tables({**rep.tables, **trends}), "markdown"), encoding="utf-8")
    res.report = str(out / "report.html")
    if summary.partial:
        res.exit_code = EXIT_PARTIAL
    elif summary.errors:
        res.exit_code = EXIT_FAILURE
    (out / "changes.json").write_text(json.dumps(res.to_dict(), indent=2) + "\n", encoding="utf-8")
    (out / "changes.md").write_text("# Changes since the previous run\n\n" + "\n".join(f"- {c}" for c in changes)
                                    + "\n" + _issue_lines(res), encoding="utf-8")
    history.append({"run_at": res.run_at, "source": res.source, "n": rep.n, "filtered": res.filtered,
                    "new": len(res.new), "updated": len(res.updated), "requests": res.requests, "shares": cur})
    (out / HISTORY_FILE).write_text(json.dumps(history[-HISTORY_KEEP:], indent=1) + "\n", encoding="utf-8")
    # last: what this run reported on; the next run's "since the previous run" starts here
    _write_atomic(out / SEEN_FILE, json.dumps(after, sort_keys=True) + "\n")
    conn.close()
    return res


def _display(dim: str, cat: str) -> str:
    from pipeline.codebook import load_codebook
    from pipeline.report.render import category_name

    return category_name(load_codebook(), dim, cat) if cat else ""


def _classify_changed(conn, data, urls: list[str]) -> dict[str, dict[str, str]]:
    """Store the model's predictions of ``urls`` (table ``predictions``); return the top category per dimension."""
    from pipeline.classify.embed import Embedder
    from pipeline.classify.predict import classify_issues

    if not urls:
        return {}
    model = data.evidence.model
    classify_issues(conn, model, Embedder(), urls, progress=False)
    got: dict[str, dict[str, str]] = {}
    marks = ",".join("?" for _ in urls)
    for u, dim, cat in conn.execute(
            f"SELECT url, dimension, category FROM predictions WHERE model_id = ? AND url IN ({marks})",
            [model.model_id, *urls]):
        got.setdefault(u, {})[dim] = cat
    return got


def change_lines(res: NightlyResult) -> list[str]:
    """The change summary in a few sentences."""
    lines = [f"{len(res.new)} new and {len(res.updated)} updated relevant issue(s) since the previous run "
             f"({res.requests} API requests, {res.not_modified} answered 'not modified'); "
             f"{res.filtered} issues pass the filter."]
    if res.partial:
        lines.append("The crawl stopped at the rate limit: it resumes on the next run (exit code 3).")
    lines += [f"Crawl error: {e}" for e in res.errors]
    if res.previous_run is None:
        lines.append("No previous run to compare shares with.")
    elif not res.shifts:
        lines.append(f"No share moved by {SHIFT_MIN_PP} percentage points or more since {res.previous_run}.")
    else:
        lines.append(f"Share shifts since {res.previous_run}: " + "; ".join(
            f"{s['dimension']} {_display(s['dimension'], s['category'])} {100 * s['before']:.1f}% -> "
            f"{100 * s['after']:.1f}% ({s['delta_pp']:+.1f} pp)" for s in res.shifts[:8]))
    lines += res.notes
    return lines


def issue_line(d: dict) -> str:
    """One changed issue for the terminal: URL, predicted stage and symptom (display names), filter verdict."""
    return (f"  {d['url']}  stage: {_display('stage', d['stage']) or '-'}  symptom: {_display('symptom', d['symptom']) or '-'}"
            + ("" if d["kept"] else "  (not kept by the filter)"))


def _issue_lines(res: NightlyResult) -> str:
    rows = [("new", d) for d in res.new] + [("updated", d) for d in res.updated]
    if not rows:
        return ""
    out = ["", "| change | issue | converter | kept by filter | predicted stage | predicted symptom |",
           "|---|---|---|---|---|---|"]
    for kind, d in rows:
        out.append(f"| {kind} | {d['url']} | {d['converter']} | {'yes' if d['kept'] else 'no'} | "
                   f"{_display('stage', d['stage'])} | {_display('symptom', d['symptom'])} |")
    return "\n".join(out) + "\n"


def register(app: typer.Typer) -> None:
    """Add ``mine nightly`` to the app."""

    @app.command("nightly")
    def nightly_cmd(
        api_url: str = typer.Option("https://api.github.com", "--api-url", help="GitHub API base URL (e.g. the emulator's http://127.0.0.1:PORT)."),
        db: Optional[Path] = typer.Option(None, "--db", help="The store [default: data/mine.db]."),
        out: Path = typer.Option(Path("data/nightly"), "--out", help="Folder of the report, change summary and history.json."),
        label_files: Optional[list[Path]] = typer.Option(None, "--labels", help="Label files to train on and to count as labelled [default: labels/study.csv]."),
        max_wait: float = typer.Option(600.0, "--max-wait", help="Longest rate-limit wait (seconds) before stopping as partial (exit 3)."),
        bootstrap: int = typer.Option(500, "--bootstrap", min=0, help="Bootstrap replicates of the intervals."),
        validation: Optional[Path] = typer.Option(None, "--validation", help="JSON of `mine validate-estimates --save`, shown in the report's 'how the numbers were made'."),
        model_dir: Optional[Path] = typer.Option(None, "--model", help="Trained model folder [default: data/model if current for the labels, else the shipped model; a retrain when due is cached beside the store]."),
    ) -> None:
        """Crawl incrementally, filter, classify what is new, write the report and a change summary.

        Writes report.html, report.json, report.md, changes.md, changes.json and history.json into
        --out. Tokens come from GITHUB_TOKENS (comma-separated) and GITHUB_TOKEN, never printed. Exit codes: 0 success, 3 partial
        (rate limit reached, resumable), 1 failure.
        """
        from rich.console import Console

        from pipeline.paths import default_db
        from pipeline.report.commands import load_validation

        console = Console(highlight=False, soft_wrap=True)  # cron logs: one line per message, URLs unbroken
        try:
            from pipeline.crawl.client import collect_tokens

            res = run_nightly(db or default_db(), out, api_url=api_url, token=collect_tokens(None, os.environ),
                              label_files=label_files, max_wait=max_wait, bootstrap=bootstrap, model_path=model_dir,
                              validation=load_validation(validation), log=lambda m: console.print(m, markup=False))
        except Exception as e:  # a failure of the run itself: one line, exit 1 (user errors keep exit 2)
            from pipeline.errors import UserError

            if isinstance(e, UserError):
                raise
            console.print(f"nightly failed: {type(e).__name__}: {e}", markup=False)
            raise typer.Exit(EXIT_FAILURE)
        for line in change_lines(res):
            console.print(line, markup=False)
        for d in res.new + res.updated:
            console.print(issue_line(d), markup=False)
        console.print(f"report: {res.report}", markup=False)
        raise typer.Exit(res.exit_code)
