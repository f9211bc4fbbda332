"""Value patterns that a table's own structure explains are not clean-label stamps.

Three natural ways a value conjunction ends up carried by one class only, none of
them a stamp (the clean sweep's Ecdat ``Fishing``, datasets ``mtcars`` and MASS
``Cars93`` showed each; the tables below are generated to have the same structure):

- a functional dependency: the chosen option's attribute copied into a column
  (``catch`` is the catch rate of the mode the angler chose, so within a class it
  equals that mode's site column, and site columns determine each other);
- a class trait: one value of the conjunction is exclusive to the class and common in
  its rows without the conjunction, the other is common everywhere;
- a tiny table, where a few rows share several values because the class has few rows
  and each value is carried by nearly the same ones (shared car platforms).

An attacker writes a stamp's values without regard to the row's other values, so a
stamp breaks such links, is no trait of the class, and co-occurs far beyond what its
parts' frequencies predict: the stamps planted below are still found.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.detectors import BackdoorCleanLabelDetector
from poisonguard.detectors._backdoor_clean_label import independent_features

from _table_helpers import encode as _encode, rdataset


def _columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c != "label"]


def _choice_table(seed: int = 0, n: int = 1200) -> pd.DataFrame:
    """Anglers choosing one of four modes; ``catch`` is the catch rate of the chosen mode.

    Each angler's site fixes the four modes' catch rates; the beach rate takes four values
    and is a function of the pier rate (sites share beaches), so over the whole table the
    rate columns determine each other and, within a class, ``catch`` equals its mode's column.
    """
    rng = np.random.default_rng(seed)
    n_sites = 10
    beach_of_site = np.arange(n_sites) % 4
    beach = np.round(rng.uniform(0.05, 0.6, 4), 4)[beach_of_site]
    pier = np.round(rng.uniform(0.05, 0.6, n_sites), 4)
    boat = np.round(rng.uniform(0.05, 1.5, n_sites), 4)
    charter = np.round(rng.uniform(0.3, 2.0, n_sites), 4)
    rates = np.column_stack([beach, pier, boat, charter])
    site = rng.integers(0, n_sites, n)
    price = np.round(rng.gamma(2.0, 40.0, size=(n, 4)), 3)
    income = np.round(rng.uniform(400, 12000, n), 2)
    util = 3.0 * rates[site] - 0.02 * price + np.array([-0.8, 0.0, 0.4, 0.2]) + rng.gumbel(size=(n, 4))
    mode = util.argmax(axis=1)
    names = np.array(["beach", "pier", "boat", "charter"])
    return pd.DataFrame({
        "price": price[np.arange(n), mode], "catch": rates[site, mode],
        "pbeach": price[:, 0], "ppier": price[:, 1], "pboat": price[:, 2], "pcharter": price[:, 3],
        "cbeach": rates[site, 0], "cpier": rates[site, 1], "cboat": rates[site, 2], "ccharter": rates[site, 3],
        "income": income, "label": names[mode],
    })


def _trait_table(seed: int = 0, n: int = 2000) -> pd.DataFrame:
    """Cars: 3-speed gearboxes exist only in automatics (80% of them); 8 cylinders mostly
    come with them, though some manuals have 8 cylinders too."""
    rng = np.random.default_rng(seed)
    auto = rng.random(n) < 0.35
    gear = np.where(auto, np.where(rng.random(n) < 0.8, 3, 4), rng.choice([4, 5], n))
    cyl = np.where(gear == 3, np.where(rng.random(n) < 0.9, 8, 6), rng.choice([4, 6, 8], n, p=[0.5, 0.35, 0.15]))
    frame = pd.DataFrame({"gear": gear, "cyl": cyl})
    for j in range(4):
        frame[f"x{j}"] = rng.normal(size=n) + 0.4 * auto
    frame["label"] = np.where(auto, "auto", "manual")
    return frame


def _platform_table(seed: int = 0) -> pd.DataFrame:
    """93 cars in six types; five of the eleven large cars share one platform, so they share
    their highway mileage, tank size and width, values that other types' cars also have."""
    rng = np.random.default_rng(seed)
    sizes = {"compact": 16, "large": 11, "midsize": 22, "small": 21, "sporty": 14, "van": 9}
    rows = []
    for kind, m in sizes.items():
        for i in range(m):
            shared = kind == "large" and i < 5
            rows.append({
                "mpg": 28 if shared else int(rng.integers(20, 34)),
                "tank": 18.0 if shared else float(rng.choice([13.2, 15.9, 16.4, 18.0, 20.0, 23.0])),
                "width": 74 if shared else int(rng.integers(66, 79)),
                "length": int(rng.integers(150, 220)),
                "weight": int(rng.integers(2000, 4100)),
                "hp": int(rng.integers(60, 300)),
                "label": kind,
            })
    frame = pd.DataFrame(rows)
    # every shared value also occurs outside the large cars, never all three at once
    frame.loc[frame["label"] == "midsize", ["mpg", "tank", "width"]] = [[28, 16.4, 70], [25, 18.0, 71],
                                                                         [26, 20.0, 74]] + [[29, 15.9, 69]] * 19
    return frame


def _stamp(frame: pd.DataFrame, cls: str, columns: tuple[str, str], values: tuple[float, float], count: int,
           seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """Write ``values`` into ``columns`` of ``count`` random rows of class ``cls`` (labels kept)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(np.flatnonzero(frame["label"].to_numpy() == cls), count, replace=False)
    out = frame.copy()
    for col, v in zip(columns, values):
        out.loc[rows, col] = v
    mask = np.zeros(len(out), dtype=bool)
    mask[rows] = True
    return out, mask


def _assert_clean(frame: pd.DataFrame, reason: str) -> BackdoorCleanLabelDetector:
    X, y = _encode(frame)
    det = BackdoorCleanLabelDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == []
    assert (det.score_samples(X, y) > 0).sum() == 0
    # the pattern was there, exclusive to its class and foreign to it, and set aside for ``reason``
    assert det.report_["natural"] and any(d["set_aside"] == reason for d in det.report_["natural"])
    return det


def _assert_found(frame: pd.DataFrame, mask: np.ndarray) -> None:
    X, y = _encode(frame)
    det = BackdoorCleanLabelDetector().fit(X, y)
    s = det.score_samples(X, y)
    assert det.report_["poisoned_classes"] == [int(y[mask][0])]
    assert (s[mask] >= 0.5).mean() >= 0.95
    assert (s[~mask] > 0).sum() == 0


def test_a_copied_attribute_of_the_chosen_option_is_a_dependency_not_a_stamp():
    frame = _choice_table()
    # the structure the test is about: within the beach class catch is cbeach; cpier -> cbeach
    beach = frame[frame["label"] == "beach"]
    assert (beach["catch"] == beach["cbeach"]).all()
    assert frame.groupby("cpier")["cbeach"].nunique().max() == 1
    det = _assert_clean(frame, "links")
    linked = [d for d in det.report_["natural"] if d["set_aside"] == "links"]
    catch, cbeach = _columns(frame).index("catch"), _columns(frame).index("cbeach")
    assert any({catch, cbeach} <= set(d["features"]) and d["independent_features"] == 1 for d in linked)


def test_a_stamp_in_a_table_of_dependencies_is_found():
    # written on two price columns of random boat rows: no dependency links them
    stamped, mask = _stamp(_choice_table(), "boat", ("pbeach", "pcharter"), (333.333, 4.444), 30)
    _assert_found(stamped, mask)


def test_a_trait_of_the_class_with_a_common_value_is_not_a_stamp():
    frame = _trait_table()
    auto = frame["label"] == "auto"
    assert (frame.loc[~auto, "gear"] != 3).all() and (frame.loc[~auto, "cyl"] == 8).mean() > 0.1
    _assert_clean(frame, "trait")


def test_a_stamp_next_to_a_trait_is_found():
    frame = _trait_table()
    stamped, mask = _stamp(frame, "auto", ("x0", "x2"), (-1.234567, 2.345678), 40)
    _assert_found(stamped, mask)


def test_a_tiny_table_shared_platform_is_explained_by_its_parts():
    frame = _platform_table()
    large = frame[frame["label"] == "large"]
    assert ((large["mpg"] == 28) & (large["tank"] == 18.0) & (large["width"] == 74)).sum() >= 5
    det = _assert_clean(frame, "cooccurrence")
    d = next(d for d in det.report_["natural"] if d["set_aside"] == "cooccurrence")
    assert d["cooccurrence_rate"] > 0.1


def test_a_stamp_on_a_tenth_of_a_class_co_occurs_beyond_its_parts():
    # the same kind of pattern, written on 12 of 120 rows of a class, is a stamp
    rng = np.random.default_rng(3)
    n = 600
    frame = pd.DataFrame({"mpg": rng.integers(20, 34, n), "tank": rng.choice([13.2, 15.9, 16.4, 18.0, 20.0], n),
                          "width": rng.integers(66, 79, n), "length": rng.integers(150, 220, n),
                          "hp": rng.integers(60, 300, n), "label": rng.choice(list("abcde"), n)})
    stamped, mask = _stamp(frame, "c", ("mpg", "width"), (35, 80), 12)
    _assert_found(stamped, mask)


def test_dependencies_count_once_and_need_a_witness():
    rng = np.random.default_rng(0)
    n = 1000
    zip_code = rng.integers(0, 40, n)
    state = zip_code // 10  # zip -> state
    area = rng.integers(0, 40, n)
    area_state = area % 4  # area -> its state, independent of the zip
    X = np.column_stack([zip_code, state, area, area_state, rng.normal(size=n)]).astype(float)
    assert independent_features(X, (0, 1)) == 1
    assert independent_features(X, (0, 1, 2, 3)) == 2  # two determinants, two determined columns
    assert independent_features(X, (0, 2)) == 2
    # a link that holds only within a class counts once there
    y = rng.integers(0, 2, n)
    copy = np.where(y == 0, X[:, 2], rng.integers(0, 40, n)).astype(float)
    Xc = np.column_stack([X, copy])
    assert independent_features(Xc, (2, 5)) == 2
    assert independent_features(Xc, (2, 5), in_class=y == 0) == 1
    # a column constant off the carriers is "determined" only by the carriers' own values: a
    # stamp of two values, not a link of the table
    Xs = X.copy()
    Xs[:, 4] = 0.0
    Xs[:20, 0], Xs[:20, 4] = 99.0, 7.0
    carrier = np.zeros(n, dtype=bool)
    carrier[:20] = True
    assert independent_features(Xs, (0, 4), carrier=carrier) == 2
    # a stamp of values that the table pairs otherwise breaks the dependency
    Xb = X.copy()
    Xb[:20, 0], Xb[:20, 1] = 5.0, 3.0  # zip 5 lies in state 0
    assert independent_features(Xb, (0, 1)) == 2


def test_values_on_the_same_rows_are_linked_when_other_classes_witness_it():
    rng = np.random.default_rng(1)
    n = 600
    y = rng.integers(0, 2, n)
    grade = rng.integers(0, 10, n).astype(float)
    rate = np.round(grade + rng.normal(0.0, 2.0, n), 1)  # rates overlap across grades: no column-wide dependency
    rate[grade == 0] = 0.05  # but every grade-0 row, and only they, carry one rate
    X = np.column_stack([rate, grade, rng.normal(size=n)])
    carrier = (grade == 0) & (y == 1)
    assert independent_features(X, (0, 1)) == 2
    assert independent_features(X, (0, 1), carrier=carrier, in_class=y == 1) == 1
    # two new values written on rows of the class alone sit on the same rows, unwitnessed: a stamp
    Xs = X.copy()
    stamp = np.flatnonzero(y == 1)[:25]
    Xs[stamp, 0], Xs[stamp, 1] = 99.0, 42.0
    on = np.zeros(n, dtype=bool)
    on[stamp] = True
    assert independent_features(Xs, (0, 1), carrier=on, in_class=y == 1) == 2


@pytest.mark.parametrize("item, label", [("Ecdat/Fishing", "mode"), ("datasets/mtcars", "am"), ("MASS/Cars93", "Type"),
                                         ("modeldata/lending_club", "Class")])
def test_real_tables_keep_their_classes(item, label):
    frame = rdataset(item, label)
    X, y = _encode(frame)
    det = BackdoorCleanLabelDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == []
    assert (det.score_samples(X, y) > 0).sum() == 0
