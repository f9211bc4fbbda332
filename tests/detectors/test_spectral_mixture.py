"""The 1-D mixture of backdoor_spectral seeds exactly as scikit-learn's k-means++ does."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import kmeans_plusplus

from poisonguard.detectors._spectral_search import _kmeans_plusplus_1d


@pytest.mark.parametrize("seed", range(8))
def test_seeds_and_generator_state_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=int(rng.integers(5, 2000))), rng.normal(4, 0.3, size=int(rng.integers(0, 100)))])
    if seed % 2:
        x = np.round(x, 1)  # ties, as on quantised columns
    ours, theirs = np.random.RandomState(seed), np.random.RandomState(seed)
    expected = kmeans_plusplus(x.reshape(-1, 1), 2, random_state=theirs)[1]
    np.testing.assert_array_equal(_kmeans_plusplus_1d(x, ours), expected)
    assert ours.uniform() == theirs.uniform()  # the next initialisation draws the same numbers
