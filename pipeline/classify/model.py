"""Classifiers of issues by stage, symptom and cause: one calibrated logistic regression per dimension.

Features (:mod:`pipeline.classify.features`): sentence embeddings of parts of the issue text,
optionally joined by TF-IDF-weighted hashed word n-grams. Categories with fewer than
``min_count`` training examples are merged into an explicit ``other`` category (the model says
which). Probabilities: the regression's logits divided by one temperature per dimension
(temperature scaling, fitted on inner out-of-fold predictions), which keeps every argmax.

scikit-learn fits; prediction is plain numpy over the fitted arrays (coefficients, intercepts,
idf weights, temperature), so a model written to disk and read back predicts exactly what the
fitted one did. The file format (:meth:`IssueModel.save`) is a folder with ``model.json``
(everything but the arrays: readable in any editor) and ``arrays.npz`` (numeric arrays only,
read with ``allow_pickle=False``): nothing executable is ever loaded from a model path, and no
model holds a word of issue text (hashed buckets, not a vocabulary).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from pipeline.classify.features import Features, FeatureSpec
from pipeline.codebook import DIMENSIONS
from pipeline.errors import UserError

OTHER = "other"
MODEL_FORMAT = 2
MODEL_JSON, MODEL_ARRAYS = "model.json", "arrays.npz"


@dataclass(frozen=True)
class ModelConfig:
    """One dimension's classifier choices, fixed before any final evaluation.

    ``blocks``: the embedding blocks of the features this dimension reads (empty = all of them).
    ``class_weight_power``: 0 = no class weights, 1 = "balanced" (weights n / (k n_c)), in
    between = balanced weights raised to that power. ``hash_weight``: weight of the TF-IDF
    hashed n-gram block against the unit-length embeddings (0 = embeddings only; needs a
    :class:`FeatureSpec` with ``hash_features``). ``calibration``: ``temperature`` (one
    temperature dividing the logits, fitted by minimum log-loss on ``calibration_folds``
    out-of-fold predictions) or ``none``.
    """

    C: float = 2.0
    class_weight_power: float = 1.0
    hash_weight: float = 0.0
    blocks: tuple[str, ...] = ()
    calibration: str = "temperature"
    calibration_folds: int = 3
    min_count: int = 5
    random_state: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))  # a list when read back from JSON
        if self.calibration not in ("temperature", "none"):
            raise ValueError(f"calibration must be 'temperature' or 'none', got {self.calibration!r}")

    def with_(self, **kw: Any) -> "ModelConfig":
        return replace(self, **kw)


DEFAULT_CONFIG = ModelConfig()
# The feature spec and per-dimension choices, fixed on a tuning run (seed 100, 3 x 5-fold CV over
# the study's 200 issues: 150 with real text, 50 by title) before the reported evaluation (seed 0);
# the record is in pipeline/classify/README.md.
DEFAULT_SPEC = FeatureSpec(blocks=("title", "text"), hash_features=2 ** 14)
DEFAULT_CONFIGS: dict[str, ModelConfig] = {
    "stage": ModelConfig(C=2.0, class_weight_power=0.75, hash_weight=0.35, blocks=("title", "text")),
    "symptom": ModelConfig(C=16.0, class_weight_power=1.0, hash_weight=0.0, blocks=("text",)),
    "cause": ModelConfig(C=1.0, class_weight_power=1.0, hash_weight=0.7, blocks=("text",)),
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


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _tfidf(counts: sp.csr_matrix, idf: np.ndarray) -> sp.csr_matrix:
    """Sublinear TF-IDF with l2-normalised rows (scikit-learn's TfidfTransformer(sublinear_tf=True)), from its idf."""
    from sklearn.feature_extraction.text import TfidfTransformer

    t = TfidfTransformer(sublinear_tf=True)
    t.idf_ = idf
    return t.transform(counts)


def _fit_idf(counts: sp.csr_matrix) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfTransformer

    return TfidfTransformer(sublinear_tf=True).fit(counts).idf_


class DimensionClassifier:
    """One dimension's classifier: ``fit(features, y)`` then ``predict_proba(features)``.

    ``y`` must already be in the final label space (see :func:`merge_rare`). ``classes_`` gives
    the column order of the probabilities. After fitting, the whole state is arrays
    (:meth:`state`), and prediction reads only those.
    """

    def __init__(self, config: ModelConfig = DEFAULT_CONFIG):
        self.config = config
        self.classes_: np.ndarray | None = None
        self.coef_: np.ndarray | None = None       # (k, d) logit weights (k = 1 for two classes)
        self.intercept_: np.ndarray | None = None
        self.idf_: np.ndarray | None = None
        self.temperature_: float = 1.0

    # ---------------------------------------------------------------------------- features
    def _parts(self, f: Features, idf: np.ndarray | None):
        """``(dense columns this dimension reads, weighted hashed n-grams or None)``: the input, in column order."""
        dense = f.dense[:, f.block_columns(self.config.blocks)] if self.config.blocks else f.dense
        if self.config.hash_weight <= 0:
            return dense, None
        if f.hashed is None:
            raise ValueError("this classifier needs hashed n-gram features (FeatureSpec.hash_features)")
        return dense, _tfidf(f.hashed, idf) * self.config.hash_weight

    def _matrix(self, f: Features, idf: np.ndarray | None):
        dense, hashed = self._parts(f, idf)
        return dense if hashed is None else sp.hstack([sp.csr_matrix(dense), hashed]).tocsr()

    def _lr(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.config.C, solver="newton-cg", max_iter=5000, random_state=self.config.random_state)

    # ---------------------------------------------------------------------------------- fit
    def fit(self, features: Features, y: Sequence[str]) -> "DimensionClassifier":
        y = np.asarray(list(y), dtype=object)
        self.classes_ = np.array(sorted(set(y)), dtype=object)
        if len(self.classes_) == 1:
            self.coef_ = np.zeros((1, 0))
            self.intercept_ = np.zeros(1)
            return self
        self.idf_ = _fit_idf(features.hashed) if self.config.hash_weight > 0 else None
        X = self._matrix(features, self.idf_)
        sw = _sample_weights(y, self.config.class_weight_power)
        min_class = int(pd.Series(y).value_counts().min())
        folds = min(self.config.calibration_folds, min_class)
        if self.config.calibration == "temperature" and folds >= 2:
            self.temperature_ = self._fit_temperature(features, y, folds)
        clf = self._lr().fit(X, y, sample_weight=sw)
        order = [list(clf.classes_).index(c) for c in self.classes_]
        coef, icpt = clf.coef_, clf.intercept_
        if coef.shape[0] == 1:  # binary: scikit-learn keeps one logit, for classes_[1]
            coef, icpt = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], icpt])
        self.coef_, self.intercept_ = np.asarray(coef)[order], np.asarray(icpt)[order]
        return self

    def _fit_temperature(self, features: Features, y: np.ndarray, folds: int) -> float:
        """One temperature for the logits, by minimum log-loss over inner out-of-fold predictions."""
        from scipy.optimize import minimize_scalar
        from sklearn.model_selection import StratifiedKFold

        logits = np.zeros((len(y), len(self.classes_)))
        skf = StratifiedKFold(folds, shuffle=True, random_state=self.config.random_state)
        for tr, te in skf.split(np.zeros(len(y)), y):
            inner = DimensionClassifier(self.config.with_(calibration="none")).fit(features.rows(tr), y[tr])
            block = np.full((len(te), len(self.classes_)), -1e4)  # a class absent from the fold: never predicted
            cols = [list(self.classes_).index(c) for c in inner.classes_]
            block[:, cols] = inner.logits(features.rows(te))
            logits[te] = block
        target = np.array([list(self.classes_).index(v) for v in y])

        def nll(log_t: float) -> float:
            p = _softmax(logits / np.exp(log_t))
            return float(-np.log(np.maximum(p[np.arange(len(y)), target], 1e-300)).mean())

        return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))

    # ------------------------------------------------------------------------------ predict
    def logits(self, features: Features) -> np.ndarray:
        """Uncalibrated logits, one row per issue, columns in ``classes_`` order."""
        if len(self.classes_) == 1:
            return np.zeros((len(features), 1))
        # the dense and the hashed parts apart: stacking them into one sparse matrix (as fitting
        # must) cost more than the products themselves at 10,000 issues
        dense, hashed = self._parts(features, self.idf_)
        nd = dense.shape[1]
        out = dense @ self.coef_[:, :nd].T
        if hashed is not None:
            out = out + np.asarray(hashed @ self.coef_[:, nd:].T)
        return out + self.intercept_

    def predict_proba(self, features: Features) -> np.ndarray:
        """Calibrated probabilities, one row per issue, columns in ``classes_`` order."""
        return _softmax(self.logits(features) / self.temperature_)

    def predict(self, features: Features) -> np.ndarray:
        return self.classes_[self.predict_proba(features).argmax(axis=1)]

    # ---------------------------------------------------------------------------- persist
    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``(JSON-able description, arrays)``: everything prediction needs."""
        desc = {"config": asdict(self.config), "classes": [str(c) for c in self.classes_],
                "temperature": self.temperature_}
        arrays = {"coef": self.coef_, "intercept": self.intercept_}
        if self.idf_ is not None:
            arrays["idf"] = self.idf_
        return desc, arrays

    @classmethod
    def from_state(cls, desc: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> "DimensionClassifier":
        clf = cls(ModelConfig(**desc["config"]))
        clf.classes_ = np.array(desc["classes"], dtype=object)
        clf.temperature_ = float(desc["temperature"])
        clf.coef_, clf.intercept_ = np.asarray(arrays["coef"], float), np.asarray(arrays["intercept"], float)
        clf.idf_ = np.asarray(arrays["idf"], float) if "idf" in arrays else None
        return clf


@dataclass
class TrainingEvidence:
    """How one dimension's classifier does on its own training issues, out of fold.

    ``urls``/``kinds``: the training issues of the dimension and the kind of text each had;
    ``y``: their true category (index into ``classes``, rare ones merged); ``proba``: out-of-fold
    probabilities, shape ``(repeats, n, k)``. This is what the prevalence estimator needs
    (:mod:`pipeline.report.estimate`), so reports never train a model of their own.
    """

    classes: list[str]
    urls: list[str]
    kinds: list[str]
    y: np.ndarray
    proba: np.ndarray
    merged: list[str] = field(default_factory=list)


@dataclass
class IssueModel:
    """The fitted classifiers of every dimension, the feature spec they read, their training evidence and
    the metadata that says how they were made (embedding model, codebook version, labels, CV figures)."""

    spec: FeatureSpec = field(default_factory=lambda: DEFAULT_SPEC)
    configs: Mapping[str, ModelConfig] | ModelConfig | None = None
    classifiers: dict[str, DimensionClassifier] = field(default_factory=dict)
    evidence: dict[str, TrainingEvidence] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given = self.configs
        self.configs = {d: config_for(given, d) for d in {*DIMENSIONS, *(given if isinstance(given, Mapping) else ())}}

    def fit(self, features: Features, labels: pd.DataFrame, dimensions: Sequence[str] = DIMENSIONS) -> "IssueModel":
        """Fit one classifier per dimension on the rows of ``labels`` rating it (rows align with ``features``)."""
        merged: dict[str, list[str]] = {}
        sizes: dict[str, int] = {}
        for dim in dimensions:
            mask = label_mask(labels, dim)
            if mask.sum() < 2:
                continue
            cfg = config_for(self.configs, dim)
            y, rare = merge_rare(labels[dim][mask].astype(str).tolist(), cfg.min_count)
            self.classifiers[dim] = DimensionClassifier(cfg).fit(features.rows(np.flatnonzero(mask)), y)
            merged[dim], sizes[dim] = rare, int(mask.sum())
        if not self.classifiers:
            raise UserError("no dimension has at least two labelled issues to train on")
        self.metadata.update(
            merged_categories=merged, training_size=sizes,
            categories={d: [str(c) for c in c_.classes_] for d, c_ in self.classifiers.items()},
            configs={d: asdict(config_for(self.configs, d)) for d in self.classifiers})
        return self

    @property
    def categories(self) -> dict[str, list[str]]:
        return {d: [str(c) for c in clf.classes_] for d, clf in self.classifiers.items()}

    def merge_map(self, dimension: str) -> dict[str, str]:
        """Original category -> category of this model (rare ones -> ``other``)."""
        return {c: OTHER for c in self.metadata.get("merged_categories", {}).get(dimension, [])}

    def predict_proba(self, features: Features) -> dict[str, pd.DataFrame]:
        """Per dimension, a table of probabilities (rows = issues, columns = categories)."""
        return {dim: pd.DataFrame(clf.predict_proba(features), columns=[str(c) for c in clf.classes_])
                for dim, clf in self.classifiers.items()}

    @property
    def model_id(self) -> str:
        """A short id of this model (digest of its file contents), stored with each prediction."""
        return self.metadata.get("model_id") or "unsaved"

    # ---------------------------------------------------------------------------- persist
    def _payload(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        doc: dict[str, Any] = {"format": MODEL_FORMAT, "feature_spec": self.spec.to_dict(), "dimensions": {},
                               "evidence": {}, "metadata": {k: v for k, v in self.metadata.items() if k != "model_id"}}
        arrays: dict[str, np.ndarray] = {}
        for dim, clf in self.classifiers.items():
            desc, arr = clf.state()
            doc["dimensions"][dim] = desc
            arrays.update({f"{dim}/{k}": v for k, v in arr.items()})
        for dim, ev in self.evidence.items():
            doc["evidence"][dim] = {"classes": ev.classes, "urls": ev.urls, "kinds": ev.kinds, "merged": ev.merged}
            arrays[f"{dim}/oof_y"] = np.asarray(ev.y, dtype=np.int64)
            arrays[f"{dim}/oof_proba"] = np.asarray(ev.proba, dtype=np.float64)
        return doc, arrays

    def save(self, path: Path | str, name: str | None = None) -> Path:
        """Write the model as a folder (``model.json`` + ``arrays.npz``) and give it its id.

        The id is ``<name or folder name>-<digest>``, the digest over both files' content: the
        same fit gives the same id. :class:`UserError` when the folder cannot be written.
        """
        p = check_model_dir(path)
        doc, arrays = self._payload()
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        h = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode())
        for k in sorted(arrays):
            h.update(k.encode())
            h.update(np.ascontiguousarray(arrays[k]).tobytes())
        doc["metadata"]["model_id"] = f"{name or p.name}-{h.hexdigest()[:12]}"
        try:
            p.mkdir(parents=True, exist_ok=True)
            (p / MODEL_ARRAYS).write_bytes(buf.getvalue())
            (p / MODEL_JSON).write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
        except OSError as e:
            raise UserError(f"{p}: cannot write the model ({e.strerror or e})") from None
        self.metadata["model_id"] = doc["metadata"]["model_id"]
        return p

    @classmethod
    def load(cls, path: Path | str) -> "IssueModel":
        """Read a model folder written by :meth:`save` (numeric arrays and JSON only; nothing executable)."""
        p = Path(path)
        if not p.exists():
            raise UserError(f"{p}: model not found (run `mine train`, or leave --model out for the shipped model)")
        if p.is_file():
            raise UserError(f"{p}: not a model folder written by `mine train` (a model is a folder holding "
                            f"{MODEL_JSON} and {MODEL_ARRAYS})")
        try:
            doc = json.loads((p / MODEL_JSON).read_text(encoding="utf-8"))
            with np.load(p / MODEL_ARRAYS, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except FileNotFoundError as e:
            raise UserError(f"{p}: not a model folder written by `mine train` ({Path(e.filename).name} missing)") from None
        except (OSError, ValueError) as e:  # damaged JSON or archive, or an object array (refused, never unpickled)
            raise UserError(f"{p}: not a model folder written by `mine train` ({type(e).__name__})") from None
        if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
            raise UserError(f"{p}: model format {doc.get('format') if isinstance(doc, dict) else '?'} is not "
                            f"format {MODEL_FORMAT} of this release; retrain with `mine train`")
        try:
            spec = FeatureSpec.from_dict(doc["feature_spec"])
            classifiers = {d: DimensionClassifier.from_state(desc, {k.split("/", 1)[1]: v for k, v in arrays.items()
                                                                     if k.startswith(f"{d}/")})
                           for d, desc in doc["dimensions"].items()}
            evidence = {d: TrainingEvidence(e["classes"], e["urls"], e["kinds"], arrays[f"{d}/oof_y"],
                                            arrays[f"{d}/oof_proba"], e.get("merged", []))
                        for d, e in doc.get("evidence", {}).items()}
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{p}: damaged model ({type(e).__name__}: {e})") from None
        return cls(spec=spec, configs={d: c.config for d, c in classifiers.items()}, classifiers=classifiers,
                   evidence=evidence, metadata=doc["metadata"])


def check_model_dir(path: Path | str) -> Path:
    """``path`` as the folder of a model to write; :class:`UserError` when it is a file (checked before a long fit)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{p}: a model is a folder (model.json + arrays.npz); this is a file")
    return p


def label_mask(labels: pd.DataFrame, dim: str) -> np.ndarray:
    """Rows of ``labels`` that rate ``dim`` (a non-empty value)."""
    if dim not in labels.columns:
        return np.zeros(len(labels), bool)
    return labels[dim].fillna("").astype(str).str.len().gt(0).to_numpy()
