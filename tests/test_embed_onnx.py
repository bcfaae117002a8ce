"""The ONNX Runtime embedding backend against PyTorch: same vectors, same predictions, safe export, fallback.

Both backends share the embedding cache key (``Embedder.model_id``) and the models trained on it;
these tests are what justifies that: cosine >= 0.9999 on real issue texts and on awkward
synthetic strings, and the shipped model predicting the same categories from either backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.classify.embed import BACKEND_ENV, Embedder
from pipeline.classify.embed_onnx import ONNX_FILE, OnnxEncoder, export_path
from pipeline.classify.text import IssueDoc
from pipeline.errors import UserError
from pipeline.paths import PROJECT_ROOT

os.environ["HF_HUB_OFFLINE"] = "1"

MIN_COSINE = 0.9999
CONVERTER_ISSUES = 50  # of the ~630 unlabelled ones, beside the 150 study issues: keeps the test near 60 s

SYNTHETIC = [
    "",
    "   ",
    "crash",
    "RuntimeError: ONNX export failed: Couldn't export operator aten::unfold",
    "Konvertierung schlägt fehl — ValueError: négatif; 形状不匹配; ошибка формы; 🚀🔥 ✅",
    "العربية והעברית mixed with English: tf2onnx --opset 13",
    "def forward(self, x):\n    return torch.nn.functional.interpolate(x, scale_factor=2, mode='bilinear')\n" * 12,
    " ".join(f"token{i}" for i in range(700)),  # far beyond 256 word pieces: truncated alike
    "a" * 3000,  # one huge "word"
]


@pytest.fixture(scope="module")
def torch_embedder():
    return Embedder(backend="torch")


@pytest.fixture(scope="module")
def onnx_embedder():
    e = Embedder(backend="onnx")
    assert e.backend == "onnx"
    return e


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_synthetic_texts_match_pytorch(torch_embedder, onnx_embedder):
    a = onnx_embedder.encode(SYNTHETIC)
    b = torch_embedder.encode(SYNTHETIC)
    assert a.shape == b.shape == (len(SYNTHETIC), 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cos = cosines(a, b)
    assert cos.min() >= MIN_COSINE, dict(zip(SYNTHETIC, cos.round(6)))
    # bucketed batches come back in input order: each text alone gives its own row
    for i in (0, 3, 7):
        assert cosines(onnx_embedder.encode([SYNTHETIC[i]]), a[i : i + 1])[0] >= 0.99999


def test_tokenizer_is_the_models(torch_embedder, onnx_embedder):
    # same word pieces, special tokens and truncation as sentence-transformers feeds its model
    st_tok = torch_embedder.model.tokenizer
    want = st_tok(SYNTHETIC, truncation=True, max_length=torch_embedder.model.max_seq_length)["input_ids"]
    got = [e.ids for e in onnx_embedder.encoder.tokenize(SYNTHETIC)]
    assert got == [list(w) for w in want]
    assert max(len(g) for g in got) == 256


def _jsonl_docs(path: Path, limit: int | None = None) -> list[IssueDoc]:
    docs = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            comments = tuple(c["body"] for c in r.get("comments") or [] if isinstance(c.get("body"), str))
            docs.append(IssueDoc(r["url"], " ".join((r.get("title") or "").split()), r.get("body"), comments, "full"))
            if limit and len(docs) >= limit:
                break
    return docs


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory, torch_embedder, onnx_embedder):
    """Per backend, the shipped model's probabilities and the embedded strings' vectors, on the 150
    study issues and some converter issues of ../shared (each backend in its own store: they share
    the cache key)."""
    from pipeline.classify.embed import embed_texts
    from pipeline.classify.features import embedding_inputs
    from pipeline.classify.interface import IssueModel, shipped_model_dir
    from pipeline.classify.predict import predict_docs
    from pipeline.classify.text import token_counter
    from pipeline.store.db import connect
    from tests.helpers import shared_issues

    src = shared_issues()
    docs = _jsonl_docs(src / "study-issues.jsonl") + _jsonl_docs(src / "converter-issues.jsonl", CONVERTER_ISSUES)
    model = IssueModel.load(shipped_model_dir())
    count = token_counter()
    flat = [s for d in docs for ss in embedding_inputs(d, model.spec, count).values() for s in ss]
    runs = {}
    tmp = tmp_path_factory.mktemp("onnx-equiv")
    for name, emb in (("onnx", onnx_embedder), ("torch", torch_embedder)):
        conn = connect(tmp / f"{name}.db")
        probs = predict_docs(model, docs, emb, conn)
        vectors = embed_texts(flat, emb, conn, progress=False)  # all cached by the predictions
        conn.close()
        runs[name] = (probs, vectors)
    return docs, flat, runs


def test_real_texts_match_pytorch(real_runs):
    docs, flat, runs = real_runs
    cos = cosines(runs["onnx"][1], runs["torch"][1])
    assert len(cos) == len(flat) >= 2 * len(docs)
    worst = int(np.argmin(cos))
    assert cos.min() >= MIN_COSINE, f"cosine {cos.min():.6f} on {flat[worst][:200]!r}"


def test_shipped_model_predicts_the_same_from_both_backends(real_runs):
    docs, _, runs = real_runs
    for dim, onnx_table in runs["onnx"][0].items():
        torch_table = runs["torch"][0][dim]
        assert list(onnx_table.index) == list(torch_table.index) == [d.url for d in docs]
        same = (onnx_table.idxmax(axis=1) == torch_table.idxmax(axis=1))
        assert same.all(), f"{dim}: {int((~same).sum())} of {len(same)} predictions differ"
        assert float(np.abs(onnx_table.to_numpy() - torch_table.to_numpy()).max()) < 1e-3


def test_unknown_backend_is_a_user_error(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "cuda")
    with pytest.raises(UserError, match=f"{BACKEND_ENV}=cuda"):
        Embedder()
    monkeypatch.setenv(BACKEND_ENV, "Torch")
    assert Embedder().requested_backend == "torch"


def _python(code: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if k != BACKEND_ENV}
    full.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})})
    return subprocess.Popen([sys.executable, "-c", code], env=full, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


NO_ONNXRUNTIME = "import sys; sys.modules['onnxruntime'] = None  # import onnxruntime now raises ImportError\n"


def test_falls_back_to_pytorch_when_onnxruntime_cannot_be_imported():
    code = NO_ONNXRUNTIME + (
        "from pipeline.classify.embed import Embedder\n"
        "a = Embedder(); v = a.encode(['hello', 'world'])\n"
        "b = Embedder(); b.encode(['again'])\n"
        "print(a.backend, b.backend, v.shape)\n"
    )
    p = _python(code)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]
    assert out.split() == ["torch", "torch", "(2,", "384)"]
    assert err.count("using PyTorch") == 1, err  # said once per process
    assert "onnxruntime cannot be imported" in err

    # asked for explicitly, a missing onnxruntime is the user's to fix: no silent fallback
    code = NO_ONNXRUNTIME + (
        "from pipeline.classify.embed import Embedder\n"
        "from pipeline.errors import UserError\n"
        "try:\n    Embedder().encode(['x'])\nexcept UserError as e:\n    print('UserError:', e)\n"
    )
    p = _python(code, {BACKEND_ENV: "onnx"})
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-2000:]
    assert out.startswith(f"UserError: {BACKEND_ENV}=onnx: onnxruntime cannot be imported")


EXPORT = (
    "import sys\n"
    "from pipeline.classify.embed import Embedder\n"
    "from pipeline.classify.embed_onnx import ensure_export\n"
    "e = Embedder()\n"
    "path, made = ensure_export(e.path, e.model_id, log=lambda m: None)\n"
    "print(made, path)\n"
)


def test_export_is_atomic_and_made_once(tmp_path, monkeypatch):
    env = {"MINE_CACHE_DIR": str(tmp_path)}
    # a first export killed before its file is renamed into place leaves no model file
    killed = _python(EXPORT, env)
    folder = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and killed.poll() is None:
        tmps = list(tmp_path.glob(f"onnx/*/.{ONNX_FILE}.tmp*"))
        try:
            if tmps and tmps[0].stat().st_size > 0:
                folder = tmps[0].parent
                break
        except FileNotFoundError:  # renamed into place between glob and stat: missed, the checks below still hold
            pass
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    if folder is not None:  # caught while writing or checking: the kill left only its temporary file
        assert not (folder / ONNX_FILE).exists()
        assert list(folder.glob(".*.tmp*"))

    # two processes at once: one exports (clearing the killed one's leftovers), the other waits and reuses it
    procs = [_python(EXPORT, env) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    made = sorted(o.split()[0] for o, _ in outs)
    assert made == ["False", "True"], outs
    paths = {o.split()[1] for o, _ in outs}
    assert len(paths) == 1
    final = Path(paths.pop())
    assert final.name == ONNX_FILE and final.parent.parent == tmp_path / "onnx"
    assert sorted(p.name for p in final.parent.iterdir()) == [".lock", ONNX_FILE]

    # the file is whole and right: an encoder on it agrees with the default cache's export
    monkeypatch.setenv("MINE_CACHE_DIR", str(tmp_path))
    e = Embedder()
    assert export_path(e.model_id) == final
    fresh = OnnxEncoder(e.path, e.model_id, onnx_file=final)
    v = fresh.encode(SYNTHETIC[2:5], 8)
    w = Embedder(backend="torch").encode(SYNTHETIC[2:5])
    assert cosines(v, w).min() >= MIN_COSINE
