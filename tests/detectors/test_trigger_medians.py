"""The masking fills of backdoor_trigger: medians of the non-carriers from columns sorted once."""

from __future__ import annotations

import numpy as np
import pytest

from poisonguard.detectors._trigger_presence import ColumnMedians


@pytest.mark.parametrize("seed", range(6))
def test_median_without_the_carriers_is_numpys_median_of_the_rest(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    # ties (integer pixels) and continuous values, float32 as the scan encodes them
    X = np.hstack([rng.integers(-3, 4, size=(n, 3)), rng.normal(size=(n, 3))]).astype(np.float32)
    medians = ColumnMedians(X)
    for _ in range(25):  # one instance answers many groups (its sorted columns are reused)
        carrier = rng.random(n) < rng.uniform(0.0, 0.95)
        if carrier.all():
            continue
        feats = rng.permutation(6)[: int(rng.integers(1, 7))]
        expected = np.median(X[np.ix_(~carrier, feats)], axis=0)
        np.testing.assert_array_equal(medians.without(carrier, feats), expected)
