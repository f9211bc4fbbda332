"""Reference detectors ("anchors") scored side by side with poisonguard's scan.

Each anchor maps the encoded, standardized feature matrix ``X`` and the label codes
``y`` to one suspicion score per row (higher = more suspicious). An anchor whose
package is not installed is reported as ``n/a (not installed)``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["Anchor", "ANCHORS", "anchor_available"]


@dataclass(frozen=True)
class Anchor:
    """A reference detector.

    Attributes
    ----------
    name : str
        Short key used in results (``iforest``, ``cleanlab``, ``ecod``, ``knn10``).
    title : str
        Column title in the markdown table.
    requires : str or None
        Top-level package it needs (``None``: only scikit-learn).
    score : callable
        ``score(X, y, seed) -> ndarray`` of suspicion per row.
    """

    name: str
    title: str
    requires: str | None
    score: Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def _iforest(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.ensemble import IsolationForest

    model = IsolationForest(contamination=0.01, random_state=seed).fit(X)
    return -model.score_samples(X)


def _cleanlab(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    from cleanlab.rank import get_label_quality_scores
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    n_splits = int(min(5, np.bincount(y).min())) if np.bincount(y).min() >= 2 else 2
    cv = StratifiedKFold(n_splits=max(2, n_splits), shuffle=True, random_state=seed)
    probs = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=cv, method="predict_proba")
    return 1.0 - get_label_quality_scores(y, probs)


def _ecod(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    from pyod.models.ecod import ECOD

    return np.asarray(ECOD().fit(X).decision_scores_, dtype=float)


def _knn10(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Fraction of the 10 nearest neighbours (the row itself left out) with another label."""
    from sklearn.neighbors import NearestNeighbors

    k = min(10, X.shape[0] - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    rows = np.arange(X.shape[0])[:, None]
    # drop the row itself; with exact duplicates it may not come first, so drop it by id
    not_self = idx != rows
    keep = np.where(not_self.all(axis=1)[:, None], np.arange(k + 1)[None, :] < k, not_self)
    neigh = idx[keep].reshape(X.shape[0], k)
    return (y[neigh] != y[:, None]).mean(axis=1)


#: The anchors, in the order of the table's columns.
ANCHORS: tuple[Anchor, ...] = (
    Anchor("iforest", "IForest", None, _iforest),
    Anchor("cleanlab", "cleanlab", "cleanlab", _cleanlab),
    Anchor("ecod", "ECOD", "pyod", _ecod),
    Anchor("knn10", "10-NN vote", None, _knn10),
)


def anchor_available(anchor: Anchor) -> bool:
    """Whether the anchor's package can be imported."""
    return anchor.requires is None or importlib.util.find_spec(anchor.requires) is not None
