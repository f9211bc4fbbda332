"""The PCA basis shared by the representation models on wide tables."""

from __future__ import annotations

import numpy as np

from poisonguard.detectors import BackdoorSpectralDetector, ConfidentLearningDetector
from poisonguard.detectors._projection import SHARED_COMPONENTS, WIDE_COLUMNS, pca_basis


def _wide(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    latent = rng.normal(0, 2.0, (4, 10))[y] + rng.normal(size=(n, 10))
    X = latent @ rng.normal(size=(10, d)) + rng.normal(scale=0.3, size=(n, d))
    return X.astype(np.float32), y


def test_confident_and_spectral_share_one_basis_on_a_wide_table():
    X, y = _wide(600, WIDE_COLUMNS + 72, seed=0)
    X.flags.writeable = False
    conf = ConfidentLearningDetector(random_state=0).fit(X, y)
    spec = BackdoorSpectralDetector(random_state=0).fit(X, y)
    k = spec.components_.shape[0]
    assert conf.projection_.components.shape[0] == SHARED_COMPONENTS
    # the spectral detector's directions are the leading ones of the shared basis, in order
    np.testing.assert_array_equal(spec.components_, conf.projection_.components[:k])


def test_the_basis_does_not_depend_on_which_caller_came_first():
    X, y = _wide(500, WIDE_COLUMNS + 40, seed=1)
    first = pca_basis(X, n_components=32, max_fit_rows=20000, random_state=0, rng=np.random.default_rng(0))
    Y = X.copy()
    Y[0, 0] += 1.0  # another matrix: its own basis, never the memoised one
    other = pca_basis(Y, n_components=64, max_fit_rows=20000, random_state=0, rng=np.random.default_rng(0))
    again = pca_basis(X, n_components=64, max_fit_rows=20000, random_state=0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(first.components, again.components[:32])
    assert not np.array_equal(other.mean, again.mean)


def test_a_narrow_table_gets_exactly_the_components_asked_for():
    from sklearn.utils.extmath import randomized_svd

    X, _ = _wide(400, 30, seed=2)
    b = pca_basis(X, n_components=8, max_fit_rows=20000, random_state=0, rng=np.random.default_rng(0))
    _, s, vt = randomized_svd(X - X.mean(axis=0), 8, n_oversamples=10, n_iter=4, random_state=0)
    np.testing.assert_allclose(b.components, vt, atol=1e-6)
    np.testing.assert_allclose(b.sd, s / np.sqrt(X.shape[0] - 1), rtol=1e-6)
