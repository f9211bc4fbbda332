"""The fusion keeps a confirmed signal and spares clean classes (issue 9, item 2).

* Below the flagged rows, a group whose presence test did not confirm it counts at
  ``UNCONFIRMED_WEIGHT`` of its strength, so unconfirmed label doubts do not bury a
  present anomaly detector.
* An anomaly flag rule that would take a clean class in bulk (a small, distinct class
  that the detector scores high as a whole) measures that class's rows from its own
  lower quartile.
* Rows another group explains as injected (a backdoor's carriers) take no part in the
  label presence tests: a backdoor relabelled to the minority class does not turn the
  class's clean rows into "errors".

The combination-level tests are pure numpy; the whole-scan tests use small generated tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from poisonguard.scan import scan
from poisonguard.scan._ensemble import UNCONFIRMED_WEIGHT, Z_PRESENT_FLAG, calibrate, combine, robust_z

TOLERANCE = 0.005


def _combine(raw: dict[str, np.ndarray], kinds: dict[str, str], fams: dict[str, str], y: np.ndarray):
    strengths = {n: calibrate(v, kinds[n]) for n, v in raw.items()}
    return combine(strengths, kinds, fams, raw=raw, y=y, n_classes=int(y.max()) + 1)


# ---------------------------------------------------------------- combination (pure numpy)
def test_unconfirmed_label_doubts_do_not_bury_a_present_anomaly_detector():
    rng = np.random.default_rng(0)
    n, k, m = 3000, 90, 60
    # a cluster past the clean tail (the tail test confirms the forest), and rows just past
    # the clean rows that its flag rule does not take: only the ranking can put them first
    forest = np.r_[rng.normal(0.45, 0.02, n), rng.uniform(0.56, 0.60, k), rng.uniform(0.515, 0.53, m)]
    # a class the features explain weakly: many clean rows doubted, none near-certainly wrong
    y = np.r_[rng.integers(0, 2, n), np.zeros(k + m, int)]
    label = np.r_[rng.uniform(0.0, 0.9, n), np.full(k + m, 0.05)]
    truth = np.r_[np.zeros(n, bool), np.ones(k + m, bool)]
    c = _combine({"knn_label": label, "iforest": forest}, {"knn_label": "probability", "iforest": "anomaly"},
                 {"knn_label": "label", "iforest": "outlier"}, y)
    assert c.anomaly_presence["iforest"].present and not any(p.poisoned for p in c.label_presence)
    assert not c.auto_flags[n + k:].all()
    assert roc_auc_score(truth, c.suspicion) >= roc_auc_score(truth, forest) - TOLERANCE
    # an unconfirmed doubt ranks at UNCONFIRMED_WEIGHT of its strength
    row = int(np.argmax(np.where(c.auto_flags, -1.0, label)))
    assert c.suspicion[row] <= 0.5 * UNCONFIRMED_WEIGHT * label[row] + 1e-12


def test_a_distinct_clean_class_is_not_flagged_in_bulk_but_rows_beyond_it_are():
    rng = np.random.default_rng(1)
    big, small, k = 6000, 500, 60
    score = np.r_[rng.normal(0.0, 1.0, big), rng.normal(7.0, 1.0, small), rng.normal(0.0, 1.0, k) + 30.0]
    y = np.r_[np.zeros(big, int), np.ones(small, int), rng.integers(0, 2, k)]
    truth = np.r_[np.zeros(big + small, bool), np.ones(k, bool)]
    c = _combine({"iforest": score}, {"iforest": "anomaly"}, {"iforest": "outlier"}, y)
    assert c.anomaly_presence["iforest"].present
    assert np.median(robust_z(score)[y == 1]) >= Z_PRESENT_FLAG  # the rule alone would take the class
    flags = c.group_flags["iforest"]
    assert flags[truth].all()
    assert flags[(y == 1) & ~truth].mean() <= 0.05


def test_rows_a_backdoor_explains_do_not_make_the_minority_class_look_predictable():
    rng = np.random.default_rng(2)
    neg, pos, carriers = 4000, 240, 200
    y = np.r_[np.zeros(neg, int), np.ones(pos + carriers, int)]
    # clean positives are weakly explained (low P(label correct)); the backdoor's carriers,
    # relabelled positive, share a trigger the label models learn: P(label correct) near 1
    p_correct = np.r_[rng.uniform(0.9, 1.0, neg), rng.uniform(0.0, 0.5, pos), rng.uniform(0.95, 1.0, carriers)]
    p_correct[neg:neg + 40] = rng.uniform(0.0, 0.02, 40)  # a few clean positives look certainly wrong
    carrier = np.r_[np.zeros(neg + pos, bool), np.ones(carriers, bool)]
    raw = {"knn_label": 1.0 - p_correct, "backdoor_trigger": carrier.astype(float)}
    kinds = {"knn_label": "probability", "backdoor_trigger": "probability"}
    fams = {"knn_label": "label", "backdoor_trigger": "backdoor"}
    c = _combine(raw, kinds, fams, y)
    assert c.group_flags["backdoor_trigger"][carrier].all()
    assert not c.label_presence[1].poisoned
    assert not c.auto_flags[neg:neg + pos].any()  # every clean positive kept


# ---------------------------------------------------------------- whole scans (small tables)
def _table(seed: int, n: int = 1500, positives: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    y = (X[:, 0] + 0.8 * X[:, 1] + rng.normal(0, 1.0, n) > np.quantile(X[:, 0] + 0.8 * X[:, 1], 1 - positives))
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(6)])
    frame["label"] = y.astype(int)
    return frame


def test_scan_finds_an_in_range_cluster_and_keeps_the_best_detector():
    rng = np.random.default_rng(3)
    clean = _table(3)
    feats = [c for c in clean.columns if c != "label"]
    lo, hi = clean[feats].quantile(0.97).to_numpy(), clean[feats].max().to_numpy()
    centre = rng.uniform(lo, hi)  # inside every column's range, in its upper tail
    k = 45
    blob = pd.DataFrame(centre + 0.02 * (hi - lo) * rng.standard_normal((k, len(feats))), columns=feats)
    blob = blob.clip(upper=clean[feats].max(), axis=1)
    blob["label"] = 0
    frame = pd.concat([clean, blob], ignore_index=True)
    truth = np.r_[np.zeros(len(clean), bool), np.ones(k, bool)]
    res = scan(frame, label="label")
    best = max(roc_auc_score(truth, res.detector_scores[n]) for n in res.detector_scores.columns
               if np.ptp(res.detector_scores[n]) > 0)
    auc = roc_auc_score(truth, res.suspicion)
    assert auc >= best - TOLERANCE and auc >= 0.99, (auc, best)
    assert res.flagged[truth].mean() >= 0.5 and res.flagged[~truth].mean() <= 0.01


def test_scan_keeps_the_minority_of_a_clean_imbalanced_table():
    frame = _table(4, n=3000, positives=0.06)
    res = scan(frame, label="label")
    y = frame["label"].to_numpy()
    assert res.flagged.mean() <= 0.01
    assert res.flagged[y == 1].mean() <= 0.05 and res.flagged[y == 0].mean() <= 0.05
