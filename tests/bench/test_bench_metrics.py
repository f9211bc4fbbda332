"""Benchmark metrics on hand-made arrays, the anchors, and the cell registry."""

from __future__ import annotations

import math

import numpy as np
import pytest

from poisonguard.bench import (
    ANCHORS,
    ATTACK_SPECS,
    AttackSpec,
    Cell,
    auroc,
    default_attack_names,
    flag_metrics,
    matrix,
    precision_at_k,
    quick_cells,
    register_attack_spec,
    speed_cells,
)
from poisonguard.errors import ConfigError, InputError


def test_auroc_hand_made() -> None:
    mask = np.array([0, 0, 1, 1], dtype=bool)
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), mask) == pytest.approx(0.75)
    assert auroc(np.array([0.0, 0.1, 0.8, 0.9]), mask) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.1, 0.0]), mask) == 0.0
    assert auroc(np.ones(4), mask) == 0.5  # ties count one half
    assert auroc(np.array([0.2, 0.5, 0.5, 0.9]), mask) == pytest.approx(0.875)
    assert math.isnan(auroc(np.arange(3.0), np.zeros(3, dtype=bool)))
    with pytest.raises(InputError, match="3 values and mask has 4"):
        auroc(np.arange(3.0), mask)


def test_auroc_matches_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, size=200).astype(float)  # many ties
    m = rng.random(200) < 0.2
    assert auroc(s, m) == pytest.approx(roc_auc_score(m, s))


def test_precision_at_k_hand_made() -> None:
    mask = np.array([1, 0, 1, 0, 0, 0], dtype=bool)
    assert precision_at_k(np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3]), mask) == 0.5  # k=2: rows 0, 1
    assert precision_at_k(np.array([0.9, 0.1, 0.8, 0.1, 0.2, 0.3]), mask) == 1.0
    assert precision_at_k(np.array([0.9, 0.8, 0.7, 0.1, 0.2, 0.3]), mask, k=3) == pytest.approx(2 / 3)
    # ties at the cut: top is row 0, then one of four tied rows (one poisoned) -> (1 + 1/4) / 2
    assert precision_at_k(np.array([0.9, 0.5, 0.5, 0.5, 0.5, 0.1]), mask) == pytest.approx(0.625)
    assert precision_at_k(np.zeros(6), mask) == pytest.approx(2 / 6)  # a constant score gets the base rate
    assert math.isnan(precision_at_k(np.arange(6.0), np.zeros(6, dtype=bool)))


def test_flag_metrics() -> None:
    mask = np.array([1, 1, 0, 0, 0], dtype=bool)
    fm = flag_metrics(np.array([1, 0, 1, 0, 0], dtype=bool), mask)
    assert (fm.n_flagged, fm.recall, fm.precision) == (2, 0.5, 0.5)
    assert fm.false_flag_rate == pytest.approx(1 / 3)
    none = flag_metrics(np.zeros(5, dtype=bool), mask)
    assert none.recall == 0 and math.isnan(none.precision)
    clean = flag_metrics(np.array([1, 0, 0, 0], dtype=bool), np.zeros(4, dtype=bool))
    assert math.isnan(clean.recall) and clean.false_flag_rate == 0.25


def test_knn_anchor_votes() -> None:
    knn = next(a for a in ANCHORS if a.name == "knn10")
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    y = np.array([0] * 20 + [1] * 20)
    y[3] = 1  # a flipped row inside cluster 0
    s = knn.score(X, y, 0)
    assert s.shape == (40,) and s[3] == 1.0 and s.argmax() == 3
    assert s[20:].max() == 0.0 and s[:20][np.arange(20) != 3].max() == pytest.approx(0.1)


def test_matrix_registry() -> None:
    cells = matrix(tables=["wine"])
    assert cells[0] == Cell("wine", "clean", 0.0, "clean", anchors=False)
    assert {c.display for c in cells} == {"clean", *default_attack_names()}
    assert "backdoor-patch" in ATTACK_SPECS and "backdoor-patch" not in default_attack_names()
    bd = matrix(tables=["digits", "wine"], attacks=["backdoor-patch", "backdoor-tabular"], include_clean=False)
    assert [(c.table, c.display) for c in bd] == [("digits", "backdoor-patch"), ("wine", "backdoor-tabular")]
    with pytest.raises(ConfigError, match="unknown benchmark attack"):
        matrix(attacks=["nope"])
    with pytest.raises(ConfigError, match="already registered"):
        register_attack_spec(AttackSpec("flip", "flip", rates=(0.2,)))
    assert Cell.from_dict(cells[1].to_dict()) == cells[1]
    assert len(quick_cells()) == 3
    assert [c.n_rows for c in speed_cells(big=True)] == [100_000, 1_000_000]


def test_class_damage_is_the_worst_class_share_of_clean_rows_flagged() -> None:
    from poisonguard.bench import class_damage

    y = np.array([0] * 10 + [1] * 4)
    poisoned = np.zeros(14, dtype=bool)
    poisoned[0] = True  # a poisoned row that is flagged does not count as damage
    flagged = np.zeros(14, dtype=bool)
    flagged[[0, 1, 10, 11]] = True
    # class 0: 1 of its 9 clean rows; class 1: 2 of 4
    assert class_damage(flagged, poisoned, y) == 0.5
    assert class_damage(np.zeros(14, dtype=bool), poisoned, y) == 0.0
    assert class_damage(flagged, poisoned, None) is None
