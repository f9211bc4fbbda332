"""The model registry: versions, ``champion``/``challenger`` aliases, gated promotion, rollback.

Registering a model copies its directory under the registry root and pins the digest
of its manifest, so loading verifies the manifest itself and, through it, every file
(:func:`poisonguard.training.load_model`). ``promote`` moves ``champion`` only when a
stored gate report passed for that version against the current champion; ``force``
skips the gate but writes an audit entry with the reason. Every change is an append-only
``registry_events`` row and, when a provenance ledger is initialised, a signed ledger
entry too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ..errors import GateBlockedError, InputError, IntegrityError, NotFoundError
from ..store import DEFAULT_DIR, Store
from ..training import TrainedModel, load_model
from ..training._io import read_manifest, sha256_file
from ._models import AliasRow, ModelVersionRow, RegistryEvent

__all__ = [
    "ModelVersion", "RegistryEventInfo", "ALIASES", "ENV_MODELS", "models_root", "register_model", "get_version",
    "list_versions", "alias_version", "set_alias", "promote", "rollback", "history", "load_version", "load_alias",
    "actor", "ledger_note",
]

log = logging.getLogger(__name__)
ALIASES = ("champion", "challenger")
ENV_MODELS = "POISONGUARD_MODELS"


@dataclass(frozen=True)
class ModelVersion:
    version: int
    path: str
    manifest_sha256: str
    kind: str
    label: str
    created_at: float
    note: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class RegistryEventInfo:
    seq: int
    at: float
    kind: str
    version: int | None
    previous: int | None
    gate_report: int | None
    actor: str
    reason: str


def actor() -> str:
    """Who is acting: ``$POISONGUARD_ACTOR``, else the login name."""
    import getpass

    try:
        return os.environ.get("POISONGUARD_ACTOR") or getpass.getuser()
    except Exception:  # getpass raises several types when no user is known
        return "unknown"


def models_root(store: Store, root: str | os.PathLike[str] | None = None) -> Path:
    """Where registered models live: ``root``, ``$POISONGUARD_MODELS``, or ``models/`` beside an SQLite store."""
    if root is not None:
        return Path(root)
    if os.environ.get(ENV_MODELS):
        return Path(os.environ[ENV_MODELS])
    if store.path is not None:
        return store.path.parent / "models"
    return DEFAULT_DIR / "models"


def _info(r: ModelVersionRow) -> ModelVersion:
    return ModelVersion(version=r.version, path=r.path, manifest_sha256=r.manifest_sha256, kind=r.kind, label=r.label,
                        created_at=r.created_at, note=r.note, detail=json.loads(r.detail or "{}"))


def ledger_note(store: Store, kind: str, payload: dict[str, Any]) -> None:
    """Append a signed ledger entry when a ledger key and ledger exist; otherwise only log.

    The registry's own tables are the required record; the ledger is an optional second,
    signed copy, so a missing key is not an error here.
    """
    try:
        from ..provenance import append_entry, load_key, read_entries, resolve_key_path

        if not resolve_key_path(None).exists():
            return
        signer = load_key(None)
        if not read_entries(store, kind="init"):
            return
        append_entry(store, signer, kind, payload)
    except Exception as exc:  # the signed copy is optional; the registry tables already hold the event
        log.warning("could not append %s to the provenance ledger: %s", kind, exc)


def register_model(store: Store, model_dir: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None,
                   note: str = "", detail: dict[str, Any] | None = None) -> ModelVersion:
    """Verify ``model_dir``, copy it into the registry and record a new version.

    Raises
    ------
    NotFoundError, IntegrityError
        The directory is missing or fails verification (nothing is registered).
    """
    src = Path(model_dir)
    read_manifest(src)  # refuse a tampered model before copying a byte of it
    model = load_model(src)
    dest_root = models_root(store, root).resolve()
    dest_root.mkdir(parents=True, exist_ok=True)
    with store.write() as s:
        n = (s.execute(select(func.max(ModelVersionRow.version))).scalar() or 0) + 1
        dest = dest_root / f"v{n}"
        if dest.exists():
            shutil.rmtree(dest)  # a leftover of a failed registration: never referenced by a row
        shutil.copytree(src, dest)
        digest = sha256_file(dest / "manifest.json")
        row = ModelVersionRow(version=n, path=str(dest), manifest_sha256=digest, kind=model.kind, label=model.label,
                              created_at=time.time(), note=note, detail=json.dumps(detail or {}, sort_keys=True))
        s.add(row)
        s.add(RegistryEvent(at=row.created_at, kind="register", version=n, actor=actor(), reason=note))
    ledger_note(store, "model-register", {"version": n, "manifest_sha256": digest, "kind": model.kind, "note": note})
    return _info(row)


def get_version(store: Store, version: int) -> ModelVersion:
    with store.session() as s:
        r = s.get(ModelVersionRow, int(version))
        if r is None:
            known = s.execute(select(ModelVersionRow.version).order_by(ModelVersionRow.version)).scalars().all()
            raise NotFoundError(f"unknown model version {version}; registered: {list(known) or '(none)'}")
        return _info(r)


def list_versions(store: Store) -> list[ModelVersion]:
    with store.session() as s:
        return [_info(r) for r in s.execute(select(ModelVersionRow).order_by(ModelVersionRow.version)).scalars()]


def alias_version(store: Store, alias: str = "champion") -> int | None:
    """The version an alias points to, or ``None``."""
    with store.session() as s:
        r = s.get(AliasRow, alias)
        return None if r is None else int(r.version)


def _check_alias(alias: str) -> None:
    if alias not in ALIASES:
        raise InputError(f"unknown alias {alias!r}; choose one of {', '.join(ALIASES)}")


def set_alias(store: Store, alias: str, version: int, *, reason: str = "") -> None:
    """Point ``challenger`` at a version. ``champion`` moves only through :func:`promote` or :func:`rollback`."""
    _check_alias(alias)
    if alias == "champion":
        raise InputError("the champion alias moves only through promote (after a passed gate) or rollback")
    get_version(store, version)
    with store.write() as s:
        _move(s, alias, int(version), kind="alias-challenger", gate_report=None, reason=reason)


def _move(s: Any, alias: str, version: int, *, kind: str, gate_report: int | None, reason: str) -> int | None:
    row = s.get(AliasRow, alias)
    previous = None if row is None else int(row.version)
    if row is None:
        s.add(AliasRow(alias=alias, version=version))
    else:
        row.version = version
    s.add(RegistryEvent(at=time.time(), kind=kind, version=version, previous=previous, gate_report=gate_report,
                        actor=actor(), reason=reason))
    return previous


def promote(store: Store, version: int, *, gate_report: int | None = None, force: bool = False,
            reason: str = "") -> RegistryEventInfo:
    """Make ``version`` the champion.

    Without ``force`` a stored gate report is required that passed, was run for this
    version, and was run against the champion that is current now (a report against an
    older champion is stale). The first champion of an empty registry needs no champion
    to compare with, but still a passed gate or ``force``.

    Raises
    ------
    GateBlockedError
        No gate report, a failed or stale one, or one for another version.
    InputError
        ``force`` without a reason.
    """
    from ..gate import get_report

    get_version(store, version)
    if force:
        if not reason.strip():
            raise InputError("a forced promotion needs a {reason} (it is written to the audit trail)", params=["reason"])
        kind = "promote-forced"
    else:
        if gate_report is None:
            raise GateBlockedError(f"version {version} has no gate report; run the gate (poisonguard retrain) "
                                   "or force the promotion with a reason")
        rep = get_report(store, gate_report)
        if rep.challenger != version:
            raise GateBlockedError(f"gate report {gate_report} is for version {rep.challenger}, not {version}")
        if not rep.passed:
            raise GateBlockedError(f"gate report {gate_report} failed ({', '.join(rep.failed_checks) or 'no checks'}); "
                                   f"version {version} is not promoted")
        kind = "promote"
    with store.write() as s:
        current = s.get(AliasRow, "champion")
        current_v = None if current is None else int(current.version)
        if not force and current_v != rep.champion:
            raise GateBlockedError(f"gate report {gate_report} compared against champion {rep.champion}, but the "
                                   f"champion is now {current_v}: the report is stale, run the gate again")
        previous = _move(s, "champion", int(version), kind=kind, gate_report=gate_report, reason=reason)
    ledger_note(store, "model-promote", {"version": int(version), "previous": previous, "forced": force,
                                         "gate_report": gate_report, "reason": reason})
    return history(store)[-1]


def rollback(store: Store, *, reason: str = "") -> RegistryEventInfo:
    """Return ``champion`` to the version it held before its current one.

    Raises
    ------
    InputError
        No earlier champion to return to.
    """
    with store.write() as s:
        current = s.get(AliasRow, "champion")
        if current is None:
            raise InputError("no champion to roll back")
        events = s.execute(select(RegistryEvent).where(RegistryEvent.kind.in_(("promote", "promote-forced", "rollback")))
                           .order_by(RegistryEvent.seq)).scalars().all()
        chain = _champion_chain(events)
        if len(chain) < 2:
            raise InputError(f"champion {current.version} has no previous champion to roll back to")
        target = chain[-2]
        _move(s, "champion", target, kind="rollback", gate_report=None, reason=reason)
    ledger_note(store, "model-rollback", {"version": target, "previous": int(current.version), "reason": reason})
    return history(store)[-1]


def _champion_chain(events: list[RegistryEvent]) -> list[int]:
    """The stack of champions: a promotion pushes, a rollback pops."""
    stack: list[int] = []
    for e in events:
        if e.kind == "rollback":
            if stack:
                stack.pop()
        elif e.version is not None:
            stack.append(int(e.version))
    return stack


def history(store: Store) -> list[RegistryEventInfo]:
    with store.session() as s:
        rows = s.execute(select(RegistryEvent).order_by(RegistryEvent.seq)).scalars().all()
        return [RegistryEventInfo(seq=r.seq, at=r.at, kind=r.kind, version=r.version, previous=r.previous,
                                  gate_report=r.gate_report, actor=r.actor, reason=r.reason) for r in rows]


def load_version(store: Store, version: int) -> TrainedModel:
    """Load a registered version, verifying the pinned manifest digest and every file's hash.

    Raises
    ------
    IntegrityError
        Any file of the stored copy was changed after registration.
    """
    info = get_version(store, version)
    try:
        return load_model(info.path, expected_manifest_sha256=info.manifest_sha256)
    except IntegrityError as exc:
        raise IntegrityError(f"registered model version {version} failed verification: {exc}") from exc


def load_alias(store: Store, alias: str = "champion") -> tuple[int, TrainedModel]:
    """``(version, model)`` of an alias, verified.

    Raises
    ------
    NotFoundError
        The alias points nowhere.
    """
    _check_alias(alias)
    v = alias_version(store, alias)
    if v is None:
        raise NotFoundError(f"no {alias} model; register one with: poisonguard registry add MODEL_DIR")
    return v, load_version(store, v)
