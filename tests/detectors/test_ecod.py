"""The ECOD detector: per-column empirical tail probabilities, summed as -log."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from poisonguard.detectors import ECODDetector, default_detectors, get_detector
from poisonguard.errors import ConfigError


def _in_range_table(seed: int = 0, n: int = 2000, k: int = 40, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Normal rows, then rows whose every value is inside its column's range but in its outer 5% tail."""
    rng = np.random.default_rng(seed)
    clean = rng.standard_normal((n, d))
    lo, hi = np.quantile(clean, 0.95, axis=0), clean.max(axis=0)
    side = np.where(rng.random((k, d)) < 0.5, -1.0, 1.0)
    injected = side * rng.uniform(lo, hi, size=(k, d))
    return np.r_[clean, injected], np.r_[np.zeros(n, bool), np.ones(k, bool)]


def test_rows_in_the_tails_of_many_columns_rank_first():
    X, truth = _in_range_table()
    s = get_detector("ecod").fit(X).score_samples(X)
    assert roc_auc_score(truth, s) >= 0.99
    assert (X[truth] <= X[~truth].max(axis=0)).all()  # in range: no value beyond the clean maximum


def test_a_repeated_column_counts_about_once():
    rng = np.random.default_rng(1)
    a = rng.standard_normal(3000)
    X = np.c_[np.tile(a[:, None], 5), rng.standard_normal((3000, 2))]
    X[0] = [a.max()] * 5 + [0.0, 0.0]  # extreme in the one measurement repeated five times
    X[1, :5] = 0.0
    X[1, 5:] = X[:, 5:].max(axis=0)  # extreme in two independent columns
    s = get_detector("ecod").fit(X).score_samples(X)
    assert s[1] > s[0]
    np.testing.assert_allclose(ECODDetector().fit(X).weights_, [0.2] * 5 + [1.0, 1.0])


def test_explains_the_most_extreme_columns():
    X, truth = _in_range_table(d=4)
    X[0] = [0.0, 0.0, 0.0, 50.0]  # far beyond column 3's range
    det = get_detector("ecod").fit(X)
    e = det.explain(X, None, 0)
    assert next(iter(e.evidence["tails"])) == 3 and "{feature:3} in its high tail" in e.reason


def test_new_rows_outside_the_range_score_as_the_most_extreme():
    X, _ = _in_range_table()
    det = get_detector("ecod").fit(X)
    new = np.r_[X[:1] * 0.0, np.full((1, X.shape[1]), 1e6)]
    s = det.score_samples(new)
    assert np.isfinite(s).all() and s[1] >= det.score_samples(X).max()


def test_a_reduced_reference_keeps_the_ranking():
    X, truth = _in_range_table(n=6000)
    full = get_detector("ecod").fit(X).score_samples(X)
    small = get_detector("ecod", max_reference=600).fit(X).score_samples(X)
    assert np.corrcoef(full, small)[0, 1] >= 0.99
    assert roc_auc_score(truth, small) >= roc_auc_score(truth, full) - 0.005


def test_settings_are_checked_and_it_runs_by_default():
    with pytest.raises(ConfigError, match="max_reference must be >= 2, got 1"):
        get_detector("ecod", max_reference=1).fit(np.zeros((5, 2)))
    assert "ecod" in default_detectors(labeled=False)
