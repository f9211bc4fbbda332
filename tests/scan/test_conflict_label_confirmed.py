"""Conflicting twins count beside the label doubt once the label group is confirmed (issue 9).

On a coarse table whose twins disagree naturally (river's Phishing) the twin test cannot
tell relabelled copies from natural conflicts, so no twin reaches the threshold. When the
label group's own presence test has judged a class poisoned, a conflict is a second,
independent sign that a label is wrong: ``duplicate_strength(..., label_confirmed=True)``
ranks a conflicting row as the noisy-or ``1 - p (1 - c)`` of its label doubt and its share
of conflicting twins. Without that confirmation a conflict never counts more than the
label doubt (a natural conflict on statsmodels' fair must not displace flips).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from poisonguard.scan._label_rules import conflict_flags, duplicate_strength


def test_a_conflict_counts_beside_the_label_doubt_only_when_the_label_group_is_confirmed():
    p = np.array([0.6, 0.6, 0.9, 0.9, 0.3])
    # detector scores below the threshold: 0.5 x the share of conflicting twins
    s = np.array([0.25, 0.0, 0.25, 0.0, 0.125])
    plain = duplicate_strength(s, p, threshold=0.5)
    assert (plain <= 1 - p + 1e-12).all()
    confirmed = duplicate_strength(s, p, threshold=0.5, label_confirmed=True)
    # noisy-or of the doubt and the conflict share: 1 - 0.6 * 0.5, 1 - 0.9 * 0.5, 1 - 0.3 * 0.75
    assert np.allclose(confirmed[[0, 2, 4]], [0.7, 0.55, 0.775])
    assert confirmed[1] == 0.0 and confirmed[3] == 0.0  # no conflict, no duplicate strength
    # a conflicting row now outranks the label doubt of a row without twins, even a likelier label
    assert confirmed[2] > 1 - p[0]
    # above the threshold nothing changes, and the flags never depend on the confirmation
    high = np.array([0.75, 0.5])
    assert np.allclose(duplicate_strength(high, p[:2], threshold=0.5, label_confirmed=True),
                       duplicate_strength(high, p[:2], threshold=0.5))
    assert not conflict_flags(s, p, threshold=0.5).any()


def _label_confirmed_table():
    """A predictable table with 20 near-certain flips (the label group is confirmed), 30
    relabelled copies whose labels it doubts only moderately (0.2-0.5, like many clean
    rows), and 60 natural conflicts among clean rows; no twin reaches the threshold."""
    rng = np.random.default_rng(0)
    n_clean, n_flip, n_copy, n_nat = 900, 20, 30, 60
    n = n_clean + n_flip + n_copy
    y = rng.integers(0, 2, n)
    p_wrong = np.r_[rng.uniform(0.0, 0.5, n_clean), rng.uniform(0.97, 1.0, n_flip), rng.uniform(0.2, 0.5, n_copy)]
    p_wrong[:n_clean][rng.random(n_clean) < 0.8] *= 0.2
    dup = np.zeros(n)
    dup[n_clean + n_flip:] = 0.25  # each copy conflicts with its source (share 0.5, below the threshold)
    src = rng.choice(n_clean, n_copy, replace=False)
    dup[src] = 0.25
    dup[rng.choice(np.setdiff1d(np.arange(n_clean), src), n_nat, replace=False)] = 0.25
    mask = np.r_[np.zeros(n_clean, dtype=bool), np.ones(n_flip + n_copy, dtype=bool)]
    return p_wrong, dup, y, mask


def test_scan_counts_conflicts_once_the_label_group_is_confirmed():
    import importlib

    ensemble = importlib.import_module("poisonguard.scan._ensemble")
    p_wrong, dup, y, mask = _label_confirmed_table()
    c = ensemble.combine({"knn_label": p_wrong, "duplicates": dup},
                         {"knn_label": "probability", "duplicates": "probability"},
                         {"knn_label": "label", "duplicates": "duplicate"}, y=y, n_classes=2)
    assert any(p.poisoned for p in c.label_presence)
    assert not c.group_flags["duplicates"].any()  # ranked, never flagged below the threshold
    # the label doubt alone ranks them at 0.978 (measured); with the conflicts counted, 0.998
    assert roc_auc_score(mask, c.suspicion) >= 0.99
