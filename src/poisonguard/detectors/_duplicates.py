"""Exact and near duplicates whose labels conflict, with and without a presence test."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import binom

from ..errors import ConfigError
from ._base import BaseDetector, register
from ._neighbors import query_neighbours, self_neighbours

__all__ = ["DuplicateConflictDetector", "RelabelledTwinDetector", "TwinPresence", "twin_presence",
           "TWIN_ALPHA", "MIN_TWIN_CONFLICTS"]

#: level of the twin presence test (one test per table)
TWIN_ALPHA = 1e-3
#: a table needs at least this many rows with a conflicting nearest twin to be judged poisoned
MIN_TWIN_CONFLICTS = 3


@register
class DuplicateConflictDetector(BaseDetector):
    """Share of a row's (near-)duplicates that carry another label, without a presence test.

    Two rows closer than ``tolerance`` times the table's median nearest-neighbour
    distance are near duplicates (distance 0: exact duplicates). With ``c``
    conflicting and ``a`` agreeing duplicates the score is ``c / (c + a + 1)``: one
    conflicting twin gives 0.5 (either may be wrong), three give 0.75. Identical rows
    with different labels are also the normal state of tables with few, coarse
    columns; the default scan runs :class:`RelabelledTwinDetector` (``duplicates``),
    which first tests whether the table's twins conflict more than its near neighbours.

    Parameters
    ----------
    tolerance : float, default=0.05
    max_duplicates : int, default=10
        How many nearest rows are examined.
    """

    name = "duplicate_conflicts"
    needs_label = True
    family = "duplicate"
    score_kind = "probability"
    summary = "exact and near duplicates with conflicting labels (no presence test)"
    in_default_scan = False

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


@dataclass(frozen=True)
class TwinPresence:
    """The twin presence test: do the table's (near-)twins disagree more than its near neighbours?

    Attributes
    ----------
    n_twin_rows : int
        Rows with a (near-)twin and at least two other neighbours (the rows tested).
    n_conflicting : int
        Of those, rows whose nearest twin carries another label.
    conflict_rate : float
        ``n_conflicting / n_twin_rows``.
    expected_rate : float
        The same rows' mean chance that two of their nearest non-twin neighbours carry
        different labels: how often two rows at that spot disagree naturally.
    p_value : float
        One-sided binomial p-value of ``n_conflicting`` at ``expected_rate``.
    present : bool
        The decision (see :func:`twin_presence`).
    detail : str
        One human sentence.
    """

    n_twin_rows: int
    n_conflicting: int
    conflict_rate: float
    expected_rate: float
    p_value: float
    present: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def twin_presence(y: np.ndarray, indices: np.ndarray, twin: np.ndarray) -> TwinPresence:
    """Test whether relabelled copies are present: twins that disagree far more often than neighbours do.

    Parameters
    ----------
    y : ndarray of int, shape (n,)
    indices : ndarray of int, shape (n, k)
        Each row's ``k`` nearest other rows, nearest first.
    twin : ndarray of bool, shape (n, k)
        Which of them are (near-)twins of the row.

    Notes
    -----
    Two identical rows are two draws of a label at one point of feature space, so
    naturally they disagree about as often as two rows drawn from that point's
    neighbourhood: ``1 - sum_c q_c (n q_c - 1) / (n - 1)`` over the shares ``q_c`` of the
    ``n`` non-twin neighbours (an unbiased estimate). On coarse tables (river's
    Phishing, statsmodels' fair) the nearest twin disagrees at or near that rate. A
    relabelled copy disagrees with its source row always. The table is judged to hold
    relabelled copies when at least ``MIN_TWIN_CONFLICTS`` rows have a conflicting
    nearest twin, their share is at least halfway from the expected rate to 1 (a
    clear excess, not a drift of the rate: twins of coarse tables are not perfectly
    comparable with their neighbours), and the binomial p-value is at most ``TWIN_ALPHA``.
    """
    y = np.asarray(y)
    k_cls = int(y.max()) + 1 if y.size else 1
    labels = y[indices]
    other = ~twin
    m = other.sum(axis=1)
    counts = np.stack([((labels == c) & other).sum(axis=1) for c in range(k_cls)], axis=1).astype(np.float64)
    tested = twin[:, 0] & (m >= 2)
    n = int(tested.sum())
    if n == 0:
        return TwinPresence(0, 0, 0.0, 0.0, 1.0, False, "no row has a (near-)twin")
    mm = m[tested].astype(np.float64)
    same = (counts[tested] * (counts[tested] - 1)).sum(axis=1) / (mm * (mm - 1))
    expected = float(np.clip(np.mean(1.0 - same), 1e-6, 1.0 - 1e-6))
    conflicting = int((labels[tested, 0] != y[tested]).sum())
    rate = conflicting / n
    p_value = float(binom.sf(conflicting - 1, n, expected)) if conflicting else 1.0
    present = conflicting >= MIN_TWIN_CONFLICTS and rate >= (1.0 + expected) / 2 and p_value <= TWIN_ALPHA
    verdict = "relabelled copies present" if present else "no excess of conflicting twins"
    detail = (f"{verdict}: {conflicting} of {n} rows with a twin disagree with it (rate {rate:.2f}); two rows "
              f"at those spots disagree at rate {expected:.2f} (binomial p = {p_value:.2g}, level {TWIN_ALPHA:g})")
    return TwinPresence(n, conflicting, float(rate), expected, p_value, bool(present), detail)


@register
class RelabelledTwinDetector(DuplicateConflictDetector):
    """Conflicting (near-)duplicates, scored after a presence test of relabelled copies.

    The twin presence test (:func:`twin_presence`) asks whether the table's twins
    disagree far more often than two rows at the same spot naturally do. When it
    finds relabelled copies, a row with ``c`` conflicting and ``a`` agreeing twins
    scores ``0.5 + 0.5 c / (c + a + 1)`` (at least 0.75) when its label is clearly
    less common among its non-twin neighbours than a conflicting twin's label (the
    relabelled copy of a pair), and 0.5 otherwise (the source row, or either twin when
    both labels are about as common there). When it does not, ``0.5 c / (c + a + 1)``: below 0.5, a conflict that may
    be natural. The scan flags a suspect twin only when the label detectors also
    find its label less likely than not.

    Parameters
    ----------
    tolerance : float, default=0.05
    max_duplicates : int, default=10
        How many nearest rows are examined for twins.
    n_neighbors : int, default=20
        Nearest rows examined in all: the non-twins among them give the natural
        disagreement rate of the presence test.
    """

    name = "duplicates"
    summary = "exact and near duplicates with conflicting labels, after a presence test of relabelled copies"
    in_default_scan = True

    def __init__(self, *, tolerance: float = 0.05, max_duplicates: int = 10, n_neighbors: int = 20) -> None:
        super().__init__(tolerance=tolerance, max_duplicates=max_duplicates)
        self.n_neighbors = n_neighbors

    def _validate_params(self) -> None:
        super()._validate_params()
        if int(self.n_neighbors) < 3:
            raise ConfigError(f"duplicates: n_neighbors must be >= 3, got {self.n_neighbors}")

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        super()._fit(X, y)
        nb = self_neighbours(X, max(int(self.n_neighbors), int(self.max_duplicates)))
        twin = nb.distances <= self.radius_ + 1e-12
        self.presence_ = twin_presence(y, nb.indices, twin)
        self.report_ = {"twin_presence": self.presence_.to_dict()}

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        share = super()._score(X, y, is_fit_data)
        if not self.presence_.present:
            return 0.5 * share
        return np.where(share > 0, np.where(self._less_supported(X, y, is_fit_data), 0.5 + 0.5 * share, 0.5), 0.0)

    def _less_supported(self, X: np.ndarray, y: np.ndarray, is_fit_data: bool) -> np.ndarray:
        """Per row: is its label clearly less common among its non-twin neighbours than a conflicting twin's?

        Of a relabelled copy and its source row, the source's label is the one the
        neighbourhood shares. "Clearly": the rival label's count exceeds the row's own
        by at least one vote and by ``sqrt(rival + own)``, about one standard deviation
        of the difference of two counts that differ by chance; where both labels are
        about as common (a copy given a label that is common there) neither twin is named.
        """
        k = max(int(self.n_neighbors), int(self.max_duplicates))
        nb = self_neighbours(X, k) if is_fit_data else query_neighbours(self.X_ref_, X, k)
        labels = self.y_ref_[nb.indices]
        twin = nb.distances <= self.radius_ + 1e-12
        other = ~twin
        own = ((labels == y[:, None]) & other).sum(axis=1)
        rival = np.zeros(y.shape[0], dtype=np.int64)
        for t in range(labels.shape[1]):
            conflicting = twin[:, t] & (labels[:, t] != y)
            if conflicting.any():
                support = ((labels == labels[:, t][:, None]) & other).sum(axis=1)
                rival = np.where(conflicting, np.maximum(rival, support), rival)
        return (rival - own) >= np.maximum(1.0, np.sqrt(rival + own))
