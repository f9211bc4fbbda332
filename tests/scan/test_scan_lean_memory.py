"""The scan's memory-lean paths give the values of the plain computations they replace."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from poisonguard.attacks import flip_labels
from poisonguard.datasets import load_dataset
from poisonguard.scan import scan
from poisonguard.scan._anomaly_rules import _q_at, anomaly_group, robust_z, tail_excess
from poisonguard.scan._ensemble import _tiered_suspicion, calibrate

_scan = sys.modules["poisonguard.scan._scan"]  # the module (``poisonguard.scan`` names the function too)


def _heavy_scores(seed: int, n: int = 4000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = rng.lognormal(0.0, 0.6, n)
    s[rng.choice(n, 60, replace=False)] += 6.0  # an injected cluster: the tail test finds it
    return s


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_q_value_at_a_rows_own_score_is_its_q_value(seed):
    # anomaly_group skips _q_at when no class is offset: this is the identity it relies on
    s = _heavy_scores(seed)
    q = tail_excess(s).q_value
    assert (q < 1).any()
    np.testing.assert_array_equal(_q_at(s, q, s), q)


@pytest.mark.parametrize("labelled", [False, True])
def test_anomaly_group_matches_the_plain_formulas(labelled):
    s = _heavy_scores(3)
    y = (np.arange(s.size) % 3) if labelled else None
    got = anomaly_group(s, y)
    assert got.presence.present
    z = robust_z(s)
    excess = tail_excess(s, y)
    # no class's median row is past the line here, so the strength is the unshifted formula
    want = np.maximum(norm.cdf(z - 3.0), 1.0 - excess.q_value)
    np.testing.assert_array_equal(got.strength, want)
    assert got.flags.sum() >= 50


def test_calibrate_gives_the_clipped_probabilities_and_phi_of_the_robust_z():
    p = np.random.default_rng(0).uniform(0, 1, 500)
    assert calibrate(p, "probability") is p or np.array_equal(calibrate(p, "probability"), p)
    outside = np.r_[p, -0.5, 1.5, np.nan]
    np.testing.assert_array_equal(calibrate(outside, "probability"), np.clip(outside, 0.0, 1.0))
    s = _heavy_scores(4)
    np.testing.assert_array_equal(calibrate(s, "anomaly"), norm.cdf(robust_z(s) - 8.0))


def test_tiered_suspicion_in_place_equals_the_two_tier_formula():
    rng = np.random.default_rng(5)
    n = 2000
    strength = [rng.uniform(0, 1.2, n) for _ in range(3)]
    flags = [rng.uniform(size=n) < 0.05 for _ in range(3)]
    confirmed = [True, False, True]
    got = _tiered_suspicion(strength, flags, confirmed)
    flagged = np.any(flags, axis=0)
    by_flag = np.max([np.where(f, s, -np.inf) for s, f in zip(strength, flags)], axis=0)
    lower = np.max([(1.0 if ok else 0.5) * s for s, ok in zip(strength, confirmed)], axis=0)
    want = np.where(flagged, 0.5 + 0.5 * np.clip(by_flag, 0, 1), 0.5 * np.clip(lower, 0, 1))
    np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    frame = load_dataset("synthetic", n_rows=2500, seed=6).frame
    return flip_labels(frame, "label", 0.05, seed=6).frame


def test_explaining_in_blocks_gives_the_reasons_of_one_call(table, monkeypatch):
    kwargs = dict(label="label", detectors="knn_label,duplicates,confident,ecod,iforest", fit_rows=1000, top=300)
    whole = scan(table, **kwargs)
    monkeypatch.setattr(_scan, "EXPLAIN_BLOCK", 7)
    blocks = scan(table, **kwargs)
    assert whole.status == blocks.status == "ok"
    assert sum(bool(r) for r in whole.reasons) >= 300
    assert whole.reasons == blocks.reasons and whole.row_detectors == blocks.row_detectors


def test_result_tables_hold_the_scores_and_strengths_the_scan_computed(table):
    r = scan(table, label="label", detectors="knn_label,confident,iforest", fit_rows=1000)
    for name in ("knn_label", "confident"):  # probabilities in [0, 1]: the strength is the score
        np.testing.assert_array_equal(r.strengths[name].to_numpy(), r.detector_scores[name].to_numpy())
    assert r.strengths["iforest"].between(0, 1).all()


@pytest.mark.parametrize("rows", [10, 70_000, 150_001])
def test_ecod_moments_in_blocks_are_the_whole_matrix_moments(rows):
    from poisonguard.detectors._ecod import _central_moments

    rng = np.random.default_rng(rows)
    X = (rng.lognormal(size=(rows, 6)) * rng.uniform(0.1, 50, 6)).astype(np.float32)
    mean = X.mean(axis=0, dtype=np.float64)
    m2, m3 = _central_moments(X, mean)
    np.testing.assert_array_equal(m2, np.mean((X - mean) ** 2, axis=0, dtype=np.float64))
    np.testing.assert_array_equal(m3, np.mean((X - mean) ** 3, axis=0, dtype=np.float64))


def test_combine_computes_an_omitted_anomaly_strength_as_calibrate_does():
    from poisonguard.scan._ensemble import combine

    rng = np.random.default_rng(7)
    forest = _heavy_scores(7)  # present: an injected cluster
    clean = rng.normal(size=forest.size)  # absent: its strength is calibrate's
    label = rng.uniform(0, 0.3, forest.size)
    kinds = {"knn_label": "probability", "iforest": "anomaly", "ecod": "anomaly"}
    families = {"knn_label": "label", "iforest": "outlier", "ecod": "outlier"}
    raw = {"knn_label": label, "iforest": forest, "ecod": clean}
    given = combine({n: calibrate(v, kinds[n]) for n, v in raw.items()}, kinds, families, raw=raw)
    omitted = combine({"knn_label": calibrate(label, "probability"), "iforest": None, "ecod": None},
                      kinds, families, raw=raw)
    assert given.anomaly_presence["iforest"].present and not given.anomaly_presence["ecod"].present
    np.testing.assert_array_equal(given.suspicion, omitted.suspicion)
    for name in ("iforest", "ecod"):
        np.testing.assert_array_equal(given.strengths[name], omitted.strengths[name])
    with pytest.raises(ValueError, match="knn_label"):
        combine({"knn_label": None, "iforest": None, "ecod": None}, kinds, families, raw=raw)


def test_a_self_join_after_its_probe_lists_were_dropped_finds_the_same_neighbours():
    pytest.importorskip("faiss")
    from poisonguard.detectors import _neighbors

    X = np.random.default_rng(8).normal(size=(_neighbors.EXACT_MAX_ROWS + 5000, 4)).astype(np.float32)
    X.flags.writeable = False
    _neighbors.release()
    try:
        fresh = _neighbors.self_neighbours(X, 25)
        assert next(iter(_neighbors._index_memo._items.values())).probes is None  # dropped after the join
        _neighbors._memo.clear()  # the graph goes, the index (without its probe lists) stays
        again = _neighbors.self_neighbours(X, 25)
        np.testing.assert_array_equal(fresh.indices, again.indices)
        np.testing.assert_array_equal(fresh.distances, again.distances)
    finally:
        _neighbors.release()


def test_detectors_that_found_nothing_share_one_array_of_zeros():
    raw = {"a": np.zeros(50), "b": np.zeros(50), "c": np.r_[np.zeros(49), 1e-300], "d": np.r_[np.zeros(49), -0.0]}
    kept_c, kept_d = raw["c"], raw["d"]
    _scan._share_zero_scores(raw)
    assert raw["a"] is raw["b"] and not raw["a"].flags.writeable and not raw["a"].any()
    assert raw["c"] is kept_c and raw["d"] is kept_d  # a nonzero value or a -0.0: left as it is
