"""k-nearest-neighbour label disagreement on standardized features."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from ._base import BaseDetector, register
from ._neighbors import query_neighbours, self_neighbours
from ._noise_level import check_noise_rate, resolve_noise_rate

__all__ = ["KNNLabelDetector"]


@register
class KNNLabelDetector(BaseDetector):
    """Share of a row's nearest neighbours whose label differs from its own (ties broken by rank).

    A flipped label sits among rows of its true class, so most neighbours disagree.
    On the training matrix itself the row is left out of its own neighbourhood.

    Parameters
    ----------
    n_neighbors : int, default=20
        20 rather than 10: measured on digits, breast_cancer and wine with 10% flips,
        the larger vote ranks flips better (e.g. breast_cancer AUROC 0.974 -> 0.982).
    noise_rate : float or "auto", default="auto"
        The vote share ``q`` of the row's label estimates the *noisy* label's
        probability; under the symmetric noise channel that ``confident`` assumes it is
        turned into the true class's probability ``p = (q - r / (K - 1)) / (1 - r - r / (K - 1))``
        (clipped to [0, 1]), and the score is ``1 - p``. ``"auto"`` estimates ``r``
        from the table's purest neighbourhoods (:func:`~._noise_level.estimate_noise_rate`,
        at most 0.1; the value used is ``noise_rate_``): a fixed 0.1 turned every
        row whose label is 1 in 10 around it into a near-certain error, which real
        tables' natural minorities are (Titanic's male survivors). The order of rows is unchanged;
        the two label detectors then estimate the same quantity, so the label group's
        mixture compares like with like (breast_cancer 10% flips, seed 0: scan AUROC
        0.980 -> 0.986; other tables within +-0.0005). 0 gives the plain disagreement share.
    rank_weighted : bool, default=True
        Break the plain vote's ties by rank: of two rows with the same share of agreeing
        neighbours, the one whose agreeing neighbours are farther (the ``j``-th nearest
        counting ``1 / sqrt(j)``) gets the lower share (:func:`_vote_share`). A plain vote
        takes only ``n_neighbors + 1`` values, and the label group's mixture otherwise
        breaks its ties by ``confident`` alone, which on tables a linear model cannot
        separate ranks flips worse than chance (generated boundary flips: ``confident``
        AUROC 0.345; scan 0.714 -> 0.751; targeted flips 0.910 -> 0.918). The share
        moves down by at most ``TIE_BREAK / n_neighbors``, far under the step between two
        plain shares, so no row passes another of a different plain share, and the
        probabilities the presence tests and flag rules read move by < 0.001: the clean
        tables of ``bench_label_fusion`` (both sets) flag the same rows but one.
        The rank-weighted share *itself* (an effective width of about 14 of 20
        neighbours) ranked flips better on small tables (cars, 2% flips: 0.869 -> 0.919)
        but is noisier: clean river Bananas went from 0.13% to 1.08% of its rows
        flagged, clean Phishing from 0 to 0.96%; a tie-break of ``0.1 / n_neighbors`` also
        tipped Bananas's and Phishing's presence tests (benchmarks/results/label_knn_vote.md).
        ``False`` gives the plain share.
    """

    name = "knn_label"
    needs_label = True
    family = "label"
    score_kind = "probability"
    summary = "label disagreement among the k nearest neighbours (label flips)"

    def __init__(self, *, n_neighbors: int = 20, noise_rate: float | str = "auto", rank_weighted: bool = True) -> None:
        self.n_neighbors = n_neighbors
        self.noise_rate = noise_rate
        self.rank_weighted = rank_weighted

    def _validate_params(self) -> None:
        if int(self.n_neighbors) < 1:
            raise ConfigError(f"knn_label: n_neighbors must be >= 1, got {self.n_neighbors}")
        check_noise_rate("knn_label", self.noise_rate)

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        self.X_ref_ = X
        self.y_ref_ = y
        self.n_classes_ = int(y.max()) + 1 if y is not None else 0
        self.noise_rate_ = resolve_noise_rate(self.noise_rate, X, y) if y is not None else 0.0

    def _neigh(self, X: np.ndarray, is_fit_data: bool) -> np.ndarray:
        k = int(self.n_neighbors)
        nb = self_neighbours(X, k) if is_fit_data else query_neighbours(self.X_ref_, X, k)
        return nb.indices

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        labels = self.y_ref_[self._neigh(X, is_fit_data)]
        q = _vote_share(labels == y[:, None], rank_weighted=bool(self.rank_weighted))
        r, k = float(self.noise_rate_), max(self.n_classes_, 2)
        p = np.clip((q - r / (k - 1)) / (1.0 - r - r / (k - 1)), 0.0, 1.0)
        return 1.0 - p

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        neigh = self._neigh(X, True)[rows] if is_fit_data else self._neigh(X[rows], False)
        labels = self.y_ref_[neigh]
        k = labels.shape[1]
        n_dis = (labels != y[rows][:, None]).sum(axis=1)
        major, major_count = _row_majority(labels)
        out = []
        for r, dis, maj, cnt in zip(rows.tolist(), n_dis.tolist(), major.tolist(), major_count.tolist()):
            out.append((
                f"label {{label:{int(y[r])}}}, but {dis} of its {k} nearest neighbours are labelled otherwise "
                f"(most common: {{label:{maj}}}, {cnt} of {k})",
                {"disagreeing": dis, "k": k, "majority_label": maj, "majority_count": cnt},
            ))
        return out


#: how far (in units of one neighbour's plain vote) the rank-weighted share may move the plain share
TIE_BREAK = 0.01


def _vote_share(agree: np.ndarray, *, rank_weighted: bool) -> np.ndarray:
    """Per row, the share of its neighbours (nearest first) that agree with its label, ties broken by rank.

    With ``rank_weighted``, a row with ``a`` of ``k`` agreeing neighbours keeps the plain
    share ``a / k`` when they are its ``a`` nearest, and loses up to ``TIE_BREAK / k`` as
    they lie farther: ``TIE_BREAK / k * (hi - s) / (hi - lo)``, ``s`` the share with the
    ``j``-th nearest weighted ``1 / sqrt(j)``, ``hi`` and ``lo`` its largest and smallest
    value for ``a`` agreeing neighbours. That is far under the step ``1 / k`` between
    plain shares, so the plain order is kept and only its ties are broken; unanimous
    votes keep their exact share; and no share goes *up*, so a row at a plain share
    exactly on a rule's line (a two-class vote of 10 of 20 is P(label correct) =
    ``LABEL_CAP`` = 0.5) stays on its side. A two-sided shift moved half of those rows
    above the line on river's Bananas, which cut a class's doubtful rows from 323 to
    308 and tipped its presence test (clean table: 0.13% -> 1.17% of rows flagged).
    """
    plain = agree.mean(axis=1)
    k = agree.shape[1]
    if not rank_weighted or k == 0:
        return plain
    w = 1.0 / np.sqrt(np.arange(1, k + 1, dtype=np.float64))
    cum = np.r_[0.0, np.cumsum(w)]
    a = agree.sum(axis=1)
    hi, lo = cum[a], cum[k] - cum[k - a]  # the a nearest agree / the a farthest agree
    span = hi - lo
    frac = np.divide(hi - agree @ w, span, out=np.zeros(plain.shape), where=span > 1e-12)
    return plain - (TIE_BREAK / k) * np.clip(frac, 0.0, 1.0)


#: label-count cells per chunk of rows in ``_row_majority`` (bounds its temporary)
_COUNT_CELLS = 1 << 22


def _row_majority(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Most common value of each row of non-negative int ``labels`` and its count (ties: the smallest value).

    One ``bincount`` over row-offset labels per chunk of rows, instead of ``np.unique``
    per row (a million-row scan explains tens of thousands of rows).
    """
    n, k = labels.shape
    n_values = int(labels.max()) + 1 if labels.size else 1
    major = np.zeros(n, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    step = max(1, _COUNT_CELLS // n_values)
    for r0 in range(0, n, step):
        part = labels[r0:r0 + step].astype(np.int64)
        m = part.shape[0]
        counts = np.bincount((part + n_values * np.arange(m)[:, None]).ravel(), minlength=m * n_values)
        counts = counts.reshape(m, n_values)
        major[r0:r0 + m] = counts.argmax(axis=1)  # the first maximum: the smallest value among ties
        count[r0:r0 + m] = counts.max(axis=1)
    return major, count
