"""Fingerprints of a partitioned Parquet dataset, partition by partition, locally or on Dask.

The dataset digest must be the one a single machine computes for the same rows in one
file (the partitions concatenated in dataset order, :mod:`._partitions`), so that a
version recorded from a directory verifies against one file and the other way round.
Row hashes are per row, so they map over partitions; three things in the one-file
digest depend on the whole table and are reduced here:

* **the row order**: the hashes of the partitions are concatenated in dataset order;
  the content digest (sorted, or in row order with ``ordered``) is then computed by
  :func:`~poisonguard.provenance._fingerprint.content_digest` exactly as for one file;
* **column kinds**: a row hash is personalized by the kind of every column (numeric,
  string...), inferred from the values. A partition (or a batch of one) where a column
  holds only nulls cannot tell its kind; it is re-hashed with the kind the other
  partitions show, as one file holding all rows would infer it;
* **integers with nulls**: one file holding a null in an integer column reads that
  column as float64 (pandas has no null in int64), which rounds integers beyond 2**53.
  Partitions without a null in that column read it as int64, so the integer columns
  holding a null anywhere in the dataset (from the Parquet footers) are read as float64
  in every partition.

Each partition is read in batches of ``batch_rows`` rows, so neither engine holds a
whole table (or a whole partition) as a DataFrame; the driver holds the row hashes
(16 bytes a row), which the ledger stores anyway. This module imports Dask only inside
:func:`_run_dask`: the local engine never imports it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# the error types live in the one hierarchy (errors.py); re-exported here for callers of this module
from ..errors import DataError, InputError, PartitionFailedError, PoisonguardError, SchemaMismatchError
from ..provenance._fingerprint import CANON_VERSION, Fingerprint, RowHashes, content_digest, hash_frame
from ._partitions import PartitionedDataset, resolve_partitions

__all__ = [
    "ENGINES", "BATCH_ROWS", "SchemaMismatchError", "PartitionFailedError", "PartitionInfo", "DatasetPlan",
    "PartitionedFingerprint", "plan_partitions", "fingerprint_partitions", "hash_partition",
]

log = logging.getLogger(__name__)

ENGINES = ("local", "dask")
BATCH_ROWS = 262_144


@dataclass(frozen=True)
class PartitionInfo:
    """One partition as recorded in a version's signed entry.

    Attributes
    ----------
    name : str
        Path relative to the dataset root (POSIX separators).
    rows : int
    sha256 : str
        SHA-256 of the file's bytes.
    bytes : int
    digest : str
        Content digest of the partition's rows (the dataset's column kinds and ``ordered`` flag).
    """

    name: str
    rows: int
    sha256: str
    bytes: int
    digest: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "sha256": self.sha256, "bytes": self.bytes,
                "digest": self.digest}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PartitionInfo:
        return cls(name=str(d["name"]), rows=int(d["rows"]), sha256=str(d["sha256"]), bytes=int(d["bytes"]),
                   digest=str(d["digest"]))


@dataclass(frozen=True)
class DatasetPlan:
    """What the Parquet footers say about a partitioned dataset (no data read).

    Attributes
    ----------
    dataset : PartitionedDataset
    names : tuple of str
        Partition paths relative to the dataset root, in dataset order.
    rows : tuple of int
        Row count of each partition.
    schema : tuple of (name, Arrow type text)
        The dataset's columns (a column of Arrow type null in some partition takes its type elsewhere).
    promote : frozenset of str
        Integer columns holding a null somewhere: read as float64 everywhere (module docstring).
    null_typed : tuple of frozenset of str
        Per partition, the columns stored with Arrow type null (they hold no values).
    """

    dataset: PartitionedDataset
    names: tuple[str, ...]
    rows: tuple[int, ...]
    schema: tuple[tuple[str, str], ...]
    promote: frozenset[str]
    null_typed: tuple[frozenset[str], ...]

    @property
    def column_names(self) -> list[str]:
        return [n for n, _ in self.schema]


@dataclass(frozen=True)
class PartitionTask:
    """The work of one partition (sent to a Dask worker, so it holds only plain values)."""

    index: int
    path: str
    canon: int
    promote: frozenset[str]
    kinds: Mapping[str, str] | None = None
    id_col: str | None = None
    source_col: str | None = None
    batch_rows: int = BATCH_ROWS


@dataclass(frozen=True)
class PartitionHashes:
    """The row hashes of one partition and what the ledger records about it."""

    index: int
    sha256: str
    n_bytes: int
    rows: RowHashes
    ids: np.ndarray | None = None
    source_counts: dict[str, int] | None = None


@dataclass(frozen=True)
class PartitionedFingerprint:
    """The fingerprint of a partitioned dataset and its partition list.

    Attributes
    ----------
    fingerprint : Fingerprint
        Equal, digest for digest and row hash for row hash, to that of one file holding the
        rows of all partitions in dataset order.
    plan : DatasetPlan
    partitions : list of PartitionInfo
    ids : ndarray or None
        The values of ``id_col`` in dataset order.
    source_counts : dict or None
        Rows per value of ``source_col`` (missing as ``"<missing>"``).
    """

    fingerprint: Fingerprint
    plan: DatasetPlan
    partitions: list[PartitionInfo]
    ids: np.ndarray | None = None
    source_counts: dict[str, int] | None = None
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))

    @property
    def manifest_sha256(self) -> str:
        """SHA-256 of the partition list (names and file SHA-256s, in order): the dataset's "file" digest."""
        return manifest_sha256(self.partitions)

    @property
    def n_bytes(self) -> int:
        return sum(p.bytes for p in self.partitions)


def manifest_sha256(partitions: Sequence[PartitionInfo]) -> str:
    text = json.dumps([[p.name, p.sha256] for p in partitions], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(b"poisonguard-partitions\x00" + text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- plan (footers only)

def _rel_name(dataset: PartitionedDataset, path: Path) -> str:
    try:
        return path.relative_to(dataset.root).as_posix()
    except ValueError:
        return path.as_posix()


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types
        raise InputError(f"cannot read {path} as Parquet: {exc}") from exc


def _null_count(pf: pq.ParquetFile, path: Path, name: str) -> int:
    """Nulls of top-level column ``name`` from the row-group statistics (reads the column if they are absent)."""
    md = pf.metadata
    total = 0
    for r in range(md.num_row_groups):
        rg = md.row_group(r)
        chunk = next((rg.column(j) for j in range(rg.num_columns) if rg.column(j).path_in_schema == name), None)
        stats = chunk.statistics if chunk is not None else None
        if stats is None or not stats.has_null_count:
            return int(pq.read_table(path, columns=[name]).column(name).null_count)
        total += int(stats.null_count)
    return total


def plan_partitions(dataset: PartitionedDataset | str | os.PathLike[str]) -> DatasetPlan:
    """Read the Parquet footers: row counts, one schema for all partitions, the integer columns to promote.

    Raises
    ------
    InputError
        A file is not Parquet.
    SchemaMismatchError
        Two partitions differ in their column names or types (both files are named).
    """
    ds = dataset if isinstance(dataset, PartitionedDataset) else resolve_partitions(dataset)
    names, rows, null_typed = [], [], []
    types: dict[str, pa.DataType] = {}
    type_from: dict[str, str] = {}
    first_cols: tuple[set[str], str] | None = None
    nulls: Counter[str] = Counter()
    files = []
    for path in ds.files:
        pf = _open(path)
        name = _rel_name(ds, path)
        schema = pf.schema_arrow
        cols = set(schema.names)
        if first_cols is None:
            first_cols = (cols, name)
        elif cols != first_cols[0]:
            missing, extra = sorted(first_cols[0] - cols), sorted(cols - first_cols[0])
            raise SchemaMismatchError(
                f"partitions {first_cols[1]} and {name} have different columns: {name} lacks {missing} and "
                f"adds {extra}; all partitions of {ds.spec} must have the same columns",
                first=first_cols[1], second=name)
        nt = set()
        for f in schema:
            if pa.types.is_null(f.type):
                nt.add(f.name)
                nulls[f.name] += pf.metadata.num_rows
                continue
            have = types.get(f.name)
            if have is None:
                types[f.name], type_from[f.name] = f.type, name
            elif not have.equals(f.type):
                raise SchemaMismatchError(
                    f"partitions {type_from[f.name]} and {name} differ in the type of column {f.name!r}: "
                    f"{have} vs {f.type}; all partitions of {ds.spec} must have the same schema",
                    first=type_from[f.name], second=name)
        names.append(name)
        rows.append(int(pf.metadata.num_rows))
        null_typed.append(frozenset(nt))
        files.append((pf, path))
    assert first_cols is not None  # resolve_partitions refuses an empty dataset
    promote = set()
    for col, typ in types.items():
        if pa.types.is_integer(typ):
            n = nulls[col] + sum(_null_count(pf, path, col) for (pf, path), nt in zip(files, null_typed) if col not in nt)
            if n:
                promote.add(col)
    order = list(files[0][0].schema_arrow.names)
    schema_t = tuple((c, str(types.get(c, pa.null()))) for c in order)
    return DatasetPlan(dataset=ds, names=tuple(names), rows=tuple(rows), schema=schema_t,
                       promote=frozenset(promote), null_typed=tuple(null_typed))


# --------------------------------------------------------------------------- map (one partition)

def _frames(raw: bytes, path: str, promote: frozenset[str], batch_rows: int) -> Iterator[pd.DataFrame]:
    """The partition as DataFrames of at most ``batch_rows`` rows, read as ``pd.read_parquet`` reads one file."""
    try:
        pf = pq.ParquetFile(pa.BufferReader(raw))
        schema = pf.schema_arrow
        batches = pf.iter_batches(batch_size=batch_rows, use_pandas_metadata=True)
        empty = True
        for batch in batches:
            empty = False
            yield _promote(pa.Table.from_batches([batch], schema=schema).to_pandas(), promote)
        if empty:
            yield _promote(schema.empty_table().to_pandas(), promote)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"cannot read {path} as Parquet: {exc}") from exc


def _promote(df: pd.DataFrame, promote: frozenset[str]) -> pd.DataFrame:
    for col in promote:
        if col in df.columns and isinstance(df[col].dtype, np.dtype) and df[col].dtype.kind in "iu":
            df[col] = df[col].astype(np.float64)
    return df


def _known_kinds(parts: Sequence[RowHashes], where: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Column -> (kind, where) from the pieces where the column holds values; conflicts raise."""
    known: dict[str, tuple[str, str]] = {}
    for rh, at in zip(parts, where):
        for c, k in rh.kind_of.items():
            if c in rh.empty:
                continue
            prev = known.get(c)
            if prev is None:
                known[c] = (k, at)
            elif prev[0] != k:
                raise SchemaMismatchError(
                    f"column {c!r} holds values of kind {k!r} in {at} but {prev[0]!r} in {prev[1]}",
                    first=prev[1], second=at)
    return known


def _hash_batches(raw: bytes, task: PartitionTask, kinds: Mapping[str, str] | None
                  ) -> tuple[list[RowHashes], list[np.ndarray], Counter[str]]:
    parts: list[RowHashes] = []
    ids: list[np.ndarray] = []
    counts: Counter[str] = Counter()
    for df in _frames(raw, task.path, task.promote, task.batch_rows):
        parts.append(hash_frame(df, canon=task.canon, kinds=kinds, threads=None))
        if task.id_col is not None:
            ids.append(df[task.id_col].to_numpy())
        if task.source_col is not None:
            vc = df[task.source_col].astype("string").fillna("<missing>").value_counts()
            counts.update({str(k): int(v) for k, v in vc.items()})
    return parts, ids, counts


def hash_partition(task: PartitionTask) -> PartitionHashes:
    """Hash one partition file batch by batch (runs on a Dask worker, or in the local loop).

    The batches of one partition are made to agree on column kinds here (a batch where a
    column is all null takes the kind the other batches show) before the driver makes the
    partitions agree.
    """
    p = Path(task.path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read partition {p}: {exc}") from exc
    sha = hashlib.sha256(raw).hexdigest()
    parts, ids, counts = _hash_batches(raw, task, task.kinds)
    where = [f"{p.name} (rows from {i * task.batch_rows})" for i in range(len(parts))]
    known = {c: k for c, (k, _) in _known_kinds(parts, where).items()}
    forced = {**known, **dict(task.kinds or {})}
    if any(rh.kind_of.get(c, k) != k for rh in parts for c, k in forced.items()):
        parts, ids, counts = _hash_batches(raw, task, forced)
    columns, kinds = parts[0].columns, list(parts[0].kinds)
    for rh in parts[1:]:  # batches agree now except on columns empty everywhere, where the first batch decides
        kinds = [k if c in rh.empty else rk for c, k, rk in zip(columns, kinds, rh.kinds)]
    empty = frozenset.intersection(*[rh.empty for rh in parts])
    hashes = parts[0].hashes if len(parts) == 1 else np.concatenate([rh.hashes for rh in parts])
    return PartitionHashes(
        index=task.index, sha256=sha, n_bytes=len(raw), rows=RowHashes(columns, kinds, empty, hashes),
        ids=(np.concatenate(ids) if len(ids) > 1 else ids[0]) if ids else None,
        source_counts=dict(counts) if task.source_col is not None else None)


# --------------------------------------------------------------------------- engines

Runner = Callable[[Sequence[PartitionTask]], list[PartitionHashes]]


def _run_local(tasks: Sequence[PartitionTask]) -> list[PartitionHashes]:
    return [hash_partition(t) for t in tasks]


@contextmanager
def _client(scheduler: Any, n_workers: int | None) -> Iterator[Any]:
    """A Dask client: the given one (the caller owns it), or :func:`~._cluster.dask_client`'s."""
    if scheduler is not None and not isinstance(scheduler, str):
        yield scheduler
        return
    from ._cluster import DEFAULT_WORKERS, dask_client

    with dask_client(scheduler, n_workers=n_workers or DEFAULT_WORKERS) as client:
        yield client


def _run_dask(client: Any, tasks: Sequence[PartitionTask]) -> list[PartitionHashes]:
    """Hash the partitions on a Dask cluster; any failed partition fails the whole run."""
    futures = client.map(_task_entry, list(tasks), pure=False)
    out: list[PartitionHashes] = []
    try:
        for task, fut in zip(tasks, futures):
            try:
                out.append(fut.result())
            except PoisonguardError:
                raise  # bad input found on a worker keeps its type (exit 2)
            except Exception as exc:  # a dead worker (KilledWorker), an unexpected error on one
                raise PartitionFailedError(
                    f"partition {task.path} failed on the Dask cluster ({type(exc).__name__}: {exc}); "
                    "nothing was recorded") from exc
    finally:
        client.cancel(futures)
    return out


def _task_entry(task: PartitionTask) -> PartitionHashes:
    # looked up at call time, so a test can replace hash_partition on the in-process workers
    return hash_partition(task)


@contextmanager
def _runner(engine: str, scheduler: Any, n_workers: int | None) -> Iterator[Runner]:
    """The engine as one function over a list of tasks (one Dask client for the whole command)."""
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "local":
        if scheduler is not None:
            raise InputError("a Dask scheduler was given but the engine is 'local'; pass --engine dask")
        if n_workers is not None:
            raise InputError("a number of Dask workers was given but the engine is 'local'; pass --engine dask")
        yield _run_local
        return
    with _client(scheduler, n_workers) as client:
        yield lambda tasks: _run_dask(client, tasks)


# --------------------------------------------------------------------------- reduce

def _dataset_kinds(plan: DatasetPlan, results: Sequence[PartitionHashes]) -> dict[str, str]:
    """One kind per column for the whole dataset, as one file holding every row would infer it."""
    known = {c: k for c, (k, _) in _known_kinds([r.rows for r in results], plan.names).items()}
    for r in results:  # columns empty everywhere: a partition storing a real type decides
        for c, k in r.rows.kind_of.items():
            if c not in known and c not in plan.null_typed[r.index]:
                known[c] = k
    return known


def fingerprint_partitions(
    dataset: PartitionedDataset | str | os.PathLike[str],
    *,
    ordered: bool = False,
    canon: int = CANON_VERSION,
    engine: str = "local",
    scheduler: Any = None,
    n_workers: int | None = None,
    id_col: str | None = None,
    source_col: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> PartitionedFingerprint:
    """Fingerprint a directory or glob of Parquet files, partition by partition.

    Parameters
    ----------
    dataset : PartitionedDataset or path
        A directory or a glob (see :func:`~poisonguard.distributed.resolve_partitions`).
    ordered : bool
        Make the digest depend on row order (the partitions' order, then the rows').
    canon : int
        Canonical form to hash with.
    engine : {"local", "dask"}
        ``local`` hashes one partition after the other in this process; ``dask`` maps the
        partitions over a Dask cluster.
    scheduler : str or distributed.Client, optional
        The scheduler address (or a client) for ``engine="dask"``; a ``LocalCluster`` when omitted.
    n_workers : int, optional
        Workers of that ``LocalCluster`` (default :data:`~._cluster.DEFAULT_WORKERS`).
    id_col, source_col : str, optional
        Columns whose values (ids) or value counts (sources) are gathered too.
    batch_rows : int
        Rows read and hashed at a time within a partition.

    Raises
    ------
    InputError
        Unreadable files, unknown columns, a bad engine or scheduler.
    SchemaMismatchError
        Partitions with different columns, types or column kinds (both files named).
    DataError
        The dataset has no rows.
    PartitionFailedError
        A partition failed on the Dask cluster.
    """
    if canon not in (1, CANON_VERSION):
        raise ValueError(f"unknown canon version {canon}; this poisonguard knows 1 and {CANON_VERSION}")
    if batch_rows < 1:
        raise InputError(f"batch_rows must be >= 1, got {batch_rows}")
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    plan = plan_partitions(dataset)
    for opt, col in (("--id", id_col), ("--source-col", source_col)):
        if col is not None and col not in plan.column_names:
            raise InputError(f"{plan.dataset.spec}: {opt} column {col!r} not found; columns are: "
                             f"{', '.join(plan.column_names[:12])}")
    if sum(plan.rows) == 0:
        raise DataError(f"{plan.dataset.spec} has no rows (its {len(plan.names)} partition(s) are empty)")
    tasks = [PartitionTask(index=i, path=str(f), canon=canon, promote=plan.promote, id_col=id_col,
                           source_col=source_col, batch_rows=batch_rows) for i, f in enumerate(plan.dataset.files)]
    log.info("hashing %d partitions of %s on the %s engine", len(tasks), plan.dataset.spec, engine)
    with _runner(engine, scheduler, n_workers) as run:
        results = sorted(run(tasks), key=lambda r: r.index)
        kinds = _dataset_kinds(plan, results)
        redo = [tasks[r.index] for r in results if any(r.rows.kind_of.get(c) != k for c, k in kinds.items())]
        if redo:  # partitions where a column is all null: re-hash with the dataset's kinds
            again = {r.index: r for r in run([replace(t, kinds=kinds) for t in redo])}
            results = [again.get(r.index, r) for r in results]
    columns = results[0].rows.columns
    for r in results[1:]:
        if r.rows.columns != columns:
            raise SchemaMismatchError(f"partitions {plan.names[0]} and {plan.names[r.index]} have different columns",
                                      first=plan.names[0], second=plan.names[r.index])
    infos = [PartitionInfo(name=plan.names[r.index], rows=int(r.rows.hashes.shape[0]), sha256=r.sha256,
                           bytes=r.n_bytes, digest=content_digest(columns, r.rows.hashes, ordered=ordered, canon=canon))
             for r in results]
    ids = np.concatenate([r.ids for r in results if r.ids is not None]) if id_col is not None else None
    counts = None
    if source_col is not None:
        total: Counter[str] = Counter()
        for r in results:
            total.update(r.source_counts or {})
        counts = {k: int(total[k]) for k in sorted(total)}
    hashes = np.concatenate([r.rows.hashes for r in results])
    del results  # the per-partition copies: the driver holds the row hashes once (16 bytes a row)
    ordered_digest = content_digest(columns, hashes, ordered=True, canon=canon)
    digest = ordered_digest if ordered else content_digest(columns, hashes, ordered=False, canon=canon)
    fp = Fingerprint(columns=columns, n_rows=int(hashes.shape[0]), row_hashes=hashes, digest=digest,
                     ordered_digest=ordered_digest, ordered=bool(ordered))
    offsets = np.concatenate([[0], np.cumsum([p.rows for p in infos])]).astype(np.int64)
    return PartitionedFingerprint(fingerprint=fp, plan=plan, partitions=infos, ids=ids, source_counts=counts,
                                  offsets=offsets)
