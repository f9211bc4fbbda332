"""The clean-label trigger detector: stamped value patterns exclusive to one class."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.metrics import roc_auc_score

from poisonguard.detectors import BackdoorCleanLabelDetector, get_detector
from poisonguard.errors import ConfigError
from _patch_helpers import patched_digits, standardize


def clean_label_digits(rate: float = 0.06, target: int = 0, seed: int = 0):
    """Digits with a 2x2 bottom-right patch at maximum ink on target-class rows, labels kept."""
    X, y = load_digits(return_X_y=True)
    X = X.copy()
    rng = np.random.default_rng(seed)
    rows = rng.choice(np.flatnonzero(y == target), size=int(rate * len(y)), replace=False)
    img = X[rows].reshape(-1, 8, 8)
    img[:, 6:8, 6:8] = 16.0
    X[rows] = img.reshape(len(rows), 64)
    mask = np.zeros(len(y), dtype=bool)
    mask[rows] = True
    return standardize(X), y, mask


def test_finds_a_clean_label_patch():
    X, y, mask = clean_label_digits()
    det = BackdoorCleanLabelDetector().fit(X, y)
    s = det.score_samples(X, y)
    assert det.report_["poisoned_classes"] == [0]
    assert roc_auc_score(mask, s) >= 0.99
    assert (s[mask] >= 0.5).mean() >= 0.95 and (s[~mask] >= 0.5).mean() <= 0.01
    e = det.explain(X, y, int(np.flatnonzero(mask)[0]))
    assert "{feature:63}" in e.reason and "{label:0}" in e.reason and "stamp" in e.reason


def test_a_dirty_label_patch_is_seen_too():
    X, y, mask = patched_digits(rate=0.06)
    s = BackdoorCleanLabelDetector().fit(X, y).score_samples(X, y)
    assert roc_auc_score(mask, s) >= 0.99


@pytest.mark.parametrize("loader", [load_digits, load_breast_cancer, load_wine])
def test_clean_tables_have_no_stamp(loader):
    X, y = loader(return_X_y=True)
    X = standardize(X)
    det = BackdoorCleanLabelDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == []
    assert not any(p.poisoned for p in det.presence_)
    assert (det.score_samples(X, y) > 0).sum() == 0


def test_a_trait_of_the_class_is_not_a_stamp():
    # every row of class 0 carries the pattern: it is what class 0 looks like, and
    # there are no unstamped rows of the class to call it foreign against
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6))
    y = np.repeat([0, 1, 2], 200)
    X[y == 0, 0:2] = [2.5, -2.5]
    det = BackdoorCleanLabelDetector().fit(X, y)
    assert [s.token.features for s in det.candidates_] == [(0, 1)]
    assert det.report_["poisoned_classes"] == []
    X[rng.choice(np.flatnonzero(y == 0), 20, replace=False), 0:2] = rng.normal(size=(20, 2))
    assert BackdoorCleanLabelDetector().fit(X, y).report_["poisoned_classes"] == [0]  # now a minority lacks it


def test_rejects_bad_settings():
    with pytest.raises(ConfigError, match="max_typical must be in"):
        get_detector("backdoor_clean_label", max_typical=1.5).fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]))


def test_label_flips_have_no_stamp(digits_flipped):
    from poisonguard.encoding import TableEncoder

    X = TableEncoder().fit_transform(digits_flipped.frame, digits_flipped.features)
    y = digits_flipped.frame["label"].to_numpy()
    det = BackdoorCleanLabelDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == [] and (det.score_samples(X, y) > 0).sum() == 0
