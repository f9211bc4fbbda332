"""Per-prediction certified radii of a DPA model, certified accuracy, and its plot."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..validation import as_frame
from ._model import TrainedModel

__all__ = ["CertifyResult", "certify", "certified_accuracy_curve"]


@dataclass(frozen=True)
class CertifyResult:
    """Certificates of a DPA model on a table.

    Attributes
    ----------
    rows : DataFrame
        One row per input row: ``prediction``, ``radius`` (poisoned training rows --
        inserted, deleted or relabelled -- the prediction provably withstands),
        ``votes`` (for the prediction), ``runner_up``, ``runner_up_votes``, and when
        labels are known ``label`` and ``correct``.
    curve : DataFrame or None
        ``radius`` and ``certified_accuracy`` (share of rows predicted correctly
        *and* with at least that radius), for radius 0..max; ``None`` without labels.
    partitions : int
        Number of base models.
    method : str
        ``"dpa"`` (exact radius) or ``"bagging"`` (radius holds with probability
        ``1 - alpha``; ``-1`` = not certified).
    """

    rows: pd.DataFrame
    curve: pd.DataFrame | None
    partitions: int
    method: str = "dpa"

    def accuracy_at(self, radius: int) -> float:
        """Certified accuracy at ``radius`` (needs labels)."""
        if self.curve is None:
            raise InputError("certified accuracy needs the true labels: the data has no label column")
        if radius > int(self.curve["radius"].max()):
            return 0.0
        return float(self.curve.loc[self.curve["radius"] == radius, "certified_accuracy"].iloc[0])

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``certificates.csv`` and, with labels, ``certified_accuracy.csv`` and ``.png``."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        paths = {"rows": d / "certificates.csv"}
        self.rows.to_csv(paths["rows"], index=False)
        if self.curve is not None:
            paths["curve"] = d / "certified_accuracy.csv"
            self.curve.to_csv(paths["curve"], index=False)
            paths["plot"] = d / "certified_accuracy.png"
            plot_curve(self.curve, paths["plot"], title=f"{self.method.upper()}, K={self.partitions}")
        return paths


def certified_accuracy_curve(correct: np.ndarray, radius: np.ndarray) -> pd.DataFrame:
    """Certified accuracy at every radius from 0 to ``max(radius) + 1``."""
    top = int(radius.max()) + 1 if radius.size else 1
    rs = np.arange(top + 1)
    acc = [float(np.mean(correct & (radius >= r))) if radius.size else 0.0 for r in rs]
    return pd.DataFrame({"radius": rs, "certified_accuracy": acc})


def certify(model: TrainedModel, data: Any, *, label: str | None = None) -> CertifyResult:
    """Certified radius of each prediction of a DPA model.

    Parameters
    ----------
    model : TrainedModel
        A model trained with ``certified=CertifiedSettings(...)``.
    data : path or DataFrame
        Rows to predict. Labels are read from ``label`` (default: the model's label
        column, when present) to compute certified accuracy.
    """
    if not model.certified:
        raise InputError(
            f"certify needs a model trained with --certified; this model is {model.kind!r}"
        )
    df = as_frame(data)
    df = df.set_axis([str(c) for c in df.columns], axis=1)
    counts, pred, radius, runner = model.certificates(df)
    idx = np.arange(pred.size)
    rows = pd.DataFrame(
        {
            "prediction": model.classes[pred],
            "radius": radius,
            "votes": counts[idx, pred],
            "runner_up": model.classes[runner],
            "runner_up_votes": counts[idx, runner],
        }
    )
    col = label if label is not None else (model.label if model.label in df.columns else None)
    curve = None
    if col is not None:
        if col not in df.columns:
            raise InputError(f"{{label}} column {col!r} not found in the data", params=["label"])
        truth = df[col].to_numpy()
        lookup = {str(c): i for i, c in enumerate(model.classes)}
        codes = np.array([lookup.get(str(v), -1) for v in truth], dtype=np.int64)
        if (codes < 0).any():
            warnings.warn(
                f"{int((codes < 0).sum())} row(s) have a label the model never saw; they count as wrong",
                stacklevel=2,
            )
        correct = codes == pred
        rows["label"] = truth
        rows["correct"] = correct
        curve = certified_accuracy_curve(correct, radius)
    return CertifyResult(rows=rows, curve=curve, partitions=len(model.members), method=model.kind)


def plot_curve(curve: pd.DataFrame, path: Path, *, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.step(curve["radius"], curve["certified_accuracy"], where="post")
    ax.set_xlabel("radius (poisoned training rows)")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
