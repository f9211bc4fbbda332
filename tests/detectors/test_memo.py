"""The bounded memo shared by the neighbour graph and the token search."""

from __future__ import annotations

from poisonguard.detectors._memo import BoundedMemo


def test_keeps_the_last_entries_and_drops_the_oldest():
    m: BoundedMemo[int] = BoundedMemo(2)
    m.put("a", 1)
    m.put("b", 2)
    m.put("a", 3)  # refreshing a key makes it the newest
    m.put("c", 4)
    assert m.get("b") is None and m.get("a") == 3 and m.get("c") == 4


def test_a_frozen_array_is_fingerprinted_once_and_a_writeable_one_every_time(monkeypatch):
    import numpy as np

    from poisonguard.detectors import _base

    calls = []
    real = _base._digest
    monkeypatch.setattr(_base, "_digest", lambda X: calls.append(1) or real(X))
    X = np.arange(12.0).reshape(4, 3).copy()  # owns its memory
    first = _base.fingerprint_array(X)
    X[0, 0] = 99.0  # writeable: a change is seen
    assert _base.fingerprint_array(X) != first and len(calls) == 2
    X.flags.writeable = False
    frozen = _base.fingerprint_array(X)
    assert _base.fingerprint_array(X) == frozen and len(calls) == 3  # frozen: computed once
    view = X[:2]  # a view does not own its memory: never remembered
    _base.fingerprint_array(view)
    _base.fingerprint_array(view)
    assert len(calls) == 5
    assert frozen == real(np.array(X))  # the same digest as a fresh copy's


def test_check_x_keeps_float32_and_reports_the_first_non_finite_cell():
    import numpy as np
    import pytest

    from poisonguard.errors import DataError
    from poisonguard.validation import check_X

    X = np.zeros((5, 3), dtype=np.float32)
    assert check_X(X) is X
    assert check_X(X.astype(np.float64)).dtype == np.float64
    assert check_X([[1, 2], [3, 4]]).dtype == np.float64
    X[3, 2], X[4, 0] = np.nan, np.inf
    X.flags.writeable = False
    for _ in range(2):  # the remembered answer is the same answer
        with pytest.raises(DataError, match="non-finite value at row 3, column 2"):
            check_X(X)
