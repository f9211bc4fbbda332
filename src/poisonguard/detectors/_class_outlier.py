"""Class-conditional outliers: rows far from the other rows of their own labelled class."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.covariance import LedoitWolf

from ..errors import ConfigError
from ._base import BaseDetector, register

__all__ = ["ClassOutlierDetector"]


@register
class ClassOutlierDetector(BaseDetector):
    """Mahalanobis distance of a row to its labelled class, under a shrunk covariance.

    Each class gets a Gaussian with a Ledoit-Wolf covariance (stable with few rows
    per class). The score is the squared distance divided by its median within the
    class, so classes of different spread are comparable. A flipped row sits far
    from its labelled class; an injected row sits far from every class.

    Parameters
    ----------
    max_components : int, default=32
        Features are first projected on this many principal components, which keeps
        the covariance estimate stable on wide tables (e.g. exported embeddings).
    """

    name = "class_outlier"
    needs_label = True
    family = "label"
    summary = "Mahalanobis outliers within their own labelled class (flips, injected rows)"
    # Not in the default scan: within-class distances are heavy-tailed on real tables
    # (digits: 21 clean rows past the anomaly cut), so it adds false flags, while the
    # rows it finds are already found by knn_label/confident (flips) and iforest
    # (injected rows). Run it with --detectors when classes are compact.
    in_default_scan = False

    def __init__(self, *, max_components: int = 32) -> None:
        self.max_components = max_components

    def _validate_params(self) -> None:
        if int(self.max_components) < 1:
            raise ConfigError(f"class_outlier: max_components must be >= 1, got {self.max_components}")

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        assert y is not None
        self.mean_ = X.mean(axis=0)
        k = min(int(self.max_components), X.shape[1], X.shape[0])
        # principal axes from an SVD of the centred data (no sklearn PCA: we need only components)
        _, _, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        self.components_ = vt[:k]
        Z = self._project(X)
        self.classes_ = np.unique(y)
        self.centres_: dict[int, np.ndarray] = {}
        self.precisions_: dict[int, np.ndarray] = {}
        self.medians_: dict[int, float] = {}
        for c in self.classes_:
            Zc = Z[y == c]
            centre = np.median(Zc, axis=0) if Zc.shape[0] >= 3 else Zc.mean(axis=0)
            if Zc.shape[0] >= 3:
                cov = LedoitWolf().fit(Zc - centre).covariance_
            else:
                cov = np.cov(Z, rowvar=False).reshape(Z.shape[1], Z.shape[1])
            prec = np.linalg.pinv(cov + 1e-6 * np.eye(cov.shape[0]))
            d2 = self._d2(Zc, centre, prec)
            self.centres_[int(c)] = centre
            self.precisions_[int(c)] = prec
            self.medians_[int(c)] = float(max(np.median(d2), 1e-9))

    def _project(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) @ self.components_.T

    @staticmethod
    def _d2(Z: np.ndarray, centre: np.ndarray, prec: np.ndarray) -> np.ndarray:
        D = Z - centre
        return np.einsum("ij,jk,ik->i", D, prec, D)

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        Z = self._project(X)
        out = np.empty(X.shape[0])
        for c in np.unique(y):
            m = y == c
            if int(c) not in self.centres_:  # a label never seen in fit: maximally out of place
                out[m] = np.inf
                continue
            out[m] = self._d2(Z[m], self.centres_[int(c)], self.precisions_[int(c)]) / self.medians_[int(c)]
        finite = np.isfinite(out)
        if not finite.all():
            out[~finite] = (out[finite].max() if finite.any() else 0.0) * 10 + 10
        return np.log1p(out)

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        Z = self._project(X[rows])
        keys = sorted(self.centres_)
        ratios = np.stack([self._d2(Z, self.centres_[k], self.precisions_[k]) / self.medians_[k] for k in keys], axis=1)
        out = []
        for i, r in enumerate(rows):
            ratio = float(np.expm1(scores[r]))
            c = int(y[r])
            nearest = keys[int(np.argmin(ratios[i]))]
            extra = f"; it is closest to class {{label:{nearest}}}" if nearest != c else ""
            out.append((
                f"{ratio:.1f}x the typical distance from the rows labelled {{label:{c}}}{extra}",
                {"distance_ratio": ratio, "closest_class": int(nearest)},
            ))
        return out
