"""Coordinated-campaign detection over the feedback not yet taken into a batch.

Presence-test style: every candidate group gets a statistic, a p-value, the threshold
and a decision, and only groups judged present are acted on.

* **Class pair** ``a -> b`` within a time window: ``k`` of the ``n`` items whose served
  prediction was ``a`` carry label ``b``. Under the honest null each does so with
  probability ``p0``: the champion's own error rate ``P(true b | predicted a)`` on
  held-out data, floored at ``campaign_base_floor``. One-sided binomial test,
  Bonferroni over the pairs tested; a campaign also needs ``campaign_min_users``
  distinct users, an observed rate at least ``campaign_min_ratio * p0`` and a majority
  of fresh (new or low-reputation) users.
* **Item** ``x -> b`` within a window: ``k`` distinct users relabel the same item the
  same way. Under the null the number of users per item is Poisson with the window's
  mean; same decision rules.

The accepted items of a present campaign's members (fresh users with at least
``campaign_member_share`` of their pending items in it) are quarantined with a reason
naming the test; established users and honest users who made one such correction among
many are left alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sqlalchemy import select, update

from ..store import Store
from ._models import FeedbackEvent, FeedbackItem, FeedbackUser
from ._policy import FeedbackPolicy

__all__ = ["CampaignTest", "CampaignReport", "detect_campaigns", "confusion_rates", "confident_threshold"]


@dataclass(frozen=True)
class CampaignTest:
    kind: str  # "class-pair" | "item"
    key: str
    from_label: str | None
    to_label: str
    window_start: float
    k: int
    n: int
    expected: float
    n_users: int
    fresh_share: float
    statistic: float
    p_value: float
    threshold: float
    campaign: bool
    detail: str


@dataclass
class CampaignReport:
    tests: list[CampaignTest] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)

    @property
    def campaigns(self) -> list[CampaignTest]:
        return [t for t in self.tests if t.campaign]

    def to_dict(self) -> dict[str, Any]:
        return {"tests": [asdict(t) for t in self.tests], "quarantined": list(self.quarantined)}


def confusion_rates(model: Any, frame: pd.DataFrame, label: str) -> dict[tuple[str, str], float]:
    """``P(true b | predicted a)`` of ``model`` on labelled held-out rows, keyed ``(a, b)``."""
    pred = np.asarray(model.predict(frame.drop(columns=[label]))).astype(str)
    true = frame[label].to_numpy().astype(str)
    out: dict[tuple[str, str], float] = {}
    for a in np.unique(pred):
        m = pred == a
        for b, n in zip(*np.unique(true[m], return_counts=True)):
            if b != a:
                out[(str(a), str(b))] = float(n / m.sum())
    return out


def confident_threshold(model: Any, frame: pd.DataFrame, label: str, *, max_wrong: float = 0.02,
                        confidence: float = 0.9) -> float:
    """The smallest confidence at which the champion's predictions may judge feedback.

    For every true class ``b``, the share of ``b``'s rows that get a wrong prediction at
    or above the threshold must stay under ``max_wrong`` with ``confidence`` (one-sided
    Clopper-Pearson bound on the held-out rows), so honest corrections of any class, a
    minority class included, are rarely held back by the champion's own mistakes. A
    class with too few held-out rows to show that disables the rule: the result is then
    above 1 (never confident).
    """
    from ..registry import predict_with_confidence

    pred, conf = predict_with_confidence(model, frame.drop(columns=[label]))
    pred = np.asarray(pred).astype(str)
    true = frame[label].to_numpy().astype(str)
    t = 0.5
    for b in np.unique(true):
        mine = true == b
        n = int(mine.sum())
        wrong = np.sort(conf[mine & (pred != b)])[::-1]
        ks = np.arange(wrong.size + 1)
        upper = stats.beta.ppf(confidence, ks + 1, np.maximum(n - ks, 1))
        ok = np.flatnonzero(upper <= max_wrong)
        if ok.size == 0:
            return 1.01
        k = int(ok.max())  # the most wrong rows above the threshold the bound allows
        if k < wrong.size:
            t = max(t, float(np.nextafter(wrong[k], 2.0)))
    return min(t, 1.01)


def _pending(store: Store, p: FeedbackPolicy) -> pd.DataFrame:
    with store.session() as s:
        q = (select(FeedbackItem.id, FeedbackItem.user_id, FeedbackItem.item_key, FeedbackItem.label,
                    FeedbackItem.served_label, FeedbackItem.status, FeedbackItem.received_at, FeedbackItem.reputation,
                    FeedbackUser.first_seen)
             .join(FeedbackUser, FeedbackUser.user_id == FeedbackItem.user_id, isouter=True)
             .where(FeedbackItem.batch_id.is_(None), FeedbackItem.status.in_(("accepted", "quarantined")),
                    ~FeedbackItem.reason.like("schema:%")))
        df = pd.DataFrame(s.execute(q).all(), columns=["id", "user", "item", "label", "served", "status", "at", "rep",
                                                        "first_seen"])
    if df.empty:
        return df
    age = df["at"] - df["first_seen"].fillna(df["at"])
    df["fresh"] = (age < p.new_account_days * 86400.0) | (df["rep"] < p.fresh_reputation)
    df["bucket"] = np.floor(df["at"] / p.campaign_window_s) * p.campaign_window_s
    return df


def _decide(k: int, n_users: int, fresh: float, ratio: float, p_value: float, level: float, p: FeedbackPolicy) -> bool:
    return (p_value < level and n_users >= p.campaign_min_users and ratio >= p.campaign_min_ratio
            and fresh >= p.campaign_fresh_share)


def _pair_tests(df: pd.DataFrame, rates: Mapping[tuple[str, str], float], p: FeedbackPolicy) -> list[tuple[CampaignTest, pd.Index]]:
    served = df[df["served"].notna()]
    changes = served[served["served"] != served["label"]]
    groups = list(changes.groupby(["bucket", "served", "label"], sort=True))
    level = p.campaign_alpha / max(len(groups), 1)
    n_by = served.groupby(["bucket", "served"]).size()
    out = []
    for (bucket, a, b), g in groups:
        n = int(n_by[(bucket, a)])
        k = int(len(g))
        p0 = max(p.campaign_base_floor, float(rates.get((str(a), str(b)), 0.0)))
        pv = float(stats.binom.sf(k - 1, n, p0))
        users = g.groupby("user")["fresh"].first()
        fresh = float(users.mean())
        ratio = (k / n) / p0
        present = _decide(k, len(users), fresh, ratio, pv, level, p)
        detail = (f"{k} of {n} items served as {a!r} relabelled {b!r} by {len(users)} users ({fresh:.0%} fresh); "
                  f"expected rate {p0:.3f}, observed {k / n:.3f}")
        out.append((CampaignTest("class-pair", f"{a}->{b}", str(a), str(b), float(bucket), k, n, n * p0, len(users),
                                 fresh, k / n, pv, level, present, detail), g.index))
    return out


def _item_tests(df: pd.DataFrame, p: FeedbackPolicy) -> list[tuple[CampaignTest, pd.Index]]:
    changed = df[df["served"].isna() | (df["served"] != df["label"])]
    per_item = df.groupby(["bucket", "item"])["user"].nunique()
    lam = per_item.groupby(level=0).mean()
    groups = [(key, g) for key, g in changed.groupby(["bucket", "item", "label"], sort=True)
              if g["user"].nunique() >= p.campaign_min_users]
    level = p.campaign_alpha / max(int(per_item.size), 1)
    out = []
    for (bucket, item, b), g in groups:
        users = g.groupby("user")["fresh"].first()
        k = int(len(users))
        mu = float(lam[bucket])
        pv = float(stats.poisson.sf(k - 1, mu))
        fresh = float(users.mean())
        present = _decide(k, k, fresh, k / mu, pv, level, p)
        detail = f"{k} distinct users ({fresh:.0%} fresh) relabelled item {item!r} as {b!r}; mean users per item {mu:.2f}"
        out.append((CampaignTest("item", str(item), None, str(b), float(bucket), k, k, mu, k, fresh, float(k), pv, level,
                                 present, detail), g.index))
    return out


def detect_campaigns(store: Store, *, policy: FeedbackPolicy | None = None,
                     error_rates: Mapping[tuple[str, str], float] | None = None, apply: bool = True,
                     actor: str = "poisonguard") -> CampaignReport:
    """Test the pending feedback for campaigns; with ``apply`` quarantine the fresh users' items of each.

    Parameters
    ----------
    error_rates : mapping, optional
        The champion's ``P(true b | predicted a)`` (:func:`confusion_rates`); without it
        the expected rate is ``campaign_base_floor`` for every pair.
    """
    p = policy or FeedbackPolicy()
    df = _pending(store, p)
    report = CampaignReport()
    if df.empty:
        return report
    found = _pair_tests(df, error_rates or {}, p) + _item_tests(df, p)
    to_quarantine: dict[int, str] = {}
    per_user = df.groupby("user").size()
    for test, idx in found:
        report.tests.append(test)
        if not test.campaign:
            continue
        g = df.loc[idx]
        # quarantine the accounts that are *in* the campaign: fresh users most of whose pending
        # items are this change. An honest user who made one such correction among many is
        # left alone; the gate's feedback:campaigns check still holds the batch for review.
        share = g.groupby("user").size() / per_user.reindex(g["user"].unique())
        members = set(share[share >= p.campaign_member_share].index)
        for fid in g.loc[g["fresh"] & (g["status"] == "accepted") & g["user"].isin(members), "id"]:
            to_quarantine.setdefault(int(fid), f"campaign: {test.kind} {test.key} (p={test.p_value:.2e} < "
                                               f"{test.threshold:.2e}; {test.detail})")
    report.quarantined = sorted(to_quarantine)
    if apply and (to_quarantine or report.campaigns):
        with store.write() as s:
            for fid, reason in to_quarantine.items():
                s.execute(update(FeedbackItem).where(FeedbackItem.id == fid, FeedbackItem.status == "accepted")
                          .values(status="quarantined", reason=reason))
            s.add(FeedbackEvent(at=time.time(), kind="campaign", actor=actor, detail=json.dumps(
                {"campaigns": [asdict(t) for t in report.campaigns], "quarantined": report.quarantined})))
    return report
