"""One pass over every partition: row counts, label counts and the encoder's global statistics.

The map step (:func:`partition_stats`) runs on a worker per partition and returns
small summaries; the reduce step (:func:`reduce_stats`) merges them on the client into
:class:`DatasetStats`. From those, :func:`build_encoder` makes the same kind of
:class:`~poisonguard.encoding.TableEncoder` a single machine would fit on the whole
table: the one-hot categories, frequencies, missingness columns, means and scales are
computed from every row (exactly, up to float rounding); only the median used to fill
missing numeric cells is estimated from a bounded random subsample of each partition.

Nothing here imports Dask: the functions take and return plain data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..encoding import TableEncoder
from ..errors import DataError, InputError
from ..validation import check_output_columns, resolve_roles

__all__ = [
    "Roles",
    "ColumnStats",
    "PartitionStats",
    "DatasetStats",
    "check_roles",
    "read_partition",
    "partition_stats",
    "reduce_stats",
    "build_encoder",
    "label_codes",
]

#: numeric values per column and partition kept to estimate the imputation median
MEDIAN_SAMPLE = 2000
#: a float label with more distinct fractional values than this is a measurement (as in validation.py)
_MAX_FLOAT_CLASSES = 20


@dataclass(frozen=True)
class Roles:
    """Column roles, checked against the dataset's columns by :func:`check_roles`."""

    features: tuple[str, ...]
    label: str | None = None
    id_col: str | None = None
    source_col: str | None = None

    @property
    def role_columns(self) -> list[str]:
        return [c for c in (self.label, self.id_col, self.source_col) if c is not None]


def _preview(items: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def check_roles(
    columns: Sequence[str], *, label: str | None, id_col: str | None, source_col: str | None,
    features: str | Sequence[str] | None, where: str,
) -> Roles:
    """Check the column roles against ``columns`` (the rules and messages of ``prepare_table``).

    Raises
    ------
    InputError
        Unknown column, a column given two roles, a feature listed twice, no feature left,
        or an input column named like an output column.
    """
    check_output_columns([str(c) for c in columns], where=where)
    feats = resolve_roles(columns, label=label, id_col=id_col, source_col=source_col, features=features,
                          where=where)
    return Roles(features=tuple(feats), label=label, id_col=id_col, source_col=source_col)


def read_partition(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read one Parquet partition (optionally some columns), with a one-line :class:`InputError`."""
    try:
        df = pd.read_parquet(path, columns=list(columns) if columns is not None else None)
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        raise InputError(f"cannot read partition {path} as Parquet: {type(exc).__name__}: {exc}") from exc
    if list(df.columns) != [str(c) for c in df.columns]:
        df = df.set_axis([str(c) for c in df.columns], axis=1)
    return df


@dataclass
class ColumnStats:
    """One feature column's summary in one partition (merged across partitions by :func:`reduce_stats`).

    Numeric columns keep ``count``, ``mean`` and ``m2`` (sum of squared deviations) of
    the non-missing values divided by ``unit`` (their largest absolute value), so that
    a 1e200 cell cannot overflow a square; other columns keep their value counts.
    """

    numeric: bool
    n_missing: int = 0
    count: int = 0
    unit: float = 1.0
    mean: float = 0.0
    m2: float = 0.0
    median_sample: np.ndarray | None = None
    median_weight: float = 1.0
    median: float = 0.0
    values: dict[str, int] = field(default_factory=dict)


@dataclass
class PartitionStats:
    """What one partition contributes: its columns, rows, label counts and column summaries."""

    index: int
    path: str
    columns: list[str]
    n_rows: int
    label_counts: dict[Any, int]
    label_dtype: str
    columns_stats: dict[str, ColumnStats]
    n_infinite: dict[str, int] = field(default_factory=dict)


def _is_numeric(s: pd.Series) -> bool:
    return bool(pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s))


def partition_stats(index: int, path: str, roles: Roles, seed: int) -> PartitionStats:
    """The map step: read one partition and summarise it (runs on a worker)."""
    df = read_partition(path)
    columns = list(df.columns)
    needed = list(roles.features) + roles.role_columns
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InputError(f"partition {path} has no column(s) {missing}; its columns are: {_preview(columns)}")
    label_counts: dict[Any, int] = {}
    label_dtype = ""
    if roles.label is not None:
        col = df[roles.label]
        empty = col.isna().to_numpy().copy()
        if col.dtype == object or pd.api.types.is_string_dtype(col):
            empty |= col.astype("string").str.strip().fillna("").eq("").to_numpy()
        if empty.any():
            rows = np.flatnonzero(empty)
            shown = ", ".join(map(str, rows[:10])) + (" ..." if rows.size > 10 else "")
            raise DataError(f"partition {path}: label column {roles.label!r} is empty or NaN in {rows.size} "
                            f"row(s): {shown}")
        label_counts = {k: int(v) for k, v in col.value_counts(sort=False).items()}
        label_dtype = str(col.dtype)
    rng = np.random.default_rng([seed, index])
    stats: dict[str, ColumnStats] = {}
    n_inf: dict[str, int] = {}
    for c in roles.features:
        s = df[c]
        if _is_numeric(s):
            vals = pd.to_numeric(s, errors="coerce").astype(float).to_numpy()
            inf = int(np.isinf(vals).sum())
            if inf:
                n_inf[c] = inf
            ok = vals[np.isfinite(vals)]
            cs = ColumnStats(numeric=True, n_missing=int(np.isnan(vals).sum()), count=int(ok.size))
            if ok.size:
                cs.unit = float(np.max(np.abs(ok))) or 1.0
                with np.errstate(under="ignore"):
                    scaled = ok / cs.unit
                    cs.mean = float(scaled.mean())
                    cs.m2 = float(((scaled - cs.mean) ** 2).sum())
                take = min(ok.size, MEDIAN_SAMPLE)
                cs.median_sample = rng.choice(ok, size=take, replace=False) if take < ok.size else ok.copy()
                cs.median_weight = ok.size / take
            stats[c] = cs
        else:
            txt = s.astype("string")
            counts = txt.value_counts(dropna=True)
            stats[c] = ColumnStats(numeric=False, n_missing=int(txt.isna().sum()),
                                   values={str(k): int(v) for k, v in counts.items()})
    return PartitionStats(index=index, path=str(path), columns=columns, n_rows=int(df.shape[0]),
                          label_counts=label_counts, label_dtype=label_dtype, columns_stats=stats, n_infinite=n_inf)


@dataclass(frozen=True)
class DatasetStats:
    """The reduce step's result: the whole dataset's rows, classes and column summaries.

    Attributes
    ----------
    rows : tuple of int
        Rows per partition, in dataset order; a row's global position is the sum of
        the rows of the partitions before it plus its position in its partition.
    classes : ndarray
        The label values in the order a single machine would code them (``np.unique``).
    class_counts : ndarray of int, shape (n_partitions, n_classes)
    labels_as_text : bool
        The label values mix types that do not sort, so they are compared as text
        (as :func:`poisonguard.validation.prepare_table` does).
    """

    roles: Roles
    columns: tuple[str, ...]
    rows: tuple[int, ...]
    classes: np.ndarray
    class_counts: np.ndarray
    labels_as_text: bool
    columns_stats: dict[str, ColumnStats]

    @property
    def n_rows(self) -> int:
        return int(sum(self.rows))

    @property
    def offsets(self) -> np.ndarray:
        """Global position of each partition's first row."""
        return np.concatenate([[0], np.cumsum(self.rows)[:-1]]).astype(np.int64)


def _merge_numeric(parts: list[ColumnStats]) -> ColumnStats:
    """Chan et al.'s parallel mean/variance, in the largest unit of all partitions."""
    unit = max((p.unit for p in parts if p.count), default=1.0)
    n, mean, m2 = 0, 0.0, 0.0
    for p in parts:
        if not p.count:
            continue
        r = p.unit / unit
        pm, pm2 = p.mean * r, p.m2 * r * r
        tot = n + p.count
        delta = pm - mean
        mean += delta * p.count / tot
        m2 += pm2 + delta * delta * n * p.count / tot
        n = tot
    samples = [p.median_sample for p in parts if p.median_sample is not None]
    weights = [np.full(p.median_sample.size, p.median_weight) for p in parts if p.median_sample is not None]
    out = ColumnStats(numeric=True, n_missing=sum(p.n_missing for p in parts), count=n, unit=unit, mean=mean, m2=m2)
    if samples:
        # the weighted median of the subsamples (each value stands for median_weight rows)
        values, w = np.concatenate(samples), np.concatenate(weights)
        order = np.argsort(values, kind="stable")
        cw = np.cumsum(w[order])
        out.median = float(values[order][min(int(np.searchsorted(cw, cw[-1] / 2.0)), values.size - 1)])
    return out


def reduce_stats(parts: Sequence[PartitionStats], roles: Roles, *, where: str) -> DatasetStats:
    """The reduce step: check that the partitions agree and merge their summaries.

    Raises
    ------
    InputError
        Partitions with different columns.
    DataError
        Infinite feature values, a label with a single class or that looks like an id
        or a measurement, no rows.
    """
    parts = sorted(parts, key=lambda p: p.index)
    first = parts[0]
    for p in parts[1:]:
        if p.columns != first.columns:
            extra = sorted(set(p.columns) - set(first.columns))
            lost = sorted(set(first.columns) - set(p.columns))
            detail = f"extra {extra}, missing {lost}" if extra or lost else "the same columns in another order"
            raise InputError(f"{where}: partition {p.path} has other columns than {first.path}: {detail}")
    for p in parts:
        for c, k in p.n_infinite.items():
            raise DataError(f"{where}: column {c!r} has {k} infinite value(s) in partition {p.path}; "
                            "replace them with a finite value or leave them empty")
    n = sum(p.n_rows for p in parts)
    if n < 3:
        raise DataError(f"{where} has {n} row(s); at least 3 are needed")
    classes, labels_as_text = np.array([], dtype=object), False
    counts = np.zeros((len(parts), 0), dtype=np.int64)
    if roles.label is not None:
        classes, labels_as_text, counts = _merge_labels(parts, roles.label, where, n)
    merged: dict[str, ColumnStats] = {}
    for c in roles.features:
        cols = [p.columns_stats[c] for p in parts]
        if all(cs.numeric for cs in cols):
            merged[c] = _merge_numeric(cols)
        else:
            # a column numeric in one partition and text in another reads as text once concatenated
            values: dict[str, int] = {}
            n_missing = 0
            for cs in cols:
                n_missing += cs.n_missing
                if cs.numeric:
                    raise InputError(f"{where}: column {c!r} is numeric in some partitions and text in others; "
                                     "give it one type in every partition")
                for k, v in cs.values.items():
                    values[k] = values.get(k, 0) + v
            merged[c] = ColumnStats(numeric=False, n_missing=n_missing, values=values)
    return DatasetStats(roles=roles, columns=tuple(first.columns), rows=tuple(p.n_rows for p in parts),
                        classes=classes, class_counts=counts, labels_as_text=labels_as_text, columns_stats=merged)


def _merge_labels(parts: Sequence[PartitionStats], label: str, where: str, n: int) -> tuple[np.ndarray, bool, np.ndarray]:
    """Global classes (sorted as ``np.unique`` sorts them), per-partition class counts, label checks."""
    keys = [k for p in parts for k in p.label_counts]
    as_text = False
    try:
        classes = np.unique(np.array(keys, dtype=object) if keys and not _same_kind(keys) else np.array(keys))
    except TypeError:  # mixed types (e.g. 3 and "a") do not sort; their text does (as prepare_table)
        classes, as_text = np.unique(np.array([str(k) for k in keys])), True
    index = {(str(c) if as_text else c): i for i, c in enumerate(classes.tolist())}
    counts = np.zeros((len(parts), classes.size), dtype=np.int64)
    for i, p in enumerate(parts):
        for k, v in p.label_counts.items():
            counts[i, index[str(k) if as_text else (k.item() if isinstance(k, np.generic) else k)]] += v
    if classes.size < 2:
        only = classes[0].item() if classes.size and isinstance(classes[0], np.generic) else (classes[0] if classes.size else None)
        raise DataError(f"{where}: label column {label!r} has a single class ({only!r}); at least 2 are needed")
    k = int(classes.size)
    if (k == n and n >= 10) or (k > _MAX_FLOAT_CLASSES and k * 2 > n):
        raise DataError(f"{where}: label column {label!r} has {k:,} distinct values in {n:,} rows "
                        f"(fewer than 2 rows per class); it looks like an id or a measurement, not a class label")
    if any("float" in p.label_dtype for p in parts) and k > _MAX_FLOAT_CLASSES:
        vals = classes.astype(float)
        if not np.all(vals == np.round(vals)):
            raise DataError(f"{where}: label column {label!r} has {k:,} distinct values in {n:,} rows, "
                            "with fractions; it looks continuous, not a class label")
    return classes, as_text, counts


def _same_kind(keys: list[Any]) -> bool:
    """Whether all label values are numbers, or all are text (then numpy sorts them natively)."""
    num = [isinstance(k, (int, float, np.integer, np.floating, bool, np.bool_)) for k in keys]
    return all(num) or not any(num) and all(isinstance(k, str) for k in keys)


def label_codes(values: pd.Series, classes: np.ndarray, *, as_text: bool) -> np.ndarray:
    """Class codes ``0..K-1`` of a partition's label values, against the global ``classes``."""
    keys = values.astype(str) if as_text else values
    idx = pd.Index(classes.tolist()).get_indexer(keys)
    if (idx < 0).any():
        bad = values.iloc[int(np.flatnonzero(idx < 0)[0])]
        raise DataError(f"label value {bad!r} was not seen when the dataset was summarised; did a partition change?")
    return idx.astype(np.int64)


def build_encoder(stats: DatasetStats, *, max_onehot: int | None = None) -> TableEncoder:
    """The encoder a single machine would fit on the whole table, from the merged statistics."""
    max_onehot = TableEncoder().max_onehot if max_onehot is None else int(max_onehot)
    n = stats.n_rows
    plan: list[list[Any]] = []
    mean: list[float] = []
    scale: list[float] = []

    def add(col: str, kind: str, arg: Any, m: float, ex2: float, unit: float = 1.0) -> None:
        # mean and variance in units of the column's largest value, then the scale rule of
        # encoding._safe_mean_scale: a spread below 1e-12 of the magnitude leaves the column unscaled
        std = float(np.sqrt(max(ex2 - m * m, 0.0)))
        plan.append([col, kind, arg])
        mean.append(m * unit)
        s = std * unit if std > 1e-12 else 1.0
        scale.append(s if s > 0 else unit)

    for col in stats.roles.features:
        cs = stats.columns_stats[col]
        if cs.numeric:
            med = cs.median if cs.count else 0.0
            unit = max(cs.unit, abs(med)) or 1.0
            r = cs.unit / unit
            # the imputed cells (the median) join the observed values as one group without spread
            tot_mean = (cs.mean * r * cs.count + (med / unit) * cs.n_missing) / n
            m2 = cs.m2 * r * r + cs.count * (cs.mean * r - tot_mean) ** 2 + cs.n_missing * (med / unit - tot_mean) ** 2
            add(col, "numeric", med, tot_mean, m2 / n + tot_mean ** 2, unit)
            if cs.n_missing:
                p = cs.n_missing / n
                add(col, "missing", None, p, p)
        else:
            if cs.n_missing:
                p = cs.n_missing / n
                add(col, "missing", None, p, p)
            n_distinct = len(cs.values) + (1 if cs.n_missing else 0)
            ordered = sorted(cs.values.items(), key=lambda kv: (-kv[1], kv[0]))
            if n_distinct <= max_onehot:
                for cat, k in ordered:
                    p = k / n
                    add(col, "onehot", cat, p, p)
            else:
                freq = {cat: k / n for cat, k in ordered}
                m = sum(k * f for (cat, k), f in zip(ordered, freq.values())) / n
                ex2 = sum(k * f * f for (cat, k), f in zip(ordered, freq.values())) / n
                add(col, "frequency", freq, m, ex2)
    return TableEncoder.from_dict({
        "max_onehot": max_onehot, "standardize": True, "features": list(stats.roles.features),
        "plan": plan, "mean": mean, "scale": scale,
    })
