"""Benchmark: what a real Label Studio costs the test run, and push/pull at a team's scale.

Installs Label Studio into a fresh venv (``--install``, as .ci/install-label-studio.sh does, pip's
cache as it is; ``--no-cache`` for a first install on a new machine), creates two users headless
and starts the server with a throwaway data folder, then pushes N issues of a made-up store
(with predictions), pulls, and prints every step's seconds.

    .venv/bin/python benchmarks/label_studio.py [--install] [--no-cache] [--issues 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.codebook import load_codebook  # noqa: E402
from pipeline.labelling.labelstudio_sync import connect, pull, push  # noqa: E402
from pipeline.store.db import connect as open_db  # noqa: E402
from tests import label_studio_server  # noqa: E402
from tests.label_store import insert_issue  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def install(venv: Path, no_cache: bool) -> float:
    t = time.monotonic()
    env = {**os.environ, "LABEL_STUDIO_VENV": str(venv)}
    if no_cache:
        env["PIP_NO_CACHE_DIR"] = "1"
    subprocess.run(["bash", str(ROOT / ".ci" / "install-label-studio.sh")], env=env, check=True)
    return time.monotonic() - t


def store(path: Path, n: int) -> list[str]:
    conn = open_db(path)
    urls = []
    for i in range(n):
        url = insert_issue(conn, "pytorch/pytorch", 95000 + i, f"Export of model {i} fails",
                           f"Traceback:\n\n```\n  File \"x.py\", line {i}\n    export()\nRuntimeError: op {i}\n```",
                           ["module: onnx"], "2024-01-01T00:00:00Z")
        urls.append(url)
    with conn:
        for i, url in enumerate(urls):
            for dim, cat in (("stage", "node_conversion"), ("symptom", "crash"), ("cause", "incompatibility")):
                conn.execute("INSERT INTO predictions(url, dimension, category, probability, probs, model_id, created_at) "
                             "VALUES (?,?,?,?,?,?,?)", (url, dim, cat, 0.5 + i % 50 / 100, json.dumps({}), "bench", "2024"))
    conn.close()
    return urls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--install", action="store_true", help="time a fresh install into a temporary venv first")
    ap.add_argument("--no-cache", action="store_true", help="with --install: no pip cache (a new machine)")
    ap.add_argument("--issues", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.install:
            venv = tmp / "venv"
            print(f"install label-studio {label_studio_server.VERSION}: {install(venv, args.no_cache):.1f} s")
            label_studio_server.VENV, label_studio_server.BIN = venv, venv / "bin" / "label-studio"
        if label_studio_server.missing_reason():
            sys.exit(label_studio_server.missing_reason())
        with label_studio_server.LabelStudioServer(tmp / "ls", ["alice@lab.test", "bob@lab.test"]) as ls:
            for step, s in ls.timings.items():
                print(f"{step}: {s:.1f} s")
            urls = store(tmp / "store.db", args.issues)
            conn = open_db(tmp / "store.db")
            server = connect(ls.url, ls.users["alice@lab.test"].token)
            cb = load_codebook()
            for run in ("first", "second"):
                t = time.monotonic()
                res = push(server, urls, conn, cb, project="bench")
                print(f"push {len(urls)} issues ({run}): {time.monotonic() - t:.1f} s, {res.added} added")
            conn.close()
            t = time.monotonic()
            pull(server, "bench", cb, tmp / "labels")
            print(f"pull {len(urls)} tasks (no annotations): {time.monotonic() - t:.1f} s")


if __name__ == "__main__":
    main()
