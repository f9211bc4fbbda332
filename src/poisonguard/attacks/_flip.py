"""Label-flipping attacks: random flips, random pair flips a -> b, boundary-targeted flips a -> b, and flips of the rows most like a target class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..validation import resolve_class
from ._base import PoisonedTable, _cap, _check, _count, _jsonable, _with_labels

__all__ = ["flip_labels", "pair_flip", "targeted_flip", "boundary_flip"]


def _relabelled(chk, label: str, rows: np.ndarray, new_codes: np.ndarray | int, *, kind: str,
                rate: float, seed: int, extra: dict[str, Any] | None = None,
                target: Any = None) -> PoisonedTable:
    """The table with ``rows`` relabelled to ``new_codes``, its mask and its parameters (one place for every flip)."""
    n = chk.frame.shape[0]
    codes = chk.y.copy()
    codes[rows] = new_codes
    out = _with_labels(chk.frame, label, codes, chk.classes).reset_index(drop=True)
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    params = _jsonable({"rate": float(rate), "seed": int(seed), "n_poisoned": int(rows.size), "n_rows": int(n),
                        **(extra or {})})
    return PoisonedTable(frame=out, mask=mask, kind=kind, params=params, target=target, label=label)


def _class_pair(chk, label: str, source_class: Any, target_class: Any, rate: float) -> tuple[int, int, np.ndarray, int]:
    """Codes ``(a, b)`` of two different classes, the rows of ``a``, and how many of them to flip."""
    a = resolve_class(source_class, chk.classes, option="source class", label=label)
    b = resolve_class(target_class, chk.classes, option="target class", label=label)
    if a == b:
        raise InputError(f"source class and target class are both {chk.classes[a]!r}; give two different classes")
    src = np.flatnonzero(chk.y == a)
    return a, b, src, _cap(_count(rate, chk.frame.shape[0]), src.size, f"rows of class {chk.classes[a]!r}")


def flip_labels(frame: pd.DataFrame, label: str, rate: float, seed: int = 0) -> PoisonedTable:
    """Flip the labels of a random ``rate`` fraction of rows.

    ``round(rate * n_rows)`` rows are drawn uniformly without replacement; each gets a
    class drawn uniformly from the classes *other* than its own, so every poisoned row
    really changed label.

    Parameters
    ----------
    frame : DataFrame
        The clean table (not mutated).
    label : str
        The label column.
    rate : float
        Fraction of rows to flip, in (0, 1).
    seed : int, default=0
        Seed; the same seed gives the same rows and the same new labels.

    Returns
    -------
    PoisonedTable
        Same rows in the same order; ``mask`` marks the flipped rows.

    Raises
    ------
    InputError
        Unknown label column, a rate outside (0, 1) or one that flips no row.
    DataError
        A label column with NaNs or a single class.
    """
    chk = _check(frame, label)
    n = chk.frame.shape[0]
    k = _count(rate, n)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=k, replace=False))
    n_classes = chk.classes.size
    # a uniform draw among the other classes: shift by 1..n_classes-1 (mod n_classes)
    shift = rng.integers(1, n_classes, size=k)
    return _relabelled(chk, label, rows, (chk.y[rows] + shift) % n_classes, kind="flip", rate=rate, seed=seed)


def pair_flip(
    frame: pd.DataFrame,
    label: str,
    source_class: Any,
    target_class: Any,
    rate: float,
    seed: int = 0,
    *,
    features: Sequence[str] | None = None,
) -> PoisonedTable:
    """Relabel randomly chosen rows of ``source_class`` as ``target_class`` (class-conditional noise).

    Unlike :func:`flip_labels` only one pair of classes is touched, and unlike
    :func:`targeted_flip` the rows are drawn uniformly within the source class, not
    nearest the boundary: the noise of a labeller who systematically confuses two
    classes, or an attacker hiding rows of one class (fraud relabelled as legitimate).

    Parameters
    ----------
    frame : DataFrame
        The clean table (not mutated).
    label : str
        The label column.
    source_class, target_class : object
        Class values (matched exactly or by their text, so ``"3"`` finds ``3``).
    rate : float
        Fraction of the *whole* table to flip: ``k = round(rate * n_rows)``, capped
        (with a warning) at the size of the source class.
    seed : int, default=0
        Seed of the row choice.
    features : sequence of str, optional
        Feature columns (only validated; the choice of rows does not look at them).

    Returns
    -------
    PoisonedTable
        Same rows in the same order; ``kind`` is ``"pair"``, ``target`` the target class.
    """
    chk = _check(frame, label, features)
    a, b, src, k = _class_pair(chk, label, source_class, target_class, rate)
    rows = np.sort(np.random.default_rng(seed).choice(src, size=k, replace=False))
    return _relabelled(chk, label, rows, b, kind="pair", rate=rate, seed=seed, target=chk.classes[b],
                       extra={"source_class": chk.classes[a], "target_class": chk.classes[b]})


def targeted_flip(
    frame: pd.DataFrame,
    label: str,
    source_class: Any,
    target_class: Any,
    rate: float,
    seed: int = 0,
    *,
    features: Sequence[str] | None = None,
) -> PoisonedTable:
    """Relabel rows of class ``source_class`` as ``target_class``, nearest the boundary first.

    A binary logistic regression is fitted on the rows of the two classes (features
    encoded and standardized by :class:`~poisonguard.encoding.TableEncoder`). The
    source rows are ranked by the absolute value of its decision function (the margin
    between the two classes) and the ``k`` closest to the boundary are flipped: these
    are the flips a classifier is least likely to contradict. Ties are broken by a
    seeded random order.

    Parameters
    ----------
    frame : DataFrame
        The clean table (not mutated).
    label : str
        The label column.
    source_class, target_class : object
        Class values (matched exactly or by their text, so ``"3"`` finds ``3``).
    rate : float
        Fraction of the *whole* table to flip: ``k = round(rate * n_rows)``, capped
        (with a warning) at the size of the source class.
    seed : int, default=0
        Seed of the tie-breaking order.
    features : sequence of str, optional
        Feature columns for the boundary model (default: every column but the label).

    Returns
    -------
    PoisonedTable
        Same rows in the same order; ``target`` is ``target_class``.
    """
    chk = _check(frame, label, features)
    a, b, src, k = _class_pair(chk, label, source_class, target_class, rate)

    from sklearn.linear_model import LogisticRegression

    from ..encoding import TableEncoder

    pair = np.flatnonzero((chk.y == a) | (chk.y == b))
    X = TableEncoder().fit_transform(chk.frame.iloc[pair], chk.features)
    model = LogisticRegression(max_iter=2000).fit(X, (chk.y[pair] == b).astype(int))
    margin = np.abs(model.decision_function(X[chk.y[pair] == a]))
    rng = np.random.default_rng(seed)
    tiebreak = rng.permutation(src.size)
    order = np.lexsort((tiebreak, margin))  # by margin, then the seeded order
    rows = np.sort(src[order[:k]])
    return _relabelled(chk, label, rows, b, kind="targeted", rate=rate, seed=seed, target=chk.classes[b],
                       extra={"source_class": chk.classes[a], "target_class": chk.classes[b]})


def boundary_flip(
    frame: pd.DataFrame,
    label: str,
    target_class: Any,
    rate: float,
    seed: int = 0,
    *,
    features: Sequence[str] | None = None,
) -> PoisonedTable:
    """Relabel to ``target_class`` the rows of other classes that a model finds most like it.

    A multinomial logistic regression gives every row an out-of-fold (5-fold)
    probability of ``target_class``; among the rows of the other classes, the
    ``k = round(rate * n_rows)`` with the highest probability are relabelled. Unlike
    :func:`targeted_flip` the rows may come from any class: this is the attacker who
    wants to grow the target class with the flips least likely to be contradicted.
    Ties are broken by a seeded random order.

    Parameters
    ----------
    frame : DataFrame
        The clean table (not mutated).
    label : str
        The label column.
    target_class : object
        The class rows are relabelled to (matched exactly or by its text).
    rate : float
        Fraction of the whole table to flip, capped (with a warning) at the number of
        rows of the other classes.
    seed : int, default=0
        Seed of the folds and the tie-breaking order.
    features : sequence of str, optional
        Feature columns of the model (default: every column but the label).

    Returns
    -------
    PoisonedTable
        Same rows in the same order; ``kind`` is ``"boundary"``, ``target`` the class.
    """
    chk = _check(frame, label, features)
    b = resolve_class(target_class, chk.classes, option="target class", label=label)
    n = chk.frame.shape[0]
    others = np.flatnonzero(chk.y != b)
    k = _cap(_count(rate, n), others.size, f"rows outside class {chk.classes[b]!r}")

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from ..encoding import TableEncoder

    X = TableEncoder().fit_transform(chk.frame, chk.features)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    proba = cross_val_predict(LogisticRegression(max_iter=2000), X, chk.y, cv=folds, method="predict_proba")
    like_target = proba[others, b]
    tiebreak = np.random.default_rng(seed).permutation(others.size)
    order = np.lexsort((tiebreak, -like_target))  # most like the target first, then the seeded order
    rows = np.sort(others[order[:k]])
    return _relabelled(chk, label, rows, b, kind="boundary", rate=rate, seed=seed, target=chk.classes[b],
                       extra={"target_class": chk.classes[b]})
