"""The table's own label-noise level, estimated from its purest neighbourhoods.

The label detectors turn what they see (a neighbour vote, a fold model's fit) into the
probability that a row's label is its *true* class through a symmetric noise channel
of rate ``r``: a label is kept with probability ``1 - r``. With ``r`` fixed at 0.1 (a
prior), every row whose label is as rare as 1 in 10 around it became a near-certain
error, and real tables are full of such rows: on carData's Titanic passengers, the
male survivors of the second and third class (2 of 20 neighbours survived) made the
"survived" class look poisoned and 46 of its 500 rows were flagged; likewise
Stat2Data's Titanic (83 rows), Ecdat's Computers (112), MASS biopsy and glass, AER's
bank wages (benchmarks/results/label_noise_level.md).

Random label noise, natural or written, reaches everywhere: under a symmetric channel
of rate ``r`` even a region that only one class occupies shows a share ``r`` of other
labels. A table's natural overlap does not: it sits where the classes meet, and the
purest regions of a clean table are pure. So the contamination of the table's purest
neighbourhoods bounds the rate of noise that reaches everywhere, and that is the rate
the channel should assume. :func:`estimate_noise_rate` measures it as a low quantile
(``PURE_QUANTILE``) of each row's neighbourhood impurity (the share of its ``k``
nearest neighbours outside their majority label), averaged over the row's neighbours.

The estimate is biased low, and on purpose in that direction: a low quantile of a noisy
vote sits under its mean, more so on tables of few columns, whose neighbourhoods
overlap so much that the averaging removes little of the vote's noise. Measured
(random flips of 0, 2, 5, 10 and 20% of the labels): scikit-learn's breast cancer
0.000, 0.003, 0.050, 0.103, 0.193; digits 0.000, 0.005, 0.028, 0.068, 0.152; three
two-dimensional blobs 0.000, 0.000, 0.008, 0.033, 0.123; the clean Titanic table 0.040.
Too low an estimate makes the detectors assume less noise than there is, so fewer rows
reach the near-certain-error line; too high one, as the fixed prior was, turns a
natural minority into errors. An unbiased variant (the row's own label read in the
purest neighbourhoods, selected by the neighbours' labels alone) tracked the flip rate
(breast cancer 0.000, 0.022, 0.037, 0.101) but measured Titanic's natural survivors
among men as noise (0.09-0.11), and its per-class minimum came out at 0 on digits with
5% flips (ten small cores): not used (benchmarks/results/label_noise_level.md).

The estimate is capped at ``MAX_NOISE_RATE`` (the prior it replaces): on tables whose
classes overlap everywhere (MASS's glass types, 6 classes in 214 rows: 0.116; the colon
cancer trial: 0.108) no neighbourhood is pure, and the estimate measures that overlap
rather than noise. A class-conditional attack (one class's rows relabelled to another)
leaves the other classes' regions pure and is hardly measured by it: such flips are
judged by their own neighbourhood's vote, not against a prior.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ._base import fingerprint_array
from ._memo import BoundedMemo
from ._neighbors import self_neighbours

__all__ = ["MAX_NOISE_RATE", "NOISE_NEIGHBOURS", "PURE_QUANTILE", "check_noise_rate", "estimate_noise_rate",
           "resolve_noise_rate"]

#: the estimate never exceeds the fixed prior the label detectors assumed before
MAX_NOISE_RATE = 0.1
#: neighbours per row of the impurity: the neighbour vote's own default
NOISE_NEIGHBOURS = 20
#: the quantile of the rows' smoothed neighbourhood impurity that is the estimate
PURE_QUANTILE = 0.1

# both label detectors of a scan ask for the same table's estimate: the second gets the first's
_memo: BoundedMemo[float] = BoundedMemo(2)


def estimate_noise_rate(X: np.ndarray, y: np.ndarray, *, n_neighbors: int = NOISE_NEIGHBOURS,
                        quantile: float = PURE_QUANTILE, cap: float = MAX_NOISE_RATE) -> float:
    """The label-noise rate the table shows in its purest neighbourhoods (see the module docstring).

    Parameters
    ----------
    X : ndarray of shape (n_rows, n_features)
        The encoded table the label detectors see (the neighbour graph is the one the
        neighbour detectors share, so it costs no second search in a scan).
    y : ndarray of int
        Class codes.
    n_neighbors, quantile, cap
        Neighbours per row, the quantile of rows taken as the purest, and the cap.

    Returns
    -------
    float
        In ``[0, cap]``; 0 for a table of one class or too few rows for a neighbourhood.
    """
    y = np.asarray(y)
    key = (fingerprint_array(X), fingerprint_array(y), int(n_neighbors), float(quantile), float(cap))
    known = _memo.get(key)
    if known is None:
        known = _estimate(X, y, n_neighbors=int(n_neighbors), quantile=float(quantile), cap=float(cap))
        _memo.put(key, known)
    return known


def _estimate(X: np.ndarray, y: np.ndarray, *, n_neighbors: int, quantile: float, cap: float) -> float:
    """:func:`estimate_noise_rate` without its memo."""
    n = y.size
    k = min(n_neighbors, n - 1)
    if k < 1 or np.unique(y).size < 2:
        return 0.0
    nb = self_neighbours(X, k).indices
    labels = y[nb]
    # the share of the majority label among each row's neighbours, one class at a time
    # (a rows x classes count table would be 100k x K ints on a large table)
    majority = np.zeros(n)
    for c in np.unique(y):
        np.maximum(majority, (labels == c).mean(axis=1), out=majority)
    impurity = 1.0 - majority
    smoothed = impurity[nb].mean(axis=1)
    return float(min(cap, np.quantile(smoothed, quantile)))


def check_noise_rate(detector: str, noise_rate: float | str) -> None:
    """Raise :class:`~poisonguard.errors.ConfigError` unless ``noise_rate`` is ``"auto"`` or in [0, 0.5)."""
    if isinstance(noise_rate, str) and noise_rate == "auto":
        return
    if isinstance(noise_rate, str) or not 0.0 <= float(noise_rate) < 0.5:
        raise ConfigError(f"{detector}: noise_rate must be in [0, 0.5) or 'auto', got {noise_rate!r}")


def resolve_noise_rate(noise_rate: float | str, X: np.ndarray, y: np.ndarray) -> float:
    """``noise_rate`` itself, or the table's estimate when it is ``"auto"``."""
    if isinstance(noise_rate, str):
        return estimate_noise_rate(X, y)
    return float(noise_rate)
