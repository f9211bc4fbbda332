"""The permutation-contrast detector: in-range, jointly implausible rows, and silence on clean tables."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from poisonguard.detectors._contrast import ContrastDetector, ContrastPresence


def _structured(n: int, seed: int) -> np.ndarray:
    """Six correlated columns driven by two latent factors (a table with joint structure)."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, 2))
    W = np.array([[1.0, 0.2], [0.8, -0.5], [0.3, 1.0], [-0.6, 0.7], [1.0, 1.0], [0.5, -1.0]])
    X = f @ W.T + 0.15 * rng.normal(size=(n, 6))
    return (X - X.mean(axis=0)) / X.std(axis=0)


def _with_in_range(X: np.ndarray, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Append rows whose every value is uniform within its column's range."""
    rng = np.random.default_rng(seed)
    k = int(round(rate * X.shape[0]))
    bad = rng.uniform(X.min(axis=0), X.max(axis=0), size=(k, X.shape[1]))
    return np.vstack([X, bad]), np.r_[np.zeros(X.shape[0], bool), np.ones(k, bool)]


@pytest.fixture(scope="module")
def poisoned() -> tuple[np.ndarray, np.ndarray, ContrastDetector]:
    X, mask = _with_in_range(_structured(400, 0), 0.05, 1)
    return X, mask, ContrastDetector().fit(X)


def test_finds_and_ranks_in_range_rows(poisoned) -> None:
    X, mask, det = poisoned
    assert det.presence_.present, det.presence_
    s = det.score_samples(X)
    assert roc_auc_score(mask, det.probability_) >= 0.95
    assert roc_auc_score(mask, s) >= 0.95
    flagged = s >= 0.5
    assert flagged[mask].mean() >= 0.5, det.presence_
    assert (flagged & ~mask).sum() <= 2


def test_clean_structured_table_is_silent() -> None:
    X = _structured(400, 2)
    det = ContrastDetector().fit(X)
    assert not det.presence_.present, det.presence_
    assert (det.score_samples(X) == 0.0).all()


def test_independent_columns_are_silent() -> None:
    # the shuffled copy of a table of independent columns is the table itself: nothing to tell
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 6))
    X, _ = _with_in_range(X, 0.05, 4)
    det = ContrastDetector().fit(X)
    assert det.presence_.separation < 0.7
    assert not det.presence_.present
    assert (det.score_samples(X) == 0.0).all()


def test_other_rows_use_the_fold_models_without_mutating(poisoned) -> None:
    X, mask, det = poisoned
    before = det.fit_scores_.copy()
    fresh, fresh_mask = _with_in_range(_structured(200, 5), 0.1, 6)
    s = det.score_samples(fresh)
    assert s.shape == (fresh.shape[0],) and np.isfinite(s).all()
    assert s[fresh_mask].mean() > s[~fresh_mask].mean() + 0.3
    np.testing.assert_array_equal(det.fit_scores_, before)
    np.testing.assert_array_equal(det.score_samples(X), det.score_samples(X))


def test_wide_table_is_contrasted_on_a_projection() -> None:
    rng = np.random.default_rng(7)
    base = _structured(300, 8)
    X = np.hstack([base @ rng.normal(size=(6, 40)) for _ in range(4)]) + 0.05 * rng.normal(size=(300, 160))
    det = ContrastDetector().fit(X)
    assert det.basis_ is not None and det.basis_.components.shape == (32, 160)
    assert det.score_samples(X).shape == (300,)


def test_explains_with_the_presence_test(poisoned) -> None:
    X, mask, det = poisoned
    row = int(np.flatnonzero(mask)[0])
    e = det.explain(X, None, row)
    assert "column-shuffled" in e.reason
    assert e.evidence["presence"]["present"] is True
    assert 0.0 <= e.evidence["p_shuffled"] <= 1.0
    assert isinstance(det.presence_, ContrastPresence)
