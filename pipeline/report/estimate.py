"""Prevalence estimates beyond the labelled sample: error-corrected shares with 95% intervals.

Two kinds of interval:

- Gold shares (human labels) carry **Wilson** score intervals (:func:`wilson`,
  :func:`add_wilson`): exact counts, the interval says how far a sample of ``n`` issues may sit
  from the population share.
- Shares estimated from the classifier are **corrected for classification error** using what
  cross-validation on the training labels says about the classifier's mistakes:

  ``cc``    plain classify-and-count (argmax, no correction: the baseline);
  ``pcc``   probabilistic classify-and-count (mean of the predicted probabilities);
  ``rpcc``  ``pcc`` after recalibrating the probabilities on the out-of-fold predictions:
            each category's probability is scaled by a factor (then rows renormalised) chosen
            so that on the training issues the scaled out-of-fold probabilities sum to the true
            category counts (undoes the prior distortion of class weighting and shrinkage);
  ``acc``   adjusted classify-and-count: solve ``q = C^T p`` for the true shares ``p``, with
            ``q`` the predicted-category shares and ``C[t, j] = P(predicted j | true t)`` the
            cross-validated confusion rates (non-negative least squares on the simplex);
  ``pacc``  the same with probabilities: ``C[t] = mean out-of-fold probabilities of issues of
            true category t`` and ``q`` the mean predicted probabilities.

  Intervals are percentile **bootstrap** intervals resampling *both* the target issues (within
  each column, e.g. converter or period) and the classifier's training issues (their labels
  and out-of-fold probabilities, hence the confusion rates or recalibration factors), ``B``
  replicates. For the probabilistic counts (``pcc``, ``rpcc``) each replicate also draws every
  target issue's category from its probabilities: a probability is not an outcome, and this
  is the error a calibrated classifier still makes on an issue.

  **Text kinds.** A classifier errs differently on an issue known by its title than on one
  whose body and comments it reads. The training evidence records the kind of each training
  issue's text, and each target issue is corrected with what the training issues *of its own
  kind* say (at least :data:`MIN_KIND_EVIDENCE` of them; else all of them), so a model trained
  on mixed text and applied to crawled issues is calibrated on crawled issues.
  ``mine validate-estimates`` measures this against calibrating on all training issues.

The classifier itself is the trained model (``pipeline.classify.interface``): this module never
fits one. Its training evidence (out-of-fold probabilities, true labels and text kinds of its
training issues) comes with the model.

:data:`DEFAULT_METHOD` is the method ``mine validate-estimates`` measured best on the study
(lowest mean absolute error over both transfer directions and both dimensions); every report
row says which method made it.

>>> lo, hi = wilson(148, 200)
>>> round(lo, 3), round(hi, 3)
(0.675, 0.796)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from pipeline.codebook import load_codebook
from pipeline.errors import UserError

METHODS = ("cc", "pcc", "rpcc", "acc", "pacc")
# Chosen by measurement, once, for every dimension (`mine validate-estimates`: train on one
# converter's study titles, estimate the other's stage and symptom shares, both directions).
# Measured 2026-11-26 with the classifier's defaults of that day, mean absolute error of a share:
# rpcc 4.1 pp, cc 4.7, pcc 7.6, pacc 14.4, acc 22.1; rpcc's 95% intervals held the gold share
# 18 times out of 18. Title-only confusion matrices are too noisy to invert (acc, pacc).
# Re-run after classifier changes; tests/test_estimate_cli.py guards the done-criteria.
DEFAULT_METHOD = "rpcc"
METHOD_NAMES = {
    "cc": "classify and count (uncorrected)",
    "pcc": "probabilistic classify and count",
    "rpcc": "probabilistic classify and count, probabilities recalibrated on cross-validated predictions",
    "acc": "adjusted classify and count (cross-validated confusion matrix)",
    "pacc": "probabilistic adjusted classify and count (cross-validated mean probabilities)",
    "gold": "human labels, Wilson 95% interval",
}
Z95 = 1.959963984540054
DEFAULT_BOOTSTRAP = 1000
MIN_KIND_EVIDENCE = 30  # training issues of one text kind needed to calibrate that kind on its own
POOLED = "*"


# --------------------------------------------------------------------------------------- gold

def wilson(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (``(0, 0)`` when ``n`` is 0)."""
    if n <= 0:
        return (0.0, 0.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # the bounds are exactly 0 and 1 at the extremes (no floating-point residue)
    return (0.0 if k <= 0 else max(0.0, centre - half), 1.0 if k >= n else min(1.0, centre + half))


def add_wilson(report, *, digits: int = 4):
    """Give every row of a gold :class:`~pipeline.report.tables.Report` a Wilson ``ci`` per column and a ``method``.

    The denominator of each column is that column's number of issues (``report.columns``),
    the same denominator as ``share``. Returns the report (modified in place).
    """
    for rows in report.tables.values():
        for row in rows:
            row["ci"] = {c: [round(x, digits) for x in wilson(k, report.columns.get(c, 0))]
                         for c, k in row["counts"].items()}
            row["method"] = "gold"
    if not any("Wilson" in n for n in report.notes):
        report.notes.append("intervals: Wilson score 95% intervals of each share (human labels)")
    return report


# ----------------------------------------------------------------------------- classifier error

@dataclass
class Calibration:
    """What cross-validation says about one dimension's classifier on its training issues.

    ``y``: true category index per training issue (into ``classes``); ``proba``: out-of-fold
    probabilities, shape ``(repeats, n, k)`` (or ``(n, k)``); ``kinds``: the kind of text of
    each training issue (``full``, ``title``; empty = one kind).
    """

    classes: list[str]
    y: np.ndarray
    proba: np.ndarray
    merged: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=int)
        p = np.asarray(self.proba, dtype=float)
        self.proba = p[None] if p.ndim == 2 else p
        self.kinds = list(self.kinds) or ["full"] * len(self.y)

    @classmethod
    def from_evidence(cls, ev) -> "Calibration":
        """From a model's :class:`~pipeline.classify.interface.TrainingEvidence` of one dimension."""
        return cls(list(ev.classes), np.asarray(ev.y, dtype=int), ev.proba, list(ev.merged), list(ev.kinds))

    @property
    def k(self) -> int:
        return len(self.classes)


def _hard_rates(y: np.ndarray, proba: np.ndarray, k: int, fallback: np.ndarray | None = None) -> np.ndarray:
    """``C[t, j] = P(pred j | true t)``, pooled over CV repetitions."""
    pred = proba.argmax(axis=2)                      # (R, n)
    C = np.zeros((k, k))
    np.add.at(C, (np.broadcast_to(y, pred.shape).ravel(), pred.ravel()), 1.0)
    return _normalise_rows(C, fallback)


def _soft_rates(y: np.ndarray, proba: np.ndarray, k: int, fallback: np.ndarray | None = None) -> np.ndarray:
    """``C[t] = mean out-of-fold probabilities of issues of true category t``."""
    C = np.zeros((k, k))
    np.add.at(C, np.broadcast_to(y, proba.shape[:2]).ravel(), proba.reshape(-1, k))
    return _normalise_rows(C, fallback)


def _normalise_rows(C: np.ndarray, fallback: np.ndarray | None) -> np.ndarray:
    s = C.sum(axis=1, keepdims=True)
    out = np.divide(C, s, out=np.zeros_like(C), where=s > 0)
    empty = s[:, 0] == 0
    if empty.any():
        # a category absent from a bootstrap resample: keep its full-sample rates (or "always right")
        out[empty] = fallback[empty] if fallback is not None else np.eye(len(C))[empty]
    return out


def solve_adjusted(C: np.ndarray, q: np.ndarray, weight: float = 1e3) -> np.ndarray:
    """The shares ``p`` on the simplex that best explain predicted shares ``q = C^T p`` (least squares)."""
    k = len(q)
    A = np.vstack([C.T, weight * np.ones((1, k))])
    b = np.concatenate([q, [weight]])
    p, _ = nnls(A, b)
    s = p.sum()
    return p / s if s > 0 else np.full(k, 1.0 / k)


def training_statistic(method: str, cal_y: np.ndarray, cal_proba: np.ndarray, k: int,
                       fallback: dict[str, np.ndarray] | None = None) -> np.ndarray | None:
    """What a method takes from the training issues: confusion rates (``acc``, ``pacc``),
    recalibration factors (``rpcc``) or nothing (``cc``, ``pcc``)."""
    if method == "acc":
        return _hard_rates(cal_y, cal_proba, k, (fallback or {}).get("acc"))
    if method == "pacc":
        return _soft_rates(cal_y, cal_proba, k, (fallback or {}).get("pacc"))
    if method == "rpcc":
        return prior_factors(cal_y, cal_proba, k)
    if method in ("cc", "pcc"):
        return None
    raise ValueError(f"unknown method {method!r}; choose from {METHODS}")


def apply_method(method: str, stat: np.ndarray | None, target: np.ndarray, k: int) -> np.ndarray:
    """Estimated shares of the issues with probabilities ``target`` (n, k), given the training statistic."""
    if len(target) == 0:
        return np.zeros(k)
    if method in ("cc", "acc"):
        q = np.bincount(target.argmax(axis=1), minlength=k) / len(target)
        return q if method == "cc" else solve_adjusted(stat, q)
    if method == "rpcc":
        return recalibrate(target, stat).mean(axis=0)
    q = target.mean(axis=0)
    return q if method == "pcc" else solve_adjusted(stat, q)


def point_estimate(method: str, cal_y: np.ndarray, cal_proba: np.ndarray, target: np.ndarray,
                   k: int, fallback: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Estimated category shares (length ``k``) of the issues whose probabilities are ``target`` (n, k)."""
    return apply_method(method, training_statistic(method, cal_y, cal_proba, k, fallback), target, k)


def kind_statistics(method: str, y: np.ndarray, proba: np.ndarray, kinds: Sequence[str], k: int,
                    fallback: dict[str, np.ndarray] | None = None, match_kinds: bool = True) -> dict[str, object]:
    """The training statistic over all training issues (key :data:`POOLED`) and, with ``match_kinds``,
    over the training issues of each text kind that has at least :data:`MIN_KIND_EVIDENCE` of them."""
    out: dict[str, object] = {POOLED: training_statistic(method, y, proba, k, fallback)}
    if match_kinds:
        kinds = np.asarray(kinds, dtype=object)
        for kind in sorted(set(kinds)):
            sel = np.flatnonzero(kinds == kind)
            if len(sel) >= MIN_KIND_EVIDENCE and len(sel) < len(y):
                out[kind] = training_statistic(method, y[sel], proba[:, sel], k, fallback)
    return out


_STAT_CACHE: dict[tuple, list] = {}


_POINT_CACHE: dict[tuple, tuple] = {}


def _point_statistics(cal: Calibration, method: str, match_kinds: bool) -> dict:
    """:func:`kind_statistics` over all training issues, once per calibration and method: the
    operator tables ask for thousands of point estimates of the same dimension."""
    key = (id(cal), method, match_kinds)
    hit = _POINT_CACHE.get(key)
    if hit is None or hit[0] is not cal or not np.array_equal(hit[1], cal.y) or not np.array_equal(hit[2], cal.proba):
        if len(_POINT_CACHE) > 64:
            _POINT_CACHE.clear()
        stats = kind_statistics(method, cal.y, cal.proba, cal.kinds, cal.k, match_kinds=match_kinds)
        hit = _POINT_CACHE[key] = (cal, cal.y.copy(), cal.proba.copy(), list(cal.kinds), stats)
    if hit[3] != list(cal.kinds):
        hit = _POINT_CACHE[key] = (cal, cal.y.copy(), cal.proba.copy(), list(cal.kinds),
                                   kind_statistics(method, cal.y, cal.proba, cal.kinds, cal.k, match_kinds=match_kinds))
    return hit[4]


def one_blas_thread():
    """A context in which BLAS runs on one thread: the bootstrap's matrices are small (a few
    thousand rows by k), and OpenBLAS's threads, spinning on a busy machine, made its products an
    order of magnitude slower, not faster (measured with ``benchmarks/scale.py`` on 2 shared cores)."""
    controller = _threadpool_controller()
    if controller is None:  # pragma: no cover - scikit-learn always brings threadpoolctl
        import contextlib

        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


@lru_cache(maxsize=1)
def _threadpool_controller():
    """One controller per process: finding the loaded BLAS libraries anew for each of a report's
    150 estimates cost a second on a busy machine."""
    try:
        from threadpoolctl import ThreadpoolController  # scikit-learn's dependency
    except ImportError:  # pragma: no cover
        return None
    return ThreadpoolController()


def bootstrap_statistics(cal: "Calibration", method: str, bootstrap: int, seed: int, match_kinds: bool = True) -> list:
    """The per-kind training statistics of each bootstrap replicate of the training issues (cached: trends
    reuse them for every period, so all columns and periods see the same training replicates).

    The replicates are the same resamples as ever (one ``rng.integers`` draw per replicate);
    ``rpcc``'s factors of all replicates are fitted at once (:func:`prior_factors_batch`), equal to
    fitting them one by one up to floating-point summation order."""
    key = (id(cal), cal.y.tobytes(), hashlib.sha256(np.ascontiguousarray(cal.proba)).hexdigest(), tuple(cal.kinds),
           method, bootstrap, seed, match_kinds)
    if key not in _STAT_CACHE:
        k, n = cal.k, len(cal.y)
        fallback = {"acc": _hard_rates(cal.y, cal.proba, k), "pacc": _soft_rates(cal.y, cal.proba, k)}
        kinds = np.asarray(cal.kinds, dtype=object)
        rng = np.random.default_rng([seed, 1])
        draws = [rng.integers(0, n, n) for _ in range(bootstrap)]
        with one_blas_thread():
            if method == "rpcc":
                stats = _rpcc_replicates(cal, kinds, draws, match_kinds)
            else:
                stats = [kind_statistics(method, cal.y[ci], cal.proba[:, ci], kinds[ci], k, fallback, match_kinds)
                         for ci in draws]
        if len(_STAT_CACHE) > 64:
            _STAT_CACHE.clear()
        _STAT_CACHE[key] = stats
    return _STAT_CACHE[key]


def _rpcc_replicates(cal: Calibration, kinds: np.ndarray, draws: list[np.ndarray], match_kinds: bool) -> list[dict]:
    """:func:`kind_statistics` of ``rpcc`` for every resample in ``draws``, the factors fitted in batches.

    A resample is a weight per training issue (how often it was drawn); a kind's statistic exists
    in a replicate when the resample holds at least :data:`MIN_KIND_EVIDENCE` issues of that kind
    (and not only that kind), as in :func:`kind_statistics`."""
    k, n = cal.k, len(cal.y)
    weights = np.stack([np.bincount(ci, minlength=n) for ci in draws]).astype(float) if draws else np.zeros((0, n))
    stats: list[dict] = [{} for _ in draws]
    pooled = prior_factors_batch(cal.y, cal.proba, k, weights)
    for b in range(len(draws)):
        stats[b][POOLED] = pooled[b]
    if match_kinds:
        for kind in sorted(set(kinds)):
            mask = kinds == kind
            size = weights[:, mask].sum(axis=1)
            use = np.flatnonzero((size >= MIN_KIND_EVIDENCE) & (size < n))
            if len(use):
                sel = np.flatnonzero(mask)
                got = prior_factors_batch(cal.y[sel], cal.proba[:, sel], k, weights[np.ix_(use, sel)])
                for j, b in enumerate(use):
                    stats[b][kind] = got[j]
    return stats


def prior_factors_batch(y: np.ndarray, proba: np.ndarray, k: int, weights: np.ndarray,
                        iterations: int = 25) -> np.ndarray:
    """:func:`prior_factors` of many weighted resamples at once: row ``b`` of the result is
    ``prior_factors(y[ci], proba[:, ci], k)`` for the resample ``ci`` whose counts per training
    issue are ``weights[b]`` (same iterations and updates, equal up to floating-point summation order).

    The recalibrated mass of category c is ``r_c * sum_rows w * p_c / (p . r)``: two matrix
    products per iteration for all replicates, instead of a recalibrated copy of each resample."""
    R, n = proba.shape[0], proba.shape[1]
    Pf = proba.reshape(-1, k)                                       # rows r-major, as prior_factors reads them
    Wf = np.tile(np.asarray(weights, dtype=float), (1, R)).T        # (R n, B): each row's weight
    onehot = np.eye(k)[np.asarray(y, dtype=int)] if n else np.zeros((0, k))
    counts = R * (np.asarray(weights, dtype=float) @ onehot)        # (B, k)
    r = np.ones((len(weights), k))
    for _ in range(iterations):
        D = Pf @ r.T                                                # (R n, B): row sums of p * r
        X = np.divide(Wf, D, out=np.zeros_like(D), where=D > 0)
        mass = r * (Pf.T @ X).T + (Wf * (D <= 0)).sum(axis=0)[:, None] / k  # zero rows: uniform
        r = r * np.divide(counts, mass, out=np.ones_like(r), where=mass > 0)
        r[counts == 0] = 1e-6
    return r


def prior_factors(y: np.ndarray, proba: np.ndarray, k: int, iterations: int = 25) -> np.ndarray:
    """Per-category factors ``r`` such that the renormalised ``r * p`` out-of-fold probabilities
    of the training issues sum to their true category counts (iterative proportional fitting)."""
    P = proba.reshape(-1, k)
    counts = np.bincount(np.broadcast_to(y, proba.shape[:2]).ravel(), minlength=k).astype(float)
    r = np.ones(k)
    for _ in range(iterations):
        mass = recalibrate(P, r).sum(axis=0)
        r = r * np.divide(counts, mass, out=np.ones(k), where=mass > 0)
        r[counts == 0] = 1e-6  # a category the training issues never hold
    return r


def recalibrate(P: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Scale each category's probability by ``r`` and renormalise each row."""
    Q = P * r[None, :]
    s = Q.sum(axis=1, keepdims=True)
    return np.divide(Q, s, out=np.full_like(Q, 1.0 / Q.shape[1]), where=s > 0)


def _draw(P: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row drawn from its probabilities, as one-hot rows."""
    cum = P.cumsum(axis=1)
    u = rng.random((len(P), 1)) * cum[:, -1:]
    idx = np.minimum((u > cum).sum(axis=1), P.shape[1] - 1)
    return np.eye(P.shape[1])[idx]


def _drawn_counts(method: str, stats: list[dict], P: np.ndarray, kinds: np.ndarray, k: int,
                  rng: np.random.Generator, chunk: int = 200) -> np.ndarray:
    """Category counts of every bootstrap replicate of one column of ``m`` target issues (``(B, k)``).

    A replicate of the loop resamples ``m`` issues with replacement and draws each one's category
    from its (recalibrated) probabilities. Each of the ``m`` draws is then independent and takes
    category c with probability ``mean_i q_ic``, the mean over the column's issues of the
    probabilities as recalibrated by that replicate's factors for the issue's kind: the counts
    are multinomial(m, that mean). Drawing them so gives the loop's distribution exactly, in
    O(m k) matrix products per replicate instead of a resample and m draws.
    """
    m, B = len(P), len(stats)
    if m == 0 or B == 0:
        return np.zeros((B, k))
    mean = np.zeros((B, k))
    for kind in sorted(set(kinds)):
        Pk = P[kinds == kind]
        if method == "rpcc":
            Rk = np.stack([st.get(kind, st[POOLED]) for st in stats])          # (B, k)
        else:
            Rk = np.ones((B, k))
        for lo in range(0, B, chunk):
            R = Rk[lo : lo + chunk]
            D = Pk @ R.T                                                     # (m_kind, b): row sums of P * r
            inv = np.divide(1.0, D, out=np.zeros_like(D), where=D > 0)
            part = R * (Pk.T @ inv).T                                        # sum_i P_ic r_c / D_i
            zero = (D <= 0).sum(axis=0)                                      # rows recalibrate() makes uniform
            mean[lo : lo + chunk] += part + zero[:, None] / k
    mean /= m
    mean /= mean.sum(axis=1, keepdims=True)
    return rng.multinomial(m, mean).astype(float)


@dataclass
class GroupEstimate:
    """Estimated counts and shares of one column (a converter, a period, the total)."""

    n: int                      # issues in the column (labelled + estimated)
    n_estimated: int            # of which estimated from the classifier
    counts: np.ndarray          # estimated number of issues per category
    shares: np.ndarray
    low: np.ndarray             # 95% interval of the share
    high: np.ndarray


@dataclass
class DimensionEstimate:
    """Per column estimates of one dimension, in the classifier's label space ``classes``."""

    dimension: str
    classes: list[str]
    method: str
    groups: dict[str, GroupEstimate]
    merged: list[str] = field(default_factory=list)
    bootstrap: int = 0


def estimate_groups(
    cal: Calibration,
    target: np.ndarray,
    groups: Sequence[str],
    *,
    gold: Mapping[str, np.ndarray] | None = None,
    method: str = DEFAULT_METHOD,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    total: str | None = "total",
    dimension: str = "",
    target_kinds: Sequence[str] | None = None,
    match_kinds: bool = True,
    vectorised: bool = True,
) -> DimensionEstimate:
    """Corrected shares with bootstrap 95% intervals, per group of target issues and in total.

    ``target``: predicted probabilities (n, k) in ``cal.classes`` order; ``groups``: the column
    of each target issue. ``gold``: per group, counts (length k) of issues whose human label is
    known and that are therefore not estimated (the ``both`` report). A group's estimated count
    of category c is ``gold[c] + share_c * n_estimated``. ``total`` (if not None) adds a column
    over all groups (bootstrapped jointly, so its interval is not a sum of intervals).
    ``target_kinds``: the text kind of each target issue (default: all ``full``); with
    ``match_kinds`` each is corrected by the training issues of its own kind (module docstring).

    Replicates of ``pcc`` and ``rpcc`` (``vectorised``, the default) draw each column's counts at
    once from their exact distribution (:func:`_drawn_counts`); ``vectorised=False`` runs the
    replicate loop that resamples the issues and then draws each one's outcome (same
    distribution, other random numbers; ``tests/test_estimate_vectorised.py`` compares them).
    Other methods always run the loop.
    """
    with one_blas_thread():
        return _estimate_groups(cal, target, groups, gold=gold, method=method, bootstrap=bootstrap, seed=seed,
                                total=total, dimension=dimension, target_kinds=target_kinds, match_kinds=match_kinds,
                                vectorised=vectorised)


def _estimate_groups(cal, target, groups, *, gold, method, bootstrap, seed, total, dimension, target_kinds,
                     match_kinds, vectorised) -> DimensionEstimate:
    k = cal.k
    target = np.asarray(target, dtype=float).reshape(-1, k)
    groups = np.asarray(list(groups), dtype=object)
    tkinds = np.asarray(list(target_kinds) if target_kinds is not None else ["full"] * len(target), dtype=object)
    names = list(dict.fromkeys(list(groups) + list((gold or {}).keys())))
    gold = {g: np.asarray(gold[g], dtype=float) if gold and g in gold else np.zeros(k) for g in names}
    members = {g: np.flatnonzero(groups == g) for g in names}

    def counts_for(stats: dict, pick: dict[str, np.ndarray], rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        out = {}
        for g in names:
            est = np.zeros(k)
            for kind in sorted(set(tkinds[pick[g]])):
                idx = pick[g][tkinds[pick[g]] == kind]
                stat = stats.get(kind, stats[POOLED])
                if rng is not None and method in ("pcc", "rpcc"):
                    # parametric part of the replicate: outcomes drawn from the (recalibrated) probabilities
                    est = est + _draw(recalibrate(target[idx], stat) if method == "rpcc" else target[idx], rng).sum(axis=0)
                else:
                    est = est + apply_method(method, stat, target[idx], k) * len(idx)
            out[g] = gold[g] + est
        return out

    point = counts_for(_point_statistics(cal, method, match_kinds), members)
    cols = names + ([total] if total else [])
    if total:
        point[total] = sum(point[g] for g in names)
    rng = np.random.default_rng([seed, 2])
    reps = {c: np.zeros((bootstrap, k)) for c in cols}
    stats = bootstrap_statistics(cal, method, bootstrap, seed, match_kinds)
    if vectorised and method in ("pcc", "rpcc"):
        for g in names:
            reps[g][:] = gold[g] + _drawn_counts(method, stats, target[members[g]], tkinds[members[g]], k, rng)
        if total:
            reps[total][:] = sum(reps[g] for g in names)
    else:
        for b, stat in enumerate(stats):
            pick = {g: members[g][rng.integers(0, len(members[g]), len(members[g]))] if len(members[g]) else members[g]
                    for g in names}
            c = counts_for(stat, pick, rng)
            for g in names:
                reps[g][b] = c[g]
            if total:
                reps[total][b] = sum(c[g] for g in names)
    out: dict[str, GroupEstimate] = {}
    for c in cols:
        n_est = sum(len(members[g]) for g in names) if c == total else len(members[c])
        n = int(round(point[c].sum()))  # labelled + estimated: the estimated shares sum to one
        denom = max(point[c].sum(), 1e-12)
        shares = point[c] / denom
        if bootstrap:
            rs = reps[c] / np.maximum(reps[c].sum(axis=1, keepdims=True), 1e-12)
            low, high = np.percentile(rs, 2.5, axis=0), np.percentile(rs, 97.5, axis=0)
        else:
            low, high = shares.copy(), shares.copy()
        out[c] = GroupEstimate(n=n, n_estimated=int(n_est), counts=point[c], shares=shares, low=low, high=high)
    return DimensionEstimate(dimension, list(cal.classes), method, out, list(cal.merged), bootstrap)


def round_counts(counts: np.ndarray, decimals: int = 1) -> np.ndarray:
    """``counts`` rounded to ``decimals`` so that they still add up to their rounded sum (largest remainder):
    the estimated counts of a column sum to that column's number of issues, as the shares sum to one."""
    scale = 10 ** decimals
    units = np.asarray(counts, dtype=float) * scale
    floor = np.floor(units + 1e-9)
    short = int(round(units.sum() - floor.sum()))
    order = np.argsort(-(units - floor), kind="stable")
    floor[order[:max(short, 0)]] += 1
    return floor / scale


def estimate_rows(est: DimensionEstimate, columns: Sequence[str], digits: int = 4) -> list[dict]:
    """Report rows (the JSON contract of :mod:`pipeline.report.tables`, plus ``ci`` and ``method``).

    Counts are estimated (fractional), shown to one decimal and rounded so that each column's
    counts add up to its number of issues."""
    rounded = {c: round_counts(g.counts) for c, g in est.groups.items()}
    rows = []
    for j, cat in enumerate(est.classes):
        row = {"category": cat, "counts": {}, "share": {}, "ci": {}, "method": est.method}
        for c in columns:
            g = est.groups.get(c)
            if g is None:
                row["counts"][c], row["share"][c], row["ci"][c] = 0, 0.0, [0.0, 0.0]
                continue
            row["counts"][c] = float(rounded[c][j])
            row["share"][c] = round(float(g.shares[j]), digits)
            row["ci"][c] = [round(float(g.low[j]), digits), round(float(g.high[j]), digits)]
        rows.append(row)
    return rows


# ------------------------------------------------------------------- classifier evidence

@dataclass
class Evidence:
    """Per dimension: the classifier's cross-validated behaviour and its probabilities on target issues.

    ``target_kinds``: the text kind of each target issue (rows of ``target``), ``model_note``
    says which model it was and why.
    """

    calibrations: dict[str, Calibration]
    target: dict[str, np.ndarray]
    model: object = None
    target_kinds: list[str] = field(default_factory=list)
    model_note: str = ""


def evidence_from_model(model, probs: Mapping[str, pd.DataFrame], kinds: Sequence[str], note: str = "") -> Evidence:
    """The estimator's view of a trained model: its training evidence per dimension and the
    probabilities ``probs`` it gave the target issues (rows aligned with ``kinds``)."""
    cals, target = {}, {}
    for dim, ev in model.evidence.items():
        cal = Calibration.from_evidence(ev)
        cals[dim] = cal
        table = probs.get(dim)
        target[dim] = (table.reindex(columns=cal.classes, fill_value=0.0).to_numpy(dtype=float)
                       if table is not None and len(table) else np.zeros((0, cal.k)))
    return Evidence(cals, target, model, list(kinds), note)


# ------------------------------------------------------------------------------ from the store

MODES = ("gold", "predicted", "both")


@dataclass
class StoreData:
    """The filtered issues of the store with their human labels (where any) and the classifier's view.

    ``issues``: one row per filtered issue: ``url, converter, created_at, title, kind`` and a
    column per dimension holding the human label or ``""``. ``evidence``: the trained model's
    training evidence and its probabilities for every filtered issue (``None`` for gold-only work).
    """

    issues: pd.DataFrame
    labels: pd.DataFrame
    evidence: Evidence | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def train_size(self) -> int:
        return max((len(c.y) for c in self.evidence.calibrations.values()), default=0) if self.evidence else 0


def load_store_data(
    conn,
    labels: pd.DataFrame,
    *,
    classify: bool = True,
    model=None,
    model_path: Path | str | None = None,
    cache_dir: Path | str | None = None,
    dimensions: Sequence[str] = ("stage", "symptom", "cause"),
    progress: bool = False,
    log=None,
) -> StoreData:
    """Filtered issues of the store (``pipeline.sample.filter.filtered_issues``) joined with ``labels``.

    With ``classify``, the trained model (``model``; else the one
    :func:`pipeline.classify.interface.choose_model` picks for ``labels``, ``model_path`` or the
    default rule, retraining into ``cache_dir`` when the labels say so) gives every filtered
    issue its probabilities, from the same text and the same code as ``mine classify``.
    """
    from pipeline.sample.filter import filtered_issues

    rows = filtered_issues(conn)
    issues = pd.DataFrame([{"url": r["url"], "converter": r["source"], "created_at": r["created_at"],
                            "title": r["title"] or ""} for r in rows],
                          columns=["url", "converter", "created_at", "title"])
    lab = labels.set_index("url")
    for dim in dimensions:
        col = lab[dim].fillna("").astype(str) if dim in lab.columns else pd.Series(dtype=str)
        issues[dim] = issues["url"].map(col).fillna("")
    data = StoreData(issues, labels)
    if not classify:
        return data
    if not len(issues):
        raise UserError("the store holds no filtered issues to estimate (run `mine crawl` first)")
    from pipeline.classify.interface import choose_model, issue_probabilities

    note = ""
    if model is None:
        choice = choose_model(conn, labels, model_path, cache_dir=cache_dir, progress=progress, log=log)
        model, note = choice.model, choice.reason
    probs, kinds = issue_probabilities(conn, model, issues["url"].tolist(), progress=progress)
    issues["kind"] = issues["url"].map(kinds).fillna("title")
    data.evidence = evidence_from_model(model, {d: t.reindex(issues["url"]).fillna(0.0) for d, t in probs.items()},
                                        issues["kind"].tolist(), note or f"model {model.model_id}")
    return data


def gold_in_label_space(values: pd.Series, cal: Calibration) -> pd.Series:
    """Human labels mapped into a classifier's label space (rare or unseen categories -> ``other``)."""
    merged, classes = set(cal.merged), set(cal.classes)
    fallback = "other" if "other" in classes else None
    # one decision per distinct label, then a dictionary lookup: the operator tables call this
    # hundreds of times over 10,000 issues, and a Python call per issue added up to seconds
    decide = {v: v if (v in classes and v not in merged) else (fallback if v else "") for v in pd.unique(values)}
    return values.map(decide)


_GOLD_CACHE: dict[tuple, tuple] = {}


def _gold_for(issues: pd.DataFrame, dim: str, cal: Calibration) -> pd.Series:
    """:func:`gold_in_label_space` of ``issues[dim]``, once per frame (the operator tables estimate
    thousands of subsets of the same issues)."""
    key = (id(issues), dim, id(cal))
    hit = _GOLD_CACHE.get(key)
    if hit is None or hit[0] is not issues or hit[1] is not cal or not hit[2].equals(issues[dim]):
        if len(_GOLD_CACHE) > 64:
            _GOLD_CACHE.clear()
        hit = _GOLD_CACHE[key] = (issues, cal, issues[dim].copy(), gold_in_label_space(issues[dim], cal))
    return hit[3]


def estimate_dimension(
    data: StoreData,
    dim: str,
    mode: str,
    group_col: str = "converter",
    *,
    subset: np.ndarray | None = None,
    method: str = DEFAULT_METHOD,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    total: str | None = "total",
) -> DimensionEstimate:
    """One dimension's estimate over ``data.issues`` (or the boolean ``subset`` of them), grouped by
    ``group_col``: ``predicted`` estimates every issue; ``both`` counts the labelled ones as they are."""
    if data.evidence is None or dim not in data.evidence.calibrations:
        raise UserError(f"{dim}: the classifier was not trained for this dimension")
    cal = data.evidence.calibrations[dim]
    target = data.evidence.target[dim]
    issues = data.issues
    keep = np.ones(len(issues), bool) if subset is None else np.asarray(subset, bool)
    gold = _gold_for(issues, dim, cal) if mode == "both" else pd.Series([""] * len(issues))
    is_gold = keep & gold.ne("").to_numpy()
    est = keep & ~is_gold
    gold_counts = {}
    for g, sub in issues[is_gold].assign(_g=gold[is_gold].to_numpy()).groupby(group_col):
        gold_counts[str(g)] = sub["_g"].value_counts().reindex(cal.classes, fill_value=0).to_numpy(float)
    kinds = np.asarray(data.evidence.target_kinds or ["full"] * len(issues), dtype=object)
    return estimate_groups(cal, target[est], issues.loc[est, group_col].astype(str).tolist(), gold=gold_counts,
                           method=method, bootstrap=bootstrap, seed=seed, total=total, dimension=dim,
                           target_kinds=kinds[est].tolist())


def predicted_report(data: StoreData, mode: str = "predicted", *, method: str = DEFAULT_METHOD,
                     bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0):
    """A :class:`~pipeline.report.tables.Report` of stage, symptom and cause over every filtered issue.

    Rows are in the classifier's label space (categories with too few training issues merged
    into ``other``); each row carries ``ci`` (bootstrap 95%) and ``method``.
    """
    from pipeline.report.tables import TOTAL, Report, column_sizes

    if mode not in ("predicted", "both"):
        raise ValueError(f"mode must be predicted or both, got {mode!r}")
    issues = data.issues
    converters = sorted(issues["converter"].unique().tolist())
    rep = Report(n=len(issues), converters=converters, source=mode, columns=column_sizes(issues, converters))
    for dim, cal in data.evidence.calibrations.items():
        est = estimate_dimension(data, dim, mode, method=method, bootstrap=bootstrap, seed=seed, total=TOTAL)
        rows = estimate_rows(est, [*converters, TOTAL])
        # the classifier's classes come sorted by name; reports list categories in codebook order
        order = {c: i for i, c in enumerate(load_codebook().ids(dim))}
        rep.tables[dim] = sorted(rows, key=lambda r: order.get(r["category"], len(order)))
        if cal.merged:
            rep.notes.append(f"{dim}: categories with fewer than 5 training issues merged into 'other': {', '.join(cal.merged)}")
    n_gold = int(issues[list(data.evidence.calibrations)].ne("").any(axis=1).sum())
    ev = data.evidence
    how = (f"{mode}: {METHOD_NAMES[method]} ({method}); {ev.model_note}; trained on {data.train_size} labelled issues "
           f"({_kind_counts(next(iter(ev.calibrations.values())).kinds)}), applied to {len(issues)} filtered issues "
           f"({_kind_counts(ev.target_kinds)}), each corrected by the training issues of its own text kind; "
           + (f"95% bootstrap intervals ({bootstrap} replicates over target and training issues)" if bootstrap else
              "no intervals (--bootstrap 0: each bracket repeats the point estimate)"))
    if mode == "both":
        how += f"; {n_gold} issue{'' if n_gold == 1 else 's'} with human labels counted as labelled"
    rep.notes.append(how)
    return rep


def _kind_counts(kinds: Sequence[str]) -> str:
    names = {"full": "full text", "title": "title only"}
    c = pd.Series(list(kinds), dtype=object).value_counts()
    return ", ".join(f"{int(n)} {names.get(k, k)}" for k, n in c.items()) or "none"
