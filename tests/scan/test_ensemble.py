"""Calibration, grouping and flag rules of the ensemble (pure numpy: fast, property-tested)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import norm

from poisonguard.scan._ensemble import (
    LABEL_CAP,
    LABEL_FDR,
    LABEL_GROUP,
    Z_MID,
    calibrate,
    combine,
    flag_top,
    mixture_weights,
    posterior_fdr_flags,
    robust_z,
)

probs = arrays(np.float64, st.integers(1, 200), elements=st.floats(0.0, 1.0, allow_nan=False))


# ---------------------------------------------------------------- robust_z
def test_robust_z_uses_median_and_mad():
    s = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    z = robust_z(s)
    mad = 1.4826 * np.median(np.abs(s - 3.0))
    np.testing.assert_allclose(z, (s - 3.0) / mad)
    assert z[2] == 0.0 and z[-1] > 30  # the outlier does not inflate the scale


def test_robust_z_falls_back_when_most_values_tie():
    s = np.array([0.0] * 8 + [1.0, 3.0])  # MAD = 0
    np.testing.assert_allclose(robust_z(s), s / (1.2533 * np.abs(s).mean()))
    np.testing.assert_array_equal(robust_z(np.full(5, 7.0)), np.zeros(5))  # all equal: scale 1


# Values on a 1/1024 grid: adding 10 is then exact in float64, so shift invariance can be
# asserted tightly. With arbitrary floats a scale near 1e-9 turns the rounding of s + 10
# into a relative error of ~1e-6 that says nothing about robust_z itself.
@given(arrays(np.float64, st.integers(1, 50),
              elements=st.integers(-2**30, 2**30).map(lambda v: v / 1024.0)))
def test_robust_z_is_finite_and_shift_invariant(s):
    z = robust_z(s)
    assert np.isfinite(z).all()
    np.testing.assert_allclose(robust_z(s + 10.0), z, atol=1e-6)


# ---------------------------------------------------------------- calibrate
def test_calibrate_probability_is_clipped_identity():
    np.testing.assert_array_equal(calibrate(np.array([-0.1, 0.0, 0.3, 1.0, 1.2]), "probability"),
                                  [0.0, 0.0, 0.3, 1.0, 1.0])


def test_calibrate_anomaly_reaches_half_at_z_mid():
    rng = np.random.default_rng(0)
    s = rng.normal(size=1000)
    s = np.append(s, [np.median(s) + Z_MID * 1.4826 * np.median(np.abs(s - np.median(s)))])
    strength = calibrate(s, "anomaly")
    np.testing.assert_allclose(strength, norm.cdf(robust_z(s) - Z_MID))
    assert strength[-1] == pytest.approx(0.5, abs=0.01)
    assert strength[:-1].max() < 0.01  # the bulk of a clean table is nowhere near the cut
    assert np.all((strength >= 0) & (strength <= 1))


def test_calibrate_unknown_kind():
    with pytest.raises(ValueError, match="unknown score_kind 'rank'"):
        calibrate(np.zeros(3), "rank")


# ---------------------------------------------------------------- posterior FDR
def test_posterior_fdr_clean_table_flags_nothing():
    p_correct = np.random.default_rng(0).uniform(0.8, 1.0, size=500)
    assert not posterior_fdr_flags(p_correct).any()
    assert not posterior_fdr_flags(np.ones(10)).any()


def test_posterior_fdr_takes_confidently_wrong_rows():
    p = np.array([0.9, 0.0, 0.95, 0.02, 0.3, 0.1, 0.99])
    # sorted: 0.0, 0.02, 0.1 (mean 0.04 <= 0.05), 0.3 (mean 0.105 > 0.05)
    np.testing.assert_array_equal(posterior_fdr_flags(p), [False, True, False, True, False, True, False])
    # the cap: even with a loose FDR, a row more likely right than `cap` is never taken
    flags = posterior_fdr_flags(p, fdr=0.9, cap=0.5)
    np.testing.assert_array_equal(flags, p <= 0.5)


@settings(max_examples=100, deadline=None)
@given(probs, st.floats(0.0, 0.5), st.floats(0.0, 1.0))
def test_posterior_fdr_property(p, fdr, cap):
    flags = posterior_fdr_flags(p, fdr=fdr, cap=cap)
    assert flags.shape == p.shape and flags.dtype == bool
    if flags.any():
        assert p[flags].mean() <= fdr + 1e-12  # expected share of wrongly flagged rows
        assert p[flags].max() <= cap  # no flagged row above the cap
        # flags are the least-likely-correct rows: nothing unflagged is strictly lower
        assert not (p[~flags] < p[flags].max()).any()
    # maximality: no longer prefix of the rows in increasing P(correct) satisfies both rules
    order = np.argsort(p, kind="stable")
    k = int(flags.sum())
    for m in range(k + 1, p.size + 1):
        prefix = p[order[:m]]
        assert prefix.mean() > fdr - 1e-12 or prefix[-1] > cap  # (float rounding of the running mean)


@given(probs)
def test_posterior_fdr_defaults(p):
    flags = posterior_fdr_flags(p)
    if flags.any():
        assert p[flags].mean() <= LABEL_FDR + 1e-12 and p[flags].max() <= LABEL_CAP


# ---------------------------------------------------------------- mixture weights
def test_mixture_weights_favour_the_estimator_that_explains_the_labels():
    rng = np.random.default_rng(0)
    good = np.clip(rng.beta(20, 1, 500), 0, 1)  # confident in the given labels
    bad = np.full(500, 0.5)  # a coin flip between two classes
    w = mixture_weights(np.stack([good, bad], axis=1))
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[0] > 0.9
    # symmetric estimators share the weight
    w2 = mixture_weights(np.stack([good, good], axis=1))
    np.testing.assert_allclose(w2, [0.5, 0.5])


# ---------------------------------------------------------------- combine
def test_combine_groups_label_probabilities_and_ranks_flagged_rows_first():
    n = 6
    knn = np.array([1.0, 0.0, 0.2, 0.0, 0.0, 0.0])
    conf = np.array([1.0, 0.0, 0.4, 0.0, 0.0, 0.0])
    dup = np.array([0.0, 0.5, 0.0, 0.0, 0.0, 0.0])
    forest = np.array([0.0, 0.0, 0.0, 0.7, 0.49, 0.0])
    strengths = {"knn_label": knn, "confident": conf, "duplicates": dup, "iforest": forest}
    kinds = {"knn_label": "probability", "confident": "probability", "duplicates": "probability", "iforest": "anomaly"}
    fams = {"knn_label": "label", "confident": "label", "duplicates": "duplicate", "iforest": "outlier"}
    c = combine(strengths, kinds, fams)
    assert c.groups == {LABEL_GROUP: ["knn_label", "confident"], "duplicates": ["duplicates"], "iforest": ["iforest"]}
    w = mixture_weights(1 - np.stack([knn, conf], axis=1))
    assert c.label_weights == pytest.approx({"knn_label": w[0], "confident": w[1]})
    mixed = 1 - (1 - np.stack([knn, conf], axis=1)) @ w
    np.testing.assert_allclose(c.group_strength[LABEL_GROUP], mixed)
    np.testing.assert_array_equal(c.group_flags[LABEL_GROUP], posterior_fdr_flags(1 - mixed))
    np.testing.assert_array_equal(c.group_flags["iforest"], forest >= 0.5)
    np.testing.assert_array_equal(c.auto_flags, [True, True, False, True, False, False])
    # half the largest group strength, plus one half for a flagged row: every flagged row
    # ranks above every unflagged one, and within each tier the largest strength decides
    strongest = np.array([1.0, 0.5, mixed[2], 0.7, 0.49, 0.0])
    np.testing.assert_allclose(c.suspicion, 0.5 * strongest + 0.5 * c.auto_flags)
    assert c.suspicion[c.auto_flags].min() > c.suspicion[~c.auto_flags].max()
    assert c.group_of("confident") == LABEL_GROUP and c.group_of("iforest") == "iforest"
    assert c.suspicion.shape == (n,)


def test_flagged_rows_rank_by_the_group_that_flags_them_above_unflagged_rows():
    # row 0: the forest flags it at 0.6 while the label group doubts it at 0.3;
    # row 1: only the label group doubts it (0.9) and no class is judged poisoned, so the
    # doubt is unconfirmed and counts at UNCONFIRMED_WEIGHT (0.5) of its strength
    label = np.array([0.3, 0.9, 0.0, 0.0])
    forest = np.array([0.6, 0.0, 0.55, 0.0])
    y = np.array([0, 1, 0, 1])
    c = combine({"knn_label": label, "iforest": forest}, {"knn_label": "probability", "iforest": "anomaly"},
                {"knn_label": "label", "iforest": "outlier"}, y=y)
    np.testing.assert_array_equal(c.auto_flags, [True, False, True, False])
    np.testing.assert_allclose(c.suspicion, [0.8, 0.5 * 0.5 * 0.9, 0.775, 0.0])


def test_combine_label_family_anomaly_detector_is_its_own_group():
    s = {"class_outlier": np.array([0.6, 0.1]), "knn_label": np.array([0.0, 1.0])}
    c = combine(s, {"class_outlier": "anomaly", "knn_label": "probability"},
                {"class_outlier": "label", "knn_label": "label"})
    assert c.groups == {"class_outlier": ["class_outlier"], LABEL_GROUP: ["knn_label"]}
    np.testing.assert_array_equal(c.auto_flags, [True, True])


def test_combine_needs_scores():
    with pytest.raises(ValueError, match="no detector scores"):
        combine({}, {}, {})


# ---------------------------------------------------------------- flag_top
def test_flag_top_breaks_ties_by_row_order():
    s = np.array([0.5, 0.9, 0.5, 0.5, 0.1])
    np.testing.assert_array_equal(flag_top(s, 2), [True, True, False, False, False])
    np.testing.assert_array_equal(flag_top(s, 3), [True, True, True, False, False])
    assert flag_top(s, 0).sum() == 0 and flag_top(s, 99).all() and flag_top(s, -1).sum() == 0


@given(arrays(np.float64, st.integers(1, 60), elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])), st.integers(0, 70))
def test_flag_top_property(s, k):
    f = flag_top(s, k)
    assert f.sum() == min(k, s.size)
    if 0 < f.sum() < s.size:
        assert s[f].min() >= s[~f].max()
        # among ties at the cut, earlier rows are flagged first
        cut = s[f].min()
        tied = np.flatnonzero(s == cut)
        assert np.all(np.diff(f[tied].astype(int)) <= 0)
