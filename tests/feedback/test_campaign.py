"""The campaign presence tests: coordinated label changes are found and quarantined, honest feedback is not."""

from __future__ import annotations

import json
import time
import uuid

from sqlalchemy import select

from poisonguard.feedback import (
    FeedbackIn,
    FeedbackItem,
    FeedbackPolicy,
    FeedbackUser,
    PredictionLog,
    detect_campaigns,
    submit_feedback,
)

_P = FeedbackPolicy(confident=1.01)  # switch the confident-prediction rule off: test the campaign test alone


def _serve(store, label: str, n: int, conf: float = 0.7) -> list[str]:
    pids = [uuid.uuid4().hex for _ in range(n)]
    with store.write() as s:
        for p in pids:
            s.add(PredictionLog(prediction_id=p, token_name="t", at=time.time(), model_version=1, item_key=p,
                                features=json.dumps({"f0": 1.0}), label=label, confidence=conf))
    return pids


def _veterans(store, names):
    with store.write() as s:
        for n in names:
            s.add(FeedbackUser(user_id=n, first_seen=time.time() - 200 * 86400, n_items=40, n_accepted=40,
                               n_quarantined=0, trusted_n=10, trusted_agree=10, conf_n=20, conf_agree=20))


def _honest_background(store, n=300):
    """Established users agreeing with served predictions, with 1% corrections 0 -> 1."""
    pids = _serve(store, "0", n)
    _veterans(store, [f"vet{i}" for i in range(20)])
    items = [FeedbackIn(user=f"vet{i % 20}", label=1 if i % 100 == 0 else 0, prediction_id=p) for i, p in enumerate(pids)]
    submit_feedback(store, items, policy=_P)


def test_honest_feedback_has_no_campaign(loop):
    _honest_background(loop.store)
    fresh = _serve(loop.store, "0", 200)
    # new users correcting 2% of what they see: the champion's usual error rate
    items = [FeedbackIn(user=f"new{i % 50}", label=1 if i % 50 == 0 else 0, prediction_id=p) for i, p in enumerate(fresh)]
    submit_feedback(loop.store, items, policy=_P)
    rep = detect_campaigns(loop.store, policy=_P, error_rates={("0", "1"): 0.02})
    assert rep.tests, "the class pair 0->1 must have been tested"
    assert rep.campaigns == [] and rep.quarantined == []


def test_class_pair_campaign_is_quarantined(loop):
    _honest_background(loop.store)
    socks = _serve(loop.store, "0", 60)
    items = [FeedbackIn(user=f"sock{i % 25}", label=1, prediction_id=p) for i, p in enumerate(socks)]
    ds = submit_feedback(loop.store, items, policy=_P)
    assert all(d.status == "accepted" for d in ds)  # each item alone looks fine
    rep = detect_campaigns(loop.store, policy=_P, error_rates={("0", "1"): 0.02})
    [c] = [c for c in rep.campaigns if c.kind == "class-pair"]
    assert (c.from_label, c.to_label) == ("0", "1") and c.p_value < c.threshold and c.n_users >= 25
    with loop.store.session() as s:
        rows = s.execute(select(FeedbackItem)).scalars().all()
    sock_rows = [r for r in rows if r.user_id.startswith("sock")]
    assert all(r.status == "quarantined" and r.reason.startswith("campaign: class-pair 0->1") for r in sock_rows)
    # established users' own corrections 0 -> 1 are left alone
    assert all(r.status == "accepted" for r in rows if r.user_id.startswith("vet"))


def test_item_campaign(loop):
    pids = _serve(loop.store, "0", 1)
    f = {"f0": 1.0}
    items = [FeedbackIn(user=f"bot{i}", label=2, features=f, item="item-42") for i in range(8)]
    items += [FeedbackIn(user=f"h{i}", label=0, features=f, item=f"other-{i}") for i in range(40)]
    submit_feedback(loop.store, items, policy=_P)
    rep = detect_campaigns(loop.store, policy=_P)
    [c] = rep.campaigns
    assert c.kind == "item" and c.key == "item-42" and c.n_users == 8
    assert len(rep.quarantined) == 8
    assert pids  # the served prediction is unrelated: item tests do not need one


def test_too_few_users_is_not_a_campaign(loop):
    _honest_background(loop.store)
    socks = _serve(loop.store, "0", 30)
    items = [FeedbackIn(user=f"sock{i % 3}", label=1, prediction_id=p) for i, p in enumerate(socks)]
    submit_feedback(loop.store, items, policy=_P)
    rep = detect_campaigns(loop.store, policy=_P, error_rates={("0", "1"): 0.02})
    [t] = [t for t in rep.tests if t.kind == "class-pair"]
    assert t.p_value < t.threshold and not t.campaign  # significant, but 3 users are not a coordinated campaign
    assert "4 users" in t.detail  # 3 sock accounts and one veteran who corrected a 0


def test_dry_run_changes_nothing(loop):
    _honest_background(loop.store)
    socks = _serve(loop.store, "0", 60)
    submit_feedback(loop.store, [FeedbackIn(user=f"sock{i % 25}", label=1, prediction_id=p) for i, p in enumerate(socks)],
                    policy=_P)
    rep = detect_campaigns(loop.store, policy=_P, apply=False, error_rates={("0", "1"): 0.02})
    assert rep.quarantined
    with loop.store.session() as s:
        assert all(r.status == "accepted" for r in s.execute(select(FeedbackItem)
                                                             .where(FeedbackItem.user_id.like("sock%"))).scalars())
