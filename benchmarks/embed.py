"""Benchmark: issues per second embedded on this machine, titles and full issue texts, cold and cached.

Titles are the study's 200 titles (../shared/paper/FailureAnalysis.xlsx) or, without the shared
folder, the titles of emulator issues. Full texts are built by the classifier's own text
builder from issues crawled from the project's GitHub emulator (real HTTP on 127.0.0.1) into a
temporary store. "cold" embeds into an empty cache; "cached" repeats the same call, which must
embed nothing. Model loading is timed apart.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/embed.py [--issues 200] [--batch-size 32] [--embedding-model PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["HF_HUB_OFFLINE"] = "1"

from pipeline.classify.embed import EmbedStats, Embedder, embed_texts  # noqa: E402
from pipeline.classify.features import text_part  # noqa: E402
from pipeline.classify.model import DEFAULT_SPEC  # noqa: E402
from pipeline.classify.text import issue_docs, token_counter  # noqa: E402
from pipeline.paths import shared_dir  # noqa: E402
from pipeline.store.db import connect  # noqa: E402


def crawl_emulator(db: Path, issues: int) -> list[str]:
    """Crawl an emulator with ``issues`` issues per repository into ``db``; the stored issue URLs."""
    from pipeline.crawl.client import GitHubClient
    from pipeline.crawl.crawler import crawl
    from pipeline.emulator.server import EmulatorConfig, run_emulator
    from pipeline.sources import load_sources

    with run_emulator(EmulatorConfig(seed=0, issues=issues, rate_limit=1_000_000)) as emu:
        conn = connect(db)
        crawl(conn, load_sources(), GitHubClient(emu.url, None, backoff_base=0.001), concurrency=4)
    urls = [r[0] for r in conn.execute("SELECT url FROM issues WHERE is_pull = 0 ORDER BY url")]
    conn.close()
    return urls


def study_titles() -> list[str]:
    p = shared_dir() / "paper" / "FailureAnalysis.xlsx"
    if not p.is_file():
        return []
    import pandas as pd

    return [str(t).strip() for s in ("PyTorch", "tf2onnx") for t in pd.read_excel(p, sheet_name=s)["Title"].dropna()]


def timed_embed(name: str, texts: list[str], embedder: Embedder, db: Path) -> None:
    conn = connect(db)
    for run in ("cold", "cached"):
        stats = EmbedStats()
        t0 = time.perf_counter()
        embed_texts(texts, embedder, conn, progress=False, stats=stats)
        dt = time.perf_counter() - t0
        print(f"{name:<12} {run:<7} {len(texts):>6} {stats.computed:>9} {dt:>9.2f} {len(texts) / dt:>12.1f}")
    conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--issues", type=int, default=200, help="emulator issues per repository (full texts)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--embedding-model", dest="model", default=None, help="local model folder [default: the bundled all-MiniLM-L6-v2]")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="embed-bench-") as d:  # the stores are removed afterwards
        run(Path(d), args)


def run(tmp: Path, args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    urls = crawl_emulator(tmp / "store.db", args.issues)
    conn = connect(tmp / "store.db")
    count = token_counter()
    t1 = time.perf_counter()
    docs = issue_docs(conn, urls)
    full = {u: text_part(d, DEFAULT_SPEC, count) for u, d in docs.items()}
    t_text = time.perf_counter() - t1
    titles = study_titles() or [d.title for d in docs.values()]
    conn.close()
    print(f"crawled {len(urls)} emulator issues in {t1 - t0:.1f} s; built {len(full)} full texts in {t_text:.2f} s "
          f"({len(full) / t_text:.0f} issues/s); mean {sum(count(t) for t in full.values()) / len(full):.0f} word pieces/text")

    t0 = time.perf_counter()
    embedder = Embedder(args.model, batch_size=args.batch_size)
    embedder.encode(["warm up"])
    print(f"model {embedder.model_id} loaded in {time.perf_counter() - t0:.1f} s; torch threads: "
          f"{__import__('torch').get_num_threads()}; batch size {args.batch_size}")
    print(f"{'texts':<12} {'run':<7} {'issues':>6} {'embedded':>9} {'seconds':>9} {'issues/s':>12}")
    timed_embed("titles", titles, embedder, tmp / "titles.db")
    timed_embed("full", list(full.values()), embedder, tmp / "full.db")


if __name__ == "__main__":
    main()
