"""Predicted labels with a confidence, for every model kind of the safe format."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..training import TrainedModel

__all__ = ["predict_with_confidence"]


def _softmax(scores: np.ndarray) -> np.ndarray:
    # absent classes carry a bias of -inf: exp(-inf) = 0 keeps them at probability 0
    z = scores - np.max(scores, axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def class_probabilities(model: TrainedModel, data: Any) -> np.ndarray:
    """``(n_rows, n_classes)`` probabilities; certified ensembles give their vote shares."""
    n_classes = len(model.classes)
    if model.certified:
        counts = model.vote_counts(data).astype(np.float64)
        return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    frame = model._frame(data)
    assert model.encoder is not None
    X = model.encoder.transform(frame)
    if model.kind == "sklearn-linear":
        return _softmax(model.estimator.scores(X))
    if model.kind == "torch":
        from ..training._torch import torch_scores

        return _softmax(torch_scores(model.estimator, X))
    est = model.estimator
    out = np.zeros((X.shape[0], n_classes))
    if hasattr(est, "predict_proba"):
        out[:, np.asarray(est.classes_, dtype=np.int64)] = est.predict_proba(X)
    else:  # a hard classifier: all mass on its prediction
        out[np.arange(X.shape[0]), np.asarray(est.predict(X), dtype=np.int64)] = 1.0
    return out


def predict_with_confidence(model: TrainedModel, data: Any) -> tuple[np.ndarray, np.ndarray]:
    """Predicted labels (original values) and the probability given to each."""
    p = class_probabilities(model, data)
    codes = np.argmax(p, axis=1)
    return model.classes[codes], p[np.arange(p.shape[0]), codes]
