"""Row-level diff: multiset matching, pairing of changed rows by id or position."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonguard.provenance import diff_hashes
from poisonguard.provenance._diff import unmatched


def _h(values):
    out = np.zeros((len(values), 16), np.uint8)
    for i, v in enumerate(values):
        out[i, :8] = np.frombuffer(int(v).to_bytes(8, "big"), np.uint8)
    return out


def test_changed_by_position_when_counts_match():
    d = diff_hashes(_h([1, 2, 3, 4]), _h([1, 2, 9, 4]))
    assert d.changed_old.tolist() == [2] and d.changed_new.tolist() == [2]
    assert d.added.size == 0 and d.removed.size == 0


def test_added_and_removed():
    d = diff_hashes(_h([1, 2, 3]), _h([1, 3, 7, 8]))
    assert d.removed.tolist() == [1] and d.added.tolist() == [2, 3] and d.n_changed == 0


def test_changed_by_id_even_when_moved():
    old, new = _h([1, 2, 3]), _h([9, 1, 3, 5])
    d = diff_hashes(old, new, old_ids=np.array(["a", "b", "c"], object), new_ids=np.array(["b", "a", "c", "z"], object))
    assert d.changed_old.tolist() == [1] and d.changed_new.tolist() == [0]
    assert d.changed_ids.tolist() == ["b"]
    assert d.added.tolist() == [3] and d.removed.size == 0


def test_reordered_only():
    d = diff_hashes(_h([1, 2, 3]), _h([3, 1, 2]))
    assert d.identical and d.reordered


def test_duplicates_are_a_multiset():
    a, b = unmatched(_h([5, 5, 6]), _h([5, 6, 6, 5, 5]))
    assert a.tolist() == [False, False, False]
    assert b.tolist() == [False, False, True, False, True]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 6), max_size=15), st.lists(st.integers(0, 6), max_size=15))
def test_unmatched_counts_are_the_multiset_difference(xs, ys):
    a, b = unmatched(_h(xs), _h(ys))
    from collections import Counter

    cx, cy = Counter(xs), Counter(ys)
    assert Counter(np.array(xs, dtype=int)[a].tolist()) == cx - cy
    assert Counter(np.array(ys, dtype=int)[b].tolist()) == cy - cx
