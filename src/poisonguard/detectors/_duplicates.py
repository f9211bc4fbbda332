"""Exact and near duplicates whose labels conflict."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ._base import BaseDetector, register
from ._neighbors import query_neighbours, self_neighbours

__all__ = ["DuplicateConflictDetector"]


@register
class DuplicateConflictDetector(BaseDetector):
    """Share of a row's (near-)duplicates that carry another label.

    Two rows closer than ``tolerance`` times the table's median nearest-neighbour
    distance are near duplicates (distance 0: exact duplicates). With ``c``
    conflicting and ``a`` agreeing duplicates the score is ``c / (c + a + 1)``: one
    conflicting twin gives 0.5 (either may be wrong), three give 0.75.

    Parameters
    ----------
    tolerance : float, default=0.05
    max_duplicates : int, default=10
        How many nearest rows are examined.
    """

    name = "duplicates"
    needs_label = True
    family = "duplicate"
    score_kind = "probability"
    summary = "exact and near duplicates with conflicting labels"

    def __init__(self, *, tolerance: float = 0.05, max_duplicates: int = 10) -> None:
        self.tolerance = tolerance
        self.max_duplicates = max_duplicates

    def _validate_params(self) -> None:
        if float(self.tolerance) < 0:
            raise ConfigError(f"duplicates: tolerance must be >= 0, got {self.tolerance}")
        if int(self.max_duplicates) < 1:
            raise ConfigError(f"duplicates: max_duplicates must be >= 1, got {self.max_duplicates}")

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        self.X_ref_ = X
        self.y_ref_ = y
        nb = self_neighbours(X, int(self.max_duplicates))
        d1 = nb.distances[:, 0]
        positive = d1[d1 > 0]
        self.radius_ = float(self.tolerance) * float(np.median(positive) if positive.size else 0.0)

    def _pairs(self, X: np.ndarray, is_fit_data: bool) -> tuple[np.ndarray, np.ndarray]:
        k = int(self.max_duplicates)
        nb = self_neighbours(X, k) if is_fit_data else query_neighbours(self.X_ref_, X, k)
        return nb.indices, nb.distances <= self.radius_ + 1e-12

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        idx, close = self._pairs(X, is_fit_data)
        conflict = close & (self.y_ref_[idx] != y[:, None])
        c = conflict.sum(axis=1)
        a = (close & ~conflict).sum(axis=1)
        return c / (c + a + 1.0)

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        if is_fit_data:
            idx, close = self._pairs(X, True)
            idx, close = idx[rows], close[rows]
        else:
            idx, close = self._pairs(X[rows], False)
        out = []
        for i, r in enumerate(rows):
            other = [int(j) for j in idx[i][close[i]] if self.y_ref_[j] != y[r]]
            if not other:
                out.append(("no conflicting duplicate", {"conflicting_rows": []}))
                continue
            out.append((
                f"label {{label:{int(y[r])}}}, but {len(other)} (near-)duplicate row(s) {other[:5]} are labelled "
                f"{{label:{int(self.y_ref_[other[0]])}}}",
                {"conflicting_rows": other},
            ))
        return out
