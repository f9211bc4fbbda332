"""The anomaly detectors' tail tests and flags take injected rows, not a clean class's tail (issue 9).

Scores are simulated (pure numpy, milliseconds): a detector's raw scores on a table of
several classes, one of which a detector scores with a heavier upper tail (a spread-out
class, or a sub-cluster of it: Image Segments' class 6 under ``ecod``).
"""

from __future__ import annotations

import numpy as np
import pytest

from poisonguard.scan._anomaly_rules import (
    ROW_EXPECTED_MAX,
    anomaly_group,
    robust_z,
    tail_excess,
)


def _classes(rng: np.random.Generator, n_per: int = 300, k: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """k classes of normal scores; the last has a tight sub-cluster (10% of it) at 4.6."""
    s = [rng.normal(0.0, 1.0, n_per) for _ in range(k - 1)]
    last = rng.normal(0.0, 1.0, n_per)
    top = rng.choice(n_per, n_per // 10, replace=False)
    last[top] = rng.normal(4.6, 0.05, top.size)  # robust z about 4.5: short of every flag line
    s.append(last)
    return np.concatenate(s), np.repeat(np.arange(k), n_per)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clean_class_with_a_heavy_tail_is_no_excess_once_classes_are_known(seed):
    raw, y = _classes(np.random.default_rng(seed))
    pooled = tail_excess(raw)
    aware = tail_excess(raw, y)
    # pooled, the sub-cluster looks like injected rows; the class's own tail explains it
    assert pooled.log10p >= 6.0
    assert aware.log10p < 6.0
    g = anomaly_group(raw, y)
    assert not g.presence.present and not g.flags.any()
    # without labels the same scores make the detector present and its rule takes the sub-cluster
    assert anomaly_group(raw, None).flags[y == 6].sum() >= 20


@pytest.mark.parametrize("seed", [0, 1])
def test_far_outliers_elsewhere_keep_the_heavy_class_intact(seed):
    rng = np.random.default_rng(seed)
    raw, y = _classes(rng)
    k = 60
    raw = np.r_[raw, rng.uniform(12.0, 20.0, k)]
    y = np.r_[y, rng.integers(0, 7, k)]
    injected = np.r_[np.zeros(raw.size - k, bool), np.ones(k, bool)]
    g = anomaly_group(raw, y)
    assert g.presence.present
    assert g.flags[injected].mean() >= 0.95
    heavy_clean = (y == 6) & ~injected
    assert g.flags[heavy_clean].sum() <= 1  # was the whole sub-cluster (30 rows)
    assert g.flags[~injected].mean() <= 0.005


@pytest.mark.parametrize("seed", [0, 1])
def test_a_clean_tail_past_z5_is_not_taken_when_injected_rows_make_the_detector_present(seed):
    rng = np.random.default_rng(seed)
    n, k = 2000, 30
    bulk = rng.lognormal(0.0, 0.6, n)  # a real table's tail: about 1% of rows past robust z 5
    z = robust_z(bulk)
    assert (z >= 5).sum() >= 8
    raw = np.r_[bulk, np.quantile(bulk, 0.5) * 12 + rng.uniform(0, 1, k)]
    y = rng.integers(0, 4, n + k)
    g = anomaly_group(raw, y)
    assert g.presence.present
    assert g.flags[n:].all()
    # the old rule (robust z >= 5) took every one of them; the q-value rule may take the
    # few clean rows just under the injected ones (its false-discovery share)
    assert g.flags[:n].sum() <= min(8, (z >= 5).sum() // 3)


def test_a_blob_that_is_most_of_a_small_class_stays_flagged():
    rng = np.random.default_rng(3)
    big = rng.gamma(2.0, 1.0, 1400)
    small = rng.gamma(2.0, 1.0, 50)
    blob = rng.normal(20.0, 0.3, 45)  # 45 injected rows sharing the small class's label
    raw = np.r_[big, small, blob]
    y = np.r_[np.zeros(1400, int), np.ones(95, int)]
    g = anomaly_group(raw, y)
    assert g.presence.present and g.flags[-45:].all()
    assert g.flags[:-45].sum() <= 3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_few_far_rows_on_a_small_skewed_table_stay_flagged(seed):
    # a small table whose fitted tail has shape > 0: the null expects a row or two even
    # at robust z 11, so the far-row line of an absent detector must not ask the null
    rng = np.random.default_rng(seed)
    bulk = rng.lognormal(0.0, 0.5, 575)
    raw = np.r_[bulk, np.median(bulk) * rng.uniform(8.0, 10.0, 4)]
    y = rng.integers(0, 2, raw.size)
    assert robust_z(raw)[-4:].min() >= 8.0
    g = anomaly_group(raw, y)
    assert g.flags[-4:].all()
    assert g.flags[:-4].mean() <= 0.01
