"""Digits with a pixel-patch backdoor, shared by the backdoor detector tests."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits


def standardize(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def patched_digits(
    rate: float = 0.05, seed: int = 0, target: int = 0, size: int = 2,
    row: int | None = None, col: int | None = None, value: float = 16.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardized digits with a ``size`` x ``size`` patch of ``value`` at (row, col)
    (default the bottom-right corner) on ``rate`` of the rows, relabelled ``target``."""
    X, y = load_digits(return_X_y=True)
    X, y = X.copy(), y.copy()
    row = 8 - size if row is None else row
    col = 8 - size if col is None else col
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(y != target)
    rows = rng.choice(pool, size=int(rate * len(y)), replace=False)
    img = X[rows].reshape(-1, 8, 8)
    img[:, row : row + size, col : col + size] = value
    X[rows] = img.reshape(len(rows), 64)
    y[rows] = target
    mask = np.zeros(len(y), dtype=bool)
    mask[rows] = True
    return standardize(X), y, mask
