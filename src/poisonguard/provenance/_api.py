"""The provenance library API: sources, dataset versions, verification, scans."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import DataError, InputError, IntegrityError, NotFoundError
from ..store import Store
from ..validation import load_table
from ._diff import RowDiff, diff_hashes, unmatched
from ._index import check_index
from ._fingerprint import CANON_VERSION, ROW_HASH_SIZE, Fingerprint, file_sha256, fingerprint_frame, row_hashes
from ._ledger import AlreadyInitialisedError, ChainProblem, Entry, append_entry, check_chain, check_key, read_entries
from ._models import RowHashesRow, ScanRow, SourceRow, VersionRow
from ._signing import Signer, load_key
from ._trust import SOURCE_KINDS, TrustScore, trust_score

__all__ = [
    "KeyLike", "SourceInfo", "VersionInfo", "DataCheck", "PartitionCheck", "is_partitioned_version", "VerifyReport", "SinceResult", "ScanInfo",
    "init_ledger", "add_source", "list_sources", "get_source", "add_version", "resolve_version",
    "list_versions", "version_hashes", "version_ids", "verify_ledger", "verify_data", "diff_versions",
    "record_scan", "record_verification", "rows_since", "list_scans", "load_version_frame",
]

KeyLike = "Signer | str | os.PathLike[str] | None"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,199}$")


def _signer(key: Any) -> Signer:
    return key if isinstance(key, Signer) else load_key(key)


# --------------------------------------------------------------------------- init

def init_ledger(store: Store, key: Any = None) -> Entry | None:
    """Write the genesis entry pinning the signing key; ``None`` if the ledger already has one.

    Exclusive under concurrency: the check for an existing genesis runs inside the
    locked write, so of several processes initialising at once exactly one writes it
    and the others get ``None``.

    Raises
    ------
    IntegrityError
        The ledger is already initialised with another key (the key ids are named).
    """
    signer = _signer(key)
    try:
        return append_entry(store, signer, "init", {"alg": signer.alg, "key_id": signer.key_id})
    except AlreadyInitialisedError as exc:
        if exc.key_id != signer.key_id:
            raise IntegrityError(
                f"the ledger is already initialised with key id {exc.key_id}; the given key {signer.path} "
                f"has key id {signer.key_id}. Pass the ledger's key with --key or $POISONGUARD_LEDGER_KEY"
            ) from exc
        return None


# --------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class SourceInfo:
    name: str
    kind: str
    owner: str | None
    url: str | None
    notes: str | None
    n_scans: int
    score: TrustScore


def _source_info(r: SourceRow) -> SourceInfo:
    return SourceInfo(name=r.name, kind=r.kind, owner=r.owner, url=r.url, notes=r.notes, n_scans=r.n_scans,
                      score=trust_score(r.kind, flagged=r.flagged, total=r.total,
                                        failed_verifications=r.failed_verifications))


def add_source(store: Store, name: str, *, kind: str, owner: str | None = None, url: str | None = None,
               notes: str | None = None, key: Any = None) -> SourceInfo:
    """Register a data source of ``kind`` (one of :data:`SOURCE_KINDS`)."""
    _check_name(name, "source name")
    if kind not in SOURCE_KINDS:
        raise InputError(f"unknown source kind {kind!r}; choose one of {', '.join(SOURCE_KINDS)}")
    signer = _signer(key)
    check_key(store, signer)

    def prepare(s: Session) -> dict[str, Any]:
        if s.get(SourceRow, name) is not None:
            raise InputError(f"source {name!r} already exists")
        return {}

    def apply(s: Session, seq: int, p: dict[str, Any]) -> None:
        s.add(SourceRow(name=name, kind=kind, owner=owner, url=url, notes=notes, entry_seq=seq,
                        flagged=0, total=0, failed_verifications=0, n_scans=0))

    append_entry(store, signer, "source", {"name": name, "kind": kind, "owner": owner, "url": url, "notes": notes},
                 prepare=prepare, apply=apply)
    return get_source(store, name)


def get_source(store: Store, name: str) -> SourceInfo:
    with store.session() as s:
        r = s.get(SourceRow, name)
        if r is None:
            known = s.execute(select(SourceRow.name).order_by(SourceRow.name)).scalars().all()
            raise NotFoundError(f"unknown source {name!r}; known sources: {', '.join(known) or '(none)'}; "
                                "add it with: poisonguard source add NAME --kind KIND")
        return _source_info(r)


def list_sources(store: Store) -> list[SourceInfo]:
    with store.session() as s:
        return [_source_info(r) for r in s.execute(select(SourceRow).order_by(SourceRow.name)).scalars()]


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InputError(f"invalid {what} {name!r}: use letters, digits, '_', '.', '-', '/' (no '@'), "
                         "starting with a letter or digit")


# --------------------------------------------------------------------------- versions

@dataclass(frozen=True)
class VersionInfo:
    """A recorded dataset version (the signed payload plus its entry)."""

    version_id: str
    name: str
    number: int
    source: str
    parent: str | None
    transform: str | None
    entry_seq: int
    payload: dict[str, Any]
    recorded_by: str = ""
    recorded_at: str = ""
    tool: str = ""

    @property
    def digest(self) -> str:
        return self.payload["digest"]

    @property
    def n_rows(self) -> int:
        return int(self.payload["n_rows"])

    @property
    def file_path(self) -> str:
        return self.payload["file"]["path"]


def _ids_blob(values: np.ndarray) -> bytes:
    buf = io.BytesIO()
    arr = pa.array(pd.Series(values).astype("string") if values.dtype == object else values, from_pandas=True)
    pq.write_table(pa.table({"id": arr}), buf, compression="zstd")
    return buf.getvalue()


def _ids_from_blob(blob: bytes) -> np.ndarray:
    return pq.read_table(io.BytesIO(blob)).column("id").to_numpy(zero_copy_only=False)


def add_version(
    store: Store,
    path: str | os.PathLike[str],
    *,
    name: str,
    source: str,
    parent: str | None = None,
    transform: str | None = None,
    code: str | os.PathLike[str] | None = None,
    id_col: str | None = None,
    source_col: str | None = None,
    ordered: bool = False,
    key: Any = None,
    frame: pd.DataFrame | None = None,
    engine: str = "local",
    scheduler: Any = None,
    n_workers: int | None = None,
) -> VersionInfo:
    """Fingerprint a data file or a partitioned dataset and record it as the next version of ``name``.

    Records the file's SHA-256, schema, row count, the content digest and per-row hashes,
    the parent version and transform, the code file's SHA-256, who/when/which tool, and
    per-source row counts when ``source_col`` is given.

    ``path`` may be a directory or a glob of Parquet files: the partitions are hashed one
    by one (``engine="local"``) or on a Dask cluster (``engine="dask"``, ``scheduler``
    an address or a LocalCluster by default), and the digest is the one of a single file
    holding the partitions' rows in dataset order. The entry then lists the partitions
    (name, rows, SHA-256, digest), so :func:`verify_data` can name the one that changed.

    Raises
    ------
    InputError
        Missing data or code file, bad name, unknown ``id_col``/``source_col``, a
        partitioned dataset whose partitions differ in schema, an engine for a single file.
    NotFoundError
        Unknown source or parent version.
    KeyMissingError
        No signing key.
    PartitionFailedError
        A partition failed on the Dask cluster (nothing is recorded).
    """
    from ..distributed import is_partitioned

    _check_name(name, "dataset name")
    signer = _signer(key)  # fail before any heavy work: a missing key, or not the ledger's key
    check_key(store, signer)
    code_info = None
    if code is not None:
        cp = Path(code)
        if not cp.is_file():
            raise InputError(f"code file not found: {cp}")
        code_info = {"path": str(cp.resolve()), "sha256": file_sha256(cp)}
    get_source(store, source)
    parent_info = resolve_version(store, parent) if parent else None
    if is_partitioned(path) and frame is None:
        rec = _record_partitioned(path, id_col=id_col, source_col=source_col, ordered=ordered, engine=engine,
                                  scheduler=scheduler, n_workers=n_workers)
    else:
        _check_single_file_engine(path, engine, scheduler, n_workers)
        rec = _record_file(Path(path), frame, id_col=id_col, source_col=source_col, ordered=ordered)
    fp = rec.fingerprint
    blob = fp.blob
    ids_blob = _ids_blob(rec.ids) if rec.ids is not None else None
    payload = {
        "name": name,
        "source": source,
        "parent": parent_info.version_id if parent_info else None,
        "transform": transform,
        "code": code_info,
        "file": rec.file,
        "schema": rec.schema,
        "n_rows": fp.n_rows,
        "n_cols": rec.n_cols,
        "canonical_columns": fp.columns,
        "ordered": ordered,
        "canon": CANON_VERSION,
        "digest": fp.digest,
        "ordered_digest": fp.ordered_digest,
        "row_hash": f"blake2b-{ROW_HASH_SIZE * 8}",
        "row_hashes_sha256": hashlib.sha256(blob).hexdigest(),
        "id_col": id_col,
        "ids_sha256": hashlib.sha256(ids_blob).hexdigest() if ids_blob is not None else None,
        "source_col": source_col,
        "source_counts": rec.source_counts,
    }
    if rec.partitions is not None:
        payload["partitions"] = rec.partitions

    def prepare(s: Session) -> dict[str, Any]:
        if s.get(SourceRow, source) is None:
            raise NotFoundError(f"unknown source {source!r}")
        n = s.execute(select(func.max(VersionRow.number)).where(VersionRow.name == name)).scalar() or 0
        return {"number": n + 1, "version_id": f"{name}@{n + 1}"}

    def apply(s: Session, seq: int, body: dict[str, Any]) -> None:
        full = body["payload"]
        vid = full["version_id"]
        s.add(VersionRow(version_id=vid, name=name, number=full["number"], source=source, parent=full["parent"],
                         entry_seq=seq, digest=fp.digest, file_sha256=rec.file["sha256"], file_path=full["file"]["path"],
                         n_rows=fp.n_rows, recorded_at=body["at"]))
        s.flush()
        s.add(RowHashesRow(version_id=vid, hashes=blob, ids=ids_blob))

    entry = append_entry(store, signer, "version", payload, prepare=prepare, apply=apply)
    return _version_from_entry(entry)


PARTITIONED_FORMAT = "parquet-partitioned"


@dataclass(frozen=True)
class _Recorded:
    """What :func:`add_version` records about the data, for a file or a partitioned dataset."""

    fingerprint: Fingerprint
    file: dict[str, Any]
    schema: list[dict[str, str]]
    n_cols: int
    ids: np.ndarray | None
    source_counts: dict[str, int] | None
    partitions: list[dict[str, Any]] | None = None


def _check_single_file_engine(path: Any, engine: str, scheduler: Any, n_workers: int | None) -> None:
    if engine != "local" or scheduler is not None or n_workers is not None:
        raise InputError(f"{path} is one file: the Dask engine (--engine dask, --scheduler, --workers) runs on a "
                         "partitioned dataset, a directory or a glob of Parquet files")


def _record_file(p: Path, frame: pd.DataFrame | None, *, id_col: str | None, source_col: str | None,
                 ordered: bool) -> _Recorded:
    df = frame if frame is not None else load_table(p)
    file_sha = file_sha256(p)
    for opt, col in (("--id", id_col), ("--source-col", source_col)):
        if col is not None and col not in df.columns:
            raise InputError(f"{p}: {opt} column {col!r} not found; columns are: {', '.join(map(str, df.columns[:12]))}")
    fp = fingerprint_frame(df, ordered=ordered)
    source_counts = None
    if source_col:
        counts = df[source_col].astype("string").fillna("<missing>").value_counts()
        source_counts = {str(k): int(v) for k, v in counts.sort_index().items()}
    return _Recorded(
        fingerprint=fp,
        file={"path": str(p.resolve()), "sha256": file_sha, "bytes": p.stat().st_size,
              "format": "parquet" if p.suffix.lower() in {".parquet", ".pq"} else "csv"},
        schema=[{"name": str(c), "dtype": str(t)} for c, t in df.dtypes.items()],
        n_cols=int(df.shape[1]), ids=df[id_col].to_numpy() if id_col else None, source_counts=source_counts)


def _record_partitioned(path: Any, *, id_col: str | None, source_col: str | None, ordered: bool, engine: str,
                        scheduler: Any, n_workers: int | None) -> _Recorded:
    from ..distributed._ledger import fingerprint_partitions

    pf = fingerprint_partitions(path, ordered=ordered, engine=engine, scheduler=scheduler, n_workers=n_workers,
                                id_col=id_col, source_col=source_col)
    # the dataset's "file" digest is over the partition list (names and file SHA-256s); the
    # schema is the Parquet (Arrow) one, since pandas dtypes may differ between partitions
    return _Recorded(
        fingerprint=pf.fingerprint,
        file={"path": _dataset_path(path), "sha256": pf.manifest_sha256, "bytes": pf.n_bytes,
              "format": PARTITIONED_FORMAT, "n_partitions": len(pf.partitions)},
        schema=[{"name": n, "dtype": t} for n, t in pf.plan.schema],
        n_cols=len(pf.plan.schema), ids=pf.ids, source_counts=pf.source_counts,
        partitions=[p.to_json() for p in pf.partitions])


def _dataset_path(path: Any) -> str:
    """The absolute form of a directory or glob, as recorded and looked up by ``verify``."""
    return str(Path(path).resolve())


def is_partitioned_version(v: VersionInfo) -> bool:
    """Whether ``v`` was recorded from a partitioned dataset (its entry lists the partitions)."""
    return v.payload.get("file", {}).get("format") == PARTITIONED_FORMAT


def _version_from_entry(e: Entry) -> VersionInfo:
    p = e.payload
    return VersionInfo(version_id=p["version_id"], name=p["name"], number=int(p["number"]), source=p["source"],
                       parent=p.get("parent"), transform=p.get("transform"), entry_seq=e.seq, payload=p,
                       recorded_by=str(e.body.get("by", "")), recorded_at=str(e.body.get("at", "")),
                       tool=str(e.body.get("tool", "")))


def _version_entries(store: Store) -> list[Entry]:
    return [e for e in read_entries(store, kind="version") if "version_id" in e.payload]


def list_versions(store: Store, *, name: str | None = None) -> list[VersionInfo]:
    """Versions in ledger order (optionally only those of ``name``)."""
    out = [_version_from_entry(e) for e in _version_entries(store)]
    return [v for v in out if name is None or v.name == name]


def resolve_version(store: Store, ref: str) -> VersionInfo:
    """Find ``NAME@N`` exactly, or the latest version of ``NAME``; else :class:`NotFoundError`."""
    with store.session() as s:
        if "@" in ref:
            row = s.get(VersionRow, ref)
        else:
            row = s.execute(select(VersionRow).where(VersionRow.name == ref)
                            .order_by(VersionRow.number.desc()).limit(1)).scalar_one_or_none()
        if row is None:
            known = s.execute(select(VersionRow.version_id).order_by(VersionRow.entry_seq.desc()).limit(8)).scalars().all()
            raise NotFoundError(f"unknown dataset version {ref!r}; recent versions: {', '.join(known) or '(none)'}")
        seq = row.entry_seq
    entries = [e for e in read_entries(store, kind="version") if e.seq == seq]
    if not entries:
        raise IntegrityError(f"version {ref!r} points to ledger entry {seq}, which is missing")
    v = _version_from_entry(entries[0])
    if v.version_id != row.version_id:
        raise IntegrityError(f"version index row {row.version_id!r} does not match its ledger entry {seq}")
    return v


def version_hashes(store: Store, version: VersionInfo) -> np.ndarray:
    """The stored row hashes of ``version``, checked against the signed entry."""
    with store.session() as s:
        row = s.get(RowHashesRow, version.version_id)
        blob = row.hashes if row is not None else None
    if blob is None:
        raise IntegrityError(f"row hashes of {version.version_id} are missing from the store")
    if hashlib.sha256(blob).hexdigest() != version.payload["row_hashes_sha256"]:
        raise IntegrityError(f"stored row hashes of {version.version_id} were altered (digest differs from entry {version.entry_seq})")
    return np.frombuffer(blob, dtype=np.uint8).reshape(-1, ROW_HASH_SIZE)


def version_ids(store: Store, version: VersionInfo) -> np.ndarray | None:
    """The stored id column values of ``version`` (``None`` without ``--id``)."""
    if not version.payload.get("id_col"):
        return None
    with store.session() as s:
        row = s.get(RowHashesRow, version.version_id)
        blob = row.ids if row is not None else None
    if blob is None or hashlib.sha256(blob).hexdigest() != version.payload["ids_sha256"]:
        raise IntegrityError(f"stored ids of {version.version_id} are missing or altered")
    return _ids_from_blob(blob)


def load_version_frame(version: VersionInfo, *, path: str | os.PathLike[str] | None = None,
                       check: bool = True) -> pd.DataFrame:
    """Load the data of ``version``; with ``check``, refuse a file (or partition list) whose bytes changed.

    A partitioned dataset is read whole (its partitions concatenated in dataset order).
    """
    from ..distributed import is_partitioned

    p_text = str(path) if path is not None else version.file_path
    if is_partitioned(p_text) or (path is None and is_partitioned_version(version)):
        return _load_partitioned(version, p_text, check=check)
    p = Path(p_text)
    if not p.exists():
        raise InputError(f"data file of {version.version_id} not found: {p}")
    if check and file_sha256(p) != version.payload["file"]["sha256"]:
        raise IntegrityError(f"{p} changed since {version.version_id} was recorded; run: poisonguard ledger verify {version.version_id}")
    return load_table(p)


def _load_partitioned(version: VersionInfo, spec: str, *, check: bool) -> pd.DataFrame:
    from ..distributed import resolve_partitions
    from ..distributed._ledger import PartitionInfo, manifest_sha256

    ds = resolve_partitions(spec)
    if check:
        now = [PartitionInfo(name=f.relative_to(ds.root).as_posix() if f.is_relative_to(ds.root) else f.as_posix(),
                             rows=0, sha256=file_sha256(f), bytes=0, digest="") for f in ds.files]
        if manifest_sha256(now) != version.payload["file"]["sha256"]:
            raise IntegrityError(f"the partitions of {spec} changed since {version.version_id} was recorded; "
                                 f"run: poisonguard ledger verify {version.version_id}")
    frames = []
    for f in ds.files:
        try:
            frames.append(pd.read_parquet(f))
        except Exception as exc:  # pyarrow raises several unrelated types
            raise InputError(f"cannot read {f} as Parquet: {exc}") from exc
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- verification

@dataclass(frozen=True)
class PartitionCheck:
    """How the partitions of a dataset compare with those a version recorded.

    Partitions are matched by name (path relative to the dataset root). A recorded
    partition that is gone while a new one holds the same rows (equal digest) counts as
    renamed. Whether a change is a mismatch is the dataset digest's call (``DataCheck.ok``):
    renamed or reordered partitions keep the digest unless the version was recorded with
    ``--ordered``; they are then reported as notes.

    Attributes
    ----------
    changed : list of str
        Partitions present in both whose rows differ.
    missing, added : list of str
        Recorded partitions that are gone; partitions that are new.
    renamed : list of (str, str)
        ``(recorded name, name now)`` pairs holding the same rows.
    reordered : bool
        The partitions present in both are in another dataset order.
    schema_problem : str or None
        The partitions no longer share one schema (nothing was hashed).
    """

    changed: list[str]
    missing: list[str]
    added: list[str]
    renamed: list[tuple[str, str]]
    reordered: bool
    names_now: tuple[str, ...] = ()
    offsets_now: tuple[int, ...] = (0,)
    names_recorded: tuple[str, ...] = ()
    offsets_recorded: tuple[int, ...] = (0,)
    rows_recorded: dict[str, int] = field(default_factory=dict)
    rows_now: dict[str, int] = field(default_factory=dict)
    schema_problem: str | None = None

    @property
    def unchanged(self) -> bool:
        return not (self.changed or self.missing or self.added or self.renamed or self.reordered
                    or self.schema_problem)

    def lines(self) -> list[str]:
        """One line per changed, missing, added or renamed partition (and one if reordered)."""
        if self.schema_problem:
            return [f"partition schema: {self.schema_problem}"]
        out = []
        for n in self.changed:
            i = self.names_now.index(n)
            out.append(f"partition {n} changed (rows {self.offsets_now[i]}-{self.offsets_now[i + 1] - 1} of the "
                       f"dataset now; {self.rows_recorded.get(n, 0)} rows recorded, {self.rows_now.get(n, 0)} now)")
        out += [f"partition {n} missing ({self.rows_recorded.get(n, 0)} rows recorded)" for n in self.missing]
        out += [f"partition {n} added ({self.rows_now.get(n, 0)} rows)" for n in self.added]
        out += [f"partition {a} renamed to {b} (same rows)" for a, b in self.renamed]
        if self.reordered:
            out.append("partitions reordered: " + ", ".join(self.names_now))
        return out

    def _locate(self, pos: int, names: tuple[str, ...], offsets: tuple[int, ...]) -> str:
        if not names:
            return ""
        i = int(np.searchsorted(np.asarray(offsets), pos, side="right")) - 1
        if i < 0 or i >= len(names):
            return ""
        return f" [{names[i]} row {pos - offsets[i]}]"

    def where_now(self, pos: int) -> str:
        return self._locate(pos, self.names_now, self.offsets_now)

    def where_recorded(self, pos: int) -> str:
        return self._locate(pos, self.names_recorded, self.offsets_recorded)


@dataclass(frozen=True)
class DataCheck:
    """Re-hash of a data file (or a partitioned dataset) against a recorded version."""

    version_id: str
    path: str
    file_sha_ok: bool
    digest_ok: bool
    schema_ok: bool
    n_rows_recorded: int
    n_rows_now: int
    diff: RowDiff
    ids_now: np.ndarray | None = None
    ids_recorded: np.ndarray | None = None
    partitions: PartitionCheck | None = None

    @property
    def ok(self) -> bool:
        return self.digest_ok and self.schema_ok

    def notes(self) -> list[str]:
        """Partition changes that keep the digest (renamed or reordered partitions of an unordered version)."""
        return self.partitions.lines() if self.ok and self.partitions is not None else []

    def describe(self, limit: int = 20) -> list[str]:
        """One line per difference (at most ``limit`` per category, then a count)."""
        lines: list[str] = []
        pc_ = self.partitions
        if pc_ is not None:
            lines.extend(pc_.lines())
        if not self.schema_ok and not (pc_ is not None and pc_.schema_problem):
            lines.append(f"{self.version_id}: the columns differ from the recorded schema")
        d = self.diff
        now = pc_.where_now if pc_ is not None else (lambda pos: "")
        rec = pc_.where_recorded if pc_ is not None else (lambda pos: "")

        def _cap(items: list[str], total: int, what: str) -> None:
            lines.extend(items[:limit])
            if total > limit:
                lines.append(f"... and {total - limit} more {what}")

        def _id(pos: int, ids: np.ndarray | None) -> str:
            return f" (id={_py(ids[pos])!r})" if ids is not None and pos < len(ids) else ""

        ch = [f"row {int(n)} changed" + (f" (was row {int(o)})" if o != n else "") + now(int(n))
              + (_id(int(n), self.ids_now) if self.ids_now is not None else
                 (f" (id={_py(d.changed_ids[i])!r})" if d.changed_ids is not None else ""))
              for i, (o, n) in enumerate(zip(d.changed_old[:limit], d.changed_new[:limit]))]
        _cap(ch, d.n_changed, "changed rows")
        _cap([f"row {int(r)} added{now(int(r))}{_id(int(r), self.ids_now)}" for r in d.added[:limit]],
             int(d.added.size), "added rows")
        _cap([f"row {int(r)} removed (position in {self.version_id}){rec(int(r))}{_id(int(r), self.ids_recorded)}"
              for r in d.removed[:limit]], int(d.removed.size), "removed rows")
        if not lines and not self.digest_ok:
            lines.append(f"{self.version_id}: the rows were reordered (the version was recorded with --ordered)")
        return lines


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of :func:`verify_ledger`: chain problems and an optional data check."""

    n_entries: int
    problems: list[ChainProblem]
    data: DataCheck | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and (self.data is None or self.data.ok)

    def lines(self) -> list[str]:
        out = [p.message for p in self.problems]
        if self.data is not None and not self.data.ok:
            out.extend(self.data.describe())
        return out

    def raise_for_problems(self) -> None:
        """Raise :class:`IntegrityError` (exit code 4) naming the first problem."""
        if self.ok:
            return
        lines = self.lines()
        more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
        raise IntegrityError(f"verification failed: {lines[0]}{more}")


def verify_data(store: Store, version: VersionInfo | str, *, path: str | os.PathLike[str] | None = None,
                frame: pd.DataFrame | None = None, engine: str = "local", scheduler: Any = None,
                n_workers: int | None = None) -> DataCheck:
    """Re-hash a data file (default: the recorded path) and compare it with ``version`` row by row.

    ``path`` (or the recorded path) may be a partitioned dataset (a directory or a glob
    of Parquet files): it is re-hashed partition by partition on ``engine`` and compared
    with the version whatever form the version was recorded from, since the digest of
    the partitions equals the one of a single file with the same rows. When the version
    lists partitions too, the check says which partition changed, is missing or was added.
    """
    from ..distributed import is_partitioned

    v = resolve_version(store, version) if isinstance(version, str) else version
    p_text = str(path) if path is not None else v.file_path
    ordered, canon = bool(v.payload.get("ordered")), _canon_of(v)
    id_col = v.payload.get("id_col")
    parts: PartitionCheck | None = None
    if frame is None and is_partitioned(p_text):
        from ..distributed._ledger import SchemaMismatchError, fingerprint_partitions, plan_partitions

        try:
            # an id column that is gone is a schema difference (exit 4), not an unknown option (exit 2)
            has_id = bool(id_col) and id_col in plan_partitions(p_text).column_names
            pf = fingerprint_partitions(p_text, ordered=ordered, canon=canon, engine=engine, scheduler=scheduler,
                                        n_workers=n_workers, id_col=id_col if has_id else None)
        except SchemaMismatchError as exc:
            if not is_partitioned_version(v):
                raise
            check = PartitionCheck(changed=[exc.second], missing=[], added=[], renamed=[], reordered=False,
                                   schema_problem=str(exc))
            empty = np.zeros(0, dtype=np.int64)
            return DataCheck(version_id=v.version_id, path=p_text, file_sha_ok=False, digest_ok=False,
                             schema_ok=False, n_rows_recorded=v.n_rows, n_rows_now=0,
                             diff=RowDiff(empty, empty, None, empty, empty, False), partitions=check)
        fp, ids_now = pf.fingerprint, pf.ids
        sha_ok = pf.manifest_sha256 == v.payload["file"]["sha256"]
        if is_partitioned_version(v):
            parts = _compare_partitions(v, pf)
    else:
        _check_single_file_engine(p_text, engine, scheduler, n_workers)
        p = Path(p_text)
        df = frame if frame is not None else load_table(p)
        sha_ok = file_sha256(p) == v.payload["file"]["sha256"] if p.exists() else False
        fp = fingerprint_frame(df, ordered=ordered, canon=canon)
        ids_now = df[id_col].to_numpy() if id_col and id_col in df.columns else None
    old = version_hashes(store, v)
    ids_rec = version_ids(store, v) if id_col else None
    if ids_rec is not None and ids_now is not None and ids_now.dtype != object:
        ids_now = pd.Series(ids_now).to_numpy()
    d = diff_hashes(old, fp.row_hashes, old_ids=_as_str(ids_rec), new_ids=_as_str(ids_now))
    schema_ok = fp.columns == v.payload["canonical_columns"]
    return DataCheck(version_id=v.version_id, path=p_text, file_sha_ok=sha_ok, digest_ok=fp.digest == v.digest,
                     schema_ok=schema_ok, n_rows_recorded=v.n_rows, n_rows_now=fp.n_rows, diff=d,
                     ids_now=ids_now, ids_recorded=ids_rec, partitions=parts)


def _compare_partitions(v: VersionInfo, pf: Any) -> PartitionCheck:
    """Match the partitions now with the recorded ones by name, then renamed ones by digest."""
    recorded = [(str(p["name"]), str(p["digest"]), int(p["rows"])) for p in v.payload.get("partitions", [])]
    now = [(p.name, p.digest, p.rows) for p in pf.partitions]
    rec_by, now_by = {n: (d, r) for n, d, r in recorded}, {n: (d, r) for n, d, r in now}
    changed = [n for n, d, _ in now if n in rec_by and rec_by[n][0] != d]
    missing = [n for n, _, _ in recorded if n not in now_by]
    added = [n for n, _, _ in now if n not in rec_by]
    renamed: list[tuple[str, str]] = []
    for m in list(missing):
        match = next((a for a in added if now_by[a] == rec_by[m]), None)
        if match is not None:
            renamed.append((m, match))
            missing.remove(m)
            added.remove(match)
    new_name = dict(renamed)
    seq_rec = [new_name.get(n, n) for n, _, _ in recorded if new_name.get(n, n) in now_by]
    seq_now = [n for n, _, _ in now if n in set(seq_rec)]
    rec_offsets = tuple(int(x) for x in np.concatenate([[0], np.cumsum([r for _, _, r in recorded])]))
    return PartitionCheck(
        changed=changed, missing=missing, added=added, renamed=renamed, reordered=seq_rec != seq_now,
        names_now=tuple(n for n, _, _ in now), offsets_now=tuple(int(x) for x in pf.offsets),
        names_recorded=tuple(n for n, _, _ in recorded), offsets_recorded=rec_offsets,
        rows_recorded={n: r for n, _, r in recorded}, rows_now={n: r for n, _, r in now})


def _canon_of(v: VersionInfo) -> int:
    """The canonical form ``v`` was hashed with (versions from before canon 2 do not say: 1)."""
    canon = v.payload.get("canon", 1)
    if canon not in (1, CANON_VERSION):
        raise IntegrityError(f"{v.version_id} was hashed with canon {canon!r}, unknown to this poisonguard: upgrade it")
    return int(canon)


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _as_str(ids: np.ndarray | None) -> np.ndarray | None:
    if ids is None:
        return None
    return pd.Series(ids).astype("string").to_numpy(dtype=object)


def verify_ledger(store: Store, key: Any = None, *, version: str | None = None,
                  path: str | os.PathLike[str] | None = None, record: bool = True, engine: str = "local",
                  scheduler: Any = None, n_workers: int | None = None) -> VerifyReport:
    """Check the chain, signatures and index; with ``version``/``path``, re-hash the data too.

    ``path`` alone picks the latest version recorded for that file. A failed data check is
    recorded as evidence against the version's source (``record=True``) when the key can sign.
    """
    signer = _signer(key)
    problems, n = check_chain(store, signer)
    entries = read_entries(store)
    problems += check_index(store, entries)
    data = None
    if version is not None or path is not None:
        if version is None:
            target = _dataset_path(path)
            candidates = [v for v in list_versions(store) if v.file_path == target]
            if not candidates:
                raise NotFoundError(f"no version was recorded for {path}; pass the version as well (--version NAME@N)")
            v = candidates[-1]
        else:
            v = resolve_version(store, version)
        data = verify_data(store, v, path=path, engine=engine, scheduler=scheduler, n_workers=n_workers)
        if not data.ok and record and signer.can_sign:
            record_verification(store, v, ok=False, detail=data.describe(limit=5), key=signer)
    return VerifyReport(n_entries=n, problems=problems, data=data)


def record_verification(store: Store, version: VersionInfo, *, ok: bool, detail: list[str], key: Any = None) -> Entry:
    """Record a verification result; a failure counts against the version's source."""
    signer = _signer(key)

    def apply(s: Session, seq: int, p: dict[str, Any]) -> None:
        if not ok:
            src = s.get(SourceRow, version.source)
            if src is not None:
                src.failed_verifications += 1

    return append_entry(store, signer, "verification",
                        {"version_id": version.version_id, "source": version.source, "ok": ok, "detail": detail},
                        apply=apply)


def diff_versions(store: Store, v1: str, v2: str) -> tuple[VersionInfo, VersionInfo, RowDiff]:
    """Diff two recorded versions from their stored row hashes (ids used when both have them)."""
    a, b = resolve_version(store, v1), resolve_version(store, v2)
    ha, hb = version_hashes(store, a), version_hashes(store, b)
    ia, ib = version_ids(store, a), version_ids(store, b)
    both_ids = ia is not None and ib is not None and a.payload.get("id_col") == b.payload.get("id_col")
    d = diff_hashes(ha, hb, old_ids=_as_str(ia) if both_ids else None, new_ids=_as_str(ib) if both_ids else None)
    return a, b, d


# --------------------------------------------------------------------------- scans

@dataclass(frozen=True)
class ScanInfo:
    entry_seq: int
    version_id: str
    recorded_at: str
    summary: dict[str, Any]
    per_source: dict[str, list[int]]


def record_scan(
    store: Store,
    version_id: str,
    summary: Mapping[str, Any],
    per_source_flag_rates: Mapping[str, tuple[int, int]] | None = None,
    *,
    key: Any = None,
) -> ScanInfo:
    """Store a scan summary against a dataset version and add its evidence to source trust.

    Parameters
    ----------
    store : Store
    version_id : str
        ``NAME@N`` or ``NAME`` (latest).
    summary : mapping
        The scan report summary (JSON-serializable; NaN/inf are refused).
    per_source_flag_rates : mapping of source name to ``(flagged, total)``, optional
        Rows flagged / rows scanned per source. Without it, the whole scan counts for the
        version's source. Every name must be a registered source.
    key : Signer or path, optional
        Signing key (default ``$POISONGUARD_LEDGER_KEY`` or ``.poisonguard/ledger.key``).
    """
    signer = _signer(key)
    check_key(store, signer)
    v = resolve_version(store, version_id)
    try:
        summary_json = json.loads(json.dumps(dict(summary), allow_nan=False, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise InputError(f"scan summary is not JSON-serializable: {exc}") from exc
    if per_source_flag_rates is None:
        flagged = summary_json.get("n_flagged")
        total = summary_json.get("n_rows", v.n_rows)
        per_source_flag_rates = {v.source: (int(flagged), int(total))} if flagged is not None else {}
    per: dict[str, list[int]] = {}
    for src, ft in per_source_flag_rates.items():
        try:
            f, t = (int(ft[0]), int(ft[1]))
        except (TypeError, ValueError, IndexError) as exc:
            raise InputError(f"flag rate of source {src!r} must be (flagged, total), got {ft!r}") from exc
        if f < 0 or t < 0 or f > t:
            raise InputError(f"flag rate of source {src!r} is invalid: flagged={f}, total={t}")
        per[str(src)] = [f, t]
    tot_f = sum(f for f, _ in per.values())
    tot_t = sum(t for _, t in per.values())

    def prepare(s: Session) -> dict[str, Any]:
        unknown = sorted(src for src in per if s.get(SourceRow, src) is None)
        if unknown:
            raise NotFoundError(f"scan names unknown source(s) {unknown}; register them with: poisonguard source add")
        return {}

    def apply(s: Session, seq: int, p: dict[str, Any]) -> None:
        for src, (f, t) in per.items():
            row = s.get(SourceRow, src)
            row.flagged += f
            row.total += t
            row.n_scans += 1
        s.add(ScanRow(entry_seq=seq, version_id=v.version_id, recorded_at=p["at"],
                      flag_rate=(tot_f / tot_t) if tot_t else None, summary=json.dumps(summary_json)))

    e = append_entry(store, signer, "scan", {"version_id": v.version_id, "summary": summary_json, "per_source": per},
                     prepare=prepare, apply=apply)
    return ScanInfo(entry_seq=e.seq, version_id=v.version_id, recorded_at=e.body["at"], summary=summary_json,
                    per_source=per)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON-serializable")


def list_scans(store: Store, version_id: str | None = None) -> list[ScanInfo]:
    """Scans from the signed entries (optionally of one version), oldest first."""
    out = []
    for e in read_entries(store, kind="scan"):
        p = e.payload
        if version_id is None or p.get("version_id") == version_id:
            out.append(ScanInfo(entry_seq=e.seq, version_id=p["version_id"], recorded_at=e.body.get("at", ""),
                                summary=p.get("summary", {}), per_source=p.get("per_source", {})))
    return out


@dataclass(frozen=True)
class SinceResult:
    """Rows of a table that are new relative to a trusted version.

    Attributes
    ----------
    mask : ndarray of bool
        ``True`` for rows whose canonical hash is not in the trusted version (multiset:
        extra copies of a trusted row count as new).
    trusted : VersionInfo
    trusted_hashes : ndarray of shape (n, 16)
    trusted_frame : DataFrame or None
        The trusted version's data, when its file is still there unchanged.
    """

    mask: np.ndarray
    trusted: VersionInfo
    trusted_hashes: np.ndarray
    trusted_frame: pd.DataFrame | None = None

    @property
    def n_new(self) -> int:
        return int(self.mask.sum())


def rows_since(store: Store, data_frame: pd.DataFrame, trusted_version: str, *, load_trusted: bool = True) -> SinceResult:
    """Mark the rows of ``data_frame`` that are not in ``trusted_version`` (by canonical row hash).

    Raises
    ------
    DataError
        The columns differ from the trusted version's (row hashes would not be comparable).
    """
    v = resolve_version(store, trusted_version)
    cols, hashes = row_hashes(data_frame, canon=_canon_of(v))
    if cols != v.payload["canonical_columns"]:
        missing = sorted(set(v.payload["canonical_columns"]) - set(cols))
        extra = sorted(set(cols) - set(v.payload["canonical_columns"]))
        raise DataError(f"columns differ from trusted version {v.version_id}: missing {missing}, extra {extra}")
    trusted = version_hashes(store, v)
    _, new_mask = unmatched(trusted, hashes)
    frame = None
    if load_trusted:
        try:
            frame = load_version_frame(v)
        except (InputError, IntegrityError):
            frame = None
    return SinceResult(mask=new_mask, trusted=v, trusted_hashes=trusted, trusted_frame=frame)
