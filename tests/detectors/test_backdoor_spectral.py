"""backdoor_spectral: quality on triggered tables, presence test on clean and flipped tables, contract."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.metrics import roc_auc_score

from poisonguard.detectors import BackdoorSpectralDetector, get_detector
from poisonguard.errors import ConfigError, NotFittedError
from _patch_helpers import patched_digits, standardize


def _spectral_patched(rate=0.03, seed=0, target=0, size=2, row=0, col=5, value=8.0):
    return patched_digits(rate=rate, seed=seed, target=target, size=size, row=row, col=col, value=value)


@pytest.fixture(scope="module")
def patched():
    return _spectral_patched()


def test_finds_patch_backdoor(patched):
    X, y, mask = patched
    det = BackdoorSpectralDetector().fit(X, y)
    s = det.score_samples(X, y)
    assert roc_auc_score(mask, s) >= 0.98
    flagged = s >= 0.5
    assert (flagged & mask).sum() >= 0.9 * mask.sum()
    assert (flagged & ~mask).sum() <= 0.01 * (~mask).sum()
    assert [p.label for p in det.presence_ if p.poisoned] == [0]
    assert det.report_["poisoned_classes"] == [0]
    assert ((s > 0) & (y != 0)).sum() == 0  # only classes judged poisoned score


def test_centre_patch_is_not_claimed_on_clean_shapes():
    """A centre patch of maximum ink is carried by ~3% of clean digits: documented limit, must not false-flag."""
    X, y, mask = _spectral_patched(rate=0.06, row=3, col=3, value=16.0)
    s = BackdoorSpectralDetector().fit(X, y).score_samples(X, y)
    assert (s[~mask] >= 0.5).mean() <= 0.01


def test_explains_with_pattern(patched):
    X, y, mask = patched
    det = BackdoorSpectralDetector().fit(X, y)
    row = int(np.flatnonzero(mask)[0])
    e = det.explain(X, y, row)
    assert "{label:0}" in e.reason and "{feature:" in e.reason
    assert set(e.evidence["pattern_features"]) <= {5, 6, 13, 14}


@pytest.mark.parametrize("loader", [load_digits, load_breast_cancer])
def test_presence_says_clean_on_clean_tables(loader):
    X, y = loader(return_X_y=True)
    X = standardize(X)
    det = BackdoorSpectralDetector().fit(X, y)
    assert not any(p.poisoned for p in det.presence_)
    assert len(det.presence_) == int(y.max()) + 1
    assert (det.score_samples(X, y) == 0).all()


def _two_mode_class(seed=0, n=300):
    """Three clean classes; class 2 is two sites, one with a terminal time of its own and trips
    that resemble class 1's (modechoice's bus rows: a 53-minute terminal time no other mode has)."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for c, mu in enumerate([(0.0, 0.0), (3.0, 0.0), (0.0, 3.0)]):
        f = rng.normal(mu, 1.0, size=(n, 2))
        t = np.full(n, 10.0 * (c + 1))
        if c == 2:
            f[n // 2:] = rng.normal((3.0, 1.5), 0.5, size=(n - n // 2, 2))
            t[n // 2:] = 45.0
        X.append(np.c_[t, f, rng.normal(0.0, 1.0, size=(n, 1))])
        y.append(np.full(n, c))
    return standardize(np.vstack(X)), np.concatenate(y)


@pytest.mark.parametrize("seed", [0, 1])
def test_natural_two_mode_class_is_not_a_backdoor(seed):
    X, y = _two_mode_class(seed)
    det = BackdoorSpectralDetector().fit(X, y)
    assert not any(p.poisoned for p in det.presence_)
    assert (det.score_samples(X, y) == 0).all()
    # the sub-population passes the disagreement and shared-value parts (an exclusive value):
    # only source likeness tells it from a backdoor; without that part the class is taken
    sub = [c for c in det.report_["clusters"] if c["label"] == 2 and c["pattern_features"] == [0]]
    assert sub and all(c["source_auc"] > 0.85 for c in sub)
    loose = BackdoorSpectralDetector(max_source_auc=1.0).fit(X, y)
    assert [p.label for p in loose.presence_ if p.poisoned] == [2]


def test_presence_says_clean_on_label_flips():
    X, y = load_digits(return_X_y=True)
    X = standardize(X)
    rng = np.random.default_rng(1)
    rows = rng.choice(len(y), size=len(y) // 10, replace=False)
    y = y.copy()
    y[rows] = (y[rows] + rng.integers(1, 10, size=rows.size)) % 10
    det = BackdoorSpectralDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == []


def test_wide_table_smoke():
    rng = np.random.default_rng(0)
    n, d = 600, 512
    y = rng.integers(0, 3, size=n)
    X = rng.normal(size=(n, d)) + y[:, None] * 0.3
    X[:30, :2] = 9.0
    y[:30] = 0
    det = BackdoorSpectralDetector(random_state=1).fit(X, y)
    s = det.score_samples(X, y)
    assert s.shape == (n,) and np.isfinite(s).all() and ((s >= 0) & (s <= 1)).all()
    assert det.components_.shape[1] == d and det.components_.shape[0] <= 32


def test_contract_basics(patched):
    X, y, _ = patched
    det = get_detector("backdoor_spectral", random_state=3)
    with pytest.raises(NotFittedError):
        det.score_samples(X, y)
    assert det.fit(X, y) is det
    s1 = det.score_samples(X, y)
    s2 = det.score_samples(X, y)
    np.testing.assert_array_equal(s1, s2)
    s3 = get_detector("backdoor_spectral", random_state=3).fit(X, y).score_samples(X, y)
    np.testing.assert_array_equal(s1, s3)
    with pytest.raises(ValueError):
        det.score_samples(X[:, :-1], y)
    with pytest.raises(TypeError):
        BackdoorSpectralDetector(0.5)  # keyword-only settings
    with pytest.raises(ConfigError):
        BackdoorSpectralDetector(min_share=0).fit(X, y)
    with pytest.raises(ConfigError, match="max_source_auc must be in \\[0.5, 1\\], got 0.4"):
        BackdoorSpectralDetector(max_source_auc=0.4).fit(X, y)
