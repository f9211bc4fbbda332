"""The fusion property (issue 9, item 2): the combined suspicion never loses a detector's signal.

On every cell the scan's AUROC must be at least its best single detector's minus
``TOLERANCE``, the flag rule must find injected rows that a present anomaly detector
sees, and a clean heavy-tailed table must keep its rows (<= 1% flagged, <= 5% of any class).
The combination-level tests are pure numpy; the whole-scan tests use small tables.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from poisonguard.attacks import flip_labels, inject_outliers
from poisonguard.datasets import load_dataset
from poisonguard.scan import scan
from poisonguard.scan._anomaly_rules import EXCESS_LOG10P, TAIL_LOW, anomaly_presence, robust_z, tail_excess
from poisonguard.scan._ensemble import calibrate, combine

TOLERANCE = 0.005
KINDS = {"knn_label": "probability", "iforest": "anomaly"}
FAMILIES = {"knn_label": "label", "iforest": "outlier"}


def _best_single_gap(suspicion: np.ndarray, scores: dict[str, np.ndarray], truth: np.ndarray) -> float:
    best = max(roc_auc_score(truth, s) for s in scores.values() if np.ptp(s) > 0)
    return roc_auc_score(truth, suspicion) - best


def _compressed_table(seed: int, n: int = 4000, k: int = 200) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Forest scores whose injected cluster sits at robust z 3.5-5 (compressed by heavy-tailed columns).

    The clean scores have a light (half-normal-like) upper tail, as Isolation Forest
    scores do on real tables; a weakly explained class gives 15% of the clean rows strong
    label doubts, which outrank the cluster under a fixed-z calibration.
    """
    rng = np.random.default_rng(seed)
    clean = 0.45 + 0.03 * rng.standard_normal(n)
    clean = np.where(clean > 0.45, 0.45 + 1.3 * (clean - 0.45), clean)  # a skewed, light upper tail
    injected = rng.uniform(0.58, 0.63, k)  # just beyond the clean tail, which ends near 0.57
    forest = np.r_[clean, injected]
    label = np.r_[np.where(rng.random(n) < 0.15, rng.uniform(0.6, 0.95, n), rng.uniform(0.0, 0.2, n)),
                  rng.uniform(0.0, 0.5, k)]
    truth = np.r_[np.zeros(n, bool), np.ones(k, bool)]
    return {"knn_label": label, "iforest": forest}, truth


# ------------------------------------------------------------ tail test (pure numpy)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compressed_cluster_is_found_by_the_excess_test_not_the_fixed_plateau(seed):
    raw, truth = _compressed_table(seed)
    z = robust_z(raw["iforest"])
    assert np.median(z[truth]) < TAIL_LOW + 1  # fixed z thresholds cannot see it ...
    test = anomaly_presence(z, raw["iforest"])
    assert test.plateau < 0.5
    assert test.present and test.excess_log10p >= EXCESS_LOG10P  # ... the table's own tail can


@pytest.mark.parametrize("tail", ["exponential", "lognormal", "student3", "halfnormal"])
def test_clean_tails_are_not_judged_present(tail):
    rng = np.random.default_rng(7)
    n = 6000
    s = {"exponential": rng.exponential(1.0, n), "lognormal": rng.lognormal(0.0, 0.6, n),
         "student3": rng.standard_t(3, n), "halfnormal": np.abs(rng.standard_normal(n))}[tail]
    test = anomaly_presence(robust_z(s), s)
    assert not test.present, test
    assert test.excess_log10p < 3


def test_tail_excess_q_values_are_monotone_in_the_score():
    raw, truth = _compressed_table(0)
    ex = tail_excess(raw["iforest"])
    order = np.argsort(raw["iforest"])
    assert np.all(np.diff(ex.q_value[order]) <= 1e-12)  # a higher score never has a larger q-value
    assert ex.q_value[truth].max() < 0.5 and np.isfinite(ex.threshold)


# ------------------------------------------------------------ fusion (pure numpy)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compressed_outliers_keep_the_forest_ranking_and_get_flagged(seed):
    raw, truth = _compressed_table(seed)
    strengths = {n: calibrate(v, KINDS[n]) for n, v in raw.items()}
    c = combine(strengths, KINDS, FAMILIES, raw=raw)
    assert c.anomaly_presence["iforest"].present
    assert _best_single_gap(c.suspicion, raw, truth) >= -TOLERANCE
    flags = c.group_flags["iforest"]
    assert flags[truth].mean() >= 0.9  # recall floor
    assert flags[~truth].mean() <= 0.01


def test_flips_keep_the_label_ranking_when_the_forest_sees_nothing():
    rng = np.random.default_rng(4)
    n, k = 3000, 150
    label = np.r_[rng.beta(1, 12, n), rng.beta(8, 2, k)]  # P(label wrong)
    forest = rng.normal(0.45, 0.03, n + k)  # no signal
    truth = np.r_[np.zeros(n, bool), np.ones(k, bool)]
    raw = {"knn_label": label, "iforest": forest}
    c = combine({n_: calibrate(v, KINDS[n_]) for n_, v in raw.items()}, KINDS, FAMILIES, raw=raw)
    assert not c.anomaly_presence["iforest"].present
    assert _best_single_gap(c.suspicion, raw, truth) >= -TOLERANCE


# ------------------------------------------------------------ whole scans (small tables)
def _gap(result, truth) -> float:
    scores = {n: result.detector_scores[n].to_numpy() for n in result.detector_scores.columns}
    return _best_single_gap(result.suspicion, scores, truth)


def test_scan_keeps_the_best_detector_on_flips():
    ds = load_dataset("wine")
    p = flip_labels(ds.frame, "label", rate=0.10, seed=0)
    r = scan(p.frame, label="label")
    assert _gap(r, p.mask) >= -TOLERANCE


@pytest.mark.parametrize("placement", ["far", "in_range"])
def test_scan_keeps_the_forest_on_injected_rows_and_flags_them(placement):
    ds = load_dataset("breast_cancer")
    p = inject_outliers(ds.frame, "label", rate=0.05, seed=0, placement=placement)
    r = scan(p.frame, label="label")
    assert _gap(r, p.mask) >= -TOLERANCE
    assert r.flagged[p.mask].mean() >= 0.9  # recall floor of the default rule
    assert r.flagged[~p.mask].mean() <= 0.05


def test_scan_finds_far_outliers_whose_z_is_compressed():
    # default's 4 columns include a heavy-tailed balance: injected rows reach only robust z 4-6,
    # where the fixed plateau rule saw nothing (scan AUROC 0.969, no flag)
    ds = load_dataset("default")
    frame = ds.frame.sample(n=4000, random_state=0).reset_index(drop=True)
    p = inject_outliers(frame, "label", rate=0.05, seed=0)
    r = scan(p.frame, label="label")
    assert r.detector_info["iforest"]["tail_test"]["present"]
    assert _gap(r, p.mask) >= -TOLERANCE
    assert r.flagged[p.mask].mean() >= 0.7
    assert r.flagged[~p.mask].mean() <= 0.01


@pytest.mark.parametrize("name", ["credit", "penguins"])
def test_clean_heavy_tailed_table_keeps_its_rows(name):
    ds = load_dataset(name)
    frame = ds.frame if len(ds.frame) <= 2500 else ds.frame.sample(n=2500, random_state=0).reset_index(drop=True)
    y = frame["label"].to_numpy()
    r = scan(frame, label="label")
    assert not r.detector_info["iforest"]["tail_test"]["present"]
    assert r.flagged.mean() <= 0.01
    assert max(r.flagged[y == c].mean() for c in np.unique(y)) <= 0.05
