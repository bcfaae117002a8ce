"""Which trained model a command uses, and when the labels say a retrain is due.

There is one model at a time: the one ``mine train`` writes. Every command that needs
predictions (``mine classify``, ``mine report --from predicted|both``, ``mine validate-estimates``
does its own fits, ``mine nightly``, the labelling page through stored predictions) gets it from
:func:`choose_model`:

1. ``--model PATH``: that model, whatever the labels say (it must match the codebook version
   and the embedding model at hand).
2. Otherwise the first *current* one of: the model ``mine train`` last wrote (``data/model/``),
   then the model shipped in the package (:func:`shipped_model_dir`, trained on
   ``labels/study.csv`` with the study's real issue texts).
3. If neither is current, a model is trained on the label files in use, exactly as
   ``mine train`` would, and kept in the cache folder given (beside the store): the next run
   with the same labels and texts reuses it.

A model is *current* for a set of human labels unless a retrain is due (:func:`retrain_due`):
the codebook version changed, or a training issue's label changed (relabelled or adjudicated),
or at least :data:`RETRAIN_MIN_NEW` labelled issues that have a text in the store are not among
its training issues. Fewer new labels than that move the estimates less than their own
sampling error, and retraining on every single new label would make night-to-night numbers
jump for no reason.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from pipeline.classify.model import IssueModel, label_mask
from pipeline.codebook import DIMENSIONS, load_codebook
from pipeline.errors import UserError
from pipeline.paths import PACKAGE_DIR

RETRAIN_MIN_NEW = 10
MIN_TRAINING = 20  # labelled issues with a text needed to train a replacement


def shipped_model_dir() -> Path:
    """The model shipped with the package (``pipeline/classify/shipped``; regenerate with ``make model``)."""
    return PACKAGE_DIR / "classify" / "shipped"


@dataclass
class ModelChoice:
    """The model a command uses, where it came from, and why (one line for the user)."""

    model: IssueModel
    path: Path | None
    reason: str
    trained: bool = False


def training_urls(model: IssueModel) -> set[str]:
    return {u for ev in model.evidence.values() for u in ev.urls}


def retrain_due(model: IssueModel, labels: pd.DataFrame, with_text: set[str], codebook_version: str | None = None) -> str | None:
    """Why ``model`` is not current for the human ``labels`` (see the module docstring), or ``None``.

    ``with_text``: URLs that have a text in the store (only those could be trained on).
    """
    version = codebook_version or load_codebook().version
    trained = model.metadata.get("codebook_version")
    if trained is not None and trained != version:
        return f"it was trained under codebook version {trained}, the labels use {version}"
    seen = training_urls(model)
    rates_any = np.logical_or.reduce([label_mask(labels, d) for d in DIMENSIONS])
    new = [u for u, r in zip(labels["url"], rates_any) if r and u not in seen and u in with_text]
    changed = _changed_labels(model, labels)
    if changed:
        return (f"{len(changed)} of its training issue(s) now carry another label "
                f"(e.g. {changed[0][0]}: {changed[0][1]} {changed[0][2]} -> {changed[0][3]})")
    if len(new) >= RETRAIN_MIN_NEW:
        return f"{len(new)} labelled issues with a text in the store are not among its training issues"
    return None


def _changed_labels(model: IssueModel, labels: pd.DataFrame) -> list[tuple[str, str, str, str]]:
    """``(url, dimension, trained label, current label)`` for training issues whose label changed."""
    by_url = labels.set_index("url")
    out = []
    for dim, ev in model.evidence.items():
        if dim not in by_url.columns:
            continue
        current = by_url[dim].fillna("").astype(str)
        merged = set(ev.merged)
        for url, yi in zip(ev.urls, ev.y):
            if url not in current.index or not current[url]:
                continue
            now = current[url]
            now_space = "other" if now in merged or now not in ev.classes else now
            if now_space != ev.classes[int(yi)]:
                out.append((url, dim, ev.classes[int(yi)], now))
    return out


def _compatible(model: IssueModel, embedder) -> bool:
    return model.metadata.get("embedding_model") == embedder.model_id


def _auto_name(labels: pd.DataFrame, docs: dict) -> str:
    """The cache name of an automatically trained model: labels, the kinds of text it trains on, the classifier's code."""
    from pipeline.classify.data import labels_digest

    kinds = sorted((u, d.kind) for u, d in docs.items())
    h = hashlib.sha256(repr((labels_digest(labels), kinds, classifier_version())).encode()).hexdigest()[:12]
    return f"auto-{h}"


def classifier_version() -> str:
    """A digest of the classifier's code (text, features, model, training): a change invalidates cached models."""
    import pipeline.classify.evaluate as ev
    import pipeline.classify.features as fe
    import pipeline.classify.model as mo
    import pipeline.classify.text as te
    import pipeline.classify.train as tr

    return hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (te, fe, mo, ev, tr))).hexdigest()[:12]


def choose_model(
    conn: sqlite3.Connection,
    labels: pd.DataFrame,
    model_path: Path | str | None = None,
    *,
    embedder=None,
    cache_dir: Path | str | None = None,
    candidates: list[Path] | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> ModelChoice:
    """The model to use for ``labels`` over the store ``conn`` (rules in the module docstring).

    ``candidates`` overrides the default search list (``data/model``, then the shipped model).
    A retrain writes the new model into ``cache_dir`` (no retrain is possible without one: the
    current candidate is then used and the reason says a retrain is due).
    """
    from pipeline.classify.data import join_docs
    from pipeline.classify.embed import Embedder
    from pipeline.classify.predict import check_model_compatible
    from pipeline.classify.text import issue_docs
    from pipeline.classify.train import default_model_dir, train_model

    embedder = embedder or Embedder()
    if model_path is not None:
        model = IssueModel.load(model_path)
        check_model_compatible(model, embedder, model_file=model_path)
        return ModelChoice(model, Path(model_path), f"--model {model_path}")
    paths = candidates if candidates is not None else [default_model_dir(), shipped_model_dir()]
    docs = issue_docs(conn, labels["url"])
    due_reasons = []
    fallback: ModelChoice | None = None
    for p in paths:
        if not (Path(p) / "model.json").is_file():
            continue
        model = IssueModel.load(p)
        if not _compatible(model, embedder):
            due_reasons.append(f"{p}: other embeddings ({model.metadata.get('embedding_model')})")
            continue
        why = retrain_due(model, labels, set(docs))
        where = "the shipped model" if Path(p) == shipped_model_dir() else str(p)
        if why is None:
            return ModelChoice(model, Path(p), f"{where} ({model.model_id}): current for the labels in use")
        due_reasons.append(f"{where}: {why}")
        fallback = fallback or ModelChoice(model, Path(p), f"{where} ({model.model_id}); a retrain is due: {why}")
    usable = {u: d for u, d in docs.items() if u in set(labels["url"])}
    if cache_dir is None or len(usable) < MIN_TRAINING:
        if fallback is not None:
            return fallback
        raise UserError("no trained model to use: " + ("; ".join(due_reasons) or "none found")
                        + f"; train one with `mine train` (it needs at least {MIN_TRAINING} labelled issues with a text)")
    target = Path(cache_dir) / _auto_name(labels, usable)
    if (target / "model.json").is_file():
        model = IssueModel.load(target)
        return ModelChoice(model, target, f"{target} ({model.model_id}), trained earlier on these labels: "
                           + "; ".join(due_reasons), trained=True)
    if log:
        log("retraining the classifier: " + "; ".join(due_reasons or ["no model found"]))
    data = join_docs(conn, labels)
    model = train_model(conn, embedder, data=data, progress=progress)
    model.metadata["label_files"] = {"(labels in use)": model.metadata.get("labels_digest")}
    model.save(target)
    return ModelChoice(model, target, f"{target} ({model.model_id}), trained now: " + "; ".join(due_reasons), trained=True)
