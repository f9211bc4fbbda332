"""Calibrate detector scores to one scale, combine them into ``suspicion``, and flag.

Each detector's raw scores become a *strength* in [0, 1]:

* ``probability`` detectors estimate the chance that a row is poisoned; their score
  is the strength. The label-family ones (neighbour vote, confident learning) all
  estimate the same thing, P(label wrong), so they form one group. Their estimates
  of P(label correct) are mixed with weights that maximise the likelihood of the
  table's own labels (EM for mixture weights, :func:`mixture_weights`): the estimator
  that predicts this table's labels better gets more say. On the generated table a
  linear model fits poorly and the neighbour vote gets weight 0.87, which raised the
  10%-flip AUROC from 0.981 (equal weights) to 0.991; elsewhere it changed nothing.
* ``anomaly`` detectors (Isolation Forest, class-conditional distance) are compared
  with the bulk of the table: a robust z-score ``z = (s - median) / (1.4826 MAD)``
  becomes ``Phi(z - Z_MID)``, strength ``AUTO_THRESHOLD`` (0.5) at ``Z_MID`` robust standard deviations.
  A robust null is used rather than the table's own ranks, because a rank always
  puts *some* row at the top, even in a clean table.

Presence tests decide, per group, whether there is anything to find at all, before
any row is flagged (the backdoor detectors already work this way):

* **label group, per class** (:func:`label_presence`). A low P(label correct) means
  little in a class that the features explain weakly: the minority class of a fraud or
  insurance table gets low probabilities on every row although no label is wrong. A
  class is judged poisoned only when (a) it is *predictable*: its upper-quartile row
  has P(label correct) >= ``PREDICTABLE_Q75``, so the features do recognise the class,
  and (b) its near-certain errors (P <= ``LABEL_FDR``) form a mode of their own: among
  the class's doubtful rows (P <= ``LABEL_CAP``) they are more than a ``LABEL_FDR``
  share (one-sided binomial test, Bonferroni over classes, at least
  ``MIN_LABEL_SUSPECTS`` rows), or they are all of its doubtful rows (a cleanly
  separated class with a few flips, where the test has too few rows to reach the level). Natural overlap gives a continuum of doubtful rows with
  few near-certain errors; flips give a separate cluster near 0.
* **anomaly detectors** (:func:`anomaly_presence`). Clean tables have a decaying upper
  tail of robust z-scores (Isolation Forest: 0.2-0.3 of the rows above z = 4 are also
  above z = 6 on the real tables measured); injected rows form a plateau (most rows above
  4 are above 6). When a plateau is present the detector's strength is
  ``Phi(z - Z_PRESENT)`` instead of ``Phi(z - Z_MID)``: the injected rows then rank
  above rows that only the label group doubts. Without it, a table of in-range outliers
  ranked its outliers below the clean rows of an overlapping class.

``suspicion`` is the largest group strength: one convincing signal is enough.

The default flag rule ("auto") flags what stands out statistically:

* label group: a *posterior false-discovery rule* over the rows of classes judged
  poisoned. Rows are taken in order of increasing estimated P(label correct) for as
  long as the mean of that probability over the taken rows (the expected share of
  wrongly flagged rows) stays at or under ``LABEL_FDR``, and no row with P(label
  correct) above ``LABEL_CAP`` is taken. Rows of classes judged clean are never
  flagged by the label group.
* anomaly detectors: robust z >= ``Z_MID``, or >= ``Z_PRESENT_FLAG`` when present.
* every other group: strength >= ``AUTO_THRESHOLD``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from ..detectors._presence import ClassPresence
from ._label_rules import (
    LABEL_CAP,
    LABEL_FDR,
    PREDICTABLE_Q75,
    label_group_flags,
    conflict_flags,
    label_presence,
    mixture_weights,
    posterior_fdr_flags,
)

__all__ = [
    "calibrate",
    "combine",
    "Combined",
    "Z_MID",
    "AUTO_THRESHOLD",
    "LABEL_FDR",
    "LABEL_CAP",
    "robust_z",
    "posterior_fdr_flags",
    "flag_top",
    "LABEL_GROUP",
    "mixture_weights",
    "label_presence",
    "anomaly_presence",
    "AnomalyPresence",
    "PREDICTABLE_Q75",
    "Z_PRESENT",
    "Z_PRESENT_FLAG",
]

#: the one strength threshold of the auto rule: groups without a rule of their own flag at it,
#: and an anomaly detector's strength reaches it at robust z = Z_MID (or Z_PRESENT)
AUTO_THRESHOLD = 0.5
#: robust standard deviations at which an anomaly score reaches strength AUTO_THRESHOLD
Z_MID = 8.0
#: the group name of the averaged label-probability detectors
LABEL_GROUP = "label"
#: robust z of the tail test of an anomaly detector: the plateau is measured between these
TAIL_LOW, TAIL_HIGH = 4.0, 6.0
#: share of the rows above TAIL_LOW that must also lie above TAIL_HIGH (a plateau)
PLATEAU_SHARE = 0.5
#: rows above TAIL_LOW needed for a plateau (share of the table, and a count)
TAIL_MIN_SHARE, TAIL_MIN_ROWS = 0.01, 3
#: an anomaly detector judged present ranks with Phi(z - Z_PRESENT) ...
Z_PRESENT = 3.0
#: ... and flags rows at robust z >= Z_PRESENT_FLAG
Z_PRESENT_FLAG = 5.0


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
class AnomalyPresence:
    """The tail test of one anomaly detector.

    Attributes
    ----------
    above_low, above_high : int
        Rows at robust z >= ``TAIL_LOW`` and >= ``TAIL_HIGH``.
    plateau : float
        ``above_high / above_low`` (0 when no row is above ``TAIL_LOW``).
    present : bool
        A plateau: injected rows rather than the table's own tail.
    """

    above_low: int
    above_high: int
    plateau: float
    present: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def anomaly_presence(z: np.ndarray) -> AnomalyPresence:
    """Does the upper tail of robust z-scores hold a plateau of injected rows? (see module docstring)"""
    z = np.asarray(z, dtype=np.float64)
    low, high = int((z >= TAIL_LOW).sum()), int((z >= TAIL_HIGH).sum())
    plateau = high / low if low else 0.0
    present = low >= max(TAIL_MIN_ROWS, TAIL_MIN_SHARE * z.size) and plateau >= PLATEAU_SHARE
    return AnomalyPresence(low, high, float(plateau), bool(present))


@dataclass(frozen=True)
class Combined:
    """The combined suspicion, the groups, each group's strength and auto flags, and the presence tests.

    ``strengths`` holds each detector's strength as used (an anomaly detector judged
    present ranks on its lower midpoint); ``label_presence`` has one entry per class
    (empty without labels or label detectors); ``anomaly_presence`` one per anomaly detector.
    """

    suspicion: np.ndarray
    groups: dict[str, list[str]]
    group_strength: dict[str, np.ndarray]
    group_flags: dict[str, np.ndarray]
    label_weights: dict[str, float]
    strengths: dict[str, np.ndarray] = field(default_factory=dict)
    label_presence: list[ClassPresence] = field(default_factory=list)
    anomaly_presence: dict[str, AnomalyPresence] = field(default_factory=dict)

    @property
    def auto_flags(self) -> np.ndarray:
        """Rows flagged by any group's auto rule."""
        return np.any(np.stack(list(self.group_flags.values()), axis=1), axis=1)

    def group_of(self, detector: str) -> str:
        return next(g for g, names in self.groups.items() if detector in names)


def combine(
    strengths: Mapping[str, np.ndarray],
    kinds: Mapping[str, str],
    families: Mapping[str, str],
    *,
    raw: Mapping[str, np.ndarray] | None = None,
    y: np.ndarray | None = None,
    n_classes: int | None = None,
) -> Combined:
    """Group the detectors, run the presence tests, mix the label group, take the row-wise maximum.

    Parameters
    ----------
    strengths : mapping
        Each detector's strength from :func:`calibrate`.
    kinds, families : mapping
        Each detector's ``score_kind`` and ``family``.
    raw : mapping, optional
        Raw scores; with them, anomaly detectors get their tail test (:func:`anomaly_presence`).
    y : ndarray of int, optional
        Class codes; with them, the label group gets its per-class presence test
        (:func:`label_presence`) and flags only rows of classes judged poisoned.
        Without them every class counts as judged poisoned (the rule of a single class).
    """
    if not strengths:
        raise ValueError("no detector scores to combine")
    used = {n: np.asarray(v, dtype=np.float64) for n, v in strengths.items()}
    anomaly: dict[str, AnomalyPresence] = {}
    anomaly_flags: dict[str, np.ndarray] = {}
    for name in used:
        if kinds[name] == "anomaly" and raw is not None and name in raw:
            z = robust_z(raw[name])
            anomaly[name] = test = anomaly_presence(z)
            if test.present:
                used[name] = norm.cdf(z - Z_PRESENT)
            anomaly_flags[name] = z >= (Z_PRESENT_FLAG if test.present else Z_MID)
    groups: dict[str, list[str]] = {}
    for name in used:
        key = LABEL_GROUP if (kinds[name] == "probability" and families[name] == "label") else name
        groups.setdefault(key, []).append(name)
    group_strength = {g: np.mean([used[n] for n in names], axis=0) for g, names in groups.items()}
    label_weights: dict[str, float] = {}
    if len(groups.get(LABEL_GROUP, [])) > 1:
        names = groups[LABEL_GROUP]
        P = 1.0 - np.stack([used[n] for n in names], axis=1)
        w = mixture_weights(P)
        label_weights = {n: float(x) for n, x in zip(names, w)}
        group_strength[LABEL_GROUP] = 1.0 - P @ w
    presence: list[ClassPresence] = []
    group_flags: dict[str, np.ndarray] = {}
    for g, strength in group_strength.items():
        if g == LABEL_GROUP:
            decided = label_group_flags(1.0 - strength, y, n_classes=n_classes)
            presence = decided.presence
            group_flags[g] = decided.flags
        elif g in anomaly_flags:
            group_flags[g] = anomaly_flags[g]
        elif y is not None and all(families[n] == "duplicate" for n in groups[g]):
            p_label = 1.0 - group_strength.get(LABEL_GROUP, np.zeros_like(strength))
            group_flags[g] = conflict_flags(strength, p_label, y, threshold=AUTO_THRESHOLD)
        else:
            group_flags[g] = strength >= AUTO_THRESHOLD
    suspicion = np.max(np.stack(list(group_strength.values()), axis=1), axis=1)
    return Combined(suspicion=suspicion, groups=groups, group_strength=group_strength, group_flags=group_flags,
                    label_weights=label_weights, strengths=used, label_presence=presence, anomaly_presence=anomaly)


def flag_top(suspicion: np.ndarray, k: int) -> np.ndarray:
    """Flag the ``k`` most suspicious rows (stable order on ties: earlier row first)."""
    order = np.argsort(-suspicion, kind="stable")
    mask = np.zeros(suspicion.shape[0], dtype=bool)
    mask[order[: max(0, min(k, suspicion.shape[0]))]] = True
    return mask
