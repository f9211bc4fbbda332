"""Quarantine review and batch formation."""

from __future__ import annotations

import pytest

from poisonguard.errors import InputError
from poisonguard.feedback import FeedbackIn, feedback_counts, list_items, review, submit_feedback, take_batch


def _items(loop, n, start=0):
    rows = loop.pool.iloc[start:start + n]
    return [FeedbackIn(user=f"u{i}", label=int(r.y), features={c: float(getattr(r, c)) for c in loop.champion.features})
            for i, r in enumerate(rows.itertuples())]


def test_review_release_reject_and_batch(loop):
    good = submit_feedback(loop.store, _items(loop, 5), champion=loop.champion)
    bad = submit_feedback(loop.store, [FeedbackIn(user="u", label=0, prediction_id=f"p{i}") for i in range(3)])
    assert all(d.status == "accepted" for d in good)
    q = list_items(loop.store)
    assert [r.id for r in q] == [d.feedback_id for d in bad]
    assert review(loop.store, [bad[0].feedback_id], action="release", actor="tester") == 1
    assert review(loop.store, [bad[1].feedback_id], action="reject", actor="tester") == 1
    with pytest.raises(InputError, match="not quarantined"):
        review(loop.store, [good[0].feedback_id], action="reject", actor="tester")
    with pytest.raises(InputError, match="unknown review action"):
        review(loop.store, [bad[2].feedback_id], action="delete", actor="tester")
    counts = feedback_counts(loop.store)["by_status"]
    assert counts == {"accepted": 5, "released": 1, "rejected": 1, "quarantined": 1}
    # the released item refers to a prediction never served: it has no features and cannot be trained on
    batch = take_batch(loop.store, features=loop.champion.features, label="y", classes=[0, 1, 2])
    assert batch is not None and sorted(batch.feedback_ids) == sorted(d.feedback_id for d in good)
    assert list(batch.frame.columns) == [*loop.champion.features, "y"] and batch.frame["y"].dtype.kind == "i"
    assert take_batch(loop.store, features=loop.champion.features, label="y", classes=[0, 1, 2]) is None
