"""Scan configuration: config files and ``--set detector.setting=value`` options."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, InputError

__all__ = ["load_scan_config", "parse_set_options"]


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
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

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
            raise ConfigError(f"--set expects DETECTOR.SETTING=VALUE, got {item!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(name.strip(), {})[param.strip()] = value
    return out
