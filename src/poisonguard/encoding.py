"""Turn a mixed-type table into the numeric matrix that detectors score.

Numeric columns are median-imputed and a missingness indicator is added for each
column that has gaps (missingness is itself a poisoning signal). Booleans become
0/1. Low-cardinality categoricals are one-hot encoded; high-cardinality ones are
frequency encoded, so a rare injected value stays visible as a low frequency.
Everything is then standardized so distances weigh columns equally.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .validation import check_is_fitted

__all__ = ["TableEncoder", "EncodedColumn"]


@dataclass(frozen=True)
class EncodedColumn:
    """One output column: which input column it came from and how."""

    name: str
    source: str
    kind: str  # "numeric", "missing", "onehot", "frequency"


_KINDS = frozenset({"numeric", "missing", "onehot", "frequency"})

#: Bound on standardized values. A training column gives at most sqrt(n) standard
#: deviations (1e3 at a million rows), so only new rows far outside the training
#: range reach it; its square, summed over thousands of columns, stays finite even
#: in float32.
CLIP = 1e6

#: A column whose spread is below this share of its magnitude is constant up to
#: rounding and is left unscaled (relative, so a column measured in 1e-15 units is kept).
_REL_TOL = 1e-12


def _safe_mean_scale(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation that cannot overflow.

    Each column is first divided by its largest absolute value, so the squares
    behind the standard deviation stay within [0, 1]; a single 1e200 cell then
    dominates its column's spread, as it should, instead of overflowing it to inf
    (which would divide the whole column to zero and hide the row).
    """
    big = np.max(np.abs(raw), axis=0) if raw.shape[0] else np.zeros(raw.shape[1])
    unit = np.where(big > 0, big, 1.0)
    with np.errstate(under="ignore"):
        scaled = raw / unit
        mean = scaled.mean(axis=0)
        std = scaled.std(axis=0)
    scale = np.where(std > _REL_TOL, std * unit, 1.0)
    scale = np.where(scale > 0, scale, unit)  # std * unit underflowed (subnormal columns)
    return mean * unit, scale


def _check_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _describe(plan: Sequence[tuple[str, str, Any]]) -> list[EncodedColumn]:
    """Name each output column after its input column and encoding."""
    return [
        EncodedColumn(
            name=col if kind == "numeric" else f"{col}={arg}" if kind == "onehot" else f"{col}:{kind}",
            source=col,
            kind=kind,
        )
        for col, kind, arg in plan
    ]


class TableEncoder:
    """Encode a DataFrame's feature columns as a standardized float matrix.

    Parameters
    ----------
    max_onehot : int, default=20
        Categoricals with at most this many distinct values are one-hot encoded.
    standardize : bool, default=True
        Centre and scale each output column (constant columns are left at 0). The
        statistics are computed without overflow, so a huge finite cell (1e200)
        stands out in its column instead of zeroing it.
    """

    def __init__(self, *, max_onehot: int = 20, standardize: bool = True) -> None:
        self.max_onehot = max_onehot
        self.standardize = standardize

    def fit(self, frame: pd.DataFrame, features: Sequence[str]) -> "TableEncoder":
        """Learn imputation values, categories and scaling from ``frame[features]``."""
        self._fit_columns(frame, features, dtype=None)
        return self

    def _plan(self, frame: pd.DataFrame, features: Sequence[str]) -> None:
        self.features_ = list(features)
        self.plan_: list[tuple[str, str, object]] = []
        for col in self.features_:
            s = frame[col]
            if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
                vals = pd.to_numeric(s, errors="coerce").astype(float)
                med = float(np.nanmedian(vals)) if vals.notna().any() else 0.0
                self.plan_.append((col, "numeric", med))
                if vals.isna().any():
                    self.plan_.append((col, "missing", None))
            else:
                txt = s.astype("string")
                counts = txt.value_counts(dropna=False)
                if txt.isna().any():
                    self.plan_.append((col, "missing", None))
                if len(counts) <= self.max_onehot:
                    for cat in [c for c in counts.index if not pd.isna(c)]:
                        self.plan_.append((col, "onehot", str(cat)))
                else:
                    freq = (counts / len(txt)).to_dict()
                    self.plan_.append((col, "frequency", {str(k): v for k, v in freq.items() if not pd.isna(k)}))

    def _fit_columns(self, frame: pd.DataFrame, features: Sequence[str], dtype: np.dtype | None) -> np.ndarray | None:
        """Fit the plan and the scaling one output column at a time; with ``dtype``, also encode the table.

        Column by column, so a large table never holds more than one float64 column
        besides its encoded matrix (the whole float64 matrix and its standardized copy
        were 4-5 times the float32 output at a million rows).
        """
        self._plan(frame, features)
        d = len(self.plan_)
        self.mean_, self.scale_ = np.zeros(d), np.ones(d)
        out = None if dtype is None else np.empty((frame.shape[0], d), dtype=dtype)
        for j in range(d):
            raw = self._raw_column(frame, j)
            if self.standardize:
                m, sc = _safe_mean_scale(raw[:, None])
                self.mean_[j], self.scale_[j] = m[0], sc[0]
            if out is not None:
                out[:, j] = self._standardize(raw, j)
        self.columns_ = _describe(self.plan_)
        return out

    def _raw_column(self, frame: pd.DataFrame, j: int, rows: np.ndarray | None = None) -> np.ndarray:
        col, kind, arg = self.plan_[j]
        s = frame[col] if rows is None else frame[col].iloc[rows]
        if kind == "numeric":
            return pd.to_numeric(s, errors="coerce").astype(float).fillna(arg).to_numpy(dtype=np.float64)
        if kind == "missing":
            return s.isna().to_numpy(dtype=np.float64)
        if kind == "onehot":
            return (s.astype("string") == arg).fillna(False).to_numpy(dtype=np.float64)
        # frequency: unseen values get frequency 0, i.e. maximally rare
        return s.astype("string").map(arg).astype(float).fillna(0.0).to_numpy(dtype=np.float64)

    def _standardize(self, raw: np.ndarray, j: int) -> np.ndarray:
        """One raw column, centred, scaled and clipped (see :meth:`transform`)."""
        mean, scale = self.mean_[j], self.scale_[j]
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            z = (raw - mean) / scale
            bad = ~np.isfinite(z)
            if bad.any():  # x - mean overflowed (|x| near 1e308): divide first there
                z[bad] = raw[bad] / scale - mean / scale
        z = np.nan_to_num(z, copy=False, nan=0.0, posinf=CLIP, neginf=-CLIP)
        return np.clip(z, -CLIP, CLIP, out=z)

    def transform(self, frame: pd.DataFrame, *, dtype: Any = np.float64, rows: Any = None) -> np.ndarray:
        """Encode ``frame`` with the learned plan.

        Values are divided before they are centred, so a cell near the float limit
        (1e308) cannot overflow, and standardized values are clipped to
        :data:`CLIP`, far beyond anything a real column produces, so that squares
        and distances computed later stay finite.

        Parameters
        ----------
        dtype : float32 or float64, default=float64
            Dtype of the returned matrix. Each column is computed in float64 and
            then stored, so ``float32`` only rounds the standardized values (the scan
            uses it to halve the matrix).
        rows : array of int, optional
            Encode only the rows at these positions, in this order: the values of
            ``transform(frame.iloc[rows])``, gathered column by column, so the selected
            rows of the whole frame are never copied at once.
        """
        check_is_fitted(self, "plan_")
        idx = None if rows is None else np.asarray(rows, dtype=np.int64)
        n = frame.shape[0] if idx is None else idx.shape[0]
        out = np.empty((n, len(self.plan_)), dtype=_check_dtype(dtype))
        for j in range(len(self.plan_)):
            out[:, j] = self._standardize(self._raw_column(frame, j, idx), j)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The learned plan as plain JSON-ready data (no pickles)."""
        check_is_fitted(self, "plan_")
        return {
            "max_onehot": int(self.max_onehot),
            "standardize": bool(self.standardize),
            "features": list(self.features_),
            "plan": [[col, kind, arg] for col, kind, arg in self.plan_],
            "mean": [float(v) for v in self.mean_],
            "scale": [float(v) for v in self.scale_],
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> "TableEncoder":
        """Rebuild a fitted encoder from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            The data is malformed (wrong keys, unknown encoding kind, mismatched sizes).
        """
        try:
            enc = cls(max_onehot=int(obj["max_onehot"]), standardize=bool(obj["standardize"]))
            enc.features_ = [str(c) for c in obj["features"]]
            plan: list[tuple[str, str, Any]] = []
            for col, kind, arg in obj["plan"]:
                if kind not in _KINDS:
                    raise ValueError(f"unknown encoding kind {kind!r}")
                if kind == "frequency" and not isinstance(arg, dict):
                    raise ValueError("a frequency column needs a mapping")
                plan.append((str(col), kind, arg))
            enc.plan_ = plan
            enc.mean_ = np.asarray(obj["mean"], dtype=np.float64)
            enc.scale_ = np.asarray(obj["scale"], dtype=np.float64)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed encoder data: {exc}") from exc
        if enc.mean_.shape != (len(plan),) or enc.scale_.shape != (len(plan),):
            raise ValueError("mean/scale do not match the plan")
        enc.columns_ = _describe(plan)
        return enc

    def fit_transform(self, frame: pd.DataFrame, features: Sequence[str], *, dtype: Any = np.float64) -> np.ndarray:
        """:meth:`fit` then :meth:`transform`, reading each column once."""
        out = self._fit_columns(frame, features, dtype=_check_dtype(dtype))
        assert out is not None
        return out

    @property
    def n_output(self) -> int:
        check_is_fitted(self, "plan_")
        return len(self.plan_)
