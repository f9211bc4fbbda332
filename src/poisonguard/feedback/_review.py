"""The quarantine and its review, trusted labels, counts, and forming retraining batches."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import func, select, update

from ..errors import InputError, NotFoundError
from ..store import Store
from ._models import FeedbackBatch, FeedbackEvent, FeedbackItem, TrustedLabel

__all__ = ["FeedbackRecord", "Batch", "list_items", "review", "add_trusted_labels", "feedback_counts", "take_batch",
           "close_batch", "reopen_batch", "REVIEW_ACTIONS"]

REVIEW_ACTIONS = ("release", "reject")


@dataclass(frozen=True)
class FeedbackRecord:
    id: int
    user: str
    item: str
    label: str
    served_label: str | None
    served_conf: float | None
    reputation: float
    status: str
    reason: str
    received_at: float
    batch_id: int | None


def _record(r: FeedbackItem) -> FeedbackRecord:
    return FeedbackRecord(id=r.id, user=r.user_id, item=r.item_key, label=r.label, served_label=r.served_label,
                          served_conf=r.served_conf, reputation=r.reputation, status=r.status, reason=r.reason,
                          received_at=r.received_at, batch_id=r.batch_id)


def list_items(store: Store, *, status: str | None = "quarantined", reason: str | None = None, limit: int = 100,
               pending_only: bool = True) -> list[FeedbackRecord]:
    """Items by status (default: the quarantine awaiting review), oldest first; ``reason`` filters by prefix."""
    q = select(FeedbackItem).order_by(FeedbackItem.id).limit(int(limit))
    if status is not None:
        q = q.where(FeedbackItem.status == status)
    if reason:
        q = q.where(FeedbackItem.reason.like(f"{reason}%"))
    if pending_only:
        q = q.where(FeedbackItem.batch_id.is_(None))
    with store.session() as s:
        return [_record(r) for r in s.execute(q).scalars()]


def review(store: Store, ids: Sequence[int], *, action: str, actor: str, note: str = "") -> int:
    """Release (into the next batch) or reject quarantined items; returns how many changed.

    Raises
    ------
    InputError
        Unknown action, or an id that is not a quarantined item.
    """
    if action not in REVIEW_ACTIONS:
        raise InputError(f"unknown review action {action!r}; choose one of {', '.join(REVIEW_ACTIONS)}")
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return 0
    new_status = "released" if action == "release" else "rejected"
    with store.write() as s:
        rows = {r.id: r for r in s.execute(select(FeedbackItem).where(FeedbackItem.id.in_(wanted))).scalars()}
        bad = [i for i in wanted if i not in rows or rows[i].status != "quarantined"]
        if bad:
            raise InputError(f"feedback id(s) {bad[:10]} are not quarantined items (unknown or already reviewed)")
        for r in rows.values():
            r.status = new_status
            r.reviewed_by = actor[:128]
        s.add(FeedbackEvent(at=time.time(), kind=f"review-{action}", actor=actor[:128],
                            detail=json.dumps({"ids": wanted, "note": note})))
    return len(wanted)


def add_trusted_labels(store: Store, labels: Mapping[str, Any], *, source: str) -> int:
    """Record item key -> trusted label (replacing earlier ones); returns the count."""
    now = time.time()
    with store.write() as s:
        for key, lab in labels.items():
            row = s.get(TrustedLabel, str(key)[:128])
            if row is None:
                s.add(TrustedLabel(item_key=str(key)[:128], label=str(lab)[:128], source=source[:200], added_at=now))
            else:
                row.label, row.source, row.added_at = str(lab)[:128], source[:200], now
    return len(labels)


def feedback_counts(store: Store) -> dict[str, Any]:
    """Items per status, and quarantined items per rule (the reason's prefix)."""
    with store.session() as s:
        by_status = dict(s.execute(select(FeedbackItem.status, func.count()).group_by(FeedbackItem.status)).all())
        reasons = s.execute(select(FeedbackItem.reason).where(FeedbackItem.status != "accepted")).scalars().all()
    rules: dict[str, int] = {}
    for r in reasons:
        k = r.split(":", 1)[0] if r else "(none)"
        rules[k] = rules.get(k, 0) + 1
    return {"by_status": {k: int(v) for k, v in by_status.items()}, "quarantine_rules": rules}


@dataclass
class Batch:
    """A retraining batch: its id and its items as a table (features and label)."""

    batch_id: int
    frame: pd.DataFrame
    feedback_ids: list[int]


def take_batch(store: Store, *, features: Sequence[str], label: str, classes: Sequence[Any]) -> Batch | None:
    """Take every accepted or released item not yet in a batch into a new batch; ``None`` if there is none.

    Labels come back as the champion's class values (``classes``); items whose features
    do not cover ``features`` cannot be trained on and are quarantined (``schema``).
    """
    by_text = {str(c): c for c in classes}
    with store.write() as s:
        rows = s.execute(select(FeedbackItem).where(FeedbackItem.batch_id.is_(None),
                                                    FeedbackItem.status.in_(("accepted", "released")))
                         .order_by(FeedbackItem.id)).scalars().all()
        records, ids = [], []
        for r in rows:
            feats = json.loads(r.features) if r.features else {}
            if r.label not in by_text or any(f not in feats for f in features):
                r.status, r.reason = "quarantined", "schema: features or label no longer match the champion"
                continue
            records.append({**{f: feats[f] for f in features}, label: by_text[r.label]})
            ids.append(r.id)
        if not ids:
            return None
        b = FeedbackBatch(created_at=time.time(), n_items=len(ids), status="open", detail="{}")
        s.add(b)
        s.flush()
        s.execute(update(FeedbackItem).where(FeedbackItem.id.in_(ids)).values(batch_id=b.batch_id))
        bid = int(b.batch_id)
    return Batch(batch_id=bid, frame=pd.DataFrame.from_records(records, columns=[*features, label]), feedback_ids=ids)


def close_batch(store: Store, batch_id: int, *, status: str, detail: Mapping[str, Any]) -> None:
    """Mark a batch ``promoted``, ``blocked`` or ``failed`` with what decided it."""
    with store.write() as s:
        b = s.get(FeedbackBatch, int(batch_id))
        if b is None:
            raise NotFoundError(f"no feedback batch {batch_id}")
        b.status = status
        b.detail = json.dumps(dict(detail), sort_keys=True, default=str)


def reopen_batch(store: Store, batch_id: int, *, quarantine: Sequence[int], reason: str) -> None:
    """Return a blocked batch's items to the pending feedback; quarantine ``quarantine`` (ids) with ``reason``."""
    bad = {int(i) for i in quarantine}
    with store.write() as s:
        rows = s.execute(select(FeedbackItem).where(FeedbackItem.batch_id == int(batch_id))).scalars().all()
        for r in rows:
            r.batch_id = None
            if r.id in bad:
                r.status, r.reason = "quarantined", reason
        s.add(FeedbackEvent(at=time.time(), kind="batch-reopened", actor="poisonguard",
                            detail=json.dumps({"batch_id": int(batch_id), "quarantined": sorted(bad)})))
