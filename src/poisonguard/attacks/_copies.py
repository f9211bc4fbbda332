"""Attacks built from clean rows: perturbed copies, relabelled duplicates and rescaled rows.

These look like the data because they *are* the data, changed a little: what an
attacker who can only copy or edit existing records produces, and what a detector
designed on injected synthetic rows has not seen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import DataError, InputError
from ..validation import check_fraction
from ._base import PoisonedTable, _cap, _check, _Checked, _count, _jsonable, _with_labels

__all__ = ["perturbed_copies", "duplicate_flip", "scale_rows"]


def _appended_count(rate: float, n: int) -> int:
    """Rows to append so that they make up ``rate`` of the result: ``round(rate * n / (1 - rate))``."""
    check_fraction(rate, "rate")
    k = int(math.floor(rate * n / (1.0 - rate) + 0.5))
    if k < 1:
        raise InputError(f"rate {rate} of {n} rows appends no row; use a rate of at least {1 / (n + 1):.3g}")
    return k


def _numeric_features(chk: _Checked, *, varying: bool) -> list[str]:
    """Numeric (non-boolean) feature columns; with ``varying``, only those not constant in the data."""
    out = []
    for col in chk.features:
        s = chk.frame[col]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            if not varying or s.nunique(dropna=True) > 1:
                out.append(col)
    return out


def _append(chk: _Checked, added: pd.DataFrame, *, kind: str, params: dict, label: str) -> PoisonedTable:
    n = chk.frame.shape[0]
    out = pd.concat([chk.frame.reset_index(drop=True), added.reset_index(drop=True)], ignore_index=True)
    for col in chk.frame.columns:  # keep each column's dtype (concat may widen an int column)
        try:
            out[col] = out[col].astype(chk.frame[col].dtype)
        except (TypeError, ValueError):  # pragma: no cover - exotic dtypes
            pass
    mask = np.zeros(len(out), dtype=bool)
    mask[n:] = True
    params = _jsonable({**params, "n_poisoned": int(len(added)), "n_rows": int(len(out))})
    return PoisonedTable(frame=out, mask=mask, kind=kind, params=params, label=label)


def perturbed_copies(
    frame: pd.DataFrame,
    label: str,
    rate: float,
    seed: int = 0,
    *,
    n_columns: int = 3,
    scale: tuple[float, float] = (4.0, 8.0),
    features: Sequence[str] | None = None,
) -> PoisonedTable:
    """Append copies of random clean rows with a few numeric columns pushed far out.

    Each appended row copies a row drawn without replacement (with replacement only
    when more copies than rows are asked for), keeps its label and every other
    column, and gets ``n_columns`` of its numeric features (chosen per row among the
    columns that are not constant) set to ``mean_j + s * m * std_j`` with a random sign
    ``s`` and ``m`` uniform in ``scale``. Integer columns are rounded. Unlike
    :func:`~poisonguard.attacks.inject_outliers` the row is ordinary on every other
    column, so a detector that averages over columns sees little.

    Parameters
    ----------
    frame : DataFrame
        The clean table (not mutated).
    label : str
        The label column.
    rate : float
        Fraction of the output rows that are appended copies, in (0, 1).
    seed : int, default=0
        Seed of the copied rows, the columns and the values.
    n_columns : int, default=3
        Columns perturbed per row (capped at the number of varying numeric features).
    scale : (float, float), default=(4.0, 8.0)
        Distance from the column's mean, in its standard deviations.
    features : sequence of str, optional
        Feature columns (default: every column but the label).

    Returns
    -------
    PoisonedTable
        The clean rows in order, then the copies (``mask`` True); ``kind`` ``"perturbed"``.

    Raises
    ------
    InputError
        A bad rate, ``n_columns`` below 1 or a malformed ``scale``.
    DataError
        No numeric feature varies, so nothing can be perturbed.
    """
    chk = _check(frame, label, features)
    lo, hi = (float(v) for v in scale)
    if not (0 < lo <= hi) or not math.isfinite(hi):
        raise InputError(f"{{scale}} must be (low, high) with 0 < low <= high, got {scale!r}", params=["scale"])
    if isinstance(n_columns, bool) or int(n_columns) != n_columns or n_columns < 1:
        raise InputError(f"{{n_columns}} must be an integer >= 1, got {n_columns!r}", params=["n_columns"])
    cols = _numeric_features(chk, varying=True)
    if not cols:
        raise DataError("perturbed copies need a numeric feature that is not constant; the table has none")
    n = chk.frame.shape[0]
    k = _appended_count(rate, n)
    m = min(int(n_columns), len(cols))
    rng = np.random.default_rng(seed)
    rows = rng.choice(n, size=k, replace=k > n)
    added = chk.frame.iloc[rows].reset_index(drop=True).copy()
    stats = {c: chk.frame[c].to_numpy(dtype=float, na_value=np.nan) for c in cols}
    mean = {c: float(np.nanmean(v)) for c, v in stats.items()}
    std = {c: float(np.nanstd(v)) for c, v in stats.items()}
    picks = np.argsort(rng.random((k, len(cols))), axis=1)[:, :m]  # m distinct columns per row
    sign = rng.choice(np.array([-1.0, 1.0]), size=(k, m))
    dist = rng.uniform(lo, hi, size=(k, m))
    for j, col in enumerate(cols):
        hit_rows, hit_slot = np.nonzero(picks == j)
        if not hit_rows.size:
            continue
        values = added[col].to_numpy(dtype=float, na_value=np.nan, copy=True)
        values[hit_rows] = mean[col] + sign[hit_rows, hit_slot] * dist[hit_rows, hit_slot] * std[col]
        if pd.api.types.is_integer_dtype(chk.frame[col]):
            values = np.round(values)
        added[col] = values
    params = {"rate": float(rate), "seed": int(seed), "n_columns": int(m), "scale": [lo, hi],
              "copied_rows": rows.tolist()}
    return _append(chk, added, kind="perturbed", params=params, label=label)


def duplicate_flip(
    frame: pd.DataFrame,
    label: str,
    rate: float,
    seed: int = 0,
    *,
    features: Sequence[str] | None = None,
) -> PoisonedTable:
    """Append exact copies of random clean rows with a different label.

    Each copy keeps every feature of its original and gets a class drawn uniformly
    from the classes other than the original's. Only the copies are poisoned (the
    originals keep their true labels): a detector must tell the twin that agrees with
    its neighbourhood from the one that does not.

    Parameters
    ----------
    frame : DataFrame
        The clean table (not mutated).
    label : str
        The label column.
    rate : float
        Fraction of the output rows that are appended copies, in (0, 1).
    seed : int, default=0
        Seed of the copied rows and their new labels.
    features : sequence of str, optional
        Feature columns (only validated).

    Returns
    -------
    PoisonedTable
        The clean rows in order, then the relabelled copies (``mask`` True);
        ``kind`` ``"duplicate_flip"``.
    """
    chk = _check(frame, label, features)
    n = chk.frame.shape[0]
    k = _appended_count(rate, n)
    rng = np.random.default_rng(seed)
    rows = rng.choice(n, size=k, replace=k > n)
    shift = rng.integers(1, chk.classes.size, size=k)  # a uniform draw among the other classes
    codes = (chk.y[rows] + shift) % chk.classes.size
    copies = chk.frame.iloc[rows].reset_index(drop=True)
    added = _with_labels(copies, label, codes, chk.classes)
    params = {"rate": float(rate), "seed": int(seed), "copied_rows": rows.tolist()}
    return _append(chk, added, kind="duplicate_flip", params=params, label=label)


def scale_rows(
    frame: pd.DataFrame,
    label: str,
    rate: float,
    seed: int = 0,
    *,
    factor: float = 10.0,
    features: Sequence[str] | None = None,
) -> PoisonedTable:
    """Multiply every numeric feature of some rows by ``factor`` (a unit error, or a crude attack).

    ``round(rate * n_rows)`` rows are drawn among those with at least one non-zero
    numeric feature (so every poisoned row really changes) and edited in place;
    labels are kept. Integer columns are rounded.

    Parameters
    ----------
    frame : DataFrame
        The clean table (not mutated).
    label : str
        The label column.
    rate : float
        Fraction of rows to rescale, in (0, 1).
    seed : int, default=0
        Seed of the row choice.
    factor : float, default=10.0
        The multiplier; must be finite and not 1.
    features : sequence of str, optional
        Feature columns (default: every column but the label).

    Returns
    -------
    PoisonedTable
        Same rows in the same order; ``kind`` ``"scaled"``.
    """
    chk = _check(frame, label, features)
    factor = float(factor)
    if not math.isfinite(factor) or factor == 1.0:
        raise InputError(f"{{factor}} must be a finite number other than 1, got {factor!r}", params=["factor"])
    cols = _numeric_features(chk, varying=False)
    if not cols:
        raise DataError("scaling rows needs numeric features; the table has none")
    n = chk.frame.shape[0]
    values = chk.frame[cols].to_numpy(dtype=float, na_value=np.nan)
    changeable = np.flatnonzero(np.nan_to_num(np.abs(values), nan=0.0).max(axis=1) > 0)
    k = _cap(_count(rate, n), changeable.size, "rows with a non-zero numeric feature")
    rows = np.sort(np.random.default_rng(seed).choice(changeable, size=k, replace=False))
    out = chk.frame.reset_index(drop=True).copy()
    for col in cols:
        v = out[col].to_numpy(dtype=float, na_value=np.nan, copy=True)
        v[rows] = v[rows] * factor
        if pd.api.types.is_integer_dtype(chk.frame[col]):
            v = np.round(v)
        try:
            out[col] = pd.Series(v, index=out.index).astype(chk.frame[col].dtype)
        except (TypeError, ValueError):  # pragma: no cover - an int column holding NaN
            out[col] = v
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    params = _jsonable({"rate": float(rate), "seed": int(seed), "n_poisoned": int(k), "n_rows": int(n),
                        "factor": factor})
    return PoisonedTable(frame=out, mask=mask, kind="scaled", params=params, label=label)
