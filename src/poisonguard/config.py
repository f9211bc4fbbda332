"""Scan configuration: config files and ``--set detector.setting=value`` options."""

from __future__ import annotations

import inspect
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (tomllib is 3.11+; tomli is its backport)
    import tomli as tomllib

__all__ = ["load_scan_config", "parse_set_options", "check_settings"]


def load_scan_config(path: str | Path) -> dict[str, Any]:
    """Read a JSON or TOML scan config.

    The file may hold ``detectors`` (a list of names) and ``settings`` (a table per
    detector name), e.g. in TOML::

        detectors = ["knn_label", "confident"]
        [settings.knn_label]
        n_neighbors = 15
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config {p}: {exc}") from exc
    try:
        if p.suffix.lower() == ".toml":
            cfg = tomllib.loads(text)
        else:
            cfg = json.loads(text)
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot parse config {p}: {exc}") from exc
    if not isinstance(cfg, dict):
        raise ConfigError(f"config {p} must be a table/object at the top level")
    unknown = sorted(set(cfg) - {"detectors", "settings"})
    if unknown:
        raise ConfigError(f"config {p}: unknown key(s) {unknown}; allowed: detectors, settings")
    dets = cfg.get("detectors")
    if dets is not None and not (isinstance(dets, list) and all(isinstance(d, str) for d in dets)):
        raise ConfigError(f"config {p}: 'detectors' must be a list of names, got {dets!r}")
    settings = cfg.get("settings", {})
    if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in settings.values()):
        raise ConfigError(f"config {p}: 'settings' must map detector names to tables of settings")
    return cfg


def parse_set_options(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Parse ``["knn_label.n_neighbors=15", ...]`` into ``{"knn_label": {"n_neighbors": 15}}``.

    Values are read as JSON when they parse (numbers, booleans, quoted strings), else
    kept as plain strings.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        name, dot, param = key.partition(".")
        if not sep or not dot or not name or not param:
            raise ConfigError(f"a detector setting must read DETECTOR.SETTING=VALUE, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(name.strip(), {})[param.strip()] = value
    return out


def _kind_of(default: Any) -> type | None:
    """The type a setting takes, read from its default (``None``: any value)."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, str):
        return str
    return None


def _kind_for(cls: type, key: str, default: Any, value: Any) -> type | None:
    """The type ``value`` must take: the default's, or the other of a setting annotated as number or text.

    A setting such as ``noise_rate: float | str = "auto"`` takes a number or its one
    word; its default alone would demand text (``knn_label.noise_rate=0`` refused).
    """
    kind = _kind_of(default)
    annotation = str(inspect.signature(cls.__init__).parameters[key].annotation)
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool) and "float" in annotation:
        return float
    if kind in (int, float) and isinstance(value, str) and "str" in annotation:
        return str
    return kind


def _coerce(value: Any, kind: type | None, where: str) -> Any:
    """``value`` as ``kind``; an integral float is an int (JSON ``15.0``), an int is a float."""
    shown = f"{where}={value!r}"
    if kind is None:
        return value
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"setting {shown} must be true or false")
    if isinstance(value, bool) or not isinstance(value, (int, float)) and kind is not str:
        raise ConfigError(f"setting {shown} must be a number ({kind.__name__}), got {type(value).__name__}")
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"setting {shown} must be text")
        return value
    if not math.isfinite(value):
        raise ConfigError(f"setting {shown} must be a finite number")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"setting {shown} must be a whole number")
        return int(value)
    return float(value)


def check_settings(settings: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Check each detector setting's type against the registered detector's default.

    A wrong-typed value (``knn_label.n_neighbors=abc``) is a usage error naming the
    setting and the value, not a crash inside the detector. ``random_state`` also
    takes ``None``. Names unknown to the registry are left for the scan to report
    with the list of detectors and settings.

    Returns
    -------
    dict
        The settings with integral floats turned into ints (``15.0`` -> ``15``).

    Raises
    ------
    ConfigError
        Naming ``detector.setting``, the value and the expected type.
    """
    from .detectors import available_detectors

    registry = available_detectors()
    out: dict[str, dict[str, Any]] = {}
    for name, params in (settings or {}).items():
        if not isinstance(params, Mapping):
            raise ConfigError(f"settings of detector {name!r} must be a table of SETTING = VALUE, got {params!r}")
        cls = registry.get(name)
        defaults = cls().get_params() if cls is not None else {}
        checked: dict[str, Any] = {}
        for key, value in params.items():
            if key not in defaults:
                checked[key] = value  # the scan names unknown settings with the valid ones
                continue
            if key == "random_state" and value is None:
                checked[key] = None
                continue
            checked[key] = _coerce(value, _kind_for(cls, key, defaults[key], value), f"{name}.{key}")
        out[name] = checked
    return out
