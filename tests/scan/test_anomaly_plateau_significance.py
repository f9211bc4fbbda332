"""The plateau rule of the anomaly tail test needs a significant share, not only a share of 0.5."""

from __future__ import annotations

import numpy as np

from poisonguard.scan._anomaly_rules import (
    PLATEAU_ALPHA,
    TAIL_HIGH,
    TAIL_LOW,
    anomaly_presence,
    plateau_p_value,
)


def _z(n_bulk: int, between: int, beyond: int, seed: int = 0) -> np.ndarray:
    """Robust-z-like scores: a normal bulk, ``between`` rows in [TAIL_LOW, TAIL_HIGH), ``beyond`` past TAIL_HIGH."""
    rng = np.random.default_rng(seed)
    bulk = np.clip(rng.normal(size=n_bulk), -3.5, 3.5)
    mid = rng.uniform(TAIL_LOW, TAIL_HIGH - 0.01, size=between)
    far = rng.uniform(TAIL_HIGH + 0.5, TAIL_HIGH + 3.0, size=beyond)
    return np.concatenate([bulk, mid, far])


def test_a_handful_of_tail_rows_at_half_is_not_a_plateau() -> None:
    # 5 of 9 above TAIL_HIGH on 200 rows: the share of a small clean table (MASS crabs)
    z = _z(191, 4, 5)
    assert plateau_p_value(9, 5) > PLATEAU_ALPHA
    assert not anomaly_presence(z).present


def test_a_pile_of_injected_rows_is_a_plateau() -> None:
    # 30 of 36 above TAIL_HIGH: far outliers piled up beyond a thin clean tail
    z = _z(964, 6, 30)
    assert plateau_p_value(36, 30) < 1e-6
    assert anomaly_presence(z).present


def test_plateau_p_value_is_monotone_and_bounded() -> None:
    ps = [plateau_p_value(20, k) for k in range(0, 21)]
    assert ps[0] == 1.0
    assert all(a >= b for a, b in zip(ps, ps[1:]))
    assert 0.0 <= ps[-1] < 1e-9
