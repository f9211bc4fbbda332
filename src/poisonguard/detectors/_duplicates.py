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
           "class_support", "TWIN_ALPHA", "TWIN_RANK_ALPHA", "MIN_TWIN_CONFLICTS"]

#: level of the twin presence test (one test per table)
TWIN_ALPHA = 1e-3
#: level at which the same clear excess only ranks the conflicting twins (no twin is named or
#: flagged): a few relabelled copies on a table without natural twins (4 of 410 rows) give a
#: binomial p of 1e-3 to 1e-2, and their conflicts were ranked under the label group's doubt
TWIN_RANK_ALPHA = 0.05
#: a table needs at least this many lone dissenters among its twins to be judged poisoned
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
        The tested rows' mean chance of a lone dissenter's pattern (``n_lone``) when the
        row and its twins are drawn from the labels of their nearest non-twin
        neighbours: how often it arises naturally.
    p_value : float
        One-sided binomial p-value of ``n_lone`` at ``expected_rate``.
    present : bool
        The decision (see :func:`twin_presence`).
    ranked : bool
        Present, or the same clear excess at the looser level ``TWIN_RANK_ALPHA``: the
        conflicting twins are ranked as evidence, but only a present test names a suspect.
    detail : str
        One human sentence.
    n_lone : int
        Rows that look like a relabelled copy (the count tested): none of their twins
        carries their label, and all of them carry one other label.
    """

    n_twin_rows: int
    n_conflicting: int
    conflict_rate: float
    expected_rate: float
    p_value: float
    present: bool
    detail: str
    ranked: bool = False
    n_lone: int = 0

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
    Identical rows are draws of a label at one point of feature space, so naturally
    their labels split about as the labels of rows drawn from that point's
    neighbourhood do. A relabelled copy has the pattern of a lone dissenter: its label
    is carried by none of its twins, which all carry its source's label. A row with
    ``t`` twins shows that pattern naturally with probability
    ``sum_a q_a sum_{b != a} q_b^t`` over the label shares ``q`` of its ``n`` non-twin
    neighbours (estimated without bias by falling factorials of the counts; for one
    twin ``1 - sum_c q_c (n q_c - 1) / (n - 1)``, the chance that two rows there
    disagree). Counting the pattern, not any disagreement with the nearest twin, keeps
    twins that hold several labels by design out of the count: the runs of a factorial
    experiment at each level of the label (rpart's solder) disagree with their nearest
    twin far more often than neighbours do, but no run is a lone dissenter. On coarse
    tables (river's Phishing, statsmodels' fair) the pattern arises at about its
    natural rate. The table is judged to hold relabelled copies when at least
    ``MIN_TWIN_CONFLICTS`` rows show it, their share is at least halfway from the
    expected rate to 1 (a clear excess, not a drift of the rate: twins of coarse tables
    are not perfectly comparable with their neighbours), and the binomial p-value is at
    most ``TWIN_ALPHA``; with the same excess at ``TWIN_RANK_ALPHA`` the conflicts are
    ranked but not flagged (``ranked``).
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
    in_twins = np.stack([((labels == c) & twin).sum(axis=1) for c in range(k_cls)], axis=1)
    n_twins = twin.sum(axis=1)
    lone = (in_twins[np.arange(y.size), y] == 0) & (in_twins.max(axis=1) == n_twins)
    expected = float(np.clip(np.mean(_lone_chance(counts[tested], m[tested], n_twins[tested])), 1e-6, 1.0 - 1e-6))
    n_lone = int(lone[tested].sum())
    conflicting = int((labels[tested, 0] != y[tested]).sum())
    rate = n_lone / n
    p_value = float(binom.sf(n_lone - 1, n, expected)) if n_lone else 1.0
    excess = n_lone >= MIN_TWIN_CONFLICTS and rate >= (1.0 + expected) / 2
    present = excess and p_value <= TWIN_ALPHA
    ranked = excess and p_value <= TWIN_RANK_ALPHA
    verdict = ("relabelled copies present" if present else
               "an excess of conflicting twins below the presence level (ranked, not flagged)" if ranked else
               "no excess of conflicting twins")
    detail = (f"{verdict}: {n_lone} of {n} rows with a twin carry a label none of their twins carries, "
              f"the twins all another (rate {rate:.2f}; {conflicting} disagree with their nearest twin); rows at "
              f"those spots do so at rate {expected:.2f} (binomial p = {p_value:.2g}, level {TWIN_ALPHA:g})")
    return TwinPresence(n, conflicting, float(conflicting / n), expected, p_value, bool(present), detail,
                        bool(ranked), n_lone)


def _lone_chance(counts: np.ndarray, m: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per row: the chance that a row and its ``t`` twins, drawn from its ``m`` non-twin neighbours'
    labels (``counts``), show a lone dissenter: ``sum_a q_a sum_{b != a} q_b^t``.

    Unbiased for draws without replacement from the neighbours (falling factorials);
    ``t`` is capped at ``m - 1``, the most the neighbours can estimate.
    """
    counts = np.asarray(counts, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    t = np.minimum(np.asarray(t, dtype=np.int64), m.astype(np.int64) - 1)
    # falling factorials c (c - 1) ... (c - t + 1) / (m - 1) ... (m - t) of each label's count
    fall = np.ones_like(counts)
    for i in range(int(t.max(initial=0))):
        on = (i < t)[:, None]
        fall = np.where(on, fall * np.clip(counts - i, 0.0, None) / np.maximum(m - 1 - i, 1.0)[:, None], fall)
    q = counts / np.maximum(m, 1.0)[:, None]
    return (q * (fall.sum(axis=1, keepdims=True) - fall)).sum(axis=1)


@register
class RelabelledTwinDetector(DuplicateConflictDetector):
    """Conflicting (near-)duplicates, scored after a presence test of relabelled copies.

    The twin presence test (:func:`twin_presence`) asks whether the table's twins
    disagree far more often than two rows at the same spot naturally do. When it
    finds relabelled copies, a row with ``c`` conflicting and ``a`` agreeing twins
    scores ``0.5 + 0.5 c / (c + a + 1)`` (at least 0.75) when its label is clearly
    less common among its non-twin neighbours than a conflicting twin's label (the
    relabelled copy of a pair), and 0.5 otherwise (the source row, or either twin when
    both labels are about as common there; support is weighed relative to how well
    each class is supported anywhere, see :meth:`_less_supported`). When the test finds
    the same clear excess only at ``TWIN_RANK_ALPHA`` (``ranked``), every conflicting twin
    scores 0.5: the scan ranks it with the label group's doubt but flags none. Otherwise
    ``0.5 c / (c + a + 1)``: below 0.5, a conflict that may be natural. The scan flags a
    suspect twin only when the label detectors also find its label less likely than not.

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
        self.class_support_ = class_support(y, nb.indices, twin)
        self.report_ = {"twin_presence": self.presence_.to_dict(),
                        "class_support": [float(v) for v in self.class_support_]}

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        share = super()._score(X, y, is_fit_data)
        if not self.presence_.present:
            # an excess short of the presence level: every conflicting twin sits at the
            # threshold (ranked by the scan with the label group's doubt, never flagged)
            return np.where(share > 0, 0.5, 0.0) if self.presence_.ranked else 0.5 * share
        return np.where(share > 0, np.where(self._less_supported(X, y, is_fit_data), 0.5 + 0.5 * share, 0.5), 0.0)

    def _less_supported(self, X: np.ndarray, y: np.ndarray, is_fit_data: bool) -> np.ndarray:
        """Per row: is its label clearly less supported among its non-twin neighbours than a conflicting twin's?

        Of a relabelled copy and its source row, the source's label is the one the
        neighbourhood shares. Support is counted relative to how well each class is
        supported where its own rows lie (:func:`class_support`): a vote for a class
        whose rows rarely have neighbours of their class (a rare class the features
        explain weakly, drizzle among Seattle's weather) counts for more, so a row of
        such a class is not named merely because its twin's common label outvotes it;
        counting raw votes named the source rows of copies taken from the rare class
        (class damage). "Clearly": the rival label's weighted count exceeds the row's own
        by at least one vote and by ``sqrt(rival + own)``, about one standard deviation
        of the difference of two counts that differ by chance; where both labels are
        about as supported (a copy given a label that is common there) neither twin is named.
        """
        k = max(int(self.n_neighbors), int(self.max_duplicates))
        nb = self_neighbours(X, k) if is_fit_data else query_neighbours(self.X_ref_, X, k)
        labels = self.y_ref_[nb.indices]
        twin = nb.distances <= self.radius_ + 1e-12
        other = ~twin
        weight = _support_weights(self.class_support_, int(max(labels.max(initial=0), y.max(initial=0))) + 1)
        own = ((labels == y[:, None]) & other).sum(axis=1) * weight[y]
        rival = np.zeros(y.shape[0], dtype=np.float64)
        for t in range(labels.shape[1]):
            conflicting = twin[:, t] & (labels[:, t] != y)
            if conflicting.any():
                support = ((labels == labels[:, t][:, None]) & other).sum(axis=1) * weight[labels[:, t]]
                rival = np.where(conflicting, np.maximum(rival, support), rival)
        return (rival - own) >= np.maximum(1.0, np.sqrt(rival + own))


def class_support(y: np.ndarray, indices: np.ndarray, twin: np.ndarray) -> np.ndarray:
    """Per class: the mean share of its rows' non-twin neighbours that carry the class.

    How well the features place a class's rows among their own: near 1 for a class
    that forms its own region, near its prior share for a class the features do not
    explain. A class without rows (or whose rows have no non-twin neighbour) gets 0.
    """
    y = np.asarray(y)
    k_cls = int(y.max()) + 1 if y.size else 1
    other = ~twin
    m = other.sum(axis=1)
    own = ((y[indices] == y[:, None]) & other).sum(axis=1)
    ok = m > 0
    share = np.where(ok, own / np.maximum(m, 1), 0.0)
    total = np.bincount(y[ok], weights=share[ok], minlength=k_cls)
    rows = np.bincount(y[ok], minlength=k_cls)
    return np.where(rows > 0, total / np.maximum(rows, 1), 0.0)


def _support_weights(support: np.ndarray, n_classes: int) -> np.ndarray:
    """Weights that put each class's neighbour votes on the scale of the table's mean support.

    ``mean / support_c``, with a class's support floored at a tenth of the mean (one
    class without support must not outweigh every other vote) and 1 for classes
    that were not in the fitted table.
    """
    s = np.asarray(support, dtype=np.float64)
    w = np.ones(max(int(n_classes), s.size))
    present = s > 0
    if present.any():
        mean = float(s[present].mean())
        w[: s.size] = np.where(present, mean / np.maximum(s, 0.1 * mean), 1.0)
    return w
