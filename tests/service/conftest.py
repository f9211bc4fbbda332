"""A small feedback loop per test: generated table, logistic-regression champion, fresh store."""

from __future__ import annotations

import pandas as pd
import pytest

from poisonguard.feedback import DemoLoop, demo_loop, loop_table
from poisonguard.training import TrainSettings, save_model, train_model


@pytest.fixture(scope="session")
def loop_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    df = loop_table(2600, seed=0, class_sep=1.5)
    return df.iloc[:200].reset_index(drop=True), df.iloc[200:1200].reset_index(drop=True), df.iloc[1200:].reset_index(drop=True)


@pytest.fixture(scope="session")
def champion_dir(tmp_path_factory, loop_tables):
    d = tmp_path_factory.mktemp("champ") / "model"
    save_model(train_model(loop_tables[0], label="y", settings=TrainSettings(model="logreg", val_fraction=0.0)), d)
    return d


@pytest.fixture
def loop(tmp_path, loop_tables, champion_dir) -> DemoLoop:
    lp = demo_loop(tmp_path, tables=loop_tables, champion_dir=champion_dir)
    yield lp
    lp.store.dispose()
