"""Model monitoring: baselines, logged traffic, scheduled checks, drift, poisoning signatures, alerts.

* :class:`Monitor` records a baseline from a validation set, logs production
  predictions (and late labels, and probe sets), and checks a time window against the
  baseline: metric drops (overall and per class), prediction / confidence / input
  drift (PSI with KS or chi-squared), and the poisoning signatures (a class attracting
  predictions, confidence collapse on one class, probes sent to one class), each a
  presence test with a p-value and a decision.
* Alerts go to the log, a JSON webhook, a Slack-compatible webhook or SMTP email,
  de-duplicated with a cooldown; a failing channel is retried and reported.
* :func:`cron_line` / :func:`install_cron` / :func:`run_loop` schedule the check.
"""

from __future__ import annotations

from ._alerts import Alert, Channel, Delivery, EmailChannel, LogChannel, SlackChannel, WebhookChannel, deliver, make_channel
from ._config import (AlertSettings, ClassRule, DriftSettings, MonitorConfig, SignatureSettings, Threshold,
                      config_from_dict, load_config, parse_duration)
from ._monitor import Monitor, list_models, parse_time
from ._results import BaselineResult, CheckResult, LabelResult, LogResult, MetricCheck, ProbeSetResult
from ._schedule import DEFAULT_CRON, LoopRun, cron_line, install_cron, run_loop
from ._stats import DriftTest, SignatureTest, psi

__all__ = [
    "Monitor", "list_models", "parse_time",
    "MonitorConfig", "Threshold", "ClassRule", "DriftSettings", "SignatureSettings", "AlertSettings",
    "load_config", "config_from_dict", "parse_duration",
    "BaselineResult", "LogResult", "LabelResult", "ProbeSetResult", "MetricCheck", "CheckResult",
    "DriftTest", "SignatureTest", "psi",
    "Alert", "Delivery", "Channel", "LogChannel", "WebhookChannel", "SlackChannel", "EmailChannel", "make_channel",
    "deliver",
    "DEFAULT_CRON", "cron_line", "install_cron", "run_loop", "LoopRun",
]
