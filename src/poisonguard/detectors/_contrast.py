"""Permutation contrast: rows that a classifier takes for rows of the table's column-shuffled copy.

An in-range outlier (every feature inside its column's range, the row as a whole
implausible) is a row drawn from something like the product of the columns'
marginals: each value is ordinary, their combination is not. Isolation Forest and
ECOD score such rows inside the range a clean table's own rows reach, so their tail
tests cannot confirm them. This detector contrasts the table with a copy whose columns
are shuffled independently (the product of the marginals): a gradient-boosted
classifier learns to tell the two apart, cross-fitted, and a real row that it takes
for a shuffled one is jointly implausible.

**Presence test.** On a table with structure the classifier is sure of most shuffled
rows and of every real row: the held-out real rows' scores stay far below the
held-out shuffled rows' typical score. Injected product-of-marginals rows are real
rows that score like shuffled ones. At each threshold ``t`` among the 10%, 20%, ...,
90% quantiles of the held-out shuffled rows' scores, the test counts the real rows
``N(t)`` at or above ``t`` and compares the count with what the classifier's own
probabilities imply there: with balanced training classes a score ``s`` means odds
``(1 - s) / s`` of a real row against a shuffled one, so the shuffled rows at or above
``t``, weighted by those odds, give the expected count ``E(t) = sum (1 - s_j) / s_j``
(scaled to the real rows). On clean structured tables the classifier is
over-confident there (``N`` at or under ``E``); injected rows that the cross-fitted
classifier cannot learn as real, because they are a handful among the shuffled rows
they resemble, put ``N`` far above it. Present when the most significant threshold
has ``P(Poisson(E) >= N) <= 10 ** -CONTRAST_LOG10P``, an excess of at least
``max(MIN_EXCESS_ROWS, MIN_EXCESS_SHARE x rows)`` rows and ``N >= EXCESS_RATIO x E``,
and the classifier tells the held-out shuffled rows from the real ones with AUROC >=
``MIN_SEPARATION``. Injected rows lower that AUROC themselves: at 10% of a small table
(vega iris) it falls under the floor and nothing is said.

The separation floor carries much of the test. ``E`` is a calibration argument, and
it holds only where the classifier knows the table: on clean tables that it separates
well the real rows stay at or under ``E``, but where the columns are nearly independent
(the shuffled copy *is* the table) its probabilities are noise that over-fits, and
clean tables then reach ``-log10 p`` of 10-100 at separations of 0.1-0.75. Such a
table's in-range rows are not implausible, and nothing is said about them. The levels
are empirical (benchmarks/results/contrast.md).

**Score.** ``score_samples`` is the probability that a row is an injected
product-of-marginals row, in [0, 1] (``score_kind = "probability"``): when the test
finds no excess it is 0 for every row, so an unconfirmed contrast never moves the
scan's ranking or flags; when it finds one, a row's score is ``max(1 - q / (2
FLAG_FDR), RANK_SHARE x P)`` where ``P`` is its cross-fitted probability of being a
shuffled row and ``q`` the false-discovery share ``E(t) / N(t)`` at the best threshold
``t`` at or below its score (so rows at ``q <= FLAG_FDR`` reach 0.5, the scan's flag
line, and the rest rank by ``P`` beneath). ``probability_`` keeps each training row's cross-fitted ``P``; :attr:`ContrastDetector.presence_` the test.

Cost: at most ``max_rows`` real rows (and as many shuffled ones) train the classifier,
``n_splits`` folds of ``max_iter`` boosting rounds with one thread; a table wider than
``max_features`` columns is contrasted on its leading ``max_features`` principal
components (the shared basis of :mod:`._projection`). Rows outside the training sample,
and rows of other tables, get the mean of the fold models' probabilities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import poisson

from ..errors import ConfigError
from ._base import BaseDetector, register
from ._projection import pca_basis

__all__ = ["ContrastDetector", "ContrastPresence", "CONTRAST_LOG10P", "MIN_SEPARATION", "FLAG_FDR"]

#: the thresholds of the presence test: these quantiles of the held-out shuffled rows' probabilities
GRID = np.linspace(0.1, 0.9, 9)
#: the excess of real rows at the best threshold must reach -log10 p >= this
CONTRAST_LOG10P = 5.0
#: ... be at least this many rows and this share of the rows
MIN_EXCESS_ROWS, MIN_EXCESS_SHARE = 3, 0.005
#: ... and hold at least this many times the expected rows: on a table the classifier separates only
#: moderately, its probabilities are off by a share of the rows (10,000 rows: 2,500 where 2,200 are
#: expected), which a count test alone reads as an excess
EXCESS_RATIO = 3.0
#: ... and the classifier must tell held-out real rows from shuffled ones at least this well (AUROC).
#: All real rows count: measured on the bulk of them only (their lower 80%), small clean tables of many
#: one-hot columns (vcdExtra ICU, 200 x 41; modeldata permeability_qsar) passed the floor with the
#: handful of real rows that look shuffled and reached the level
MIN_SEPARATION = 0.85
#: a row reaches strength 0.5 (the scan's flag line) at a false-discovery share <= this
FLAG_FDR = 0.1
#: below the flag line a present contrast ranks rows by this share of their probability
RANK_SHARE = 0.45
#: rows of the PCA fit of a wide table (the shared basis: the value the representation models use)
_PCA_FIT_ROWS = 20_000
#: components fitted for a wide table (the shared basis's size; the detector takes its leading ``max_features``)
_PCA_SHARED = 64


@dataclass(frozen=True)
class ContrastPresence:
    """The presence test of the permutation contrast.

    Attributes
    ----------
    rows : int
        Real rows counted (every row of the fitted table).
    threshold : float
        The most significant threshold (a quantile of the held-out shuffled rows' probabilities).
    observed : int
        Real rows whose probability of being shuffled is at or above ``threshold``.
    expected : float
        The count the classifier's own odds imply there (see the module docstring).
    log10p : float
        ``-log10 P(Poisson(expected) >= observed)``.
    separation : float
        AUROC of the held-out shuffled rows against the held-out real rows.
    present : bool
        An excess of jointly implausible rows.
    """

    rows: int
    threshold: float
    observed: int
    expected: float
    log10p: float
    separation: float
    present: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@register
class ContrastDetector(BaseDetector):
    """Probability that a row is an injected product-of-marginals row (see the module docstring).

    Parameters
    ----------
    max_rows : int, default=4000
        Real rows (and as many shuffled ones) the classifier is trained on.
    n_splits : int, default=5
        Folds of the cross-fitting.
    max_iter : int, default=50
        Boosting rounds of each fold model.
    max_features : int, default=32
        A wider table is contrasted on this many leading principal components.
    random_state : int, default=0
    """

    name = "contrast"
    family = "outlier"
    score_kind = "probability"
    summary = "rows a classifier takes for rows of the column-shuffled table (in-range, jointly implausible rows)"

    def __init__(self, *, max_rows: int = 4000, n_splits: int = 5, max_iter: int = 50, max_features: int = 32,
                 random_state: int = 0) -> None:
        self.max_rows = max_rows
        self.n_splits = n_splits
        self.max_iter = max_iter
        self.max_features = max_features
        self.random_state = random_state

    def _validate_params(self) -> None:
        if int(self.max_rows) < 20:
            raise ConfigError(f"contrast: max_rows must be >= 20, got {self.max_rows}")
        if int(self.n_splits) < 2:
            raise ConfigError(f"contrast: n_splits must be >= 2, got {self.n_splits}")
        if int(self.max_iter) < 1:
            raise ConfigError(f"contrast: max_iter must be >= 1, got {self.max_iter}")
        if int(self.max_features) < 1:
            raise ConfigError(f"contrast: max_features must be >= 1, got {self.max_features}")

    # ------------------------------------------------------------------ fit
    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        rng = np.random.default_rng(int(self.random_state))
        self.basis_ = None
        if X.shape[1] > int(self.max_features):
            # the shared basis of a wide table (memoised with the representation models' draw)
            self.basis_ = pca_basis(X, n_components=max(int(self.max_features), _PCA_SHARED),
                                    max_fit_rows=_PCA_FIT_ROWS, random_state=int(self.random_state),
                                    rng=np.random.default_rng(int(self.random_state)),
                                    fingerprint=getattr(self, "fit_fingerprint_", None)).leading(int(self.max_features))
        Z = self._features(X)
        n = Z.shape[0]
        train = np.sort(rng.choice(n, int(self.max_rows), replace=False)) if n > int(self.max_rows) else np.arange(n)
        R = Z[train]
        m = R.shape[0]
        # the shuffled copy: each column permuted on its own (the product of the marginals)
        S = np.empty_like(R)
        for j in range(R.shape[1]):
            S[:, j] = R[rng.permutation(m), j]
        k = min(int(self.n_splits), m)
        fold_r, fold_s = rng.permutation(m) % k, rng.permutation(m) % k
        p_real, p_shuf = np.zeros(m), np.zeros(m)
        self.models_ = []
        for f in range(k):
            model = self._classifier().fit(np.vstack([R[fold_r != f], S[fold_s != f]]),
                                           np.r_[np.zeros(int((fold_r != f).sum())), np.ones(int((fold_s != f).sum()))])
            self.models_.append(model)
            p_real[fold_r == f] = _proba(model, R[fold_r == f])
            p_shuf[fold_s == f] = _proba(model, S[fold_s == f])
        prob = self._mean_proba(Z) if n > m else np.empty(n)
        prob[train] = p_real  # the training rows keep their out-of-fold answers
        self.probability_ = prob
        self.shuffled_probability_ = p_shuf
        self.presence_ = _presence(prob, p_shuf)
        self.report_ = {"presence": self.presence_.to_dict()}  # the scan's detector_info
        # the false-discovery share E(t) / N(t) at each distinct real score t, made
        # non-increasing in t from below (a row gets the best share of any threshold under it)
        self.thresholds_, self.q_ = _fdr_steps(prob, p_shuf)
        self.fit_scores_ = self._strength(prob)

    def _classifier(self) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier

        # shallow trees, a floor on leaf size, no early stopping (its split would change the folds)
        return _OneThread(HistGradientBoostingClassifier(
            max_iter=int(self.max_iter), learning_rate=0.2, max_leaf_nodes=15, min_samples_leaf=10,
            early_stopping=False, random_state=int(self.random_state)))

    def _features(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.basis_ is None:
            return X
        return (X - self.basis_.mean) @ self.basis_.components.T

    def _mean_proba(self, Z: np.ndarray) -> np.ndarray:
        return np.mean([_proba(m, Z) for m in self.models_], axis=0)

    def _strength(self, prob: np.ndarray) -> np.ndarray:
        if not self.presence_.present:
            return np.zeros(prob.shape[0])
        q = self._q_at(prob)
        return np.maximum(np.clip(1.0 - q / (2.0 * FLAG_FDR), 0.0, 1.0), RANK_SHARE * prob)

    def _q_at(self, prob: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.thresholds_, prob, side="right")
        return np.concatenate(([1.0], self.q_))[idx]

    # ---------------------------------------------------------------- score
    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        if is_fit_data:
            return self.fit_scores_.copy()
        return self._strength(self._mean_proba(self._features(X)))

    def _row_probability(self, X: np.ndarray, rows: np.ndarray, is_fit_data: bool) -> np.ndarray:
        if is_fit_data:
            return self.probability_[rows]
        return self._mean_proba(self._features(np.asarray(X)[rows]))

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        prob = self._row_probability(X, rows, is_fit_data)
        q = self._q_at(prob)
        t = self.presence_
        out = []
        for r, p, qr in zip(rows.tolist(), prob.tolist(), q.tolist()):
            verdict = ("the table holds an excess of such rows" if t.present
                       else "the table holds no excess of such rows")
            out.append((
                f"the contrast classifier takes it for a row of the column-shuffled table (P {p:.3f}; the presence "
                f"test's threshold {t.threshold:.3f}); {t.observed} real rows reach that level where "
                f"{t.expected:.1f} are expected: {verdict}",
                {"p_shuffled": float(p), "q_value": float(min(qr, 1.0)), "presence": t.to_dict()}))
        return out


class _OneThread:
    """A classifier fitted and queried with one OpenMP thread.

    Histogram boosting starts a thread per core for every tree; on a busy host (a
    scan beside other work) that oversubscription cost several times the fit itself.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def fit(self, X: np.ndarray, t: np.ndarray) -> "_OneThread":
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="openmp"):
            self.model.fit(X, t)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="openmp"):
            return self.model.predict_proba(X)


def _proba(model: _OneThread, X: np.ndarray) -> np.ndarray:
    """P(shuffled) of each row (0.0 for no rows)."""
    if X.shape[0] == 0:
        return np.zeros(0)
    return model.predict_proba(X)[:, 1]


def _expected_real(p_shuf: np.ndarray, at: np.ndarray, n_real: int) -> np.ndarray:
    """Real rows the classifier's odds imply at or above each score in ``at``.

    Balanced training classes: a score ``s`` is the odds ``(1 - s) / s`` of a real row
    against a shuffled one, so the shuffled rows at or above ``t``, weighted by their
    odds, estimate the real rows there (scaled from the shuffled sample to ``n_real``).
    """
    srt = np.sort(p_shuf)
    odds = (1.0 - srt) / np.maximum(srt, 1e-6)
    tail = np.concatenate((np.cumsum(odds[::-1])[::-1], [0.0]))  # tail[i]: sum of odds from i up
    return tail[np.searchsorted(srt, at, side="left")] * (n_real / max(srt.size, 1))


def _presence(prob: np.ndarray, p_shuf: np.ndarray) -> ContrastPresence:
    """The presence test (see the module docstring): the most significant of the ``GRID`` thresholds."""
    from sklearn.metrics import roc_auc_score

    n = prob.size
    ts = np.quantile(p_shuf, GRID) if p_shuf.size else np.ones(1)
    observed = (prob[:, None] >= ts[None, :]).sum(axis=0)
    expected = _expected_real(p_shuf, ts, n)
    with np.errstate(divide="ignore"):
        log10p = -poisson.logsf(observed - 1, np.maximum(expected, 1e-12)) / np.log(10.0)
    ok = ((observed > 0) & (observed - expected >= max(MIN_EXCESS_ROWS, MIN_EXCESS_SHARE * n))
          & (observed >= EXCESS_RATIO * expected))
    log10p = np.clip(np.where(ok, log10p, 0.0), 0.0, 300.0)
    i = int(np.argmax(log10p))
    labels = np.r_[np.zeros(n), np.ones(p_shuf.size)]
    separation = float(roc_auc_score(labels, np.r_[prob, p_shuf])) if n and p_shuf.size else 0.5
    present = log10p[i] >= CONTRAST_LOG10P and separation >= MIN_SEPARATION
    return ContrastPresence(rows=n, threshold=round(float(ts[i]), 6), observed=int(observed[i]),
                            expected=round(float(expected[i]), 3), log10p=round(float(log10p[i]), 3),
                            separation=round(separation, 4), present=bool(present))


def _fdr_steps(prob: np.ndarray, p_shuf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct real scores (ascending) and the best false-discovery share at or below each."""
    t = np.unique(prob)
    srt = np.sort(prob)
    observed = prob.size - np.searchsorted(srt, t, side="left")
    fdr = np.minimum(_expected_real(p_shuf, t, prob.size) / np.maximum(observed, 1), 1.0)
    return t, np.minimum.accumulate(fdr)
