"""IBM ART's poisoning defences as backdoor-bench anchors, and anchor selection per bench."""

from __future__ import annotations

import numpy as np
import pytest

from poisonguard.bench import ANCHORS, BENCHES, anchor_available, anchors_for
from poisonguard.errors import ConfigError

_ART = ("art_ac", "art_spectral")


def test_anchor_selection_per_bench() -> None:
    scan = [a.name for a in anchors_for("scan")]
    backdoor = [a.name for a in anchors_for("backdoor")]
    assert scan == ["iforest", "cleanlab", "ecod", "knn10"]
    assert backdoor == scan + list(_ART)  # same column order as ANCHORS
    assert all(set(a.benches) <= set(BENCHES) for a in ANCHORS)
    with pytest.raises(ConfigError, match="unknown benchmark 'nope'"):
        anchors_for("nope")


def _backdoored_table(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3 Gaussian classes of 150 rows; 20 rows of class 1 get a trigger (+6 on two features) and label 0."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(3, 8))
    y = np.repeat(np.arange(3), 150)
    X = centres[y] + rng.normal(size=(len(y), 8))
    poisoned = rng.choice(np.flatnonzero(y == 1), size=20, replace=False)
    X[np.ix_(poisoned, [0, 1])] += 6.0
    y[poisoned] = 0
    mask = np.zeros(len(y), dtype=bool)
    mask[poisoned] = True
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, y, mask


@pytest.mark.parametrize("name", _ART)
def test_art_anchor_scores_rows_and_ranks_injected_cluster(name: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("art.defences.detector.poison")
    from poisonguard.bench import auroc

    anchor = next(a for a in ANCHORS if a.name == name)
    assert anchor_available(anchor)
    X, y, mask = _backdoored_table()
    s = anchor.score(X, y, 0)
    assert s.shape == (len(y),) and s.dtype == float and np.isfinite(s).all()
    assert auroc(s, mask) >= 0.75  # the injected cluster ranks well above chance (0.5)
    assert np.array_equal(anchor.score(X, y, 0), s)  # seeded: same answer twice
    state = np.random.get_state()[1].copy()
    anchor.score(X, y, 1)
    assert np.array_equal(np.random.get_state()[1], state)  # the global numpy RNG is restored
