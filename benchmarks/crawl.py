"""Crawl benchmark against the GitHub emulator: request cost and wall time of the crawler.

Measures, on a fresh store:
1. the first (full) crawl: requests spent, requests per stored issue, wall time;
2. a second run with nothing changed: requests and wall time;
3. a run after ``--touch-pct`` % of each repository's issues were touched (new ``updated_at``
   and one new timeline event): requests, timelines fetched and wall time.

Each is printed next to the floor it is measured against: one listing page per 100 issues
plus one timeline request per issue (first crawl); one listing request per source (no change);
that plus one timeline request per touched relevant issue (touched run).

The emulator runs in this process on 127.0.0.1 in a background thread (``run_emulator``);
request counts come from the emulator's own counter (``/_emulator/stats``).

    .venv/bin/python benchmarks/crawl.py                      # 2,000 issues per repo, 20 ms latency
    .venv/bin/python benchmarks/crawl.py --issues 300 --latency-ms 5   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.crawl.client import GitHubClient  # noqa: E402
from pipeline.crawl.crawler import crawl  # noqa: E402
from pipeline.emulator.server import EmulatorConfig, run_emulator  # noqa: E402
from pipeline.sources import load_sources  # noqa: E402
from pipeline.store import connect  # noqa: E402


def _run(db: Path, url: str, concurrency: int, emu) -> dict:
    before = int(emu.stats()["requests"])
    conn = connect(db)
    t0 = time.perf_counter()
    summary = crawl(conn, load_sources(), GitHubClient(url, backoff_base=0.05), concurrency=concurrency)
    wall = time.perf_counter() - t0
    conn.close()
    if summary.errors or summary.partial:
        raise SystemExit(f"crawl did not complete: {summary.errors or summary.stop_reason}")
    tot = summary.totals()
    return {"requests": int(emu.stats()["requests"]) - before, "wall_s": round(wall, 2),
            "not_modified": summary.not_modified, **tot}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--issues", type=int, default=2000, help="issues per repository (default 2000)")
    ap.add_argument("--latency-ms", type=int, default=20, help="emulator latency per request (default 20)")
    ap.add_argument("--concurrency", type=int, default=4, help="timeline fetches in parallel (default 4)")
    ap.add_argument("--touch-pct", type=float, default=1.0, help="percent of issues touched for run 3 (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)

    cfg = EmulatorConfig(seed=args.seed, issues=args.issues, latency_ms=args.latency_ms, rate_limit=10**9)
    sources = load_sources()
    with tempfile.TemporaryDirectory() as tmp, run_emulator(cfg) as emu:
        db = Path(tmp) / "bench.db"
        first = _run(db, emu.url, args.concurrency, emu)
        conn = connect(db)
        stored = {s.name: conn.execute("SELECT COUNT(*) FROM issues WHERE source = ?", (s.name,)).fetchone()[0]
                  for s in sources}
        before = dict(conn.execute("SELECT repo || '#' || number, updated_at FROM issues").fetchall())
        conn.close()
        issues = sum(stored.values())
        first_floor = sum(math.ceil(n / 100) + n for n in stored.values())
        second = _run(db, emu.url, args.concurrency, emu)
        third_nochange = _run(db, emu.url, args.concurrency, emu)
        k = max(1, round(args.issues * args.touch_pct / 100))
        for s in sources:
            emu.touch(s.repo, k)
        touched = _run(db, emu.url, args.concurrency, emu)
        conn = connect(db)
        after = dict(conn.execute("SELECT repo || '#' || number, updated_at FROM issues").fetchall())
        conn.close()
        moved = sum(1 for key, v in after.items() if before.get(key) != v)

    figures = {
        "config": {"issues_per_repo": args.issues, "latency_ms": args.latency_ms, "concurrency": args.concurrency,
                   "touched_per_repo": k},
        "stored_issues": stored,
        "first": {**first, "requests_per_issue": round(first["requests"] / max(1, issues), 4),
                  "timeline_requests_per_issue": round((first["requests"] - first["listing_pages"]) / max(1, issues), 4),
                  "floor": first_floor},
        "no_change": {**second, "floor": len(sources)},
        "no_change_again": {**third_nochange, "floor": len(sources)},
        "touched": {**touched, "relevant_touched": moved, "floor": len(sources) + moved},
    }
    print(f"emulator: {args.issues} issues per repo (+ pull requests), {args.latency_ms} ms latency, "
          f"concurrency {args.concurrency}; stored {issues} relevant issues {stored}")
    print(f"{'run':<18}{'requests':>9}{'floor':>7}{'req/issue':>11}{'pages':>7}{'timelines':>11}{'304s':>6}{'wall s':>9}")
    for name, f in (("first crawl", figures["first"]), ("no change", figures["no_change"]),
                    ("no change (again)", figures["no_change_again"]), (f"{args.touch_pct:g}% touched", figures["touched"])):
        rpi = f"{f['requests'] / max(1, issues):.4f}" if name == "first crawl" else "-"
        print(f"{name:<18}{f['requests']:>9}{f['floor']:>7}{rpi:>11}{f['listing_pages']:>7}{f['timelines']:>11}{f['not_modified']:>6}{f['wall_s']:>9.2f}")
    print("floor: first = one listing page per 100 issues + one timeline per issue; no change = one listing "
          "request per source; touched = that + one timeline per touched relevant issue")
    f = figures["first"]
    print(f"first crawl: {f['timeline_requests_per_issue']:.4f} requests per issue beyond the {f['listing_pages']} "
          f"listing pages (timelines over 100 events take a second page); listing pages include pull requests "
          f"and excluded issues, which GitHub lists too")
    if args.json:
        print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
