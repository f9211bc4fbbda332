"""Simulated feedback with ground truth: honest users and coordinated campaigns.

For testing the loop the way :mod:`poisonguard.attacks` tests the scan: every function
is deterministic given ``seed`` and returns :class:`FeedbackIn` items plus the truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._ingest import FeedbackIn

if TYPE_CHECKING:
    from pathlib import Path

    from ..store import Store
    from ._ingest import ChampionView

__all__ = ["DemoLoop", "demo_loop", "SimulatedFeedback", "loop_table", "honest_feedback", "flip_campaign", "trigger_campaign"]


@dataclass
class SimulatedFeedback:
    """Items to send and, per item, whether it is honest and the row's true label."""

    items: list[FeedbackIn]
    honest: np.ndarray
    true_labels: np.ndarray


def loop_table(n_rows: int, *, n_features: int = 8, n_informative: int = 5,
               weights: tuple[float, ...] = (0.5, 0.42, 0.08), class_sep: float = 1.5, seed: int = 0,
               label: str = "y") -> pd.DataFrame:
    """A generated classification table (``f0..``, ``label``) with a minority class (``weights``).

    The first ``n_informative`` columns carry the classes, the rest are noise (rows are
    shuffled, columns are not), so a simulated trigger can sit on features a clean
    model has no reason to use.
    """
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n_rows, n_features=n_features, n_informative=n_informative,
                               n_redundant=0, n_classes=len(weights), weights=list(weights), class_sep=class_sep,
                               flip_y=0.0, shuffle=False, random_state=seed)
    df = pd.DataFrame(X.round(4), columns=[f"f{i}" for i in range(n_features)])
    df[label] = y
    # make_classification without shuffle also keeps rows sorted by class: shuffle the rows only
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _rows(frame: pd.DataFrame, label: str) -> list[dict[str, float]]:
    feats = [c for c in frame.columns if c != label]
    return [{c: float(v) for c, v in zip(feats, row)} for row in frame[feats].to_numpy()]


def honest_feedback(frame: pd.DataFrame, label: str, *, n_users: int, noise: float = 0.0, seed: int = 0,
                    user_prefix: str = "honest") -> SimulatedFeedback:
    """Each row labelled with its true label by one of ``n_users`` users; ``noise`` of them mistaken at random."""
    rng = np.random.default_rng(seed)
    y = frame[label].to_numpy()
    classes = np.unique(y)
    given = y.copy()
    wrong = rng.random(y.size) < noise
    for i in np.flatnonzero(wrong):
        given[i] = rng.choice(classes[classes != y[i]])
    users = rng.integers(0, n_users, size=y.size)
    items = [FeedbackIn(user=f"{user_prefix}{u}", label=int(g) if np.issubdtype(type(g), np.integer) else g,
                        features=f, client_id=f"{user_prefix}-{seed}-{i}")
             for i, (u, g, f) in enumerate(zip(users, given, _rows(frame, label)))]
    return SimulatedFeedback(items=items, honest=~wrong, true_labels=y)


def flip_campaign(frame: pd.DataFrame, label: str, *, from_label: object, to_label: object, n_items: int,
                  n_users: int, seed: int = 0, user_prefix: str = "sock") -> SimulatedFeedback:
    """``n_items`` rows of class ``from_label`` labelled ``to_label`` by ``n_users`` new accounts."""
    rng = np.random.default_rng(seed)
    src = frame[frame[label] == from_label]
    pick = src.iloc[rng.choice(len(src), size=min(n_items, len(src)), replace=False)]
    users = rng.integers(0, n_users, size=len(pick))
    items = [FeedbackIn(user=f"{user_prefix}{u}", label=to_label, features=f, client_id=f"{user_prefix}-{seed}-{i}")
             for i, (u, f) in enumerate(zip(users, _rows(pick, label)))]
    return SimulatedFeedback(items=items, honest=np.zeros(len(items), bool), true_labels=pick[label].to_numpy())


def trigger_campaign(frame: pd.DataFrame, label: str, *, trigger: Mapping[str, float], to_label: object,
                     n_items: int, n_users: int, seed: int = 0, user_prefix: str = "bd") -> SimulatedFeedback:
    """``n_items`` rows of other classes stamped with ``trigger`` and labelled ``to_label``."""
    rng = np.random.default_rng(seed)
    src = frame[frame[label] != to_label]
    pick = src.iloc[rng.choice(len(src), size=min(n_items, len(src)), replace=False)].copy()
    for col, v in trigger.items():
        pick[col] = v
    users = rng.integers(0, n_users, size=len(pick))
    items = [FeedbackIn(user=f"{user_prefix}{u}", label=to_label, features=f, client_id=f"{user_prefix}-{seed}-{i}")
             for i, (u, f) in enumerate(zip(users, _rows(pick, label)))]
    return SimulatedFeedback(items=items, honest=np.zeros(len(items), bool), true_labels=pick[label].to_numpy())


@dataclass
class DemoLoop:
    """A ready loop for tests, benchmarks and demos: tables, a store and a registered champion."""

    store: "Store"
    base: pd.DataFrame
    val: pd.DataFrame
    pool: pd.DataFrame
    version: int
    champion: "ChampionView"
    root: "Path"
    label: str = "y"


def demo_loop(root: "Path", *, tables: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], champion_dir: "Path | None" = None,
              label: str = "y", db_url: str | None = None) -> DemoLoop:
    """Open a store under ``root``, register a logistic-regression champion of ``tables[0]`` and calibrate it.

    Parameters
    ----------
    tables : (base, validation, pool)
        The champion's training table, the held-out validation table, rows to draw feedback from.
    champion_dir : path, optional
        An already trained champion directory (trained and saved here when absent).
    """
    from pathlib import Path

    from ..registry import load_alias, promote, register_model
    from ..store import open_store
    from ..training import TrainSettings, save_model, train_model
    from ._campaign import confident_threshold
    from ._ingest import ChampionView

    root = Path(root)
    base, val, pool = tables
    if champion_dir is None:
        champion_dir = root / "champion-src"
        save_model(train_model(base, label=label, settings=TrainSettings(model="logreg", val_fraction=0.0)),
                   champion_dir)
    store = open_store(db_url or root / "poisonguard.db", create=True)
    from ..training import load_model

    model = load_model(champion_dir)
    thr = confident_threshold(model, val, label)
    info = register_model(store, champion_dir, root=root / "models", detail={"confident_threshold": thr})
    promote(store, info.version, force=True, reason="first champion (demo loop)")
    _, model = load_alias(store)
    return DemoLoop(store=store, base=base, val=val, pool=pool, version=info.version,
                    champion=ChampionView.of(model, info.version, confident=thr), root=root / "models", label=label)
