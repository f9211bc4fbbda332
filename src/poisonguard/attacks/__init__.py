"""Attack simulator: make poisoned copies of a table with the ground truth.

Every attack takes a clean DataFrame and returns a :class:`PoisonedTable` (the
poisoned frame, a boolean ``mask`` of poisoned rows, the resolved parameters). The
input is never mutated and the same ``seed`` gives the same result.

* :func:`flip_labels`: random label flips;
* :func:`pair_flip`: random rows of class a relabelled b (class-conditional noise);
* :func:`targeted_flip`: class a -> b flips, nearest the decision boundary first;
* :func:`boundary_flip`: rows of any class that a model finds most like a target
  class, relabelled to it;
* :func:`inject_outliers`: appended rows far outside the data, or (``placement="in_range"``)
  with every feature uniform within its column's range, or a tight blob far away or
  inside the ranges (``placement="cluster"`` / ``"cluster_in_range"``);
* :func:`perturbed_copies`: appended copies of clean rows with a few columns pushed far out;
* :func:`duplicate_flip`: appended exact copies of clean rows with another label;
* :func:`scale_rows`: rows whose numeric features are multiplied by a factor (a unit error);
* :func:`backdoor`: a trigger (pixel patch, blend or tabular values) stamped on rows
  relabelled to a target class, or a clean-label variant.

:func:`poison` dispatches by kind name, as the CLI and the benchmark do.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..errors import InputError
from ._backdoor import backdoor
from ._base import PoisonedTable
from ._copies import duplicate_flip, perturbed_copies, scale_rows
from ._flip import boundary_flip, flip_labels, pair_flip, targeted_flip
from ._outliers import inject_outliers
from ._triggers import (
    PATCH_POSITIONS,
    BlendTrigger,
    PatchTrigger,
    TabularTrigger,
    Trigger,
    apply_trigger,
    load_trigger,
    make_trigger,
    save_trigger,
    trigger_from_dict,
)

__all__ = [
    "PoisonedTable",
    "flip_labels",
    "pair_flip",
    "targeted_flip",
    "boundary_flip",
    "inject_outliers",
    "perturbed_copies",
    "duplicate_flip",
    "scale_rows",
    "backdoor",
    "poison",
    "ATTACK_KINDS",
    "Trigger",
    "PatchTrigger",
    "BlendTrigger",
    "TabularTrigger",
    "PATCH_POSITIONS",
    "make_trigger",
    "apply_trigger",
    "trigger_from_dict",
    "save_trigger",
    "load_trigger",
]

#: Attack kinds accepted by :func:`poison` and ``poisonguard attack --kind``.
ATTACK_KINDS = ("flip", "targeted", "boundary", "outlier", "backdoor", "pair", "perturbed", "duplicate_flip", "scaled")


def poison(kind: str, frame: pd.DataFrame, *, label: str, rate: float, seed: int = 0, **params: Any) -> PoisonedTable:
    """Run the attack named ``kind`` (one of :data:`ATTACK_KINDS`).

    ``params`` are the attack's own keyword arguments: ``source_class`` and
    ``target_class`` for ``targeted`` and ``pair``; ``target_class`` for ``boundary``;
    ``scale``, ``placement`` and ``spread`` for ``outlier``; ``n_columns`` and ``scale``
    for ``perturbed``; ``factor`` for ``scaled``; ``target``,
    ``trigger``, ``image_shape``, ``clean_label``, ``holdout_fraction``,
    ``trigger_options`` for ``backdoor``; ``features`` for all but ``flip``.

    Raises
    ------
    InputError
        Unknown kind, or a parameter the attack does not take.
    """
    funcs = {"flip": flip_labels, "targeted": targeted_flip, "boundary": boundary_flip, "outlier": inject_outliers,
             "backdoor": backdoor, "pair": pair_flip, "perturbed": perturbed_copies, "duplicate_flip": duplicate_flip,
             "scaled": scale_rows}
    if kind not in funcs:
        raise InputError(f"unknown attack kind {kind!r}; choose one of: {', '.join(ATTACK_KINDS)}")
    try:
        return funcs[kind](frame, label, rate=rate, seed=seed, **params)
    except TypeError as exc:
        if "unexpected keyword" in str(exc) or "missing" in str(exc) and "argument" in str(exc):
            raise InputError(f"attack {kind!r}: {exc}") from exc
        raise
