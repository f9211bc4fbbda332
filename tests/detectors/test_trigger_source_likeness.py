"""backdoor_trigger's source-likeness part: a value a natural sub-population owns is not a trigger."""

from __future__ import annotations

import numpy as np
import pytest

import poisonguard.detectors._trigger_presence as tp
from poisonguard.detectors import BackdoorTriggerDetector


def _health_table(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """A health level (excellent, good, fair, poor), the label "good", and "fair"/"poor" dummies as features.

    Every "fair" or "poor" row is labelled "not good" and masking its dummy makes most of
    them look "good" (the structure of a table whose label is one of several exclusive
    dummies), but their four other features differ from the "good" rows' (shifted means).
    """
    rng = np.random.default_rng(seed)
    level = rng.choice(4, size=n, p=[0.3, 0.4, 0.2, 0.1])
    y = (level == 1).astype(np.int64)
    mu = np.array([0.0, 1.0, 1.8, 2.8])[level]
    cont = rng.normal(size=(n, 4)) + mu[:, None] * np.array([1.0, 0.8, -0.6, 0.5])
    X = np.hstack([cont, (level == 2)[:, None], (level == 3)[:, None]]).astype(float)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


@pytest.mark.parametrize("seed", [0, 1])
def test_exclusive_dummies_of_the_label_are_not_a_trigger(seed, monkeypatch):
    X, y = _health_table(seed)
    det = BackdoorTriggerDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == []
    assert not det.score_samples(X, y).any()
    assert {tuple(g["features"]) for g in det.report_["natural_values"]} == {(4,), (5,)}
    assert all(g["source_auc_lower"] > tp.MAX_SOURCE_AUC for g in det.report_["natural_values"])
    # without the part both dummies were judged triggers (~900 clean rows flagged)
    monkeypatch.setattr(tp, "MAX_SOURCE_AUC", 1.01)
    assert (BackdoorTriggerDetector().fit(X, y).score_samples(X, y) >= 0.5).sum() > 500


def test_a_stamped_trigger_stays_source_like():
    # 30 rows of class 0 with one column set above its range and relabelled 1: once it is
    # masked they are rows of class 0, and a classifier cannot tell them from class 0
    X, y = _health_table(3)
    rng = np.random.default_rng(3)
    src = rng.choice(np.flatnonzero(y == 0), size=30, replace=False)
    X[src, 0] = X[:, 0].max() + 0.1 * np.ptp(X[:, 0])
    y = y.copy()
    y[src] = 1
    det = BackdoorTriggerDetector().fit(X, y)
    s = det.score_samples(X, y)
    assert det.report_["poisoned_classes"] == [1]
    assert (s[src] >= 0.5).all()
    present = [g for g in det.groups_ if g.present]
    assert present and all(g.source_auc_lower <= tp.MAX_SOURCE_AUC for g in present)


def test_a_trigger_that_also_shifts_other_columns_is_kept():
    # a blend-like trigger: two columns stamped above their range, the others shifted too,
    # so the masked carriers differ from their sources outside the stamped values; the
    # source-likeness part is for one-feature groups only and must not drop it
    X, y = _health_table(4)
    rng = np.random.default_rng(4)
    src = rng.choice(np.flatnonzero(y == 0), size=40, replace=False)
    X[src, 0] = X[:, 0].max() + 0.1 * np.ptp(X[:, 0])
    X[src, 1] = X[:, 1].max() + 0.1 * np.ptp(X[:, 1])
    X[np.ix_(src, [2, 3])] += 1.5
    y = y.copy()
    y[src] = 1
    det = BackdoorTriggerDetector().fit(X, y)
    s = det.score_samples(X, y)
    assert det.report_["poisoned_classes"] == [1]
    assert (s[src] >= 0.5).mean() >= 0.9
    assert all(len(g.features) >= 2 and g.source_auc == 0.5 for g in det.groups_ if g.present)
