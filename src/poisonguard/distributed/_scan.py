"""``scan`` on Dask: fit on a bounded stratified sample, score every partition on the workers.

The steps, each a map over the partitions or a step on the client:

1. **summarise** (map, then reduce): rows, label counts and the encoder's statistics of
   every partition (:mod:`._stats`). The encoder, the class codes and every count are
   those of the whole dataset, as a single machine would compute them.
2. **sample** (map): a stratified sample of at most ``sample_rows`` rows, each class
   in its share of the dataset (at least 2 rows of every class). Which rows is decided
   by a hash of each row's global position (:func:`poisonguard.scan._scan.sample_keys`): the
   rows of each class with the smallest keys, exactly the rows the local scan fits on
   (:data:`poisonguard.scan._scan.FIT_SAMPLE_ROWS`). Each partition sends its rows under a
   per-class cut-off (a superset, by a margin of 8 standard deviations) and the client
   keeps the smallest keys.
3. **fit** (client): every detector is fitted on the sample, and the sample's own rows
   are scored there, on the matrix the detectors were fitted on: the *fit path* of the
   detector contract (leave-one-out neighbour votes, out-of-fold probabilities). This
   and the next step are the local scan's own steps above ``FIT_SAMPLE_ROWS`` rows, so
   the two engines agree by construction (up to the float rounding of the encoder's
   statistics, which are summed partition by partition here).
4. **score** (map): the fitted detectors are broadcast to the workers once; each
   partition's other rows are scored against them (the *query path*: neighbours among
   the sample, the fold models' mean). The two paths estimate the same quantity for a
   row the detector did not learn from, which is why a sample row must never be scored
   on the query path: it would find itself among its neighbours and vouch for its own
   label. The raw scores (float64, as the local scan keeps them) come back to the client.
5. **combine** (client): :func:`poisonguard.scan.calibrate` and
   :func:`poisonguard.scan.combine` over every row: the robust z-scores, presence
   tests and the false-discovery rule need the whole table's scores, and an n x d
   matrix is small (10M x 8 float64: 640 MB).
6. **explain and write** (map): each partition explains its flagged rows and returns
   them with their original columns; per-partition score files are written into a
   temporary sibling directory that is renamed into place only when every partition
   succeeded.

Fail closed: an error in any task makes the scan *failed* and nothing is written: a
detector that raises is a :class:`~poisonguard.errors.DetectorFailedError`, a worker
that dies or any other failure of a partition's task a
:class:`~poisonguard.errors.PartitionFailedError` naming the partition (both exit 5);
an unreadable partition or bad column roles are input errors (exit 2).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .._io import atomic_write_table, table_bytes
from ..detectors import BaseDetector, resolve_settings
from ..encoding import TableEncoder
from ..errors import DetectorFailedError, InputError, PartitionFailedError, PoisonguardError
from ..scan._ensemble import AUTO_THRESHOLD, LABEL_FDR, Combined, calibrate, combine, flag_top
from ..scan._scan import (
    FIT_SAMPLE_ROWS,
    label_noise_rate,
    sample_allocation,
    sample_cutoffs,
    sample_keys,
    select_sample,
)
from ..validation import PreparedTable, check_count
from ._partitions import PartitionedDataset, is_partitioned, resolve_partitions
from ._stats import (
    DatasetStats,
    PartitionStats,
    Roles,
    build_encoder,
    check_roles,
    label_codes,
    partition_stats,
    read_partition,
    reduce_stats,
)

__all__ = ["scan_dask", "DaskScanResult", "DEFAULT_SAMPLE_ROWS", "resolve_dataset"]

log = logging.getLogger(__name__)

#: rows the detectors are fitted on: the local scan's (see poisonguard.scan._scan.FIT_SAMPLE_ROWS)
DEFAULT_SAMPLE_ROWS = FIT_SAMPLE_ROWS
#: rows of the summary's "top" list (as the local scan)
TOP = 10

ProgressCallback = Callable[[str, int, int], None]


# ----------------------------------------------------------------------------- data
def resolve_dataset(data: str | Path) -> PartitionedDataset:
    """A single Parquet file, a directory or a glob, as one partitioned dataset.

    Raises
    ------
    InputError
        Nothing found, a non-Parquet file, or a single file that is not Parquet.
    """
    if is_partitioned(data):
        return resolve_partitions(data)
    p = Path(data)
    if not p.exists():
        raise InputError(f"file not found: {p}")
    if p.suffix.lower() not in (".parquet", ".pq"):
        raise InputError(f"the Dask engine reads Parquet (a file, a directory or a glob), got {p}")
    return PartitionedDataset(root=p.parent, files=(p,), spec=str(p))


@dataclass(frozen=True)
class Coding:
    """What every worker needs to turn a partition into ``(X, y)``: roles, encoder, classes."""

    roles: Roles
    encoder: TableEncoder
    classes: np.ndarray
    labels_as_text: bool

    def encode(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        # float32, as the local scan encodes: the detectors see the same matrix
        X = self.encoder.transform(df, dtype=np.float32)
        y = None
        if self.roles.label is not None:
            y = label_codes(df[self.roles.label], self.classes, as_text=self.labels_as_text)
        return X, y


@dataclass(frozen=True)
class SampleBlock:
    """One partition's sample candidates: local row positions, their keys, encoded rows, class codes."""

    index: int
    positions: np.ndarray
    keys: np.ndarray
    X: np.ndarray
    y: np.ndarray | None


@dataclass(frozen=True)
class ScoreBlock:
    """One partition's raw scores (NaN at its sample rows, which the client fills in)."""

    index: int
    raw: np.ndarray
    y: np.ndarray | None


@dataclass(frozen=True)
class FinishRequest:
    """What the client sends back to a partition: its combined results and the rows to explain.

    ``explain`` are the flagged rows, ``top`` the partition's rows among the most
    suspicious of the dataset; ``rows`` those of both that are not sample rows (the
    worker explains them), with their strengths (float64, as the local scan has them).
    """

    index: int
    offset: int
    suspicion: np.ndarray
    flagged: np.ndarray
    raw: np.ndarray
    explain: np.ndarray
    top: np.ndarray
    rows: np.ndarray
    strengths: np.ndarray
    sample_positions: np.ndarray
    scores_dir: str | None
    scores_frame: bool


@dataclass(frozen=True)
class FinishBlock:
    """A partition's outputs: flagged rows (original columns and reasons), top rows, per-source counts."""

    index: int
    suspicious: pd.DataFrame
    top: pd.DataFrame
    per_source: pd.DataFrame
    scores: pd.DataFrame | None


# ----------------------------------------------------------------------------- result
@dataclass
class DaskScanResult:
    """The outcome of :func:`scan_dask`: the same summary as the local scan, rows in dataset order.

    Attributes
    ----------
    suspicion, flagged : ndarray, shape (n_rows,)
        As :class:`poisonguard.scan.ScanResult`, over every row of the dataset.
    detector_scores : DataFrame
        Raw score of each detector (float64, one column per detector).
    suspicious : DataFrame
        The flagged rows with their original columns plus ``row``, ``suspicion``,
        ``detectors`` and ``reason``, most suspicious first (what the local scan writes).
    engine : dict
        Partitions, workers, sample rows and scheduler.
    """

    detectors: list[str]
    label: str | None
    n_features: int
    suspicion: np.ndarray = field(repr=False)
    flagged: np.ndarray = field(repr=False)
    detector_scores: pd.DataFrame = field(repr=False)
    suspicious: pd.DataFrame = field(repr=False)
    flag_rule: str
    threshold: float
    flagged_by_detector: dict[str, int]
    per_source: pd.DataFrame = field(repr=False)
    presence: list[dict[str, Any]]
    detector_info: dict[str, dict[str, Any]]
    top: list[dict[str, Any]]
    engine: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str | None] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return "failed" if self.failures else "ok"

    @property
    def n_rows(self) -> int:
        return int(self.suspicion.shape[0])

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    def summary(self) -> dict[str, Any]:
        """The local scan's JSON summary (same keys) plus ``engine``."""
        return {
            "status": self.status,
            "rows": self.n_rows,
            "flagged": self.n_flagged,
            "flag_rate": round(self.n_flagged / max(self.n_rows, 1), 6),
            "flag_rule": self.flag_rule,
            "threshold": round(float(self.threshold), 6),
            "label": self.label,
            "features": self.n_features,
            "detectors": self.detectors,
            "failures": dict(self.failures),
            "flagged_by_detector": dict(self.flagged_by_detector),
            "per_source": [
                {"source": str(r.source), "rows": int(r.rows), "flagged": int(r.flagged),
                 "flag_rate": round(float(r.flag_rate), 6)}
                for r in self.per_source.itertuples(index=False)
            ],
            "per_class": list(self.presence),
            "detector_info": self.detector_info,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "warnings": list(self.warnings),
            "top": list(self.top),
            "engine": dict(self.engine),
            "outputs": dict(self.outputs),
        }


# ----------------------------------------------------------------------------- worker tasks
def _task_sample(index: int, path: str, coding: Coding, offset: int, cutoffs: np.ndarray, seed: int) -> SampleBlock:
    """Encode one partition and keep its sample candidates: rows whose key is under their class's cut-off."""
    df = read_partition(path)
    X, y = coding.encode(df)
    keys = sample_keys(offset + np.arange(X.shape[0], dtype=np.int64), seed)
    codes = np.zeros(X.shape[0], dtype=np.int64) if y is None else y
    pos = np.flatnonzero(keys < cutoffs[codes])
    return SampleBlock(index=index, positions=pos.astype(np.int64), keys=keys[pos], X=X[pos],
                       y=None if y is None else y[pos])


def _task_score(index: int, path: str, coding: Coding, fitted: Mapping[str, BaseDetector],
                sample_positions: np.ndarray) -> ScoreBlock:
    """Score one partition's rows that are not in the sample (the query path of every detector)."""
    df = read_partition(path)
    X, y = coding.encode(df)
    keep = np.ones(X.shape[0], dtype=bool)
    keep[sample_positions] = False
    raw = np.full((X.shape[0], len(fitted)), np.nan, dtype=np.float64)
    if keep.any():
        Xq, yq = X[keep], (None if y is None else y[keep])
        with threadpool_limits(limits=1, user_api="blas"):
            for j, (name, det) in enumerate(fitted.items()):
                try:
                    raw[keep, j] = det.score_samples(Xq, yq)
                except Exception as exc:  # fail closed: the partition, hence the scan, fails
                    raise DetectorFailedError(
                        f"detector {name} failed on partition {path}: {type(exc).__name__}: {exc}") from exc
    return ScoreBlock(index=index, raw=raw, y=y)


def _task_finish(path: str, coding: Coding, fitted: Mapping[str, BaseDetector], req: FinishRequest) -> FinishBlock:
    """Explain one partition's flagged and top rows (not the sample's: the client does those), write its scores."""
    df = read_partition(path)
    roles = coding.roles
    names = list(fitted)
    reasons = np.full(df.shape[0], "", dtype=object)
    row_detectors = np.full(df.shape[0], "", dtype=object)
    in_sample = np.zeros(df.shape[0], dtype=bool)
    in_sample[req.sample_positions] = True
    rows = req.rows
    if rows.size:
        sub = df.iloc[rows]
        X, y = coding.encode(sub)
        r_reasons, r_det = explain_rows(fitted, X, y, {n: req.strengths[:, j] for j, n in enumerate(names)},
                                        {n: req.raw[rows, j].astype(np.float64) for j, n in enumerate(names)},
                                        coding, sub)
        reasons[rows], row_detectors[rows] = r_reasons, r_det
    glob = req.offset + np.arange(df.shape[0], dtype=np.int64)
    flagged_rows = req.explain
    sus = df.iloc[flagged_rows].copy()
    sus.insert(0, "row", glob[flagged_rows])
    sus["suspicion"] = req.suspicion[flagged_rows]
    sus["detectors"] = row_detectors[flagged_rows]
    sus["reason"] = reasons[flagged_rows]
    top = pd.DataFrame({"row": glob[req.top], "position": req.top, "detectors": row_detectors[req.top],
                        "reason": reasons[req.top]})
    if roles.id_col is not None:
        top["id"] = df[roles.id_col].to_numpy()[req.top]
    if roles.label is not None:
        top["label"] = df[roles.label].to_numpy()[req.top]
    if roles.source_col is not None:
        src = df[roles.source_col].astype("string").fillna("<missing>").to_numpy(dtype=object)
        per_source = (pd.DataFrame({"source": src, "flagged": req.flagged})
                      .groupby("source", sort=True)["flagged"].agg(["size", "sum"]).reset_index())
        per_source.columns = ["source", "rows", "flagged"]
    else:
        per_source = pd.DataFrame(columns=["source", "rows", "flagged"])
    scores = None
    if req.scores_dir is not None or req.scores_frame:
        scores = _scores_frame(df, roles, glob, req, names)
    if req.scores_dir is not None:
        part = Path(req.scores_dir) / f"part-{req.index:05d}.parquet"
        part.write_bytes(table_bytes(scores, part))
        scores = None
    return FinishBlock(index=req.index, suspicious=sus, top=top, per_source=per_source, scores=scores)


def _scores_frame(df: pd.DataFrame, roles: Roles, glob: np.ndarray, req: FinishRequest, names: list[str]) -> pd.DataFrame:
    """The local scan's scores frame (row, id, source, suspicion, flagged, one column per detector)."""
    out = pd.DataFrame({"row": glob})
    if roles.id_col is not None:
        out["id"] = df[roles.id_col].to_numpy()
    if roles.source_col is not None:
        out["source"] = df[roles.source_col].astype("string").fillna("<missing>").to_numpy(dtype=object)
    out["suspicion"] = req.suspicion
    out["flagged"] = req.flagged
    for j, n in enumerate(names):
        out[n] = req.raw[:, j].astype(np.float64)
    return out


def explain_rows(fitted: Mapping[str, BaseDetector], X: np.ndarray, y: np.ndarray | None,
                 strengths: Mapping[str, np.ndarray], raw: Mapping[str, np.ndarray], coding: Coding,
                 frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Reasons and driving detectors for every row of ``X``, through the local scan's explainer."""
    from ..scan._scan import _explain

    n = X.shape[0]
    reasons, row_detectors = [""] * n, [""] * n
    table = PreparedTable(frame=frame, features=list(coding.roles.features), label=coding.roles.label, y=y,
                          classes=coding.classes)
    _explain(fitted, X, y, strengths, np.arange(n), raw, table, coding.encoder, reasons, row_detectors)
    return reasons, row_detectors


# ----------------------------------------------------------------------------- client steps
def _class_totals(stats: DatasetStats) -> np.ndarray:
    """Rows of each class in the whole dataset (one class for an unlabelled one)."""
    if stats.roles.label is not None:
        return stats.class_counts.sum(axis=0).astype(np.int64)
    return np.array([stats.n_rows], dtype=np.int64)


def _raise_failure(exc: Exception, step: str, where: str | None) -> None:
    """Our own errors keep their type and exit code (bad input 2, a detector 5); any other
    failure of a task (a dead worker, an out-of-memory kill) fails the scan (exit 5)."""
    if isinstance(exc, PoisonguardError):
        raise exc
    part = f"partition {where}" if where else "a partition"
    raise PartitionFailedError(f"scan failed while {step}: {part} failed on the Dask cluster "
                               f"({type(exc).__name__}: {exc}); nothing was written") from exc


def _gather(client: Any, futures: list[Any], step: str, progress: ProgressCallback | None,
            on_result: Callable[[Any], None], where: list[str] | None = None) -> None:
    """Wait for ``futures`` in completion order, hand each result to ``on_result``; fail on the first error.

    ``where[i]`` names the partition of ``futures[i]`` in the error.
    """
    from distributed import as_completed

    done = 0
    names = {f.key: w for f, w in zip(futures, where)} if where is not None else {}
    if progress:
        progress(step, 0, len(futures))
    current = None
    try:
        for fut in as_completed(futures):
            current = fut
            if fut.status == "error":
                exc = fut.exception()
                raise exc if isinstance(exc, BaseException) else RuntimeError(str(exc))
            on_result(fut.result())
            fut.release()
            done += 1
            if progress:
                progress(step, done, len(futures))
    except Exception as exc:
        client.cancel(futures)
        _raise_failure(exc, step, names.get(current.key) if current is not None else None)
    except BaseException:  # an interrupt: stop the cluster's work and let it through unchanged
        client.cancel(futures)
        raise


def _choose_detectors(detectors: str | Sequence[str] | None, settings: Mapping[str, Mapping[str, Any]] | None,
                      labeled: bool, random_state: int | None) -> list[BaseDetector]:
    names = detectors.split(",") if isinstance(detectors, str) else detectors
    names = [n.strip() for n in names if n.strip()] if names is not None else None
    chosen = resolve_settings(names, settings, labeled=labeled)
    if random_state is not None:
        for det in chosen:
            if "random_state" in det.get_params() and "random_state" not in (settings or {}).get(det.name, {}):
                det.set_params(random_state=random_state)
    return chosen


@dataclass(frozen=True)
class _Flags:
    strengths: dict[str, np.ndarray]
    combined: Combined | None
    suspicion: np.ndarray
    flagged: np.ndarray
    threshold: float
    rule_text: str


def _flag(raw: Mapping[str, np.ndarray], fitted: Mapping[str, BaseDetector], y: np.ndarray | None,
          n_classes: int | None, rule: str, rule_arg: Any) -> _Flags:
    """Calibrate, presence tests, combine and the flag rule over every row (as the local scan's flag step)."""
    n = next(iter(raw.values())).shape[0]
    kinds = {k: fitted[k].score_kind for k in raw}
    families = {k: fitted[k].family for k in raw}
    strengths = {k: calibrate(raw[k], kinds[k]) for k in raw}
    combined = combine(strengths, kinds, families, raw=raw, y=y, n_classes=n_classes,
                       label_noise_rate=label_noise_rate(fitted, kinds, families))
    strengths = combined.strengths
    suspicion = combined.suspicion
    if rule == "auto":
        flagged = combined.auto_flags
        rule_text = (f"auto (label: per-class presence test, then FDR {LABEL_FDR} within poisoned classes; "
                     f"other detectors: their presence test, else strength >= {AUTO_THRESHOLD})")
    elif rule == "contamination":
        flagged = flag_top(suspicion, int(np.ceil(rule_arg * n)))
        rule_text = f"contamination={rule_arg}"
    else:
        flagged = flag_top(suspicion, min(rule_arg, n))
        rule_text = f"top={rule_arg}"
    threshold = float(suspicion[flagged].min()) if flagged.any() else 1.0
    return _Flags(strengths=dict(strengths), combined=combined, suspicion=suspicion, flagged=flagged,
                  threshold=threshold, rule_text=rule_text)


def _tmp_dir_for(final: Path) -> Path:
    return final.parent / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.pgtmp.d"


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move the finished directory ``tmp`` into place; an older ``final`` is removed only after."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.pgold.d"
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def is_directory_output(path: str | Path) -> bool:
    """Whether ``--scores`` names a directory (one Parquet file per partition): an existing
    directory or a path ending in ``/``; anything else is one file, CSV or Parquet by suffix."""
    return Path(path).is_dir() or str(path).endswith(("/", os.sep))


# ----------------------------------------------------------------------------- the scan
def scan_dask(
    data: str | Path,
    *,
    client: Any,
    label: str | None = None,
    id_col: str | None = None,
    source_col: str | None = None,
    features: str | Sequence[str] | None = None,
    detectors: str | Sequence[str] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    contamination: str | float | None = "auto",
    top: int | None = None,
    random_state: int | None = 0,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    out: str | Path | None = None,
    scores: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> DaskScanResult:
    """Scan a partitioned Parquet dataset on a Dask cluster (see the module docstring).

    Parameters
    ----------
    data : path
        A Parquet file, a directory of Parquet files or a glob (dataset order:
        :func:`poisonguard.distributed.resolve_partitions`).
    client : distributed.Client
        The cluster to run on (:func:`poisonguard.distributed.dask_client`).
    label, id_col, source_col, features, detectors, settings, contamination, top, random_state
        As :func:`poisonguard.scan.scan`.
    sample_rows : int, default=DEFAULT_SAMPLE_ROWS
        Rows the detectors are fitted on (a stratified sample); with fewer rows in the
        dataset every row is a sample row and the result is the local scan's.
    out : path, optional
        Write the flagged rows here (CSV or Parquet by suffix), atomically.
    scores : path, optional
        Write every row's scores: one file (CSV or Parquet by suffix), or a directory of
        one Parquet file per partition (a name without a table suffix), written by the
        workers into a temporary sibling directory that is renamed into place at the end
        (an existing directory or a path ending in ``/``; workers must share the
        client's filesystem, else give a single file).

    Returns
    -------
    DaskScanResult

    Raises
    ------
    InputError
        Unreadable data or bad column roles (exit 2).
    DetectorFailedError
        A detector or a worker failed (exit 5); nothing is written.
    """
    from ..scan._scan import _info, _parse_rule, _presence_info

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    rule, rule_arg = _parse_rule(contamination, top)
    sample_rows = check_count(sample_rows, "sample_rows", minimum=100)
    dataset = resolve_dataset(data)
    files = [str(f) for f in dataset.files]
    roles = check_roles(_schema_columns(files[0]), label=label, id_col=id_col, source_col=source_col,
                        features=features, where=dataset.spec)
    chosen = _choose_detectors(detectors, settings, labeled=label is not None, random_state=random_state)
    seed = int(random_state or 0)
    job = _Job(client=client, files=files, progress=progress, timings=timings)

    stats, coding = _summarise(job, roles, seed, where=dataset.spec)
    coding_f = job.broadcast(coding)
    sample = _draw_sample(job, stats, coding_f, sample_rows, seed)
    fitted, raw_sample = _fit_on_sample(job, chosen, sample)
    names = list(fitted)
    fitted_f = job.broadcast(fitted)
    raw, y_all = _score_partitions(job, stats, coding_f, fitted_f, sample, raw_sample, names)
    del raw_sample

    t = time.perf_counter()
    if progress:
        progress("combine", 0, 1)
    flags = _flag({k: raw[:, j].astype(np.float64) for j, k in enumerate(names)}, fitted, y_all,
                  len(stats.classes) if label is not None else None, rule, rule_arg)
    timings["combine"] = time.perf_counter() - t

    t = time.perf_counter()
    top_rows = np.argsort(-flags.suspicion, kind="stable")[:TOP]
    outputs = {"suspicious": str(out) if out is not None else None, "scores": str(scores) if scores is not None else None}
    with _ScoresTarget(scores) as target:
        finished = _finish_partitions(job, stats, coding_f, fitted_f, sample, raw, flags, top_rows, names, target)
        by_row = _explain_sample(fitted, coding, sample, raw, flags, top_rows, names)
        suspicious = _assemble_suspicious(finished, by_row)
        top_list = _assemble_top(finished, by_row, flags, top_rows)
        per_source = _assemble_sources(finished)
        timings["explain"] = time.perf_counter() - t
        if out is not None:
            atomic_write_table(suspicious, Path(out))
        target.commit([finished[i].scores for i in sorted(finished)])
    timings["total"] = time.perf_counter() - t0
    if progress:
        progress("done", 1, 1)
    presence_table = PreparedTable(frame=pd.DataFrame(), features=list(roles.features), label=label, y=y_all,
                                   classes=stats.classes)
    return DaskScanResult(
        detectors=names, label=label, n_features=len(roles.features),
        suspicion=flags.suspicion, flagged=flags.flagged,
        detector_scores=pd.DataFrame(raw, columns=names), suspicious=suspicious,
        flag_rule=flags.rule_text, threshold=flags.threshold,
        flagged_by_detector={k: int(((flags.strengths[k] >= AUTO_THRESHOLD) & flags.flagged).sum()) for k in names},
        per_source=per_source,
        presence=_presence_info(flags.combined, presence_table, flags.flagged),
        detector_info=_info(fitted, flags.combined), top=top_list,
        engine={"name": "dask", "partitions": len(files), "workers": len(client.scheduler_info().get("workers", {})),
                "sample_rows": int(sample.X.shape[0]), "scheduler": str(client.scheduler.address)},
        timings=timings, outputs=outputs,
    )


# ----------------------------------------------------------------------------- the scan's steps
@dataclass
class _Job:
    """The cluster, the partition files in dataset order, the progress callback and the timings."""

    client: Any
    files: list[str]
    progress: ProgressCallback | None
    timings: dict[str, float]

    def broadcast(self, obj: Any) -> Any:
        """Ship ``obj`` to every worker once; tasks take the returned future."""
        [fut] = self.client.scatter([obj], broadcast=True)
        return fut

    def map(self, step: str, func: Callable[..., Any], args: list[tuple[Any, ...]], on_result: Callable[[Any], None]) -> None:
        """Run ``func(*a)`` for each ``a`` on the workers and hand the results to ``on_result``; time the step."""
        t = time.perf_counter()
        futs = [self.client.submit(func, *a, pure=False) for a in args]
        # one task per partition, in dataset order: a failure names its partition
        _gather(self.client, futs, step, self.progress, on_result, self.files if len(args) == len(self.files) else None)
        self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - t


@dataclass(frozen=True)
class _Sample:
    """The fit sample: per partition its local row positions, and the encoded rows in dataset order."""

    positions: dict[int, np.ndarray]
    global_rows: np.ndarray
    X: np.ndarray
    y: np.ndarray | None


def _schema_columns(path: str) -> list[str]:
    """The first partition's columns, read from its Parquet footer alone."""
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        raise InputError(f"cannot read partition {path} as Parquet: {type(exc).__name__}: {exc}") from exc
    return [str(c) for c in names if c != "__index_level_0__"]


def _summarise(job: _Job, roles: Roles, seed: int, *, where: str) -> tuple[DatasetStats, Coding]:
    parts: list[PartitionStats] = []
    job.map("summarise", partition_stats, [(i, f, roles, seed) for i, f in enumerate(job.files)], parts.append)
    stats = reduce_stats(parts, roles, where=where)
    coding = Coding(roles=roles, encoder=build_encoder(stats), classes=stats.classes,
                    labels_as_text=stats.labels_as_text)
    return stats, coding


def _draw_sample(job: _Job, stats: DatasetStats, coding_f: Any, sample_rows: int, seed: int) -> _Sample:
    """The local scan's fit sample (:func:`poisonguard.scan._scan.select_sample`), from each partition's candidates."""
    totals = _class_totals(stats)
    take = sample_allocation(totals, sample_rows)
    cutoffs = sample_cutoffs(totals, take)
    offsets = stats.offsets
    blocks: dict[int, SampleBlock] = {}
    job.map("sample", _task_sample, [(i, f, coding_f, int(offsets[i]), cutoffs, seed) for i, f in enumerate(job.files)],
            lambda b: blocks.__setitem__(b.index, b))
    order = range(len(job.files))  # dataset order: equal keys go to the earlier row, as in the local scan
    keys = np.concatenate([blocks[i].keys for i in order])
    part = np.concatenate([np.full(blocks[i].positions.size, i, dtype=np.int64) for i in order])
    codes = (np.concatenate([blocks[i].y for i in order]) if stats.roles.label is not None
             else np.zeros(keys.size, dtype=np.int64))
    keep = select_sample(keys, codes, take)
    X = np.concatenate([blocks[i].X for i in order])[keep]
    positions = {i: np.zeros(0, dtype=np.int64) for i in range(len(job.files))}
    starts = np.concatenate([[0], np.cumsum([blocks[i].positions.size for i in order])])
    for i in order:
        mine = keep[part[keep] == i] - starts[i]
        positions[i] = blocks[i].positions[mine]
    return _Sample(
        positions=positions,
        global_rows=np.concatenate([offsets[i] + positions[i] for i in order]),
        X=X,
        y=codes[keep] if stats.roles.label is not None else None,
    )


def _fit_on_sample(job: _Job, chosen: Sequence[BaseDetector], sample: _Sample) -> tuple[dict[str, BaseDetector], dict[str, np.ndarray]]:
    """Fit every detector on the sample and score the sample's rows on the fit path; a crash fails the scan."""
    fitted: dict[str, BaseDetector] = {}
    raw: dict[str, np.ndarray] = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for i, det in enumerate(chosen):
            if job.progress:
                job.progress(f"fit {det.name}", i, len(chosen))
            t = time.perf_counter()
            try:
                det.fit(sample.X, sample.y)
                raw[det.name] = det.score_samples(sample.X, sample.y)
            except Exception as exc:  # fail closed
                raise DetectorFailedError(f"scan failed, detector {det.name} crashed while fitting on the "
                                          f"sample: {type(exc).__name__}: {exc}") from exc
            fitted[det.name] = det
            job.timings[f"fit {det.name}"] = time.perf_counter() - t
    return fitted, raw


def _score_partitions(job: _Job, stats: DatasetStats, coding_f: Any, fitted_f: Any, sample: _Sample,
                      raw_sample: Mapping[str, np.ndarray], names: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Every row's raw scores (float64, n x d) and class codes, the sample's from the fit path."""
    n, offsets = stats.n_rows, stats.offsets
    raw = np.empty((n, len(names)), dtype=np.float64)
    y_all = np.empty(n, dtype=np.int64) if stats.roles.label is not None else None
    raw[sample.global_rows] = np.stack([raw_sample[k] for k in names], axis=1)

    def place(b: ScoreBlock) -> None:
        lo, hi = offsets[b.index], offsets[b.index] + b.raw.shape[0]
        keep = ~np.isnan(b.raw[:, 0])  # NaN marks the sample's rows, scored on the client
        raw[lo:hi][keep] = b.raw[keep]
        if y_all is not None and b.y is not None:
            y_all[lo:hi] = b.y

    job.map("score", _task_score, [(i, f, coding_f, fitted_f, sample.positions[i]) for i, f in enumerate(job.files)],
            place)
    return raw, y_all


class _ScoresTarget:
    """Where ``--scores`` goes: one file, or a directory filled by the workers in a temporary sibling.

    Used as a context manager: the temporary directory is removed unless :meth:`commit`
    renamed it into place, so a failed scan leaves nothing behind.
    """

    def __init__(self, scores: str | Path | None) -> None:
        self.path = Path(scores) if scores is not None else None
        # decided before Path() drops a trailing "/"
        self.tmp_dir = _tmp_dir_for(self.path) if scores is not None and self.path is not None and is_directory_output(scores) else None

    @property
    def wants_frames(self) -> bool:
        return self.path is not None and self.tmp_dir is None

    def __enter__(self) -> "_ScoresTarget":
        if self.tmp_dir is not None:
            try:
                self.tmp_dir.mkdir(parents=True)
            except OSError as exc:
                raise InputError(f"cannot write {{scores}} {self.path}: {exc.strerror or exc}", params=["scores"]) from exc
        return self

    def commit(self, frames: list[pd.DataFrame | None]) -> None:
        if self.path is None:
            return
        if self.tmp_dir is not None:
            _replace_dir(self.tmp_dir, self.path)
            self.tmp_dir = None
        else:
            atomic_write_table(pd.concat(frames, ignore_index=True), self.path)

    def __exit__(self, *exc: Any) -> None:
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


def _finish_partitions(job: _Job, stats: DatasetStats, coding_f: Any, fitted_f: Any, sample: _Sample, raw: np.ndarray,
                       flags: _Flags, top_rows: np.ndarray, names: list[str], target: _ScoresTarget) -> dict[int, FinishBlock]:
    """Each partition explains its flagged and top rows (not the sample's) and writes its scores."""
    args = []
    for i, f in enumerate(job.files):
        lo, hi = int(stats.offsets[i]), int(stats.offsets[i] + stats.rows[i])
        fl = flags.flagged[lo:hi]
        explain = np.flatnonzero(fl)
        top_here = np.sort(top_rows[(top_rows >= lo) & (top_rows < hi)] - lo)
        rows = np.setdiff1d(np.union1d(explain, top_here), sample.positions[i])
        req = FinishRequest(
            index=i, offset=lo, suspicion=flags.suspicion[lo:hi], flagged=fl, raw=raw[lo:hi],
            explain=explain, top=top_here, rows=rows,
            strengths=np.stack([flags.strengths[k][lo + rows] for k in names], axis=1),
            sample_positions=sample.positions[i],
            scores_dir=str(target.tmp_dir) if target.tmp_dir is not None else None, scores_frame=target.wants_frames,
        )
        args.append((f, coding_f, fitted_f, req))
    finished: dict[int, FinishBlock] = {}
    job.map("explain", _task_finish, args, lambda b: finished.__setitem__(b.index, b))
    return finished


def _explain_sample(fitted: Mapping[str, BaseDetector], coding: Coding, sample: _Sample, raw: np.ndarray,
                    flags: _Flags, top_rows: np.ndarray, names: list[str]) -> dict[int, tuple[str, str]]:
    """Reasons for the sample's flagged and top rows, on the matrix the detectors were fitted on (fit path)."""
    from ..scan._scan import _explain

    rows = np.flatnonzero(flags.flagged[sample.global_rows] | np.isin(sample.global_rows, top_rows))
    if rows.size == 0:
        return {}
    n = sample.X.shape[0]
    reasons, dets = [""] * n, [""] * n
    table = PreparedTable(frame=pd.DataFrame(index=pd.RangeIndex(n)), features=list(coding.roles.features),
                          label=coding.roles.label, y=sample.y, classes=coding.classes)
    _explain(fitted, sample.X, sample.y, {k: flags.strengths[k][sample.global_rows] for k in names}, rows,
             {k: raw[sample.global_rows, j].astype(np.float64) for j, k in enumerate(names)}, table, coding.encoder,
             reasons, dets)
    return {int(sample.global_rows[r]): (reasons[r], dets[r]) for r in rows}


def _assemble_suspicious(finished: Mapping[int, FinishBlock], by_row: Mapping[int, tuple[str, str]]) -> pd.DataFrame:
    frames = [finished[i].suspicious for i in sorted(finished)]
    sus = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(sus) and by_row:
        hit = sus["row"].isin(list(by_row))
        if hit.any():
            sus.loc[hit, "reason"] = [by_row[int(r)][0] for r in sus.loc[hit, "row"]]
            sus.loc[hit, "detectors"] = [by_row[int(r)][1] for r in sus.loc[hit, "row"]]
    if len(sus):
        # most suspicious first; ties in dataset order (the local scan's stable order)
        sus = sus.sort_values(["suspicion", "row"], ascending=[False, True], kind="stable").reset_index(drop=True)
    return sus


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def _assemble_top(finished: Mapping[int, FinishBlock], by_row: Mapping[int, tuple[str, str]], flags: _Flags,
                  top_rows: np.ndarray) -> list[dict[str, Any]]:
    tops = pd.concat([finished[i].top for i in sorted(finished)], ignore_index=True)
    info = {int(r.row): r for r in tops.itertuples(index=False)}
    out = []
    for g in top_rows:
        r = info.get(int(g))
        reason, dets = by_row.get(int(g), (getattr(r, "reason", ""), getattr(r, "detectors", "")))
        entry: dict[str, Any] = {"row": int(g), "suspicion": round(float(flags.suspicion[g]), 4),
                                 "flagged": bool(flags.flagged[g]), "detectors": dets, "reason": reason}
        if r is not None and hasattr(r, "id"):
            entry["id"] = _jsonable(r.id)
        if r is not None and hasattr(r, "label"):
            entry["label"] = _jsonable(r.label)
        out.append(entry)
    return out


def _assemble_sources(finished: Mapping[int, FinishBlock]) -> pd.DataFrame:
    frames = [finished[i].per_source for i in sorted(finished) if len(finished[i].per_source)]
    if not frames:
        return pd.DataFrame(columns=["source", "rows", "flagged", "flag_rate"])
    g = pd.concat(frames).groupby("source", sort=True)[["rows", "flagged"]].sum().reset_index()
    g["rows"] = g["rows"].astype(int)
    g["flagged"] = g["flagged"].astype(int)
    g["flag_rate"] = g["flagged"] / g["rows"]
    return g.sort_values("flag_rate", ascending=False, kind="stable").reset_index(drop=True)
