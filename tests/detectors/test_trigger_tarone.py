"""Tarone's correction of the token search: untestable candidates do not dilute the level."""

from __future__ import annotations

import numpy as np
import pytest

from poisonguard.detectors import BackdoorTriggerDetector
from poisonguard.detectors._trigger_search import tarone_level


def test_tarone_is_bonferroni_when_every_test_can_reject():
    assert tarone_level(np.full(50, 1e-12), 0.01) == pytest.approx(0.01 / 50)


def test_tarone_leaves_out_tests_that_cannot_reach_the_level():
    # 10 tests that can reach any level, 990 whose smallest p-value is 0.02 (a value with
    # three carriers at prior 0.27): the level is that of 10 tests, not 1,000
    p_min = np.r_[np.full(10, 1e-12), np.full(990, 0.02)]
    assert tarone_level(p_min, 0.01) == pytest.approx(0.01 / 10)
    # a test counts once its smallest p-value reaches the level it would get
    p_min = np.r_[np.full(10, 1e-12), np.full(5, 0.01 / 15)]
    assert tarone_level(p_min, 0.01) == pytest.approx(0.01 / 15)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tarone_level_is_never_below_bonferroni_and_controls_the_count(seed):
    rng = np.random.default_rng(seed)
    p_min = 10.0 ** rng.uniform(-9, 0, size=500)
    level = tarone_level(p_min, 0.05)
    assert level >= 0.05 / p_min.size
    m = round(0.05 / level)
    assert (p_min <= level).sum() <= m  # Tarone's condition at the level chosen
    if m > 1:  # and m is the smallest that meets it
        assert (p_min <= 0.05 / (m - 1)).sum() > m - 1


def _table(seed: int, *, stamp: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """240 rows, two informative columns, one continuous and twelve integer noise columns (0..39).

    The integer columns give ~480 value candidates with a handful of carriers each, none
    of which can be significant; with ``stamp`` 12 rows of class 0 get the continuous
    column just above its range and label 1 (a one-column out-of-range trigger).
    """
    rng = np.random.default_rng(seed)
    n = 240
    y = (rng.random(n) < 0.4).astype(np.int64)
    X = np.hstack([rng.normal(size=(n, 2)) + 2.0 * y[:, None], rng.normal(size=(n, 1)),
                   rng.integers(0, 40, size=(n, 12)).astype(float)])
    mask = np.zeros(n, dtype=bool)
    if stamp:
        src = rng.choice(np.flatnonzero(y == 0), size=12, replace=False)
        X[src, 2] = X[:, 2].max() + 0.1 * np.ptp(X[:, 2])
        y[src] = 1
        mask[src] = True
    return (X - X.mean(axis=0)) / X.std(axis=0), y, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_one_column_trigger_among_many_small_candidates_is_found(seed):
    # 0.45**12 ~ 7e-5 for the stamped value; Bonferroni over every candidate x class
    # test (~1e-5 here) missed it, although almost none of those tests could ever reject
    X, y, mask = _table(seed, stamp=True)
    det = BackdoorTriggerDetector().fit(X, y)
    s = det.score_samples(X, y)
    assert det.report_["poisoned_classes"] == [1]
    assert (s[mask] >= 0.5).all() and not (s[~mask] > 0).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_same_table_without_the_stamp_has_no_trigger(seed):
    X, y, _ = _table(seed, stamp=False)
    det = BackdoorTriggerDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == []
    assert not det.score_samples(X, y).any()


def test_presence_level_counts_only_groups_that_could_pass():
    # groups with few carriers in a class the masked model mostly misses can never reach
    # the level; a natural value proposed beside the trigger must not cost it its presence
    from poisonguard.detectors._trigger_presence import MaskedDisagreement, TokenCluster

    def masked(n1: int, null: float, n0: int = 100) -> MaskedDisagreement:
        return MaskedDisagreement(cluster=TokenCluster(label=0, members=(0,)), features=np.zeros(1, np.int64),
                                  fills=np.zeros(1), n_carriers=n1, n_disagree=0, n_rest=n0, null_rate=null,
                                  disagreeing=np.zeros(0, np.int64), predicted=np.zeros(0, np.int64))

    assert masked(3, 0.5).min_p_value(3) == pytest.approx(0.125)
    assert masked(2, 0.5).min_p_value(3) == 1.0  # fewer carriers than min_count: cannot run
    assert masked(30, 0.5, n0=10).min_p_value(3) == 1.0  # too few rows to estimate the null
    X, y, mask = _table(0, stamp=True)
    det = BackdoorTriggerDetector().fit(X, y)
    assert det.presence_level_ >= 0.01 / max(len(det.groups_), 1)
    present = [g for g in det.groups_ if g.present]
    assert present and all(g.p_value < det.presence_level_ for g in present)
