from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poisonguard.provenance import add_source, generate_key, init_ledger
from poisonguard.store import open_store


@pytest.fixture
def key(tmp_path):
    return generate_key(tmp_path / "keys" / "ledger.key", alg="ed25519")


@pytest.fixture
def store(tmp_path, key):
    st = open_store(tmp_path / "pg.db", create=True)
    init_ledger(st, key)
    add_source(st, "feed", kind="vendor", key=key)
    yield st
    st.dispose()


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame({
        "id": np.arange(n) + 1000,
        "x": rng.normal(size=n).round(3),
        "k": rng.integers(0, 5, n),
        "s": rng.choice(["a", "b", "café"], n),
    })
