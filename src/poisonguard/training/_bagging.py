"""Bagging certificate (Jia, Cao & Gong, "Intrinsic Certified Robustness of Bagging
against Data Poisoning Attacks", AAAI 2021).

``T`` base models are each trained on ``k`` rows drawn uniformly *with replacement*
from the ``n`` training rows. For a test point let ``p_l`` be the probability that a
model trained on such a random bag predicts ``l``. An attacker changes the training
set by ``r`` operations (insert, delete or modify a row; a modification counts once).

Bound (a coupling argument, which reproduces the paper's Theorem 1 without its
discretization refinement): let ``O`` be the rows the attack leaves untouched,
``|O| = n - d`` (``d`` rows deleted or modified) and ``n'`` the poisoned size. A bag
from the clean set lies wholly in ``O`` with probability ``a = ((n-d)/n)^k``; a bag from
the poisoned set with ``a' = ((n-d)/n')^k``; given that event both are uniform bags
of ``O``. Hence ``p'_A >= (a'/a)(p_A - 1 + a)`` and ``p'_B <= (a'/a) p_B + 1 - a'`` and
the prediction ``A`` provably stays if::

    (a'/a) (p_A - p_B - 1 + a) + a' - 1 > 0

The worst case for a budget ``r`` spends ``d`` on modifications and ``r - d`` on
insertions (``n' = n + r - d``); the radius is the largest ``r`` for which the condition
holds for every ``d`` in ``0..r``. (Pure insertion gives the paper's
``p_A - p_B > ((n+r)/n)^k - 1``; pure modification ``p_A - p_B > 2 (1 - ((n-r)/n)^k)``.)

``p_A`` and ``p_B`` are estimated from the ``T`` votes with simultaneous
Clopper-Pearson bounds (Bonferroni over classes) at confidence ``1 - alpha``, so the
certificate holds with probability at least ``1 - alpha`` over the bags drawn. When
the lower bound of ``p_A`` does not exceed the upper bound of every other class the
row is not certified (radius -1).
"""

from __future__ import annotations

import numpy as np

__all__ = ["bagging_bounds", "bagging_radius_from_bounds", "bagging_radius"]


def bagging_bounds(counts: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Prediction, lower bound of ``p_A`` and upper bound of the best other class."""
    from scipy.stats import beta

    counts = np.asarray(counts, dtype=np.int64)
    n, c = counts.shape
    t = counts.sum(axis=1)
    pred = np.argmax(counts, axis=1)
    na = counts[np.arange(n), pred]
    a = alpha / c
    p_low = np.where(na > 0, beta.ppf(a, na, t - na + 1), 0.0)
    others = counts.copy()
    others[np.arange(n), pred] = -1
    nb = others.max(axis=1)
    p_up = np.where(nb < t, beta.ppf(1 - a, nb + 1, t - nb), 1.0)
    p_up = np.minimum(p_up, 1 - p_low)
    return pred, np.nan_to_num(p_low), np.nan_to_num(p_up, nan=1.0)


def _holds(p_a: float, p_b: float, n: int, k: int, r: int) -> bool:
    d = np.arange(r + 1, dtype=np.float64)
    n_prime = n + r - d
    log_a = k * np.log1p(-d / n)  # ((n-d)/n)^k
    log_a_prime = k * (np.log(n - d) - np.log(n_prime))
    a = np.exp(log_a)
    ratio = np.exp(log_a_prime - log_a)
    lhs = ratio * (p_a - p_b - 1 + a) + np.exp(log_a_prime) - 1
    return bool(np.all(lhs > 0))


def bagging_radius_from_bounds(p_a: float, p_b: float, *, n: int, k: int) -> int:
    """Largest ``r`` for which the bagging condition holds (``-1`` if ``p_a <= p_b``)."""
    if not p_a > p_b:
        return -1
    r = 0
    lo, hi = 0, 1
    while hi < n and _holds(p_a, p_b, n, k, hi):  # exponential search, then bisection
        lo, hi = hi, hi * 2
    hi = min(hi, n)
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        if _holds(p_a, p_b, n, k, mid):
            lo = mid
        else:
            hi = mid
    r = lo
    return r


def bagging_radius(counts: np.ndarray, *, n: int, k: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Prediction and certified radius (``-1``: not certified) of each row."""
    pred, p_low, p_up = bagging_bounds(counts, alpha)
    radius = np.array([bagging_radius_from_bounds(float(a), float(b), n=n, k=k) for a, b in zip(p_low, p_up)])
    return pred, radius.astype(np.int64)
