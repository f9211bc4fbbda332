"""Attack simulator: make poisoned copies of a table with the ground truth.

Every attack takes a clean DataFrame and returns a :class:`PoisonedTable` (the
poisoned frame, a boolean ``mask`` of poisoned rows, the resolved parameters). The
input is never mutated and the same ``seed`` gives the same result.

* :func:`flip_labels`: random label flips;
* :func:`targeted_flip`: class a -> b flips, nearest the decision boundary first;
* :func:`boundary_flip`: rows of any class that a model finds most like a target
  class, relabelled to it;
* :func:`inject_outliers`: appended rows far outside the data, or (``placement="in_range"``)
  with every feature uniform within its column's range;
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
from ._flip import boundary_flip, flip_labels, targeted_flip
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
    "targeted_flip",
    "boundary_flip",
    "inject_outliers",
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
ATTACK_KINDS = ("flip", "targeted", "boundary", "outlier", "backdoor")


def poison(kind: str, frame: pd.DataFrame, *, label: str, rate: float, seed: int = 0, **params: Any) -> PoisonedTable:
    """Run the attack named ``kind`` (one of :data:`ATTACK_KINDS`).

    ``params`` are the attack's own keyword arguments: ``source_class`` and
    ``target_class`` for ``targeted``; ``target_class`` for ``boundary``; ``scale`` and
    ``placement`` for ``outlier``; ``target``,
    ``trigger``, ``image_shape``, ``clean_label``, ``holdout_fraction``,
    ``trigger_options`` for ``backdoor``; ``features`` for all but ``flip``.

    Raises
    ------
    InputError
        Unknown kind, or a parameter the attack does not take.
    """
    funcs = {"flip": flip_labels, "targeted": targeted_flip, "boundary": boundary_flip, "outlier": inject_outliers,
             "backdoor": backdoor}
    if kind not in funcs:
        raise InputError(f"unknown attack kind {kind!r}; choose one of: {', '.join(ATTACK_KINDS)}")
    try:
        return funcs[kind](frame, label, rate=rate, seed=seed, **params)
    except TypeError as exc:
        if "unexpected keyword" in str(exc) or "missing" in str(exc) and "argument" in str(exc):
            raise InputError(f"attack {kind!r}: {exc}") from exc
        raise
