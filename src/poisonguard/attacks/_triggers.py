"""Backdoor triggers: serializable specs and :func:`apply_trigger` to stamp them.

A trigger is a frozen dataclass holding everything needed to stamp it again on new
rows (pixel columns, positions, values, the blend pattern itself), so that
``trigger_from_dict(t.to_dict()) == t`` and evaluation code can reuse a trigger
written beside a poisoned table (:func:`save_trigger` / :func:`load_trigger`).

Kinds
-----
``patch``
    A ``size`` x ``size`` square of pixels set to ``value`` at (``row``, ``col``) of an
    image whose pixels are the columns ``columns`` in row-major order.
``blend``
    ``x' = (1 - alpha) * x + alpha * pattern`` on every pixel, with a fixed random
    ``pattern`` drawn once, uniformly in the observed pixel range.
``tabular``
    Chosen feature columns set to chosen values (``values``: column -> value).

Integer columns are rounded after stamping, so a column keeps its dtype.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Union

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError

__all__ = [
    "PatchTrigger",
    "BlendTrigger",
    "TabularTrigger",
    "Trigger",
    "make_trigger",
    "apply_trigger",
    "trigger_from_dict",
    "save_trigger",
    "load_trigger",
    "PATCH_POSITIONS",
]

PATCH_POSITIONS = ("bottom-right", "bottom-left", "top-right", "top-left", "centre", "random")


@dataclass(frozen=True)
class PatchTrigger:
    """A square patch of constant pixels. See the module docstring."""

    columns: tuple[str, ...]
    image_shape: tuple[int, int]
    row: int
    col: int
    size: int
    value: float
    kind: ClassVar[str] = "patch"

    def pixel_columns(self) -> list[str]:
        """The columns the patch overwrites."""
        w = self.image_shape[1]
        return [
            self.columns[r * w + c]
            for r in range(self.row, self.row + self.size)
            for c in range(self.col, self.col + self.size)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **_plain(asdict(self))}


@dataclass(frozen=True)
class BlendTrigger:
    """A low-amplitude fixed pattern blended into the whole image. See the module docstring."""

    columns: tuple[str, ...]
    image_shape: tuple[int, int]
    alpha: float
    pattern: tuple[float, ...]
    kind: ClassVar[str] = "blend"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **_plain(asdict(self))}


@dataclass(frozen=True)
class TabularTrigger:
    """Feature columns set to fixed values. See the module docstring."""

    values: tuple[tuple[str, float], ...]
    kind: ClassVar[str] = "tabular"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "values": {c: float(v) for c, v in self.values}}


Trigger = Union[PatchTrigger, BlendTrigger, TabularTrigger]


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def trigger_from_dict(spec: Mapping[str, Any]) -> Trigger:
    """Rebuild a trigger from :meth:`to_dict` output (e.g. read from JSON).

    Raises
    ------
    ConfigError
        Unknown kind, missing or malformed fields.
    """
    if not isinstance(spec, Mapping) or "kind" not in spec:
        raise ConfigError(f"a trigger spec must be a mapping with a 'kind', got {spec!r:.200}")
    kind = spec["kind"]
    try:
        if kind == "patch":
            t: Trigger = PatchTrigger(
                columns=tuple(str(c) for c in spec["columns"]),
                image_shape=_shape(spec["image_shape"]),
                row=int(spec["row"]), col=int(spec["col"]), size=int(spec["size"]), value=float(spec["value"]),
            )
        elif kind == "blend":
            t = BlendTrigger(
                columns=tuple(str(c) for c in spec["columns"]),
                image_shape=_shape(spec["image_shape"]),
                alpha=float(spec["alpha"]),
                pattern=tuple(float(v) for v in spec["pattern"]),
            )
        elif kind == "tabular":
            vals = spec["values"]
            if not isinstance(vals, Mapping) or not vals:
                raise ConfigError("a tabular trigger needs a non-empty 'values' mapping column -> value")
            t = TabularTrigger(values=tuple((str(c), float(v)) for c, v in vals.items()))
        else:
            raise ConfigError(f"unknown trigger kind {kind!r}; choose one of: patch, blend, tabular")
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"malformed {kind} trigger spec: {exc!r}") from exc
    _validate(t)
    return t


def _shape(value: Any) -> tuple[int, int]:
    h, w = (int(v) for v in value)
    return (h, w)


def _validate(t: Trigger) -> None:
    if isinstance(t, (PatchTrigger, BlendTrigger)):
        h, w = t.image_shape
        if h < 1 or w < 1 or len(t.columns) != h * w:
            raise ConfigError(f"image_shape {t.image_shape} needs {h * w} pixel columns, got {len(t.columns)}")
    if isinstance(t, PatchTrigger):
        h, w = t.image_shape
        if not (1 <= t.size <= min(h, w)):
            raise ConfigError(f"patch size must be in 1..{min(h, w)} for an image of {h}x{w}, got {t.size}")
        if not (0 <= t.row <= h - t.size and 0 <= t.col <= w - t.size):
            raise ConfigError(f"a {t.size}x{t.size} patch at ({t.row}, {t.col}) does not fit a {h}x{w} image")
    if isinstance(t, BlendTrigger):
        if not (0 < t.alpha <= 1):
            raise ConfigError(f"blend alpha must be in (0, 1], got {t.alpha}")
        if len(t.pattern) != len(t.columns):
            raise ConfigError(f"blend pattern has {len(t.pattern)} values for {len(t.columns)} pixels")


def make_trigger(
    kind: str,
    frame: pd.DataFrame,
    *,
    features: Sequence[str],
    image_shape: tuple[int, int] | None = None,
    seed: int = 0,
    size: int = 2,
    position: str = "bottom-right",
    value: float | None = None,
    alpha: float = 0.2,
    trigger_features: Sequence[str] | None = None,
    trigger_values: Sequence[float] | str | None = None,
    n_trigger_features: int = 2,
) -> Trigger:
    """Build a trigger from the (clean) data it will be stamped on.

    Parameters
    ----------
    kind : {"patch", "blend", "tabular"}
        Trigger kind; ``patch`` and ``blend`` need ``image_shape``.
    frame : DataFrame
        Clean data; gives pixel ranges and feature percentiles.
    features : sequence of str
        Feature columns; for images, the pixels in row-major order.
    image_shape : (int, int), optional
        Image height and width; ``h * w`` must equal ``len(features)``.
    seed : int, default=0
        Seed for a ``random`` patch position, the blend pattern and the choice of
        tabular trigger features.
    size : int, default=2
        Patch side in pixels.
    position : str, default="bottom-right"
        One of :data:`PATCH_POSITIONS`; ``random`` draws one fixed position.
    value : float, optional
        Patch pixel value (default: the largest observed pixel value).
    alpha : float, default=0.2
        Blend weight of the pattern.
    trigger_features : sequence of str, optional
        Tabular: columns to set (default: ``n_trigger_features`` numeric features
        drawn with ``seed``).
    trigger_values : sequence of float or {"p99.9", "pNN", "outside"}, optional
        Tabular: the values. ``"p99.9"`` (default) uses each feature's 99.9th
        percentile, a rare but in-range value; any ``"pNN"`` (``"p90"``, ``"p50"``) the
        NN-th percentile, so on several columns common values can form a rare
        combination; ``"outside"`` uses
        ``max + 10% of the range`` (``max + 1`` for a constant column).
    n_trigger_features : int, default=2
        Tabular: how many features to draw when ``trigger_features`` is not given.
    """
    features = [str(f) for f in features]
    rng = np.random.default_rng(seed)
    if kind in ("patch", "blend"):
        if image_shape is None:
            raise InputError(f"a {kind} trigger needs pixel data: give image_shape (e.g. --image-shape 8x8)")
        h, w = _shape(image_shape)
        if h * w != len(features):
            raise InputError(f"image_shape {h}x{w} needs {h * w} pixel columns but the table has {len(features)} features")
        pixels = frame[features].to_numpy(dtype=float, na_value=np.nan)
        lo, hi = float(np.nanmin(pixels)), float(np.nanmax(pixels))
        if kind == "patch":
            size = int(size)
            if not (1 <= size <= min(h, w)):
                raise InputError(f"patch size must be in 1..{min(h, w)} for a {h}x{w} image, got {size}")
            pos = "centre" if position == "center" else position
            corners = {
                "bottom-right": (h - size, w - size), "bottom-left": (h - size, 0),
                "top-right": (0, w - size), "top-left": (0, 0),
                "centre": ((h - size) // 2, (w - size) // 2),
            }
            if pos == "random":
                r, c = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            elif pos in corners:
                r, c = corners[pos]
            else:
                raise InputError(f"unknown patch position {position!r}; choose one of: {', '.join(PATCH_POSITIONS)}")
            t: Trigger = PatchTrigger(
                columns=tuple(features), image_shape=(h, w), row=r, col=c, size=size,
                value=hi if value is None else float(value),
            )
        else:
            t = BlendTrigger(
                columns=tuple(features), image_shape=(h, w), alpha=float(alpha),
                pattern=tuple(float(v) for v in rng.uniform(lo, hi, size=h * w)),
            )
    elif kind == "tabular":
        numeric = [f for f in features if pd.api.types.is_numeric_dtype(frame[f]) and not pd.api.types.is_bool_dtype(frame[f])]
        if trigger_features is None:
            if not numeric:
                raise InputError("a tabular trigger needs numeric features; the table has none")
            n_pick = min(max(1, int(n_trigger_features)), len(numeric))
            chosen = [numeric[i] for i in np.sort(rng.choice(len(numeric), size=n_pick, replace=False))]
        else:
            chosen = [str(f) for f in trigger_features]
            bad = [f for f in chosen if f not in numeric]
            if bad:
                raise InputError(f"trigger feature(s) {bad} are not numeric feature columns of the table")
        if trigger_values is None or isinstance(trigger_values, str):
            mode = trigger_values or "p99.9"
            vals = []
            for f in chosen:
                col = frame[f].to_numpy(dtype=float, na_value=np.nan)
                q = _percentile_rule(mode)
                if q is not None:
                    vals.append(float(np.nanpercentile(col, q)))
                elif mode == "outside":
                    mx, mn = float(np.nanmax(col)), float(np.nanmin(col))
                    vals.append(mx + (0.1 * (mx - mn) if mx > mn else 1.0))
                else:
                    raise InputError(f"unknown trigger value rule {mode!r}; use 'p99.9' (any 'pNN'), 'outside' or numbers")
        else:
            vals = [float(v) for v in trigger_values]
            if len(vals) != len(chosen):
                raise InputError(f"{len(chosen)} trigger feature(s) but {len(vals)} trigger value(s)")
        t = TabularTrigger(values=tuple(zip(chosen, vals)))
    else:
        raise InputError(f"unknown trigger kind {kind!r}; choose one of: patch, blend, tabular")
    _validate(t)
    return t


def _percentile_rule(mode: str) -> float | None:
    """``"p99.9"`` -> 99.9, ``"p90"`` -> 90.0; ``None`` for anything else."""
    if len(mode) < 2 or mode[0] != "p":
        return None
    try:
        q = float(mode[1:])
    except ValueError:
        return None
    return q if 0.0 <= q <= 100.0 else None


def apply_trigger(frame: pd.DataFrame, trigger: Trigger | Mapping[str, Any]) -> pd.DataFrame:
    """Return a copy of ``frame`` with ``trigger`` stamped on every row.

    ``trigger`` may be a trigger object or its ``to_dict()`` form. Integer columns
    are rounded so they keep their dtype. The input frame is not mutated.

    Raises
    ------
    InputError
        A column the trigger needs is missing from ``frame``.
    """
    t = trigger_from_dict(trigger) if isinstance(trigger, Mapping) else trigger
    out = frame.copy()
    if isinstance(t, PatchTrigger):
        updates = {c: np.full(len(out), t.value) for c in t.pixel_columns()}
    elif isinstance(t, BlendTrigger):
        updates = {}
        for c, p in zip(t.columns, t.pattern):
            if c in out.columns:
                x = out[c].to_numpy(dtype=float, na_value=np.nan)
                updates[c] = (1.0 - t.alpha) * x + t.alpha * p
            else:
                updates[c] = None
    elif isinstance(t, TabularTrigger):
        updates = {c: np.full(len(out), v) for c, v in t.values}
    else:
        raise InputError(f"not a trigger: {type(t).__name__}")
    missing = [c for c in updates if c not in out.columns]
    if missing:
        raise InputError(f"the {t.kind} trigger needs column(s) missing from the table: {missing[:10]}")
    for c, v in updates.items():
        if pd.api.types.is_integer_dtype(out[c]):
            v = np.round(v)
        try:
            out[c] = pd.Series(v, index=out.index).astype(out[c].dtype)
        except (TypeError, ValueError):  # pragma: no cover - exotic dtypes
            out[c] = v
    return out


def save_trigger(trigger: Trigger, path: str | Path) -> Path:
    """Write ``trigger.to_dict()`` as JSON to ``path``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(trigger.to_dict(), indent=2) + "\n", encoding="utf-8")
    return p


def load_trigger(path: str | Path) -> Trigger:
    """Read a trigger written by :func:`save_trigger`.

    Raises
    ------
    InputError
        Missing or unreadable file, invalid JSON.
    ConfigError
        A malformed trigger spec.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"trigger file not found: {p}")
    try:
        spec = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read trigger file {p}: {exc}") from exc
    if isinstance(spec, Mapping) and "trigger" in spec and "kind" not in spec:
        spec = spec["trigger"]  # an attack's params file carries the trigger under this key
    return trigger_from_dict(spec)
