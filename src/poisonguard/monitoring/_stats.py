"""Statistics of a check: PSI, drift tests and the poisoning-signature presence tests.

Every test returns a dataclass with the statistic, its p-value, the threshold and the
decision, as the scan engine's presence tests do, so that a person can check the claim.
Tests come from :mod:`scipy.stats`; only PSI (a two-line formula) is written here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["psi", "DriftTest", "SignatureTest", "numeric_drift", "categorical_drift", "class_share_tests",
           "confidence_collapse_tests", "probe_test"]

_EPS = 1e-4  # floor of a bin share inside PSI: an empty bin must not make PSI infinite


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index ``sum((a - e) * ln(a / e))`` over bin shares (each floored at 1e-4)."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    e = np.maximum(e / max(e.sum(), 1e-12), _EPS)
    a = np.maximum(a / max(a.sum(), 1e-12), _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class DriftTest:
    """A drift test of one distribution against its baseline.

    ``drifted`` is ``psi >= psi_threshold and p_value < alpha`` (alpha Bonferroni-corrected
    where several distributions are tested together).
    """

    name: str
    kind: str  # predictions | confidence | input
    test: str  # chi2 | ks
    statistic: float
    p_value: float
    psi: float
    psi_threshold: float
    alpha: float
    drifted: bool
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SignatureTest:
    """A poisoning-signature presence test for one class (or one probe set).

    ``present`` is ``p_value < threshold`` and ``effect >= min_effect``.
    """

    signature: str  # share | confidence | probe
    label: str
    statistic: float
    statistic_name: str
    p_value: float
    threshold: float
    effect: float
    min_effect: float
    present: bool
    n: int
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _drift(name: str, kind: str, test: str, stat: float, p: float, psi_value: float, *, psi_threshold: float,
           alpha: float, n: int) -> DriftTest:
    p = float(p) if np.isfinite(p) else 1.0
    return DriftTest(name, kind, test, float(stat), p, float(psi_value), psi_threshold, alpha,
                     bool(psi_value >= psi_threshold and p < alpha), int(n))


def numeric_drift(name: str, kind: str, reference: np.ndarray, edges: np.ndarray, ref_counts: np.ndarray,
                  values: np.ndarray, *, psi_threshold: float, alpha: float) -> DriftTest:
    """KS two-sample test against the stored reference sample, PSI over the baseline's quantile bins."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return _drift(name, kind, "ks", 0.0, 1.0, 0.0, psi_threshold=psi_threshold, alpha=alpha, n=0)
    counts = np.bincount(_bin(values, edges), minlength=len(ref_counts))
    res = stats.ks_2samp(reference, values)
    return _drift(name, kind, "ks", res.statistic, res.pvalue, psi(ref_counts, counts), psi_threshold=psi_threshold,
                  alpha=alpha, n=values.size)


def _bin(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    # interior edges only: values below the first or above the last edge join the end bins
    return np.searchsorted(edges[1:-1], values, side="right")


def categorical_drift(name: str, kind: str, ref_counts: np.ndarray, counts: np.ndarray, *, psi_threshold: float,
                      alpha: float) -> DriftTest:
    """Chi-squared goodness of fit of the window's counts to the baseline's shares, and PSI."""
    n = int(counts.sum())
    if n == 0:
        return _drift(name, kind, "chi2", 0.0, 1.0, 0.0, psi_threshold=psi_threshold, alpha=alpha, n=0)
    share = np.maximum(ref_counts / max(ref_counts.sum(), 1), _EPS)
    share = share / share.sum()
    res = stats.chisquare(counts, share * n)
    return _drift(name, kind, "chi2", res.statistic, res.pvalue, psi(ref_counts, counts), psi_threshold=psi_threshold,
                  alpha=alpha, n=n)


def class_share_tests(classes: list[str], base_share: np.ndarray, counts: np.ndarray, *, alpha: float,
                      min_increase: float) -> list[SignatureTest]:
    """Per class: does it attract more predictions than its baseline share? One-sided binomial test."""
    n = int(counts.sum())
    k_classes = len(classes)
    threshold = alpha / max(k_classes, 1)
    out = []
    for c, cls in enumerate(classes):
        p0 = float(min(max(base_share[c], _EPS), 1 - _EPS))
        k = int(counts[c])
        share = k / n if n else 0.0
        p = float(stats.binomtest(k, n, p0, alternative="greater").pvalue) if n else 1.0
        effect = share - float(base_share[c])
        out.append(SignatureTest("share", cls, share, "prediction share", p, threshold, effect, min_increase,
                                 bool(p < threshold and effect >= min_increase), n,
                                 f"class {cls} got {k} of {n} predictions ({share:.1%}) against a baseline share of "
                                 f"{base_share[c]:.1%}"))
    return out


def confidence_collapse_tests(classes: list[str], ref: dict[str, list[float]], pred: np.ndarray, conf: np.ndarray,
                              *, alpha: float, min_drop: float, min_rows: int) -> list[SignatureTest]:
    """Per predicted class: has its confidence fallen? One-sided Mann-Whitney U against the baseline's sample."""
    threshold = alpha / max(len(classes), 1)
    out = []
    for c, cls in enumerate(classes):
        reference = np.asarray(ref.get(cls, []), dtype=float)
        window = conf[pred == c]
        window = window[np.isfinite(window)]
        if reference.size < min_rows or window.size < min_rows:
            out.append(SignatureTest("confidence", cls, float("nan"), "median confidence", 1.0, threshold, 0.0, min_drop,
                                     False, int(window.size),
                                     f"not tested: {window.size} window and {reference.size} baseline predictions "
                                     f"of class {cls} (need {min_rows})"))
            continue
        p = float(stats.mannwhitneyu(window, reference, alternative="less").pvalue)
        med, ref_med = float(np.median(window)), float(np.median(reference))
        drop = ref_med - med
        out.append(SignatureTest("confidence", cls, med, "median confidence", p, threshold, drop, min_drop,
                                 bool(p < threshold and drop >= min_drop), int(window.size),
                                 f"predictions of class {cls}: median confidence {med:.3f} against {ref_med:.3f} "
                                 f"at baseline"))
    return out


def probe_test(name: str, classes: list[str], expected: np.ndarray, pred: np.ndarray, *, alpha: float,
               min_excess: float, min_rows: int) -> SignatureTest:
    """Is one class receiving more of the probe set than expected? One-sided binomial, Bonferroni over classes.

    ``expected[c]`` is the share of the probes a clean model sends to class ``c`` (from the
    probes' true labels, or the baseline prediction shares when none were given).
    """
    n = int(pred.size)
    threshold = alpha / max(len(classes), 1)
    if n < min_rows:
        return SignatureTest("probe", name, float("nan"), "probe share to one class", 1.0, threshold, 0.0, min_excess,
                             False, n, f"probe set {name}: {n} probe predictions in the window (need {min_rows})")
    counts = np.bincount(pred, minlength=len(classes))
    excess = counts / n - expected
    c = int(np.argmax(excess))
    p0 = float(min(max(expected[c], _EPS), 1 - _EPS))
    p = float(stats.binomtest(int(counts[c]), n, p0, alternative="greater").pvalue)
    share = counts[c] / n
    return SignatureTest("probe", name, float(share), "probe share to one class", p, threshold, float(excess[c]),
                         min_excess, bool(p < threshold and excess[c] >= min_excess), n,
                         f"probe set {name}: {int(counts[c])} of {n} probes predicted {classes[c]} ({share:.1%}; "
                         f"a clean model: {expected[c]:.1%})")
