"""Backdoor attacks: stamp a trigger on some rows (and relabel them to a target class)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..validation import check_fraction, resolve_class
from ._base import PoisonedTable, _cap, _check, _count, _jsonable, _with_labels
from ._triggers import BlendTrigger, PatchTrigger, TabularTrigger, Trigger, apply_trigger, make_trigger

__all__ = ["backdoor"]


def backdoor(
    frame: pd.DataFrame,
    label: str,
    rate: float,
    seed: int = 0,
    target: Any = None,
    trigger: str | Trigger | None = None,
    *,
    image_shape: tuple[int, int] | None = None,
    features: Sequence[str] | None = None,
    clean_label: bool = False,
    holdout_fraction: float | None = None,
    trigger_options: Mapping[str, Any] | None = None,
) -> PoisonedTable:
    """Plant a backdoor: rows carrying a trigger are taught to predict ``target``.

    *Dirty-label* (default): ``round(rate * n)`` rows drawn from the classes other than
    ``target`` get the trigger stamped and their label set to ``target``.
    *Clean-label* (``clean_label=True``): the rows are drawn from the target class
    itself, get the trigger and keep their (true) label; capped, with a warning, at
    the size of that class.

    With ``holdout_fraction``, a stratified test split is taken off *before*
    poisoning; ``n`` is then the size of the training part, and
    :attr:`PoisonedTable.holdout` holds the clean test rows (``triggered=False``) plus
    a triggered copy of every test row not of the target class (``triggered=True``,
    true label kept): clean accuracy is measured on the first, attack success rate
    (share predicted as ``target``) on the second.

    Parameters
    ----------
    frame : DataFrame
        The clean table (not mutated).
    label : str
        The label column.
    rate : float
        Fraction of the (training) rows to poison, in (0, 1).
    seed : int, default=0
        Seed of the row choice, the split and the trigger's random parts.
    target : object
        The target class (matched exactly or by its text).
    trigger : {"patch", "blend", "tabular"} or Trigger, optional
        Default ``"patch"`` with ``image_shape``, else ``"tabular"``. A trigger object
        is used as given.
    image_shape : (int, int), optional
        Pixel-grid data: the features are the pixels in row-major order.
    features : sequence of str, optional
        Feature columns (default: every column but the label).
    clean_label : bool, default=False
        Keep true labels and poison target-class rows.
    holdout_fraction : float, optional
        Fraction of rows split off as a test set before poisoning, in (0, 1).
    trigger_options : mapping, optional
        Keyword arguments for :func:`make_trigger` (``size``, ``position``,
        ``value``, ``alpha``, ``trigger_features``, ``trigger_values``...).

    Returns
    -------
    PoisonedTable
        ``trigger`` holds the stamped trigger; ``params["trigger"]`` its dict form.
    """
    chk = _check(frame, label, features)
    if target is None:
        raise InputError("a backdoor needs a target class: pass target=... (CLI: --target CLASS)")
    t_idx = resolve_class(target, chk.classes, option="target", label=label)
    rng = np.random.default_rng(seed)
    data, y = chk.frame, chk.y
    holdout_rows = np.array([], dtype=np.int64)
    if holdout_fraction is not None:
        check_fraction(holdout_fraction, "holdout_fraction")
        holdout_rows = _split(y, holdout_fraction, seed)
        keep = np.setdiff1d(np.arange(len(data)), holdout_rows)
        train, y_train = data.iloc[keep].reset_index(drop=True), y[keep]
    else:
        train, y_train = data.reset_index(drop=True), y
    n = len(train)

    if trigger is None:
        trigger = "patch" if image_shape is not None else "tabular"
    if isinstance(trigger, str):
        trig = make_trigger(
            trigger, train, features=chk.features, image_shape=image_shape, seed=seed, **dict(trigger_options or {})
        )
    elif isinstance(trigger, (PatchTrigger, BlendTrigger, TabularTrigger)):
        if trigger_options:
            raise InputError("trigger_options only apply when trigger is a kind name, not a trigger object")
        trig = trigger
    else:
        raise InputError(f"trigger must be 'patch', 'blend', 'tabular' or a trigger object, got {trigger!r}")

    pool = np.flatnonzero(y_train == t_idx) if clean_label else np.flatnonzero(y_train != t_idx)
    what = f"rows of class {chk.classes[t_idx]!r}" if clean_label else f"rows outside class {chk.classes[t_idx]!r}"
    k = _cap(_count(rate, n), pool.size, what)
    rows = np.sort(rng.choice(pool, size=k, replace=False))

    stamped = apply_trigger(train.iloc[rows], trig)
    out = train.copy()
    for col in stamped.columns:
        if not stamped[col].equals(train[col].iloc[rows]):
            values = out[col].to_numpy(copy=True)
            values[rows] = stamped[col].to_numpy()
            out[col] = pd.Series(values, index=out.index).astype(stamped[col].dtype)
    if not clean_label:
        codes = y_train.copy()
        codes[rows] = t_idx
        out = _with_labels(out, label, codes, chk.classes)
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True

    holdout = None
    if holdout_rows.size:
        test = data.iloc[holdout_rows].reset_index(drop=True)
        y_test = y[holdout_rows]
        triggered = apply_trigger(test.iloc[np.flatnonzero(y_test != t_idx)], trig)
        holdout = pd.concat(
            [test.assign(triggered=False), triggered.assign(triggered=True)], ignore_index=True
        )

    params = _jsonable(
        {
            "rate": float(rate), "seed": int(seed), "n_poisoned": int(k), "n_rows": int(n),
            "target": chk.classes[t_idx], "clean_label": bool(clean_label),
            "holdout_fraction": None if holdout_fraction is None else float(holdout_fraction),
            "n_holdout": int(holdout_rows.size), "image_shape": None if image_shape is None else list(image_shape),
            "trigger": trig.to_dict(),
        }
    )
    return PoisonedTable(
        frame=out, mask=mask, kind="backdoor", params=params, holdout=holdout,
        target=chk.classes[t_idx], label=label, trigger=trig,
    )


def _split(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted row numbers of a stratified (when possible) test split."""
    n = y.size
    n_test = int(np.floor(fraction * n + 0.5))
    if n_test < 1 or n_test >= n:
        raise InputError(f"holdout_fraction {fraction} of {n} rows leaves an empty train or test split")
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    try:
        _, test = train_test_split(idx, test_size=n_test, random_state=seed, stratify=y)
    except ValueError:  # a class too small to stratify: plain random split
        _, test = train_test_split(idx, test_size=n_test, random_state=seed)
    return np.sort(np.asarray(test))
