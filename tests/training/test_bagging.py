"""Bagging certificate (Jia, Cao & Gong, AAAI 2021)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonguard.errors import InputError
from poisonguard.training import CertifiedSettings, TrainSettings, certify, load_model, save_model, train_model
from poisonguard.training._bagging import _holds, bagging_bounds, bagging_radius, bagging_radius_from_bounds


def _insertion_only(gap: float, n: int, k: int) -> int:
    """The paper's pure-insertion case: gap > ((n + r)/n)^k - 1."""
    r = 0
    while ((n + r + 1) / n) ** k - 1 < gap:
        r += 1
    return r


def _modification_only(gap: float, n: int, k: int) -> int:
    """The paper's pure-modification case: gap > 2 (1 - ((n - r)/n)^k)."""
    r = 0
    while r + 1 < n and 2 * (1 - ((n - r - 1) / n) ** k) < gap:
        r += 1
    return r


@settings(max_examples=40, deadline=None)
@given(p_a=st.floats(0.3, 1.0), frac=st.floats(0.0, 0.95), n=st.integers(50, 5000), k=st.integers(1, 200))
def test_radius_matches_the_closed_forms(p_a, frac, n, k):
    p_b = min(1 - p_a, frac * p_a)
    r = bagging_radius_from_bounds(p_a, p_b, n=n, k=k)
    if p_a <= p_b:
        assert r == -1
        return
    gap = p_a - p_b
    # mixing edits never helps the defender: the radius is at most each pure case
    assert r <= _modification_only(gap, n, k) <= _insertion_only(gap, n, k)
    assert _holds(p_a, p_b, n, k, r) if r > 0 else True
    assert not _holds(p_a, p_b, n, k, r + 1)
    # the worst mix is pure modification (one edit = delete + insert); the closed form is
    # evaluated in another float order, so it may land one step off on an exact boundary
    assert _modification_only(gap, n, k) - 1 <= r


def test_bounds_are_conservative():
    pred, lo, up = bagging_bounds(np.array([[90, 10], [50, 50]]), alpha=0.01)
    assert pred.tolist() == [0, 0]
    assert lo[0] < 0.9 and up[0] > 0.1 and lo[0] > up[0]
    _, r = bagging_radius(np.array([[50, 50]]), n=1000, k=10, alpha=0.01)
    assert r[0] == -1


def test_bagging_trains_saves_and_certifies(tmp_path, digits_small):
    s = TrainSettings(model="logreg", certified=CertifiedSettings(partitions=20, method="bagging", bag_size=150))
    m = train_model(digits_small, label="label", settings=s)
    assert m.kind == "bagging" and len(m.members) == 20
    save_model(m, tmp_path / "m")
    res = certify(load_model(tmp_path / "m"), digits_small)
    assert res.method == "bagging"
    assert res.rows["radius"].min() >= -1
    assert res.accuracy_at(0) > 0.6
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict(digits_small), m.predict(digits_small))


@pytest.mark.parametrize(
    "cert,match",
    [
        (CertifiedSettings(5, method="vote"), "method must be dpa or bagging"),
        (CertifiedSettings(5, method="dpa", bag_size=10), "bag_size"),
        (CertifiedSettings(5, method="bagging", alpha=0.0), "alpha"),
    ],
)
def test_bad_certified_settings(digits_small, cert, match):
    with pytest.raises(InputError, match=match):
        train_model(digits_small, label="label", settings=TrainSettings(certified=cert))
