"""Fit the issue classifier on human labels and save it with the metadata that says how it was made."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Mapping, Sequence

from pipeline.classify.data import default_label_files, labelled_texts
from pipeline.classify.embed import EmbedStats, Embedder, embed_texts
from pipeline.classify.evaluate import _fit_progress, cross_val_predictions, method_metrics
from pipeline.classify.model import DEFAULT_CONFIGS, IssueModel, ModelConfig, file_sha256
from pipeline.codebook import load_codebook
from pipeline.paths import PROJECT_ROOT


def default_model_file() -> Path:
    return PROJECT_ROOT / "data" / "model.joblib"


def train_model(
    conn: sqlite3.Connection,
    embedder: Embedder,
    label_files: Sequence[Path | str] = (),
    *,
    text_kind: str = "full",
    configs: Mapping[str, ModelConfig] | None = None,
    cv_folds: int = 5,
    seed: int = 0,
    progress: bool = True,
    stats: EmbedStats | None = None,
) -> IssueModel:
    """Fit one classifier per dimension on the labelled issues that have a text in the store.

    The metadata records the embedding model, codebook version, label files and their
    sha256, categories, merged categories, training size, text kind and one run of
    ``cv_folds``-fold cross-validation (accuracy, macro-F1) with seed ``seed``.
    """
    files = [Path(f) for f in (label_files or default_label_files())]
    data = labelled_texts(conn, files, text_kind)
    configs = dict(configs or DEFAULT_CONFIGS)
    emb = embed_texts(data.texts, embedder, conn, progress=progress, stats=stats)
    model = IssueModel(configs=configs).fit(data.texts, emb, data.labels)
    cv = {}
    with _fit_progress(progress, len(model.classifiers) * cv_folds) as on_fit:
        for dim in model.classifiers:
            res = cross_val_predictions(data.texts, emb, data.labels, [dim], config=configs, repeats=1,
                                        folds=cv_folds, seed=seed, on_fit=on_fit).get(dim)
            if res is not None:
                m = method_metrics(res)
                cv[dim] = {"accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4)}
    model.metadata.update(
        embedding_model=embedder.model_id,
        embedding_model_path=str(embedder.path),
        codebook_version=load_codebook().version,
        label_files={str(f): file_sha256(f) for f in files},
        text_kind=data.text_kind,
        text_kinds={k: data.kinds.count(k) for k in sorted(set(data.kinds))},
        issues_without_text=len(data.missing),
        cv={"folds": cv_folds, "seed": seed, "scores": cv},
    )
    return model
