"""The classify stage's public interface to the stages after it (reports, the nightly run).

Later stages import from here only: which model to use (:func:`choose_model`), the model's
probabilities for issues of the store (:func:`issue_probabilities`, the same code and text as
``mine classify``), and fitting a model on given issues with its training evidence
(:func:`fit_on_store`, for ``mine validate-estimates``). Data flows one way: this module never
imports from :mod:`pipeline.report`.

>>> from pipeline.classify.interface import IssueModel, shipped_model_dir
>>> m = IssueModel.load(shipped_model_dir())
>>> sorted(m.evidence) == sorted(m.classifiers) == ["cause", "stage", "symptom"]
True
"""

from __future__ import annotations

import sqlite3
from typing import Sequence

import pandas as pd

from pipeline.classify.embed import Embedder
from pipeline.classify.model import OTHER, IssueModel, TrainingEvidence
from pipeline.classify.resolve import RETRAIN_MIN_NEW, ModelChoice, choose_model, retrain_due, shipped_model_dir
from pipeline.classify.text import IssueDoc, issue_docs

__all__ = ["Embedder", "OTHER", "IssueModel", "TrainingEvidence", "ModelChoice", "choose_model", "retrain_due",
           "shipped_model_dir", "RETRAIN_MIN_NEW", "IssueDoc", "issue_docs", "issue_probabilities", "fit_on_store"]


def issue_probabilities(
    conn: sqlite3.Connection,
    model: IssueModel,
    urls: Sequence[str],
    *,
    embedder=None,
    progress: bool = False,
    title_only: bool = False,
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """``({dimension: probabilities indexed by URL}, {url: text kind})`` for the ``urls`` that have a text.

    The text policy is the classifier's one (:func:`~pipeline.classify.text.issue_docs`);
    ``title_only`` reads every issue by its title alone (for title-only comparisons).
    Embeddings are cached in the store, so a second call embeds nothing.
    """
    from pipeline.classify.predict import predict_docs

    docs = issue_docs(conn, urls)
    todo = [docs[u].as_title() if title_only else docs[u] for u in urls if u in docs]
    probs = predict_docs(model, todo, embedder or Embedder(), conn, progress=progress)
    return probs, {d.url: d.kind for d in todo}


def fit_on_store(
    conn: sqlite3.Connection,
    labels: pd.DataFrame,
    *,
    embedder=None,
    title_only: bool = False,
    seed: int = 0,
) -> IssueModel:
    """A model fitted, as ``mine train`` fits it, on the issues of ``labels`` that have a text in the store,
    with its training evidence (``title_only``: every issue by its title alone)."""
    from pipeline.classify.data import join_docs
    from pipeline.classify.features import build_features
    from pipeline.classify.model import DEFAULT_SPEC
    from pipeline.classify.train import fit_model

    embedder = embedder or Embedder()
    data = join_docs(conn, labels)
    docs = [d.as_title() for d in data.docs] if title_only else data.docs
    features = build_features(docs, DEFAULT_SPEC, embedder, conn, progress=False)
    model = fit_model(features, data.labels, seed=seed)
    model.metadata["embedding_model"] = embedder.model_id
    model.metadata["embedding_backend"] = embedder.backend
    return model

