"""A simulated 4-class model whose errors and confidences the tests control.

``traffic(...)`` draws labelled predictions with a given per-class recall, so a test
can put a known drop in one class and know what the check must find.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

T0 = 1_700_000_000.0  # an arbitrary fixed epoch: windows are [T0 + k days, T0 + (k+1) days)
DAY = 86400.0
CLASSES = 4


def traffic(n: int, *, seed: int, recall=(0.9, 0.9, 0.9, 0.9), wrong_to: int | None = None, day: int = 0,
            shift: float = 0.0, conf_drop: dict[int, float] | None = None, prefix: str = "r") -> pd.DataFrame:
    """``n`` rows: id, timestamp (inside day ``day``), prediction, confidence, label, features f0, f1, colour."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    right = rng.random(n) < np.asarray(recall)[y]
    other = (y + rng.integers(1, CLASSES, n)) % CLASSES
    if wrong_to is not None:
        other = np.where(y != wrong_to, wrong_to, other)
    pred = np.where(right, y, other)
    conf = np.clip(rng.beta(8, 2, n), 0.26, 1.0)
    for c, d in (conf_drop or {}).items():
        conf = np.where(pred == c, np.clip(conf - d, 0.26, 1.0), conf)
    return pd.DataFrame({
        "id": [f"{prefix}{day}-{i}" for i in range(n)],
        "timestamp": T0 + day * DAY + rng.uniform(0, DAY - 1, n),
        "prediction": pred, "confidence": conf, "label": y,
        "f0": rng.normal(shift, 1.0, n), "f1": rng.gamma(2.0, 1.0, n),
        "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
    })
