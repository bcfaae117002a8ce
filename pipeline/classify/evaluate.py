"""Evaluation of the classifier: repeated stratified cross-validation, baselines, transfer, calibration.

:func:`cross_val_predictions` is the public building block (out-of-fold probabilities and the
confusion matrix per dimension; :func:`pipeline.classify.train.train_model` keeps them in the
model as its training evidence for the prevalence estimator); :func:`evaluate` runs, on the
same folds, the model on the issues' text (full where crawled), the same model on titles only,
and the two baselines (majority class; TF-IDF + logistic regression), then the cross-converter
transfer and the calibration checks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold

from pipeline.classify.features import Features
from pipeline.classify.model import DimensionClassifier, ModelConfig, config_for, label_mask, merge_rare
from pipeline.codebook import DIMENSIONS
from pipeline.errors import UserError

Configs = ModelConfig | Mapping[str, ModelConfig] | None

METHODS = ("model", "titles", "majority", "tfidf")
# macro-F1 the model must reach on the issues' text (issue 12 of the project): stage, symptom, cause
TARGET_MACRO_F1 = {"stage": 0.40, "symptom": 0.50, "cause": 0.32}
ECE_BINS = 10
CONFIDENT = 0.8
TIE_TOLERANCE = 1e-9


class MajorityClassifier:
    """Baseline: always the most frequent training category (probabilities = training shares)."""

    def fit(self, features: Features, y):
        s = pd.Series(list(y)).value_counts()
        self.classes_ = np.array(sorted(s.index), dtype=object)
        self._p = np.array([s[c] / s.sum() for c in self.classes_])
        # ties broken by category name, so the choice is deterministic
        self._top = sorted(s.index, key=lambda c: (-s[c], c))[0]
        return self

    def predict_proba(self, features: Features):
        p = np.zeros((len(features), len(self.classes_)))
        p[:, list(self.classes_).index(self._top)] = 1.0
        return p


class TfidfBaseline:
    """Baseline: TF-IDF word uni- and bigrams + logistic regression with balanced class weights.

    Balanced weights make it the stronger baseline for macro-F1 (unweighted it predicts
    mostly the majority category); its settings are scikit-learn's defaults otherwise. It reads
    the ``text`` part of each issue (``Features.texts``); being an evaluation baseline, it is
    never saved, so its vocabulary never leaves memory.
    """

    def __init__(self, random_state: int = 0):
        self.random_state = random_state

    def fit(self, features: Features, y):
        self._vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
        X = self._vec.fit_transform(features.texts)
        self._clf = LogisticRegression(solver="newton-cg", max_iter=5000, class_weight="balanced", random_state=self.random_state)
        self._clf.fit(X, list(y))
        self.classes_ = np.array(sorted(set(y)), dtype=object)
        return self

    def predict_proba(self, features: Features):
        p = self._clf.predict_proba(self._vec.transform(features.texts))
        return p[:, [list(self._clf.classes_).index(c) for c in self.classes_]]


def make_method(method: str, config: ModelConfig) -> Callable[[], Any]:
    """A factory of fresh, unfitted classifiers for ``method`` (``model``/``titles``, ``majority`` or ``tfidf``).

    ``titles`` is the model itself; :func:`evaluate` gives it title-only features."""
    if method in ("model", "titles"):
        return lambda: DimensionClassifier(config)
    if method == "majority":
        return MajorityClassifier
    if method == "tfidf":
        return lambda: TfidfBaseline(config.random_state)
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


@dataclass
class CrossValResult:
    """Out-of-fold predictions of one dimension over ``repeats`` repetitions of stratified k-fold CV.

    ``proba[r, i, j]``: probability of ``classes[j]`` for issue ``i`` in repetition ``r``, from
    the model trained on the folds not holding ``i``. ``y_true`` is in the model's label space
    (categories in ``merged`` mapped to ``other``).
    """

    dimension: str
    classes: list[str]
    y_true: np.ndarray
    proba: np.ndarray
    merged: list[str] = field(default_factory=list)
    index: list[Any] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    @property
    def pred(self) -> np.ndarray:
        """Predicted category per repetition and issue, shape (repeats, n)."""
        return np.asarray(self.classes, dtype=object)[self.proba.argmax(axis=2)]

    @property
    def confusion(self) -> pd.DataFrame:
        """Confusion counts summed over repetitions: rows true category, columns predicted."""
        cm = sum(confusion_matrix(self.y_true, p, labels=self.classes) for p in self.pred)
        return pd.DataFrame(cm, index=self.classes, columns=self.classes)

    @property
    def confusion_rates(self) -> pd.DataFrame:
        """Row-normalised confusion: entry (t, p) estimates P(predicted p | true t)."""
        cm = self.confusion.astype(float)
        return cm.div(cm.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)

    @property
    def mean_proba(self) -> pd.DataFrame:
        """Out-of-fold probabilities averaged over repetitions (rows = issues, columns = classes)."""
        return pd.DataFrame(self.proba.mean(axis=0), columns=self.classes, index=self.index or None)


def cross_val_predictions(
    features: Features,
    labels: pd.DataFrame,
    dimensions: Sequence[str] = DIMENSIONS,
    *,
    method: str = "model",
    config: Configs = None,
    repeats: int = 5,
    folds: int = 5,
    seed: int = 0,
    on_fit: Callable[[], None] | None = None,
) -> dict[str, CrossValResult]:
    """Out-of-fold class probabilities and confusion matrices, per dimension, by repeated stratified k-fold CV.

    Parameters: ``features`` (rows aligned with ``labels``, a label table as returned by
    :func:`pipeline.label_files.files.read_labels`); the dimensions to evaluate; the ``method``
    (``model`` = the classifier built with ``config``, ``majority``, ``tfidf``);
    ``config`` is one :class:`ModelConfig` or one per dimension (default: ``DEFAULT_CONFIGS``);
    ``repeats`` repetitions of ``folds``-fold CV, repetition *r* shuffled with seed ``seed + r``
    (the folds depend only on the labels and the seed, so every method sees the same folds).

    Categories with fewer than the config's ``min_count`` issues are merged into ``other`` once, over
    all rows, before splitting (a fixed label space, as the trained model would have).

    ``on_fit`` (if given) is called after each fold's fit, e.g. to advance a progress bar.

    Returns ``{dimension: CrossValResult}``; ``result.proba`` has shape (repeats, n, k),
    ``result.confusion`` the counts summed over repetitions and ``result.confusion_rates``
    P(predicted | true) as needed to correct classify-and-count prevalence estimates.
    """
    out: dict[str, CrossValResult] = {}
    for dim in dimensions:
        cfg = config_for(config, dim)
        factory = make_method(method, cfg)
        mask = label_mask(labels, dim)
        if mask.sum() < folds:
            continue
        idx = np.flatnonzero(mask)
        y, merged = merge_rare(labels[dim].to_numpy()[idx].astype(str).tolist(), cfg.min_count)
        y = np.asarray(y, dtype=object)
        classes = sorted(set(y))
        f = features.rows(idx)
        proba = np.zeros((repeats, len(idx), len(classes)))
        for r in range(repeats):
            skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed + r)
            with warnings.catch_warnings():
                # rare categories (fewer members than folds) are expected with 200 issues
                warnings.filterwarnings("ignore", message=".*least populated class.*")
                splits = list(skf.split(np.zeros(len(y)), y))
            for train, test in splits:
                clf = factory().fit(f.rows(train), y[train])
                p = clf.predict_proba(f.rows(test))
                cols = [classes.index(c) for c in clf.classes_]
                proba[r][np.ix_(test, cols)] = p
                if on_fit is not None:
                    on_fit()
        index = labels["url"].to_numpy()[idx].tolist() if "url" in labels.columns else idx.tolist()
        out[dim] = CrossValResult(dim, classes, y, proba, merged, index, list(f.kinds))
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of the top category: sum over equal-width confidence bins of |accuracy - confidence| * share."""
    confidence = np.asarray(confidence, float)
    correct = np.asarray(correct, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return float(ece)


def calibration_summary(res: CrossValResult, threshold: float = CONFIDENT) -> dict[str, Any]:
    """ECE of the top category, and precision/coverage of predictions with p >= ``threshold`` (all repetitions pooled)."""
    conf = res.proba.max(axis=2).ravel()
    correct = (res.pred == res.y_true[None, :]).ravel()
    sure = conf >= threshold
    return {
        "ece": expected_calibration_error(conf, correct),
        "mean_confidence": float(conf.mean()),
        "accuracy": float(correct.mean()),
        "threshold": threshold,
        "coverage": float(sure.mean()),
        "precision_at_threshold": float(correct[sure].mean()) if sure.any() else None,
        "n_confident": int(sure.sum()),
        "n_predictions": int(conf.size),
    }


def method_metrics(res: CrossValResult) -> dict[str, Any]:
    """Accuracy and macro-F1 (mean and sd over repetitions), per-category P/R/F1 and the mean confusion matrix."""
    acc = [accuracy_score(res.y_true, p) for p in res.pred]
    f1 = [f1_score(res.y_true, p, labels=res.classes, average="macro", zero_division=0) for p in res.pred]
    y_all = np.tile(res.y_true, len(res.pred))
    p_all = res.pred.ravel()
    prec, rec, f, sup = precision_recall_fscore_support(y_all, p_all, labels=res.classes, zero_division=0)
    per = {c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f[i]),
               "support": int(sup[i] // len(res.pred))} for i, c in enumerate(res.classes)}
    cm = res.confusion / len(res.pred)
    return {
        "accuracy": float(np.mean(acc)), "accuracy_sd": float(np.std(acc)),
        "macro_f1": float(np.mean(f1)), "macro_f1_sd": float(np.std(f1)),
        "per_category": per,
        "confusion": {"labels": res.classes, "matrix": cm.round(2).values.tolist(),
                      "note": "rows true, columns predicted; mean counts per repetition"},
    }


def transfer(
    features: Features,
    labels: pd.DataFrame,
    dimensions: Sequence[str] = DIMENSIONS,
    *,
    config: Configs = None,
    methods: Sequence[str] = ("model", "majority", "tfidf"),
    on_fit: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Cross-converter transfer: train on one converter's issues, test on each other converter's.

    Uses the label space of the whole table (rare categories merged into ``other``).
    Returns ``{"tf2onnx->torch.onnx": {dim: {method: {accuracy, macro_f1}}}, ...}``.
    """
    out: dict[str, Any] = {}
    convs = sorted(labels["converter"].dropna().unique())
    if len(convs) < 2:
        return out
    for src in convs:
        for dst in (c for c in convs if c != src):
            key = f"{src}->{dst}"
            out[key] = {}
            for dim in dimensions:
                cfg = config_for(config, dim)
                mask = label_mask(labels, dim)
                if not mask.any():
                    continue
                y_all, _ = merge_rare(labels[dim].astype(str).tolist(), cfg.min_count)
                y_all = np.asarray(y_all, dtype=object)
                tr = np.flatnonzero(mask & (labels["converter"] == src).to_numpy())
                te = np.flatnonzero(mask & (labels["converter"] == dst).to_numpy())
                if len(tr) < 2 or len(te) < 1:
                    continue
                out[key][dim] = {"n_train": int(len(tr)), "n_test": int(len(te))}
                for m in methods:
                    clf = make_method(m, cfg)().fit(features.rows(tr), y_all[tr])
                    p = clf.predict_proba(features.rows(te))
                    pred = np.asarray(clf.classes_, dtype=object)[p.argmax(axis=1)]
                    labs = sorted(set(y_all[te]) | set(pred))
                    out[key][dim][m] = {"accuracy": float(accuracy_score(y_all[te], pred)),
                                        "macro_f1": float(f1_score(y_all[te], pred, labels=labs, average="macro",
                                                                   zero_division=0))}
                    if on_fit is not None:
                        on_fit()
    return out


def subset_metrics(res: CrossValResult, keep: np.ndarray) -> dict[str, float]:
    """Accuracy and macro-F1 (means over repetitions) over the rows ``keep`` of a cross-validation result."""
    if not keep.any():
        return {"accuracy": float("nan"), "macro_f1": float("nan"), "n": 0}
    y = res.y_true[keep]
    acc = [accuracy_score(y, p[keep]) for p in res.pred]
    f1 = [f1_score(y, p[keep], labels=res.classes, average="macro", zero_division=0) for p in res.pred]
    return {"accuracy": float(np.mean(acc)), "macro_f1": float(np.mean(f1)), "n": int(keep.sum())}


def evaluate(
    features: Features,
    labels: pd.DataFrame,
    dimensions: Sequence[str] = DIMENSIONS,
    *,
    title_features: Features | None = None,
    config: Configs = None,
    repeats: int = 5,
    folds: int = 5,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """The full evaluation report as a dict, every method on the same folds.

    ``model``: the classifier on ``features`` (each issue's text: full where crawled, the title
    where nothing else is known); ``titles``: the same classifier on ``title_features`` (every
    issue by its title only; left out when not given); ``majority`` and ``tfidf`` baselines on
    ``features``. Then transfer between converters, calibration and the acceptance criteria.
    ``progress``: a rich progress bar over the fits on stderr (stdout stays clean for JSON).
    :class:`UserError` when no dimension has at least ``folds`` labelled issues.
    """
    dims = [d for d in dimensions if label_mask(labels, d).sum() >= folds]
    if not dims:
        counts = {d: int(label_mask(labels, d).sum()) for d in dimensions}
        raise UserError(f"too few labelled issues with a text to cross-validate: {counts}; "
                        f"{folds}-fold cross-validation needs at least {folds} per dimension")
    methods = [m for m in METHODS if m != "titles" or title_features is not None]
    kinds = list(features.kinds) or ["full"] * len(labels)
    report: dict[str, Any] = {"n": int(len(labels)), "text_kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
                              "repeats": repeats, "folds": folds, "seed": seed, "methods": methods,
                              "config": {d: asdict(config_for(config, d)) for d in dims}, "dimensions": {},
                              "calibration": {}}
    n_convs = labels["converter"].nunique() if "converter" in labels.columns else 0
    n_transfer = n_convs * (n_convs - 1) * len(dims) * 3 if n_convs > 1 else 0
    with _fit_progress(progress, len(methods) * len(dims) * repeats * folds + n_transfer) as on_fit:
        cv = {m: cross_val_predictions(title_features if m == "titles" else features, labels, dims, method=m,
                                       config=config, repeats=repeats, folds=folds, seed=seed, on_fit=on_fit)
              for m in methods}
        transferred = transfer(features, labels, dims, config=config, on_fit=on_fit)
    for dim in dims:
        res = cv["model"][dim]
        full_rows = np.asarray([k == "full" for k in res.kinds]) if res.kinds else np.zeros(len(res.y_true), bool)
        report["dimensions"][dim] = {"n": int(len(res.y_true)), "categories": res.classes, "merged_into_other": res.merged,
                                     "n_full_text": int(full_rows.sum())}
        for m in methods:
            report["dimensions"][dim][m] = method_metrics(cv[m][dim])
            # the issues with real text alone: where full text and titles differ
            report["dimensions"][dim][m]["full_text_only"] = subset_metrics(cv[m][dim], full_rows)
        report["calibration"][dim] = calibration_summary(res)
    # all dimensions pooled: the p >= 0.8 criterion over every prediction the model makes
    conf = np.concatenate([cv["model"][d].proba.max(axis=2).ravel() for d in dims])
    corr = np.concatenate([(cv["model"][d].pred == cv["model"][d].y_true[None, :]).ravel() for d in dims])
    sure = conf >= CONFIDENT
    report["calibration"]["pooled"] = {
        "ece": expected_calibration_error(conf, corr), "threshold": CONFIDENT, "coverage": float(sure.mean()),
        "precision_at_threshold": float(corr[sure].mean()) if sure.any() else None, "n_confident": int(sure.sum()),
        "n_predictions": int(conf.size)}
    report["transfer"] = transferred
    report["criteria"] = criteria(report)
    return report


@contextmanager
def _fit_progress(show: bool, total: int) -> Iterator[Callable[[], None] | None]:
    """A callback advancing a transient rich bar on stderr by one fit, or ``None`` when not shown."""
    if not show:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("cross-validating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("fits", total=total)
        yield lambda: bar.advance(task)


def criteria(report: dict[str, Any]) -> dict[str, Any]:
    """The acceptance checks per dimension: macro-F1 beats majority, TF-IDF and (when evaluated) the
    title-only model and reaches :data:`TARGET_MACRO_F1`; accuracy is not below majority's; and
    pooled precision at p >= 0.8 is at least 0.8."""
    out: dict[str, Any] = {}
    for dim, r in report["dimensions"].items():
        f1 = r["model"]["macro_f1"]
        c = {
            "macro_f1_beats_majority": f1 > r["majority"]["macro_f1"],
            "macro_f1_beats_tfidf": f1 > r["tfidf"]["macro_f1"],
            # accuracies are means of multiples of 1/n: a tie must not fail on a rounding error
            "accuracy_not_below_majority": r["model"]["accuracy"] >= r["majority"]["accuracy"] - TIE_TOLERANCE,
        }
        if "titles" in r:
            c["macro_f1_beats_titles"] = f1 > r["titles"]["macro_f1"]
        if dim in TARGET_MACRO_F1 and report.get("text_kinds", {}).get("full"):
            c["macro_f1_reaches_target"] = f1 >= TARGET_MACRO_F1[dim]
        out[dim] = c
    pooled = report["calibration"].get("pooled", {})
    prec = pooled.get("precision_at_threshold")
    out["precision_at_0.8_at_least_0.8"] = bool(prec is not None and prec >= 0.8)
    out["all"] = all(all(v.values()) for k, v in out.items() if isinstance(v, dict)) and out["precision_at_0.8_at_least_0.8"]
    return out
