"""Injected outliers: new rows far from the data, appended at the end of the table."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..validation import check_fraction
from ._base import PoisonedTable, _check, _Checked, _jsonable

__all__ = ["inject_outliers"]

_PLACEMENTS = ("far", "in_range", "cluster", "cluster_in_range")


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def inject_outliers(
    frame: pd.DataFrame,
    label: str,
    rate: float,
    seed: int = 0,
    *,
    scale: tuple[float, float] = (4.0, 8.0),
    placement: str = "far",
    spread: float = 0.05,
    features: Sequence[str] | None = None,
) -> PoisonedTable:
    """Append rows whose features lie far outside the data (or jointly implausible inside it), with random labels.

    What an injected row is, exactly, with ``placement="far"`` (the default):

    * every **numeric** feature ``j`` is set to ``mean_j + s * m * std_j``, where the
      sign ``s`` is +1 or -1 at random and the distance ``m`` is drawn uniformly from
      ``scale`` (default 4 to 8 standard deviations), independently per feature and
      per row; mean and std are those of the clean table. Integer columns are rounded
      so the column keeps its dtype. A feature that is constant in the data keeps its
      constant value;
    * every **non-numeric** feature takes a value drawn from the column's observed
      values;
    * with ``placement="in_range"`` every numeric feature is instead drawn uniformly
      between the column's observed minimum and maximum (rounded for integer
      columns): no single value is out of range, but the row as a whole is unlike the
      data, whose columns are correlated and rarely sit in their tails together;
    * with ``placement="cluster"`` the rows form one tight blob far away: a single
      centre is drawn as for ``"far"`` (per feature ``mean_j + s * m * std_j``) and each
      row is the centre plus Gaussian noise of ``spread * std_j``; with
      ``placement="cluster_in_range"`` the centre is drawn uniformly within each
      column's range instead and the rows are clipped to it. A blob is what defeats
      detectors that score a row by its distance to its nearest neighbours: its
      members are each other's neighbours. All rows of a blob share one label and
      one value of each non-numeric feature (drawn once), as one injection campaign would;
    * the **label** is drawn uniformly from the observed classes (per row, or once
      per blob);
    * any **other column** (an id, a source) is copied from a random existing row.

    ``rate`` is the fraction of the *resulting* table that is injected, so
    ``k = round(rate * n / (1 - rate))`` rows are appended and ``mask.mean()`` is
    ``rate`` up to rounding.

    Parameters
    ----------
    frame : DataFrame
        The clean table (not mutated).
    label : str
        The label column.
    rate : float
        Fraction of the output rows that are injected, in (0, 1).
    seed : int, default=0
        Seed; the same seed gives the same rows.
    scale : (float, float), default=(4.0, 8.0)
        Range of the distance from the mean, in standard deviations (``placement="far"``).
    placement : {"far", "in_range", "cluster", "cluster_in_range"}, default="far"
        Where the numeric features of an injected row go (see above).
    spread : float, default=0.05
        Blob placements: the blob's standard deviation per feature, in that
        feature's standard deviations.
    features : sequence of str, optional
        Feature columns (default: every column but the label).

    Returns
    -------
    PoisonedTable
        The clean rows in their order, then the ``k`` injected rows (``mask`` True).
    """
    chk = _check(frame, label, features)
    check_fraction(rate, "rate")
    lo, hi = (float(v) for v in scale)
    if not (0 < lo <= hi) or not math.isfinite(hi):
        raise InputError(f"scale must be (low, high) with 0 < low <= high, got {scale!r}")
    if placement not in _PLACEMENTS:
        raise InputError(f"{{placement}} must be one of {', '.join(map(repr, _PLACEMENTS))}, got {placement!r}",
                         params=["placement"])
    if not (math.isfinite(float(spread)) and float(spread) > 0):
        raise InputError(f"{{spread}} must be a positive number, got {spread!r}", params=["spread"])
    n = chk.frame.shape[0]
    k = int(math.floor(rate * n / (1.0 - rate) + 0.5))
    if k < 1:
        raise InputError(f"rate {rate} of {n} rows injects no row; use a rate of at least {1 / (n + 1):.3g}")
    rng = np.random.default_rng(seed)
    src = chk.frame
    if placement.startswith("cluster"):
        new = _blob(chk, k, rng, scale=(lo, hi), in_range=placement == "cluster_in_range", spread=float(spread))
    else:
        new = _scattered(chk, k, rng, scale=(lo, hi), in_range=placement == "in_range")
    added = pd.DataFrame(new, columns=src.columns)
    for col in src.columns:
        try:
            added[col] = added[col].astype(src[col].dtype)
        except (TypeError, ValueError):  # pragma: no cover - exotic dtypes
            pass
    out = pd.concat([src, added], ignore_index=True)
    mask = np.zeros(n + k, dtype=bool)
    mask[n:] = True
    params = _jsonable(
        {"rate": float(rate), "seed": int(seed), "n_poisoned": int(k), "n_rows": int(n + k), "scale": [lo, hi],
         "placement": placement, **({"spread": float(spread)} if placement.startswith("cluster") else {})}
    )
    return PoisonedTable(frame=out, mask=mask, kind="outlier", params=params, label=label)


def _scattered(chk: _Checked, k: int, rng: np.random.Generator, *, scale: tuple[float, float],
               in_range: bool) -> dict[str, object]:
    """Columns of ``k`` independent rows: far (``mean +- m * std``) or uniform within range; random labels."""
    lo, hi = scale
    new: dict[str, object] = {}
    for col in chk.frame.columns:
        s = chk.frame[col]
        if col == chk.label:
            new[col] = chk.classes[rng.integers(0, chk.classes.size, size=k)]
        elif col in chk.features and _is_numeric(s):
            vals = s.to_numpy(dtype=float, na_value=np.nan)
            if in_range:
                col_vals = rng.uniform(float(np.nanmin(vals)), float(np.nanmax(vals)), size=k)
            else:
                mean, std = float(np.nanmean(vals)), float(np.nanstd(vals))
                sign = rng.choice(np.array([-1.0, 1.0]), size=k)
                dist = rng.uniform(lo, hi, size=k)
                col_vals = mean + sign * dist * std
            if pd.api.types.is_integer_dtype(s):
                col_vals = np.round(col_vals)
            new[col] = col_vals
        else:
            observed = s.dropna().to_numpy()
            pool = observed if observed.size else s.to_numpy()
            new[col] = pool[rng.integers(0, pool.size, size=k)]
    return new


def _blob(chk: _Checked, k: int, rng: np.random.Generator, *, scale: tuple[float, float], in_range: bool,
          spread: float) -> dict[str, object]:
    """Columns of ``k`` rows around one centre (far away, or inside the ranges); one label, one value per text column."""
    lo, hi = scale
    new: dict[str, object] = {}
    for col in chk.frame.columns:
        s = chk.frame[col]
        if col == chk.label:
            new[col] = np.repeat(chk.classes[rng.integers(0, chk.classes.size)], k)
        elif col in chk.features and _is_numeric(s):
            vals = s.to_numpy(dtype=float, na_value=np.nan)
            vmin, vmax = float(np.nanmin(vals)), float(np.nanmax(vals))
            mean, std = float(np.nanmean(vals)), float(np.nanstd(vals))
            if in_range:
                centre = rng.uniform(vmin, vmax)
            else:
                centre = mean + float(rng.choice([-1.0, 1.0])) * rng.uniform(lo, hi) * std
            col_vals = centre + rng.normal(0.0, spread * std, size=k)
            if in_range:
                col_vals = np.clip(col_vals, vmin, vmax)
            if pd.api.types.is_integer_dtype(s):
                col_vals = np.round(col_vals)
            new[col] = col_vals
        else:
            observed = s.dropna().to_numpy()
            pool = observed if observed.size else s.to_numpy()
            # a text feature takes one value for the whole blob; an id or source column stays per row
            draw = rng.integers(0, pool.size, size=1 if col in chk.features else k)
            new[col] = np.resize(pool[draw], k)
    return new
