"""Predict stage, symptom and cause of crawled issues that no human labelled; store and read predictions."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Sequence

import pandas as pd

from pipeline.classify.data import human_label_files
from pipeline.classify.embed import EmbedStats, Embedder
from pipeline.classify.features import build_features
from pipeline.classify.model import IssueModel
from pipeline.classify.text import IssueDoc, describe_kinds, issue_docs
from pipeline.errors import UserError
from pipeline.store.db import transaction
from pipeline.label_files.files import read_many

PREDICTION_COLUMNS = ["url", "converter", "dimension", "category", "probability", "probs", "model_id", "created_at"]


def human_labelled_urls(label_files: Sequence[Path | str] | None = None) -> set[str]:
    """URLs some human labelled: in ``label_files`` (default: the study CSV and ``labels/*.jsonl``)."""
    files = list(label_files) if label_files is not None else human_label_files()
    files = [f for f in files if Path(f).is_file()]
    return set(read_many(files)["url"]) if files else set()


def unlabelled_filtered_urls(conn: sqlite3.Connection, label_files: Sequence[Path | str] | None = None) -> list[str]:
    """URLs of crawled issues kept by the data-availability filter that no human labelled."""
    from pipeline.sample.filter import filtered_issues

    labelled = human_labelled_urls(label_files)
    return [r["url"] for r in filtered_issues(conn) if r["url"] not in labelled]


def check_model_compatible(model: IssueModel, embedder: Embedder, codebook_version: str | None = None,
                           model_file: Path | str = "model file") -> None:
    """:class:`UserError` unless ``model`` was trained with ``embedder``'s model and the current codebook.

    A model trained with other embeddings would read meaningless vectors; one trained under
    another codebook version predicts categories the labels no longer use. ``codebook_version``
    defaults to that of ``labels/codebook.yaml``. Models that do not record a codebook version
    (built in memory) are not checked for it.
    """
    meta = model.metadata
    if meta.get("embedding_model") != embedder.model_id:
        raise UserError(f"{model_file}: trained with embeddings {meta.get('embedding_model') or '(not recorded)'}, "
                        f"but {embedder.path} is {embedder.model_id}; pass --embedding-model with the right folder, "
                        "or retrain")
    if codebook_version is None:
        from pipeline.codebook import load_codebook

        codebook_version = load_codebook().version
    trained = meta.get("codebook_version")
    if trained is not None and trained != codebook_version:
        raise UserError(f"{model_file}: trained under codebook version {trained}, but labels/codebook.yaml is "
                        f"version {codebook_version}; retrain with `mine train`")


def crawled_issue_count(conn: sqlite3.Connection) -> int:
    """How many issues (pull requests excluded) the store holds from crawling."""
    return int(conn.execute("SELECT COUNT(*) FROM issues WHERE is_pull = 0").fetchone()[0])


def predict_docs(
    model: IssueModel,
    docs: Sequence[IssueDoc],
    embedder: Embedder,
    conn: sqlite3.Connection | None = None,
    *,
    progress: bool = False,
    stats: EmbedStats | None = None,
) -> dict[str, pd.DataFrame]:
    """The model's probabilities for ``docs``: per dimension a table indexed by URL, one column per category.

    The one way any command turns issue text into probabilities (``mine classify``, the reports,
    the nightly run), so the same model gives the same numbers everywhere.
    """
    if not docs:
        return {dim: pd.DataFrame(columns=cats) for dim, cats in model.categories.items()}
    features = build_features(docs, model.spec, embedder, conn, progress=progress, stats=stats)
    urls = [d.url for d in docs]
    return {dim: table.set_axis(urls, axis=0) for dim, table in model.predict_proba(features).items()}


@dataclass
class ClassifyResult:
    """What :func:`classify_issues` did."""

    model_id: str
    issues: int
    text_kind: str
    embed: EmbedStats = field(default_factory=EmbedStats)
    without_text: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)


def classify_issues(
    conn: sqlite3.Connection,
    model: IssueModel,
    embedder: Embedder,
    urls: Sequence[str],
    *,
    progress: bool = True,
) -> ClassifyResult:
    """Predict every dimension of the model for ``urls`` and store the rows in ``predictions``.

    Text: the one policy of :func:`~pipeline.classify.text.issue_docs` (title, body and comments
    where crawled, the title where nothing else is known), whatever the model was trained on.
    Earlier predictions of the same model for these issues are replaced.
    """
    docs = issue_docs(conn, urls)
    todo = [docs[u] for u in urls if u in docs]
    stats = EmbedStats()
    kinds = [d.kind for d in todo]
    res = ClassifyResult(model.model_id, len(todo), describe_kinds(kinds), stats,
                         [u for u in urls if u not in docs], {k: kinds.count(k) for k in sorted(set(kinds))})
    if not todo:
        return res
    probs = predict_docs(model, todo, embedder, conn, progress=progress, stats=stats)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    rows = []
    for dim, table in probs.items():
        values = table.to_numpy(dtype=float)
        cols = [str(c) for c in table.columns]
        for u, p in zip(table.index, values):
            top = int(p.argmax())
            rows.append((u, dim, cols[top], float(p[top]), json.dumps({c: round(float(v), 6) for c, v in zip(cols, p)}),
                         model.model_id, now))
    with transaction(conn):
        conn.executemany(
            "INSERT OR REPLACE INTO predictions(url, dimension, category, probability, probs, model_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return res


def latest_model_id(conn: sqlite3.Connection) -> str | None:
    row = conn.execute("SELECT model_id FROM predictions ORDER BY created_at DESC, rowid DESC LIMIT 1").fetchone()
    return row[0] if row else None


def predictions_for(conn: sqlite3.Connection, model_id: str | None = None) -> pd.DataFrame:
    """Stored predictions as a long table: one row per issue and dimension.

    Columns: ``url, converter, dimension, category, probability, probs`` (dict of every
    category's probability), ``model_id, created_at``. ``model_id`` defaults to the model of
    the most recent ``mine classify`` run; ``converter`` comes from the crawled issue (empty
    when the issue is not in ``issues``).
    """
    mid = model_id or latest_model_id(conn)
    if mid is None:
        return pd.DataFrame(columns=PREDICTION_COLUMNS)
    rows = conn.execute(
        "SELECT p.url, COALESCE(i.source, '') AS converter, p.dimension, p.category, p.probability, p.probs, "
        "p.model_id, p.created_at FROM predictions p LEFT JOIN issues i ON i.url = p.url "
        "WHERE p.model_id = ? ORDER BY p.url, p.dimension", (mid,)).fetchall()
    df = pd.DataFrame([tuple(r) for r in rows], columns=PREDICTION_COLUMNS)
    df["probs"] = df["probs"].map(json.loads)
    return df


def low_confidence(predictions: pd.DataFrame, min_confidence: float) -> pd.DataFrame:
    """Issues with some dimension's top probability below ``min_confidence``, least confident first.

    Columns: ``url, min_probability, dimension`` (the least confident one), ``category``.
    """
    if predictions.empty:
        return pd.DataFrame(columns=["url", "min_probability", "dimension", "category"])
    worst = predictions.sort_values(["probability", "url"]).groupby("url", sort=False).head(1)
    worst = worst[worst["probability"] < min_confidence]
    return worst.rename(columns={"probability": "min_probability"})[
        ["url", "min_probability", "dimension", "category"]].reset_index(drop=True)


def write_queue(urls: Sequence[str], path: Path | str) -> Path:
    """Write a labelling queue: one issue URL per line."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(f"{u}\n" for u in urls), encoding="utf-8")
    return p
