"""TableEncoder: huge finite cells never overflow, never zero a column, and stand out (issue 8, item 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonguard.encoding import CLIP, TableEncoder


def _table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.integers(0, 5, n)})


@pytest.mark.parametrize("value", [1e160, 1e200, -1e200, 1e308, -1.7e308])
def test_one_huge_cell_stands_out_instead_of_zeroing_its_column(value):
    df = _table()
    df.loc[7, "a"] = value
    X = TableEncoder().fit_transform(df, ["a", "b", "c"])
    assert np.isfinite(X).all()
    col = X[:, 0]
    assert np.abs(col).max() > 0, "the column was zeroed"
    assert int(np.argmax(np.abs(col))) == 7 and abs(col[7]) > 10  # the row is the extreme of its column
    np.testing.assert_allclose(X[:, 1].std(), 1.0)  # the other columns are untouched


def test_opposite_extremes_in_one_column_stay_finite():
    df = _table()
    df.loc[3, "a"], df.loc[4, "a"] = 1.7e308, -1.7e308
    X = TableEncoder().fit_transform(df, ["a", "b"])
    assert np.isfinite(X).all() and X[3, 0] > 5 and X[4, 0] < -5


def test_a_column_in_tiny_units_is_scaled_not_dropped():
    df = _table()
    df["a"] = df["a"] * 1e-15
    X = TableEncoder().fit_transform(df, ["a", "b"])
    np.testing.assert_allclose(X[:, 0].std(), 1.0)


def test_constant_column_encodes_to_zero():
    df = _table().assign(k=0.1)
    X = TableEncoder().fit_transform(df, ["k", "a"])
    assert np.all(X[:, 0] == 0.0)


def test_ordinary_columns_are_standardized_as_before():
    df = _table()
    X = TableEncoder().fit_transform(df, ["a", "b"])
    raw = df[["a", "b"]].to_numpy()
    np.testing.assert_allclose(X, (raw - raw.mean(0)) / raw.std(0), rtol=0, atol=1e-12)


def test_new_rows_far_outside_the_training_range_are_clipped_and_finite():
    enc = TableEncoder().fit(_table(), ["a", "b"])
    new = pd.DataFrame({"a": [1e308, -1e308, 0.0], "b": [0.0, 1e300, np.nan]})
    X = enc.transform(new)
    assert np.isfinite(X).all() and X[0, 0] == CLIP and X[1, 0] == -CLIP and X[1, 1] == CLIP


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=3, max_size=30))
def test_any_finite_column_encodes_finite_and_bounded(values):
    df = pd.DataFrame({"a": values})
    X = TableEncoder().fit_transform(df, ["a"])
    assert np.isfinite(X).all() and np.abs(X).max() <= CLIP
    if len(set(values)) > 1:  # a column with two different values is never zeroed
        assert np.abs(X).max() > 0


def test_a_model_trained_on_a_table_with_1e308_cells_saves_and_predicts(tmp_path):
    from poisonguard.training import TrainSettings, load_model, save_model, train_model

    df = _table(120).assign(label=np.tile([0, 1], 60))
    df.loc[5, "a"], df.loc[9, "b"] = 1e308, -1e308  # the old scale overflowed: inf in the saved JSON
    model = train_model(df, label="label", settings=TrainSettings(model="logreg"))
    save_model(model, tmp_path / "m")
    pred = load_model(tmp_path / "m").predict(df.drop(columns="label"))
    assert len(pred) == 120 and set(np.unique(pred)) <= {0, 1}


def test_float32_output_is_the_float64_encoding_rounded():
    df = _table(500).assign(t=["x", "y", None, "z", "x"] * 100)
    enc = TableEncoder()
    X64 = enc.fit_transform(df, ["a", "b", "c", "t"])
    X32 = TableEncoder().fit_transform(df, ["a", "b", "c", "t"], dtype=np.float32)
    assert X32.dtype == np.float32 and X32.shape == X64.shape
    np.testing.assert_array_equal(X32, X64.astype(np.float32))
    np.testing.assert_array_equal(enc.transform(df, dtype=np.float32), X32)
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got int64"):
        enc.transform(df, dtype=np.int64)


def test_fit_transform_equals_fit_then_transform():
    df = _table(300).assign(t=[f"v{i % 40}" for i in range(300)])  # a frequency-encoded column too
    df.loc[5, "a"] = np.nan
    a = TableEncoder().fit_transform(df, ["a", "b", "c", "t"])
    b = TableEncoder().fit(df, ["a", "b", "c", "t"]).transform(df)
    np.testing.assert_array_equal(a, b)
