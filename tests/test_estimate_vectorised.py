"""The vectorised bootstrap of the estimates gives what the replicate loop gave.

Training side (``rpcc``'s factors of every bootstrap replicate, fitted at once): equal to fitting
each resample on its own, to 1e-9. Target side (``pcc``, ``rpcc``: counts drawn from their exact
multinomial distribution instead of resampling issues and drawing each outcome): the same point
estimates, bit for bit, and 95% intervals within 0.01 of the loop's (documented tolerance: the two
use other random numbers; with 1,000 replicates the percentiles differ by Monte Carlo noise of
a few tenths of a percentage point); the same seed gives the same intervals.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.report import estimate as E


def _calibration(n: int = 200, k: int = 6, repeats: int = 2, seed: int = 5) -> E.Calibration:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:k - 1] = np.arange(k - 1)  # every category but the last one present
    logits = rng.normal(size=(repeats, n, k))
    logits[:, np.arange(n), y] += 1.5
    P = np.exp(logits)
    P /= P.sum(axis=2, keepdims=True)
    return E.Calibration([f"c{i}" for i in range(k)], y, P, kinds=["full"] * (n - 50) + ["title"] * 50)


def _target(m: int = 3000, k: int = 6, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    T = np.exp(rng.normal(size=(m, k)) * 1.3)
    T /= T.sum(axis=1, keepdims=True)
    return T, rng.choice(["a", "b", "c"], m, p=[0.6, 0.3, 0.1]), rng.choice(["full", "title"], m, p=[0.8, 0.2])


def test_batched_prior_factors_equal_one_by_one():
    cal = _calibration()
    rng = np.random.default_rng(1)
    draws = [rng.integers(0, len(cal.y), len(cal.y)) for _ in range(40)]
    weights = np.stack([np.bincount(ci, minlength=len(cal.y)) for ci in draws]).astype(float)
    got = E.prior_factors_batch(cal.y, cal.proba, cal.k, weights)
    for ci, row in zip(draws, got):
        np.testing.assert_allclose(row, E.prior_factors(cal.y[ci], cal.proba[:, ci], cal.k), rtol=1e-9, atol=1e-12)


def test_bootstrap_statistics_equal_the_loop():
    cal = _calibration()
    E._STAT_CACHE.clear()
    stats = E.bootstrap_statistics(cal, "rpcc", 60, seed=3)
    rng = np.random.default_rng([3, 1])  # the replicates' resamples, drawn as bootstrap_statistics draws them
    kinds = np.asarray(cal.kinds, dtype=object)
    for st in stats:
        ci = rng.integers(0, len(cal.y), len(cal.y))
        ref = E.kind_statistics("rpcc", cal.y[ci], cal.proba[:, ci], kinds[ci], cal.k)
        assert ref.keys() == st.keys()
        for key in ref:
            np.testing.assert_allclose(st[key], ref[key], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["rpcc", "pcc"])
def test_vectorised_intervals_match_the_loop(method):
    cal = _calibration()
    T, groups, kinds = _target()
    gold = {"a": np.array([3.0, 1, 0, 0, 2, 0]), "d": np.array([0.0, 4, 0, 0, 0, 1])}
    E._STAT_CACHE.clear()
    fast = E.estimate_groups(cal, T, groups, gold=gold, method=method, bootstrap=1000, seed=0, target_kinds=kinds)
    again = E.estimate_groups(cal, T, groups, gold=gold, method=method, bootstrap=1000, seed=0, target_kinds=kinds)
    loop = E.estimate_groups(cal, T, groups, gold=gold, method=method, bootstrap=1000, seed=0, target_kinds=kinds,
                             vectorised=False)
    assert set(fast.groups) == set(loop.groups) == {"a", "b", "c", "d", "total"}
    for g in fast.groups:
        f, lp = fast.groups[g], loop.groups[g]
        assert np.array_equal(f.counts, lp.counts) and np.array_equal(f.shares, lp.shares)
        assert np.array_equal(f.low, again.groups[g].low) and np.array_equal(f.high, again.groups[g].high)
        assert np.abs(f.low - lp.low).max() < 0.01 and np.abs(f.high - lp.high).max() < 0.01, g
        assert (f.low <= f.shares + 1e-9).all() and (f.shares <= f.high + 1e-9).all()


def test_drawn_counts_have_the_loop_mean():
    """The multinomial's mean is the mean recalibrated probability times the column size."""
    cal = _calibration()
    T, _, kinds = _target(m=500)
    E._STAT_CACHE.clear()
    stats = E.bootstrap_statistics(cal, "rpcc", 5, seed=0)
    st = [stats[0]] * 4000  # one training replicate, many draws: the mean is known exactly
    counts = E._drawn_counts("rpcc", st, T, kinds, cal.k, np.random.default_rng(0))
    expect = np.zeros(cal.k)
    for kind in ("full", "title"):
        expect += E.recalibrate(T[kinds == kind], stats[0].get(kind, stats[0][E.POOLED])).sum(axis=0)
    assert counts.sum(axis=1).tolist() == [500.0] * 4000
    np.testing.assert_allclose(counts.mean(axis=0), expect, atol=1.0)
