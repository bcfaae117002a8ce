"""Features of an issue for the classifier: sentence embeddings of parts of its text, hashed word n-grams.

A :class:`FeatureSpec` names the parts; :func:`build_features` turns :class:`~pipeline.classify.text.IssueDoc`
records into a :class:`Features` matrix pair. Embedding blocks (all-MiniLM-L6-v2, 384 numbers each,
L2-normalised):

``title``   the title alone;
``text``    :func:`~pipeline.classify.text.build_issue_text`: title, error lines, body prose, a few
            code lines and the first comments, cut to the model's 256 word pieces;
``chunks``  the mean of the embeddings of the thread (same order as ``text``, not cut) split
            into pieces of at most 254 word pieces (the first ``max_chunks``), re-normalised;
``errors``  the error lines of body and comments (the title when there are none).

For an issue known only by its title every block is the title's embedding, so title-only and
crawled issues live in one feature space.

Hashed n-grams (``hash_features > 0``): word uni- and bigrams of the ``text`` part counted into
``hash_features`` buckets by :class:`~sklearn.feature_extraction.text.HashingVectorizer`. A
model then stores bucket weights, never a vocabulary: no word of any issue is in a model file.
"""

from __future__ import annotations

import hashlib
import inspect
import sqlite3
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from pipeline.classify.text import (MODEL_MAX_TOKENS, IssueDoc, TokenCounter, _cut, build_issue_text, error_lines,
                                    markdown_to_text, token_counter)

BLOCKS = ("title", "text", "chunks", "errors")
TOKEN_PATTERN = r"(?u)\b\w[\w.]*\w\b|\b\w\b"  # keeps dotted names whole: torch.onnx, aten.upsample


@dataclass(frozen=True)
class FeatureSpec:
    """Which features a model reads. Stored in the model file; a model is only applied with its own spec."""

    blocks: tuple[str, ...] = ("text",)
    hash_features: int = 0
    hash_ngrams: tuple[int, int] = (1, 2)
    comments: int = 3                  # comments that enter the ``text`` part
    max_tokens: int = MODEL_MAX_TOKENS
    max_chunks: int = 8                # pieces of the thread the ``chunks`` block embeds (the first ones)

    def __post_init__(self) -> None:
        bad = [b for b in self.blocks if b not in BLOCKS]
        if bad or not self.blocks:
            raise ValueError(f"feature blocks must be a non-empty subset of {BLOCKS}, got {self.blocks}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["blocks"], d["hash_ngrams"] = list(self.blocks), list(self.hash_ngrams)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureSpec":
        return cls(**{**d, "blocks": tuple(d["blocks"]), "hash_ngrams": tuple(d["hash_ngrams"])})


@dataclass
class Features:
    """Rows aligned with the documents: ``dense`` (n, 384 * blocks), ``hashed`` (n, buckets) counts or ``None``,
    the kind of text of each row and its ``text`` part (read by the TF-IDF baseline of the evaluation only)."""

    dense: np.ndarray
    hashed: sp.csr_matrix | None = None
    kinds: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    blocks: tuple[str, ...] = ()       # the embedding blocks of ``dense``, in column order

    def __len__(self) -> int:
        return int(self.dense.shape[0])

    def rows(self, idx: np.ndarray | Sequence[int]) -> "Features":
        idx = np.asarray(idx, dtype=int)
        return Features(self.dense[idx], None if self.hashed is None else self.hashed[idx],
                        [self.kinds[i] for i in idx] if self.kinds else [],
                        [self.texts[i] for i in idx] if self.texts else [], self.blocks)

    def block_columns(self, blocks: Sequence[str]) -> np.ndarray:
        """Column indices of ``dense`` holding ``blocks`` (all columns when ``blocks`` is empty)."""
        if not blocks:
            return np.arange(self.dense.shape[1])
        missing = [b for b in blocks if b not in self.blocks]
        if missing:
            raise ValueError(f"features lack the embedding blocks {missing} (have {list(self.blocks)})")
        width = self.dense.shape[1] // max(len(self.blocks), 1)
        return np.concatenate([np.arange(self.blocks.index(b) * width, (self.blocks.index(b) + 1) * width) for b in blocks])


def text_part(doc: IssueDoc, spec: FeatureSpec, count: TokenCounter) -> str:
    """The ``text`` part of ``doc`` (the title alone for a title-only issue)."""
    if doc.kind != "full":
        return doc.title
    return build_issue_text(doc.title, doc.body, doc.comments[: spec.comments], max_tokens=spec.max_tokens,
                            count_tokens=count)


@lru_cache(maxsize=1)
def _text_code_digest() -> str:
    """A digest of the code that builds the ``text`` part: cached parts of an older version are never reused."""
    from pipeline.classify import text

    return hashlib.sha256((inspect.getsource(text) + inspect.getsource(text_part)).encode("utf-8")).hexdigest()[:16]


def _text_key(doc: IssueDoc, spec: FeatureSpec, tokenizer_id: str) -> str:
    h = hashlib.sha256()
    # each part length-prefixed (unambiguous); cheaper than a JSON dump of 60 kB bodies
    for part in (_text_code_digest(), tokenizer_id, str(spec.comments), str(spec.max_tokens), doc.title, doc.body or "",
                 *doc.comments[: spec.comments]):
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def text_parts(docs: Sequence[IssueDoc], spec: FeatureSpec, count: TokenCounter, conn: sqlite3.Connection | None = None,
               tokenizer_id: str | None = None) -> list[str]:
    """:func:`text_part` of each of ``docs``; with ``conn`` and ``tokenizer_id`` (what ``count`` counts
    with), cached in the store's ``text_parts`` table by a digest of the issue's text, the spec and
    the code that builds it, so a warm run reads 10,000 parts instead of building them again."""
    if conn is None or tokenizer_id is None:
        return [text_part(d, spec, count) for d in docs]
    keys = [_text_key(d, spec, tokenizer_id) if d.kind == "full" else "" for d in docs]
    found: dict[str, str] = {}
    wanted = list(dict.fromkeys(k for k in keys if k))
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        q = f"SELECT key, text FROM text_parts WHERE key IN ({','.join('?' * len(chunk))})"
        found.update((r[0], r[1]) for r in conn.execute(q, chunk))
    new: dict[str, str] = {}
    out = []
    for d, k in zip(docs, keys):
        if not k:
            out.append(d.title)
            continue
        if k not in found:
            found[k] = new[k] = text_part(d, spec, count)
        out.append(found[k])
    if new:
        from pipeline.store.db import transaction

        now = datetime.now(UTC).isoformat(timespec="seconds")
        with transaction(conn):
            conn.executemany("INSERT OR REPLACE INTO text_parts(key, text, created_at) VALUES (?, ?, ?)",
                             [(k, t, now) for k, t in new.items()])
    return out


def thread_parts(doc: IssueDoc) -> tuple[list[str], str]:
    """``(error lines, whole thread as plain text)`` of a crawled issue: title, error lines, prose, code, comments."""
    prose, code = markdown_to_text(doc.body or "")
    reduced = [markdown_to_text(c or "") for c in doc.comments]
    errs = error_lines(code, prose)
    for c_prose, c_code in reduced:
        errs += [e for e in error_lines(c_code, c_prose) if e not in errs]
    parts = [doc.title, *errs, prose, " ; ".join(" ".join(c.split()) for c in code), *(p for p, _ in reduced)]
    return errs, "\n".join(p for p in parts if p and p.strip())


def chunk_text(text: str, budget: int, count: TokenCounter) -> list[str]:
    """``text`` split at word boundaries into pieces of at most ``budget`` word pieces (at least one piece)."""
    words = text.split()
    out: list[str] = []
    i = 0
    while i < len(words):
        piece = _cut(" ".join(words[i : i + 2 * budget]), budget, count)
        n = len(piece.split())
        if n == 0:  # a single word longer than the budget: take it cut
            piece, n = words[i][: 4 * budget], 1
        out.append(piece)
        i += n
    return out or [text]


def embedding_inputs(doc: IssueDoc, spec: FeatureSpec, count: TokenCounter, text: str | None = None) -> dict[str, list[str]]:
    """Per block, the strings to embed for ``doc`` (``chunks`` may hold several; the others one);
    ``text``: its ``text`` part when already known (:func:`text_parts`)."""
    if doc.kind != "full":
        return {b: [doc.title] for b in spec.blocks}
    out: dict[str, list[str]] = {}
    errs: list[str] | None = None
    for b in spec.blocks:
        if b == "title":
            out[b] = [doc.title]
        elif b == "text":
            out[b] = [text if text is not None else text_part(doc, spec, count)]
        else:
            if errs is None:
                errs, thread = thread_parts(doc)
            if b == "chunks":
                out[b] = chunk_text(thread, spec.max_tokens - 2, count)[: max(1, spec.max_chunks)]
            else:
                out[b] = [_cut(" \n".join(errs), spec.max_tokens - 2, count) if errs else doc.title]
    return out


def hashed_counts(texts: Sequence[str], spec: FeatureSpec) -> sp.csr_matrix:
    """Word n-gram counts of ``texts`` in ``spec.hash_features`` buckets (no vocabulary kept)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    hv = HashingVectorizer(n_features=spec.hash_features, ngram_range=tuple(spec.hash_ngrams), alternate_sign=False,
                           norm=None, token_pattern=TOKEN_PATTERN, lowercase=True, dtype=np.float64)
    return hv.transform(list(texts)).tocsr()


def build_features(
    docs: Sequence[IssueDoc],
    spec: FeatureSpec,
    embedder,
    conn: sqlite3.Connection | None = None,
    *,
    progress: bool = True,
    stats=None,
    count_tokens: TokenCounter | None = None,
) -> Features:
    """The features of ``docs`` under ``spec``; embeddings come from (and go to) the store's cache when ``conn``."""
    from pipeline.classify.embed import embed_texts

    count = count_tokens or token_counter(embedder.path if embedder is not None else None)
    # the cache knows the model's own tokenizer only; a caller's counter builds every part afresh
    tokenizer_id = getattr(embedder, "model_id", None) if count_tokens is None else None
    parts = text_parts(docs, spec, count, conn, tokenizer_id) if "text" in spec.blocks else [None] * len(docs)
    inputs = [embedding_inputs(d, spec, count, t) for d, t in zip(docs, parts)]
    flat: list[str] = [s for inp in inputs for b in spec.blocks for s in inp[b]]
    # in any order: Embedder.encode batches texts of similar token length (titles never pad to 256 pieces)
    vectors = embed_texts(flat, embedder, conn, progress=progress, stats=stats) if flat else np.zeros((0, 384), np.float32)
    dim = vectors.shape[1] if len(vectors) else 384
    dense = np.zeros((len(docs), dim * len(spec.blocks)), dtype=np.float64)
    pos = 0
    for i, inp in enumerate(inputs):
        for j, b in enumerate(spec.blocks):
            n = len(inp[b])
            v = vectors[pos : pos + n].astype(np.float64).mean(axis=0)
            pos += n
            norm = np.linalg.norm(v)
            dense[i, j * dim : (j + 1) * dim] = v / norm if norm > 0 else v
    texts = [inp["text"][0] if "text" in inp else text_part(d, spec, count) for inp, d in zip(inputs, docs)]
    hashed = hashed_counts(texts, spec) if spec.hash_features else None
    return Features(dense, hashed, [d.kind for d in docs], texts, tuple(spec.blocks))
