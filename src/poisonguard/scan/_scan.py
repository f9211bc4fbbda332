"""``poisonguard.scan``: rank the rows of a training table by how likely they are poisoned."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .._io import atomic_write_table
from ..detectors import BaseDetector, Explanation, resolve_settings
from ..detectors._neighbors import release as release_neighbours
from ..detectors._neighbors import release_query_graphs
from ..encoding import TableEncoder
from ..errors import DetectorFailedError, InputError
from ..validation import PreparedTable, check_count, check_fraction, check_output_columns, prepare_table
from ._ensemble import AUTO_THRESHOLD, LABEL_FDR, Combined, calibrate, combine, flag_top

__all__ = [
    "scan",
    "ScanResult",
    "AUTO_THRESHOLD",
    "ProgressCallback",
    "FIT_SAMPLE_ROWS",
    "label_noise_rate",
    "sample_keys",
    "sample_allocation",
    "sample_cutoffs",
    "select_sample",
]

log = logging.getLogger(__name__)

#: ``progress(stage, done, total)`` is called as the scan advances
ProgressCallback = Callable[[str, int, int], None]
#: Above this many rows the detectors are fitted on a stratified sample of this size
#: and every other row is scored against them (the *query path* of the detector
#: contract): the fit costs stay bounded (the neighbour vote's reference, the fold
#: models, the forest), and the local scan and the Dask engine
#: (:mod:`poisonguard.distributed`) fit on the *same* rows, so they give the same
#: result by construction. The neighbour vote is the part that gains from a denser
#: reference; its query cost grows ~ log of this number.
FIT_SAMPLE_ROWS = 200_000
_PLACEHOLDER = re.compile(r"\{(label|feature):(\d+)\}")


@dataclass
class ScanResult:
    """Everything a scan found, in input row order.

    Attributes
    ----------
    suspicion : ndarray of float, shape (n_rows,)
        Combined suspicion in [0, 1], for ranking; which rows are flagged is decided by
        the presence tests and group rules (see ``flag_rule``), not by one cut.
    flagged : ndarray of bool
        Rows flagged by the rule in ``flag_rule``.
    reasons : list of str
        Per row: the detectors' evidence, ``""`` for rows not explained.
    row_detectors : list of str
        Per row: comma-separated names of the detectors behind the suspicion.
    detector_scores : DataFrame
        Raw score of each detector (one column per detector).
    strengths : DataFrame
        Calibrated strength in [0, 1] of each detector.
    failures : dict
        Detector name (or ``"explain"``) to error message for steps that crashed. Any
        failure makes ``status`` "failed", which blocks every gate.
    presence : list of dict
        Per class (labelled scans): ``class``, ``rows``, ``flagged`` and the label
        presence test (``poisoned``, ``statistic``, ``p_value``, ``level``, ``detail``).
        The label group flags rows only in classes judged poisoned.
    """

    table: PreparedTable = field(repr=False)
    detectors: list[str]
    suspicion: np.ndarray = field(repr=False)
    flagged: np.ndarray = field(repr=False)
    reasons: list[str] = field(repr=False)
    row_detectors: list[str] = field(repr=False)
    detector_scores: pd.DataFrame = field(repr=False)
    strengths: pd.DataFrame = field(repr=False)
    flag_rule: str
    threshold: float
    failures: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    detector_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    candidates: np.ndarray | None = field(default=None, repr=False)
    presence: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``"ok"``, or ``"failed"`` when any detector crashed."""
        return "failed" if self.failures else "ok"

    @property
    def n_rows(self) -> int:
        return int(self.suspicion.shape[0])

    @property
    def n_flagged(self) -> int:
        return int(self.flagged.sum())

    def raise_for_status(self) -> "ScanResult":
        """Raise :class:`DetectorFailedError` when the scan failed, else return self."""
        if self.failures:
            detail = "; ".join(f"{k}: {v}" for k, v in self.failures.items())
            raise DetectorFailedError(f"scan failed, detector(s) crashed: {detail}")
        return self

    # ------------------------------------------------------------------ frames
    def scores_frame(self) -> pd.DataFrame:
        """Every input row in input order: row, id, suspicion, flagged and per-detector scores."""
        out = pd.DataFrame({"row": np.arange(self.n_rows)})
        if self.table.ids is not None:
            out["id"] = self.table.ids
        if self.table.sources is not None:
            out["source"] = self.table.sources
        out["suspicion"] = self.suspicion
        out["flagged"] = self.flagged
        for name in self.detector_scores.columns:
            out[name] = self.detector_scores[name].to_numpy()
        return out

    def suspicious_frame(self) -> pd.DataFrame:
        """Flagged rows with their original columns plus suspicion, detectors and reason, most suspicious first."""
        idx = np.flatnonzero(self.flagged)
        idx = idx[np.argsort(-self.suspicion[idx], kind="stable")]
        out = self.table.frame.iloc[idx].copy()
        out.insert(0, "row", idx)
        out["suspicion"] = self.suspicion[idx]
        out["detectors"] = [self.row_detectors[i] for i in idx]
        out["reason"] = [self.reasons[i] for i in idx]
        return out.reset_index(drop=True)

    def to_csv(self, path: str | Path = "suspicious_samples.csv") -> Path:
        """Write :meth:`suspicious_frame` (CSV or Parquet by suffix), atomically."""
        self.raise_for_status()
        return atomic_write_table(self.suspicious_frame(), Path(path))

    def write_scores(self, path: str | Path) -> Path:
        """Write :meth:`scores_frame`, atomically."""
        self.raise_for_status()
        return atomic_write_table(self.scores_frame(), Path(path))

    def per_source(self) -> pd.DataFrame:
        """Rows, flagged rows and flag rate per data source (empty without a source column)."""
        if self.table.sources is None:
            return pd.DataFrame(columns=["source", "rows", "flagged", "flag_rate"])
        df = pd.DataFrame({"source": self.table.sources, "flagged": self.flagged})
        g = df.groupby("source", sort=True)["flagged"].agg(["size", "sum"]).reset_index()
        g.columns = ["source", "rows", "flagged"]
        g["flag_rate"] = g["flagged"] / g["rows"]
        return g.sort_values("flag_rate", ascending=False, kind="stable").reset_index(drop=True)

    def summary(self, *, top: int = 10) -> dict[str, Any]:
        """A JSON-ready summary: counts, rule, detectors, failures, per-source rates, top rows."""
        order = np.argsort(-self.suspicion, kind="stable")[:top]
        top_rows = []
        for i in order:
            entry: dict[str, Any] = {
                "row": int(i),
                "suspicion": round(float(self.suspicion[i]), 4),
                "flagged": bool(self.flagged[i]),
                "detectors": self.row_detectors[i],
                "reason": self.reasons[i],
            }
            if self.table.ids is not None:
                entry["id"] = _jsonable(self.table.ids[i])
            if self.table.label is not None and self.table.y is not None:
                entry["label"] = _jsonable(self.table.classes[self.table.y[i]])
            top_rows.append(entry)
        src = self.per_source()
        return {
            "status": self.status,
            "rows": self.n_rows,
            "flagged": self.n_flagged,
            "flag_rate": round(self.n_flagged / max(self.n_rows, 1), 6),
            "flag_rule": self.flag_rule,
            "threshold": round(float(self.threshold), 6),
            "label": self.table.label,
            "features": len(self.table.features),
            "detectors": self.detectors,
            "failures": dict(self.failures),
            "flagged_by_detector": {
                name: int(((self.strengths[name].to_numpy() >= AUTO_THRESHOLD) & self.flagged).sum())
                for name in self.strengths.columns
            },
            "per_source": [
                {"source": str(r.source), "rows": int(r.rows), "flagged": int(r.flagged), "flag_rate": round(float(r.flag_rate), 6)}
                for r in src.itertuples(index=False)
            ],
            "per_class": list(self.presence),
            "detector_info": self.detector_info,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "warnings": list(self.warnings),
            "top": top_rows,
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


def _parse_rule(contamination: str | float | None, top: int | None) -> tuple[str, Any]:
    if top is not None:
        if contamination not in (None, "auto"):
            raise InputError("give either {top} or {contamination}, not both", params=["top", "contamination"])
        return "top", check_count(top, "top")
    if contamination is None or contamination == "auto":
        return "auto", None
    if isinstance(contamination, str):
        try:
            contamination = float(contamination)
        except ValueError:
            raise InputError(f"{{contamination}} must be 'auto' or a fraction in (0, 1), got {contamination!r}",
                             params=["contamination"]) from None
    return "contamination", check_fraction(contamination, "contamination")


# ----------------------------------------------------------------------------- the fit sample
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
#: a class's candidate cut-off leaves room for this many standard deviations of its count
_CUTOFF_SIGMAS = 8.0


def sample_keys(rows: np.ndarray, seed: int) -> np.ndarray:
    """A uniform key in [0, 1) for each global row position: splitmix64 of ``(seed, row)``.

    The key depends on the row's position in the dataset and on the seed alone, so an
    engine that reads the rows whole and one that reads them partition by partition
    draw the same sample.
    """
    x = np.asarray(rows, dtype=np.uint64) + np.uint64(1)
    with np.errstate(over="ignore"):
        z = x * _GOLDEN + np.uint64(int(seed) % (1 << 64)) * _MIX2
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def sample_allocation(class_counts: np.ndarray, sample_rows: int) -> np.ndarray:
    """Rows of each class in a stratified sample of ``sample_rows``: each class in its share, at least 2 rows.

    Every row when the table has at most ``sample_rows`` rows.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    total = int(counts.sum())
    if total <= sample_rows:
        return counts.copy()
    frac = sample_rows / total
    return np.minimum(counts, np.maximum(2, np.round(frac * counts).astype(np.int64)))


def sample_cutoffs(class_counts: np.ndarray, take: np.ndarray) -> np.ndarray:
    """Per class, a key below which a partition keeps its rows as sample candidates.

    The ``take[c]`` rows of class ``c`` with the smallest keys are the sample; rows with
    a key under the cut-off are a superset of them unless fewer than ``take[c]`` of
    the class's rows fall under it, which the margin of ``_CUTOFF_SIGMAS`` standard
    deviations of that count makes practically impossible (:func:`select_sample` then
    takes what there is, and says so).
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    take = np.asarray(take, dtype=np.float64)
    want = take + _CUTOFF_SIGMAS * np.sqrt(take) + 2 * _CUTOFF_SIGMAS
    return np.where(take >= counts, 1.0, np.minimum(1.0, want / np.maximum(counts, 1.0)))


def select_sample(keys: np.ndarray, codes: np.ndarray, take: np.ndarray) -> np.ndarray:
    """Positions (ascending) of the ``take[c]`` rows of each class ``c`` with the smallest keys.

    ``keys`` and ``codes`` are in dataset order; equal keys go to the earlier row, so the
    choice is the same whether made over every row or over a superset of the chosen rows.
    """
    codes = np.asarray(codes)
    chosen = []
    for c, k in enumerate(np.asarray(take, dtype=np.int64).tolist()):
        rows = np.flatnonzero(codes == c)
        if rows.size < k:
            log.warning("sample: class %d has %d candidate rows, %d wanted; taking them all", c, rows.size, k)
        chosen.append(rows[np.argsort(keys[rows], kind="stable")[:k]] if rows.size > k else rows)
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def _fit_sample(y: np.ndarray | None, n_rows: int, fit_rows: int | None, seed: int) -> np.ndarray | None:
    """The rows the detectors are fitted on, or ``None`` (every row) for a table of at most ``fit_rows`` rows."""
    if fit_rows is None or n_rows <= fit_rows:
        return None
    codes = np.zeros(n_rows, dtype=np.int64) if y is None else np.asarray(y, dtype=np.int64)
    take = sample_allocation(np.bincount(codes), fit_rows)
    return select_sample(sample_keys(np.arange(n_rows), seed), codes, take)


@dataclass(frozen=True)
class _Prepared:
    """The prepare step's output: the table, its encoding, the detectors and the rule."""

    table: PreparedTable
    encoder: TableEncoder
    #: the encoded table (float32, read-only); ``None`` when the detectors are fitted on a
    #: sample: then the rows are encoded when needed (:meth:`encode_rows`), so the whole
    #: matrix is never held
    X: np.ndarray | None
    chosen: list[BaseDetector]
    rule: str
    rule_arg: Any
    candidates: np.ndarray | None
    #: rows the detectors are fitted on (ascending), ``None`` for every row (see FIT_SAMPLE_ROWS)
    sample: np.ndarray | None = None

    def encode_rows(self, rows: np.ndarray) -> np.ndarray:
        """The encoded rows at positions ``rows``, as a read-only array of their own.

        Without ``X`` they are encoded from the table: the encoding is row by row (each
        value from its own cell and the column's fitted centre and scale), so these are
        the values the whole matrix would hold.
        """
        if self.X is not None:
            return _frozen(self.X[rows])
        out = self.encoder.transform(self.table.frame, dtype=np.float32, rows=rows)
        out.flags.writeable = False
        return out


@dataclass
class _Run:
    """The run step's output: raw scores and fitted detectors, failures recorded (fail closed)."""

    raw: dict[str, np.ndarray] = field(default_factory=dict)
    fitted: dict[str, BaseDetector] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: perf_counter when the first detector started (the end of encoding)
    started: float = 0.0
    #: the matrix and class codes the detectors were fitted on (the sample's rows, or the whole table)
    fit_X: np.ndarray | None = None
    fit_y: np.ndarray | None = None


@dataclass(frozen=True)
class _Flags:
    """The flag step's output: strengths as used, suspicion, flags and the rule actually applied."""

    strengths: dict[str, np.ndarray]
    #: the tests and weights of the fusion; its per-row group tables are dropped once the flags are set
    combined: Combined | None
    suspicion: np.ndarray
    flagged: np.ndarray
    threshold: float
    rule_text: str


def scan(
    data: Any,
    *,
    label: str | None = None,
    id_col: str | None = None,
    source_col: str | None = None,
    features: str | Sequence[str] | None = None,
    detectors: str | Sequence[str] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    contamination: str | float | None = "auto",
    top: int | None = None,
    random_state: int | None = 0,
    strict: bool = True,
    candidates: Any = None,
    progress: ProgressCallback | None = None,
    fit_rows: int | None = FIT_SAMPLE_ROWS,
) -> ScanResult:
    """Scan a training table and rank its rows by how likely they are poisoned.

    Four steps: prepare (validate, encode, choose detectors), run (fit and score every
    detector; a crash is recorded, never dropped), flag (calibrate, presence tests,
    combine, apply the rule) and explain (reasons for flagged and top rows; a crash
    here fails the scan too).

    Parameters
    ----------
    data : path, DataFrame or 2-D array
        CSV or Parquet path, or an in-memory table.
    label, id_col, source_col : str, optional
        Column roles. Without ``label`` only detectors that need no label run.
    features : str or sequence of str, optional
        Feature columns (``"a,b,c"`` or a list); default all other columns.
    detectors : str or sequence of str, optional
        Registered detector names (``"knn_label,confident"`` or a list); default the
        registry's default set.
    settings : mapping, optional
        Per-detector settings by name, e.g. ``{"knn_label": {"n_neighbors": 15}}``.
    contamination : "auto" or float, default="auto"
        ``"auto"`` flags what the presence tests and group rules single out (see
        :mod:`poisonguard.scan._ensemble`; strength >= :data:`AUTO_THRESHOLD` for
        groups without a rule of their own); a float flags that fraction of rows.
    top : int, optional
        Flag exactly the ``top`` most suspicious rows instead.
    random_state : int, optional
        Seed passed to every detector that has a ``random_state`` setting.
    strict : bool, default=True
        Raise :class:`DetectorFailedError` when a detector crashes. With ``False`` the
        result is returned with ``status == "failed"``, which blocks any gate.
    candidates : array of bool, optional
        Rows that may be flagged (e.g. rows added since a trusted ledger version).
        The other rows still inform the detectors as a trusted reference but are
        never flagged; ``contamination`` and ``top`` count candidate rows only.
    progress : callable, optional
        ``progress(stage, done, total)`` for progress displays.
    fit_rows : int or None, default=FIT_SAMPLE_ROWS
        A table of more rows is scanned as the Dask engine scans it: the detectors are
        fitted on a stratified sample of ``fit_rows`` rows (each class in its share,
        chosen by a hash of the row's position and ``random_state``), the sample's rows
        are scored on the fit path (leave-one-out neighbour votes, out-of-fold
        probabilities) and every other row against the fitted detectors. ``None`` fits
        on every row whatever the size.

    Returns
    -------
    ScanResult
    """
    t0 = time.perf_counter()
    prep = _prepare(data, label=label, id_col=id_col, source_col=source_col, features=features,
                    detectors=detectors, settings=settings, contamination=contamination, top=top,
                    random_state=random_state, candidates=candidates, fit_rows=fit_rows)
    try:
        run = _run(prep, progress)
        run.timings = {"encode": run.started - t0, **run.timings}
        total = len(prep.chosen) + 2
        if progress:
            progress("combine", len(prep.chosen), total)
        _return_free_memory()
        t = time.perf_counter()
        flags = _flag(prep, run)
        run.timings["combine"] = time.perf_counter() - t
        t = time.perf_counter()
        if progress:
            progress("explain", len(prep.chosen) + 1, total)
        _return_free_memory()  # the presence tests' temporaries
        reasons, row_detectors = _explain_flagged(prep, run, flags)
        run.timings["explain"] = time.perf_counter() - t
    finally:
        release_neighbours()  # the graphs and index of this scan's matrices: not needed after it
        _return_free_memory()
    n = prep.table.n_rows
    run.timings["total"] = time.perf_counter() - t0
    if progress:
        progress("done", total, total)
    result = ScanResult(
        table=prep.table,
        detectors=[d.name for d in prep.chosen],
        suspicion=flags.suspicion,
        flagged=flags.flagged,
        reasons=reasons,
        row_detectors=row_detectors,
        # copy=False: the frames take the score arrays as they are (no second copy of each table)
        detector_scores=pd.DataFrame(run.raw, index=pd.RangeIndex(n), copy=False),
        strengths=pd.DataFrame(flags.strengths, index=pd.RangeIndex(n), copy=False),
        flag_rule=flags.rule_text,
        threshold=flags.threshold,
        failures=run.failures,
        timings=run.timings,
        warnings=list(prep.table.warnings),
        detector_info=_info(run.fitted, flags.combined),
        candidates=prep.candidates,
        presence=_presence_info(flags.combined, prep.table, flags.flagged),
    )
    if strict:
        result.raise_for_status()
    return result


def _prepare(
    data: Any, *, label: str | None, id_col: str | None, source_col: str | None,
    features: str | Sequence[str] | None, detectors: str | Sequence[str] | None,
    settings: Mapping[str, Mapping[str, Any]] | None, contamination: str | float | None, top: int | None,
    random_state: int | None, candidates: Any, fit_rows: int | None = FIT_SAMPLE_ROWS,
) -> _Prepared:
    """Validate the rule and the table, choose and seed the detectors, encode the features."""
    rule, rule_arg = _parse_rule(contamination, top)
    table = prepare_table(data, label=label, id_col=id_col, source_col=source_col, features=features)
    # before any work: an input column named like an output column would be overwritten
    check_output_columns(table.frame.columns)
    names = detectors.split(",") if isinstance(detectors, str) else detectors
    names = [n.strip() for n in names if n.strip()] if names is not None else None
    chosen = resolve_settings(names, settings, labeled=table.y is not None)
    if random_state is not None:
        for det in chosen:
            if "random_state" in det.get_params() and "random_state" not in (settings or {}).get(det.name, {}):
                det.set_params(random_state=random_state)
    cand = None
    if candidates is not None:
        cand = np.asarray(candidates, dtype=bool)
        if cand.shape != (table.n_rows,):
            raise InputError(f"candidates has shape {cand.shape}, expected ({table.n_rows},)")
    encoder = TableEncoder()
    if fit_rows is not None:
        fit_rows = check_count(fit_rows, "fit_rows", minimum=100)
    sample = _fit_sample(table.y, table.n_rows, fit_rows, int(random_state or 0))
    X = None
    if sample is None:
        # float32 halves the matrix (and the neighbour index copies float32 anyway); frozen, so the
        # detectors' checks and fingerprints of it are computed once (validation.frozen_fact)
        X = encoder.fit_transform(table.frame, table.features, dtype=np.float32)
        X.flags.writeable = False
    else:
        # a sampled scan encodes the sample and then each block of the other rows when it
        # scores them (_Prepared.encode_rows): the whole matrix is never held
        encoder.fit(table.frame, table.features)
    return _Prepared(table=table, encoder=encoder, X=X, chosen=chosen, rule=rule, rule_arg=rule_arg, candidates=cand,
                     sample=sample)


def _frozen(X: np.ndarray) -> np.ndarray:
    """A contiguous read-only copy (the detectors' checks and fingerprints of it are then computed once)."""
    out = np.ascontiguousarray(X)
    out.flags.writeable = False
    return out


#: rows outside the fit sample scored at a time (see :func:`_score_rest`): each detector's
#: temporaries are one block's (at a million rows, a fold model's float64 design matrix of
#: every other row was 200 MiB). A multiple of ecod's scoring block, so its BLAS products
#: see the rows in the same groups as one call over all of them would: the same bits.
SCORE_BLOCK = 1 << 16


def _run(prep: _Prepared, progress: ProgressCallback | None) -> _Run:
    """Fit and score every detector; a crash is recorded in ``failures`` and never dropped.

    With a fit sample (``prep.sample``) each detector is fitted on the sample's rows and
    scores them on its fit path; every other row is scored on its query path, which does
    not depend on the other rows scored with it (so the Dask engine, scoring one
    partition at a time, gets the same scores).
    """
    out = _Run(started=time.perf_counter())
    total = len(prep.chosen) + 2
    y = prep.table.y
    if prep.sample is None:
        out.fit_X, out.fit_y = prep.X, y
    else:
        out.fit_X, out.fit_y = prep.encode_rows(prep.sample), (None if y is None else y[prep.sample])
    # One BLAS thread: the detectors' linear algebra is on small blocks, where thread
    # start-up and oversubscription (e.g. with pytest-xdist or a busy host) cost up to
    # 30x; neighbour search keeps its own OpenMP threads.
    with threadpool_limits(limits=1, user_api="blas"):
        for i, det in enumerate(prep.chosen):
            if progress:
                progress(det.name, i, total)
            t = time.perf_counter()
            try:
                det.fit(out.fit_X, out.fit_y)
                raw = det.score_samples(out.fit_X, out.fit_y)
                if prep.sample is not None:
                    full = np.empty(prep.table.n_rows, dtype=np.float64)
                    full[prep.sample] = raw
                    raw = full
                out.raw[det.name] = raw
                out.fitted[det.name] = det
            except Exception as exc:  # fail closed: recorded, never silently dropped
                _fail(out, det.name, exc)
            out.timings[det.name] = time.perf_counter() - t
        if prep.sample is not None:
            _return_free_memory()  # the fits' temporaries
            _score_rest(prep, out)
    _share_zero_scores(out.raw)
    return out


def _share_zero_scores(raw: dict[str, np.ndarray]) -> None:
    """Detectors that scored every row exactly 0 (they found nothing) share one read-only array of zeros.

    The backdoor, cluster and duplicates detectors score most tables 0 throughout: at a
    million rows five such columns were 40 MiB of zeros held through combining and
    explaining. Only +0.0 everywhere counts (not -0.0, not NaN): the values are unchanged.
    """
    zeros: np.ndarray | None = None
    for name, s in raw.items():
        if s.dtype != np.float64 or s.ndim != 1 or s.any() or np.signbit(s).any():
            continue
        if zeros is None or zeros.shape != s.shape:
            zeros = np.zeros(s.shape[0], dtype=np.float64)
            zeros.flags.writeable = False
        raw[name] = zeros


def _score_rest(prep: _Prepared, out: _Run) -> None:
    """Score the rows outside the fit sample on every fitted detector, ``SCORE_BLOCK`` rows at a time.

    Block by block, every detector in turn: the detectors' temporaries (a fold model's
    design matrix, a neighbour graph and its labels) are those of one block, not of
    every other row; the rows are gathered block by block, never copied whole; and the
    neighbour detectors share one search per block (one memoised query graph).
    Scores are the query path's, which does not depend on the rows scored together
    (to the last bit where a BLAS product groups rows: see ``SCORE_BLOCK``).
    """
    keep = np.ones(prep.table.n_rows, dtype=bool)
    keep[prep.sample] = False
    rest = np.flatnonzero(keep)
    del keep
    y = prep.table.y
    for b0 in range(0, rest.size, SCORE_BLOCK):
        rows = rest[b0:b0 + SCORE_BLOCK]
        Xb = prep.encode_rows(rows)  # its own read-only array: fingerprinted once per block
        yb = None if y is None else y[rows]
        for name, det in list(out.fitted.items()):
            t = time.perf_counter()
            try:
                out.raw[name][rows] = det.score_samples(Xb, yb)
            except Exception as exc:  # fail closed, as in the fit
                _fail(out, name, exc)
            out.timings[name] += time.perf_counter() - t
        del Xb
        _return_free_memory()  # this block's temporaries
    release_query_graphs()  # the last block's graph: explaining searches for its own rows


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` (another C library, or none found)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


def _return_free_memory() -> None:
    """Give the heap's free pages back to the operating system between the scan's steps.

    glibc serves an allocation from its heap, not a mapping of its own, once its mmap
    threshold has risen to the largest block freed so far (up to 32 MiB): after the
    first few, every column of a million rows (8 MiB) comes from the heap, and a freed
    one stays resident, in pieces the next step's arrays do not always fit. Trimming
    after each step returns those pages, so one step's peak does not sit on the
    leftovers of the steps before it. No effect on results; nothing where glibc is absent.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def label_noise_rate(fitted: Mapping[str, BaseDetector], kinds: Mapping[str, str],
                      families: Mapping[str, str]) -> float:
    """The noise-channel rate the label group's detectors assumed (the largest, if they differ; 0 without one).

    Their P(label correct) passed through the inverse of that channel, and the label
    group's presence test reads its null through it (:func:`~._label_rules.null_share`).
    """
    rates = [getattr(fitted[n], "noise_rate_", None) for n in kinds
             if kinds[n] == "probability" and families[n] == "label"]
    return float(max((r for r in rates if r is not None), default=0.0))


def _fail(out: _Run, name: str, exc: Exception) -> None:
    """Record a crashed detector (fail closed) and drop its scores and model."""
    log.error("detector %s failed: %s", name, exc)
    out.failures[name] = f"{type(exc).__name__}: {exc}"
    out.raw.pop(name, None)
    out.fitted.pop(name, None)


def _flag(prep: _Prepared, run: _Run) -> _Flags:
    """Calibrate, run the presence tests, combine, and apply the rule to the candidate rows."""
    n = prep.table.n_rows
    kinds = {name: run.fitted[name].score_kind for name in run.raw}
    families = {name: run.fitted[name].family for name in run.raw}
    # anomaly detectors: calibrated inside combine, with their tail tests (no second array each)
    strengths = {name: None if kinds[name] == "anomaly" else calibrate(run.raw[name], kinds[name])
                 for name in run.raw}
    combined = None
    if strengths:
        n_classes = len(prep.table.classes) if prep.table.y is not None else None
        combined = combine(strengths, kinds, families, raw=run.raw, y=prep.table.y, n_classes=n_classes,
                           label_noise_rate=label_noise_rate(run.fitted, kinds, families))
        strengths = combined.strengths
    suspicion = combined.suspicion if combined is not None else np.zeros(n)
    cand = prep.candidates if prep.candidates is not None else np.ones(n, dtype=bool)
    n_cand = int(cand.sum())
    if prep.rule != "auto":
        ranked = np.where(cand, suspicion, -1.0)  # non-candidates sort last and are never flagged
    if prep.rule == "auto":
        flagged = (combined.auto_flags if combined is not None else np.zeros(n, dtype=bool)) & cand
        rule_text = (f"auto (label: per-class presence test, then FDR {LABEL_FDR} within poisoned classes; "
                     f"other detectors: their presence test, else strength >= {AUTO_THRESHOLD})")
    elif prep.rule == "contamination":
        flagged = flag_top(ranked, int(np.ceil(prep.rule_arg * n_cand))) & cand
        rule_text = f"contamination={prep.rule_arg}"
    else:
        flagged = flag_top(ranked, min(prep.rule_arg, n_cand)) & cand
        rule_text = f"top={prep.rule_arg}"
    # the effective threshold: the least suspicious flagged row (1.0 when none)
    threshold = float(suspicion[flagged].min()) if flagged.any() else 1.0
    if combined is not None:
        # past here only the tests and weights are read (_info, _presence_info): the per-row group
        # tables (a label-group and a duplicates strength of their own, every group's flags) go now
        combined = replace(combined, group_strength={}, group_flags={})
    return _Flags(strengths=strengths, combined=combined, suspicion=suspicion, flagged=flagged,
                  threshold=threshold, rule_text=rule_text)


def _explain_flagged(prep: _Prepared, run: _Run, flags: _Flags) -> tuple[list[str], list[str]]:
    """Reasons and driving detectors of the flagged rows and the top ten; a crash fails the scan (fail closed)."""
    n = prep.table.n_rows
    reasons, row_detectors = [""] * n, [""] * n
    try:
        rows = np.union1d(np.flatnonzero(flags.flagged), np.argsort(-flags.suspicion, kind="stable")[:10])
        X = prep.X if prep.X is not None else _RowEncoder(prep)
        _explain(run.fitted, X, prep.table.y, flags.strengths, rows, run.raw, prep.table, prep.encoder,
                 reasons, row_detectors, sample=_FitRows.of(prep, run), free_memory=_free_explain_memory)
    except Exception as exc:
        log.error("explaining the flagged rows failed: %s", exc)
        run.failures["explain"] = f"{type(exc).__name__}: {exc}"
    return reasons, row_detectors


def _free_explain_memory(last: bool) -> None:
    """Between blocks of explanations: return the heap's free pages; after the last detector, drop
    the neighbour graphs and index too (the rows' reasons are then joined, and nothing searches again)."""
    if last:
        release_neighbours()
    _return_free_memory()


def _info(fitted: Mapping[str, BaseDetector], combined: Combined | None) -> dict[str, dict[str, Any]]:
    """Per detector: its own report, its label-group weight and its tail test."""
    info = {name: _detector_info(det) for name, det in fitted.items()}
    if combined is not None:
        for name, w in combined.label_weights.items():
            info.setdefault(name, {})["label_group_weight"] = round(w, 4)
        for name, test in combined.anomaly_presence.items():
            info.setdefault(name, {})["tail_test"] = test.to_dict()
    return info


def _presence_info(combined: Combined | None, table: PreparedTable, flagged: np.ndarray) -> list[dict[str, Any]]:
    """Per class: rows, flagged rows and the label presence test (empty without labels)."""
    if combined is None or table.y is None or not combined.label_presence:
        return []
    out = []
    for test in combined.label_presence:
        rows = table.y == test.label
        out.append({
            "class": _jsonable(table.classes[test.label]) if test.label < len(table.classes) else test.label,
            "rows": int(rows.sum()),
            "flagged": int((flagged & rows).sum()),
            "poisoned": bool(test.poisoned),
            "statistic": round(float(test.statistic), 4),
            "statistic_name": test.statistic_name,
            "p_value": float(f"{test.p_value:.3g}"),
            "level": float(f"{test.threshold:.3g}"),
            "near_certain_errors": int(test.n_suspects),
            "detail": test.detail,
        })
    return out


def _detector_info(det: BaseDetector) -> dict[str, Any]:
    """What a detector reports about the whole table (e.g. a per-class presence test)."""
    report = getattr(det, "report_", None)
    if report is None:
        return {}
    try:
        return json.loads(json.dumps(report, default=_jsonable))
    except (TypeError, ValueError):
        return {"report": str(report)}


@dataclass(frozen=True)
class _RowEncoder:
    """The rows of a sampled scan's table by position (``enc[rows]``), encoded when asked for.

    :func:`_explain` reads the rows outside the sample this way (a few tens of thousands
    at a million rows) where the whole matrix is not held.
    """

    prep: _Prepared

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        return self.prep.encode_rows(np.asarray(rows, dtype=np.int64))


@dataclass(frozen=True)
class _FitRows:
    """The fit sample as :func:`_explain` needs it: positions (ascending), matrix and class codes."""

    positions: np.ndarray
    X: np.ndarray
    y: np.ndarray | None

    @classmethod
    def of(cls, prep: _Prepared, run: _Run) -> "_FitRows | None":
        if prep.sample is None or run.fit_X is None:
            return None
        return cls(positions=prep.sample, X=run.fit_X, y=run.fit_y)


#: rows explained per call on the query path: a detector's explanations carry evidence (neighbour
#: lists, per-column tails) that only the reason string outlives, so at most this many are alive at once
EXPLAIN_BLOCK = 1 << 13


def _explain_with(det: BaseDetector, X: np.ndarray | _RowEncoder, y: np.ndarray | None, rows: np.ndarray, scores: np.ndarray,
                  sample: _FitRows | None,
                  free_memory: Callable[[bool], None] | None = None) -> Iterator[Explanation]:
    """``det.explain_rows`` for ``rows`` of ``X``: a sample row on the matrix the detector was fitted on
    (fit path), any other row on its own (query path), as each was scored.

    Yields the explanations a block of rows at a time; a row's explanation does not depend on the
    rows explained with it (the fit path sees the whole fit matrix in one call, the query path each
    row on its own), so the blocks change no reason. ``free_memory(False)`` runs after each block.
    """
    if sample is None:
        yield from det.explain_rows(X, y, rows, scores=scores)
        return
    at = np.searchsorted(sample.positions, rows)
    in_fit = (at < sample.positions.size) & (sample.positions[np.minimum(at, sample.positions.size - 1)] == rows)
    if in_fit.any():
        exps = det.explain_rows(sample.X, sample.y, at[in_fit], scores=scores[sample.positions])
        yield from (replace(e, row=int(sample.positions[e.row])) for e in exps)
        del exps
        if free_memory is not None:
            free_memory(False)
    others = rows[~in_fit]
    for b0 in range(0, others.size, EXPLAIN_BLOCK):
        part = others[b0:b0 + EXPLAIN_BLOCK]
        exps = det.explain_rows(X[part], None if y is None else y[part], np.arange(part.size), scores=scores[part])
        yield from (replace(e, row=int(part[e.row])) for e in exps)
        del exps
        if free_memory is not None:
            free_memory(False)


def _explain(
    fitted: Mapping[str, BaseDetector],
    X: np.ndarray | _RowEncoder,
    y: np.ndarray | None,
    strengths: Mapping[str, np.ndarray],
    rows: np.ndarray,
    raw: Mapping[str, np.ndarray],
    table: PreparedTable,
    encoder: TableEncoder,
    reasons: list[str],
    row_detectors: list[str],
    *,
    sample: _FitRows | None = None,
    free_memory: Callable[[bool], None] | None = None,
) -> None:
    """Fill ``reasons``/``row_detectors`` for ``rows`` from the detectors that drive each row.

    With ``sample`` (a scan fitted on a sample) each row is explained on the path it was scored on.
    ``free_memory(last)``, when given, is called after each block of explanations (``last`` false)
    and once every detector has explained its rows (``last`` true: no search follows).
    """
    if rows.size == 0 or not strengths:
        return
    names = list(strengths)
    S = np.stack([strengths[n][rows] for n in names], axis=1)
    # a detector speaks for a row when its strength reaches AUTO_THRESHOLD, or when it is the row's strongest
    speaks = (S >= AUTO_THRESHOLD) | (S == S.max(axis=1, keepdims=True)) & (S > 0)
    per_det: dict[str, dict[int, str]] = {}
    for j, name in enumerate(names):
        sel = rows[speaks[:, j]]
        if sel.size:
            per_det[name] = {e.row: _fill(e.reason, table, encoder)
                             for e in _explain_with(fitted[name], X, y, sel, raw[name], sample, free_memory)}
    if free_memory is not None:
        free_memory(True)
    orders = np.argsort(-S, axis=1, kind="stable")  # one call for all rows: a million-row scan explains ~50k
    for i, r in enumerate(rows.tolist()):
        used = [names[j] for j in orders[i].tolist() if speaks[i, j]]
        row_detectors[r] = ",".join(used)
        # each detector's text is taken out as it is joined: the two copies of every reason never coexist
        texts = ((n, per_det[n].pop(r, None)) for n in used if n in per_det)
        reasons[r] = "; ".join(f"{n}: {text}" for n, text in texts if text is not None)


def _fill(text: str, table: PreparedTable, encoder: TableEncoder) -> str:
    def sub(m: re.Match[str]) -> str:
        kind, k = m.group(1), int(m.group(2))
        if kind == "label":
            return str(table.classes[k]) if k < len(table.classes) else f"#{k}"
        cols = encoder.columns_
        return cols[k].name if k < len(cols) else f"#{k}"

    return _PLACEHOLDER.sub(sub, text)
