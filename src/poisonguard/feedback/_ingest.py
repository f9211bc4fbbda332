"""Receiving feedback: every item is accepted or quarantined with a reason, and stored.

Rules, in order (the first that applies decides):

1. ``schema``: user, label and features are well formed, the label is a class of the
   champion and the features cover the champion's (numeric ones finite);
2. ``unknown-prediction``: a ``prediction_id`` that ``/v1/predict`` never served;
3. ``duplicate``: the same user already gave feedback on the same item;
4. ``rate-limit``: the user sent more than ``user_rate_limit`` items in the window;
5. ``low-reputation``: the user's reputation is under ``min_reputation``;
6. ``trusted-label``: the label contradicts a trusted label of the item;
7. ``confident-prediction``: the label contradicts a confident served prediction and
   the user's reputation is under ``override_reputation``.

Resending an item with the same ``client_id`` from the same token returns the stored
decision (idempotent retries) and stores nothing twice. A token over its rate limit
gets :class:`~poisonguard.errors.RateLimitError` and nothing of the request is stored.
All decisions of one request are committed in one transaction.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select, tuple_, update

from ..errors import DataError, InputError, RateLimitError
from ..store import Store
from ._models import FeedbackItem, FeedbackUser, PredictionLog, TrustedLabel
from ._policy import FeedbackPolicy, reputation

__all__ = ["FeedbackIn", "Decision", "submit_feedback", "item_key_for", "canonical_features", "ChampionView"]

_USER_RE = re.compile(r"^[A-Za-z0-9_.@:\-]{1,128}$")
_MAX_FEATURES = 10_000


def canonical_features(features: Mapping[str, Any]) -> str:
    return json.dumps(features, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def item_key_for(features: Mapping[str, Any]) -> str:
    """The item a feature vector describes: SHA-256 of its canonical JSON (first 32 hex digits)."""
    return "f:" + hashlib.sha256(canonical_features(features).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class FeedbackIn:
    """One item as sent: who, which label, and which item (a served prediction or features)."""

    user: str
    label: Any
    prediction_id: str | None = None
    features: Mapping[str, Any] | None = None
    item: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class Decision:
    """What happened to an item. ``replayed``: a retry of an item stored earlier."""

    index: int
    feedback_id: int
    client_id: str | None
    status: str
    reason: str
    reputation: float
    replayed: bool = False


@dataclass
class ChampionView:
    """What validation needs from the champion: classes, features, and its predictions."""

    version: int | None
    classes: list[str]
    features: list[str]
    numeric: frozenset[str]
    model: Any = None
    confident: float | None = None  # calibrated threshold (see confident_threshold); None: the policy's

    @classmethod
    def of(cls, model: Any, version: int | None, *, confident: float | None = None) -> "ChampionView":
        numeric: frozenset[str] = frozenset()
        enc = getattr(model, "encoder", None)
        if enc is not None:
            numeric = frozenset(col for col, kind, _ in enc.plan_ if kind == "numeric")
        return cls(version=version, classes=[str(c) for c in model.classes], features=list(model.features),
                   numeric=numeric, model=model, confident=confident)

    def predict(self, rows: list[Mapping[str, Any]]) -> tuple[list[str], list[float]]:
        from ..registry import predict_with_confidence

        if not rows:
            return [], []
        for i, row in enumerate(rows):
            missing = [f for f in self.features if f not in row]
            if missing:
                raise DataError(f"row {i} lacks feature(s) {missing[:10]} the champion (version {self.version}) needs")
        # only the model's columns, in its order
        labels, conf = predict_with_confidence(self.model, pd.DataFrame.from_records(list(rows), columns=self.features))
        return [str(x) for x in labels], [float(c) for c in conf]


def _schema_problem(it: FeedbackIn, champ: ChampionView | None) -> str | None:
    if not isinstance(it.user, str) or not _USER_RE.match(it.user):
        return f"schema: user {str(it.user)[:40]!r} must be 1-128 letters, digits or _.@:-"
    if it.label is None or isinstance(it.label, (dict, list)) or len(str(it.label)) > 128:
        return f"schema: label {str(it.label)[:40]!r} must be a scalar of at most 128 characters"
    if isinstance(it.label, float) and not math.isfinite(it.label):
        return f"schema: label {it.label!r} is not finite"
    if it.prediction_id is None and it.features is None:
        return "schema: give prediction_id or features"
    if champ is not None and str(it.label) not in champ.classes:
        return f"schema: label {str(it.label)!r} is not a class of the champion ({', '.join(champ.classes[:20])})"
    if it.features is not None:
        if len(it.features) > _MAX_FEATURES:
            return f"schema: {len(it.features)} features (at most {_MAX_FEATURES})"
        if champ is not None:
            missing = [f for f in champ.features if f not in it.features]
            if missing:
                return f"schema: missing feature(s) {missing[:5]}"
            for f in champ.numeric:
                v = it.features.get(f)
                if v is not None and (not isinstance(v, (int, float)) or not math.isfinite(v)):
                    return f"schema: feature {f!r} = {str(v)[:40]!r} is not a finite number"
    return None


@dataclass
class _Item:
    """An item while it is being decided."""

    src: FeedbackIn
    key: str
    features: str | None
    served_label: str | None = None
    served_conf: float | None = None
    reason: str | None = None


def _prepare(items: Sequence[FeedbackIn], champ: ChampionView | None) -> list[_Item]:
    out: list[_Item] = []
    to_predict: list[int] = []
    for it in items:
        problem = _schema_problem(it, champ)
        feats = None
        key = it.item or "invalid"
        if it.features is not None and problem is None:
            try:
                feats = canonical_features(it.features)
            except ValueError as exc:
                problem = f"schema: features are not finite JSON ({exc})"
            else:
                key = it.item or item_key_for(it.features)
                if champ is not None and it.prediction_id is None:
                    to_predict.append(len(out))
        out.append(_Item(src=it, key=str(key)[:128], features=feats, reason=problem))
    if champ is not None and to_predict:
        labels, conf = champ.predict([dict(out[i].src.features or {}) for i in to_predict])
        for i, lab, c in zip(to_predict, labels, conf):
            out[i].served_label, out[i].served_conf = lab, c
    return out


def submit_feedback(store: Store, items: Sequence[FeedbackIn], *, token: str = "local",
                    policy: FeedbackPolicy | None = None, champion: ChampionView | None = None,
                    now: float | None = None) -> list[Decision]:
    """Validate, decide and store ``items`` in one transaction; return one decision per item, in order.

    Raises
    ------
    InputError
        More than ``max_items_per_request`` items.
    RateLimitError
        The token is over its limit; nothing was stored.
    """
    p = policy or FeedbackPolicy()
    if len(items) > p.max_items_per_request:
        raise InputError(f"{len(items)} items in one request; at most {p.max_items_per_request}")
    t = time.time() if now is None else float(now)
    prepared = _prepare(items, champion)
    if champion is not None and champion.confident is not None and champion.confident > p.confident:
        # the champion is only a judge where its held-out errors say it may be
        p = dataclasses.replace(p, confident=min(champion.confident, 1.01))
    with store.write() as s:
        return _decide_and_store(s, prepared, token=token, p=p, now=t)


def _decide_and_store(s: Any, items: list[_Item], *, token: str, p: FeedbackPolicy, now: float) -> list[Decision]:
    replays = _replays(s, items, token)
    first_of: dict[str, int] = {}  # a client id repeated inside one request: the later copies replay the first
    fresh_idx = []
    for i, it in enumerate(items):
        cid = it.src.client_id
        if cid is None or (cid not in replays and cid not in first_of):
            fresh_idx.append(i)
            if cid is not None:
                first_of[cid] = i
    if fresh_idx:
        used = s.execute(select(func.count()).select_from(FeedbackItem).where(
            FeedbackItem.token_name == token, FeedbackItem.received_at > now - p.token_rate_window_s)).scalar_one()
        if used + len(fresh_idx) > p.token_rate_limit:
            raise RateLimitError(f"token {token!r} sent {used} items in the last {p.token_rate_window_s:g} s; "
                                 f"{len(fresh_idx)} more would pass its limit of {p.token_rate_limit}")
    new = [items[i] for i in fresh_idx]
    _attach_predictions(s, new)
    users = _load_users(s, {it.src.user for it in new if it.reason is None}, now)
    counts = _recent_counts(s, list(users), now - p.user_rate_window_s)
    seen = _existing_pairs(s, new)
    trusted = _trusted(s, {it.key for it in new})
    rows, reps = [], []
    for it in new:
        status, reason, rep = _decide(it, users, counts, seen, trusted, p, now)
        reps.append(rep)
        rows.append({"client_id": it.src.client_id, "token_name": token, "user_id": str(it.src.user)[:128],
                     "item_key": it.key, "label": str(it.src.label)[:128], "features": it.features,
                     "prediction_id": it.src.prediction_id, "served_label": it.served_label,
                     "served_conf": it.served_conf, "reputation": rep, "status": status, "reason": reason,
                     "received_at": now, "batch_id": None, "reviewed_by": None})
    _save_users(s, users)
    ids: list[int] = []
    if rows:
        ids = list(s.execute(insert(FeedbackItem).returning(FeedbackItem.id, sort_by_parameter_order=True),
                             rows).scalars())
    out: list[Decision] = []
    new_pos = {i: j for j, i in enumerate(fresh_idx)}
    for i, it in enumerate(items):
        if i in new_pos:
            j = new_pos[i]
            out.append(Decision(i, ids[j], it.src.client_id, rows[j]["status"], rows[j]["reason"], reps[j]))
        elif it.src.client_id in replays:
            r = replays[it.src.client_id]
            out.append(Decision(i, r.id, r.client_id, r.status, r.reason, r.reputation, replayed=True))
        else:
            first = out[first_of[it.src.client_id]]  # type: ignore[index]
            out.append(Decision(i, first.feedback_id, first.client_id, first.status, first.reason, first.reputation,
                                replayed=True))
    return out


def _replays(s: Any, items: list[_Item], token: str) -> dict[str, FeedbackItem]:
    cids = [it.src.client_id for it in items if it.src.client_id is not None]
    if not cids:
        return {}
    q = select(FeedbackItem).where(FeedbackItem.token_name == token, FeedbackItem.client_id.in_(cids))
    return {r.client_id: r for r in s.execute(q).scalars()}


def _attach_predictions(s: Any, items: list[_Item]) -> None:
    pids = {it.src.prediction_id for it in items if it.src.prediction_id is not None and it.reason is None}
    if not pids:
        return
    logged = {r.prediction_id: r for r in s.execute(select(PredictionLog).where(PredictionLog.prediction_id.in_(pids))).scalars()}
    for it in items:
        pid = it.src.prediction_id
        if pid is None or it.reason is not None:
            continue
        r = logged.get(pid)
        if r is None:
            it.reason = f"unknown-prediction: prediction_id {pid[:64]!r} was never served"
            continue
        it.key = it.src.item or r.item_key
        it.features = r.features
        it.served_label, it.served_conf = r.label, r.confidence


@dataclass
class _UserState:
    """A user's counters while a request is decided; written back in one bulk statement."""

    user_id: str
    first_seen: float
    n_items: int = 0
    n_accepted: int = 0
    n_quarantined: int = 0
    trusted_n: int = 0
    trusted_agree: int = 0
    conf_n: int = 0
    conf_agree: int = 0
    new: bool = False


_USER_FIELDS = ("user_id", "first_seen", "n_items", "n_accepted", "n_quarantined", "trusted_n", "trusted_agree",
                "conf_n", "conf_agree")


def _load_users(s: Any, names: set[str], now: float) -> dict[str, _UserState]:
    if not names:
        return {}
    cols = [getattr(FeedbackUser, f) for f in _USER_FIELDS]
    got = {r[0]: _UserState(*r) for r in s.execute(select(*cols).where(FeedbackUser.user_id.in_(names)))}
    for n in names - set(got):
        got[n] = _UserState(user_id=n, first_seen=now, new=True)
    return got


def _save_users(s: Any, users: dict[str, _UserState]) -> None:
    """One executemany INSERT for new users and one for updates: no per-row ORM flush."""
    rows = [{f: getattr(u, f) for f in _USER_FIELDS} for u in users.values()]
    new = [r for r, u in zip(rows, users.values()) if u.new]
    old = [r for r, u in zip(rows, users.values()) if not u.new]
    if new:
        s.execute(insert(FeedbackUser), new)
    if old:
        s.execute(update(FeedbackUser), old)


def _recent_counts(s: Any, users: list[str], since: float) -> Counter[str]:
    if not users:
        return Counter()
    q = (select(FeedbackItem.user_id, func.count()).where(FeedbackItem.user_id.in_(users), FeedbackItem.received_at > since)
         .group_by(FeedbackItem.user_id))
    return Counter({u: int(n) for u, n in s.execute(q)})


def _existing_pairs(s: Any, items: list[_Item]) -> dict[tuple[str, str], int]:
    pairs = {(it.src.user, it.key) for it in items if it.reason is None}
    if not pairs:
        return {}
    q = select(FeedbackItem.user_id, FeedbackItem.item_key, FeedbackItem.id).where(
        tuple_(FeedbackItem.user_id, FeedbackItem.item_key).in_(list(pairs)))
    return {(u, k): int(i) for u, k, i in s.execute(q)}


def _trusted(s: Any, keys: set[str]) -> dict[str, str]:
    if not keys:
        return {}
    return {r.item_key: r.label for r in s.execute(select(TrustedLabel).where(TrustedLabel.item_key.in_(keys))).scalars()}


def _decide(it: _Item, users: dict[str, _UserState], counts: Counter[str], seen: dict[tuple[str, str], int],
            trusted: dict[str, str], p: FeedbackPolicy, now: float) -> tuple[str, str, float]:
    """Status, reason and the user's reputation at decision time; updates the user's counters."""
    if it.reason is not None:
        return "quarantined", it.reason, 0.0
    u = users[it.src.user]
    label = str(it.src.label)
    rep = reputation(trusted_n=u.trusted_n, trusted_agree=u.trusted_agree, conf_n=u.conf_n, conf_agree=u.conf_agree,
                     n_accepted=u.n_accepted, age_s=now - u.first_seen).score
    u.n_items += 1
    status, reason = "quarantined", ""
    pair = (it.src.user, it.key)
    if pair in seen:
        reason = f"duplicate: user {it.src.user!r} already gave feedback on item {it.key!r} (feedback {seen[pair]})"
    elif counts[it.src.user] >= p.user_rate_limit:
        reason = (f"rate-limit: user {it.src.user!r} sent {counts[it.src.user]} items in {p.user_rate_window_s:g} s "
                  f"(limit {p.user_rate_limit})")
    elif rep < p.min_reputation:
        reason = f"low-reputation: user {it.src.user!r} has reputation {rep:.3f} < {p.min_reputation:.3f}"
    else:
        reason = _agreement(it, u, label, rep, trusted, p)
        status = "quarantined" if reason else "accepted"
    seen.setdefault(pair, -1)
    counts[it.src.user] += 1
    if status == "accepted":
        u.n_accepted += 1
    else:
        u.n_quarantined += 1
    return status, reason, rep


def _agreement(it: _Item, u: _UserState, label: str, rep: float, trusted: dict[str, str], p: FeedbackPolicy) -> str:
    """Update the agreement counters; return a quarantine reason or ``""``."""
    reason = ""
    t = trusted.get(it.key)
    if t is not None:
        u.trusted_n += 1
        if t == label:
            u.trusted_agree += 1
        else:
            reason = f"trusted-label: label {label!r} contradicts the trusted label {t!r} of item {it.key!r}"
    if it.served_conf is not None and it.served_conf >= p.confident:
        u.conf_n += 1
        if it.served_label == label:
            u.conf_agree += 1
        elif not reason and rep < p.override_reputation:
            reason = (f"confident-prediction: label {label!r} contradicts the served {it.served_label!r} "
                      f"(p={it.served_conf:.3f} >= {p.confident:.2f}) and user reputation {rep:.3f} < "
                      f"{p.override_reputation:.2f}")
    return reason
