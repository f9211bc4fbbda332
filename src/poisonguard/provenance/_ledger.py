"""The hash chain: appending signed entries under a write lock, and checking the chain.

Entry body (canonical JSON, sorted keys, no spaces)::

    {"seq": n, "prev": <entry_hash of n-1 or 64 zeros>, "kind": ..., "payload": {...},
     "at": <UTC ISO time>, "by": <user>, "tool": "poisonguard <version>",
     "alg": "ed25519"|"hmac", "key_id": <16 hex>}

``entry_hash = SHA-256(body)`` and ``signature = sign(entry_hash)``. The ``ledger_head``
row holds the last ``(seq, entry_hash)``, signed, so that dropping the newest entries is
detected too.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ..errors import InputError, IntegrityError, StoreError
from ..store import Store
from ._models import LedgerEntry, LedgerHead
from ._signing import Signer

__all__ = [
    "Entry", "ChainProblem", "AlreadyInitialisedError", "append_entry", "read_entries", "check_chain",
    "check_writer", "check_key", "canonical_json", "GENESIS",
]

log = logging.getLogger(__name__)
GENESIS = "0" * 64
_MAX_ATTEMPTS = 50


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # getpass raises several types when no user is known
        return os.environ.get("USER", "unknown")


def _tool() -> str:
    from .. import __version__

    return f"poisonguard {__version__}"


@dataclass(frozen=True)
class Entry:
    """A ledger entry as read back (``body`` parsed)."""

    seq: int
    kind: str
    body: dict[str, Any]
    entry_hash: str
    signature: str

    @property
    def payload(self) -> dict[str, Any]:
        return self.body.get("payload", {})


@dataclass(frozen=True)
class ChainProblem:
    """One thing wrong with the ledger: what (``kind``), where (``seq``) and a sentence."""

    kind: str  # edited | deleted | reordered | bad-signature | wrong-key | truncated | index
    seq: int | None
    message: str


def _head_message(seq: int, entry_hash: str) -> bytes:
    return f"poisonguard-head:{seq}:{entry_hash}".encode()


class AlreadyInitialisedError(InputError):
    """``init`` was asked of a ledger that already has entries; ``key_id`` is the pinned key."""

    def __init__(self, key_id: str | None) -> None:
        super().__init__(f"the ledger is already initialised (signing key id {key_id})")
        self.key_id = key_id


def _pinned_key(s: Session) -> tuple[int, str | None] | None:
    """``(seq, key_id)`` of the genesis entry (the first one), or ``None`` for an empty ledger."""
    first = s.execute(select(LedgerEntry).order_by(LedgerEntry.seq).limit(1)).scalar_one_or_none()
    if first is None:
        return None
    try:
        body = json.loads(first.body)
    except ValueError:
        body = None
    key_id = body.get("key_id") if isinstance(body, dict) else None
    return first.seq, (str(key_id) if key_id is not None else None)


def check_writer(s: Session, signer: Signer) -> None:
    """Refuse to write with a key that is not the ledger's (before anything is written).

    The genesis entry pins the signing key; every later entry must be signed with it,
    or ``verify`` with the real key would fail forever. The signed head must also verify
    under ``signer``, so a ledger whose head was forged is not extended.

    Raises
    ------
    InputError
        The ledger has no entries (run ``poisonguard ledger init`` first).
    IntegrityError
        ``signer`` is not the pinned key, or the head does not verify under it.
    """
    pinned = _pinned_key(s)
    if pinned is None:
        raise InputError("the ledger is not initialised; run: poisonguard ledger init")
    seq, key_id = pinned
    if key_id != signer.key_id:
        raise IntegrityError(
            f"wrong key: {signer.path} has key id {signer.key_id}, but this ledger is signed with key id "
            f"{key_id} (pinned by entry {seq}); nothing was written. Pass the ledger's key with --key or "
            "$POISONGUARD_LEDGER_KEY"
        )
    head = s.get(LedgerHead, 1)
    if head is not None and not signer.verify(_head_message(head.seq, head.entry_hash), head.signature):
        raise IntegrityError(
            f"the ledger head (entry {head.seq}) does not verify under key id {signer.key_id}: the ledger was "
            "altered; nothing was written. Run: poisonguard ledger verify"
        )


def check_key(store: Store, signer: Signer) -> None:
    """:func:`check_writer` in a read session: fail fast, before expensive work."""
    with store.session() as s:
        check_writer(s, signer)


def append_entry(
    store: Store,
    signer: Signer,
    kind: str,
    payload: dict[str, Any],
    *,
    apply: Callable[[Session, int, dict[str, Any]], None] | None = None,
    prepare: Callable[[Session], dict[str, Any]] | None = None,
) -> Entry:
    """Append one signed entry atomically; retry when another writer got there first.

    Inside the locked transaction the key is checked against the ledger's pinned key
    (:func:`check_writer`), and an ``init`` entry is only ever the first entry.

    Parameters
    ----------
    prepare : callable, optional
        ``prepare(session) -> dict`` runs inside the locked transaction before the body is
        built; its result is merged into ``payload`` (e.g. to number a version).
    apply : callable, optional
        ``apply(session, seq, body)`` updates the index tables in the same transaction
        (``body["payload"]`` is the full payload, ``body["at"]`` the time).
    """
    if not signer.can_sign:
        from ..errors import KeyMissingError

        raise KeyMissingError(f"key {signer.path} cannot sign (public key); the private key is needed")
    for attempt in range(_MAX_ATTEMPTS):
        try:
            with store.write() as s:
                last = s.execute(
                    select(LedgerEntry).order_by(LedgerEntry.seq.desc()).limit(1).with_for_update()
                ).scalar_one_or_none()
                if kind == "init" and last is not None:  # another init won the race: one genesis only
                    pinned = _pinned_key(s)
                    raise AlreadyInitialisedError(pinned[1] if pinned else None)
                if kind != "init":
                    check_writer(s, signer)
                seq = 1 if last is None else last.seq + 1
                prev = GENESIS if last is None else last.entry_hash
                full = dict(payload)
                if prepare is not None:
                    full.update(prepare(s))
                body = {
                    "seq": seq, "prev": prev, "kind": kind, "payload": full, "at": _now(),
                    "by": _user(), "tool": _tool(), "alg": signer.alg, "key_id": signer.key_id,
                }
                text = canonical_json(body)
                entry_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
                signature = signer.sign(entry_hash.encode())
                s.add(LedgerEntry(seq=seq, kind=kind, body=text, entry_hash=entry_hash, signature=signature))
                s.flush()  # the unique seq raises here if another writer won
                if apply is not None:
                    apply(s, seq, body)
                head = s.get(LedgerHead, 1)
                head_sig = signer.sign(_head_message(seq, entry_hash))
                if head is None:
                    s.add(LedgerHead(id=1, seq=seq, entry_hash=entry_hash, signature=head_sig))
                else:
                    head.seq, head.entry_hash, head.signature = seq, entry_hash, head_sig
            return Entry(seq=seq, kind=kind, body=body, entry_hash=entry_hash, signature=signature)
        except (SAIntegrityError, OperationalError) as exc:
            retryable = isinstance(exc, SAIntegrityError) or "locked" in str(exc.orig) or "busy" in str(exc.orig)
            if not retryable or attempt == _MAX_ATTEMPTS - 1:
                raise StoreError(f"cannot append to the ledger after {attempt + 1} attempt(s): {exc.orig}") from exc
            log.debug("ledger append conflict (attempt %d): %s", attempt + 1, exc.orig)
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def read_entries(store: Store, *, kind: str | None = None) -> list[Entry]:
    """All entries in sequence order (bodies that do not parse come back empty)."""
    with store.session() as s:
        q = select(LedgerEntry).order_by(LedgerEntry.seq)
        if kind is not None:
            q = q.where(LedgerEntry.kind == kind)
        rows = s.execute(q).scalars().all()
    out = []
    for r in rows:
        try:
            body = json.loads(r.body)
            if not isinstance(body, dict):
                body = {}
        except ValueError:
            body = {}
        out.append(Entry(seq=r.seq, kind=r.kind, body=body, entry_hash=r.entry_hash, signature=r.signature))
    return out


def _raw_entries(store: Store) -> tuple[list[LedgerEntry], LedgerHead | None]:
    with store.session() as s:
        rows = list(s.execute(select(LedgerEntry).order_by(LedgerEntry.seq)).scalars().all())
        head = s.get(LedgerHead, 1)
    return rows, head


def check_chain(store: Store, verifier: Signer) -> tuple[list[ChainProblem], int]:
    """Check hashes, links, sequence numbers, signatures and the head. Returns ``(problems, n)``."""
    rows, head = _raw_entries(store)
    problems: list[ChainProblem] = []
    if not rows:
        if head is not None:
            problems.append(ChainProblem("truncated", head.seq, f"all entries deleted (the head names entry {head.seq})"))
        return problems, 0
    key_ids: dict[str, int] = {}
    expected_seq = 1
    prev_hash = GENESIS
    prev_seq = 0
    for r in rows:
        try:
            body = json.loads(r.body)
        except ValueError:
            body = None
        if r.seq > expected_seq:
            gap = f"entry {expected_seq}" if r.seq == expected_seq + 1 else f"entries {expected_seq}-{r.seq - 1}"
            problems.append(ChainProblem("deleted", expected_seq, f"{gap} deleted (sequence jumps from {prev_seq} to {r.seq})"))
        computed = hashlib.sha256(r.body.encode("utf-8")).hexdigest()
        edited = computed != r.entry_hash or not isinstance(body, dict)
        if edited:
            problems.append(ChainProblem("edited", r.seq, f"entry {r.seq} ({r.kind}) was edited: its content no longer matches its hash"))
        elif body.get("seq") != r.seq:
            problems.append(ChainProblem(
                "reordered", r.seq,
                f"entry at position {r.seq} was recorded as entry {body.get('seq')}: entries reordered",
            ))
        elif body.get("kind") != r.kind:
            problems.append(ChainProblem("edited", r.seq, f"entry {r.seq} kind column edited ({r.kind!r} vs signed {body.get('kind')!r})"))
        elif body.get("prev") != prev_hash and r.seq == expected_seq and prev_seq == r.seq - 1:
            problems.append(ChainProblem(
                "edited", r.seq,
                f"entry {r.seq} does not link to entry {prev_seq}: entry {prev_seq} was replaced or the chain re-ordered",
            ))
        if isinstance(body, dict):
            kid = str(body.get("key_id"))
            key_ids[kid] = key_ids.get(kid, 0) + 1
            if kid == verifier.key_id and not verifier.verify(r.entry_hash.encode(), r.signature):
                problems.append(ChainProblem("bad-signature", r.seq, f"entry {r.seq} has an invalid signature (forged or re-signed)"))
        prev_hash = r.entry_hash
        prev_seq = r.seq
        expected_seq = r.seq + 1
    foreign = {k: n for k, n in key_ids.items() if k != verifier.key_id}
    if foreign:
        ids = ", ".join(f"{k} ({n} entries)" for k, n in sorted(foreign.items()))
        problems.append(ChainProblem(
            "wrong-key", None,
            f"wrong key: entries were signed with key id {ids}, but the given key {verifier.path} has id {verifier.key_id}",
        ))
    last = rows[-1]
    if head is None:
        problems.append(ChainProblem("truncated", None, "the signed ledger head is missing"))
    else:
        if not verifier.verify(_head_message(head.seq, head.entry_hash), head.signature) and not foreign:
            problems.append(ChainProblem("bad-signature", head.seq, "the ledger head has an invalid signature"))
        if head.seq > last.seq:
            problems.append(ChainProblem(
                "deleted", last.seq + 1,
                f"entries {last.seq + 1}-{head.seq} deleted: the signed head names entry {head.seq}, the last entry is {last.seq}",
            ))
        elif head.seq != last.seq or head.entry_hash != last.entry_hash:
            problems.append(ChainProblem("truncated", last.seq, f"the ledger head names entry {head.seq}, not the last entry {last.seq}"))
    return problems, len(rows)
