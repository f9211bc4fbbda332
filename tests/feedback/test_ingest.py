"""Each feedback validation rule, idempotent retries, and that nothing is ever dropped."""

from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from poisonguard.errors import ConfigError, InputError, RateLimitError
from poisonguard.feedback import (
    FeedbackIn,
    FeedbackItem,
    FeedbackPolicy,
    FeedbackUser,
    PredictionLog,
    add_trusted_labels,
    reputation,
    submit_feedback,
)


def _row(loop, i=0):
    r = loop.pool.iloc[i]
    return {c: float(r[c]) for c in loop.champion.features}, int(r["y"])


def _count(store) -> int:
    with store.session() as s:
        return int(s.execute(select(func.count()).select_from(FeedbackItem)).scalar_one())


def _served(store, label: str, conf: float, features: dict) -> str:
    pid = uuid.uuid4().hex
    with store.write() as s:
        s.add(PredictionLog(prediction_id=pid, token_name="t", at=time.time(), model_version=1, item_key=pid,
                            features="{}" if not features else __import__("json").dumps(features), label=label,
                            confidence=conf))
    return pid


def test_honest_item_accepted_and_stored(loop):
    f, y = _row(loop)
    [d] = submit_feedback(loop.store, [FeedbackIn(user="alice", label=y, features=f)], champion=loop.champion)
    assert d.status == "accepted" and d.reason == ""
    assert _count(loop.store) == 1


@pytest.mark.parametrize("item, fragment", [
    (dict(user="bad user!", label=0), "user"),
    (dict(user="u", label=7), "not a class"),
    (dict(user="u", label={"a": 1}), "scalar"),
    (dict(user="u", label=0, features=None), "prediction_id or features"),
])
def test_schema_rule_quarantines_with_reason(loop, item, fragment):
    f, _ = _row(loop)
    kw = {"features": f, **item}
    [d] = submit_feedback(loop.store, [FeedbackIn(**kw)], champion=loop.champion)
    assert d.status == "quarantined" and d.reason.startswith("schema:") and fragment in d.reason
    assert _count(loop.store) == 1  # stored, not dropped


def test_schema_missing_and_non_finite_features(loop):
    f, y = _row(loop)
    missing = {k: v for k, v in f.items() if k != "f0"}
    bad = {**f, "f1": "high"}
    ds = submit_feedback(loop.store, [FeedbackIn(user="u", label=y, features=missing),
                                      FeedbackIn(user="u", label=y, features=bad)], champion=loop.champion)
    assert "missing feature" in ds[0].reason and "'f1'" in ds[1].reason
    assert all(d.status == "quarantined" for d in ds)


def test_unknown_prediction_id(loop):
    [d] = submit_feedback(loop.store, [FeedbackIn(user="u", label=0, prediction_id="nope")], champion=loop.champion)
    assert d.status == "quarantined" and d.reason.startswith("unknown-prediction")


def test_duplicate_item_from_same_user(loop):
    f, y = _row(loop)
    d1, d2 = submit_feedback(loop.store, [FeedbackIn(user="u", label=y, features=f),
                                          FeedbackIn(user="u", label=y, features=f)], champion=loop.champion)
    [d3] = submit_feedback(loop.store, [FeedbackIn(user="u", label=y, features=f)], champion=loop.champion)
    [other] = submit_feedback(loop.store, [FeedbackIn(user="v", label=y, features=f)], champion=loop.champion)
    assert d1.status == "accepted"
    assert d2.reason.startswith("duplicate") and d3.reason.startswith("duplicate")
    assert other.status == "accepted"  # another user on the same item is not a duplicate


def test_client_id_retry_is_not_stored_twice(loop):
    f, y = _row(loop)
    it = FeedbackIn(user="u", label=y, features=f, client_id="c-1")
    [a] = submit_feedback(loop.store, [it], token="tok", champion=loop.champion)
    [b] = submit_feedback(loop.store, [it], token="tok", champion=loop.champion)
    assert (b.feedback_id, b.status, b.replayed) == (a.feedback_id, a.status, True)
    c, d = submit_feedback(loop.store, [FeedbackIn(user="w", label=y, features=f, client_id="c-2")] * 2, token="tok",
                           champion=loop.champion)
    assert (c.replayed, d.replayed, d.feedback_id) == (False, True, c.feedback_id)
    assert _count(loop.store) == 2


def test_user_rate_limit(loop):
    p = FeedbackPolicy(user_rate_limit=3)
    items = [FeedbackIn(user="fast", label=_row(loop, i)[1], features=_row(loop, i)[0]) for i in range(5)]
    ds = submit_feedback(loop.store, items, policy=p, champion=loop.champion)
    assert [d.status for d in ds[:3]] == ["accepted"] * 3
    assert all(d.reason.startswith("rate-limit") and "limit 3" in d.reason for d in ds[3:])


def test_token_rate_limit_refuses_whole_request(loop):
    p = FeedbackPolicy(token_rate_limit=4)
    items = [FeedbackIn(user=f"u{i}", label=_row(loop, i)[1], features=_row(loop, i)[0]) for i in range(3)]
    submit_feedback(loop.store, items, token="t", policy=p, champion=loop.champion)
    with pytest.raises(RateLimitError, match="limit of 4"):
        submit_feedback(loop.store, items[:2], token="t", policy=p, champion=loop.champion)
    assert _count(loop.store) == 3  # nothing of the refused request was stored


def test_too_many_items_refused(loop):
    with pytest.raises(InputError, match="at most 2"):
        submit_feedback(loop.store, [FeedbackIn(user="u", label=0, features={})] * 3,
                        policy=FeedbackPolicy(max_items_per_request=2))


def test_trusted_label_contradiction_and_low_reputation(loop):
    f, y = _row(loop)
    keys = {f"k{i}": 0 for i in range(12)}
    add_trusted_labels(loop.store, keys, source="audit")
    items = [FeedbackIn(user="liar", label=1, features={**f, "f0": float(i)}, item=f"k{i}") for i in range(12)]
    ds = submit_feedback(loop.store, items, champion=loop.champion)
    assert ds[0].reason.startswith("trusted-label")
    # repeated disagreement with trusted labels drives the reputation under the floor
    assert ds[-1].reason.startswith("low-reputation")
    assert ds[-1].reputation < FeedbackPolicy().min_reputation


def test_confident_prediction_needs_reputation_to_contradict(loop):
    pid_new = _served(loop.store, "0", 0.999, {})
    pid_old = _served(loop.store, "0", 0.999, {})
    with loop.store.write() as s:  # an established user: old account, long agreeing record
        s.add(FeedbackUser(user_id="veteran", first_seen=time.time() - 90 * 86400, n_items=50, n_accepted=50,
                           n_quarantined=0, trusted_n=20, trusted_agree=20, conf_n=40, conf_agree=39))
    p = FeedbackPolicy(confident=0.99)
    [new] = submit_feedback(loop.store, [FeedbackIn(user="newbie", label=1, prediction_id=pid_new)], policy=p)
    [vet] = submit_feedback(loop.store, [FeedbackIn(user="veteran", label=1, prediction_id=pid_old)], policy=p)
    assert new.status == "quarantined" and new.reason.startswith("confident-prediction")
    assert vet.status == "accepted" and vet.reputation >= p.override_reputation


def test_reputation_parts():
    new = reputation(trusted_n=0, trusted_agree=0, conf_n=0, conf_agree=0, n_accepted=0, age_s=0)
    good = reputation(trusted_n=10, trusted_agree=10, conf_n=10, conf_agree=10, n_accepted=30, age_s=60 * 86400)
    bad = reputation(trusted_n=10, trusted_agree=0, conf_n=10, conf_agree=0, n_accepted=0, age_s=0)
    assert new.score == pytest.approx(0.35)
    assert bad.score < FeedbackPolicy().min_reputation < new.score < FeedbackPolicy().override_reputation < good.score


def test_policy_validation_names_values():
    with pytest.raises(ConfigError, match="min_reputation=1.5"):
        FeedbackPolicy(min_reputation=1.5)


_item = st.fixed_dictionaries({
    "user": st.sampled_from(["a", "b", "c", "bad user", ""]),
    "label": st.one_of(st.sampled_from([0, 1, 2, 9, "x"]), st.floats(allow_nan=True)),
    "row": st.integers(0, 5),
    "mode": st.sampled_from(["features", "prediction", "none", "missing"]),
    "cid": st.one_of(st.none(), st.sampled_from(["r1", "r2"])),
})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(_item, min_size=1, max_size=12))
def test_every_item_gets_a_decision_and_a_row(loop, batch):
    """Property: one decision per item, every non-replayed item stored exactly once, none silently lost."""
    before = _count(loop.store)
    items = []
    for b in batch:
        f, _ = _row(loop, b["row"])
        kw = {"features": f} if b["mode"] == "features" else {}
        if b["mode"] == "prediction":
            kw = {"prediction_id": "unknown"}
        if b["mode"] == "missing":
            kw = {"features": {"f0": 1.0}}
        items.append(FeedbackIn(user=b["user"], label=b["label"], client_id=b["cid"], **kw))
    ds = submit_feedback(loop.store, items, token="prop", champion=loop.champion)
    assert [d.index for d in ds] == list(range(len(items)))
    assert all(d.status in ("accepted", "quarantined") for d in ds)
    assert all(d.status == "accepted" or d.reason for d in ds)
    assert _count(loop.store) - before == sum(not d.replayed for d in ds)
