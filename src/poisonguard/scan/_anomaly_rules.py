"""The anomaly detectors' half of the fusion: robust z, the tail tests, flags and strength.

An anomaly detector's raw score is compared with the bulk of the table (robust z) and
its upper tail with a tail fitted to the table's own quantiles; see the module
docstring of :mod:`poisonguard.scan._ensemble` for how the results enter the fusion.

With labels the null is class-aware (:class:`_TailNull`): a table is a mixture of
classes, and one clean class that a detector scores with a heavier upper tail (a
spread-out class, or a sub-cluster of it) puts more rows far out than the pooled tail
expects. Those rows are the class's structure: each class's own tail, fitted to its
rows short of robust z ``Z_PRESENT_FLAG``, counts in the null beside the table's.

A present detector's flags need the row to stand out against that null, not only past
a fixed robust z: clean real tables reach robust z 5-8 on their own (many heavy-tailed
columns), so a row past ``Z_PRESENT_FLAG`` is flagged only when the null expects fewer
than ``ROW_EXPECTED_MAX`` rows that far out or its q-value is at most ``FAR_FDR``. An
absent detector flags at ``Z_MID`` the rows that the null does not explain: it expects
fewer than ``ROW_EXPECTED_MAX`` rows at or above the row, or the row lies above a gap
that the null's shape makes unlikely at level ``PLATEAU_ALPHA`` (:func:`_unexplained_far`;
on small tables the fitted tail expects a row or two even where far outliers lie, and
the gap is what sets them apart). A detector present by the plateau
alone keeps a plain z rule: the plateau is itself evidence that the fitted tail does not
describe the top of the table (a bounded score with injected rows piled up under its
cap). It flags at ``TAIL_HIGH``, where the plateau lies, and in the band from
``Z_PRESENT_FLAG`` to ``TAIL_HIGH`` only rows that stand out from their class's lower
quartile (:func:`_present_flags`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import ndtr
from scipy.stats import binom

__all__ = [
    "robust_z",
    "anomaly_presence",
    "anomaly_group",
    "AnomalyGroup",
    "AnomalyPresence",
    "tail_excess",
    "TailExcess",
    "binom_log10_sf",
    "plateau_p_value",
    "Z_MID",
    "Z_PRESENT",
    "Z_PRESENT_FLAG",
    "EXCESS_LOG10P",
    "ANOMALY_FDR",
    "ROW_EXPECTED_MAX",
    "FAR_FDR",
    "CLASS_FIT_MIN_ROWS",
]

#: robust standard deviations at which an anomaly score reaches strength AUTO_THRESHOLD
Z_MID = 8.0
#: robust z of the tail test of an anomaly detector: the plateau is measured between these
TAIL_LOW, TAIL_HIGH = 4.0, 6.0
#: share of the rows above TAIL_LOW that must also lie above TAIL_HIGH (a plateau)
PLATEAU_SHARE = 0.5
#: rows above TAIL_LOW needed for a plateau (share of the table, and a count)
TAIL_MIN_SHARE, TAIL_MIN_ROWS = 0.01, 3
#: the plateau must also be significant: ``above_high`` of ``above_low`` rows against a
#: Binomial(above_low, PLATEAU_CLEAN_SHARE) count at level PLATEAU_ALPHA. 0.3 is the upper
#: end of the share measured on clean real tables (0.2-0.3); with a handful of rows above
#: TAIL_LOW a share of 0.5 is chance (statsmodels macrodata, 203 rows: 4 of 7 quarters
#: above z 4 were above 6, the 2008-09 crisis; MASS crabs, 200 rows: 5 of 9 crabs, the
#: smallest and largest; both clean, both had been flagged)
PLATEAU_CLEAN_SHARE, PLATEAU_ALPHA = 0.3, 0.01
#: an anomaly detector judged present ranks with Phi(z - Z_PRESENT) ...
Z_PRESENT = 3.0
#: ... and flags rows at robust z >= Z_PRESENT_FLAG
Z_PRESENT_FLAG = 5.0
#: excess test (:func:`tail_excess`): present at -log10 p >= EXCESS_LOG10P (p <= 1e-6; with at
#: most EXCESS_MAX_THRESHOLDS thresholds tried, Bonferroni keeps the family-wise level <= 2e-3)
EXCESS_LOG10P = 6.0
EXCESS_MAX_THRESHOLDS = 2000
#: ... at a threshold with at least EXCESS_RATIO x the expected rows and an excess of
#: at least max(EXCESS_MIN_ROWS, EXCESS_MIN_SHARE x rows)
EXCESS_RATIO = 2.0
EXCESS_MIN_ROWS, EXCESS_MIN_SHARE = 3, 0.005
#: quantiles whose log-survival the null tail of the excess test is fitted to
_FIT_QUANTILES = np.linspace(0.5, 0.9, 9)
#: a present detector also flags rows whose q-value (estimated false-discovery share) is <= this
ANOMALY_FDR = 0.05
#: ... and rows at robust z >= Z_PRESENT_FLAG that the null expects fewer than this many rows at or above
ROW_EXPECTED_MAX = 1.0
#: ... or whose q-value is <= this (past robust z Z_PRESENT_FLAG the null's share is looser)
FAR_FDR = 0.2
#: a class gets a null tail of its own (the class-aware null) when it has at least this many rows
CLASS_FIT_MIN_ROWS = 30
#: ... and is among the CLASS_FIT_MAX largest (the fits cost time per class)
CLASS_FIT_MAX = 50

#: rows per block where a per-row lookup would otherwise need a full-length index array
_ROW_BLOCK = 1 << 16


def robust_z(scores: np.ndarray) -> np.ndarray:
    """Robust z-score of each value against the bulk of ``scores``.

    The scale is 1.4826 x MAD; when more than half the values tie (MAD = 0) it falls
    back to the mean absolute deviation, then to 1.
    """
    centre, scale = _centre_scale(scores)
    out = np.subtract(np.asarray(scores, dtype=np.float64), centre)
    out /= scale  # in place: the same values as ``(s - centre) / scale`` without a second array
    return out


def _std_normal_cdf(x: np.ndarray, shift: float) -> np.ndarray:
    """``Phi(x - shift)``, in one new array.

    ``scipy.stats.norm.cdf`` gives the same values (it calls ``ndtr``) through several
    full-length temporaries; at a million rows each costs 8 MiB of the scan's peak.
    """
    out = np.subtract(np.asarray(x, dtype=np.float64), shift)
    return ndtr(out, out=out)


@dataclass(frozen=True)
class AnomalyPresence:
    """The tail test of one anomaly detector (two rules; either one makes it present).

    Attributes
    ----------
    above_low, above_high : int
        Rows at robust z >= ``TAIL_LOW`` and >= ``TAIL_HIGH``.
    plateau : float
        ``above_high / above_low`` (0 when no row is above ``TAIL_LOW``).
    excess_log10p : float
        ``-log10`` of the smallest binomial p-value of the excess test (0 when no
        threshold met the effect-size conditions).
    excess_rows, expected_rows : float
        Rows at or above the most significant threshold, and how many the fitted
        null fitted to the table's own quantiles expects there.
    present : bool
        A plateau, or an excess of rows over the table's own tail: injected rows.
    """

    above_low: int
    above_high: int
    plateau: float
    present: bool
    excess_log10p: float = 0.0
    excess_rows: int = 0
    expected_rows: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TailExcess:
    """The excess test of one anomaly score against a tail fitted to its own quantiles.

    Attributes
    ----------
    log10p : float
        ``-log10`` of the smallest one-sided binomial p-value over the thresholds tried.
    observed, expected : float
        Rows at or above that threshold, and the null's expectation there.
    threshold : float
        The most significant threshold (``inf`` when none qualified): the rows at or
        above it are the excess the test found.
    q_value : ndarray
        Per row: the smallest estimated false-discovery share (expected / observed rows at
        or above a threshold) of any threshold at or below the row's score; 1 below the
        fit's upper quantile.
    threshold : float
        The most significant threshold (``inf`` when none qualified).
    null : _TailNull or None
        The fitted null (``None`` when the tail is degenerate or the table too small):
        ``null.expected(t)`` is how many rows it expects at or above ``t``.
    """

    log10p: float
    observed: int
    expected: float
    q_value: np.ndarray
    threshold: float = float("inf")
    null: "_TailNull | None" = None

    def row_expected(self, at: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
        """Rows the null expects at or above each score in ``at`` (``inf`` without a null).

        With the boolean mask ``where`` only those entries are computed (the rest are ``inf``).
        """
        at = np.asarray(at, dtype=np.float64)
        out = np.full(at.shape, np.inf)
        if self.null is not None:
            idx = np.ones(at.shape, dtype=bool) if where is None else np.asarray(where, dtype=bool)
            if idx.any():
                out[idx] = self.null.expected(at[idx])
        return out


@dataclass(frozen=True)
class _Tail:
    """A generalised Pareto tail over the median ``u`` of ``n`` values (shape ``xi``, scale ``sigma``).

    Below ``u`` the expectation is the empirical count of those values (``srt``, sorted):
    the bulk of a class explains itself.
    """

    n: int
    u: float
    xi: float
    sigma: float
    srt: np.ndarray

    def expected(self, t: np.ndarray) -> np.ndarray:
        out = self.n * 0.5 * np.exp(_gpd_log_survival(np.maximum(t - self.u, 0.0), self.xi, self.sigma))
        low = t < self.u
        if low.any():
            below = self.srt.size - np.searchsorted(self.srt, t[low], side="left")
            out[low] = np.maximum(below, self.n * 0.5)
        return out


@dataclass(frozen=True)
class _TailNull:
    """The null of the excess test: the table's tail, and with labels each class's own tail.

    ``expected(t)`` is the larger of the table tail's expectation and the sum of the
    classes' (a class with fewer than ``CLASS_FIT_MIN_ROWS`` rows, or a degenerate tail,
    counts its share of the table tail). A table is a mixture of classes; a class whose
    own upper tail is heavier than the table's (a spread-out or sub-clustered class) puts
    more clean rows far out than the pooled tail expects, and those rows are that
    class's structure, not injected rows. The larger of the two keeps a clean table's
    tail at or below the null whichever model describes it.
    """

    table: _Tail
    classes: tuple[_Tail, ...] = ()
    pooled_share: float = 0.0

    def expected(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        e = self.table.expected(t)
        if not self.classes:
            return e
        mix = self.pooled_share * e
        for c in self.classes:
            # a class explains no more rows than it has at or above t (its fitted rows), or
            # its share of the table's tail: its own fit extrapolated past its rows can be
            # far heavier than anything it shows (a sub-cluster makes xi large)
            own = c.srt.size - np.searchsorted(c.srt, t, side="left")
            mix = mix + np.minimum(c.expected(t), np.maximum(own, c.n / self.table.n * e))
        return np.maximum(e, mix)


def _gpd_log_survival(x: np.ndarray, xi: float, sigma: float) -> np.ndarray:
    """log P(X > x) of a generalised Pareto excess with shape ``xi >= 0`` and scale ``sigma``."""
    if xi < 1e-9:
        return -x / sigma
    return -np.log1p(xi * x / sigma) / xi


def _sorted_quantiles(srt: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Quantiles of already sorted values (linear interpolation, as ``np.quantile``)."""
    pos = np.asarray(probs, dtype=np.float64) * (srt.size - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, srt.size - 1)
    return srt[lo] + (pos - lo) * (srt[hi] - srt[lo])


def _fit_tail(srt: np.ndarray, *, fast: bool = False) -> _Tail | None:
    """The null tail over q50 fitted to the quantiles q50..q90 of sorted values.

    ``None`` when the tail is degenerate (q90 == q50). ``fast`` (the classes' tails of
    the class-aware null, one per class): a grid over shape and scale, refined by a
    short Nelder-Mead from its best point, instead of two full runs.
    """
    q = _sorted_quantiles(srt, _FIT_QUANTILES)
    x = q - q[0]
    if x[-1] <= 1e-12:
        return None
    target = np.log((1.0 - _FIT_QUANTILES) / 0.5)

    def loss(p: np.ndarray) -> float:
        return float(np.sum((_gpd_log_survival(x, max(p[0], 0.0), np.exp(p[1]) * x[-1]) - target) ** 2))

    if fast:
        xi_g, ls_g = np.meshgrid(np.linspace(0.0, 3.0, 61), np.linspace(-4.0, 2.0, 121), indexing="ij")
        xi_c, sg = np.maximum(xi_g.ravel()[:, None], 1e-9), np.exp(ls_g.ravel())[:, None] * x[-1]
        pred = -np.log1p(xi_c * x[None, :] / sg) / xi_c
        j = int(np.argmin(((pred - target) ** 2).sum(axis=1)))
        starts = [(float(xi_g.ravel()[j]), float(ls_g.ravel()[j]))]
        opts = {"xatol": 1e-5, "fatol": 1e-10, "maxiter": 400}
    else:
        starts = [(xi0, np.log(0.6)) for xi0 in (0.0, 0.5)]
        opts = {"xatol": 1e-7, "fatol": 1e-12, "maxiter": 4000}
    fits = [minimize(loss, list(x0), method="Nelder-Mead", options=opts) for x0 in starts]
    best = min(fits, key=lambda r: r.fun)
    return _Tail(srt.size, float(q[0]), max(float(best.x[0]), 0.0), float(np.exp(best.x[1]) * x[-1]), srt)


def _fit_null(s: np.ndarray, srt: np.ndarray, y: np.ndarray | None, *,
              z: np.ndarray | None = None) -> _TailNull | None:
    """The table's tail and, with labels, each class's own (see :class:`_TailNull`).

    A class's tail is fitted to its rows below robust z ``Z_PRESENT_FLAG``: a blob of
    injected rows that shares one label and makes up a large part of a small class must
    not become the class's own tail (the null then explains the rows short of that
    line, and the rows past it are judged against the table's tail).
    """
    table = _fit_tail(srt)
    if table is None:
        return None
    if y is None:
        return _TailNull(table)
    y = np.asarray(y)
    short = (robust_z(s) if z is None else z) < Z_PRESENT_FLAG
    classes, pooled = [], 0
    labels, counts = np.unique(y, return_counts=True)
    # the largest classes get a tail of their own; the rest count their share of the table's
    fitted = set(labels[np.argsort(-counts, kind="stable")[:CLASS_FIT_MAX]].tolist())
    for c in labels:
        vals = s[(y == c) & short]
        tail = _fit_tail(np.sort(vals), fast=True) if vals.size >= CLASS_FIT_MIN_ROWS and c in fitted else None
        if tail is None:
            pooled += int((y == c).sum())
        else:
            classes.append(tail)
    return _TailNull(table, tuple(classes), pooled / s.size)


def tail_excess(scores: np.ndarray, y: np.ndarray | None = None, *, z: np.ndarray | None = None) -> TailExcess:
    """Compare the upper tail of ``scores`` with a tail fitted to the table's own quantiles.

    The null is a generalised Pareto tail over the median, ``P(S >= t) = 0.5 S_GPD(t -
    q50; xi, sigma)`` with shape ``xi >= 0`` (exponential or heavier, never lighter),
    fitted by least squares to the log-survival at the 50%, 55%, ..., 90% quantiles.
    Above q90 every distinct score (at most ``EXCESS_MAX_THRESHOLDS`` of them, evenly by
    rank) is a threshold ``t``: ``N(t)`` rows lie at or above it, the null expects
    ``E(t)``. The statistic is the smallest binomial p-value ``P(Bin(n, E/n) >= N)``
    among thresholds with ``N >= EXCESS_RATIO * E`` and ``N - E >= max(EXCESS_MIN_ROWS,
    EXCESS_MIN_SHARE n)``. A clean table's own tail, light (Isolation Forest on real
    tables) or heavy (lognormal, Pareto, Weibull with shape < 1), is at or below the
    fitted one; a cluster of injected rows beyond the 90% quantile is an excess it cannot
    explain. Injected rows that make up more than 10% of the table, or that sit below
    its 90% quantile, are not seen.

    ``z`` is ``robust_z(scores)`` when the caller has it (it is not computed twice).
    """
    s = np.asarray(scores, dtype=np.float64)
    n = s.size
    if n < 20 or not np.isfinite(s).all():
        return TailExcess(0.0, 0, 0.0, np.ones(n))
    srt = np.sort(s)
    null = _fit_null(s, srt, y, z=z)
    if null is None:
        return TailExcess(0.0, 0, 0.0, np.ones(n))
    top = srt[srt >= _sorted_quantiles(srt, np.array([0.9]))[0]]
    if top.size > EXCESS_MAX_THRESHOLDS:
        top = top[np.linspace(0, top.size - 1, EXCESS_MAX_THRESHOLDS).astype(int)]
    t = np.unique(top)
    observed = n - np.searchsorted(srt, t, side="left")
    expected = null.expected(t)
    log10p = binom_log10_sf(observed, n, expected / n)
    ok = (observed >= EXCESS_RATIO * expected) & (observed - expected >= max(EXCESS_MIN_ROWS, EXCESS_MIN_SHARE * n))
    log10p = np.where(ok, log10p, 0.0)
    i = int(np.argmax(log10p))
    # q-value per threshold: the best false-discovery share of any threshold at or below it
    fdr = np.minimum(expected / np.maximum(observed, 1), 1.0)
    q_at = np.minimum.accumulate(fdr)
    # a row below every threshold gets 1 (the first entry), else the q of the last threshold <= it;
    # in blocks of rows, so the positions are never a full-length array of their own
    q_ext = np.concatenate(([1.0], q_at))
    q = np.empty(n)
    for r0 in range(0, n, _ROW_BLOCK):
        q[r0:r0 + _ROW_BLOCK] = q_ext[np.searchsorted(t, s[r0:r0 + _ROW_BLOCK], side="right")]
    return TailExcess(float(min(log10p[i], 300.0)), int(observed[i]), float(expected[i]), q,
                      float(t[i]) if log10p[i] > 0 else float("inf"), null)


def binom_log10_sf(k: np.ndarray, n: int, p: np.ndarray) -> np.ndarray:
    """``-log10 P(Bin(n, p) >= k)``, finite where the exact value underflows.

    ``binom.logsf`` returns ``-inf`` once the tail probability is below about 1e-308,
    and every such threshold then tied at ``inf``: the excess test took the first of
    them, the *lowest* threshold, although a higher one was far more significant (on
    Shuttle with a blob of 1,518 rows its threshold fell at robust z 3.9, among 433 clean
    rows the null expects there, instead of at the blob's edge near z 8). Where the exact
    value underflows, the Chernoff bound ``n KL(k/n || p)`` (natural log; a lower bound
    on ``-log P``, tight to a term of order ``log k``) ranks the thresholds instead.
    """
    k = np.asarray(k, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1.0)
    out = -binom.logsf(k - 1, n, p) / np.log(10.0)
    under = ~np.isfinite(out)
    if under.any():
        f, pu = np.clip(k[under] / n, 1e-300, 1.0), p[under]
        with np.errstate(divide="ignore", invalid="ignore"):
            rest = np.where(f < 1.0, (1.0 - f) * np.log((1.0 - f) / np.maximum(1.0 - pu, 1e-300)), 0.0)
        out[under] = n * (f * np.log(f / pu) + rest) / np.log(10.0)
    return out


def plateau_p_value(above_low: int, above_high: int) -> float:
    """One-sided p-value of ``above_high`` of ``above_low`` tail rows under a clean tail's share.

    ``P(X >= above_high)`` for ``X ~ Binomial(above_low, PLATEAU_CLEAN_SHARE)``; 1 without rows.
    """
    if above_low <= 0 or above_high <= 0:
        return 1.0
    return float(binom.sf(above_high - 1, above_low, PLATEAU_CLEAN_SHARE))


def anomaly_presence(z: np.ndarray, scores: np.ndarray | None = None, *,
                     excess: TailExcess | None = None) -> AnomalyPresence:
    """Does the upper tail hold injected rows? (see module docstring)

    ``z`` are robust z-scores (the plateau rule); ``scores`` the raw scores for the excess
    rule (:func:`tail_excess`), or ``excess`` its result when already computed; without
    either only the plateau rule runs.
    """
    z = np.asarray(z, dtype=np.float64)
    low, high = int((z >= TAIL_LOW).sum()), int((z >= TAIL_HIGH).sum())
    plateau = high / low if low else 0.0
    plateau_found = (low >= max(TAIL_MIN_ROWS, TAIL_MIN_SHARE * z.size) and plateau >= PLATEAU_SHARE
                     and plateau_p_value(low, high) <= PLATEAU_ALPHA)
    if excess is None:
        excess = tail_excess(scores) if scores is not None else TailExcess(0.0, 0, 0.0, np.ones(z.size))
    present = plateau_found or excess.log10p >= EXCESS_LOG10P
    return AnomalyPresence(low, high, float(plateau), bool(present), excess.log10p, excess.observed,
                           round(excess.expected, 3))


@dataclass(frozen=True)
class AnomalyGroup:
    """One anomaly detector after its tail test: the test, its auto flags, its strength when present."""

    presence: AnomalyPresence
    flags: np.ndarray
    strength: np.ndarray


def anomaly_group(raw: np.ndarray, y: np.ndarray | None) -> AnomalyGroup:
    """Tail test, flags and strength of one anomaly detector.

    With labels the tail test's null is class-aware (:func:`tail_excess`), and each
    row's score is first lowered by its class's lower-quartile excess over the table
    (:func:`_class_offset`): a clean class that the detector scores high as a whole (a
    small, distinct class) is the table's structure, not injected rows.
    """
    raw = np.asarray(raw, dtype=np.float64)
    z = robust_z(raw)
    excess = tail_excess(raw, y, z=z)
    test = anomaly_presence(z, excess=excess)
    offset = _class_offset(z, y, line=Z_PRESENT_FLAG if test.present else Z_MID)
    if offset is None:
        # no class is measured from its own quartile: the rows' own scores are the scores
        # (and the q-value at a row's own score is its q-value), so no shifted copies are made
        z_own, raw_own, q_own = z, raw, excess.q_value if test.present else None
    else:
        z_own = z - offset
        _, scale = _centre_scale(raw)
        raw_own = raw - offset * scale
        del offset
        q_own = _q_at(raw, excess.q_value, raw_own) if test.present else None
    if not test.present:
        # the plain line, and then only rows the table's own tail does not explain
        # (_unexplained_far): a clean heavy tail reaches robust z 8-9 with rows of its own
        flags = _unexplained_far(z_own >= Z_MID, raw_own, excess.null)
        if z_own is not z:
            flags |= _unexplained_far((z >= Z_MID) & (_within_class_z(raw, y) >= Z_PRESENT_FLAG), raw, excess.null)
        return AnomalyGroup(test, flags, _std_normal_cdf(z, Z_MID))
    # the plateau rule's band is judged from each class's lower quartile (see _present_flags)
    band_z = _class_quartile_z(z, y) if test.excess_log10p < EXCESS_LOG10P else None
    flags = _present_flags(z_own, q_own, raw_own, excess, test, band_z=band_z)
    if z_own is not z:
        # a row of such a class still counts when it stands out within its own class
        flags |= _present_flags(z, excess.q_value, raw, excess, test, band_z=band_z) & \
            (_within_class_z(raw, y) >= Z_PRESENT_FLAG)
    del band_z
    del z, raw_own, excess  # the null's sorted scores go too
    strength = _std_normal_cdf(z_own, Z_PRESENT)
    del z_own
    np.maximum(strength, np.subtract(1.0, q_own), out=strength)
    return AnomalyGroup(test, flags, strength)


def _unexplained_far(far: np.ndarray, raw: np.ndarray, null: _TailNull | None) -> np.ndarray:
    """The rows of ``far`` (an absent detector's rows past ``Z_MID``) that the table's own tail does not explain.

    A row is kept when the null (:class:`_TailNull`, the table's tail fitted to its
    own quantiles, class-aware with labels) expects fewer than ``ROW_EXPECTED_MAX``
    rows at or above its score, the line a present detector's far rows are held to;
    or when it lies above a gap that the null's *shape* makes unlikely: of the rows at
    or above the gap's lower edge (the next row under the far rows, or a far row), the
    ``k`` at or above its upper edge all lie there with probability ``(E(upper) /
    E(lower))^k`` under the null, and the gap counts at probability <= ``PLATEAU_ALPHA``.
    The ratio, not the null's level: a bounded score's fitted tail (shape >= 0) can
    expect 100 rows past robust z 8 where the table has 7 (Isolation Forest on
    bananas), and an empty stretch there says nothing. Far injected rows sit above
    such a gap (breast_cancer with 6 far rows: iforest robust z 11.0-11.6, the next
    row at 7.0; the null expects 7.6 rows at or above 7.0 and 2.3 at or above 11.0,
    (2.3 / 7.6)^6 = 8e-4). The rows of a clean heavy tail continue it: MASS crabs
    (200 rows, clean) has iforest robust z 9.0, 8.3, 8.3, 7.1, 6.4, ..., where its
    tail expects 1.7-2.2 rows at or above each of the three past 8 ((2.2 / 3.3)^3 =
    0.3 for the gap under them); the plain line flagged them. Without a null
    (degenerate tail or a table of under 20 rows) the line alone decides.
    """
    if null is None or not far.any():
        return far
    idx = np.flatnonzero(far)
    at = raw[idx]
    keep = null.expected(at) < ROW_EXPECTED_MAX
    if not keep.all():
        # the next row under the far rows (a boolean mask, not a copy of the scores below)
        under = float(np.max(raw, where=raw < float(at.min()), initial=-np.inf))
        if np.isfinite(under):
            # that row's score and the far rows' distinct scores from the lowest up
            pts = np.concatenate(([under], np.unique(at)))
            expected = np.maximum(null.expected(pts), 1e-300)
            # the chance, under the null's shape, that all rows at or above the upper edge of
            # a gap lie there, given that they lie at or above its lower edge: the level of
            # the null drops out (a bounded score's fitted tail can expect 100 rows where 7 are)
            above = at.size - np.searchsorted(np.sort(at), pts[1:], side="left")
            gap_ok = above * np.log(np.minimum(expected[1:] / expected[:-1], 1.0)) <= np.log(PLATEAU_ALPHA)
            if gap_ok.any():
                # the lowest far score with such a gap under it: it and every far row above it
                keep |= at >= pts[1:][gap_ok].min()
    out = np.zeros(far.shape, dtype=bool)
    out[idx[keep]] = True
    return out


def _present_flags(z: np.ndarray, q: np.ndarray, raw: np.ndarray, excess: TailExcess,
                   test: AnomalyPresence, *, band_z: np.ndarray | None = None) -> np.ndarray:
    """The flag rule of a present anomaly detector.

    A row is flagged at robust z >= ``Z_PRESENT_FLAG`` when the
    null (the table's own tail, class-aware with labels) expects fewer than
    ``ROW_EXPECTED_MAX`` rows at or above its score or its q-value is <= ``FAR_FDR``; at q-value <=
    ``ANOMALY_FDR``; or at or above the threshold where the excess test found its excess.
    A detector present by the plateau rule alone flags without the null's say (the
    plateau contradicts the fitted tail): at robust z >= ``TAIL_HIGH``, where the
    plateau lies, and between ``Z_PRESENT_FLAG`` and ``TAIL_HIGH`` only rows whose z
    measured from their class's lower quartile (``band_z``, :func:`_class_quartile_z`;
    the row's own z without labels) is still >= ``Z_PRESENT_FLAG``. That band is where
    a clean decaying tail puts its rows: a class the detector scores higher as a whole
    (Seattle's class of 23 snow days, lower quartile at z 1.6) reaches it with ordinary
    rows of its own.
    A fixed z alone took the upper tail of clean tables (robust z 5-8 holds 1-2% of the
    rows of some real tables) as soon as injected rows made the detector present.
    """
    far = z >= Z_PRESENT_FLAG
    if test.excess_log10p < EXCESS_LOG10P:
        # present by the plateau alone: the rows above TAIL_HIGH are themselves the
        # evidence that the fitted tail does not describe the top of this table (a
        # bounded score such as the forest's, with injected rows piled up under its cap)
        band = far & ((z if band_z is None else band_z) >= Z_PRESENT_FLAG)
        return (z >= TAIL_HIGH) | band | (q <= ANOMALY_FDR)
    # the null's expectation matters at the far rows only (elsewhere row_expected is inf): computed there
    thin = np.zeros(far.shape, dtype=bool)
    if excess.null is not None and far.any():
        thin[far] = excess.null.expected(raw[far]) < ROW_EXPECTED_MAX
    flags = (q <= ANOMALY_FDR) | (far & (thin | (q <= FAR_FDR)))
    if test.excess_log10p >= EXCESS_LOG10P:
        # the excess the test found: at most E of these rows are expected from the
        # null, and the fitted tail is never lighter than it
        flags |= raw >= excess.threshold
    return flags


def _within_class_z(raw: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """Robust z of each row's score against the other rows of its class."""
    if y is None:
        return robust_z(raw)
    y = np.asarray(y)
    out = np.empty(raw.shape[0])
    for c in np.unique(y):
        rows = y == c
        out[rows] = robust_z(raw[rows])
    return out


def _class_quartile_z(z: np.ndarray, y: np.ndarray | None) -> np.ndarray:
    """Robust z of each row measured from its class's lower quartile when that lies above the table's centre.

    The shift of :func:`_class_offset`, for every class: a class the detector scores
    higher as a whole moves the line by its own lower quartile (the quartile, not the
    median, so a blob of injected rows that shares one label and makes up to three
    quarters of a small class still leaves it at a clean row). Without labels: ``z``.
    """
    if y is None:
        return z
    out = np.array(z, dtype=np.float64)
    for rows, low, _ in _class_quantiles(z, y):
        out[rows] -= max(0.0, low)
    return out


def _class_quantiles(z: np.ndarray, y: np.ndarray) -> Iterator[tuple[np.ndarray, float, float]]:
    """Per class: its rows' mask, and the lower quartile and median of their robust z."""
    y = np.asarray(y)
    for c in np.unique(y):
        rows = y == c
        low, median = np.quantile(z[rows], [0.25, 0.5])
        yield rows, float(low), float(median)


def _centre_scale(scores: np.ndarray) -> tuple[float, float]:
    """The centre and scale of :func:`robust_z`."""
    s = np.asarray(scores, dtype=np.float64)
    centre = float(np.median(s))
    dev = np.subtract(s, centre)
    np.abs(dev, out=dev)
    # partitioned in place (the same median without a copy); the mean below is then taken
    # over the deviations recomputed in order, so its sum adds them as before
    scale = 1.4826 * float(np.median(dev, overwrite_input=True))
    if scale <= 1e-12:
        dev = np.abs(s - centre)
        scale = 1.2533 * float(dev.mean())
    return centre, scale if scale > 1e-12 else 1.0


def _class_offset(z: np.ndarray, y: np.ndarray | None, *, line: float) -> np.ndarray | None:
    """Per row: the robust z of its class's lower quartile, for a class that sits past ``line`` as a whole; else 0.

    ``None`` when no class qualifies (or without labels): no row is shifted.

    Only a class that the flag rule at robust z ``line`` would take in bulk is measured
    from its own lower quartile: its median row is past ``line`` *and* its lower
    quartile already lies in the table's tail (robust z >= ``TAIL_LOW``), so the class
    is high as a whole (Shuttle's second class). The lower quartile, not the median:
    injected rows that share one label (a blob) and make up to three quarters of a small
    class still leave it at a clean row. A class whose median is past the line but whose
    lower quartile is in the bulk is two populations, not one distinct class: Seattle's
    23 snow days with 45 far outliers labelled snow had their median in the outliers,
    and the shift from a lower quartile at robust z 2.3 pulled the outliers (z 9.3-10.3)
    under ``Z_MID`` (flag recall 0.444, AUROC 0.993 against the forest's 1.000).
    """
    if y is None:
        return None
    out = None
    for rows, low, median in _class_quantiles(z, y):
        if median >= line and low >= TAIL_LOW:
            out = np.zeros(z.shape[0]) if out is None else out
            out[rows] = low
    return out if out is not None and out.any() else None


def _q_at(raw: np.ndarray, q: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The q-value of the excess test (a non-increasing step function of the score) at the scores ``at``."""
    order = np.argsort(raw, kind="stable")
    srt = raw[order]
    q_srt = q[order]
    del order
    np.minimum.accumulate(q_srt, out=q_srt)
    idx = np.searchsorted(srt, at, side="right")
    del srt
    # a score below every row's gets 1 (the first entry), else the q of the last row at or below it
    return np.concatenate(([1.0], q_srt))[idx]
