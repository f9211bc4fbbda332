"""The label group's rules: mixing label estimators, per-class presence tests, flags.

The label detectors (neighbour vote, confident learning, ...) all estimate P(label
correct). This module owns what the scan does with that estimate; see
:mod:`poisonguard.scan._ensemble` for the whole combination. The rules are described
in that module's docstring (label group, per class; the posterior false-discovery rule;
conflicting duplicates).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from ..detectors._confident import through_channel
from ..detectors._presence import ClassPresence

__all__ = [
    "LABEL_FDR",
    "LABEL_CAP",
    "PREDICTABLE_Q75",
    "LABEL_ALPHA",
    "MIN_LABEL_SUSPECTS",
    "NULL_SHARE",
    "MIXTURE_NOISE",
    "duplicate_strength",
    "excess_errors",
    "LabelFlags",
    "label_group_flags",
    "conflict_flags",
    "label_presence",
    "mixture_weights",
    "null_share",
    "posterior_fdr_flags",
]

#: expected share of wrongly flagged rows the label group's auto rule allows
LABEL_FDR = 0.05
#: a row whose label is more likely right than this is never flagged by the label group
LABEL_CAP = 0.5
#: the group name of the averaged label-probability detectors
LABEL_GROUP = "label"
#: a class is predictable when its upper-quartile row has P(label correct) at least this
PREDICTABLE_Q75 = 0.85
#: family-wise level of the per-class label presence tests (Bonferroni over classes)
LABEL_ALPHA = 0.05
#: a class needs at least this many near-certain errors to be judged poisoned
MIN_LABEL_SUSPECTS = 3
#: Share of a class's doubtful rows (P <= LABEL_CAP) that may be near-certain errors
#: (P <= LABEL_FDR) without a mode near 0, when the detectors assume no label noise:
#: natural overlap gives at most a uniform density of P over [0, LABEL_CAP], which puts
#: LABEL_FDR / LABEL_CAP of the doubtful rows below LABEL_FDR. A 5% share (the earlier
#: null) took the ordinary overlap of held-out tables (anes96, river's Bananas) for a
#: mode and flagged 1.3-2.2% of them. With a noise rate, see :func:`null_share`.
NULL_SHARE = LABEL_FDR / LABEL_CAP
#: the band above LABEL_FDR whose density bounds a class's natural near-certain errors
#: (:func:`excess_errors`): (LABEL_FDR, EXCESS_BAND * LABEL_FDR]
EXCESS_BAND = 3.0
#: flags of a poisoned class may exceed its estimated flips by this share of its rows
EXCESS_ALLOWANCE = 0.01
#: symmetric label-noise rate of the channel through which :func:`mixture_weights` scores
#: the estimators (the prior the label detectors themselves assume)
MIXTURE_NOISE = 0.1


def posterior_fdr_flags(p_correct: np.ndarray, *, fdr: float = LABEL_FDR, cap: float = LABEL_CAP) -> np.ndarray:
    """Flag the largest set of least-likely-correct rows whose mean P(correct) is <= ``fdr``."""
    p = np.asarray(p_correct, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    running_mean = np.cumsum(p[order]) / np.arange(1, p.size + 1)
    ok = (running_mean <= fdr) & (p[order] <= cap)
    mask = np.zeros(p.size, dtype=bool)
    if ok.any():
        mask[order[: int(np.flatnonzero(ok).max()) + 1]] = True
    return mask


def mixture_weights(p_correct: np.ndarray, *, n_classes: int = 2, noise_rate: float = MIXTURE_NOISE,
                    iterations: int = 200, floor: float = 1e-3) -> np.ndarray:
    """Weights of a mixture of estimators of P(label correct), fitted by EM.

    Parameters
    ----------
    p_correct : ndarray of shape (n_rows, n_estimators)
        Each estimator's probability of the row's given label.
    n_classes : int, default=2
    noise_rate : float, default=MIXTURE_NOISE
        The labels are scored through a symmetric noise channel: an estimator that
        gives the given label probability ``p`` predicts it with ``(1 - r) p + r (1 - p) / (K - 1)``.
        Without it, the likelihood of a table's own (partly flipped) labels punishes the
        estimator that is sure of the flips: a vote of 0 on a flipped row cost
        ``log(floor)`` and moved the weight to an estimator that doubts every row alike
        (a linear model on river's Bananas, P ~ 0.5 everywhere), whose share then kept
        every flipped row's mixed P above the near-certain-error line.

    Returns
    -------
    ndarray of shape (n_estimators,)
        Non-negative weights summing to 1 that (locally) maximise
        ``sum_i log(sum_k w_k p~_ik)``, ``p~`` the channel's probabilities.
    """
    P = np.clip(np.asarray(p_correct, dtype=np.float64), 0.0, 1.0)
    P = np.maximum(through_channel(P, n_classes, noise_rate), floor)
    w = np.full(P.shape[1], 1.0 / P.shape[1])
    for _ in range(iterations):
        resp = P * w
        resp /= resp.sum(axis=1, keepdims=True)
        new = resp.mean(axis=0)
        if np.max(np.abs(new - w)) < 1e-6:
            return new
        w = new
    return w


def null_share(noise_rate: float, n_classes: int) -> float:
    """The share of a class's doubtful rows that natural overlap puts below the near-certain line.

    The label detectors turn what they observe (the share ``q`` of a row's neighbours
    with its label, a fold model's probability of it) into P(true class) through the
    inverse of the symmetric noise channel of rate ``r``: ``p = (q - c) / s`` with
    ``c = r / (K - 1)`` and ``s = 1 - r - c``, clipped at 0. Natural overlap spreads the
    *observed* ``q`` at most uniformly over the doubtful range; the inverse channel
    piles every ``q <= c`` onto ``p = 0`` and stretches the rest, so a uniform ``q`` puts
    ``(c + LABEL_FDR s) / (c + LABEL_CAP s)`` of the doubtful rows at or below
    ``LABEL_FDR``, not ``LABEL_FDR / LABEL_CAP`` (``NULL_SHARE``, the value at ``r = 0``).
    At the table's estimated rate 0.04 (Stat2Data's Titanic) that is 0.17: its 38
    survivors among third-class men (1 in 20 of their neighbours survived) were 38 of
    190 doubtful rows, a mode against 0.10 (p = 3e-5), ordinary against 0.17.
    """
    k = max(int(n_classes), 2)
    r = min(max(float(noise_rate), 0.0), 0.5)
    c = r / (k - 1)
    s = 1.0 - r - c
    return (c + LABEL_FDR * s) / (c + LABEL_CAP * s)


def label_presence(p_correct: np.ndarray, y: np.ndarray, *, n_classes: int | None = None,
                   explained: np.ndarray | None = None, noise_rate: float = 0.0) -> list[ClassPresence]:
    """Per class: is there an excess of near-certain label errors beyond the class's own uncertainty?

    Parameters
    ----------
    p_correct : ndarray of shape (n_rows,)
        The label group's estimate of P(label correct) per row.
    y : ndarray of int
        Class codes.
    explained : ndarray of bool, optional
        Rows another group already explains as injected (a backdoor's carriers, a
        present anomaly detector's flags). They are left out of the test: a block of
        injected rows that share a label makes their class look predictable and turns
        the class's clean rows into "errors" (a backdoor relabelled to the minority
        class of an insurance table did that to every clean positive).
    noise_rate : float, default=0
        The channel rate through which the detectors computed ``p_correct``; it sets
        the null share of near-certain errors (:func:`null_share`).

    Returns
    -------
    list of ClassPresence
        One per class code; ``statistic`` is the share of the class's doubtful rows
        (P <= ``LABEL_CAP``) that are near-certain errors (P <= ``LABEL_FDR``),
        ``p_value`` its one-sided binomial p-value against :func:`null_share`,
        ``poisoned`` the decision (see the module docstring).
    """
    p = np.asarray(p_correct, dtype=np.float64)
    y = np.asarray(y)
    k = int(n_classes if n_classes is not None else (y.max() + 1 if y.size else 0))
    if explained is not None:
        keep = ~np.asarray(explained, dtype=bool)
        p, y = p[keep], y[keep]
    level = LABEL_ALPHA / max(k, 1)
    null = null_share(noise_rate, k)
    out: list[ClassPresence] = []
    for c in range(k):
        pc = p[y == c]
        if pc.size == 0:
            out.append(ClassPresence(c, 0, 0.0, _LABEL_STAT, 1.0, level, False, 0, "no rows"))
            continue
        errors = int((pc <= LABEL_FDR).sum())
        doubtful = int((pc <= LABEL_CAP).sum())
        q75 = float(np.quantile(pc, 0.75))
        share = errors / doubtful if doubtful else 0.0
        # P(X >= errors) for X ~ Binomial(doubtful, null)
        p_value = float(binom.sf(errors - 1, doubtful, null)) if errors else 1.0
        predictable = q75 >= PREDICTABLE_Q75
        # a cleanly separated class: every row it doubts is a near-certain error (too few
        # doubtful rows for the binomial test to reach the level, e.g. one flip in 60 rows)
        separated = errors >= 1 and errors == doubtful
        poisoned = predictable and (separated or (errors >= MIN_LABEL_SUSPECTS and p_value < level))
        if not predictable:
            why = (f"not judged: the features explain this class weakly (its upper-quartile row has "
                   f"P(label correct) {q75:.2f} < {PREDICTABLE_Q75}), so low probabilities are its normal state")
        else:
            verdict = "poisoned" if poisoned else "clean"
            why = (f"{verdict}: {errors} of its {doubtful} doubtful rows are near-certain errors "
                   f"(share {share:.2f}, binomial p = {p_value:.2g} against a {null:.2f} share; level {level:.2g})")
        out.append(ClassPresence(c, int(pc.size), float(share), _LABEL_STAT, p_value, level, bool(poisoned),
                                 errors, why))
    return out


_LABEL_STAT = "share of doubtful rows that are near-certain errors"


@dataclass(frozen=True)
class LabelFlags:
    """The label group's auto flags and the per-class presence tests behind them."""

    flags: np.ndarray
    presence: list[ClassPresence]


def label_group_flags(p_correct: np.ndarray, y: np.ndarray | None, *, n_classes: int | None = None,
                      explained: np.ndarray | None = None, noise_rate: float = 0.0) -> LabelFlags:
    """Flag label errors: per-class presence test, then the posterior FDR rule within poisoned classes.

    Without ``y`` every row counts as belonging to a class judged poisoned. ``explained``
    rows and ``noise_rate`` are as in :func:`label_presence`.
    """
    p = np.asarray(p_correct, dtype=np.float64)
    presence: list[ClassPresence] = []
    if y is None:
        return LabelFlags(flags=posterior_fdr_flags(p), presence=presence)
    y = np.asarray(y)
    presence = label_presence(p, y, n_classes=n_classes, explained=explained, noise_rate=noise_rate)
    poisoned = np.array([c.poisoned for c in presence] or [False], dtype=bool)
    eligible = poisoned[np.minimum(y, poisoned.size - 1)]
    # rows of classes judged clean take no part in the false-discovery rule
    flags = posterior_fdr_flags(np.where(eligible, p, 1.0))
    return LabelFlags(flags=_within_excess(flags, p, y, presence, explained), presence=presence)


def excess_errors(p_class: np.ndarray, upto: np.ndarray | float) -> float:
    """How many of a class's rows at low P(label correct) its natural doubt does not explain.

    A class's natural doubt thins out towards 0 (the rows of an overlap gather near 0.5,
    few lie at 0), so its density in the band ``(LABEL_FDR, EXCESS_BAND * LABEL_FDR]``
    bounds its density below: at most ``density * t`` of the rows at or below ``t`` are
    natural, the rest are flips. Flips that land in the band raise that density, so they
    make the count smaller, never larger. The count returned is the largest excess over
    the thresholds ``LABEL_FDR`` and ``upto`` (each clipped to the band). The presence
    test's uniform null (``NULL_SHARE`` of all doubtful rows natural) is too loose for
    this: a class whose near-certain errors are all flips still has many doubtful rows
    near 0.5 (benchmarks/results/label_fusion.md).
    """
    pc = np.sort(np.asarray(p_class, dtype=np.float64))
    band = (EXCESS_BAND - 1.0) * LABEL_FDR
    density = float(np.count_nonzero((pc > LABEL_FDR) & (pc <= EXCESS_BAND * LABEL_FDR))) / band
    # only up to the band's top: above it the natural density grows (overlap gathers near
    # 0.5), so the band's density would undercount the natural rows there (a digit class's
    # clean rows at P 0.2-0.4 were counted as flips)
    t = np.clip(np.atleast_1d(np.asarray(upto, dtype=np.float64)), LABEL_FDR, EXCESS_BAND * LABEL_FDR)
    t = np.unique(np.r_[LABEL_FDR, t])
    below = np.searchsorted(pc, t, side="right")
    return max(0.0, float(np.max(below - density * t)))


def _within_excess(flags: np.ndarray, p: np.ndarray, y: np.ndarray, presence: list[ClassPresence],
                   explained: np.ndarray | None) -> np.ndarray:
    """Keep, per class, at most its excess of near-certain errors plus ``EXCESS_ALLOWANCE`` of its rows.

    The posterior rule trusts P(label correct) as calibrated. Where a class overlaps
    another, its natural doubt also reaches 0 (a neighbour vote of 0 of 20 inside the
    other class's region), and the rule took those clean rows with the flips (river's
    Bananas, image_segments). :func:`excess_errors` bounds how many flips the class can
    hold; the class keeps its least likely correct flags up to that bound plus
    ``EXCESS_ALLOWANCE`` (the clean-table budget) of its rows. The allowance is there
    because flips also spread into the band that measures the natural density, which
    makes the bound too small on a table whose flips reach P 0.2-0.3.
    """
    out = flags.copy()
    keep = np.ones(p.size, dtype=bool) if explained is None else ~np.asarray(explained, dtype=bool)
    for c in presence:
        mine = np.flatnonzero(out & (y == c.label))
        if not c.poisoned or mine.size == 0:
            continue
        in_class = (y == c.label) & keep
        bound = int(np.ceil(excess_errors(p[in_class], p[mine]) + EXCESS_ALLOWANCE * np.count_nonzero(in_class)))
        if mine.size > bound:
            out[mine[np.argsort(p[mine], kind="stable")[bound:]]] = False
    return out


def conflict_flags(strength: np.ndarray, p_label: np.ndarray, *, threshold: float,
                   explained: np.ndarray | None = None) -> np.ndarray:
    """Flags of a conflicting-duplicates detector: of a conflicting pair, the twin whose label is doubted.

    The ``duplicates`` detector (:class:`~poisonguard.detectors.RelabelledTwinDetector`)
    reaches ``threshold`` only on conflicting twins of a table its presence test judged
    to hold relabelled copies, and goes *above* it only on the twin whose label its
    neighbourhood supports less (the source row stays at the threshold). Such a row is
    flagged when the label group agrees: it finds the row's label less likely than not
    (``P(label correct) <= LABEL_CAP``). Rows another group explains as injected are
    left to it.
    """
    flags = (np.asarray(strength) > threshold) & (np.asarray(p_label) <= LABEL_CAP)
    if explained is not None:
        flags &= ~np.asarray(explained, dtype=bool)
    return flags


def duplicate_strength(strength: np.ndarray, p_label: np.ndarray, *, threshold: float,
                       label_confirmed: bool = False) -> np.ndarray:
    """A duplicates detector's strength as the scan ranks it, told apart within a conflicting pair.

    On a twin at or above ``threshold`` (relabelled copies present, or an excess that is
    only ranked): ``0.5 + 0.5 w`` with ``w = (1 - p)^2 / ((1 - p)^2 + p^2)``, the chance
    that this twin, not the other, is the wrong one when exactly one of two twins is
    wrong and the other's label has probability about ``1 - p``. Below it (no presence):
    at most the label group's own doubt ``1 - p``. A conflict without presence may be
    natural; counting it as ``w`` (above the label doubt of the less likely twin)
    displaced flips on a coarse table (statsmodels' fair, 2% flips) by more than it
    found relabelled copies.

    With ``label_confirmed`` (the label group's presence test judged some class poisoned
    on this table, so wrong labels are there to find) a conflict below the threshold is
    evidence of its own beside the label doubt: ``1 - p (1 - c)``, ``c`` the row's share
    of conflicting twins (``2 x`` the detector's score below the threshold; the
    noisy-or of two independent signs that the label is wrong). On a coarse table whose
    twins disagree naturally (river's Phishing: about 110 conflicting rows) the twin
    test cannot tell 39 relabelled copies from the natural conflicts, and ranking them
    only by the label doubt lost the conflicts' signal.
    """
    s = np.asarray(strength, dtype=np.float64)
    p = np.clip(np.asarray(p_label, dtype=np.float64), 0.0, 1.0)
    wrong = (1.0 - p) ** 2 / np.maximum((1.0 - p) ** 2 + p ** 2, 1e-12)
    if label_confirmed:
        below = np.where(s > 0, 1.0 - p * (1.0 - np.clip(2.0 * s, 0.0, 1.0)), 0.0)
    else:
        below = np.minimum(s, 1.0 - p)
    return np.where(s >= threshold, 0.5 + 0.5 * wrong, below)
