"""Two flag lines of a present anomaly detector (issue 9: a defence must not delete good data).

* The excess test's threshold on a large table: where the binomial tail underflows,
  every threshold used to tie at ``inf`` and the test took the lowest one, deep in the
  clean tail (Shuttle, 3% blob: 433 clean rows flagged, 216 of them from its 7% class).
* A detector present by the plateau alone: rows between robust z ``Z_PRESENT_FLAG`` and
  ``TAIL_HIGH`` are flagged only when they still stand out from their class's lower
  quartile (Seattle weather, blob of 45 rows: 2 of the 23 rows of its snow class went).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.metrics import roc_auc_score

from poisonguard import scan
from poisonguard.attacks import poison
from poisonguard.datasets import load_dataset
from poisonguard.scan._anomaly_rules import (
    TAIL_HIGH,
    Z_PRESENT_FLAG,
    AnomalyPresence,
    TailExcess,
    _class_offset,
    _present_flags,
    anomaly_group,
    binom_log10_sf,
    robust_z,
    tail_excess,
)


def test_binomial_tail_stays_finite_and_ordered_where_the_exact_value_underflows():
    n = 50_000
    k = np.array([9.0, 300.0, 1200.0, 1500.0])
    p = np.array([5.0, 30.0, 30.0, 30.0]) / n
    exact = -binom.logsf(k - 1, n, p) / np.log(10.0)
    got = binom_log10_sf(k, n, p)
    assert np.isinf(exact[2:]).all()  # the case being fixed
    assert got[:2] == pytest.approx(exact[:2])  # unchanged where the exact value is finite
    assert np.isfinite(got).all()
    assert got[0] < got[1] < got[2] < got[3]  # more rows over the same expectation: more significant


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_large_blob_puts_the_excess_threshold_at_its_edge_not_in_the_clean_tail(seed):
    rng = np.random.default_rng(seed)
    clean = rng.gamma(2.0, 1.0, 48_000)  # a skewed clean score: its tail is heavier than normal
    blob = rng.normal(12.0, 0.5, 1_500)
    raw = np.r_[clean, blob]
    truth = np.r_[np.zeros(clean.size, bool), np.ones(blob.size, bool)]
    e = tail_excess(raw)
    assert e.log10p >= 6.0
    # the old tie at inf put the threshold among 130-190 clean rows; the blob's edge has about 12
    assert int((raw[~truth] >= e.threshold).sum()) <= 30
    g = anomaly_group(raw, None)
    assert g.presence.present
    assert g.flags[truth].mean() >= 0.99
    assert g.flags[~truth].mean() <= 0.002  # the old threshold: 0.27-0.39% of the clean rows


def _plateau_only() -> tuple[AnomalyPresence, TailExcess]:
    test = AnomalyPresence(above_low=10, above_high=6, plateau=0.6, present=True, excess_log10p=2.0)
    return test, TailExcess(2.0, 0, 0.0, np.ones(4))


def test_plateau_rule_takes_its_plateau_and_a_band_row_only_when_it_stands_out_from_its_class():
    z = np.array([7.0, 6.2, 5.4, 5.4])
    band_z = np.array([7.0, 4.0, 5.4, 3.8])  # rows 1 and 3 belong to a class that sits higher as a whole
    q = np.ones(4)
    test, excess = _plateau_only()
    flags = _present_flags(z, q, z, excess, test, band_z=band_z)
    # at TAIL_HIGH and above: the plateau itself; in the band: only the row that stands out from its class
    assert flags.tolist() == [True, True, True, False]
    # without labels the row's own z decides, as before
    assert _present_flags(z, q, z, excess, test).tolist() == [True, True, True, True]
    assert Z_PRESENT_FLAG < TAIL_HIGH


def test_a_class_that_sits_high_as_a_whole_keeps_its_rows_when_a_blob_sets_off_the_plateau():
    # Seattle weather with a blob of 3% (the held-out cell): the forest is present by its
    # plateau alone, and its old line at robust z 5 took 2 of the 23 clean rows of the snow
    # class (lower quartile at z 1.6) and 11 clean rows in all
    ds = load_dataset("seattle_weather")
    p = poison("outlier", ds.frame, label=ds.label, rate=0.03, seed=0, placement="cluster")
    r = scan(p.frame, label=ds.label, random_state=0)
    test = r.detector_info["iforest"]["tail_test"]
    assert test["present"] and test["excess_log10p"] < 6.0  # the plateau alone
    y, clean = r.table.y, ~p.mask
    assert r.flagged[p.mask].mean() >= 0.99
    assert max(r.flagged[clean & (y == c)].mean() for c in np.unique(y)) <= 0.05


def test_far_outliers_that_are_most_of_a_small_class_are_not_shifted_under_the_line():
    # Seattle weather, 45 far outliers all labelled with the smallest class (23 clean rows):
    # the class's median lies in the outliers, its lower quartile among its clean rows
    # (robust z 2.3). Measured from that quartile, the outliers (forest z 9.3-10.3) fell
    # under Z_MID: flag recall 0.444. The class is two populations, not one distinct class.
    ds = load_dataset("seattle_weather")
    p = poison("outlier", ds.frame, label=ds.label, rate=0.03, seed=0)
    frame = p.frame.copy()
    frame.loc[p.mask, ds.label] = ds.frame[ds.label].value_counts().idxmin()
    r = scan(frame, label=ds.label, random_state=0)
    y, clean = r.table.y, ~p.mask
    assert r.flagged[p.mask].mean() >= 0.99
    assert max(r.flagged[clean & (y == c)].mean() for c in np.unique(y)) <= 0.05
    forest = r.detector_scores["iforest"].to_numpy()
    assert roc_auc_score(p.mask, r.suspicion) >= roc_auc_score(p.mask, forest) - 0.005


def test_a_class_high_as_a_whole_is_still_measured_from_its_lower_quartile():
    rng = np.random.default_rng(3)
    z = np.r_[rng.normal(0.0, 1.0, 2000), rng.normal(7.0, 1.0, 200)]
    y = np.r_[np.zeros(2000, int), np.ones(200, int)]
    off = _class_offset(z, y, line=Z_PRESENT_FLAG)
    assert off is not None and (off[y == 1] >= 5.0).all() and not off[y == 0].any()
    # the same median with the lower quarter in the bulk: two populations, no shift
    z2 = np.r_[z[:2000], rng.normal(1.0, 1.0, 70), rng.normal(9.0, 0.5, 130)]
    assert _class_offset(z2, y, line=Z_PRESENT_FLAG) is None
