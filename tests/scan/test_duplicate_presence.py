"""Conflicting duplicates have a presence test of their own (issue 9, relabelled duplicates).

* A coarse table whose identical rows disagree at the rate its neighbours do (a clean
  table with natural conflicting twins) gets no duplicate flag and no duplicate
  strength above the label group's own doubt.
* Relabelled copies of clean rows are found: the test fires, the copy (not its source)
  is flagged, and the scan ranks the copies at least as well as the detector alone.
* The label mixture is scored through a noise channel: an estimator that doubts every
  row alike does not dilute one that is sure of the flips.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from poisonguard.detectors import get_detector
from poisonguard.detectors._duplicates import twin_presence
from poisonguard.scan import scan
from poisonguard.scan._label_rules import LABEL_FDR, mixture_weights


def _coarse_table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Four 3-level columns (81 cells, so most rows have exact twins); labels noisy everywhere."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, size=(n, 4))
    logit = 1.5 * (X[:, 0] - 1) + 1.0 * (X[:, 1] - 1) - 0.8 * (X[:, 2] - 1)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(X, columns=[f"c{i}" for i in range(4)]).assign(label=y)


def _continuous_table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.2 * rng.normal(size=n) > 0).astype(int)
    return pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(label=y)


def _relabelled_copies(frame: pd.DataFrame, k: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """``k`` rows that the features place clearly in their class, copied with the other label.

    (A copy of a row on the class boundary gets a label that is as common there as the
    source's: neither twin can be named, and the detector names neither.)
    """
    margin = np.abs(frame["x0"] + 0.5 * frame["x1"]).to_numpy()
    src = np.random.default_rng(seed).choice(np.flatnonzero(margin > 0.5), k, replace=False)
    copies = frame.iloc[src].copy()
    copies["label"] = 1 - copies["label"]
    out = pd.concat([frame, copies], ignore_index=True)
    mask = np.zeros(len(out), dtype=bool)
    mask[len(frame):] = True
    return out, mask


def _encoded(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    X = frame.drop(columns="label").to_numpy(dtype=np.float64)
    return (X - X.mean(axis=0)) / X.std(axis=0), frame["label"].to_numpy()


def test_natural_twins_of_a_coarse_table_are_no_presence():
    X, y = _encoded(_coarse_table())
    det = get_detector("duplicates").fit(X, y)
    test = det.presence_
    assert test.n_twin_rows > 500 and test.n_conflicting > 100  # many identical rows disagree
    assert not test.present, test.detail
    s = det.score_samples(X, y)
    assert s.max() < 0.5  # below the threshold: nothing for the scan to flag
    assert det.report_["twin_presence"]["present"] is False


def test_relabelled_copies_are_present_and_the_copy_is_the_suspect():
    frame, mask = _relabelled_copies(_continuous_table(), 20)
    X, y = _encoded(frame)
    det = get_detector("duplicates").fit(X, y)
    assert det.presence_.present, det.presence_.detail
    s = det.score_samples(X, y)
    assert (s[mask] >= 0.5).all()  # both twins reach the threshold ...
    suspects = s > 0.5
    # ... and the neighbourhood names the copy of (nearly) every pair, rarely its source
    assert suspects[mask].mean() >= 0.9
    assert suspects[~mask].sum() <= 2


def test_presence_test_statistic_on_hand_made_twins():
    # 10 rows, each row's nearest neighbour is a twin; 4 neighbours each, all labelled 0
    y = np.array([0, 1, 0, 1, 0, 1, 0, 0, 0, 0])
    idx = np.array([[1, 6, 7, 8], [0, 6, 7, 8], [3, 6, 7, 8], [2, 6, 7, 8], [5, 6, 7, 8],
                    [4, 6, 7, 8], [7, 8, 9, 0], [6, 8, 9, 0], [9, 6, 7, 0], [8, 6, 7, 0]])
    twin = np.zeros(idx.shape, dtype=bool)
    twin[:, 0] = True
    out = twin_presence(y, idx, twin)
    # rows 0-5 disagree with their twin, rows 6-9 agree: 6 of 10; neighbours never disagree
    assert out.n_twin_rows == 10 and out.n_conflicting == 6
    assert out.expected_rate < 0.35 and out.present
    # the same twins among neighbours that disagree as often: no excess
    y2 = np.array([0, 1, 0, 1, 0, 1, 0, 1, 1, 0])
    idx2 = np.array([[1, 6, 7, 8, 9]] * 10)
    idx2[1:, 0] = np.r_[0, 3, 2, 5, 4, 7, 6, 9, 8]
    twin2 = np.zeros(idx2.shape, dtype=bool)
    twin2[:, 0] = True
    assert not twin_presence(y2, idx2, twin2).present


def test_scan_flags_no_row_of_a_clean_coarse_table_for_its_twins():
    res = scan(_coarse_table(), label="label", detectors="knn_label,confident,duplicates")
    assert res.flagged.mean() <= 0.01
    assert "duplicates" not in ",".join(np.asarray(res.row_detectors)[res.flagged])


def test_scan_flags_relabelled_copies_and_ranks_them_as_well_as_the_detector():
    frame, mask = _relabelled_copies(_continuous_table(), 20)
    res = scan(frame, label="label", detectors="knn_label,confident,duplicates")
    flagged = np.asarray(res.flagged)
    assert flagged[mask].mean() >= 0.8
    assert flagged[~mask].sum() <= 3  # the source rows are not flagged with their copies
    alone = roc_auc_score(mask, res.detector_scores["duplicates"])
    assert roc_auc_score(mask, res.suspicion) >= alone - 0.005


def test_mixture_does_not_let_an_estimator_that_doubts_everything_dilute_a_sure_one():
    rng = np.random.default_rng(0)
    n, flips = 4000, 200
    sure = np.r_[rng.uniform(0.9, 1.0, n - flips), np.zeros(flips)]  # certain about the flips
    flat = rng.uniform(0.45, 0.55, n)  # a model that cannot separate the classes
    w = mixture_weights(np.stack([sure, flat], axis=1), n_classes=2)
    mixed = np.stack([sure, flat], axis=1) @ w
    assert w[0] >= 0.95
    assert (mixed[n - flips:] <= LABEL_FDR).all()  # the flips stay near-certain errors


def test_duplicate_strength_and_flags_follow_the_presence_and_the_less_likely_twin():
    from poisonguard.scan._label_rules import conflict_flags, duplicate_strength

    p = np.array([0.1, 0.9, 0.3, 0.8, 0.05])
    present = np.array([0.75, 0.5, 0.75, 0.5, 0.0])  # a suspect copy and its source, twice; a plain row
    rank = duplicate_strength(present, p, threshold=0.5)
    assert rank[0] > rank[2] > rank[3] and rank[0] > rank[1]  # the less likely twin of each pair first
    assert rank[4] == 0.0
    flags = conflict_flags(present, p, threshold=0.5)
    assert flags.tolist() == [True, False, True, False, False]
    # without presence (every strength below 0.5) a conflict never counts more than the label doubt
    absent = duplicate_strength(0.5 * present, p, threshold=0.5)
    assert (absent <= 1 - p + 1e-12).all()
    assert not conflict_flags(0.5 * present, p, threshold=0.5).any()
