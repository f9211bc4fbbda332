"""Small, fast tables for the training tests (data shipped with scikit-learn only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_digits, make_classification


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The models here are tiny; with pytest-xdist, one thread per worker avoids oversubscription."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits_small() -> pd.DataFrame:
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(y), size=700, replace=False)
    df = pd.DataFrame(X[idx].astype(np.int64), columns=[f"px{i}" for i in range(64)])
    df["label"] = y[idx]
    return df


@pytest.fixture(scope="session")
def cancer() -> pd.DataFrame:
    d = load_breast_cancer()
    df = pd.DataFrame(d.data, columns=[f"f{i}" for i in range(d.data.shape[1])])
    df["label"] = np.where(d.target == 1, "benign", "malignant")
    return df


@pytest.fixture(scope="session")
def blobs() -> pd.DataFrame:
    X, y = make_classification(n_samples=400, n_features=8, n_informative=5, n_classes=3, random_state=0)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
    df["label"] = y
    return df


@pytest.fixture(scope="session")
def mixed(blobs: pd.DataFrame) -> pd.DataFrame:
    df = blobs.copy()
    rng = np.random.default_rng(1)
    df["colour"] = rng.choice(["red", "green", "blue"], size=len(df))
    df.loc[df.index % 7 == 0, "x1"] = np.nan
    df.loc[df.index % 11 == 0, "colour"] = None
    df["label"] = np.where(df["label"] == 0, "a", np.where(df["label"] == 1, "b", "c"))
    return df
