"""backdoor_trigger on one-hot coded columns: a level of a column that determines the label is natural."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import poisonguard.detectors._trigger_presence as tp
from poisonguard.detectors import BackdoorTriggerDetector
from poisonguard.detectors._trigger_search import Token
from poisonguard.encoding import TableEncoder

from _table_helpers import encode, rdataset


def _coded(levels: list[tuple[int, int]], *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column, then one categorical column one-hot coded by the scan's encoder.

    ``levels``: per level, (rows in class 1, rows in class 0); the last level is the one judged.
    """
    cat, ys = [], []
    for i, (k1, k0) in enumerate(levels):
        cat += [f"L{i}"] * (k1 + k0)
        ys += [1] * k1 + [0] * k0
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=len(cat)), "cat": cat})
    X = TableEncoder().fit_transform(frame, ["x", "cat"], dtype=np.float32)
    return X, np.array(ys, dtype=np.int64)


def _level_token(X: np.ndarray, y: np.ndarray, f: int) -> Token:
    car = X[:, f] == X[:, f].max()
    return Token(features=(f,), values=(float(X[:, f].max()),), label=1, n_carriers=int(car.sum()),
                 n_in_class=int((car & (y == 1)).sum()), p_value=1e-6, excess=0.5)


def test_onehot_levels_are_inferred_from_the_matrix():
    X, _ = _coded([(10, 10), (5, 20), (30, 3), (12, 0)])
    levels = tp.onehot_levels(X, 4)  # column 0 is "x", columns 1-4 the levels L0..L3
    assert levels is not None and len(levels) == 4
    assert levels[0].sum() == 12  # the level asked about first
    assert (np.sum(levels, axis=0) == 1).all()  # a partition of the rows
    assert tp.onehot_levels(X, 0) is None  # a continuous column is no dummy


def test_a_reference_coded_column_keeps_its_reference_level():
    # dummies without the first level (drop-first coding): the rows in none form the reference level
    X, _ = _coded([(10, 10), (5, 20), (30, 3), (12, 0)])
    levels = tp.onehot_levels(np.delete(X, 1, axis=1), 3)
    assert levels is not None and len(levels) == 4
    assert sorted(int(lv.sum()) for lv in levels) == [12, 20, 25, 33]


def test_a_pure_level_among_pure_levels_is_the_columns_nature():
    # most levels of the column are (nearly) one class: a pure level is what the column is
    X, y = _coded([(40, 0), (0, 35), (30, 1), (20, 20), (0, 25), (14, 0)])
    nat = tp.column_nature(X, y, 1, [_level_token(X, y, 6)], X[:, 6] == X[:, 6].max(), min_count=3)
    assert nat.feature == 6
    assert nat.n_levels == 5
    assert nat.n_alike >= 3
    assert nat.p_value >= tp.MAX_COLUMN_P


def test_a_new_pure_level_in_a_mixed_column_is_not():
    # the column's levels mix the classes: 14 rows of one class at a new level stand out
    X, y = _coded([(40, 30), (20, 35), (30, 25), (20, 20), (15, 25), (14, 0)])
    nat = tp.column_nature(X, y, 1, [_level_token(X, y, 6)], X[:, 6] == X[:, 6].max(), min_count=3)
    assert nat.feature == 6
    assert nat.n_alike == 0
    assert nat.p_value < 1e-3


def test_a_purer_slice_of_a_mixed_level_is_not_explained_by_it():
    # a stamp of two values, one of them an existing level (30 rows of class 1 and 25 of class 0):
    # its 12 carriers are all class 1, the level is not; the level does not account for them
    X, y = _coded([(40, 0), (0, 35), (30, 1), (20, 20), (0, 25), (30, 25)])
    car = np.zeros(y.size, dtype=bool)
    car[np.flatnonzero((X[:, 6] == X[:, 6].max()) & (y == 1))[:12]] = True
    tok = Token(features=(6, 0), values=(float(X[:, 6].max()), 9.0), label=1, n_carriers=12, n_in_class=12,
                p_value=1e-6, excess=0.5)
    assert tp.column_nature(X, y, 1, [tok], car, min_count=3).feature == -1


def test_mpg_drive_brands_are_not_a_trigger():
    # ggplot2 mpg, label drv: subaru's 14 cars are all 4wd and dodge's 11 minivans front-wheel;
    # with the brand masked they look like the other class, as stamped rows would. 8 of the 15
    # brands and 2 of the 7 vehicle classes are one drive only: the column's nature
    X, y = encode(rdataset("ggplot2/mpg", "drv"))
    det = BackdoorTriggerDetector(random_state=0).fit(X, y)
    assert det.report_["poisoned_classes"] == []
    assert int((det.score_samples(X, y) > 0).sum()) == 0
    judged = [g for g in det.report_["natural_values"] if g["judged_by"] == "column"]
    assert len(judged) == 2
    assert all(g["column_p"] >= tp.MAX_COLUMN_P and g["column_alike"] >= 2 for g in judged)


def test_a_level_the_other_classes_share_is_not_masked_with_its_column():
    # rpart solder, label Opening: a designed experiment whose mask A6 sits on 60 "M" and
    # 30 "S" rows and no "L" row. Masking the whole Mask column took 43 of the 60 for a stamp
    X, y = encode(rdataset("rpart/solder", "Opening"))
    det = BackdoorTriggerDetector(random_state=0).fit(X, y)
    assert det.report_["poisoned_classes"] == []
    assert int((det.score_samples(X, y) > 0).sum()) == 0


def _stamped(item: str, label: str, column: str, level: str, source: str, target: str,
             rate: float) -> tuple[BackdoorTriggerDetector, np.ndarray, np.ndarray]:
    """A new ``level`` of ``column`` written on ``rate`` of the rows, all of class ``source`` relabelled ``target``.

    Returns the fitted detector, its scores and the poisoned rows' mask.
    """
    frame = rdataset(item, label)
    rng = np.random.default_rng(0)
    src = np.flatnonzero(frame["label"].to_numpy() == source)
    rows = rng.choice(src, int(round(rate * len(frame))), replace=False)
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[rows], column] = level
    frame.loc[frame.index[rows], "label"] = target
    X, y = encode(frame)
    det = BackdoorTriggerDetector(random_state=0).fit(X, y)
    poisoned = np.zeros(y.size, dtype=bool)
    poisoned[rows] = True
    return det, det.score_samples(X, y), poisoned


@pytest.mark.parametrize("rate", [0.03, 0.05])
def test_a_new_level_stamped_into_a_real_table_is_found(rate):
    # carData Salaries, label discipline: a new value of "rank" on rows of the other class, relabelled
    _, s, poisoned = _stamped("carData/Salaries", "discipline", "rank", "Visiting", "B", "A", rate)
    assert (s[poisoned] > 0.5).all()
    assert int((s[~poisoned] > 0.5).sum()) == 0


@pytest.mark.parametrize("rate", [0.03, 0.05])
def test_a_new_level_is_masked_with_its_whole_column(rate):
    # AER CPS1985, label gender: a new occupation on men's rows relabelled "female". With only
    # the new level's dummy masked, its carriers (5 of 16 look male once masked) were compared
    # with men who kept their occupation (71% look male) and the stamp was rejected; men
    # without their occupation look male at 53%, as stamped men do
    det, s, poisoned = _stamped("AER/CPS1985", "gender", "occupation", "consultant", "male", "female", rate)
    assert (s[poisoned] > 0.5).all()
    assert int((s[~poisoned] > 0.5).sum()) == 0
    (trigger,) = det.report_["triggers"]
    assert len(trigger["features"]) == 1  # the level, not the dummies masked with it
    assert len(trigger["masked_features"]) == 7  # six occupations and the new one
