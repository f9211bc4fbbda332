"""Checks: each rule fires on its own signal and stays quiet on clean traffic."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from poisonguard.errors import DetectorFailedError, ThresholdExceeded
from poisonguard.monitoring import MonitorConfig, Threshold, config_from_dict

from monitor_traffic import DAY, T0, traffic


def _check(mon, day=0, **kw):
    return mon.check(window="1d", end=T0 + (day + 1) * DAY, **kw)


def test_baseline_metrics_match_sklearn(monitor):
    _, classes, base = monitor.baseline()
    val = traffic(8000, seed=1)
    p, r, f, _ = precision_recall_fscore_support(val["label"], val["prediction"], zero_division=0)
    assert classes == ["0", "1", "2", "3"]
    assert base["metrics"]["accuracy"] == pytest.approx(float(np.mean(val["label"] == val["prediction"])))
    assert base["metrics"]["f1"] == pytest.approx(float(f.mean()))
    assert base["metrics"]["per_class"]["recall"] == pytest.approx(list(r))
    assert base["pred_counts"] == list(np.bincount(val["prediction"], minlength=4))
    assert set(base["features"]) == {"f0", "f1", "colour"}
    assert base["features"]["colour"]["kind"] == "categorical" and base["features"]["f0"]["kind"] == "numeric"
    assert len(base["confidence"]["by_class"]["2"]) > 100


def test_clean_window_passes_and_is_stored(monitor, recorder):
    monitor.log(traffic(3000, seed=2), label="label")
    res = _check(monitor)
    assert res.status == "ok" and not res.alerts, [a.message for a in res.alerts]
    res.raise_for_status()
    assert res.n_predictions == 3000 and res.n_labelled == 3000
    assert {c.metric for c in res.checks} == {"accuracy", "precision", "recall", "f1"}
    assert len([c for c in res.checks if c.label is not None]) == 4  # per-class recall by default
    assert recorder.sent == []
    stored = monitor.history()
    assert len(stored) == 1 and stored[0]["status"] == "ok" and stored[0]["check_id"] == res.check_id
    json.dumps(res.to_dict(), allow_nan=False)  # --json output is strict JSON


def test_one_class_recall_drop_alerts(monitor, recorder):
    monitor.log(traffic(3000, seed=3, recall=(0.9, 0.9, 0.72, 0.9)), label="label")
    res = _check(monitor)
    rules = {a.rule for a in res.alerts}
    assert "metric:recall[2]:drop" in rules
    assert "metric:accuracy:drop" not in rules  # 0.18 x 1/4 = 0.045: overall accuracy stays within 0.05
    assert res.status == "alert" and recorder.sent == [sorted(rules, key=[a.rule for a in res.alerts].index)]
    with pytest.raises(ThresholdExceeded) as exc:
        res.raise_for_status()
    assert exc.value.exit_code == 3


def test_overall_accuracy_drop_alerts(monitor):
    monitor.log(traffic(3000, seed=4, recall=(0.8, 0.8, 0.8, 0.8)), label="label")
    rules = {a.rule for a in _check(monitor).alerts}
    assert {"metric:accuracy:drop", "metric:recall:drop", "metric:f1:drop"} <= rules


def test_thresholds_per_metric_and_class(monitor):
    # a ~0.025 drop in class 1: quiet by default, an alert with a per-class override of 0.01
    monitor.log(traffic(8000, seed=5, recall=(0.9, 0.875, 0.9, 0.9)), label="label")
    res = _check(monitor)
    drop = next(c for c in res.checks if c.metric == "recall" and c.label == "1")
    assert 0.01 < -drop.change < 0.05, drop  # the premise of the test
    assert not any(a.rule.startswith("metric:recall[1]") for a in res.alerts)
    monitor.config = config_from_dict({"per_class": {"recall": {"classes": {"1": {"max_drop": 0.01}}}},
                                       "metrics": {"accuracy": {"min": 0.95}}})
    rules = {a.rule for a in _check(monitor).alerts}
    assert "metric:recall[1]:drop" in rules and "metric:accuracy:min" in rules
    assert not any(r.startswith("metric:recall[0]") for r in rules)


def test_prediction_drift_and_share_signature_without_labels(monitor):
    # no labels at all: 25% of every other class's rows are predicted 3
    df = traffic(3000, seed=6, recall=(0.7, 0.7, 0.7, 0.95), wrong_to=3).drop(columns="label")
    monitor.log(df)
    res = _check(monitor)
    rules = {a.rule for a in res.alerts}
    assert res.n_labelled == 0 and not res.checks
    assert "signature:share[3]" in rules and "drift:predictions:predictions" in rules
    share = next(s for s in res.signatures if s.signature == "share" and s.label == "3")
    assert share.present and share.p_value < share.threshold and share.effect >= 0.05
    assert not any(s.present for s in res.signatures if s.signature == "share" and s.label != "3")


def test_confidence_collapse_on_one_class(monitor):
    monitor.log(traffic(3000, seed=7, conf_drop={1: 0.3}))
    res = _check(monitor)
    hit = [s for s in res.signatures if s.signature == "confidence" and s.present]
    assert [s.label for s in hit] == ["1"]
    assert "signature:confidence[1]" in {a.rule for a in res.alerts}


def test_input_drift(monitor):
    monitor.log(traffic(3000, seed=8, shift=1.0))
    res = _check(monitor)
    drifted = {d.name for d in res.drift if d.kind == "input" and d.drifted}
    assert drifted == {"f0"}
    f0 = next(d for d in res.drift if d.name == "f0")
    assert f0.test == "ks" and f0.psi >= 0.2 and f0.p_value < f0.alpha
    assert next(d for d in res.drift if d.name == "colour").test == "chi2"


def test_probe_set_sent_to_one_class(monitor):
    probes = traffic(200, seed=9, prefix="p")
    monitor.register_probes("trigger", probes[["f0", "f1", "colour", "label"]], label="label")
    clean = probes.assign(id=[f"c{i}" for i in range(200)])
    monitor.log(clean, probe="trigger")  # a clean model gets most probes right
    monitor.log(traffic(1000, seed=10))
    res = _check(monitor)
    probe = next(s for s in res.signatures if s.signature == "probe")
    assert not probe.present and res.n_probes == 200 and res.n_predictions == 1000
    hijacked = probes.assign(id=[f"h{i}" for i in range(200)], prediction=np.where(np.arange(200) % 10 < 8, 0,
                                                                                     probes["prediction"]),
                             timestamp=T0 + DAY + 5)
    monitor.log(hijacked, probe="trigger")
    monitor.log(traffic(1000, seed=11, day=1))
    res = _check(monitor, day=1)
    probe = next(s for s in res.signatures if s.signature == "probe")
    assert probe.present and probe.label == "trigger" and probe.statistic >= 0.8
    assert "signature:probe[trigger]" in {a.rule for a in res.alerts}


def test_cooldown_deduplicates_notifications(monitor, recorder):
    monitor.config = MonitorConfig()
    monitor.log(traffic(3000, seed=12, recall=(0.9, 0.9, 0.7, 0.9)), label="label")
    first = _check(monitor)
    second = _check(monitor)
    assert first.alerts and [a.rule for a in second.alerts] == [a.rule for a in first.alerts]
    assert len(recorder.sent) == 1 and second.suppressed == [a.rule for a in first.alerts]
    assert second.status == "alert"  # de-duplication silences the notification, not the check
    stored = monitor.alerts()
    assert sum(a["suppressed"] for a in stored) == len(first.alerts)


def test_crashing_check_is_failed_and_stored(monitor, monkeypatch):
    import poisonguard.monitoring._monitor as mod

    monitor.log(traffic(500, seed=13))

    def boom(*a, **k):
        raise RuntimeError("statistics exploded")

    monkeypatch.setattr(mod, "evaluate", boom)
    res = _check(monitor)
    assert res.status == "failed" and "exploded" in res.error
    assert monitor.history()[-1]["status"] == "failed"
    with pytest.raises(DetectorFailedError) as exc:
        res.raise_for_status()
    assert exc.value.exit_code == 5


def test_small_class_support_is_not_judged(monitor):
    monitor.config = MonitorConfig(min_class_support=30, metrics={"accuracy": Threshold()})
    monitor.log(traffic(60, seed=14, recall=(0.5, 0.5, 0.5, 0.5)), label="label")
    res = _check(monitor)
    per_class = [c for c in res.checks if c.label is not None]
    assert per_class and all(not c.breached and "need 30" in c.note for c in per_class)
