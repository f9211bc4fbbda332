"""The label group on a class that genuinely lives mixed in one region: its rows there are not flips.

A 20-neighbour vote of a row in a region where its class holds 15-20% of the rows is
Binomial(20, 0.15-0.2): many such rows get 0-2 votes, which the label detectors read
through their 10% noise channel as P(label correct) 0. The neighbourhood share of the
row's label among its neighbours' neighbourhoods (:func:`neighbourhood_label_share`)
averages about 20 such votes; a row it excuses is neither a near-certain error in the
presence test nor a candidate of the false-discovery rule.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from poisonguard.detectors import KNNLabelDetector
from poisonguard.detectors._neighbors import self_neighbours

R = importlib.import_module("poisonguard.scan._label_rules")

N_PURE, N_MIX = 400, 500


def _table(seed: int, *, mix: float, flip: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three separated classes of N_PURE rows and a fourth blob labelled class 1 with probability ``mix``, else 0.

    ``flip``: that share of all rows, drawn from the three pure blobs, gets another of the three labels.
    """
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0, 0], [6, 0, 0, 0], [0, 6, 0, 0], [0, 0, 6, 0]], dtype=float)
    X = np.vstack([rng.normal(c, 1.0, (N_PURE if i < 3 else N_MIX, 4)) for i, c in enumerate(centres)])
    y = np.r_[np.zeros(N_PURE, int), np.ones(N_PURE, int), np.full(N_PURE, 2), (rng.random(N_MIX) < mix).astype(int)]
    mask = np.zeros(y.size, dtype=bool)
    if flip:
        rows = rng.choice(3 * N_PURE, int(flip * y.size), replace=False)
        y[rows] = (y[rows] + rng.integers(1, 3, rows.size)) % 3
        mask[rows] = True
    return X, y, mask


def _label_inputs(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The neighbour vote's P(label correct) and the neighbourhood share from the same 20-neighbour graph."""
    p = 1.0 - KNNLabelDetector().fit(X, y).score_samples(X, y)
    share = R.neighbourhood_label_share(self_neighbours(X, 20).indices, y)
    return p, share


def test_share_leaves_the_row_out_and_counts_two_hops():
    # rows 0-2 are each other's neighbours; row 3's neighbours are 0 and 1
    nb = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    y = np.array([0, 0, 1, 1])
    share = R.neighbourhood_label_share(nb, y)
    # row 2 (label 1): first hop {0, 1} -> 0 of 2; second hop N(0) = {1, 2}, N(1) = {0, 2}
    # without row 2 itself -> {1}, {0}: 0 of 2. Nothing of its own label around it.
    assert share[2] == 0.0
    # row 3 (label 1): first hop {0, 1}: 0 of 2; second hop {1, 2} and {0, 2}: row 2 twice (label 1) of 4
    assert share[3] == pytest.approx(2 / 6)
    # row 0 (label 0): first hop {1, 2}: 1 of 2; second hop N(1) minus row 0 = {2}, N(2) minus row 0 = {1}: 1 of 2
    assert share[0] == pytest.approx(2 / 4)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_class_that_lives_15_percent_mixed_in_one_region_keeps_its_rows(seed):
    X, y, _ = _table(seed, mix=0.15)
    p, share = _label_inputs(X, y)
    mixed = np.arange(y.size) >= 3 * N_PURE
    # the rule without the share: the mixed region's class-1 rows are flips to it (the failure)
    before = R.label_group_flags(p, y, n_classes=3).flags
    assert before[mixed & (y == 1)].sum() >= 10
    after = R.label_group_flags(p, y, n_classes=3, label_share=share)
    assert after.flags.mean() <= 0.01
    assert after.flags[y == 1].mean() <= 0.05
    assert not after.presence[1].poisoned


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_five_percent_flips_in_confident_regions_are_still_flagged(seed):
    X, y, mask = _table(seed, mix=0.2, flip=0.05)
    p, share = _label_inputs(X, y)
    r = R.label_group_flags(p, y, n_classes=3, label_share=share)
    mixed = np.arange(y.size) >= 3 * N_PURE
    assert r.flags[mask].mean() >= 0.9
    # the mixed region's own rows are not taken with them
    assert r.flags[mixed].sum() <= 2
    assert r.flags[~mask].mean() <= 0.01


def test_natural_floor_is_the_channel_read_of_the_share():
    # binary, 10% channel: a share of 0.1 is all noise, 0.5 is P 0.5, 0.9 and above is 1
    floor = R.natural_floor(np.array([0.0, 0.1, 0.5, 0.9, 1.0]), 2, noise_rate=0.1)
    assert floor == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def test_the_floor_excuses_a_row_but_never_vouches_for_it():
    # 5 near-certain errors of a recognised class: poisoned. Where their neighbourhoods hold
    # their label at 30%, they are no errors; a doubtful row stays doubtful (at most LABEL_CAP).
    p = np.r_[np.zeros(5), np.full(10, 0.3), np.ones(185)]
    y = np.zeros(200, dtype=int)
    assert R.label_group_flags(p, y).flags[:5].all()
    share = np.r_[np.full(5, 0.3), np.full(10, 0.95), np.ones(185)]
    r = R.label_group_flags(p, y, label_share=share)
    assert not r.flags.any() and not r.presence[0].poisoned
    assert r.presence[0].n_suspects == 0
    lifted = R.label_presence(p, y, label_share=share)[0]
    assert "0 of its 15 doubtful rows" in lifted.detail
