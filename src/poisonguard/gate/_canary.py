"""Backdoor canaries: probe sets stamped with known, simulated or batch-derived triggers.

A backdoored model sends rows carrying its trigger to one class whatever they show.
A canary stamps a trigger on held-out rows and measures the largest share of them
that moves to any single class they did not belong to and were not predicted as
before. A batch can only teach a trigger that some of its rows carry, so the gate
measures canaries the batch carries and compares the challenger's share with the
champion's: a jump means the batch taught something the old model did not know. (A
linear model pushed far outside its training range moves rows too; comparing with the
champion, on confidently predicted rows, keeps that from reading as a backdoor.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["Canary", "CanaryResult", "canary_rate", "carriers", "simulated_canaries", "batch_canaries"]


@dataclass(frozen=True)
class Canary:
    """A trigger to stamp: feature -> value. ``source`` is ``known``, ``simulated`` or ``batch``."""

    name: str
    values: Mapping[str, float] = field(default_factory=dict)
    source: str = "known"

    def stamp(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for col, v in self.values.items():
            out[col] = v
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "values": {k: float(v) for k, v in self.values.items()}, "source": self.source}


def carriers(frame: pd.DataFrame, canary: Canary) -> int:
    """Rows of ``frame`` that carry every stamped value of ``canary`` (up to float rounding)."""
    mask = np.ones(len(frame), dtype=bool)
    for col, v in canary.values.items():
        if col not in frame:
            return 0
        x = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
        mask &= np.isclose(x, float(v), rtol=1e-6, atol=1e-6)
    return int(mask.sum())


@dataclass(frozen=True)
class CanaryResult:
    """Largest share of probe rows moved to a single class, and which class."""

    rate: float
    to_class: Any
    n_probe: int


def canary_rate(model: Any, frame: pd.DataFrame, y_true: np.ndarray, canary: Canary, *,
                confident: float = 0.9, min_rows: int = 20) -> CanaryResult:
    """Share of confidently predicted rows moved onto one class ``c`` by the stamp, maximised over ``c``.

    Only rows whose true label and clean prediction both differ from ``c`` count, and
    only rows the model predicts with at least ``confident`` probability: a clean model
    that extrapolates moves rows near its boundaries when a feature leaves its range,
    while a backdoor overrides even strong evidence. With fewer than ``min_rows`` such
    rows every row whose label and prediction differ from ``c`` counts.
    """
    from ..registry import predict_with_confidence

    clean, conf = predict_with_confidence(model, frame)
    stamped, _ = predict_with_confidence(model, canary.stamp(frame))
    clean, stamped = np.asarray(clean).astype(str), np.asarray(stamped).astype(str)
    y = np.asarray(y_true).astype(str)
    best, best_c, n_best = 0.0, None, 0
    for c in np.unique(np.concatenate([clean, stamped, y])):
        eligible = (y != c) & (clean != c)
        if int((eligible & (conf >= confident)).sum()) >= min_rows:
            eligible &= conf >= confident
        n = int(eligible.sum())
        if n == 0:
            continue
        r = float(np.mean(stamped[eligible] == c))
        if r > best:
            best, best_c, n_best = r, c, n
    return CanaryResult(rate=best, to_class=None if best_c is None else str(best_c), n_probe=n_best)


def simulated_canaries(reference: pd.DataFrame, features: Sequence[str], *, n: int = 3, width: int = 3,
                       seed: int = 0) -> list[Canary]:
    """``n`` random triggers of ``width`` numeric features set to their 99th percentile.

    A patch of saturated values is what most tabular and image triggers look like; a
    high percentile keeps the stamp inside the data's range, so a clean model has no
    reason to react to it much more than the champion did.
    """
    num = [c for c in features if pd.api.types.is_numeric_dtype(reference[c])]
    if not num:
        return []
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cols = rng.choice(len(num), size=min(width, len(num)), replace=False)
        values = {num[j]: float(reference[num[j]].quantile(0.99)) for j in sorted(cols)}
        out.append(Canary(name=f"simulated-{i}", values=values, source="simulated"))
    return out


def batch_canaries(batch: pd.DataFrame, base: pd.DataFrame, label: str, features: Sequence[str], *,
                   min_rows: int = 5, purity: float = 0.8, base_rate: float = 0.005) -> list[Canary]:
    """Triggers suggested by the batch: exact values common in one label of the batch, rare in the base.

    For every numeric feature, a value carried by at least ``max(min_rows, 1% of the
    batch)`` batch rows, at least ``purity`` of them with one label, and by fewer than
    ``base_rate`` of the base rows, is a candidate stamp for that label. The candidates of
    one label form one canary.
    """
    if batch.empty:
        return []
    need = max(min_rows, int(np.ceil(0.01 * len(batch))))
    per_label: dict[Any, dict[str, float]] = {}
    for col in features:
        if col not in batch or not pd.api.types.is_numeric_dtype(batch[col]):
            continue
        counts = batch.groupby(col, sort=False)[label].agg(["size", lambda s: s.value_counts().iloc[0],
                                                             lambda s: s.value_counts().index[0]])
        counts.columns = ["size", "top", "top_label"]
        hits = counts[(counts["size"] >= need) & (counts["top"] >= purity * counts["size"])]
        if hits.empty:
            continue
        base_col = base[col] if col in base else pd.Series(dtype=float)
        for value, row in hits.iterrows():
            if float(np.mean(base_col.to_numpy() == value)) < base_rate:
                per_label.setdefault(row["top_label"], {})[col] = float(value)
    return [Canary(name=f"batch-label-{lab}", values=vals, source="batch") for lab, vals in per_label.items()]
