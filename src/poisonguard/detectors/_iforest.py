"""Isolation Forest over the features: the classic baseline, good at injected outliers."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.utils.parallel import Parallel, delayed

from ..errors import ConfigError
from ._base import BaseDetector, register

__all__ = ["IsolationForestDetector"]

#: rows per scoring block; blocks are scored on parallel threads (the trees release the GIL)
_SCORE_BLOCK = 1 << 16
#: rows behind the robust centre and spread quoted in explanations
_PROFILE_ROWS = 100_000


@register
class IsolationForestDetector(BaseDetector):
    """Isolation Forest anomaly score (higher = easier to isolate).

    It cannot see label flips (a flipped row is not an outlier in feature space) and
    is kept for injected outliers and as the baseline users reach for first.

    Parameters
    ----------
    n_estimators : int, default=200
    max_samples : int, default=256
    random_state : int, default=0
    """

    name = "iforest"
    family = "outlier"
    summary = "Isolation Forest over the features (injected outliers; the usual baseline)"

    def __init__(self, *, n_estimators: int = 200, max_samples: int = 256, random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state

    def _validate_params(self) -> None:
        if int(self.n_estimators) < 1:
            raise ConfigError(f"iforest: n_estimators must be >= 1, got {self.n_estimators}")
        if int(self.max_samples) < 2:
            raise ConfigError(f"iforest: max_samples must be >= 2, got {self.max_samples}")

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        self.forest_ = IsolationForest(
            n_estimators=int(self.n_estimators),
            max_samples=min(int(self.max_samples), X.shape[0]),
            random_state=self.random_state,
            n_jobs=1,
        ).fit(X)
        # only explanations quote these: a seeded sample of a big table gives them to ~0.01 SD
        # without sorting every column of it
        ref = X
        if X.shape[0] > _PROFILE_ROWS:
            ref = X[np.sort(np.random.default_rng(0).choice(X.shape[0], _PROFILE_ROWS, replace=False))]
        self.centre_ = np.median(ref, axis=0).astype(np.float64)
        self.spread_ = _spread(np.asarray(ref, dtype=np.float64), self.centre_)

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        # Blocks of rows on threads: each row's score is the same sum over the trees in the
        # same order whatever the blocks, so the result does not depend on the threads.
        if X.shape[0] <= _SCORE_BLOCK:
            return -self.forest_.score_samples(X)
        starts = range(0, X.shape[0], _SCORE_BLOCK)
        workers = max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1, 4))
        parts = Parallel(n_jobs=workers, prefer="threads")(
            delayed(self.forest_.score_samples)(X[r0:r0 + _SCORE_BLOCK]) for r0 in starts)
        return -np.concatenate(parts)

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        Z = (np.asarray(X[rows], dtype=np.float64) - self.centre_) / self.spread_
        top = np.argsort(-np.abs(Z), axis=1, kind="stable")[:, :3]  # one sort for all rows
        top_z = np.take_along_axis(Z, top, axis=1)
        out = []
        for r, feats_j, feats_z in zip(rows.tolist(), top.tolist(), top_z.tolist()):
            feats = {int(j): round(float(z), 1) for j, z in zip(feats_j, feats_z)}
            desc = ", ".join(f"{{feature:{j}}} at {v:+.1f} robust SD" for j, v in feats.items())
            out.append((f"isolated quickly by the forest (anomaly score {scores[r]:.3f}); most extreme: {desc}",
                        {"anomaly_score": float(scores[r]), "robust_z": feats}))
        return out


def _spread(ref: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Per column, the scale explanations divide by: the robust SD, else the SD, else infinity.

    A column that is mostly one value (a one-hot level, a missing-value indicator, a rare
    code) has a median absolute deviation of 0, and a row off that value read as billions
    of robust SDs ("division_id=W at +2415453970.4"). Such a column falls back to its
    standard deviation (a level that 1% of rows carry: about 10 SD); a constant column to
    infinity, so it is never quoted as extreme.
    """
    mad = np.median(np.abs(ref - centre), axis=0) * 1.4826
    sd = ref.std(axis=0)
    return np.where(mad > 1e-12, mad, np.where(sd > 1e-12, sd, np.inf))
