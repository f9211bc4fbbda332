"""The label-noise level the label detectors assume is the table's own, not a fixed prior."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import roc_auc_score

from poisonguard import scan
from poisonguard.detectors import ConfidentLearningDetector, KNNLabelDetector
from poisonguard.detectors._noise_level import MAX_NOISE_RATE, estimate_noise_rate
from poisonguard.errors import ConfigError

from _table_helpers import rdataset


def _flipped(rate: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=900, centers=[[0, 0], [6, 0], [0, 6]], cluster_std=1.0, random_state=seed)
    rng = np.random.default_rng(seed)
    flip = rng.random(y.size) < rate
    noisy = y.copy()
    noisy[flip] = (y[flip] + rng.integers(1, 3, flip.sum())) % 3
    return X.astype(np.float32), noisy, flip


def test_estimate_follows_noise_that_reaches_everywhere_and_is_capped():
    rates = {r: estimate_noise_rate(*_flipped(r)[:2], cap=1.0) for r in (0.0, 0.05, 0.2, 0.3)}
    assert rates[0.0] == 0.0
    # biased low (few columns: the neighbourhoods overlap), never above the rate
    assert rates[0.0] < rates[0.05] <= 0.05 and 0.08 <= rates[0.2] <= 0.2 and rates[0.3] > rates[0.2]
    assert estimate_noise_rate(*_flipped(0.3)[:2]) == MAX_NOISE_RATE  # no more than the prior it replaces


def test_estimate_ignores_overlap_where_classes_meet():
    # two classes that overlap along their border, pure far from it: no noise everywhere
    X, y = make_blobs(n_samples=1200, centers=[[0, 0], [2.5, 0]], cluster_std=1.0, random_state=1)
    assert estimate_noise_rate(X.astype(np.float32), y) <= 0.01


def test_detectors_record_the_rate_they_used_and_take_a_fixed_one():
    X, y, _ = _flipped(0.05)
    knn = KNNLabelDetector().fit(X, y)
    conf = ConfidentLearningDetector().fit(X, y)
    assert knn.noise_rate_ == pytest.approx(estimate_noise_rate(X, y)) == pytest.approx(conf.noise_rate_)
    assert KNNLabelDetector(noise_rate=0.1).fit(X, y).noise_rate_ == 0.1
    with pytest.raises(ConfigError, match="noise_rate must be in \\[0, 0.5\\) or 'auto', got 'high'"):
        KNNLabelDetector(noise_rate="high").fit(X, y)


def test_flips_still_rank_first_with_the_estimated_rate():
    X, y, flip = _flipped(0.05, seed=2)
    s = KNNLabelDetector().fit(X, y).score_samples(X, y)
    assert roc_auc_score(flip, s) >= 0.97


@pytest.mark.parametrize(("item", "label", "minority"), [
    ("carData/TitanicSurvival", "survived", "yes"),  # male survivors: 1 in 10 around them, natural
    ("AER/BankWages", "job", "manage"),
])
def test_a_clean_table_keeps_its_natural_minority(item, label, minority):
    frame = rdataset(item, label)
    res = scan(frame, label="label", detectors=["knn_label", "confident"], random_state=0)
    flagged_minority = int((res.flagged & (frame["label"].to_numpy() == minority)).sum())
    # with a fixed 10% noise prior: Titanic 46 of 500 survivors flagged, BankWages 8 of 84 managers
    assert res.flagged.mean() <= 0.01
    assert flagged_minority <= 0.05 * int((frame["label"] == minority).sum())


def test_both_label_detectors_of_a_scan_share_one_estimate(monkeypatch):
    import pandas as pd

    from poisonguard.detectors import _noise_level

    calls = []
    real = _noise_level._estimate

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    _noise_level._memo.clear()
    monkeypatch.setattr(_noise_level, "_estimate", counted)
    X, y, _ = _flipped(0.1, seed=3)
    frame = pd.DataFrame(X, columns=["a", "b"]).assign(label=y)
    scan(frame, label="label", detectors=["knn_label", "confident"], random_state=0)
    assert len(calls) == 1
    # the memo is keyed by the data: another table is estimated afresh, and the value is the table's own
    other = _flipped(0.2, seed=4)
    assert KNNLabelDetector().fit(other[0], other[1]).noise_rate_ == estimate_noise_rate(other[0], other[1]) > 0
    assert len(calls) == 2
