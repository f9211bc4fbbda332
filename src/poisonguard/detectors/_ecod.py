"""Per-column empirical tail probabilities (ECOD): rows that sit in the tails of many columns at once."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ._base import BaseDetector, register

__all__ = ["ECODDetector"]

#: rows per scoring block: the per-column work arrays stay a few MiB at a million rows
_BLOCK = 1 << 16
#: columns correlated at |r| >= this count as one measurement (see ``_redundancy_weights``)
_REDUNDANT = 0.9
#: rows (evenly spaced) behind the correlations
_CORR_ROWS = 20_000


def _count_dtype(m: int) -> type:
    """The smallest of int32 and int64 that holds the counts 0..``m``."""
    return np.int32 if m < np.iinfo(np.int32).max else np.int64


def _central_moments(X: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the mean of ``(x - mean) ** 2`` and of ``(x - mean) ** 3``, ``_BLOCK`` rows at a time.

    The float64 deviations of the whole matrix (and their squares and cubes) would be three
    matrices of twice its size. numpy sums a column-wise mean row after row, so each block
    is summed with the running total as its first row: the same additions in the same
    order, the values of ``np.mean((X - mean) ** k, axis=0)`` to the last bit.
    """
    acc2 = np.zeros((1, X.shape[1]))
    acc3 = np.zeros((1, X.shape[1]))
    for r0 in range(0, X.shape[0], _BLOCK):
        dev = X[r0:r0 + _BLOCK] - mean
        acc2 = np.add.reduce(np.concatenate([acc2, dev ** 2]), axis=0, keepdims=True)
        acc3 = np.add.reduce(np.concatenate([acc3, dev ** 3]), axis=0, keepdims=True)
    return acc2[0] / X.shape[0], acc3[0] / X.shape[0]


@register
class ECODDetector(BaseDetector):
    """Empirical-CDF outlier score: summed ``-log`` tail probabilities over the columns.

    For each column the empirical CDF of the table gives a row's left tail probability
    ``P(X <= x)`` and right tail probability ``P(X >= x)``. The score is the largest of
    three sums of ``-log`` tail probabilities over the columns: all left tails, all
    right tails, and each column's tail on the side its skewness points to (the
    construction of Li et al., "ECOD", TKDE 2022), with one change: columns that repeat
    one measurement (correlated at ``|r| >= 0.9``) share one weight, so an extreme value
    repeated across them counts about once. It has no settings to tune and no
    randomness, and it sees what a tree ensemble can miss: a row whose every value lies
    inside its column's range but in the tails of several columns at once (a jointly
    implausible row), and a value just outside one column's range. It is blind to rows
    whose values are each common but whose combination is rare.

    Parameters
    ----------
    max_reference : int, default=100_000
        Order statistics kept per column. A larger table keeps this many evenly spaced
        order statistics of each column (its quantiles at a resolution of
        ``1 / max_reference``), which bounds the memory at ``max_reference x columns``
        and changes no score by more than that resolution.
    """

    name = "ecod"
    family = "outlier"
    summary = "Per-column empirical tail probabilities summed over the columns (ECOD; in-range and far outliers)"

    def __init__(self, *, max_reference: int = 100_000) -> None:
        self.max_reference = max_reference

    def _validate_params(self) -> None:
        if int(self.max_reference) < 2:
            raise ConfigError(f"ecod: max_reference must be >= 2, got {self.max_reference}")

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        n = X.shape[0]
        srt = np.sort(X, axis=0)
        m = min(n, int(self.max_reference))
        if m < n:  # evenly spaced order statistics, the minimum and maximum included
            srt = srt[np.linspace(0, n - 1, m).round().astype(np.int64)]
        # per column: its distinct reference values and how many reference values lie below
        # each, so one search gives both tail counts (ties included)
        self.values_, self.below_ = [], []
        columns = np.ascontiguousarray(srt.T)
        del srt
        for col in columns:
            values, counts = np.unique(col, return_counts=True)
            self.values_.append(values)
            # int32 (counts up to max_reference): half the tables of int64
            self.below_.append(np.concatenate(([0], np.cumsum(counts))).astype(_count_dtype(m)))
        del columns
        self.n_reference_ = m
        self.log_count_ = np.log(np.maximum(np.arange(m + 1), 1))  # log(max(c, 1)) for c = 0..m
        # sample skewness per column (0 for a constant column): which tail is "the" tail
        m2, m3 = _central_moments(X, X.mean(axis=0, dtype=np.float64))
        self.skewness_ = np.where(m2 > 1e-24, m3 / np.maximum(m2, 1e-24) ** 1.5, 0.0)
        self.weights_ = self._redundancy_weights(X)

    @staticmethod
    def _redundancy_weights(X: np.ndarray) -> np.ndarray:
        """Per column: 1 / the number of columns (itself included) it correlates with at |r| >= ``_REDUNDANT``.

        Columns that repeat one measurement (a mean intensity and each colour channel's
        mean) would each add the same tail probability, so one extreme value would count
        several times; each such group of columns counts about once.
        """
        sample = X if X.shape[0] <= _CORR_ROWS else X[np.linspace(0, X.shape[0] - 1, _CORR_ROWS).astype(np.int64)]
        sd = sample.std(axis=0, dtype=np.float64)
        live = sd > 1e-12
        weights = np.ones(X.shape[1])
        if live.sum() > 1:
            Z = (sample[:, live] - sample[:, live].mean(axis=0, dtype=np.float64)) / sd[live]
            corr = (Z.T @ Z) / Z.shape[0]
            weights[live] = 1.0 / (np.abs(corr) >= _REDUNDANT).sum(axis=1)
        return weights

    def _tails(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``-log`` left and right tail probabilities, shape ``(rows, columns)`` each."""
        m = self.n_reference_
        log_m, log_count = np.log(m), self.log_count_
        left = np.empty(X.shape, dtype=np.float64)
        right = np.empty(X.shape, dtype=np.float64)
        for j in range(X.shape[1]):
            values, below, col = self.values_[j], self.below_[j], X[:, j]
            pos = np.searchsorted(values, col, side="left")  # first distinct value >= x
            hit = values[np.minimum(pos, values.size - 1)] == col
            n_below = below[pos]  # reference values < x
            n_at_most = below[pos + hit]  # reference values <= x
            # a value outside the reference range counts as the most extreme value seen (count 1)
            left[:, j] = log_m - log_count[n_at_most]
            right[:, j] = log_m - log_count[m - n_below]
        return left, right

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        out = np.empty(X.shape[0], dtype=np.float64)
        right_skewed = self.skewness_ >= 0
        for r0 in range(0, X.shape[0], _BLOCK):
            left, right = self._tails(X[r0:r0 + _BLOCK])
            w = self.weights_
            both = np.maximum(left @ w, right @ w)
            # each column's skewed tail, written over the left tails (no third block-sized matrix):
            # the same matrix as np.where(right_skewed, right, left), so the same product
            for j in np.flatnonzero(right_skewed).tolist():
                left[:, j] = right[:, j]
            del right
            out[r0:r0 + _BLOCK] = np.maximum(both, left @ w)
        return out

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        left, right = self._tails(X[rows])
        out = []
        for i, r in enumerate(rows):
            per = np.maximum(left[i], right[i])
            top = np.argsort(-per, kind="stable")[:3]
            tails = {int(j): {"side": "low" if left[i, j] >= right[i, j] else "high",
                              "tail_probability": float(np.exp(-per[j]))} for j in top}
            desc = ", ".join(f"{{feature:{j}}} in its {t['side']} tail (p = {t['tail_probability']:.2g})"
                             for j, t in tails.items())
            out.append((f"in the tails of several columns at once (summed -log tail probability "
                        f"{scores[r]:.1f}); most extreme: {desc}", {"score": float(scores[r]), "tails": tails}))
        return out
