"""The confident fold model on float32 tables: a column constant in a fold must not stall the fit."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from poisonguard.detectors import ConfidentLearningDetector
from poisonguard.detectors._confident import NoiseAwareLogistic


def _blobs(n: int, d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    return centres[y] + rng.normal(size=(n, d)), y


def test_a_float32_column_constant_in_the_fit_rows_does_not_stall_the_fit():
    # a standardized rare column is constant (one float32 value) wherever its rare row is
    # absent; float32 std of such a column is a rounding residue, not 0
    X, y = _blobs(800, 5, 3, seed=0)
    const = np.full((800, 1), -0.023612, dtype=np.float32)
    assert const.std() > 0  # the residue the fit must not divide by
    with_const = NoiseAwareLogistic(C=0.1, noise_rate=0.1).fit(np.hstack([X.astype(np.float32), const]), y)
    without = NoiseAwareLogistic(C=0.1, noise_rate=0.1).fit(X.astype(np.float32), y)
    assert with_const.n_iter_ > 5
    np.testing.assert_allclose(with_const.predict_proba(np.hstack([X, const])), without.predict_proba(X), atol=5e-3)


def test_flips_rank_on_a_float32_table_with_rare_columns():
    # sklearn digits as the scan encodes it (float32, standardized): border pixels are
    # nonzero in a handful of rows, so some folds see them constant
    from poisonguard.attacks import poison
    from poisonguard.datasets import load_dataset
    from poisonguard.encoding import TableEncoder
    from poisonguard.validation import prepare_table

    p = poison("flip", load_dataset("digits").frame, label="label", rate=0.1, seed=0)
    table = prepare_table(p.frame, label="label")
    X = TableEncoder().fit_transform(table.frame, table.features, dtype=np.float32)
    det = ConfidentLearningDetector(random_state=0).fit(X, table.y)
    assert min(m.n_iter_ for m in det.models_) > 5  # no fold stopped at its starting point
    assert roc_auc_score(np.asarray(p.mask), det.score_samples(X, table.y)) >= 0.99  # 0.908 with two stalled folds
