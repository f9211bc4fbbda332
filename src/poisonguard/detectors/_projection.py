"""One PCA basis of a wide encoded table per scan, shared by the representation models.

``confident`` (fold models on an unwhitened projection) and ``backdoor_spectral``
(per-class spectra on a whitened one) both reduce a wide table by a randomized SVD
of the same rows. On a wide table the basis is fitted once, with
:data:`SHARED_COMPONENTS` components (or more when a caller asks for more), memoised by
the matrix's fingerprint and the rows it was fitted on, and each caller takes its
leading components. The trigger detectors keep the raw columns: a stamp lives on a
few columns that a projection smears.

A narrow table (at most :data:`WIDE_COLUMNS` columns) gets exactly the components its
caller asks for, as before; only ``backdoor_spectral`` projects it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ._base import fingerprint_array
from ._memo import BoundedMemo

__all__ = ["PCABasis", "pca_basis", "SHARED_COMPONENTS", "WIDE_COLUMNS"]

#: components fitted once for every caller on a wide table (``confident`` uses 64, ``backdoor_spectral`` 32)
SHARED_COMPONENTS = 64
#: above this many columns a table counts as wide and its basis is shared
WIDE_COLUMNS = 128


@dataclass(frozen=True)
class PCABasis:
    """Leading principal directions of a matrix.

    ``components`` (k x d) are orthonormal rows, ``sd`` the standard deviation of the
    fitted rows along each (descending), ``mean`` the fitted rows' mean. Directions of
    (numerically) zero variance are dropped, so ``k`` may be below what was asked.
    """

    mean: np.ndarray
    components: np.ndarray
    sd: np.ndarray

    def leading(self, k: int) -> "PCABasis":
        """The first ``k`` directions."""
        return PCABasis(mean=self.mean, components=self.components[:k], sd=self.sd[:k])


#: the last bases by (matrix, fitted rows, components, seed): one wide table's scan needs one
_memo: BoundedMemo[PCABasis] = BoundedMemo(2)


def pca_basis(
    X: np.ndarray, *, n_components: int, max_fit_rows: int, random_state: int, rng: np.random.Generator,
    fingerprint: str | None = None,
) -> PCABasis:
    """The top ``n_components`` principal directions of ``X``, fitted on at most ``max_fit_rows`` rows.

    The rows are drawn from ``rng`` (one draw, whether or not the basis is memoised, so
    a caller's later draws do not depend on what ran before it). ``fingerprint``:
    ``fingerprint_array(X)`` when the caller has it.
    """
    n, d = X.shape
    sub = rng.choice(n, size=max_fit_rows, replace=False) if n > max_fit_rows else None
    wide = d > WIDE_COLUMNS
    k_fit = max(int(n_components), SHARED_COMPONENTS) if wide else int(n_components)
    if not wide:
        return _fit(X, sub, k_fit, random_state).leading(n_components)
    rows = "all" if sub is None else hashlib.blake2b(np.ascontiguousarray(sub).tobytes(), digest_size=16).hexdigest()
    key = (fingerprint if fingerprint is not None else fingerprint_array(X), rows, k_fit, int(random_state))
    basis = _memo.get(key)
    if basis is None:
        basis = _fit(X, sub, k_fit, random_state)
        _memo.put(key, basis)
    return basis.leading(n_components)


def _fit(X: np.ndarray, sub: np.ndarray | None, k: int, random_state: int) -> PCABasis:
    from sklearn.utils.extmath import randomized_svd

    Xs = X if sub is None else X[sub]
    mean = Xs.mean(axis=0)
    k = max(1, min(k, X.shape[1], Xs.shape[0] - 1))
    _, s, vt = randomized_svd(Xs - mean, k, n_oversamples=10, n_iter=4, random_state=random_state)
    sd = s / np.sqrt(max(Xs.shape[0] - 1, 1))
    keep = sd > 1e-8 * max(float(sd.max()), 1e-300)
    if not keep.any():  # a constant matrix: any direction, unit scale
        keep[:] = True
        sd = np.ones_like(sd)
    return PCABasis(mean=mean, components=vt[keep], sd=sd[keep])
