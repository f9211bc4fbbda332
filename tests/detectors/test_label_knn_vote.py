"""The neighbour vote of ``knn_label``: the plain share, its ties broken by rank."""

from __future__ import annotations

import numpy as np
import pytest

from poisonguard.bench._metrics import auroc
from poisonguard.detectors import get_detector
from poisonguard.detectors._knn_label import TIE_BREAK, _vote_share


def test_plain_vote_is_the_share_of_agreeing_neighbours():
    agree = np.array([[1, 0, 1, 1], [0, 0, 0, 1]], dtype=bool)
    np.testing.assert_allclose(_vote_share(agree, rank_weighted=False), [0.75, 0.25])


def test_rank_breaks_a_tie_towards_the_row_whose_nearer_neighbours_agree():
    # same number of agreeing neighbours; the first row's agree nearer
    agree = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=bool)
    near, far = _vote_share(agree, rank_weighted=True)
    assert 0.5 >= near > far >= 0.5 - TIE_BREAK / 4


def test_rank_never_reorders_rows_of_different_plain_shares():
    rng = np.random.default_rng(0)
    agree = rng.random((5000, 20)) < rng.random((5000, 1))
    plain = _vote_share(agree, rank_weighted=False)
    tied = _vote_share(agree, rank_weighted=True)
    order = np.argsort(tied, kind="stable")
    assert np.all(np.diff(plain[order]) >= 0)  # sorted by the tie-broken share is sorted by the plain one
    # never up (a share on a rule's line stays on its side), and down by at most TIE_BREAK / k
    assert np.all(tied <= plain) and np.all(plain - tied <= TIE_BREAK / 20 + 1e-12)


def test_unanimous_votes_and_the_nearest_agreeing_keep_the_plain_share():
    agree = np.array([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 1, 1]], dtype=bool)
    tied = _vote_share(agree, rank_weighted=True)
    np.testing.assert_array_equal(tied[:3], [1.0, 0.0, 0.4])
    assert tied[3] == pytest.approx(0.4 - TIE_BREAK / 5)  # its two agreeing neighbours are the farthest


def _small_table(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three overlapping classes of 60-90 rows (a small table like cars) with 4% flips."""
    rng = np.random.default_rng(seed)
    sizes = (90, 70, 60)
    X = np.vstack([rng.normal(loc=(2.0 * c, (-1) ** c), size=(n, 2)) for c, n in enumerate(sizes)]).astype(np.float32)
    y = np.repeat(np.arange(3), sizes)
    flips = rng.choice(y.size, size=int(0.04 * y.size), replace=False)
    y[flips] = (y[flips] + rng.integers(1, 3, size=flips.size)) % 3
    mask = np.zeros(y.size, dtype=bool)
    mask[flips] = True
    return X, y, mask


def test_rank_weighted_vote_breaks_the_plain_votes_ties():
    X, y, _ = _small_table(0)
    X.flags.writeable = False
    plain = get_detector("knn_label", rank_weighted=False).fit(X, y).score_samples(X, y)
    weighted = get_detector("knn_label").fit(X, y).score_samples(X, y)
    assert np.unique(plain).size <= 21
    assert np.unique(weighted).size > 2 * np.unique(plain).size


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_weighted_vote_ranks_flips_on_a_small_table(seed):
    X, y, mask = _small_table(seed)
    X.flags.writeable = False
    plain = get_detector("knn_label", rank_weighted=False).fit(X, y).score_samples(X, y)
    weighted = get_detector("knn_label").fit(X, y).score_samples(X, y)
    assert auroc(weighted, mask) >= 0.85
    # the plain order is kept: breaking its ties can only move rows within a tie
    assert auroc(weighted, mask) >= auroc(plain, mask) - 0.01
