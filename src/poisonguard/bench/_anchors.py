"""Reference detectors ("anchors") scored side by side with poisonguard's scan.

Each anchor maps the encoded, standardized feature matrix ``X`` and the label codes
``y`` to one suspicion score per row (higher = more suspicious). An anchor whose
package is not installed is reported as ``n/a (not installed)``.

Every anchor declares the benchmarks it takes part in (:attr:`Anchor.benches`);
:func:`anchors_for` selects them. IBM ART's two poisoning defences (``art_ac``,
``art_spectral``) train a small network per cell, so they run in the backdoor
benchmark only and are left out of the scan benchmark's (already wide) table.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._optional import import_optional
from ..errors import ConfigError, DetectorFailedError

__all__ = ["Anchor", "ANCHORS", "BENCHES", "anchor_available", "anchors_for"]

#: Benchmarks that select anchors: ``benchmarks/bench_scan.py`` and ``benchmarks/bench_backdoor.py``.
BENCHES: tuple[str, ...] = ("scan", "backdoor")


@dataclass(frozen=True)
class Anchor:
    """A reference detector.

    Attributes
    ----------
    name : str
        Short key used in results (``iforest``, ``cleanlab``, ``ecod``, ``knn10``).
    title : str
        Column title in the markdown table.
    requires : str, tuple of str or None
        Top-level package(s) it needs (``None``: only scikit-learn).
    score : callable
        ``score(X, y, seed) -> ndarray`` of suspicion per row.
    benches : frozenset of str
        Benchmarks (of :data:`BENCHES`) whose tables include this anchor.
    """

    name: str
    title: str
    requires: str | tuple[str, ...] | None
    score: Callable[[np.ndarray, np.ndarray, int], np.ndarray]
    benches: frozenset[str] = frozenset(BENCHES)


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


# --- IBM ART (adversarial-robustness-toolbox) poisoning defences --------------------------
#
# Both defences need a neural network classifier wrapped by ART. The anchor trains a
# small MLP on the (standardized) X, y it is given, on the CPU, then runs ART's
# ``detect_poison()`` with ART's default settings. torch and ART are imported lazily.

_ART_HIDDEN = 64  # units of the single hidden layer
_ART_EPOCHS = 30
_ART_BATCH = 128  # ART's default batch size of fit
_ART_LR = 1e-3


@contextmanager
def _art_env(seed: int, torch: Any) -> Iterator[None]:
    """Seed the global RNGs ART draws from and use one thread; restore both afterwards.

    ART's PyTorch ``fit`` shuffles with torch's global generator; ``ActivationDefence``
    builds ``KMeans``/``PCA`` without a ``random_state``, so they draw from numpy's
    global generator. A 64-unit MLP gains nothing from threads, and on a loaded
    2-core machine two torch threads made training ~10x slower than one.
    """
    from threadpoolctl import threadpool_limits

    state, threads = np.random.get_state(), torch.get_num_threads()
    np.random.seed(seed)
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), threadpool_limits(limits=1):
            torch.manual_seed(seed)
            yield
    finally:
        np.random.set_state(state)
        torch.set_num_threads(threads)


def _art_classifier(X: np.ndarray, y: np.ndarray, torch: Any) -> Any:
    """Train a one-hidden-layer MLP (64 ReLU units) wrapped in ART's ``PyTorchClassifier``.

    Trained with ART's ``fit``: cross-entropy, Adam (lr 1e-3), batch 128 (ART's
    default), 30 epochs, on the CPU.

    Both ART defences read the activations of ``classifier.layer_names[-1]``, and for
    a PyTorch model ART's layer names are the model's child modules in registration
    order. Registered as ``nn.Sequential(Linear, ReLU, Linear)`` that last child is
    the logits layer (as few units as classes: 2 on breast_cancer, and ART warns below
    32 units). Both defences are defined on the last *hidden* layer (Chen et al. 2018;
    Tran et al. 2018), so the output layer is registered first and the hidden block
    last: ART then protects the 64-unit hidden representation while ``forward`` is
    the usual ``head(body(x))``.
    """
    classification = import_optional("art.estimators.classification", "bench")
    nn = torch.nn

    class _MLP(nn.Module):
        def __init__(self, n_in: int, n_classes: int) -> None:
            super().__init__()
            self.head = nn.Linear(_ART_HIDDEN, n_classes)  # registered first: see the docstring
            self.body = nn.Sequential(nn.Linear(n_in, _ART_HIDDEN), nn.ReLU())

        def forward(self, x: Any) -> Any:
            return self.head(self.body(x))

    n_classes = int(y.max()) + 1
    model = _MLP(X.shape[1], n_classes)
    clf = classification.PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=_ART_LR),
        input_shape=(X.shape[1],),
        nb_classes=n_classes,
        device_type="cpu",
    )
    clf.fit(X, y, batch_size=_ART_BATCH, nb_epochs=_ART_EPOCHS)
    return clf


def _art_inputs(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(X, dtype=np.float32), np.asarray(y, dtype=np.int64)


def _art_activation(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """ART ``ActivationDefence`` (activation clustering, Chen et al. 2018), ART's defaults.

    ``ActivationDefence(classifier, X, y).detect_poison()`` with no arguments: per
    class, the hidden activations are reduced to 10 dimensions by PCA and split into
    2 clusters by k-means; with ``cluster_analysis="smaller"`` the smaller cluster of
    *every* class is declared poisonous (``is_clean_lst[i] = 0``), so ART flags a
    minority of each class whether or not the class was attacked.

    Mapping to a score (ART exposes no per-row confidence: ``confidence_level`` is
    declared but never filled in ART 1.20, and the report only holds per-cluster
    shares): the suspicion of a row is ``1 - share of its class in its cluster``,
    read from ``defence.clusters_by_class``. Rows ART flags score >= 0.5, rows it
    keeps <= 0.5 (checked), so thresholding at 0.5 gives back ART's decision, and
    a small, tight cluster (the signature of a backdoor) ranks above a near-even
    split of a clean class.
    """
    torch = import_optional("torch", "torch")
    poison = import_optional("art.defences.detector.poison", "bench")
    Xf, yi = _art_inputs(X, y)
    with _art_env(seed, torch):
        clf = _art_classifier(Xf, yi, torch)
        defence = poison.ActivationDefence(clf, Xf, yi)
        _, is_clean = defence.detect_poison()
    is_clean = np.asarray(is_clean, dtype=int)
    score = np.empty(len(yi), dtype=float)
    for c, clusters in enumerate(defence.clusters_by_class):
        rows = np.flatnonzero(yi == c)  # ART segments by class in row order
        clusters = np.asarray(clusters, dtype=int)
        if len(rows) != len(clusters):
            raise DetectorFailedError(
                f"ART returned {len(clusters)} cluster labels for class {c}, which has {len(rows)} rows"
            )
        if len(rows):
            share = np.bincount(clusters) / len(rows)
            score[rows] = 1.0 - share[clusters]
    flagged = is_clean == 0
    if (flagged.any() and score[flagged].min() < 0.5) or ((~flagged).any() and score[~flagged].max() > 0.5):
        raise DetectorFailedError("ART ActivationDefence: cluster shares disagree with is_clean_lst (ART changed?)")
    return score


def _art_spectral(X: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """ART ``SpectralSignatureDefense`` (Tran et al. 2018), ART's defaults.

    ``SpectralSignatureDefense(classifier, X, y).detect_poison()`` with ART's defaults
    ``expected_pp_poison=0.33`` (eps) and ``eps_multiplier=1.5``: per class, each row's
    score is ``|<v, r_i>|`` with ``r_i`` its hidden activation and ``v`` the top right
    singular vector of the class's centred activations. ART projects the *uncentred*
    ``r_i``, not ``r_i - mean`` as in Tran et al.; with non-negative ReLU activations a
    poison cluster on the origin's side of its class mean then ranks *lowest* (on a
    small 3-class table, centring the projection turned AUROC 0.05 into 1.0; kept as
    ART ships it, since this anchor measures ART as a user runs it). ART flags every row at or above the class's ``1 - 1.5 * eps`` quantile,
    i.e. **the top 1.5 * eps = 49.5% of every class by default**, attacked or not, and
    its report (``{row: score}``) holds the scores of the flagged rows only.

    Mapping to a score: the flagged rows keep their report score; the kept rows get
    the same statistic from ART's ``SpectralSignatureDefense.spectral_signature_scores``
    on the same activations (checked to reproduce the report). Scores of different
    classes are on different scales, so each is divided by its class's cut-off:
    a suspicion >= 1 is exactly ART's flag, and the ranking within a class is ART's.
    """
    torch = import_optional("torch", "torch")
    poison = import_optional("art.defences.detector.poison", "bench")
    Xf, yi = _art_inputs(X, y)
    with _art_env(seed, torch):
        clf = _art_classifier(Xf, yi, torch)
        defence = poison.SpectralSignatureDefense(clf, Xf, yi)
        report, is_clean = defence.detect_poison()
        acts = clf.get_activations(Xf, layer=len(clf.layer_names) - 1, batch_size=defence.batch_size)
    acts = np.reshape(acts, (acts.shape[0], -1))
    q = max(1.0 - defence.eps_multiplier * defence.expected_pp_poison, 0.0)
    raw = np.empty(len(yi), dtype=float)
    score = np.empty(len(yi), dtype=float)
    for c in np.unique(yi):
        rows = np.flatnonzero(yi == c)
        raw[rows] = poison.SpectralSignatureDefense.spectral_signature_scores(acts[rows])[:, 0]
        cut = float(np.quantile(raw[rows], q))
        score[rows] = raw[rows] / cut if cut > 0 else raw[rows]
    reported = np.array(sorted(report), dtype=int)
    values = np.array([float(np.ravel(report[i])[0]) for i in reported], dtype=float)
    flagged = np.flatnonzero(np.asarray(is_clean, dtype=int) == 0)
    if not np.array_equal(reported, flagged) or not np.allclose(values, raw[reported], rtol=1e-4):
        raise DetectorFailedError("ART SpectralSignatureDefense: recomputed scores disagree with its report (ART changed?)")
    return score


#: The anchors, in the order of the table's columns.
ANCHORS: tuple[Anchor, ...] = (
    Anchor("iforest", "IForest", None, _iforest),
    Anchor("cleanlab", "cleanlab", "cleanlab", _cleanlab),
    Anchor("ecod", "ECOD", "pyod", _ecod),
    Anchor("knn10", "10-NN vote", None, _knn10),
    Anchor("art_ac", "ART activation clustering", ("art", "torch"), _art_activation, frozenset({"backdoor"})),
    Anchor("art_spectral", "ART spectral signature", ("art", "torch"), _art_spectral, frozenset({"backdoor"})),
)


def anchors_for(bench: str) -> tuple[Anchor, ...]:
    """The anchors of one benchmark (``"scan"`` or ``"backdoor"``), in column order.

    Raises
    ------
    ConfigError
        ``bench`` is not one of :data:`BENCHES`.
    """
    if bench not in BENCHES:
        raise ConfigError(f"unknown benchmark {bench!r} for anchors; known: {', '.join(BENCHES)}")
    return tuple(a for a in ANCHORS if bench in a.benches)


def anchor_available(anchor: Anchor) -> bool:
    """Whether every package the anchor needs can be imported."""
    req = anchor.requires
    names = () if req is None else (req,) if isinstance(req, str) else req
    return all(importlib.util.find_spec(n) is not None for n in names)
