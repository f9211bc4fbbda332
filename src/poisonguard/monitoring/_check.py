"""The rules of a check, as pure functions of the baseline, the window and the config.

Kept apart from the store so each rule can be tested on arrays. Every rule that fires
becomes an :class:`~poisonguard.monitoring.Alert` with a stable ``rule`` key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._alerts import Alert
from ._config import MonitorConfig, Threshold
from ._metrics import categorical_counts, classification_metrics
from ._results import MetricCheck
from ._stats import (DriftTest, SignatureTest, categorical_drift, class_share_tests, confidence_collapse_tests,
                     numeric_drift, probe_test)

__all__ = ["Window", "Evaluation", "evaluate"]


@dataclass(frozen=True)
class Window:
    """The rows of one window, as arrays of class codes (``-1`` = missing label; row order is not kept).

    ``conf`` holds traffic confidences (a systematic sample on big windows) and
    ``conf_pred`` the predicted class of each.
    """

    pred: np.ndarray
    label: np.ndarray
    probe: np.ndarray  # probe-set id, -1 for production traffic
    conf_pred: np.ndarray
    conf: np.ndarray
    features: pd.DataFrame | None = None
    probe_sets: dict[int, tuple[str, np.ndarray]] = field(default_factory=dict)  # id -> (name, expected shares)


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    checks: list[MetricCheck]
    drift: list[DriftTest]
    signatures: list[SignatureTest]
    alerts: list[Alert]
    n_labelled: int


def _rule(metric: str, label: str | None, value: float | None, base: float | None, t: Threshold, support: int,
          min_support: int) -> MetricCheck:
    change = None if value is None or base is None else value - base
    if value is None or support < min_support:
        return MetricCheck(metric, label, value, base, change, t.max_drop, t.min, support, False,
                           f"not checked: {support} labelled rows (need {min_support})")
    drop = t.max_drop is not None and change is not None and -change > t.max_drop + 1e-12
    low = t.min is not None and value < t.min
    return MetricCheck(metric, label, value, base, change, t.max_drop, t.min, support, bool(drop or low))


def _metric_alert(c: MetricCheck) -> Alert:
    what = c.metric if c.label is None else f"{c.metric} of class {c.label}"
    key = c.metric if c.label is None else f"{c.metric}[{c.label}]"
    if c.min is not None and c.value is not None and c.value < c.min:
        return Alert(f"metric:{key}:min", "critical", f"{what} is {c.value:.3f}, below the minimum {c.min:.3f} "
                     f"({c.support} labelled rows)", c.value, c.min)
    return Alert(f"metric:{key}:drop", "critical",
                 f"{what} fell from {c.baseline:.3f} to {c.value:.3f} ({c.change:+.3f}; allowed drop "
                 f"{c.max_drop:.3f}; {c.support} labelled rows)", c.value, c.max_drop)


def metric_checks(baseline: dict[str, Any], classes: list[str], pred: np.ndarray, label: np.ndarray,
                  cfg: MonitorConfig) -> tuple[dict[str, Any], list[MetricCheck]]:
    """Window metrics on the labelled rows and every enabled metric rule against the baseline."""
    has = label >= 0
    n = int(has.sum())
    if n == 0:
        return {"n": 0}, []
    m = classification_metrics(label[has], pred[has], len(classes))
    out = []
    for name, t in cfg.metrics.items():
        if t.enabled:
            out.append(_rule(name, None, m[name], baseline["metrics"].get(name), t, n, cfg.min_labels))
    support = m["per_class"]["support"]
    for name, rule in cfg.per_class.items():
        for c, cls in enumerate(classes):
            t = rule.for_class(cls)
            if t.enabled:
                out.append(_rule(name, cls, m["per_class"][name][c], baseline["metrics"]["per_class"][name][c], t,
                                 int(support[c]), cfg.min_class_support))
    return m, out


def drift_tests(baseline: dict[str, Any], classes: list[str], w: Window, traffic: np.ndarray,
                cfg: MonitorConfig) -> list[DriftTest]:
    """Prediction drift (chi-squared + PSI), confidence drift and input drift (KS / chi-squared + PSI)."""
    d = cfg.drift
    out = []
    if d.predictions:
        counts = np.bincount(w.pred[traffic], minlength=len(classes))
        out.append(categorical_drift("predictions", "predictions", np.asarray(baseline["pred_counts"], float), counts,
                                     psi_threshold=d.psi, alpha=d.alpha))
    conf_ref = baseline.get("confidence")
    if d.confidence and conf_ref is not None and w.conf.size:
        out.append(numeric_drift("confidence", "confidence", np.asarray(conf_ref["sample"]),
                                 np.asarray(conf_ref["edges"]), np.asarray(conf_ref["counts"]), w.conf,
                                 psi_threshold=d.psi, alpha=d.alpha))
    feats = baseline.get("features", {})
    if d.inputs and w.features is not None and len(w.features):
        names = [f for f in feats if f in w.features.columns]
        alpha = d.alpha / max(len(names), 1)
        for f in names:
            ref = feats[f]
            if ref["kind"] == "numeric":
                col = pd.to_numeric(w.features[f], errors="coerce").to_numpy(dtype=float)
                out.append(numeric_drift(f, "input", np.asarray(ref["sample"]), np.asarray(ref["edges"]),
                                         np.asarray(ref["counts"]), col, psi_threshold=d.psi, alpha=alpha))
            else:
                base, counts = categorical_counts(ref, w.features[f])
                out.append(categorical_drift(f, "input", base, counts, psi_threshold=d.psi, alpha=alpha))
    return out


def signature_tests(baseline: dict[str, Any], classes: list[str], w: Window, traffic: np.ndarray,
                    cfg: MonitorConfig) -> list[SignatureTest]:
    """Per-class prediction share, per-class confidence collapse and probe-set presence tests."""
    s = cfg.signatures
    pred = w.pred[traffic]
    out: list[SignatureTest] = []
    if pred.size >= s.min_rows:
        base = np.asarray(baseline["pred_counts"], dtype=float)
        out += class_share_tests(classes, base / base.sum(), np.bincount(pred, minlength=len(classes)), alpha=s.alpha,
                                 min_increase=s.min_share_increase)
    ref = (baseline.get("confidence") or {}).get("by_class")
    if ref and w.conf.size:
        out += confidence_collapse_tests(classes, ref, w.conf_pred, w.conf, alpha=s.alpha,
                                         min_drop=s.min_confidence_drop, min_rows=s.min_rows)
    for pid, (name, expected) in sorted(w.probe_sets.items()):
        mine = w.probe == pid
        if mine.any():
            out.append(probe_test(name, classes, expected, w.pred[mine], alpha=s.alpha, min_excess=s.min_probe_excess,
                                  min_rows=s.min_rows))
    return out


def _drift_alert(t: DriftTest) -> Alert:
    what = {"predictions": "prediction distribution", "confidence": "confidence distribution"}.get(t.kind, f"input {t.name}")
    return Alert(f"drift:{t.kind}:{t.name}", "warning",
                 f"{what} drifted: PSI {t.psi:.3f} (threshold {t.psi_threshold}), {t.test} p = {t.p_value:.2g} "
                 f"(alpha {t.alpha:.2g}), n = {t.n}", t.psi, t.psi_threshold)


def _signature_alert(t: SignatureTest) -> Alert:
    what = {"share": "class attracting predictions", "confidence": "confidence collapse",
            "probe": "probe set sent to one class"}[t.signature]
    return Alert(f"signature:{t.signature}[{t.label}]", "critical",
                 f"poisoning signature ({what}): {t.detail}; p = {t.p_value:.2g} < {t.threshold:.2g}, effect "
                 f"{t.effect:+.3f} >= {t.min_effect}", t.statistic, t.threshold)


def evaluate(baseline: dict[str, Any], classes: list[str], w: Window, cfg: MonitorConfig) -> Evaluation:
    """All rules of a check on one window."""
    traffic = w.probe < 0
    metrics, checks = metric_checks(baseline, classes, w.pred[traffic], w.label[traffic], cfg)
    drift = drift_tests(baseline, classes, w, traffic, cfg)
    sigs = signature_tests(baseline, classes, w, traffic, cfg)
    alerts = [_metric_alert(c) for c in checks if c.breached]
    alerts += [_drift_alert(t) for t in drift if t.drifted]
    alerts += [_signature_alert(t) for t in sigs if t.present]
    return Evaluation(metrics, checks, drift, sigs, alerts, int(np.sum(w.label[traffic] >= 0)))
