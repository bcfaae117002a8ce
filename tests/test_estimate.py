"""Estimation math: Wilson intervals, corrected prevalence estimators, bootstrap intervals, report rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.label_files.files import read_labels
from pipeline.report.estimate import (Calibration, add_wilson, estimate_groups, estimate_rows, point_estimate,
                                      prior_factors, recalibrate, solve_adjusted, wilson)
from pipeline.report.render import render, table_frame
from pipeline.report.tables import build_report


def test_wilson_known_values():
    # Wilson 95% of 148/200 (textbook formula, z = 1.96)
    lo, hi = wilson(148, 200)
    assert lo == pytest.approx(0.67509, abs=1e-4) and hi == pytest.approx(0.79586, abs=1e-4)
    assert wilson(0, 100)[0] == 0.0 and 0.03 < wilson(0, 100)[1] < 0.04
    assert wilson(100, 100)[1] == 1.0
    assert wilson(0, 0) == (0.0, 0.0)


def test_gold_report_rows_gain_wilson_ci_and_method():
    rep = add_wilson(build_report(read_labels("labels/study.csv")))
    row = next(r for r in rep.tables["stage"] if r["category"] == "node_conversion")
    assert row["method"] == "gold"
    assert row["ci"]["total"][0] < row["share"]["total"] < row["ci"]["total"][1]
    d = json.loads(render(rep, "json"))
    assert set(d) >= {"n", "converters", "tables"}
    jrow = d["tables"]["symptom"][0]
    assert set(jrow) >= {"category", "counts", "share", "ci", "method"}
    # every text format shows the interval
    assert "[" in render(rep, "markdown") and "ci_low" in render(rep, "csv") and "[" in render(rep, "latex")
    assert "Method" in table_frame(rep, "stage").columns


def _calibration(rng, n, true_p, accuracy):
    """Synthetic classifier whose errors do not depend on the prevalence (the premise of adjusted counting):
    right with probability ``accuracy``, else a uniformly drawn other category; its reported probability
    is 0.9 for the predicted category."""
    k = len(true_p)
    y = rng.choice(k, n, p=true_p)
    wrong = (y + rng.integers(1, k, n)) % k
    pred = np.where(rng.random(n) < accuracy, y, wrong)
    out = np.full((n, k), 0.1 / (k - 1))
    out[np.arange(n), pred] = 0.9
    return y, out


def test_adjusted_count_recovers_prevalence_under_prior_shift():
    rng = np.random.default_rng(1)
    k = 3
    y_cal, p_cal = _calibration(rng, 4000, [0.6, 0.3, 0.1], 0.6)
    y_t, p_t = _calibration(rng, 4000, [0.2, 0.3, 0.5], 0.6)
    truth = np.bincount(y_t, minlength=k) / len(y_t)
    cc = point_estimate("cc", y_cal, p_cal[None], p_t, k)
    acc = point_estimate("acc", y_cal, p_cal[None], p_t, k)
    pacc = point_estimate("pacc", y_cal, p_cal[None], p_t, k)
    assert np.abs(acc - truth).max() < 0.05 and np.abs(cc - truth).max() > 0.08
    assert np.abs(pacc - truth).max() < 0.05
    for est in (cc, acc, pacc):
        assert est.sum() == pytest.approx(1.0) and (est >= 0).all()


def test_solve_adjusted_stays_on_simplex_when_confusion_is_singular():
    C = np.array([[0.5, 0.5], [0.5, 0.5]])
    p = solve_adjusted(C, np.array([0.7, 0.3]))
    assert p.sum() == pytest.approx(1.0) and (p >= 0).all()


def test_prior_factors_match_training_counts():
    rng = np.random.default_rng(2)
    y = rng.choice(3, 500, p=[0.7, 0.2, 0.1])
    P = rng.dirichlet([1, 1, 1], 500)  # a classifier biased to uniform
    r = prior_factors(y, P[None], 3)
    mass = recalibrate(P, r).sum(axis=0)
    assert mass == pytest.approx(np.bincount(y, minlength=3), rel=1e-3)


@pytest.mark.parametrize("method", ["cc", "pcc", "rpcc", "acc", "pacc"])
def test_estimate_groups_intervals_and_total(method):
    rng = np.random.default_rng(3)
    y_cal, p_cal = _calibration(rng, 300, [0.5, 0.3, 0.2], 0.75)
    _, p_t = _calibration(rng, 120, [0.5, 0.3, 0.2], 0.75)
    groups = ["a"] * 70 + ["b"] * 50
    cal = Calibration(["x", "y", "z"], y_cal, p_cal)
    est = estimate_groups(cal, p_t, groups, method=method, bootstrap=200, seed=0)
    assert set(est.groups) == {"a", "b", "total"}
    for g in est.groups.values():
        assert g.shares.sum() == pytest.approx(1.0)
        assert (g.low <= g.high).all() and (g.low >= 0).all() and (g.high <= 1).all()
    assert est.groups["total"].counts.sum() == pytest.approx(120)
    assert est.groups["a"].n == 70 and est.groups["total"].n == 120
    rows = estimate_rows(est, ["a", "b", "total"])
    assert [r["category"] for r in rows] == ["x", "y", "z"]
    assert all(r["method"] == method and len(r["ci"]["total"]) == 2 for r in rows)
    # same seed, same numbers
    again = estimate_groups(cal, p_t, groups, method=method, bootstrap=200, seed=0)
    assert np.allclose(again.groups["total"].low, est.groups["total"].low)


def test_gold_counts_are_kept_exactly_and_only_the_rest_is_estimated():
    rng = np.random.default_rng(4)
    y_cal, p_cal = _calibration(rng, 300, [0.5, 0.5], 0.9)
    cal = Calibration(["x", "y"], y_cal, p_cal)
    # group "a": 10 labelled issues (all x) and nothing to estimate: its share is exact
    est = estimate_groups(cal, np.zeros((0, 2)), [], gold={"a": np.array([10.0, 0.0])}, method="rpcc", bootstrap=100)
    a = est.groups["a"]
    assert a.shares.tolist() == [1.0, 0.0] and a.low.tolist() == [1.0, 0.0] and a.high.tolist() == [1.0, 0.0]
    assert a.n == 10 and a.n_estimated == 0


def test_estimated_counts_of_a_column_add_up_to_its_issues():
    # three categories of a third each: rounding each count alone gives 3.3 + 3.3 + 3.3 = 9.9, not 10
    rng = np.random.default_rng(5)
    y_cal, p_cal = _calibration(rng, 300, [0.4, 0.3, 0.3], 0.8)
    cal = Calibration(["x", "y", "z"], y_cal, p_cal)
    target = np.full((10, 3), 1 / 3)
    est = estimate_groups(cal, target, ["a"] * 10, method="pcc", bootstrap=0, seed=0)
    rows = estimate_rows(est, ["a", "total"])
    for col in ("a", "total"):
        assert round(sum(r["counts"][col] for r in rows), 6) == 10
    # and on the spread-out estimates of a real-looking mix
    _, p_t = _calibration(rng, 41, [0.5, 0.3, 0.2], 0.7)
    est = estimate_groups(cal, p_t, ["a"] * 20 + ["b"] * 21, method="rpcc", bootstrap=0, seed=0)
    rows = estimate_rows(est, ["a", "b", "total"])
    assert [round(sum(r["counts"][c] for r in rows), 6) for c in ("a", "b", "total")] == [20, 21, 41]
    assert all(abs(r["counts"][c] - float(est.groups[c].counts[j])) <= 0.1 + 1e-9
               for j, r in enumerate(rows) for c in ("a", "b", "total"))


def test_each_target_kind_is_corrected_by_training_issues_of_its_own_kind():
    """A model trained on mixed text errs differently on titles than on full text: a crawled (full-text)
    target must be corrected by what the full-text training issues say, not by the titles' errors."""
    rng = np.random.default_rng(7)
    k = 2
    truth = [0.3, 0.7]

    def kind_sample(n, kind):
        y = rng.choice(k, n, p=truth)
        # on full text the classifier is sharp; on titles it leans to category 0 whatever the truth
        p = np.where(y[:, None] == np.arange(k), 0.85, 0.15) if kind == "full" else np.tile([0.7, 0.3], (n, 1))
        return y, p

    yf, pf = kind_sample(300, "full")
    yt, pt = kind_sample(300, "title")
    cal = Calibration(["x", "y"], np.concatenate([yf, yt]), np.vstack([pf, pt]), kinds=["full"] * 300 + ["title"] * 300)
    y_target, p_target = kind_sample(400, "full")
    gold = np.bincount(y_target, minlength=k) / len(y_target)
    matched = estimate_groups(cal, p_target, ["a"] * 400, method="rpcc", bootstrap=0, target_kinds=["full"] * 400)
    pooled = estimate_groups(cal, p_target, ["a"] * 400, method="rpcc", bootstrap=0, target_kinds=["full"] * 400,
                             match_kinds=False)
    err_matched = abs(matched.groups["a"].shares - gold).max()
    err_pooled = abs(pooled.groups["a"].shares - gold).max()
    assert err_matched < 0.05 < err_pooled
    # too few training issues of a kind: that kind falls back to all of them
    few = Calibration(["x", "y"], np.concatenate([yf, yt[:10]]), np.vstack([pf, pt[:10]]),
                      kinds=["full"] * 300 + ["title"] * 10)
    t = estimate_groups(few, p_target[:50], ["a"] * 50, method="rpcc", bootstrap=0, target_kinds=["title"] * 50)
    p = estimate_groups(few, p_target[:50], ["a"] * 50, method="rpcc", bootstrap=0, target_kinds=["title"] * 50,
                        match_kinds=False)
    assert np.allclose(t.groups["a"].shares, p.groups["a"].shares)
    # intervals are drawn per kind too, and hold the gold share
    est = estimate_groups(cal, p_target, ["a"] * 400, method="rpcc", bootstrap=300, seed=1, target_kinds=["full"] * 400)
    g = est.groups["a"]
    assert ((g.low <= gold) & (gold <= g.high)).all()
