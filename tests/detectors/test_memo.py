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
