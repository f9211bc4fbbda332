"""Accuracy, and the damage a poisoning attack does, across privacy budgets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from ..validation import check_fraction, prepare_table
from ._model import train_model
from ._settings import DPSettings, TrainSettings, validate_settings

__all__ = ["DEFAULT_EPSILONS", "SweepResult", "privacy_sweep", "ATTACKS"]

#: The budgets of the issue; ``None`` is the non-private baseline.
DEFAULT_EPSILONS: tuple[float | None, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, None)
ATTACKS = ("flip", "backdoor")

AttackFn = Callable[[pd.DataFrame, str, int], Any]


@dataclass(frozen=True)
class SweepResult:
    """One row per privacy budget.

    ``table`` columns: ``epsilon`` (target; NaN = no DP), ``epsilon_spent``,
    ``noise_multiplier``, ``accuracy`` (trained on clean data) and, with an attack,
    ``poisoned_accuracy`` plus ``accuracy_lost`` (flip) or ``attack_success_rate``
    (backdoor: share of triggered test rows of other classes predicted as the target).
    """

    table: pd.DataFrame
    attack: str | None
    settings: dict[str, Any]

    def to_markdown(self) -> str:
        cols = list(self.table.columns)
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for _, row in self.table.iterrows():
            cells = []
            for c in cols:
                v = row[c]
                if c == "epsilon" and (v is None or (isinstance(v, float) and math.isnan(v))):
                    cells.append("no DP")
                elif isinstance(v, float):
                    cells.append("-" if math.isnan(v) else f"{v:.3f}" if c != "epsilon" else f"{v:g}")
                else:
                    cells.append(str(v))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``privacy_sweep.csv``, ``.md`` and ``.png``."""
        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        paths = {"csv": d / "privacy_sweep.csv", "md": d / "privacy_sweep.md", "plot": d / "privacy_sweep.png"}
        self.table.to_csv(paths["csv"], index=False)
        paths["md"].write_text(self.to_markdown() + "\n", encoding="utf-8")
        _plot(self, paths["plot"])
        return paths


def _resolve_attack(attack: str | AttackFn | None, *, rate: float, target: Any, image_shape: Any) -> AttackFn | None:
    if attack is None or callable(attack):
        return attack
    if attack not in ATTACKS:
        raise InputError(f"{{attack}} must be one of {', '.join(ATTACKS)}, got {attack!r}", params=["attack"])
    from .. import attacks as _attacks

    if attack == "flip":
        return lambda frame, label, seed: _attacks.flip_labels(frame, label, rate=rate, seed=seed)

    def _backdoor(frame: pd.DataFrame, label: str, seed: int) -> Any:
        tgt = target if target is not None else frame[label].iloc[0]
        return _attacks.backdoor(frame, label, rate=rate, seed=seed, target=tgt, image_shape=image_shape)

    return _backdoor


def privacy_sweep(
    data: Any,
    *,
    label: str,
    epsilons: Sequence[float | None] = DEFAULT_EPSILONS,
    settings: TrainSettings | None = None,
    delta: float = 1e-5,
    max_grad_norm: float = 1.0,
    accountant: str = "rdp",
    attack: str | AttackFn | None = None,
    attack_rate: float = 0.1,
    target: Any = None,
    image_shape: tuple[int, int] | None = None,
    test_fraction: float = 0.25,
    repeats: int = 1,
) -> SweepResult:
    """Train at each privacy budget and measure accuracy (and an attack's damage).

    Every budget trains the same torch model and loop (``settings.model`` is
    ``logreg`` or ``mlp``); ``None`` in ``epsilons`` is the non-private baseline.
    The test split is taken before any poisoning. With ``attack`` (``"flip"``,
    ``"backdoor"``, or a callable ``(train_frame, label, seed) -> PoisonedTable``)
    each budget is also trained on the poisoned training part.
    """
    base = settings or TrainSettings(model="mlp")
    check_fraction(test_fraction, "test_fraction")
    if repeats < 1:
        raise InputError(f"{{repeats}} must be at least 1, got {repeats}", params=["repeats"])
    if not epsilons:
        raise InputError("no privacy budget to sweep")
    for e in epsilons:
        if e is not None and not (e > 0 and math.isfinite(e)):
            raise InputError(f"every epsilon must be positive and finite, got {e}")
    attack_fn = _resolve_attack(attack, rate=attack_rate, target=target, image_shape=image_shape)
    prep = prepare_table(data, label=label, require_label=True)
    frame = prep.frame[[*prep.features, label]]
    from sklearn.model_selection import train_test_split

    idx = np.arange(frame.shape[0])
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=base.seed, stratify=prep.y)
    train_df = frame.iloc[tr].reset_index(drop=True)
    test_df = frame.iloc[te].reset_index(drop=True)
    base = dataclasses.replace(base, val_fraction=0.0, backend="torch", dp=None, certified=None)
    # check every budget's settings before spending minutes training
    for e in epsilons:
        s = _at(base, e, delta, max_grad_norm, accountant)
        validate_settings(s, n_train=train_df.shape[0])
    poisoned = [attack_fn(train_df, label, base.seed + r) for r in range(repeats)] if attack_fn else []
    rows = []
    kind = None if attack is None else (attack if isinstance(attack, str) else getattr(poisoned[0], "kind", "custom"))
    for e in epsilons:
        acc, pacc, asr, spent, noise = [], [], [], [], []
        for r in range(repeats):
            s = dataclasses.replace(_at(base, e, delta, max_grad_norm, accountant), seed=base.seed + r)
            m = train_model(train_df, label=label, settings=s)
            acc.append(_accuracy(m, test_df, label))
            if m.metadata["privacy"]:
                spent.append(m.metadata["privacy"]["epsilon_spent"])
                noise.append(m.metadata["privacy"]["noise_multiplier"])
            if attack_fn is not None:
                pt = poisoned[r]
                pm = train_model(pt.frame[[*prep.features, label]], label=label, settings=s)
                pacc.append(_accuracy(pm, test_df, label))
                if kind == "backdoor":
                    asr.append(_attack_success(pm, test_df, label, pt))
        row: dict[str, Any] = {
            "epsilon": float("nan") if e is None else float(e),
            "epsilon_spent": float(np.mean(spent)) if spent else float("nan"),
            "noise_multiplier": float(np.mean(noise)) if noise else float("nan"),
            "accuracy": float(np.mean(acc)),
        }
        if attack_fn is not None:
            row["poisoned_accuracy"] = float(np.mean(pacc))
            if kind == "backdoor":
                row["attack_success_rate"] = float(np.mean(asr))
            else:
                row["accuracy_lost"] = row["accuracy"] - row["poisoned_accuracy"]
        rows.append(row)
    info = {
        "model": base.model, "epochs": base.epochs, "batch_size": base.batch_size, "lr": base.lr,
        "delta": delta, "max_grad_norm": max_grad_norm, "accountant": accountant, "attack": kind,
        "attack_rate": attack_rate if attack_fn else None, "n_train": int(train_df.shape[0]),
        "n_test": int(test_df.shape[0]), "repeats": repeats,
    }
    return SweepResult(table=pd.DataFrame(rows), attack=kind, settings=info)


def _at(base: TrainSettings, eps: float | None, delta: float, c: float, accountant: str) -> TrainSettings:
    if eps is None:
        return base
    return dataclasses.replace(base, dp=DPSettings(epsilon=eps, delta=delta, max_grad_norm=c, accountant=accountant))


def _accuracy(model: Any, test: pd.DataFrame, label: str) -> float:
    pred = model.predict(test)
    return float(np.mean(pred.astype(str) == test[label].to_numpy().astype(str)))


def _attack_success(model: Any, test: pd.DataFrame, label: str, pt: Any) -> float:
    from ..attacks import apply_trigger

    tgt = str(pt.target)
    others = test[test[label].astype(str) != tgt].reset_index(drop=True)
    if others.empty:
        return float("nan")
    pred = model.predict(apply_trigger(others, pt.trigger))
    return float(np.mean(pred.astype(str) == tgt))


def _plot(res: SweepResult, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = res.table
    dp = t[~t["epsilon"].isna()]
    nodp = t[t["epsilon"].isna()]
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(dp["epsilon"], dp["accuracy"], "o-", label="accuracy (clean training)")
    if not nodp.empty:
        ax.axhline(float(nodp["accuracy"].iloc[0]), ls="--", color="C0", alpha=0.6, label="no DP")
    if "poisoned_accuracy" in t:
        ax.plot(dp["epsilon"], dp["poisoned_accuracy"], "s-", color="C1", label="accuracy (poisoned training)")
        if not nodp.empty:
            ax.axhline(float(nodp["poisoned_accuracy"].iloc[0]), ls="--", color="C1", alpha=0.6)
    if "attack_success_rate" in t:
        ax.plot(dp["epsilon"], dp["attack_success_rate"], "^-", color="C3", label="backdoor success rate")
        if not nodp.empty:
            ax.axhline(float(nodp["attack_success_rate"].iloc[0]), ls=":", color="C3", alpha=0.6)
    ax.set_xscale("log")
    # label the budgets actually trained, not matplotlib's 3x10^0-style minor ticks
    ax.set_xticks(list(dp["epsilon"]), [f"{e:g}" for e in dp["epsilon"]])
    ax.minorticks_off()
    ax.set_xlabel("epsilon (log scale; dashed/dotted lines: no DP)")
    ax.set_ylabel("rate")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
