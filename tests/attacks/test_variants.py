"""Attack variants nobody designed the detectors for: ground truth and determinism.

For every variant: the rows that differ from the clean table are exactly the rows of
``mask`` (in-place attacks), or the clean rows come back untouched and the appended
rows are exactly the masked ones (appending attacks); the same seed gives the same
table and another seed another one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from poisonguard.attacks import (
    ATTACK_KINDS,
    duplicate_flip,
    inject_outliers,
    pair_flip,
    perturbed_copies,
    poison,
    scale_rows,
)
from poisonguard.datasets import load_dataset
from poisonguard.errors import DataError, InputError


@pytest.fixture(scope="module")
def wine() -> pd.DataFrame:
    return load_dataset("wine").frame


@pytest.fixture(scope="module")
def mixed() -> pd.DataFrame:
    """Integer, float (with gaps), text and an id column; three text classes."""
    rng = np.random.default_rng(5)
    n = 300
    frame = pd.DataFrame({
        "count": rng.integers(0, 50, size=n),
        "amount": rng.normal(100.0, 15.0, size=n),
        "ratio": rng.random(size=n),
        "city": rng.choice(np.array(["oslo", "lima", "pune"], dtype=object), size=n),
        "label": rng.choice(np.array(["a", "b", "c"], dtype=object), size=n),
    })
    frame.loc[::37, "amount"] = np.nan
    return frame


# kind, params, appends rows?
_VARIANTS: list[tuple[str, dict[str, Any], bool]] = [
    ("pair", {"source_class": "a", "target_class": "b"}, False),
    ("outlier", {"placement": "cluster"}, True),
    ("outlier", {"placement": "cluster_in_range"}, True),
    ("perturbed", {"n_columns": 2}, True),
    ("duplicate_flip", {}, True),
    ("scaled", {"factor": 10.0}, False),
    ("backdoor", {"target": "c", "trigger": "tabular",
                  "trigger_options": {"n_trigger_features": 2, "trigger_values": "p90"}}, False),
]


def _row_changed(a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Per row: does any cell differ (NaN equal to NaN)?"""
    same = (a.reset_index(drop=True) == b.reset_index(drop=True)) | (a.reset_index(drop=True).isna() & b.reset_index(drop=True).isna())
    return ~same.all(axis=1).to_numpy()


@pytest.mark.parametrize(("kind", "params", "appends"), _VARIANTS, ids=[f"{k}-{p.get('placement', '')}" for k, p, _ in _VARIANTS])
def test_variant_ground_truth_is_exactly_the_changed_rows(mixed: pd.DataFrame, kind: str, params: dict, appends: bool) -> None:
    assert kind in ATTACK_KINDS
    before = mixed.copy()
    res = poison(kind, mixed, label="label", rate=0.1, seed=0, **params)
    pd.testing.assert_frame_equal(mixed, before)  # the input is never mutated
    n = len(mixed)
    assert res.frame.dtypes.to_dict() == mixed.dtypes.to_dict()
    assert res.mask.dtype == bool and res.mask.size == len(res.frame)
    assert res.params["n_poisoned"] == res.n_poisoned > 0
    if appends:
        k = len(res.frame) - n
        assert k == round(0.1 * n / 0.9)
        pd.testing.assert_frame_equal(res.frame.iloc[:n].reset_index(drop=True), mixed.reset_index(drop=True))
        np.testing.assert_array_equal(res.mask, np.arange(len(res.frame)) >= n)
    else:
        assert len(res.frame) == n and res.n_poisoned == round(0.1 * n)
        np.testing.assert_array_equal(_row_changed(res.frame, mixed), res.mask)


@pytest.mark.parametrize(("kind", "params", "appends"), _VARIANTS, ids=[f"{k}-{p.get('placement', '')}" for k, p, _ in _VARIANTS])
def test_variant_is_deterministic_by_seed(mixed: pd.DataFrame, kind: str, params: dict, appends: bool) -> None:
    a = poison(kind, mixed, label="label", rate=0.1, seed=7, **params)
    b = poison(kind, mixed, label="label", rate=0.1, seed=7, **params)
    c = poison(kind, mixed, label="label", rate=0.1, seed=8, **params)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.params == b.params
    assert not a.frame.equals(c.frame)


def test_pair_flip_moves_only_source_rows_to_target(wine: pd.DataFrame) -> None:
    res = pair_flip(wine, "label", source_class=1, target_class=2, rate=0.05, seed=0)
    assert res.kind == "pair" and res.target == 2 and res.n_poisoned == round(0.05 * len(wine))
    assert (wine["label"][res.mask] == 1).all() and (res.frame["label"][res.mask] == 2).all()
    pd.testing.assert_series_equal(res.frame["label"][~res.mask], wine["label"][~res.mask])
    # rows are drawn at random within the class, not nearest the boundary: another seed, other rows
    other = pair_flip(wine, "label", source_class=1, target_class=2, rate=0.05, seed=1)
    assert not np.array_equal(res.mask, other.mask)
    with pytest.raises(InputError, match="both"):
        pair_flip(wine, "label", source_class=1, target_class=1, rate=0.05)
    with pytest.warns(UserWarning, match="only 71"):  # class 1 of wine has 71 rows
        assert pair_flip(wine, "label", source_class=1, target_class=0, rate=0.5).n_poisoned == 71


def test_cluster_outliers_are_one_tight_blob_far_away_or_inside_the_ranges(wine: pd.DataFrame) -> None:
    feats = [c for c in wine.columns if c != "label"]
    std = wine[feats].std(ddof=0)
    far = inject_outliers(wine, "label", rate=0.05, seed=0, placement="cluster")
    blob = far.frame[far.mask]
    assert blob["label"].nunique() == 1  # one campaign, one label
    assert (blob[feats].std(ddof=0) < 0.15 * std).all()  # tight: spread 0.05 std per feature
    centre_z = ((blob[feats].mean() - wine[feats].mean()) / std).abs()
    assert (centre_z >= 3.5).all()  # every feature of the centre 4..8 std out (minus the blob's own noise)
    inside = inject_outliers(wine, "label", rate=0.05, seed=0, placement="cluster_in_range", spread=0.02)
    rows = inside.frame[inside.mask]
    assert (rows[feats].min() >= wine[feats].min()).all() and (rows[feats].max() <= wine[feats].max()).all()
    assert (rows[feats].std(ddof=0) < 0.1 * std).all()
    with pytest.raises(InputError, match="placement"):
        inject_outliers(wine, "label", rate=0.05, placement="blob")
    with pytest.raises(InputError, match="spread"):
        inject_outliers(wine, "label", rate=0.05, placement="cluster", spread=0.0)


def test_perturbed_copies_differ_from_their_source_in_exactly_n_columns(wine: pd.DataFrame) -> None:
    res = perturbed_copies(wine, "label", rate=0.1, seed=2, n_columns=3)
    src = wine.iloc[res.params["copied_rows"]].reset_index(drop=True)
    copies = res.frame[res.mask].reset_index(drop=True)
    diff = (copies != src).sum(axis=1).to_numpy()
    np.testing.assert_array_equal(diff, 3)
    assert (copies["label"] == src["label"]).all()
    feats = [c for c in wine.columns if c != "label"]
    z = ((copies[feats] - wine[feats].mean()) / wine[feats].std(ddof=0)).abs()
    changed = (copies[feats] != src[feats]).to_numpy()
    assert (z.to_numpy()[changed] >= 4.0 - 1e-9).all()  # the changed values sit 4..8 std out
    with pytest.raises(InputError, match="n_columns"):
        perturbed_copies(wine, "label", rate=0.1, n_columns=0)
    const = pd.DataFrame({"x": np.ones(20), "label": [0, 1] * 10})
    with pytest.raises(DataError, match="not constant"):
        perturbed_copies(const, "label", rate=0.1)


def test_duplicate_flip_copies_features_with_another_label(wine: pd.DataFrame) -> None:
    res = duplicate_flip(wine, "label", rate=0.05, seed=0)
    src = wine.iloc[res.params["copied_rows"]].reset_index(drop=True)
    copies = res.frame[res.mask].reset_index(drop=True)
    feats = [c for c in wine.columns if c != "label"]
    pd.testing.assert_frame_equal(copies[feats], src[feats])
    assert (copies["label"] != src["label"]).all()
    assert set(copies["label"]) <= set(wine["label"])


def test_scaled_rows_multiply_every_numeric_feature(wine: pd.DataFrame) -> None:
    res = scale_rows(wine, "label", rate=0.05, seed=0, factor=10.0)
    feats = [c for c in wine.columns if c != "label"]
    np.testing.assert_allclose(res.frame.loc[res.mask, feats].to_numpy(), 10.0 * wine.loc[res.mask, feats].to_numpy())
    pd.testing.assert_frame_equal(res.frame[~res.mask], wine[~res.mask])
    with pytest.raises(InputError, match="factor"):
        scale_rows(wine, "label", rate=0.05, factor=1.0)


def test_percentile_trigger_values(wine: pd.DataFrame) -> None:
    res = poison("backdoor", wine, label="label", rate=0.05, seed=0, target=0, trigger="tabular",
                 trigger_options={"n_trigger_features": 3, "trigger_values": "p90"})
    values = res.params["trigger"]["values"]
    assert len(values) == 3
    for col, v in values.items():
        assert v == pytest.approx(float(np.percentile(wine[col], 90)))
        np.testing.assert_allclose(res.frame.loc[res.mask, col].to_numpy(), v)
    with pytest.raises(InputError, match="pNN"):
        poison("backdoor", wine, label="label", rate=0.05, target=0, trigger="tabular",
               trigger_options={"trigger_values": "p101"})
