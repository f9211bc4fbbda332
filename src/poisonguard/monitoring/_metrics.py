"""Classification metrics and reference distributions: what a baseline records and a check recomputes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_fscore_support

__all__ = ["classification_metrics", "numeric_reference", "categorical_reference", "feature_reference",
           "as_text", "REF_SAMPLE", "CLASS_CONF_SAMPLE"]

#: values kept per distribution for KS / Mann-Whitney tests against the baseline
REF_SAMPLE = 5000
CLASS_CONF_SAMPLE = 2000
_MAX_CATEGORIES = 50
_DISCRETE_MAX = 20  # a numeric column with at most this many distinct values is tested as categories


def as_text(values: Any) -> pd.Series:
    """Class values as text, so that 3, 3.0 and "3" name one class (missing stays missing)."""
    s = pd.Series(values)
    if pd.api.types.is_integer_dtype(s.dtype) and not s.hasnans:  # vectorised: a day of traffic is 1M rows
        return s.astype(str).astype(object)
    if pd.api.types.is_float_dtype(s.dtype):
        whole = s.dropna()
        if len(whole) and np.all(np.mod(whole.to_numpy(), 1) == 0):
            out = s.astype("Int64").astype(str).astype(object)
            return out.where(s.notna(), None)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.map(lambda v: None if pd.isna(v) else str(bool(v)))
    if s.dtype == object and not s.hasnans and s.map(type).eq(str).all():
        return s.str.strip()
    return s.map(lambda v: None if pd.isna(v) else str(v).strip())


def classification_metrics(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1 and per-class values over the classes present in ``y``.

    Macro averages run over the classes that have labelled rows, so a class absent from a
    small window does not count as a recall of 0. Per-class entries are ``None`` where
    undefined (no labelled rows; for precision, no predictions).
    """
    y = np.asarray(y, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    support = np.bincount(y, minlength=n_classes)
    predicted = np.bincount(pred, minlength=n_classes)
    present = np.flatnonzero(support > 0)
    prec, rec, f1, _ = precision_recall_fscore_support(y, pred, labels=np.arange(n_classes), zero_division=0)
    per_class = {
        "precision": [float(prec[c]) if predicted[c] > 0 and support[c] > 0 else None for c in range(n_classes)],
        "recall": [float(rec[c]) if support[c] > 0 else None for c in range(n_classes)],
        "f1": [float(f1[c]) if support[c] > 0 else None for c in range(n_classes)],
        "support": [int(v) for v in support],
    }
    return {
        "n": int(y.size),
        "accuracy": float(np.mean(y == pred)) if y.size else None,
        "precision": float(np.mean(prec[present])) if present.size else None,
        "recall": float(np.mean(rec[present])) if present.size else None,
        "f1": float(np.mean(f1[present])) if present.size else None,
        "per_class": per_class,
    }


def _sample(values: np.ndarray, k: int, seed: int = 0) -> list[float]:
    if values.size > k:
        values = np.random.default_rng(seed).choice(values, size=k, replace=False)
    return [float(v) for v in np.sort(values)]


def numeric_reference(values: np.ndarray, *, bins: int) -> dict[str, Any]:
    """Quantile bin edges and counts plus a sample of at most 5000 values (for KS)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    edges = np.unique(np.quantile(v, np.linspace(0, 1, bins + 1))) if v.size else np.array([0.0, 1.0])
    if edges.size < 2:
        edges = np.array([edges[0], edges[0]])
    counts = np.bincount(np.searchsorted(edges[1:-1], v, side="right"), minlength=edges.size - 1)
    return {"kind": "numeric", "edges": [float(e) for e in edges], "counts": [int(c) for c in counts],
            "sample": _sample(v, REF_SAMPLE), "n": int(v.size)}


def categorical_reference(values: pd.Series) -> dict[str, Any]:
    """Counts of the 50 most common values; the rest, and missing values, share one bucket."""
    text = as_text(values).fillna("<missing>")
    vc = text.value_counts()
    top = vc.iloc[:_MAX_CATEGORIES]
    other = int(vc.iloc[_MAX_CATEGORIES:].sum())
    return {"kind": "categorical", "values": [str(v) for v in top.index], "counts": [int(c) for c in top.to_numpy()],
            "other": other, "n": int(text.size)}


def feature_reference(col: pd.Series, *, bins: int) -> dict[str, Any]:
    """The reference distribution of one input column (numeric, or categories when discrete)."""
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        if col.nunique(dropna=True) > _DISCRETE_MAX:
            return numeric_reference(col.to_numpy(dtype=float, na_value=np.nan), bins=bins)
    return categorical_reference(col)


def categorical_counts(ref: dict[str, Any], col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and window counts over the reference's categories plus one "other" bucket."""
    text = as_text(col).fillna("<missing>")
    index = {v: i for i, v in enumerate(ref["values"])}
    codes = text.map(index).fillna(len(index)).to_numpy(dtype=np.int64)
    window = np.bincount(codes, minlength=len(index) + 1)
    base = np.asarray(list(ref["counts"]) + [ref.get("other", 0)], dtype=float)
    return base, window
