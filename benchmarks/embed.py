"""Benchmark: issues per second embedded on this machine per backend (PyTorch, ONNX Runtime), titles and full issue texts, cold and cached.

Titles are the study's 200 titles (../shared/paper/FailureAnalysis.xlsx) or, without the shared
folder, the titles of emulator issues. Full texts are built by the classifier's own text
builder from issues crawled from the project's GitHub emulator (real HTTP on 127.0.0.1) into a
temporary store. "cold" embeds into an empty cache; "cached" repeats the same call, which must
embed nothing. Model loading is timed apart, and so is the one-off ONNX export (made afresh into
a temporary cache folder, so the figure is a real export).

Then, with ../shared present, the shipped model's predictions on the 780 real issue texts of
../shared/github-issues from each backend, and from a dynamic int8 quantization of the export
(measured only: adopted if >= 99% of predictions stay identical): cosine to PyTorch, agreement,
speed.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/embed.py [--issues 200] [--batch-size 32] [--embedding-model PATH]
        [--backends torch,onnx] [--no-int8]
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

import numpy as np

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


def timed_embed(name: str, texts: list[str], embedder: Embedder, db: Path) -> np.ndarray:
    """Embed ``texts`` cold then cached into store ``db``, printing one row per run; the vectors."""
    conn = connect(db)
    for run in ("cold", "cached"):
        stats = EmbedStats()
        t0 = time.perf_counter()
        vectors = embed_texts(texts, embedder, conn, progress=False, stats=stats)
        dt = time.perf_counter() - t0
        print(f"{embedder.backend:<8} {name:<8} {run:<7} {len(texts):>6} {stats.computed:>9} {dt:>9.2f} "
              f"{len(texts) / dt:>10.1f}")
    conn.close()
    return vectors


def shared_docs():
    """The 780 real issue texts of ../shared/github-issues as classifier documents (empty without ../shared)."""
    import json

    from pipeline.classify.text import IssueDoc

    docs = []
    for name in ("study-issues.jsonl", "converter-issues.jsonl"):
        p = shared_dir() / "github-issues" / name
        if not p.is_file():
            return []
        for line in p.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            comments = tuple(c["body"] for c in r.get("comments") or [] if isinstance(c.get("body"), str))
            docs.append(IssueDoc(r["url"], " ".join((r.get("title") or "").split()), r.get("body"), comments, "full"))
    return docs


def cosine_figures(a: np.ndarray, b: np.ndarray) -> str:
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return f"cosine to torch min {cos.min():.7f} (1 - {1 - cos.min():.1e}) mean {cos.mean():.7f}"


def compare_predictions(embedders: dict[str, Embedder], tmp: Path) -> None:
    """The shipped model's predictions from each embedder on the shared texts, against PyTorch's."""
    from pipeline.classify.features import embedding_inputs
    from pipeline.classify.interface import IssueModel, shipped_model_dir
    from pipeline.classify.predict import predict_docs

    docs = shared_docs()
    if not docs:
        print("predictions: ../shared/github-issues not found, skipped")
        return
    model = IssueModel.load(shipped_model_dir())
    count = token_counter()
    flat = [s for d in docs for ss in embedding_inputs(d, model.spec, count).values() for s in ss]
    print(f"\nshipped model {model.model_id} on {len(docs)} real issue texts of ../shared ({len(flat)} strings embedded)")
    runs = {}
    for name, emb in embedders.items():
        conn = connect(tmp / f"pred-{name}.db")
        t0 = time.perf_counter()
        probs = predict_docs(model, docs, emb, conn)
        dt = time.perf_counter() - t0
        runs[name] = (probs, embed_texts(flat, emb, conn, progress=False))
        conn.close()
        print(f"  {name:<10} {len(flat) / dt:8.1f} strings/s (embedding + features + prediction)")
    ref_probs, ref_vec = runs["torch"]
    for name, (probs, vec) in runs.items():
        if name == "torch":
            continue
        agree = {dim: float((probs[dim].idxmax(axis=1) == ref_probs[dim].idxmax(axis=1)).mean()) for dim in probs}
        gap = max(float(np.abs(probs[d].to_numpy() - ref_probs[d].to_numpy()).max()) for d in probs)
        print(f"  {name:<10} {cosine_figures(vec, ref_vec)}; identical predictions "
              + ", ".join(f"{d} {100 * a:.2f}%" for d, a in agree.items())
              + f"; worst dimension {100 * min(agree.values()):.2f}%; max probability gap {gap:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--issues", type=int, default=200, help="emulator issues per repository (full texts)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--embedding-model", dest="model", default=None, help="local model folder [default: the bundled all-MiniLM-L6-v2]")
    ap.add_argument("--backends", default="torch,onnx", help="comma-separated backends to time")
    ap.add_argument("--no-int8", dest="int8", action="store_false", help="skip the dynamic int8 quantization")
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

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    # a fresh cache folder: the export is timed for real and the user's cache is left alone
    os.environ["MINE_CACHE_DIR"] = str(tmp / "cache")
    embedders: dict[str, Embedder] = {}
    vectors: dict[str, np.ndarray] = {}
    for backend in backends:
        embedder = Embedder(args.model, batch_size=args.batch_size, backend=backend)
        if backend == "onnx":
            from pipeline.classify.embed_onnx import ensure_export

            t0 = time.perf_counter()
            _, made = ensure_export(embedder.path, embedder.model_id, log=lambda m: None)
            print(f"onnx export ({'made' if made else 'found'}) in {time.perf_counter() - t0:.1f} s (once per machine and model)")
        t0 = time.perf_counter()
        embedder.encode(["warm up"])
        threads = (f"torch threads {__import__('torch').get_num_threads()}" if backend == "torch"
                   else f"onnxruntime intra-op threads {embedder.encoder.threads}")
        print(f"{backend}: model {embedder.model_id} loaded in {time.perf_counter() - t0:.1f} s; {threads}; "
              f"batch size {args.batch_size}")
        embedders[backend] = embedder
    print(f"{'backend':<8} {'texts':<8} {'run':<7} {'issues':>6} {'embedded':>9} {'seconds':>9} {'issues/s':>10}")
    full_texts = list(full.values())
    for backend, embedder in embedders.items():
        timed_embed("titles", titles, embedder, tmp / f"titles-{backend}.db")
        vectors[backend] = timed_embed("full", full_texts, embedder, tmp / f"full-{backend}.db")
    if "onnx" in embedders and args.int8:
        embedders["onnx-int8"] = int8_embedder(embedders["onnx"], tmp, titles, full_texts, vectors.get("torch"))
    if "torch" in embedders and len(embedders) > 1:
        if "onnx" in vectors and "torch" in vectors:
            print(f"onnx on the emulator's full texts: {cosine_figures(vectors['onnx'], vectors['torch'])}")
        compare_predictions(embedders, tmp)


def int8_embedder(onnx: Embedder, tmp: Path, titles: list[str], full_texts: list[str],
                  torch_vectors: np.ndarray | None) -> Embedder:
    """The export quantized to dynamic int8 (MatMul weights int8, activations quantized per batch),
    timed like the other backends."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from pipeline.classify.embed_onnx import OnnxEncoder

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice to pre-process is logged on the root logger
    q = tmp / "model-int8.onnx"
    t0 = time.perf_counter()
    # the linear layers only: the quantizer's QAttention does not take the opset-23 Attention node's attributes
    quantize_dynamic(str(onnx.encoder.onnx_file), str(q), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    print(f"onnx-int8: quantized in {time.perf_counter() - t0:.1f} s ({q.stat().st_size / 1e6:.0f} MB, "
          f"fp32 {onnx.encoder.onnx_file.stat().st_size / 1e6:.0f} MB)")
    emb = Embedder(onnx.path, batch_size=onnx.batch_size, backend="onnx")
    emb._encoder = OnnxEncoder(onnx.path, onnx.model_id, onnx_file=q)  # measured only, never a backend of its own
    emb._encoder.name = "int8"
    timed_embed("titles", titles, emb, tmp / "titles-int8.db")
    vec = timed_embed("full", full_texts, emb, tmp / "full-int8.db")
    if torch_vectors is not None:
        print(f"onnx-int8 on the emulator's full texts: {cosine_figures(vec, torch_vectors)}")
    return emb

if __name__ == "__main__":
    main()
