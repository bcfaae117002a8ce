"""Classifiers of issues by stage, symptom and cause: one calibrated scikit-learn model per dimension.

Features are the issue text's sentence embedding, optionally joined by TF-IDF word features
of the same text. Categories with fewer than ``min_count`` training examples are merged into
an explicit ``other`` category (the metadata says which). Probabilities come from a logistic
regression, calibrated by temperature scaling (the default for every dimension), by
:class:`~sklearn.calibration.CalibratedClassifierCV` (sigmoid or isotonic) or left as the
regression's own; :data:`DEFAULT_CONFIGS` holds the choices measured best on the study (tuning
record: ``pipeline/classify/README.md``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from pipeline.codebook import DIMENSIONS
from pipeline.errors import UserError

OTHER = "other"
MODEL_FORMAT = 1


@dataclass(frozen=True)
class ModelConfig:
    """The classifier's choices, fixed before any final evaluation.

    ``class_weight_power``: 0 = no class weights, 1 = "balanced" (weights n / (k n_c)), in
    between = balanced weights raised to that power. ``calibration``: ``none`` (the logistic
    regression's own probabilities), ``temperature`` (one temperature dividing the regression's
    logits, fitted by minimum log-loss on ``calibration_folds`` out-of-fold predictions without
    class weights: it keeps every argmax, so class weights still decide the predictions while
    the probabilities match the observed frequencies), ``sigmoid`` or ``isotonic``
    (CalibratedClassifierCV with ``calibration_folds`` stratified folds).
    """

    use_embeddings: bool = True
    use_tfidf: bool = True
    tfidf_weight: float = 1.0
    C: float = 2.0
    class_weight_power: float = 0.5
    calibration: str = "none"
    calibration_folds: int = 3
    min_count: int = 5
    random_state: int = 0

    def with_(self, **kw: Any) -> "ModelConfig":
        return replace(self, **kw)


DEFAULT_CONFIG = ModelConfig()
# The choice per dimension, fixed on a tuning run (seed 100, 3 x 5-fold CV over the study's
# titles) before the reported evaluation (seed 0): balanced class weights (they buy macro-F1),
# temperature calibration (the lowest ECE of none/temperature/sigmoid/isotonic that keeps the
# weighted predictions), rare categories (< 5 issues) merged into `other`.
DEFAULT_CONFIGS: dict[str, ModelConfig] = {
    "stage": ModelConfig(use_tfidf=True, tfidf_weight=1.0, C=1.0, class_weight_power=1.0, calibration="temperature"),
    "symptom": ModelConfig(use_tfidf=False, C=8.0, class_weight_power=1.0, calibration="temperature"),
    "cause": ModelConfig(use_tfidf=True, tfidf_weight=1.0, C=0.5, class_weight_power=1.0, calibration="temperature"),
}


def config_for(config: "ModelConfig | Mapping[str, ModelConfig] | None", dimension: str) -> ModelConfig:
    """The config of ``dimension``: ``config`` itself, its entry for the dimension, or the default."""
    if config is None:
        return DEFAULT_CONFIGS.get(dimension, DEFAULT_CONFIG)
    if isinstance(config, ModelConfig):
        return config
    return config.get(dimension) or DEFAULT_CONFIGS.get(dimension, DEFAULT_CONFIG)


def merge_rare(y: Sequence[str], min_count: int) -> tuple[list[str], list[str]]:
    """Map categories with fewer than ``min_count`` examples to :data:`OTHER`: ``(merged labels, merged categories)``."""
    counts = pd.Series(list(y)).value_counts()
    rare = sorted(c for c, n in counts.items() if n < min_count and c != OTHER)
    if not rare:
        return list(y), []
    rs = set(rare)
    return [OTHER if v in rs else v for v in y], rare


def _sample_weights(y: np.ndarray, power: float) -> np.ndarray | None:
    if power <= 0:
        return None
    classes, counts = np.unique(y, return_counts=True)
    w = {c: (len(y) / (len(classes) * n)) ** power for c, n in zip(classes, counts)}
    return np.array([w[v] for v in y], dtype=float)


class DimensionClassifier:
    """One dimension's classifier: ``fit(texts, embeddings, y)`` then ``predict_proba(texts, embeddings)``.

    ``y`` must already be in the final label space (see :func:`merge_rare`). ``classes_`` gives
    the column order of the probabilities.
    """

    def __init__(self, config: ModelConfig = DEFAULT_CONFIG):
        self.config = config
        self.classes_: np.ndarray | None = None
        self._tfidf: TfidfVectorizer | None = None
        self._clf = None
        self._constant: str | None = None

    def _features(self, texts: Sequence[str], emb: np.ndarray | None, fit: bool) -> sp.csr_matrix:
        parts = []
        cfg = self.config
        if cfg.use_embeddings:
            if emb is None:
                raise ValueError("this classifier needs embeddings")
            parts.append(sp.csr_matrix(np.asarray(emb, dtype=np.float64)))
        if cfg.use_tfidf:
            if fit:
                self._tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1,
                                              token_pattern=r"(?u)\b\w[\w.]*\w\b|\b\w\b")
                parts.append(self._tfidf.fit_transform(texts) * cfg.tfidf_weight)
            else:
                parts.append(self._tfidf.transform(texts) * cfg.tfidf_weight)
        return sp.hstack(parts).tocsr()

    def fit(self, texts: Sequence[str], embeddings: np.ndarray | None, y: Sequence[str]) -> "DimensionClassifier":
        y = np.asarray(list(y), dtype=object)
        self.classes_ = np.array(sorted(set(y)), dtype=object)
        X = self._features(texts, embeddings, fit=True)
        if len(self.classes_) == 1:
            self._constant = str(self.classes_[0])
            return self
        cfg = self.config
        base = LogisticRegression(C=cfg.C, solver="newton-cg", max_iter=5000, random_state=cfg.random_state)
        sw = _sample_weights(y, cfg.class_weight_power)
        min_class = int(pd.Series(y).value_counts().min())
        folds = min(cfg.calibration_folds, min_class)
        self._temperature = 1.0
        if cfg.calibration == "temperature" and folds >= 2:
            self._temperature = self._fit_temperature(X, y, sw, folds)
            self._clf = base
        elif cfg.calibration in ("sigmoid", "isotonic") and folds >= 2:
            from sklearn.model_selection import StratifiedKFold

            self._clf = CalibratedClassifierCV(
                base, method=cfg.calibration,
                cv=StratifiedKFold(folds, shuffle=True, random_state=cfg.random_state),
            )
        else:
            self._clf = base
        self._clf.fit(X, y, sample_weight=sw)
        return self

    def _fit_temperature(self, X, y: np.ndarray, sw: np.ndarray | None, folds: int) -> float:
        from scipy.optimize import minimize_scalar
        from sklearn.model_selection import StratifiedKFold

        cfg = self.config
        logits = np.zeros((len(y), len(self.classes_)))
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=cfg.random_state).split(np.zeros(len(y)), y):
            m = LogisticRegression(C=cfg.C, solver="newton-cg", max_iter=5000, random_state=cfg.random_state)
            m.fit(X[tr], y[tr], sample_weight=None if sw is None else sw[tr])
            cols = [list(self.classes_).index(c) for c in m.classes_]
            z = _logits(m, X[te])
            block = np.full((len(te), len(self.classes_)), -1e4)  # a class absent from the fold: never predicted
            block[:, cols] = z
            logits[te] = block
        target = np.array([list(self.classes_).index(v) for v in y])

        def nll(log_t: float) -> float:
            z = logits / np.exp(log_t)
            z = z - z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
            return float(-logp[np.arange(len(y)), target].mean())

        return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))

    def predict_proba(self, texts: Sequence[str], embeddings: np.ndarray | None) -> np.ndarray:
        """Probabilities, one row per text, columns in ``classes_`` order."""
        if self._constant is not None:
            return np.ones((len(texts), 1))
        X = self._features(texts, embeddings, fit=False)
        if getattr(self, "_temperature", 1.0) != 1.0:
            z = _logits(self._clf, X) / self._temperature
            z = z - z.max(axis=1, keepdims=True)
            p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        else:
            p = self._clf.predict_proba(X)
        order = [list(self._clf.classes_).index(c) for c in self.classes_]
        return p[:, order]

    def predict(self, texts: Sequence[str], embeddings: np.ndarray | None) -> np.ndarray:
        return self.classes_[self.predict_proba(texts, embeddings).argmax(axis=1)]


def _logits(clf: LogisticRegression, X) -> np.ndarray:
    """Per-class logits of a fitted logistic regression (softmax of them = its probabilities)."""
    z = clf.decision_function(X)
    if z.ndim == 1:  # binary: one logit for classes_[1]
        z = np.column_stack([np.zeros_like(z), z])
    return z


def file_sha256(path: Path | str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class IssueModel:
    """Classifiers for several dimensions plus the metadata that says how they were made.

    ``configs``: one :class:`ModelConfig` for all dimensions, a mapping per dimension, or
    ``None`` for :data:`DEFAULT_CONFIGS`.
    """

    configs: "ModelConfig | Mapping[str, ModelConfig] | None" = None
    classifiers: dict[str, DimensionClassifier] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # one config for every dimension, one per dimension, or the defaults
        given = self.configs
        self.configs = {d: config_for(given, d) for d in {*DIMENSIONS, *(given if isinstance(given, Mapping) else ())}}

    def fit(self, texts: Sequence[str], embeddings: np.ndarray | None, labels: pd.DataFrame,
            dimensions: Sequence[str] = DIMENSIONS) -> "IssueModel":
        """Fit one classifier per dimension on the rows of ``labels`` rating it (rows align with ``texts``)."""
        merged: dict[str, list[str]] = {}
        categories: dict[str, list[str]] = {}
        sizes: dict[str, int] = {}
        for dim in dimensions:
            if dim not in labels.columns:
                continue
            mask = labels[dim].fillna("").astype(str).str.len().gt(0).to_numpy()
            if mask.sum() < 2:
                continue
            cfg = config_for(self.configs, dim)
            y, rare = merge_rare(labels[dim][mask].astype(str).tolist(), cfg.min_count)
            clf = DimensionClassifier(cfg).fit(
                [t for t, m in zip(texts, mask) if m], None if embeddings is None else embeddings[mask], y)
            self.classifiers[dim] = clf
            merged[dim] = rare
            categories[dim] = [str(c) for c in clf.classes_]
            sizes[dim] = int(mask.sum())
        if not self.classifiers:
            raise UserError("no dimension has at least two labelled issues to train on")
        self.metadata.update(merged_categories=merged, categories=categories, training_size=sizes,
                             configs={d: asdict(config_for(self.configs, d)) for d in self.classifiers})
        return self

    def merge_map(self, dimension: str) -> dict[str, str]:
        """Original category -> category of this model (rare ones -> ``other``)."""
        return {c: OTHER for c in self.metadata.get("merged_categories", {}).get(dimension, [])}

    @property
    def uses_embeddings(self) -> bool:
        return any(c.config.use_embeddings for c in self.classifiers.values())

    def predict_proba(self, texts: Sequence[str], embeddings: np.ndarray | None) -> dict[str, pd.DataFrame]:
        """Per dimension, a table of probabilities (rows = texts, columns = categories)."""
        return {dim: pd.DataFrame(clf.predict_proba(texts, embeddings), columns=list(clf.classes_))
                for dim, clf in self.classifiers.items()}

    @property
    def model_id(self) -> str:
        """A short id of this fitted model (its metadata digest), stored with each prediction."""
        return self.metadata.get("model_id") or "unsaved"

    def save(self, path: Path | str) -> Path:
        """Write the model (joblib) and give it its id; :class:`UserError` when the file cannot be written."""
        import sklearn

        p = Path(path)
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{p}: cannot write the model file ({e.strerror or e})") from None
        meta = dict(self.metadata)
        meta.setdefault("created_at", datetime.now(UTC).isoformat(timespec="seconds"))
        # pickled estimators are only guaranteed to load under the scikit-learn that wrote them
        meta.setdefault("sklearn_version", sklearn.__version__)
        digest = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()[:12]
        meta["model_id"] = f"{p.stem}-{digest}"
        self.metadata = meta
        try:
            joblib.dump({"format": MODEL_FORMAT, "configs": {d: asdict(c) for d, c in self.configs.items()},
                         "classifiers": self.classifiers,
                         "metadata": meta}, p)
        except OSError as e:
            raise UserError(f"{p}: cannot write the model file ({e.strerror or e})") from None
        return p

    @classmethod
    def load(cls, path: Path | str) -> "IssueModel":
        p = Path(path)
        if not p.is_file():
            raise UserError(f"{p}: model file not found (run `mine train` first)")
        try:
            obj = joblib.load(p)
        except Exception as e:  # a truncated or foreign file
            raise UserError(f"{p}: not a model file written by `mine train` ({type(e).__name__})") from None
        if not isinstance(obj, dict) or obj.get("format") != MODEL_FORMAT:
            raise UserError(f"{p}: not a model file written by `mine train` (unknown format)")
        return cls(configs={d: ModelConfig(**c) for d, c in obj["configs"].items()}, classifiers=obj["classifiers"],
                   metadata=obj["metadata"])
