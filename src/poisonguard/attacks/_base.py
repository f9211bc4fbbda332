"""The result type shared by every attack, and the checks every attack runs first."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, InputError
from ..validation import check_fraction, prepare_table

__all__ = ["PoisonedTable"]


@dataclass(frozen=True)
class PoisonedTable:
    """A poisoned copy of a table and the ground truth of what was poisoned.

    Attributes
    ----------
    frame : DataFrame
        The poisoned table (a new object; the input is never mutated). Its index is
        a fresh ``RangeIndex``: row ``i`` of ``frame`` is ``mask[i]``.
    mask : ndarray of bool
        ``True`` for every poisoned row of ``frame``, in order.
    kind : str
        The attack's kind, one of :data:`~poisonguard.attacks.ATTACK_KINDS`.
    params : dict
        The attack's resolved settings (JSON-serializable), including ``seed``,
        ``rate`` and ``n_poisoned``.
    holdout : DataFrame or None
        Backdoor only, when a holdout was asked for: test rows split off *before*
        poisoning. Clean rows have ``triggered=False``; copies of the non-target
        rows with the trigger stamped (true labels kept) have ``triggered=True``.
    target : object or None
        The class the attack pushes rows to (targeted, pair and boundary flips, backdoor).
    label : str
        Name of the label column.
    trigger : Trigger or None
        Backdoor only: the trigger that was stamped (see :func:`apply_trigger`).
    """

    frame: pd.DataFrame
    mask: np.ndarray
    kind: str
    params: dict[str, Any]
    holdout: pd.DataFrame | None = None
    target: Any = None
    label: str = "label"
    trigger: Any = None

    @property
    def n_poisoned(self) -> int:
        """How many rows of :attr:`frame` are poisoned."""
        return int(self.mask.sum())

    def truth(self) -> pd.DataFrame:
        """The ground truth as a table with columns ``row`` (0-based) and ``poisoned``."""
        return pd.DataFrame({"row": np.arange(self.mask.size), "poisoned": self.mask.astype(bool)})


@dataclass(frozen=True)
class _Checked:
    frame: pd.DataFrame
    label: str
    features: list[str]
    y: np.ndarray
    classes: np.ndarray
    extra: list[str] = field(default_factory=list)


def _check(frame: Any, label: str, features: Sequence[str] | None = None, *, where: str = "data") -> _Checked:
    """Validate the table and the label column; returns label codes and classes."""
    if not isinstance(label, str) or not label:
        raise InputError(f"label must be a column name, got {label!r}")
    prep = prepare_table(frame, label=label, features=features, where=where)
    extra = [c for c in prep.frame.columns if c not in prep.features and c != label]
    return _Checked(
        frame=prep.frame, label=label, features=list(prep.features), y=prep.y, classes=prep.classes, extra=extra
    )


def _count(rate: float, n: int, *, what: str = "rows") -> int:
    """``round(rate * n)``, refusing a rate that poisons nothing."""
    check_fraction(rate, "rate")
    k = int(math.floor(rate * n + 0.5))
    if k < 1:
        raise InputError(f"rate {rate} of {n} {what} poisons no row; use a rate of at least {1 / n:.3g}")
    return k


def _cap(k: int, available: int, what: str) -> int:
    if available < 1:
        raise DataError(f"there is no {what} to poison")
    if k > available:
        warnings.warn(f"asked to poison {k} rows but only {available} {what} exist; poisoning {available}", stacklevel=3)
        return available
    return k


def _with_labels(frame: pd.DataFrame, label: str, codes: np.ndarray, classes: np.ndarray) -> pd.DataFrame:
    """Copy of ``frame`` with the label column set to ``classes[codes]``, keeping its dtype."""
    out = frame.copy()
    values = classes[codes]
    dtype = frame[label].dtype
    try:
        out[label] = pd.Series(values, index=out.index).astype(dtype)
    except (TypeError, ValueError):  # pragma: no cover - exotic dtypes
        out[label] = pd.Series(values, index=out.index)
    return out


def _jsonable(value: Any) -> Any:
    """Make numpy scalars, tuples and nested containers JSON-serializable."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value
