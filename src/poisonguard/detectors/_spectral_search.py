"""Search part of ``backdoor_spectral``: the representation and the per-class bimodal clusters.

The encoded table is reduced by PCA (randomized SVD, whitened), which is what keeps
the detector cheap on wide tables: everything after this step works in at most
``n_components`` dimensions. Per class, the rows are projected on the class's top
singular directions, and along each a 1-D two-component Gaussian mixture is compared
with one Gaussian (BIC). A small component becomes a :class:`ClusterCandidate`; the
presence test (:mod:`._spectral_presence`) decides whether it is a backdoor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._projection import pca_basis

__all__ = ["Representation", "Mixture1D", "ClusterCandidate", "SpectralSearch", "fit_representation",
           "fit_mixture_1d", "find_candidates"]

#: smaller mixture weight above which both components are tested
_BOTH_SIDES = 0.3
#: rows of a projection used to fit the 1-D mixture
_MIXTURE_ROWS = 5000


@dataclass(frozen=True)
class Representation:
    """A whitened PCA projection: ``((X - mean) @ components.T) / scale``."""

    mean: np.ndarray
    components: np.ndarray
    scale: np.ndarray

    def transform(self, X: np.ndarray) -> np.ndarray:
        # centre after projecting: ``X - mean`` would be a temporary as large as the table
        Z = X @ self.components.T
        Z -= self.mean @ self.components.T
        Z /= self.scale
        return Z

    def transform_masked(self, values: np.ndarray, Z: np.ndarray, features: np.ndarray, fill: np.ndarray) -> np.ndarray:
        """``transform(X)`` with ``X[:, features]`` set to ``fill``, given ``Z = transform(X)``.

        ``values`` is ``X[:, features]``. The projection is linear, so only the masked
        columns' part is replaced: no copy of the (possibly 784-column) rows is made.
        """
        delta = np.asarray(fill, dtype=np.float64) - values
        return Z + (delta @ self.components[:, features].T) / self.scale


@dataclass(frozen=True)
class Mixture1D:
    """A fitted two-component 1-D Gaussian mixture and its BIC gain over one Gaussian."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    bic_gain: float

    def posterior(self, z: np.ndarray, k: int) -> np.ndarray:
        """Posterior probability of component ``k`` for each value of ``z``."""
        w, m, v = self.weights, self.means, self.variances
        logp = np.log(w)[None, :] - 0.5 * np.log(2 * np.pi * v)[None, :] - 0.5 * (z[:, None] - m[None, :]) ** 2 / v[None, :]
        logp -= logp.max(axis=1, keepdims=True)
        p = np.exp(logp)
        return p[:, k] / p.sum(axis=1)


@dataclass(frozen=True)
class ClusterCandidate:
    """A small mixture component of one class along one direction: a suspected poisoned cluster."""

    label: int
    direction: int  # rank of the singular direction (0 = top)
    members: np.ndarray  # row indices in the component (posterior > 0.5)
    rows: np.ndarray  # row indices of the class
    mixture: Mixture1D
    component: int  # which of the mixture's two components is the cluster


@dataclass(frozen=True)
class SpectralSearch:
    """Per class: its centre and top directions in the representation; and the candidates."""

    centres: dict[int, np.ndarray]
    directions: dict[int, np.ndarray]
    candidates: list[ClusterCandidate]


def fit_representation(
    X: np.ndarray, *, n_components: int, max_fit_rows: int, random_state: int, rng: np.random.Generator,
    whiten: bool = True, fingerprint: str | None = None,
) -> Representation:
    """PCA of ``X`` with at most ``n_components`` dimensions, fitted on at most ``max_fit_rows`` rows.

    Whitened (unit variance per component) unless ``whiten=False``, which keeps the
    components' scale, so that a regularised model on the projection penalises the
    directions as it would on the raw columns: the form for a label model on a wide table.
    On a wide table the basis is shared with the other representation models of the
    scan (:func:`~._projection.pca_basis`).
    """
    b = pca_basis(X, n_components=n_components, max_fit_rows=max_fit_rows, random_state=random_state, rng=rng,
                  fingerprint=fingerprint)
    return Representation(mean=b.mean, components=b.components, scale=b.sd if whiten else np.ones(b.sd.size))


def fit_mixture_1d(z: np.ndarray, random_state: int) -> Mixture1D:
    """Two-component 1-D Gaussian mixture of ``z`` and its BIC gain over one Gaussian.

    The fit is scikit-learn's ``GaussianMixture(2, n_init=2, reg_covar=1e-4,
    init_params="k-means++", random_state=random_state)`` (same seeding, same EM steps
    and stopping rule), written out for one dimension: the estimator's per-iteration
    validation was most of this detector's time on a 784-column table (30 mixtures).
    """
    x = np.asarray(z, dtype=np.float64).ravel()
    n = x.size
    # one Gaussian in closed form (maximum likelihood mean and variance, 2 parameters)
    var1 = float(np.var(x)) + 1e-6
    bic1 = n * (np.log(2 * np.pi * var1) + 1.0) + 2.0 * np.log(n)
    rs = np.random.RandomState(random_state)
    best: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    best_bound = -np.inf
    for _ in range(_MIXTURE_INITS):
        # k-means++ seeding without Lloyd iterations: on 1-D data EM does the rest
        seeds = _kmeans_plusplus_1d(x, rs)
        resp = np.zeros((n, 2))
        resp[seeds, np.arange(2)] = 1.0
        nk, means, variances = _gaussian_m_step(x, resp)
        weights = nk / n
        bound = -np.inf
        for _ in range(_MIXTURE_MAX_ITER):
            previous = bound
            logp = _component_log_prob(x, weights, means, variances)
            norm = _logsumexp2(logp)
            nk, means, variances = _gaussian_m_step(x, np.exp(logp - norm[:, None]))
            weights = nk / nk.sum()
            bound = float(norm.mean())
            if abs(bound - previous) < _MIXTURE_TOL:
                break
        if best is None or bound > best_bound:
            best, best_bound = (weights, means, variances), bound
    assert best is not None
    weights, means, variances = best
    score = float(_logsumexp2(_component_log_prob(x, weights, means, variances)).mean())
    bic2 = -2.0 * score * n + 5.0 * np.log(n)  # 2 means, 2 variances, 1 free weight
    return Mixture1D(weights=weights, means=means, variances=variances, bic_gain=float(bic1 - bic2))


def _kmeans_plusplus_1d(x: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
    """Two k-means++ seeds of 1-D ``x``: scikit-learn's ``kmeans_plusplus(x[:, None], 2)`` step by step.

    The same draws from ``rs`` and the same arithmetic (squared distances as
    ``-2 c x + c^2 + x^2``, clipped at 0; two local trials), so the same seeds, without
    the estimator's input validation, which cost more than the seeding (60 calls per
    wide table).
    """
    n = x.size
    w = np.ones(n)
    x2 = x * x

    def sq_dist(c: np.ndarray) -> np.ndarray:
        d = -2 * (c[:, None] * x[None, :])
        d += (c * c)[:, None]
        d += x2[None, :]
        return np.maximum(d, 0.0, out=d)

    first = rs.choice(n, p=w / w.sum())
    closest = sq_dist(x[[first]])
    pot = closest @ w
    trials = np.searchsorted(np.cumsum(w * closest), rs.uniform(size=2) * pot)
    np.clip(trials, None, n - 1, out=trials)
    cand = np.minimum(closest, sq_dist(x[trials]))
    return np.array([first, trials[int(np.argmin(cand @ w.reshape(-1, 1)))]])


#: EM settings of the 1-D mixture (scikit-learn's defaults, with two initialisations)
_MIXTURE_INITS = 2
_MIXTURE_MAX_ITER = 100
_MIXTURE_TOL = 1e-3
_MIXTURE_REG = 1e-4


def _gaussian_m_step(x: np.ndarray, resp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Component sizes, means and variances (plus ``_MIXTURE_REG``) from responsibilities."""
    nk = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps
    means = (resp.T @ x) / nk
    variances = (resp * (x[:, None] - means) ** 2).sum(axis=0) / nk + _MIXTURE_REG
    return nk, means, variances


def _logsumexp2(a: np.ndarray) -> np.ndarray:
    """``log(exp(a[:, 0]) + exp(a[:, 1]))`` without overflow (two columns: no general reduction needed)."""
    hi = np.maximum(a[:, 0], a[:, 1])
    return hi + np.log1p(np.exp(-np.abs(a[:, 0] - a[:, 1])))


def _component_log_prob(x: np.ndarray, weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> np.ndarray:
    """``log(weight_k) + log N(x | mean_k, variance_k)`` per row and component."""
    return (np.log(weights) - 0.5 * np.log(2 * np.pi * variances)
            - 0.5 * (x[:, None] - means) ** 2 / variances)


def find_candidates(
    Z: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    n_directions: int,
    max_fit_rows: int,
    min_cluster: int,
    max_cluster_fraction: float,
    min_bic_gain: float,
    random_state: int,
    rng: np.random.Generator,
) -> SpectralSearch:
    """Small bimodal clusters of each class along its top ``n_directions`` singular directions."""
    m = min(n_directions, Z.shape[1])
    centres: dict[int, np.ndarray] = {}
    directions: dict[int, np.ndarray] = {}
    cands: list[ClusterCandidate] = []
    for c in range(n_classes):
        rows = np.flatnonzero(y == c)
        if rows.size < 2 * min_cluster + 2:
            continue
        sub = rows if rows.size <= max_fit_rows else rng.choice(rows, max_fit_rows, replace=False)
        centre = Z[sub].mean(axis=0)
        _, _, vt = np.linalg.svd(Z[sub] - centre, full_matrices=False)
        V = vt[:m]
        directions[c] = V
        centres[c] = centre
        proj = (Z[rows] - centre) @ V.T
        for j in range(V.shape[0]):
            z = proj[:, j]
            zs = z if z.size <= _MIXTURE_ROWS else z[rng.choice(z.size, _MIXTURE_ROWS, replace=False)]
            mix = fit_mixture_1d(zs, random_state)
            if mix.bic_gain < min_bic_gain:
                continue
            order = np.argsort(mix.weights)
            # when the components are of similar size (heavy poisoning) either may be the poisoned one
            comps = [int(order[0])] + ([int(order[1])] if mix.weights.min() >= _BOTH_SIDES else [])
            for small in comps:
                member = mix.posterior(z, small) > 0.5
                nc = int(member.sum())
                if nc < min_cluster or nc > max_cluster_fraction * rows.size:
                    continue
                cands.append(ClusterCandidate(label=c, direction=j, members=rows[member], rows=rows,
                                              mixture=mix, component=small))
    return SpectralSearch(centres=centres, directions=directions, candidates=cands)
