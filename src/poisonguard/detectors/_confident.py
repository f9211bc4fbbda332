"""Cross-validated confident learning: out-of-fold probabilities of the given label."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import softmax
from sklearn.model_selection import KFold, StratifiedKFold

from ..errors import ConfigError
from ._base import BaseDetector, register
from ._noise_level import check_noise_rate, resolve_noise_rate
from ._spectral_search import fit_representation

__all__ = [
    "CChoice", "ConfidentLearningDetector", "NoiseAwareLogistic", "channel_log_likelihood", "choose_C",
    "explain_label_probabilities", "out_of_fold_proba", "through_channel",
]


class NoiseAwareLogistic:
    """Multinomial logistic regression fitted through an assumed label-noise channel.

    Forward loss correction (Patrini et al., CVPR 2017): the model's class
    probabilities ``p(x)`` describe the *true* class, and the likelihood of an
    observed label ``l`` is ``(p(x) @ T)[l]`` with the symmetric noise matrix
    ``T = (1 - noise_rate) I + noise_rate / (K - 1) (1 - I)``. A flipped row deep inside
    another class is then explained by the noise channel instead of dragging the
    decision boundary towards itself, so the fitted ``p`` stays sharp where plain
    logistic regression (``noise_rate=0``) is pulled flat by the flips. Measured on
    breast_cancer with 10% flips (4 seeds), out-of-fold AUROC of ``1 - p(label)``:
    0.981-0.996 plain, 0.989-0.998 at ``noise_rate=0.2``; on digits 0.996-0.999 plain,
    0.998-0.9995 corrected.

    The objective is ``sum_i -log (p(x_i) @ T)[y_i] + ||W||^2 / (2 C)`` (intercepts not
    penalised, as in scikit-learn), minimised with L-BFGS.
    """

    def __init__(self, *, C: float, noise_rate: float, max_iter: int = 300) -> None:
        self.C = C
        self.noise_rate = noise_rate
        self.max_iter = max_iter

    def fit(self, X: np.ndarray, y: np.ndarray, *, init: np.ndarray | None = None) -> "NoiseAwareLogistic":
        """Fit by L-BFGS; ``init``: starting ``coef_`` (``(d + 1) x k``, e.g. another fold's), else zeros."""
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = self.classes_.size
        n, d = X.shape
        rho = float(self.noise_rate) if k > 1 else 0.0
        T = np.full((k, k), rho / max(k - 1, 1))
        np.fill_diagonal(T, 1.0 - rho)
        # Optimise over V = scale * W (the weights of the column-scaled matrix): the same
        # optimum, but L-BFGS sees a well-conditioned problem when the columns' scales
        # differ by orders of magnitude, as on an unwhitened PCA projection, where it
        # otherwise stopped at max_iter far from the optimum.
        # in float64, with a relative floor: the float32 std of a column that is constant in
        # this fold is a rounding residue (~1e-9), and dividing by it made a column of 10^7s
        # that stopped L-BFGS after two steps at the starting point (digits, 2 of 5 folds)
        scale = X.std(axis=0, dtype=np.float64)
        scale = np.where(scale > 1e-6 * np.maximum(np.abs(X.mean(axis=0, dtype=np.float64)), 1.0), scale, 1.0)
        Xb = np.hstack([X / scale, np.ones((n, 1))])
        inv2 = 1.0 / scale[:, None] ** 2
        TY = T[:, codes].T  # TY[i, j] = T[j, y_i]: how true class j shows up as the observed label
        # the objective divided by n (as scikit-learn does), so the tolerances do not depend on n
        lam = 1.0 / (float(self.C) * n)

        def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
            V = flat.reshape(d + 1, k)
            Z = Xb @ V
            Z -= Z.max(axis=1, keepdims=True)
            P = np.exp(Z)
            P /= P.sum(axis=1, keepdims=True)
            PT = P * TY
            q = np.maximum(PT.sum(axis=1), 1e-300)
            # d(-log q)/dZ = P - P * TY / q  (the softmax Jacobian term sums to -1)
            grad = Xb.T @ (P - PT / q[:, None]) / n
            pen = V[:-1] * inv2  # ||W||^2 = sum (V / scale)^2
            grad[:-1] += lam * pen
            return float(-np.mean(np.log(q)) + 0.5 * lam * np.sum(V[:-1] * pen)), grad.ravel()

        # probabilities for ranking need no more precision than scikit-learn's tol=1e-4 gives
        x0 = np.zeros((d + 1, k))
        if init is not None and init.shape == x0.shape:
            x0[:-1] = init[:-1] * scale[:, None]  # into the scaled parametrisation
            x0[-1] = init[-1]
        res = minimize(objective, x0.ravel(), jac=True, method="L-BFGS-B",
                       options={"maxiter": int(self.max_iter), "gtol": 1e-5, "ftol": 1e-9})
        self.n_iter_ = int(res.nit)
        coef = res.x.reshape(d + 1, k)
        coef[:-1] /= scale[:, None]
        self.coef_ = coef
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of the true class over ``classes_``."""
        return softmax(np.hstack([X, np.ones((X.shape[0], 1))]) @ self.coef_, axis=1)


def _model(C: float, noise_rate: float) -> NoiseAwareLogistic:
    return NoiseAwareLogistic(C=C, noise_rate=noise_rate)


def _full_proba(model: NoiseAwareLogistic, X: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities over all classes, with zeros for classes the fold model never saw."""
    out = np.zeros((X.shape[0], n_classes))
    out[:, model.classes_] = model.predict_proba(X)
    return out


def out_of_fold_proba(
    X: np.ndarray, y: np.ndarray, n_classes: int, *, n_folds: int, C: float, noise_rate: float,
    random_state: int, max_fit_rows: int | None = None,
) -> tuple[np.ndarray, list[NoiseAwareLogistic]]:
    """Out-of-fold predicted probabilities and the fold models.

    Each row's probabilities come from a model that never saw the row, so a flipped
    label cannot vouch for itself. With ``max_fit_rows``, each fold model is fitted
    on a random sample of that many of its training rows (every row is still scored).
    Each fold model starts from the previous fold's optimum: the folds share most of
    their rows, so the optima are close, and the (strictly convex) objective has one
    optimum wherever L-BFGS starts; the later folds need fewer iterations (5,000 x 784
    digits: 271 -> 221 over the five folds).
    """
    rng = np.random.default_rng(random_state)
    counts = np.bincount(y, minlength=n_classes)
    smallest = int(counts[counts > 0].min())
    folds = max(2, min(n_folds, X.shape[0]))
    if smallest >= folds:
        splitter: Any = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    else:  # a class too small to stratify: plain folds, unseen classes get probability 0
        splitter = KFold(n_splits=folds, shuffle=True, random_state=random_state)
    proba = np.zeros((X.shape[0], n_classes))
    models = []
    for train, test in splitter.split(X, y):
        if np.unique(y[train]).size < 2:
            proba[test] = np.bincount(y[train], minlength=n_classes) / train.size
            continue
        if max_fit_rows is not None and train.size > max_fit_rows:
            train = np.sort(rng.choice(train, size=max_fit_rows, replace=False))
        prev = models[-1] if models else None
        init = prev.coef_ if prev is not None and np.array_equal(prev.classes_, np.unique(y[train])) else None
        m = _model(C, noise_rate).fit(X[train], y[train], init=init)
        proba[test] = _full_proba(m, X[test], n_classes)
        models.append(m)
    return proba, models


#: the inverse regularisations ``C="auto"`` chooses among (a factor of about 3 apart)
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)
#: where the search starts: the fixed value the detector used before the choice existed
C_START = 0.1
#: tables with more rows keep ``C_START``: their likelihood hardly depends on ``C``
SELECT_ROWS = 2000
#: a neighbouring ``C`` is taken only when it raises the mean out-of-fold log-likelihood by more than this
SELECT_TOL = 1e-4


@dataclass(frozen=True)
class CChoice:
    """The inverse regularisation chosen by out-of-fold likelihood, and what each tried value scored.

    ``log_likelihood`` maps each tried ``C`` (before any width scaling) to the mean
    out-of-fold log-likelihood of the given labels through the noise channel.
    ``proba`` and ``models`` are the chosen value's out-of-fold probabilities and fold
    models, ``None`` when no search ran (a table of more than ``SELECT_ROWS`` rows).
    """

    C: float
    log_likelihood: dict[float, float]
    proba: np.ndarray | None
    models: list[NoiseAwareLogistic] | None


def through_channel(p_given: np.ndarray, n_classes: int, noise_rate: float) -> np.ndarray:
    """The probability of observing the given label when it is the true class with probability ``p_given``.

    The symmetric noise channel that :class:`NoiseAwareLogistic` fits through: a label is
    kept with probability ``1 - r`` and otherwise replaced by one of the ``K - 1`` other
    classes, so the given label is seen with ``(1 - r) p + r (1 - p) / (K - 1)``. One
    class: no channel.
    """
    r = float(noise_rate) if n_classes > 1 else 0.0
    return (1.0 - r) * p_given + r * (1.0 - p_given) / max(n_classes - 1, 1)


def channel_log_likelihood(proba: np.ndarray, y: np.ndarray, noise_rate: float) -> float:
    """Mean log-likelihood of the given labels ``y`` when ``proba`` (true classes) passes the symmetric noise channel."""
    q = through_channel(proba[np.arange(y.size), y], proba.shape[1], noise_rate)
    return float(np.mean(np.log(np.maximum(q, 1e-12))))


def choose_C(
    X: np.ndarray, y: np.ndarray, n_classes: int, *, scale: float, n_folds: int, noise_rate: float,
    random_state: int, max_fit_rows: int,
) -> CChoice:
    """Choose ``C`` from ``C_GRID`` by the out-of-fold likelihood of the table's own labels.

    A local search from ``C_START``: the next larger value is tried, and the search goes
    on in the direction that raises the likelihood (by more than ``SELECT_TOL``) until
    it stops rising; the likelihood is unimodal in ``C`` on the tables measured. Each
    row's probability comes from a fold model that never saw it, so a value that lets
    the models fit the flips is not rewarded for it (unlike an in-sample likelihood).
    ``scale`` multiplies every value (the width scaling of a projected table).

    Tables of more than ``SELECT_ROWS`` rows keep ``C_START`` without a search: the
    penalty is spread over many rows there, so the likelihood hardly depends on ``C``
    (statsmodels' fair, 6,366 rows; credit, 4,454; default, 10,000: the five values
    within 0.001 nats per row), and the speed budgets of wide and 100k-row tables
    leave no room for the extra fits.
    """
    if y.size > SELECT_ROWS:
        return CChoice(C=C_START, log_likelihood={}, proba=None, models=None)
    tried: dict[float, tuple[float, np.ndarray, list[NoiseAwareLogistic]]] = {}

    def score(i: int) -> float:
        c = C_GRID[i]
        if c not in tried:
            proba, models = out_of_fold_proba(X, y, n_classes, n_folds=n_folds, C=c * scale, noise_rate=noise_rate,
                                              random_state=random_state, max_fit_rows=max_fit_rows)
            tried[c] = (channel_log_likelihood(proba, y, noise_rate), proba, models)
        return tried[c][0]

    best = C_GRID.index(C_START)
    for step in (1, -1):
        while 0 <= best + step < len(C_GRID) and score(best + step) > score(best) + SELECT_TOL:
            best += step
        if best != C_GRID.index(C_START):
            break  # the likelihood rose upwards: no need to look below the start
    c = C_GRID[best]
    return CChoice(C=c, log_likelihood={k: v[0] for k, v in sorted(tried.items())},
                   proba=tried[c][1], models=tried[c][2])


@register
class ConfidentLearningDetector(BaseDetector):
    """One minus the out-of-fold probability of the given label (or the margin).

    The fold models are logistic regressions fitted through a label-noise channel
    (:class:`NoiseAwareLogistic`); their probabilities are of the *true* class.

    Parameters
    ----------
    n_folds : int, default=5
    method : {"self_confidence", "margin"}, default="self_confidence"
        ``self_confidence`` scores ``1 - p(given)``; ``margin`` scores
        ``(max_other - p(given) + 1) / 2``.
    C : float or "auto", default=0.1
        Inverse regularisation of the logistic regression. Stronger regularisation
        keeps the fold models from fitting the flipped labels (digits, 10% flips:
        AUROC 0.995 at C=1, 0.998 at C=0.1). ``"auto"`` chooses it per table (of at
        most ``SELECT_ROWS`` rows) from ``C_GRID`` by the out-of-fold likelihood of the
        table's own labels through the noise channel (:func:`choose_C`; the chosen value
        is ``C_``). On small tables with weak structure it ranks flips better (vega's
        seattle-weather, 3% pair flips: 0.688 at 0.1, 0.755 at the chosen 3), but its
        sharper probabilities tip the label presence test of clean tables (ISLR's OJ
        and College: 0% -> 1.4% of rows flagged), so it is not the default
        (benchmarks/results/label_mixture_weak.md).
    noise_rate : float or "auto", default="auto"
        Label-noise rate assumed by the forward-corrected fit (:class:`NoiseAwareLogistic`);
        0 gives plain logistic regression. ``"auto"`` estimates it from the table's
        purest neighbourhoods (:func:`~._noise_level.estimate_noise_rate`, at most 0.1;
        the value used is ``noise_rate_``), the same estimate as ``knn_label``'s. The
        fixed 0.1 it replaces was a prior. Measured with the
        default scan at 10% flips (seeds 0 and 1), 0 -> 0.1: breast_cancer flag recall
        0.07 -> 0.39 and 0.21 -> 0.42 at precision >= 0.96, AUROC 0.978 -> 0.980; digits
        flag precision 0.83 -> 0.81 (recall 1.00); clean flag rates unchanged. 0.2
        gained nothing more on breast_cancer and cost digits another point of precision.
    max_fit_rows : int, default=20000
        Each fold model is fitted on at most this many of its training rows: a linear
        model of a few dozen features gains nothing from more, and the fit stays
        linear in time (100k rows x 32 features: the detector took 5.3 s without
        the cap on a loaded 2-core machine).
    max_features : int, default=128
        Above this many columns the fold models are fitted on an unwhitened PCA
        projection to ``max_features // 2`` components (fitted on at most
        ``max_fit_rows`` rows). A linear label model gains little from the trailing
        directions of a wide table, while its cost grows with the width (5,000 x 784:
        most of a default scan's time); the unwhitened projection keeps the
        regularisation acting as it would on the raw columns. ``0`` never projects.
        On the projection the fold models use ``C * max_features / n_columns`` (the
        learned ``C_``; with ``"auto"`` every candidate is scaled so): the kept components of ``d`` standardized columns carry variance
        of order ``d``, so a fixed ``C`` lets a wide table's fold models fit the flips
        that a narrow table's cannot; scaled, the wide tables' flips rank better and
        the fits converge in a fraction of the time (``benchmarks/results/labels_confident.md``).
    random_state : int, default=0
    """

    name = "confident"
    needs_label = True
    family = "label"
    score_kind = "probability"
    summary = "cross-validated confident learning: out-of-fold P(given label) (label flips)"

    def __init__(
        self, *, n_folds: int = 5, method: str = "self_confidence", C: float | str = 0.1, noise_rate: float | str = "auto",
        max_fit_rows: int = 20000, max_features: int = 128, random_state: int = 0,
    ) -> None:
        self.max_fit_rows = max_fit_rows
        self.max_features = max_features
        self.n_folds = n_folds
        self.method = method
        self.C = C
        self.noise_rate = noise_rate
        self.random_state = random_state

    def _validate_params(self) -> None:
        if self.method not in ("self_confidence", "margin"):
            raise ConfigError(f"confident: method must be 'self_confidence' or 'margin', got {self.method!r}")
        if int(self.n_folds) < 2:
            raise ConfigError(f"confident: n_folds must be >= 2, got {self.n_folds}")
        if isinstance(self.C, str):
            if self.C != "auto":
                raise ConfigError(f"confident: C must be > 0 or 'auto', got {self.C!r}")
        elif float(self.C) <= 0:
            raise ConfigError(f"confident: C must be > 0 or 'auto', got {self.C}")
        if int(self.max_fit_rows) < 100:
            raise ConfigError(f"confident: max_fit_rows must be >= 100, got {self.max_fit_rows}")
        if int(self.max_features) != 0 and int(self.max_features) < 2:
            raise ConfigError(f"confident: max_features must be 0 (never project) or >= 2, got {self.max_features}")
        check_noise_rate("confident", self.noise_rate)

    def _fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        assert y is not None
        self.n_classes_ = int(y.max()) + 1
        # estimated on the raw columns' neighbour graph (the one knn_label shares), not the projection
        self.noise_rate_ = resolve_noise_rate(self.noise_rate, X, y)
        self.projection_ = None
        if int(self.max_features) and X.shape[1] > int(self.max_features):
            self.projection_ = fit_representation(
                X, n_components=int(self.max_features) // 2, max_fit_rows=int(self.max_fit_rows),
                random_state=int(self.random_state), rng=np.random.default_rng(int(self.random_state)), whiten=False,
                fingerprint=getattr(self, "fit_fingerprint_", None),
            )
        # On the projection of a wide table the penalty grows with the width: the kept
        # components of d standardized columns carry variance of order d, so at a fixed C
        # the fold models fit flips that a narrow table's could not (see the docstring).
        width = int(self.max_features) / X.shape[1] if self.projection_ is not None else 1.0
        Z = self._features(X)
        self.C_choice_ = None
        if self.C == "auto":
            self.C_choice_ = choose_C(Z, y, self.n_classes_, scale=width, n_folds=int(self.n_folds),
                                      noise_rate=self.noise_rate_, random_state=int(self.random_state),
                                      max_fit_rows=int(self.max_fit_rows))
        self.C_ = (self.C_choice_.C if self.C_choice_ is not None else float(self.C)) * width
        if self.C_choice_ is not None and self.C_choice_.proba is not None:
            # chosen on every row: its out-of-fold fit is the one a refit would give
            self.oof_proba_, self.models_ = self.C_choice_.proba, self.C_choice_.models
        else:
            self.oof_proba_, self.models_ = out_of_fold_proba(
                Z, y, self.n_classes_, n_folds=int(self.n_folds), C=self.C_,
                noise_rate=self.noise_rate_, random_state=self.random_state, max_fit_rows=int(self.max_fit_rows),
            )

    def predict_proba(self, X: np.ndarray, is_fit_data: bool) -> np.ndarray:
        """Out-of-fold probabilities on the training matrix, the fold models' mean elsewhere."""
        if is_fit_data:
            return self.oof_proba_
        Z = self._features(X)
        return np.mean([_full_proba(m, Z, self.n_classes_) for m in self.models_], axis=0)

    def _features(self, X: np.ndarray) -> np.ndarray:
        """The columns the fold models see: the projection on wide tables, else ``X`` itself."""
        return X if self.projection_ is None else self.projection_.transform(X)

    def _score(self, X: np.ndarray, y: np.ndarray | None, is_fit_data: bool) -> np.ndarray:
        p = self.predict_proba(X, is_fit_data)
        y = np.minimum(y, p.shape[1] - 1)
        given = p[np.arange(len(y)), y]
        if self.method == "self_confidence":
            return 1.0 - given
        other = p.copy()
        other[np.arange(len(y)), y] = -np.inf
        return (other.max(axis=1) - given + 1.0) / 2.0

    def _explain(self, X, y, rows, scores, is_fit_data) -> list[tuple[str, dict[str, Any]]]:
        return explain_label_probabilities(
            self.predict_proba(X, True)[rows] if is_fit_data else self.predict_proba(X[rows], False), y, rows,
            "a model that never saw this row gives its label {given_label} probability {p_given:.2f} "
            "and predicts {predicted_label} ({p_predicted:.2f})",
        )


def explain_label_probabilities(
    P: np.ndarray, y: np.ndarray, rows: np.ndarray, template: str
) -> list[tuple[str, dict[str, Any]]]:
    """Reasons for rows from their class probabilities ``P`` (one row of ``P`` per entry of ``rows``).

    ``template`` is formatted with ``given_label``, ``predicted_label`` (as ``{label:K}``
    placeholders), ``p_given`` and ``p_predicted``.
    """
    out = []
    for r, p in zip(rows, P):
        best = int(np.argmax(p))
        given = float(p[y[r]]) if y[r] < p.size else 0.0
        reason = template.format(
            given_label=f"{{label:{int(y[r])}}}", predicted_label=f"{{label:{best}}}",
            p_given=given, p_predicted=float(p[best]),
        )
        out.append((reason, {"p_given": given, "predicted": best, "p_predicted": float(p[best])}))
    return out
