"""Detection metrics of a suspicion score against the ground-truth mask."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

__all__ = [
    "auroc",
    "precision_at_k",
    "flag_metrics",
    "FlagMetrics",
    "class_damage",
    "FusionCheck",
    "fusion_check",
    "FUSION_TOLERANCE",
    "CLEAN_ROW_LIMIT",
    "CLEAN_CLASS_LIMIT",
    "OUTLIER_RECALL_FLOOR",
    "OUTLIER_KINDS",
]

#: The scan's AUROC may trail its best single detector's by at most this (issue 9, item 2).
FUSION_TOLERANCE = 0.005
#: A clean table may have at most this share of its rows flagged ...
CLEAN_ROW_LIMIT = 0.01
#: ... and at most this share of any one class's rows.
CLEAN_CLASS_LIMIT = 0.05
#: On cells of injected or edited rows the flag rule must keep recall (issue 9, item 2);
#: below this share of the poisoned rows flagged, the cell is listed as broken.
OUTLIER_RECALL_FLOOR = 0.5
#: Attack kinds whose poisoned rows are injected or edited feature values.
OUTLIER_KINDS = frozenset({"outlier", "perturbed", "scaled"})


def _pair(scores: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float).ravel()
    m = np.asarray(mask, dtype=bool).ravel()
    if s.shape != m.shape:
        raise InputError(f"scores has {s.size} values and mask has {m.size}")
    if not np.isfinite(s).all():
        raise InputError(f"scores has {int((~np.isfinite(s)).sum())} non-finite value(s)")
    return s, m


def auroc(scores: np.ndarray, mask: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (higher = more suspicious) for ``mask``.

    The probability that a random poisoned row scores above a random clean one,
    ties counting one half (Mann-Whitney U). ``nan`` when ``mask`` is all True or all
    False, since there is then nothing to rank.
    """
    s, m = _pair(scores, mask)
    n_pos, n_neg = int(m.sum()), int((~m).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(s)  # average ranks for ties
    u = ranks[m].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def precision_at_k(scores: np.ndarray, mask: np.ndarray, k: int | None = None) -> float:
    """Share of poisoned rows among the ``k`` highest scores (default ``k = mask.sum()``).

    Ties at the cut-off are resolved by their expected value under a random order, so
    a constant score gets the base rate rather than a value that depends on the row
    order. ``nan`` when ``k`` is 0.
    """
    s, m = _pair(scores, mask)
    k = int(m.sum()) if k is None else int(k)
    if k < 0 or k > s.size:
        raise InputError(f"k must be in 0..{s.size}, got {k}")
    if k == 0:
        return math.nan
    cut = np.sort(s)[::-1][k - 1]
    above = s > cut
    tied = s == cut
    n_above = int(above.sum())
    hits = float(m[above].sum()) + (k - n_above) * float(m[tied].sum()) / float(tied.sum())
    return hits / k


@dataclass(frozen=True)
class FlagMetrics:
    """How a yes/no flag rule did against the truth.

    Attributes
    ----------
    n_flagged : int
        Rows flagged.
    recall : float
        Poisoned rows flagged / poisoned rows (``nan`` without poisoned rows).
    precision : float
        Poisoned rows flagged / rows flagged (``nan`` when nothing is flagged).
    false_flag_rate : float
        Clean rows flagged / clean rows (on an unpoisoned table: share flagged).
    """

    n_flagged: int
    recall: float
    precision: float
    false_flag_rate: float


def flag_metrics(flagged: np.ndarray, mask: np.ndarray) -> FlagMetrics:
    """Recall, precision and false-flag rate of boolean ``flagged`` against ``mask``."""
    f = np.asarray(flagged, dtype=bool).ravel()
    m = np.asarray(mask, dtype=bool).ravel()
    if f.shape != m.shape:
        raise InputError(f"flagged has {f.size} values and mask has {m.size}")
    tp = int((f & m).sum())
    n_pos, n_flag, n_neg = int(m.sum()), int(f.sum()), int((~m).sum())
    return FlagMetrics(
        n_flagged=n_flag,
        recall=tp / n_pos if n_pos else math.nan,
        precision=tp / n_flag if n_flag else math.nan,
        false_flag_rate=int((f & ~m).sum()) / n_neg if n_neg else math.nan,
    )


def class_damage(flagged: np.ndarray, poisoned: np.ndarray, y: np.ndarray | None) -> float | None:
    """The largest share of any one class's clean rows that were flagged.

    A defence that flags 2% of a table can still wipe out a class of 348 rows; this is
    the number that shows it. Classes are the given labels; ``None`` without labels.
    """
    if y is None:
        return None
    clean = ~np.asarray(poisoned, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    y = np.asarray(y)
    shares = [float(flagged[clean & (y == c)].mean()) for c in np.unique(y[clean])]
    return max(shares) if shares else 0.0


@dataclass(frozen=True)
class FusionCheck:
    """Whether the combined score kept the signal of its best single detector.

    Attributes
    ----------
    detector_auroc : dict
        Detector name -> AUROC of its raw score (``None`` when it has non-finite values).
    best_detector : str or None
        The detector with the highest AUROC (the first in the given order on ties).
    best_auroc : float
        Its AUROC (``nan`` when no detector could be scored).
    scan_auroc : float
        AUROC of the combined suspicion.
    gap : float
        ``scan_auroc - best_auroc``.
    ok : bool
        ``gap >= -FUSION_TOLERANCE`` (``True`` when there is nothing to compare).
    """

    detector_auroc: dict[str, float | None]
    best_detector: str | None
    best_auroc: float
    scan_auroc: float
    gap: float
    ok: bool


def fusion_check(
    suspicion: np.ndarray, detector_scores: Mapping[str, np.ndarray], mask: np.ndarray,
    *, tolerance: float = FUSION_TOLERANCE,
) -> FusionCheck:
    """Compare the AUROC of the combined suspicion with that of each detector's own score.

    A detector's own score is its raw ``score_samples`` output (higher = more
    suspicious), i.e. what a user running that detector alone would rank by. A
    detector whose score is constant gets 0.5, as it should: it ranks nothing.
    """
    scan = auroc(suspicion, mask)
    per: dict[str, float | None] = {}
    for name, values in detector_scores.items():
        v = np.asarray(values, dtype=float)
        per[name] = auroc(v, mask) if np.isfinite(v).all() else None
    scored = {k: v for k, v in per.items() if v is not None and not math.isnan(v)}
    if not scored or math.isnan(scan):
        return FusionCheck(per, None, math.nan, scan, math.nan, True)
    best = max(scored, key=lambda k: scored[k])  # max keeps the first of equal values
    gap = scan - scored[best]
    return FusionCheck(per, best, scored[best], scan, gap, bool(gap >= -tolerance))
