"""The label detectors' models: the confident fold model's optimum and its wide-table setting."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from poisonguard.detectors import ConfidentLearningDetector
from poisonguard.detectors._confident import NoiseAwareLogistic


def _blobs(n: int, d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return centres[y] + rng.normal(size=(n, d)), y


@pytest.mark.parametrize("spread", [1.0, 1e3])
def test_noise_free_fit_reaches_scikit_learns_optimum_however_the_columns_are_scaled(spread):
    # without a noise channel the objective is scikit-learn's multinomial one, so both
    # optimisers must land on the same probabilities; columns whose scales differ by
    # orders of magnitude (an unwhitened PCA projection) are where L-BFGS used to stop short
    X, y = _blobs(600, 6, 3, seed=0)
    X = X * np.geomspace(1.0, spread, X.shape[1])
    ours = NoiseAwareLogistic(C=0.1, noise_rate=0.0).fit(X, y)
    ref = LogisticRegression(C=0.1, max_iter=10_000, tol=1e-10).fit(X, y)
    assert ours.n_iter_ < 300  # converged, not stopped at max_iter
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=2e-3)


def test_noise_channel_keeps_probabilities_sharp_where_flips_sit():
    X, y = _blobs(600, 4, 2, seed=1)
    noisy = y.copy()
    flips = np.random.default_rng(1).choice(600, size=60, replace=False)
    noisy[flips] = 1 - noisy[flips]
    plain = NoiseAwareLogistic(C=0.1, noise_rate=0.0).fit(X, noisy).predict_proba(X)
    corrected = NoiseAwareLogistic(C=0.1, noise_rate=0.1).fit(X, noisy).predict_proba(X)
    rows = np.arange(600)
    # the flipped rows' given label gets less probability under the corrected model
    assert corrected[rows[flips], noisy[flips]].mean() < plain[rows[flips], noisy[flips]].mean()


def test_wide_table_projection_scales_the_penalty_and_ranks_flips():
    rng = np.random.default_rng(2)
    n, k, d = 900, 4, 400
    # low-rank class structure spread over many correlated columns, as in images or embeddings
    latent, y = _blobs(n, 12, k, seed=2)
    X = latent @ rng.normal(size=(12, d)) / np.sqrt(12) + rng.normal(scale=0.5, size=(n, d))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    noisy = y.copy()
    flips = rng.choice(n, size=90, replace=False)
    noisy[flips] = (noisy[flips] + rng.integers(1, k, size=90)) % k
    det = ConfidentLearningDetector(random_state=0).fit(X, noisy)
    assert det.projection_ is not None
    assert det.C_ == pytest.approx(det.C * det.max_features / d)
    mask = np.zeros(n, dtype=bool)
    mask[flips] = True
    assert roc_auc_score(mask, det.score_samples(X, noisy)) >= 0.99
    # a narrow table keeps C as given
    narrow = ConfidentLearningDetector(random_state=0).fit(X[:, :20], noisy)
    assert narrow.projection_ is None and narrow.C_ == narrow.C
