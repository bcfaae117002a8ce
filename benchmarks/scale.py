"""Scale benchmark: a store of 10,000 issues crawled through the GitHub emulator, then every
command that reads it, timed and measured for peak memory in one run.

Steps (each command a subprocess of the installed ``mine``; peak memory is that process's own
``ru_maxrss`` from ``os.wait4``):

1. **build** (timed apart): writes a corpus file (JSONL, into the work folder, never the
   repository), starts ``mine emulate --no-synthetic --relevant-corpus FILE`` and runs
   ``mine crawl`` against it: a real HTTP crawl, one listing page per 100 issues plus one
   timeline request per issue (the emulator's rate limit lifted: GitHub's 5,000 requests an hour
   would make the build wait for a reset halfway).
2. ``mine classify`` **cold** (the store's ``embeddings`` and ``predictions`` emptied first) and
   **warm** (run again);
3. ``mine report --from both`` in each format of ``mine report --help`` (table, markdown, csv,
   latex, json, html), default 1,000 bootstrap replicates (``--bootstrap``);
4. ``mine nightly`` against an emulator serving ``--new`` (50) more issues, on a copy of the
   store: wall time, and the part after its crawl (from its ``crawl:`` log line);
5. ``mine label``: the page of an issue with a 100 kB body, fetched over HTTP (first load and
   the median of five more).

The corpus (how ``--issues`` issues are made):

- with ``../shared/github-issues`` (``MINE_SHARED_DIR``): its 780 real issues (150 study issues,
  630 of the six converters) as they are, plus variants of them up to ``--issues``: each
  variant copies a real issue of the same repository and gets its own number (from 500,000),
  a distinct title (the real one plus an environment note such as ``(torch 2.3, opset 17)``),
  a shuffled subset of its comments plus 0-3 comments of other issues of its repository, a
  creation day drawn uniformly from 2017-01-01 to 90 days ago, and a body lengthened with a
  folded log made of other real issues' text of the same repository;
- without it: the same variation over the emulator's synthetic issues of the six repositories.

Length distribution: the real excerpts are cut at about 1,500 characters, real threads are
longer. The body of each variant is lengthened to a log-normal target length (median 2,500
characters, sigma 1.0: a quarter above 4,900, 2% above 20,000), capped at GitHub's limit of
65,536 characters per body; one issue (the one the labelling page loads) has a 100 kB body.
Issues per converter follow the relevant issues of ``benchmarks/crawl.py --sources all``
(torch.onnx 56%, paddle2onnx 13%, tf2onnx 12%, sklearn-onnx 9%, onnx-tf 9%, onnx2torch 2%).
Every issue is served as the study sampled it (closed, with its source's labels), so all pass
the data-availability filter: ``mine classify`` classifies all of them that are not labelled.

    .venv/bin/python benchmarks/scale.py                           # 10,000 issues, in a temporary folder
    .venv/bin/python benchmarks/scale.py --keep /tmp/scale --json /tmp/scale/figures.json  # keep; reuse next time
    .venv/bin/python benchmarks/scale.py --issues 1000             # quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MINE = [str(ROOT / ".venv" / "bin" / "mine")] if (ROOT / ".venv" / "bin" / "mine").exists() else [sys.executable, "-m", "pipeline.cli"]
FORMATS = ("table", "markdown", "csv", "latex", "json", "html")
# relevant issues per source in benchmarks/crawl.py --sources all (the real repositories' proportions)
SHARES = {"pytorch/pytorch": 2829, "PaddlePaddle/Paddle2ONNX": 627, "onnx/tensorflow-onnx": 578,
          "onnx/sklearn-onnx": 444, "onnx/onnx-tensorflow": 434, "ENOT-AutoDL/onnx2torch": 97}
FRAMEWORK = {"pytorch/pytorch": "torch", "PaddlePaddle/Paddle2ONNX": "paddle", "onnx/tensorflow-onnx": "tf",
             "onnx/sklearn-onnx": "sklearn", "onnx/onnx-tensorflow": "onnx-tf", "ENOT-AutoDL/onnx2torch": "onnx2torch"}
BODY_MEDIAN, BODY_SIGMA, BODY_CAP = 2500, 1.0, 65536
BIG_BODY = 100_000
FIRST_NUMBER, NEW_NUMBER = 500_000, 900_000
TARGETS = {"classify cold": 120.0, "classify warm": 5.0, "report": 2.0, "nightly after crawl": 30.0}
MEMORY_TARGET_MB = 2048


# ------------------------------------------------------------------------------------ corpus

def _base_issues(shared: Path | None, seed: int) -> tuple[list[dict], str]:
    """The issues variants are made of: the real ones of ``shared/github-issues``, else synthetic ones."""
    files = [shared / "github-issues" / n for n in ("study-issues.jsonl", "converter-issues.jsonl")] if shared else []
    if files and all(f.is_file() for f in files):
        out = [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        return out, f"real: {len(out)} issues of {shared / 'github-issues'}"
    from pipeline.emulator.data import Dataset

    ds = Dataset(seed=seed, issues=150)
    out = []
    for repo in SHARES:
        for rec in ds.issues.get(repo, {}).values():
            if rec.is_pr:
                continue
            out.append({"url": f"https://github.com/{repo}/issues/{rec.number}", "repo": repo, "number": rec.number,
                        "title": rec.title, "state": "closed", "labels": list(rec.labels),
                        "created_at": date.fromtimestamp(rec.created_at).isoformat(), "author": rec.author,
                        "body": rec.body, "truncated": False,
                        "comments": [{"author": e.actor, "created_at": date.fromtimestamp(e.at).isoformat(),
                                      "body": e.data.get("body") or ""} for e in rec.events if e.kind == "commented"]})
    return out, f"synthetic: {len(out)} emulator issues (../shared/github-issues not found)"


def _log_block(pool: list[dict], rng: random.Random, need: int) -> str:
    """A folded log of about ``need`` characters made of other issues' text (as real long threads carry)."""
    parts, size = [], 0
    while size < need:
        src = rng.choice(pool)
        text = "\n".join(x for x in [src.get("body") or "", *(c["body"] for c in src["comments"])] if x)
        text = text.replace("```", "")
        if not text:
            continue
        parts.append(text)
        size += len(text) + 1
    return "\n\n<details><summary>Full log</summary>\n\n```\n" + "\n".join(parts)[:need] + "\n```\n</details>\n"


def _variant(base: dict, pool: list[dict], rng: random.Random, k: int, number: int, day: date,
             body_len: int) -> dict:
    fw = FRAMEWORK.get(base["repo"], "onnx")
    note = f"{fw} {1 + k % 3}.{k // 3 % 12}, opset {9 + k // 36 % 13}"
    comments = [c for c in base["comments"] if rng.random() < 0.7]
    rng.shuffle(comments)
    comments += [rng.choice(src["comments"]) for src in rng.sample(pool, min(len(pool), rng.randint(0, 3))) if src["comments"]]
    body = base.get("body") or ""
    if body_len > len(body):
        body += _log_block(pool, rng, body_len - len(body) - 60)
    later, offset = [], 0
    for _ in comments:  # days never go back (the corpus format checks it)
        offset = min(offset + rng.randint(0, 5), 60)
        later.append((day + timedelta(days=offset)).isoformat())
    return {"url": f"https://github.com/{base['repo']}/issues/{number}", "repo": base["repo"], "number": number,
            "title": f"{base['title']} ({note})", "state": "closed", "labels": list(base.get("labels") or []),
            "created_at": day.isoformat(), "author": base.get("author"), "body": body, "truncated": False,
            "comments": [{"author": c.get("author"), "created_at": d, "body": c["body"]} for c, d in zip(comments, later)]}


def make_corpus(n: int, new: int, seed: int, shared: Path | None) -> tuple[list[dict], list[dict], str, str]:
    """``(issues, new_issues, url of the 100 kB issue, description)``: ``n`` issues, then ``new`` later ones."""
    base, what = _base_issues(shared, seed)
    rng = random.Random(seed)
    by_repo: dict[str, list[dict]] = {}
    for b in base:
        by_repo.setdefault(b["repo"], []).append(b)
    keep = base if n >= len(base) else rng.sample(base, n)
    out = [dict(b, state="closed") for b in keep]
    extra = n - len(out)
    total = sum(SHARES.values())
    per_repo = {r: math.floor(extra * s / total) for r, s in SHARES.items()}
    per_repo["pytorch/pytorch"] += extra - sum(per_repo.values())
    start, end = date(2017, 1, 1), date.today() - timedelta(days=90)
    span = (end - start).days

    def make(repo: str, count: int, first_number: int, days: list[date]) -> list[dict]:
        pool = by_repo.get(repo) or base
        order = [pool[i % len(pool)] for i in range(count)]
        lens = [min(BODY_CAP, int(rng.lognormvariate(math.log(BODY_MEDIAN), BODY_SIGMA))) for _ in range(count)]
        return [_variant(b, pool, rng, i // len(pool), first_number + i, d, L)
                for i, (b, d, L) in enumerate(zip(order, sorted(days), lens))]

    for repo, count in per_repo.items():
        out += make(repo, count, FIRST_NUMBER, [start + timedelta(days=rng.randrange(span)) for _ in range(count)])
    recent = [date.today() - timedelta(days=rng.randint(1, 5)) for _ in range(new)]
    fresh = make("pytorch/pytorch", new, NEW_NUMBER, recent)
    # the labelling page's worst case: a 100 kB body (over GitHub's limit on purpose)
    big = next((x for x in out if x["number"] >= FIRST_NUMBER), out[0])
    big["body"] = (big["body"] or "") + _log_block(by_repo.get(big["repo"]) or base, rng, BIG_BODY)
    big["body"] = big["body"][:BIG_BODY]
    return out, fresh, big["url"], what


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------- processes

def _env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("GITHUB_TOKEN", None)
    env.pop("GITHUB_TOKENS", None)
    return env


# Each command runs under this launcher, a fresh small process: on Linux a child's ru_maxrss
# starts from its parent's resident size at fork (kept across exec), so a command forked straight
# from this benchmark (holding the corpus) would report at least the benchmark's size.
LAUNCH = r"""
import os, signal, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
signal.signal(signal.SIGTERM, lambda *a: p.send_signal(signal.SIGTERM))
_, status, usage = os.wait4(p.pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _launch(args: list[str], rss_file: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LAUNCH, str(rss_file), *MINE, *args], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)


def _peak_mb(rss_file: Path) -> float:
    return round(int(rss_file.read_text().split()[0]) / 1024, 1)


def _cpu_s(rss_file: Path) -> float:
    """User + system CPU seconds of the command (its share of a busy machine does not inflate it)."""
    return round(float(rss_file.read_text().split()[1]), 2)


def run(args: list[str], log: Path, *, on_line=None) -> dict:
    """Run ``mine ARGS`` to completion: wall seconds, exit code and the process's peak RSS (MB).

    ``on_line(line, seconds since start)`` sees each stdout line as it comes."""
    t0 = time.perf_counter()
    with log.open("w", encoding="utf-8") as fh:
        rss = log.with_suffix(".rss")
        p = _launch(args, rss)
        for line in p.stdout:
            fh.write(line)
            if on_line is not None:
                on_line(line, time.perf_counter() - t0)
        p.wait()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"mine {' '.join(args)} failed (exit {p.returncode}); see {log}:\n"
                         + "".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[-15:]))
    return {"wall_s": round(wall, 3), "cpu_s": _cpu_s(rss), "peak_mb": _peak_mb(rss)}


class Server:
    """A ``mine`` server subprocess (emulator or labelling tool) whose first URL line is its address."""

    def __init__(self, args: list[str], log: Path, pattern: str = r"(http://127\.0\.0\.1:\d+)"):
        self.log = log
        self.fh = log.open("w", encoding="utf-8")
        self.t0 = time.perf_counter()
        self.rss = log.with_suffix(".rss")
        self.p = _launch(args, self.rss)
        self.url = None
        for line in self.p.stdout:
            self.fh.write(line)
            m = re.search(pattern, line)
            if m:
                self.url = m.group(1)
                break
        if self.url is None:
            self.fh.close()
            raise SystemExit(f"mine {' '.join(args)} did not start; see {log}")
        self.ready_s = time.perf_counter() - self.t0
        # keep draining its output so it never blocks on a full pipe
        self.reader = threading.Thread(target=lambda: [self.fh.write(x) for x in self.p.stdout], daemon=True)
        self.reader.start()

    def stop(self) -> float:
        """Stop it (SIGTERM: a background job ignores SIGINT) and return its peak RSS in MB."""
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=60)
        finally:
            self.reader.join(timeout=5)
            self.fh.close()
        return _peak_mb(self.rss)


def _get(url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        size = len(r.read())
    return time.perf_counter() - t0, size


# -------------------------------------------------------------------------------------- steps

def build_store(work: Path, args, shared: Path | None) -> dict:
    """Write the corpus, crawl it through the emulator into ``work/scale.db`` (reused when it matches)."""
    db = work / "scale.db"
    meta_file = work / "build.json"
    want = {"issues": args.issues, "new": args.new, "seed": args.seed, "shared": bool(shared)}
    if db.exists() and meta_file.exists():
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("want") == want:
            meta["reused"] = True
            return meta
    for f in work.glob("scale.db*"):
        f.unlink()
    t0 = time.perf_counter()
    issues, fresh, big_url, what = make_corpus(args.issues, args.new, args.seed, shared)
    main_file, new_file = write_jsonl(issues, work / "corpus.jsonl"), write_jsonl(fresh, work / "corpus-new.jsonl")
    corpus_s = time.perf_counter() - t0
    lens = sorted(len(x["body"] or "") + sum(len(c["body"]) for c in x["comments"]) for x in issues)
    emu = Server(["emulate", "--port", "0", "--no-synthetic", "--rate-limit", "100000000", "--relevant-corpus", str(main_file)],
                 work / "emulate.log")
    try:
        crawl = run(["crawl", "--api-url", emu.url, "--db", str(db), "--concurrency", str(args.concurrency)],
                    work / "crawl.log")
        stats = json.loads(urllib.request.urlopen(emu.url + "/_emulator/stats").read())
    finally:
        emu_mb = emu.stop()
    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT COUNT(*) FROM issues WHERE is_pull = 0").fetchone()[0]
    conn.close()
    meta = {"want": want, "corpus": what, "corpus_s": round(corpus_s, 2), "emulator_ready_s": round(emu.ready_s, 2),
            "emulator_peak_mb": emu_mb, "crawl": crawl, "requests": stats.get("requests"), "stored": stored,
            "big_url": big_url, "new_file": str(new_file), "main_file": str(main_file),
            "thread_chars": {"median": lens[len(lens) // 2], "p90": lens[int(0.9 * len(lens))],
                             "max": lens[-1], "mean": round(sum(lens) / len(lens))},
            "reused": False}
    meta_file.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def _reset_classifier_cache(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM embeddings")
    conn.execute("DELETE FROM predictions")
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'text_parts'").fetchone():
        conn.execute("DELETE FROM text_parts")  # the text part cache (store migration 4)
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _copy_store(db: Path, to: Path) -> Path:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for f in to.parent.glob(to.name + "*"):
        f.unlink()
    shutil.copyfile(db, to)
    return to


def embedding_backend() -> str:
    """The backend the commands will embed with, as :class:`Embedder` chooses it (exporting the
    ONNX model here, once, if the cache lacks it, so that no timed command pays for the export)."""
    from pipeline.classify.embed import BACKEND_ENV, Embedder

    how = os.environ.get(BACKEND_ENV) or "automatic"
    return f"{Embedder().backend} ({BACKEND_ENV}: {how})"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--issues", type=int, default=10_000, help="issues in the store (default 10000)")
    ap.add_argument("--new", type=int, default=50, help="more issues the emulator serves for the nightly run (default 50)")
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (and reuse: a store built with the same settings is not rebuilt)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates of `mine report` (default 1000, its default)")
    ap.add_argument("--concurrency", type=int, default=4, help="crawl concurrency (default 4, the crawler's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", default="", help="comma-separated steps to skip: classify, report, nightly, label; "
                    "cold: keep the store's caches (one classify fills what a code change invalidated, then warm)")
    args = ap.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    from pipeline.paths import shared_dir

    shared = shared_dir() if (shared_dir() / "github-issues").is_dir() else None
    tmp = None
    if args.keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="mine-scale-")
        work = Path(tmp.name)
    else:
        work = args.keep
        work.mkdir(parents=True, exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    db = work / "scale.db"
    backend = embedding_backend()
    figures: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                     "embedding_backend": backend, "issues": args.issues, "bootstrap": args.bootstrap}
    print(f"work folder {work}; embedding backend {backend}", flush=True)
    t0 = time.perf_counter()
    build = build_store(work, args, shared)
    figures["build"] = build
    print(f"build: {build['stored']} issues stored ({build['corpus']}); "
          + ("reused" if build["reused"] else f"crawl {build['crawl']['wall_s']:.1f} s, {build['requests']} requests")
          + f" [{time.perf_counter() - t0:.0f} s]", flush=True)
    steps: dict[str, dict] = {}

    if "classify" not in skip and "cold" not in skip:
        _reset_classifier_cache(db)
        steps["classify cold"] = run(["classify", "--db", str(db)], logs / "classify-cold.log")
        print(f"classify cold: {steps['classify cold']['wall_s']:.1f} s", flush=True)
    elif "classify" not in skip:
        # caches kept: one run fills what a code change invalidated (e.g. text parts), then warm is warm
        steps["classify (filling caches)"] = run(["classify", "--db", str(db)], logs / "classify-fill.log")
        print(f"classify filling caches: {steps['classify (filling caches)']['wall_s']:.1f} s", flush=True)
    if "classify" not in skip:
        steps["classify warm"] = run(["classify", "--db", str(db)], logs / "classify-warm.log")
        print(f"classify warm: {steps['classify warm']['wall_s']:.1f} s", flush=True)
        figures["classify_output"] = [ln for ln in (logs / "classify-warm.log").read_text(encoding="utf-8").splitlines()
                                      if ln.startswith(("classified", "model:"))]
    if "report" not in skip:
        for fmt in FORMATS:
            steps[f"report {fmt}"] = run(["report", "--from", "both", "--db", str(db), "--format", fmt,
                                          "--bootstrap", str(args.bootstrap)], logs / f"report-{fmt}.log")
            print(f"report {fmt}: {steps[f'report {fmt}']['wall_s']:.1f} s", flush=True)
    if "nightly" not in skip:
        night_db = _copy_store(db, work / "nightly.db")
        out = work / "nightly"
        shutil.rmtree(out, ignore_errors=True)
        emu = Server(["emulate", "--port", "0", "--no-synthetic", "--rate-limit", "100000000", "--relevant-corpus", build["main_file"],
                      "--relevant-corpus", build["new_file"]], logs / "emulate-nightly.log")
        crawled_at: list[float] = []
        try:
            res = run(["nightly", "--api-url", emu.url, "--db", str(night_db), "--out", str(out)], logs / "nightly.log",
                      on_line=lambda line, s: crawled_at.append(s) if line.startswith("crawl:") and not crawled_at else None)
        finally:
            emu.stop()
        changes = json.loads((out / "changes.json").read_text(encoding="utf-8"))
        res["after_crawl_s"] = round(res["wall_s"] - crawled_at[0], 3) if crawled_at else None
        res["new_issues"] = len(changes["new"])
        steps["nightly"] = res
        print(f"nightly: {res['wall_s']:.1f} s, {res['new_issues']} new", flush=True)
    if "label" not in skip:
        queue = work / "label-queue.txt"
        queue.write_text(build["big_url"] + "\n", encoding="utf-8")
        labels_dir = work / "labels"
        shutil.rmtree(labels_dir, ignore_errors=True)
        labels_dir.mkdir()
        srv = Server(["label", "--rater", "bench", "--queue", str(queue), "--db", str(db), "--port", "0",
                      "--labels-dir", str(labels_dir)], logs / "label.log")
        try:
            first, size = _get(srv.url + "/item/0")
            again = [_get(srv.url + "/item/0")[0] for _ in range(5)]
        finally:
            peak = srv.stop()
        steps["label page (100 kB body)"] = {"wall_s": round(first, 3), "repeat_median_s": round(statistics.median(again), 3),
                                             "ready_s": round(srv.ready_s, 3), "page_bytes": size, "peak_mb": peak}
        print(f"label page: {first:.2f} s first, {statistics.median(again):.2f} s again", flush=True)
    figures["steps"] = steps
    _print_table(figures)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()
    return figures


def _target_of(name: str) -> float | None:
    if name.startswith("report"):
        return TARGETS["report"]
    return TARGETS.get(name)


def _print_table(figures: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    b = figures["build"]
    steps = figures["steps"]
    t = Table(title=f"{b['stored']} issues ({b['corpus']}); {figures['machine']['cpus']} cores; "
                    f"embeddings: {figures['embedding_backend']}; report bootstrap {figures['bootstrap']} replicates",
              title_justify="left")
    for col in ("step", "wall s", "CPU s", "target s", "of target", "peak MB", "memory <= 2 GB", "note"):
        t.add_column(col, justify="left" if col in ("step", "note") else "right")
    crawl = b["crawl"]
    t.add_row("build: crawl through the emulator", f"{crawl['wall_s']:.1f}", f"{crawl.get('cpu_s', '-')}", "-", "-",
              f"{crawl['peak_mb']:.0f}",
              "yes" if crawl["peak_mb"] <= MEMORY_TARGET_MB else "NO",
              f"{b['requests']} requests; corpus written in {b['corpus_s']} s; emulator {b['emulator_peak_mb']:.0f} MB"
              + ("; reused" if b["reused"] else ""))
    cold = steps.get("classify cold", {}).get("wall_s")
    for name, s in steps.items():
        target = _target_of(name)
        wall = s["wall_s"]
        note = ""
        if name == "classify warm" and cold:
            note = f"{wall / cold:.3f} x cold"
        if name == "nightly":
            target = TARGETS["nightly after crawl"]
            note = f"{s['new_issues']} new; after its crawl {s['after_crawl_s']:.1f} s"
            wall_for_target = s["after_crawl_s"]
        else:
            wall_for_target = wall
        if name.startswith("label"):
            note = f"ready {s['ready_s']:.2f} s; again {s['repeat_median_s']:.3f} s (median of 5); {s['page_bytes'] // 1024} kB page"
        ratio = f"{wall_for_target / target:.2f}" if target and wall_for_target is not None else "-"
        t.add_row(name, f"{wall:.2f}", f"{s.get('cpu_s', '-')}", f"{target:g}" if target else "-", ratio, f"{s['peak_mb']:.0f}",
                  "yes" if s["peak_mb"] <= MEMORY_TARGET_MB else "NO", note)
    Console(width=200).print(t)
    tc = b["thread_chars"]
    print(f"thread length (body + comments, characters): median {tc['median']}, 90th percentile {tc['p90']}, "
          f"mean {tc['mean']}, max {tc['max']}")


if __name__ == "__main__":
    main()
