"""Shared fixtures: small digits tables (clean and 10% label flips), one BLAS/OpenMP thread.

The tables are session-scoped and must be treated as read-only: copy before mutating.
"""

from __future__ import annotations

import os

# Small matrices everywhere: one thread per pytest-xdist worker avoids oversubscription.
# Set before numpy/sklearn start their thread pools (conftest is imported first).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from dataclasses import dataclass  # noqa: E402

from hypothesis import settings  # noqa: E402

# CI must not depend on luck: property tests draw the same examples on every run.
# `HYPOTHESIS_PROFILE=explore pytest ...` searches fresh examples locally.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from poisonguard.attacks import flip_labels  # noqa: E402
from poisonguard.datasets import load_dataset  # noqa: E402

#: rows of the small digits subset used by the fast tests
SMALL_DIGITS_ROWS = 600


@dataclass(frozen=True)
class Flipped:
    """A poisoned copy of a table and the ground-truth mask of flipped rows."""

    frame: pd.DataFrame
    mask: np.ndarray
    features: list[str]


@pytest.fixture(scope="session")
def digits_small() -> pd.DataFrame:
    """600 digits rows: ``px0..px63`` then an integer ``label`` column (read-only)."""
    return load_dataset("digits", n_rows=SMALL_DIGITS_ROWS, seed=0).frame


@pytest.fixture(scope="session")
def digits_features(digits_small) -> list[str]:
    return [c for c in digits_small.columns if c != "label"]


@pytest.fixture(scope="session")
def digits_flipped(digits_small, digits_features) -> Flipped:
    """``digits_small`` with 10% of labels flipped (seed 0) and the mask of flipped rows."""
    pt = flip_labels(digits_small, "label", 0.1, seed=0)
    return Flipped(frame=pt.frame, mask=pt.mask, features=digits_features)


# --- the feedback loop (tests/feedback, gate, registry, service) -----------------------
# A small loop per test: generated table, logistic-regression champion, fresh store.


@pytest.fixture(scope="session")
def loop_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Base (200 rows), feedback pool (1,000) and held-out validation rows of one generated table."""
    from poisonguard.feedback import loop_table

    df = loop_table(2600, seed=0, class_sep=1.5)
    return df.iloc[:200].reset_index(drop=True), df.iloc[200:1200].reset_index(drop=True), df.iloc[1200:].reset_index(drop=True)


@pytest.fixture(scope="session")
def champion_dir(tmp_path_factory, loop_tables):
    from poisonguard.training import TrainSettings, save_model, train_model

    d = tmp_path_factory.mktemp("champ") / "model"
    save_model(train_model(loop_tables[0], label="y", settings=TrainSettings(model="logreg", val_fraction=0.0)), d)
    return d


@pytest.fixture
def loop(tmp_path, loop_tables, champion_dir):
    from poisonguard.feedback import demo_loop

    lp = demo_loop(tmp_path, tables=loop_tables, champion_dir=champion_dir)
    yield lp
    lp.store.dispose()
