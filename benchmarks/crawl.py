"""Crawl benchmark against the GitHub emulator: request cost and wall time of the crawler.

Measures, on a fresh store:
1. the first (full) crawl: requests spent, requests per stored issue, wall time;
2. a second run with nothing changed: requests and wall time;
3. a third run with nothing changed (its listing pages now answered 304);
4. a run after ``--touch-pct`` % of each repository's issues were touched (new ``updated_at``
   and one new timeline event): requests, timelines fetched and wall time.

Each is printed next to the floor it is measured against (the REST floor): one listing page per
100 stored issues plus one timeline request per issue (first crawl); one listing request per
source (no change); that plus one timeline request per touched relevant issue (touched run).

``--sources study`` crawls the study's two sources (torch.onnx, tf2onnx) with ``--issues``
synthetic issues per repository (default 2,000). ``--sources all`` crawls the six converters of
``pipeline/sources.yaml`` with repositories at about their real sizes (:data:`REAL_SIZES`),
unless ``--issues`` is given.

The emulator runs in this process on 127.0.0.1 in a background thread (``run_emulator``);
request counts come from the emulator's own counter (``/_emulator/stats``).

    .venv/bin/python benchmarks/crawl.py                      # study sources, 2,000 issues per repo, 20 ms
    .venv/bin/python benchmarks/crawl.py --sources all        # six converters at realistic sizes, 20 ms
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

STUDY = ("torch.onnx", "tf2onnx")
# Synthetic issues per repository for `--sources all` (pull requests, a quarter as many, come on
# top), the order of magnitude of the real repositories: pytorch/pytorch's `module: onnx` label
# holds several thousand issues (the study found 959 closed ones relevant in 2022; the emulator
# labels 72% of its pytorch issues `module: onnx`, so 5,000 issues are about 3,600 labelled and
# 2,800 closed relevant ones); the other five about half their highest issue number in
# ../shared/github-issues (numbers count pull requests too): tensorflow-onnx #2412, Paddle2ONNX
# #1641, sklearn-onnx #1194, onnx-tensorflow #1082, onnx2torch #249.
REAL_SIZES = {
    "pytorch/pytorch": 5000,
    "onnx/tensorflow-onnx": 1200,
    "PaddlePaddle/Paddle2ONNX": 800,
    "onnx/sklearn-onnx": 600,
    "onnx/onnx-tensorflow": 550,
    "ENOT-AutoDL/onnx2torch": 125,
}


def _run(db: Path, url: str, concurrency: int, emu, sources) -> dict:
    before = int(emu.stats()["requests"])
    conn = connect(db)
    t0 = time.perf_counter()
    summary = crawl(conn, sources, GitHubClient(url, backoff_base=0.05), concurrency=concurrency)
    wall = time.perf_counter() - t0
    conn.close()
    if summary.errors or summary.partial:
        raise SystemExit(f"crawl did not complete: {summary.errors or summary.stop_reason}")
    tot = summary.totals()
    per_source = {name: {"listing_pages": s.listing_pages, "timelines": s.timelines}
                  for name, s in summary.sources.items()}
    return {"requests": int(emu.stats()["requests"]) - before, "wall_s": round(wall, 2),
            "not_modified": summary.not_modified, **tot, "per_source": per_source}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sources", choices=("study", "all"), default="study",
                    help="study: torch.onnx and tf2onnx; all: the six converters at realistic sizes (default study)")
    ap.add_argument("--issues", type=int, default=None,
                    help="synthetic issues per repository (default 2000 with --sources study, REAL_SIZES with all)")
    ap.add_argument("--latency-ms", type=int, default=20, help="emulator latency per request (default 20)")
    ap.add_argument("--concurrency", type=int, default=4, help="timeline fetches in parallel (default 4)")
    ap.add_argument("--touch-pct", type=float, default=1.0, help="percent of issues touched for run 4 (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args(argv)

    sources = [s for s in load_sources() if args.sources == "all" or s.name in STUDY]
    issues = args.issues if args.issues is not None else (None if args.sources == "all" else 2000)
    sizes = {s.repo: issues if issues is not None else REAL_SIZES.get(s.repo, 500) for s in sources}
    # repositories no crawled source covers stay empty
    cfg = EmulatorConfig(seed=args.seed, issues=0, repo_issues=sizes, latency_ms=args.latency_ms,
                         rate_limit=10**9)
    with tempfile.TemporaryDirectory() as tmp, run_emulator(cfg) as emu:
        db = Path(tmp) / "bench.db"
        first = _run(db, emu.url, args.concurrency, emu, sources)
        conn = connect(db)
        stored = {s.name: conn.execute("SELECT COUNT(*) FROM issues WHERE source = ?", (s.name,)).fetchone()[0]
                  for s in sources}
        before = dict(conn.execute("SELECT repo || '#' || number, updated_at FROM issues").fetchall())
        conn.close()
        n_stored = sum(stored.values())
        # + one lookup per label a source names: the first crawl checks each exists before relying on it
        labels = {s.name: len(s.labels) + len(s.exclude_labels) for s in sources}
        floors = {name: math.ceil(n / 100) + n + labels[name] for name, n in stored.items()}
        second = _run(db, emu.url, args.concurrency, emu, sources)
        third_nochange = _run(db, emu.url, args.concurrency, emu, sources)
        touched_k = {s.repo: max(1, round(sizes[s.repo] * args.touch_pct / 100)) for s in sources}
        for s in sources:
            emu.touch(s.repo, touched_k[s.repo])
        touched = _run(db, emu.url, args.concurrency, emu, sources)
        conn = connect(db)
        after = dict(conn.execute("SELECT repo || '#' || number, updated_at FROM issues").fetchall())
        conn.close()
        moved = sum(1 for key, v in after.items() if before.get(key) != v)

    figures = {
        "config": {"sources": [s.name for s in sources], "issues_per_repo": sizes, "latency_ms": args.latency_ms,
                   "concurrency": args.concurrency, "touched_per_repo": touched_k},
        "stored_issues": stored,
        "first": {**first, "requests_per_issue": round(first["requests"] / max(1, n_stored), 4),
                  "timeline_requests_per_issue": round((first["requests"] - first["listing_pages"]) / max(1, n_stored), 4),
                  "floor": sum(floors.values()),
                  "floor_per_issue": round(sum(floors.values()) / max(1, n_stored), 4)},
        "no_change": {**second, "floor": len(sources)},
        "no_change_again": {**third_nochange, "floor": len(sources)},
        "touched": {**touched, "relevant_touched": moved, "floor": len(sources) + moved},
    }
    print(f"emulator: {args.latency_ms} ms latency, concurrency {args.concurrency}; "
          f"synthetic issues per repository (+ a quarter as many pull requests): "
          + ", ".join(f"{repo} {n}" for repo, n in sizes.items()))
    print(f"first crawl per source: {'source':<14}{'stored':>8}{'pages':>7}{'timelines':>11}{'floor':>8}")
    for name, n in stored.items():
        ps = first["per_source"][name]
        print(f"{'':<22}{name:<14}{n:>8}{ps['listing_pages']:>7}{ps['timelines']:>11}{floors[name]:>8}")
    print(f"{'run':<18}{'requests':>9}{'floor':>7}{'req/issue':>11}{'pages':>7}{'timelines':>11}{'304s':>6}{'wall s':>9}")
    for name, f in (("first crawl", figures["first"]), ("no change", figures["no_change"]),
                    ("no change (again)", figures["no_change_again"]), (f"{args.touch_pct:g}% touched", figures["touched"])):
        rpi = f"{f['requests'] / max(1, n_stored):.4f}" if name == "first crawl" else "-"
        print(f"{name:<18}{f['requests']:>9}{f['floor']:>7}{rpi:>11}{f['listing_pages']:>7}{f['timelines']:>11}{f['not_modified']:>6}{f['wall_s']:>9.2f}")
    print("floor: first = one listing page per 100 stored issues + one timeline per issue + one lookup per label "
          "a source names; no change = one listing "
          "request per source; touched = that + one timeline per touched relevant issue")
    f = figures["first"]
    print(f"first crawl: {n_stored} issues stored, {f['requests_per_issue']:.4f} requests per issue (floor "
          f"{f['floor_per_issue']:.4f}); {f['timeline_requests_per_issue']:.4f} per issue beyond the {f['listing_pages']} "
          f"listing pages (timelines over 100 events take a second page); listing pages include pull requests "
          f"and excluded issues, which GitHub lists too")
    print(f"no change: {figures['no_change']['requests']} requests for {len(sources)} sources "
          f"({figures['no_change']['requests'] / len(sources):.2f} per source); again: "
          f"{figures['no_change_again']['requests']} requests, {figures['no_change_again']['not_modified']} answered 304")
    if args.json:
        print(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
