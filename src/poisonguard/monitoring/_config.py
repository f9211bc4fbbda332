"""Monitoring settings: thresholds per metric and class, drift and signature tests, alerts.

A config file is TOML (``tomllib``, or ``tomli`` on Python 3.10) or YAML (PyYAML)::

    [metrics.accuracy]          # overall metrics: accuracy, precision, recall, f1 (macro)
    max_drop = 0.05             # alert when baseline - value > max_drop
    min = 0.80                  # and/or when value < min

    [per_class.recall]          # per-class metrics: recall (on by default), precision, f1
    max_drop = 0.05
    [per_class.recall.classes."3"]
    max_drop = 0.02

    [drift]                     # prediction, confidence and input drift
    psi = 0.2
    alpha = 0.01

    [signatures]                # poisoning signatures (presence tests)
    alpha = 0.001

    [alerts]
    cooldown = "6h"
    [[alerts.channels]]
    type = "slack"              # log | webhook | slack | email
    url = "https://hooks.slack.com/services/..."

Unknown keys are refused (a typo must not silently disable a rule).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InputError

__all__ = [
    "config_from_dict",
    "Threshold",
    "ClassRule",
    "DriftSettings",
    "SignatureSettings",
    "AlertSettings",
    "MonitorConfig",
    "load_config",
    "parse_duration",
    "OVERALL_METRICS",
    "CLASS_METRICS",
]

OVERALL_METRICS = ("accuracy", "precision", "recall", "f1")
CLASS_METRICS = ("precision", "recall", "f1")
CHANNEL_TYPES = ("log", "webhook", "slack", "email")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | float | int, *, what: str = "duration") -> float:
    """Seconds in ``"90s"``, ``"15m"``, ``"24h"``, ``"1d"``, ``"2w"`` or a plain number of seconds.

    Raises
    ------
    InputError
        Not a positive duration.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(text))
        if m is None:
            raise InputError(f"{what} must look like 30m, 24h, 1d or 2w, got {text!r}")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not seconds > 0:
        raise InputError(f"{what} must be positive, got {text!r}")
    return seconds


@dataclass(frozen=True)
class Threshold:
    """``max_drop``: alert when ``baseline - value > max_drop``; ``min``: alert when ``value < min``.

    Either may be ``None`` (no such rule). ``enabled=False`` turns the rule off.
    """

    max_drop: float | None = 0.05
    min: float | None = None
    enabled: bool = True


@dataclass(frozen=True)
class ClassRule:
    """A per-class metric rule: a default threshold and per-class overrides (class value as text)."""

    default: Threshold = field(default_factory=Threshold)
    classes: Mapping[str, Threshold] = field(default_factory=dict)

    def for_class(self, cls: str) -> Threshold:
        return self.classes.get(str(cls), self.default)


@dataclass(frozen=True)
class DriftSettings:
    """Drift tests. A distribution has drifted when its PSI >= ``psi`` *and* the test's
    p-value < ``alpha`` (Bonferroni over the input features): PSI says the shift is large,
    the p-value that it is not sampling noise. Defaults: PSI 0.2 (the usual "significant
    shift" line; 0.1-0.2 is "moderate"), alpha 0.01, 10 quantile bins.
    """

    psi: float = 0.2
    alpha: float = 0.01
    bins: int = 10
    predictions: bool = True
    confidence: bool = True
    inputs: bool = True


@dataclass(frozen=True)
class SignatureSettings:
    """Poisoning signatures, each a presence test with Bonferroni over classes at ``alpha``.

    * share: a class gets more predictions than its baseline share (one-sided binomial
      test) by at least ``min_share_increase`` absolute;
    * confidence: the confidence of one predicted class falls (one-sided Mann-Whitney U)
      by at least ``min_confidence_drop`` in median;
    * probes: the share of a probe set sent to one class exceeds what the baseline
      expects (one-sided binomial test) by at least ``min_probe_excess``.
    """

    alpha: float = 0.001
    min_share_increase: float = 0.05
    min_confidence_drop: float = 0.10
    min_probe_excess: float = 0.20
    min_rows: int = 30


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go and how often: ``cooldown`` seconds between two notifications of one rule."""

    cooldown: float = 6 * 3600.0
    retries: int = 3
    backoff: float = 0.5
    timeout: float = 10.0
    channels: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class MonitorConfig:
    """All monitoring settings; the defaults are the issue's default rule.

    ``min_labels``: labelled rows a window needs before overall metric rules apply;
    ``min_class_support``: labelled rows of a class before its per-class rules apply
    (a recall over 5 rows is noise, not evidence).
    """

    metrics: Mapping[str, Threshold] = field(default_factory=lambda: {m: Threshold() for m in OVERALL_METRICS})
    per_class: Mapping[str, ClassRule] = field(default_factory=lambda: {"recall": ClassRule()})
    drift: DriftSettings = field(default_factory=DriftSettings)
    signatures: SignatureSettings = field(default_factory=SignatureSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    min_labels: int = 50
    min_class_support: int = 30


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
    except Exception as exc:  # TOMLDecodeError / YAMLError: both name the line
        raise ConfigError(f"cannot parse config {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a table of settings, got {type(data).__name__}")
    return data


def _number(v: Any, where: str, *, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{where} must be a number, got {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ConfigError(f"{where} must be in [{lo}, {hi}], got {v!r}")
    return float(v)


def _keys(d: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a table, got {d!r}")
    unknown = sorted(set(map(str, d)) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return d


def _threshold(d: Any, where: str, base: Threshold) -> Threshold:
    d = _keys(d, {"max_drop", "min", "enabled"}, where)
    out = base
    if "max_drop" in d:
        out = replace(out, max_drop=None if d["max_drop"] is None else _number(d["max_drop"], f"{where}.max_drop", lo=0, hi=1))
    if "min" in d:
        out = replace(out, min=None if d["min"] is None else _number(d["min"], f"{where}.min", lo=0, hi=1))
    if "enabled" in d:
        if not isinstance(d["enabled"], bool):
            raise ConfigError(f"{where}.enabled must be true or false, got {d['enabled']!r}")
        out = replace(out, enabled=d["enabled"])
    return out


def _section(cls: type, d: Any, where: str) -> Any:
    names = {f.name: f for f in fields(cls)}
    d = _keys(d, set(names) - {"channels"}, where)
    values: dict[str, Any] = {}
    for k, v in d.items():
        default = names[k].default
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise ConfigError(f"{where}.{k} must be true or false, got {v!r}")
            values[k] = v
        elif isinstance(default, int):
            values[k] = int(_number(v, f"{where}.{k}", lo=1))
        elif k in ("cooldown", "timeout", "backoff") and isinstance(v, str):
            values[k] = parse_duration(v, what=f"{where}.{k}")
        else:
            values[k] = _number(v, f"{where}.{k}", lo=0)
    return cls(**values)


def _channels(items: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(items, list):
        raise ConfigError(f"alerts.channels must be a list of tables, got {items!r}")
    out = []
    for i, ch in enumerate(items):
        if not isinstance(ch, dict) or ch.get("type") not in CHANNEL_TYPES:
            raise ConfigError(f"alerts.channels[{i}].type must be one of {list(CHANNEL_TYPES)}, got {ch!r}")
        if ch["type"] in ("webhook", "slack") and not str(ch.get("url", "")).startswith(("http://", "https://")):
            raise ConfigError(f"alerts.channels[{i}] ({ch['type']}) needs an http(s) url, got {ch.get('url')!r}")
        if ch["type"] == "email" and not (ch.get("host") and ch.get("to") and ch.get("from")):
            raise ConfigError(f"alerts.channels[{i}] (email) needs host, from and to, got keys {sorted(ch)}")
        out.append(dict(ch))
    return tuple(out)


def config_from_dict(data: Mapping[str, Any], *, where: str = "config") -> MonitorConfig:
    """Build a :class:`MonitorConfig` from parsed TOML/YAML (see the module docstring)."""
    d = _keys(dict(data), {"metrics", "per_class", "drift", "signatures", "alerts", "min_labels",
                           "min_class_support"}, where)
    cfg = MonitorConfig()
    metrics = dict(cfg.metrics)
    for name, spec in _keys(d.get("metrics", {}), set(OVERALL_METRICS), "metrics").items():
        metrics[name] = _threshold(spec, f"metrics.{name}", metrics[name])
    per_class = dict(cfg.per_class)
    for name, spec in _keys(d.get("per_class", {}), set(CLASS_METRICS), "per_class").items():
        spec = _keys(spec, {"max_drop", "min", "enabled", "classes"}, f"per_class.{name}")
        base = per_class.get(name, ClassRule())
        default = _threshold({k: v for k, v in spec.items() if k != "classes"}, f"per_class.{name}", base.default)
        classes = {str(c): _threshold(t, f"per_class.{name}.classes.{c}", default)
                   for c, t in _keys(spec.get("classes", {}), set(map(str, spec.get("classes", {}))),
                                     f"per_class.{name}.classes").items()}
        per_class[name] = ClassRule(default=default, classes=classes)
    alerts = d.get("alerts", {})
    alert_settings = _section(AlertSettings, {k: v for k, v in _keys(alerts, {f.name for f in fields(AlertSettings)},
                                                                        "alerts").items() if k != "channels"}, "alerts")
    if "channels" in alerts:
        alert_settings = replace(alert_settings, channels=_channels(alerts["channels"]))
    return MonitorConfig(
        metrics=metrics,
        per_class=per_class,
        drift=_section(DriftSettings, d.get("drift", {}), "drift"),
        signatures=_section(SignatureSettings, d.get("signatures", {}), "signatures"),
        alerts=alert_settings,
        min_labels=int(_number(d.get("min_labels", cfg.min_labels), "min_labels", lo=1)),
        min_class_support=int(_number(d.get("min_class_support", cfg.min_class_support), "min_class_support", lo=1)),
    )


def load_config(path: str | Path | None) -> MonitorConfig:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``) config; ``None`` gives the defaults.

    Raises
    ------
    InputError
        The file does not exist.
    ConfigError
        The file does not parse, or a key or value is invalid (named with its value).
    """
    if path is None:
        return MonitorConfig()
    p = Path(path)
    return config_from_dict(_read(p), where=str(p))
