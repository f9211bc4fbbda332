"""Calibrate detector scores to one scale and combine them into ``suspicion``.

Each detector's raw scores are mapped to a *strength* in [0, 1]:

* ``probability`` detectors (label disagreement, confident learning, duplicate
  conflicts) already estimate the chance that a row's label is wrong; their score
  is the strength.
* ``anomaly`` detectors (Isolation Forest, class-conditional distance) are compared
  with the bulk of the table: a robust z-score ``z = (s - median) / (1.4826 MAD)``
  becomes ``Phi(z - Z_MID)``, i.e. strength 0.5 at ``Z_MID`` robust standard
  deviations. A robust null is used rather than the table's own ranks because a
  rank always puts *some* row at the top, even in a clean table.

Detectors estimating the same quantity (the ``probability`` detectors of the label
family) are averaged first, which cancels much of their independent noise. The
suspicion of a row is then the largest strength over the remaining groups: a row
needs one convincing signal, not many weak ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

__all__ = ["calibrate", "combine", "Combined", "Z_MID", "robust_z", "flag_auto", "flag_top"]

#: robust standard deviations at which an anomaly score reaches strength 0.5
Z_MID = 5.0


def robust_z(scores: np.ndarray) -> np.ndarray:
    """Robust z-score of each value against the bulk of ``scores``.

    The scale is 1.4826 x MAD; when more than half the values tie (MAD = 0) it falls
    back to the mean absolute deviation, then to 1.
    """
    s = np.asarray(scores, dtype=np.float64)
    centre = float(np.median(s))
    dev = np.abs(s - centre)
    scale = 1.4826 * float(np.median(dev))
    if scale <= 1e-12:
        scale = 1.2533 * float(dev.mean())
    if scale <= 1e-12:
        scale = 1.0
    return (s - centre) / scale


def calibrate(raw: np.ndarray, score_kind: str) -> np.ndarray:
    """Map raw detector scores to strengths in [0, 1] (see module docstring)."""
    raw = np.asarray(raw, dtype=np.float64)
    if score_kind == "probability":
        return np.clip(raw, 0.0, 1.0)
    if score_kind == "anomaly":
        return norm.cdf(robust_z(raw) - Z_MID)
    raise ValueError(f"unknown score_kind {score_kind!r}; expected 'probability' or 'anomaly'")


@dataclass(frozen=True)
class Combined:
    """The combined suspicion and which group drove it for each row."""

    suspicion: np.ndarray
    groups: dict[str, list[str]]
    group_strength: dict[str, np.ndarray]


def combine(
    strengths: Mapping[str, np.ndarray], kinds: Mapping[str, str], families: Mapping[str, str]
) -> Combined:
    """Average the label-probability detectors, then take the row-wise maximum over groups."""
    groups: dict[str, list[str]] = {}
    for name in strengths:
        key = "label_probability" if (kinds[name] == "probability" and families[name] == "label") else name
        groups.setdefault(key, []).append(name)
    group_strength = {g: np.mean([strengths[n] for n in names], axis=0) for g, names in groups.items()}
    if not group_strength:
        raise ValueError("no detector scores to combine")
    suspicion = np.max(np.stack(list(group_strength.values()), axis=1), axis=1)
    return Combined(suspicion=suspicion, groups=groups, group_strength=group_strength)


def flag_auto(suspicion: np.ndarray, threshold: float) -> np.ndarray:
    """The default rule: flag rows whose combined strength reaches ``threshold``."""
    return suspicion >= threshold


def flag_top(suspicion: np.ndarray, k: int) -> np.ndarray:
    """Flag the ``k`` most suspicious rows (stable order on ties: earlier row first)."""
    order = np.argsort(-suspicion, kind="stable")
    mask = np.zeros(suspicion.shape[0], dtype=bool)
    mask[order[: max(0, min(k, suspicion.shape[0]))]] = True
    return mask
