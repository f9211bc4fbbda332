"""The injected micro-cluster detector: finds blobs, keeps clean tables and natural dense groups clean."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.attacks import inject_outliers
from poisonguard.detectors import ClusterDetector
from poisonguard.encoding import TableEncoder
from poisonguard.errors import ConfigError


def _encode(frame: pd.DataFrame) -> np.ndarray:
    feats = [c for c in frame.columns if c != "label"]
    return TableEncoder().fit_transform(frame, feats)


@pytest.fixture(scope="module")
def blob(digits_small):
    pt = inject_outliers(digits_small, "label", 0.03, seed=0, placement="cluster_in_range")
    return _encode(pt.frame), pt.mask


def test_finds_an_in_range_blob_and_nothing_else(blob):
    X, mask = blob
    det = ClusterDetector().fit(X)
    s = det.score_samples(X)
    assert (s[mask] >= 0.5).all()
    assert (s[~mask] == 0).all()
    assert det.report_["injected_groups"] == 1 and det.report_["injected_rows"] == mask.sum()


def test_clean_tables_flag_nothing(digits_small):
    X = _encode(digits_small)
    assert (ClusterDetector().fit(X).score_samples(X) == 0).all()


def test_natural_dense_groups_are_not_injected():
    """Exact duplicates and a grid of repeated integer values reach the data through neighbouring cells."""
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 4, size=(3000, 4)).astype(float)  # 256 cells, ~12 identical rows each
    dup = np.repeat(rng.normal(size=(50, 6)), 8, axis=0)  # 50 groups of 8 exact duplicates in a continuum
    cont = np.vstack([dup, rng.normal(size=(1600, 6))])
    for X in (grid, cont):
        X = TableEncoder().fit_transform(pd.DataFrame(X), list(range(X.shape[1])))
        assert (ClusterDetector().fit(X).score_samples(X) == 0).all()


def test_new_rows_join_a_found_group_within_its_radius(blob):
    X, mask = blob
    det = ClusterDetector().fit(X)
    members, others = X[mask], X[~mask]
    jitter = np.random.default_rng(1).normal(0.0, 1e-3, size=members.shape)
    s_new = det.score_samples(members + jitter)
    assert (s_new >= 0.5).all()
    assert (det.score_samples(others[:200] + 1e-3) == 0).all()


def test_explains_with_the_groups_evidence(blob):
    X, mask = blob
    det = ClusterDetector().fit(X)
    row = int(np.flatnonzero(mask)[0])
    e = det.explain(X, None, row)
    assert f"one of {int(mask.sum())} rows" in e.reason
    assert e.evidence["gap"] > e.evidence["internal"] and e.evidence["injected"]
    other = det.explain(X, None, int(np.flatnonzero(~mask)[0]))
    assert "not in a tight, separated group" in other.reason


@pytest.mark.parametrize("setting", [{"min_size": 1}, {"tightness": 0}, {"separation": 1.0}, {"n_neighbors": 2}])
def test_bad_settings_raise(setting):
    with pytest.raises(ConfigError):
        ClusterDetector(**setting).fit(np.zeros((20, 2)))


def test_a_table_of_separated_class_clusters_is_not_injected():
    """Model embeddings: every row sits in one of ten separated class clusters, none denser than the table.

    Before the density guard the graph merged the ten classes into one group with no row
    outside it (gap inf) and flagged all 2,000 rows of the clean 2,048-d table.
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _wide_helpers import embeddings

    frame = embeddings(2000, 256, seed=0)
    X = _encode(frame)
    y = frame["label"].to_numpy()
    det = ClusterDetector().fit(X, y)
    assert (det.score_samples(X, y) >= 0.5).sum() == 0
    assert not det.found_
    # an injected blob in the same table is still found
    pt = inject_outliers(frame, "label", 0.04, seed=0, placement="cluster_in_range", spread=0.02)
    Xb = _encode(pt.frame)
    yb = pt.frame["label"].to_numpy()
    s = ClusterDetector().fit(Xb, yb).score_samples(Xb, yb)
    assert (s[pt.mask] >= 0.5).mean() >= 0.9
    assert (s[~pt.mask] >= 0.5).sum() == 0


def _coarse_table(seed: int) -> pd.DataFrame:
    """A survey-like table: six integer-valued answers on 1-5 / 1-7 scales, clumps of identical answers."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(2400, 1))
    cols = {f"q{j}": np.clip(np.round(3 + 1.2 * latent[:, 0] + rng.normal(0, 1.0, 2400)), 1, 5 + 2 * (j % 2))
            for j in range(6)}
    frame = pd.DataFrame(cols).astype(float)
    # natural clumps of identical rows: 30 profiles answered by 8-25 people each
    clumps = frame.sample(30, random_state=seed)
    reps = clumps.loc[clumps.index.repeat(rng.integers(8, 26, size=30))]
    frame = pd.concat([frame, reps], ignore_index=True)
    frame["label"] = (latent[:, 0].tolist() + [0.0] * len(reps))[: len(frame)]
    frame["label"] = (frame["label"] > 0).astype(int)
    return frame


@pytest.mark.parametrize("seed", [0, 1])
def test_coarse_table_with_natural_clumps_flags_nothing(seed):
    """Grid values, many exact duplicates and clumps of identical rows: nothing is injected."""
    X = _encode(_coarse_table(seed))
    det = ClusterDetector().fit(X)
    assert (det.score_samples(X) == 0).all()
    assert not det.found_


@pytest.mark.parametrize("seed", [0, 1])
def test_finds_an_in_range_blob_on_a_coarse_table(seed):
    """On a grid the blob is only a grid step or two from natural rows (no wide gap), but it is
    packed far tighter than any natural rows: the dense-core rule finds it."""
    pt = inject_outliers(_coarse_table(seed), "label", 0.03, seed=seed, placement="cluster_in_range")
    X = _encode(pt.frame)
    det = ClusterDetector().fit(X)
    s = det.score_samples(X)
    assert (s[pt.mask] >= 0.5).mean() >= 0.95
    assert (s[~pt.mask] >= 0.5).sum() <= 3
    assert len(det.found_) == 1
    # new rows (outside the fit sample): near copies of members join the group, natural rows do not
    assert (det.score_samples(X[pt.mask] + 1e-3) >= 0.5).mean() >= 0.9
    assert (det.score_samples(X[~pt.mask][:500]) == 0).all()


def test_the_dense_core_rule_is_what_finds_a_blob_near_the_grid():
    """Seed 1 puts the blob about one grid step from natural rows: separation ~1, only the dense core finds it."""
    pt = inject_outliers(_coarse_table(1), "label", 0.03, seed=1, placement="cluster_in_range")
    X = _encode(pt.frame)
    det = ClusterDetector().fit(X)
    assert [g.rule for g in det.found_] == ["dense core"]
    assert det.found_[0].ratio < 2 and det.found_[0].packed_elsewhere == 0


def test_a_blob_in_a_table_of_exact_twins_is_found():
    """Most rows have five or more exact twins (the table's 5th-neighbour spacing is 0): the density
    guard measures the blob in distinct rows instead of rejecting every group (statsmodels randhie)."""
    rng = np.random.default_rng(0)
    # 2,000 rows on 81 cells (about 25 twins each) and 1,000 on a finer grid (few twins)
    values = np.vstack([rng.integers(0, 3, size=(2000, 4)), rng.integers(0, 10, size=(1000, 4)) / 4.5])
    frame = pd.DataFrame(values, columns=list("abcd"))
    frame["label"] = rng.integers(0, 2, size=3000)
    pt = inject_outliers(frame, "label", 0.03, seed=0, placement="cluster")
    X = _encode(pt.frame)
    det = ClusterDetector().fit(X)
    s = det.score_samples(X)
    assert det.found_ and det.found_[0].spacing == 0
    assert (s[pt.mask] >= 0.5).all() and (s[~pt.mask] == 0).all()
    clean = _encode(frame)
    assert (ClusterDetector().fit(clean).score_samples(clean) == 0).all()
