"""``poisonguard.scan``: rank the rows of a training table by how likely they are poisoned."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .._io import atomic_write_table
from ..detectors import BaseDetector, resolve_settings
from ..encoding import TableEncoder
from ..errors import DetectorFailedError, InputError
from ..validation import PreparedTable, check_fraction, prepare_table
from ._ensemble import LABEL_FDR, Combined, calibrate, combine, flag_top

__all__ = ["scan", "ScanResult", "AUTO_THRESHOLD", "ProgressCallback"]

log = logging.getLogger(__name__)

#: strength at which the default rule flags a row for a non-label group
AUTO_THRESHOLD = 0.5
#: ``progress(stage, done, total)`` is called as the scan advances
ProgressCallback = Callable[[str, int, int], None]
_PLACEHOLDER = re.compile(r"\{(label|feature):(\d+)\}")


@dataclass
class ScanResult:
    """Everything a scan found, in input row order.

    Attributes
    ----------
    suspicion : ndarray of float, shape (n_rows,)
        Combined suspicion in [0, 1]; 0.5 is where the default rule flags.
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
        Detector name to error message for detectors that crashed. Any failure makes
        ``status`` "failed", which blocks every gate.
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
                name: int(((self.strengths[name].to_numpy() >= 0.5) & self.flagged).sum())
                for name in self.strengths.columns
            },
            "per_source": [
                {"source": str(r.source), "rows": int(r.rows), "flagged": int(r.flagged), "flag_rate": round(float(r.flag_rate), 6)}
                for r in src.itertuples(index=False)
            ],
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
            raise InputError("give either --top or --contamination, not both")
        if int(top) < 1:
            raise InputError(f"--top must be >= 1, got {top}")
        return "top", int(top)
    if contamination is None or contamination == "auto":
        return "auto", AUTO_THRESHOLD
    if isinstance(contamination, str):
        try:
            contamination = float(contamination)
        except ValueError:
            raise InputError(f"--contamination must be 'auto' or a fraction in (0, 1), got {contamination!r}") from None
    return "contamination", check_fraction(contamination, "--contamination")


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
) -> ScanResult:
    """Scan a training table and rank its rows by how likely they are poisoned.

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
        ``"auto"`` flags rows whose combined strength reaches :data:`AUTO_THRESHOLD`
        (only what stands out, so a clean table flags close to nothing); a float
        flags that fraction of rows.
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

    Returns
    -------
    ScanResult
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rule, rule_arg = _parse_rule(contamination, top)
    table = prepare_table(data, label=label, id_col=id_col, source_col=source_col, features=features)
    names = detectors.split(",") if isinstance(detectors, str) else detectors
    names = [n.strip() for n in names if n.strip()] if names is not None else None
    chosen = resolve_settings(names, settings, labeled=table.y is not None)
    if random_state is not None:
        for det in chosen:
            if "random_state" in det.get_params() and "random_state" not in (settings or {}).get(det.name, {}):
                det.set_params(random_state=random_state)
    encoder = TableEncoder()
    X = encoder.fit_transform(table.frame, table.features)
    timings["encode"] = time.perf_counter() - t0
    y = table.y
    total = len(chosen) + 2
    raw: dict[str, np.ndarray] = {}
    failures: dict[str, str] = {}
    fitted: dict[str, BaseDetector] = {}
    # One BLAS thread: the detectors' linear algebra is on small blocks, where thread
    # start-up and oversubscription (e.g. with pytest-xdist or a busy host) cost up to
    # 30x; neighbour search keeps its own OpenMP threads.
    with threadpool_limits(limits=1, user_api="blas"):
        for i, det in enumerate(chosen):
            if progress:
                progress(det.name, i, total)
            t = time.perf_counter()
            try:
                det.fit(X, y)
                raw[det.name] = det.score_samples(X, y)
                fitted[det.name] = det
            except Exception as exc:  # fail closed: recorded, never silently dropped
                log.error("detector %s failed: %s", det.name, exc)
                failures[det.name] = f"{type(exc).__name__}: {exc}"
            timings[det.name] = time.perf_counter() - t
    if progress:
        progress("combine", len(chosen), total)
    kinds = {n: fitted[n].score_kind for n in raw}
    families = {n: fitted[n].family for n in raw}
    strengths = {n: calibrate(raw[n], kinds[n]) for n in raw}
    n = table.n_rows
    combined: Combined | None = combine(strengths, kinds, families) if strengths else None
    suspicion = combined.suspicion if combined is not None else np.zeros(n)
    if candidates is not None:
        cand = np.asarray(candidates, dtype=bool)
        if cand.shape != (n,):
            raise InputError(f"candidates has shape {cand.shape}, expected ({n},)")
    else:
        cand = np.ones(n, dtype=bool)
    ranked = np.where(cand, suspicion, -1.0)  # non-candidates sort last and are never flagged
    n_cand = int(cand.sum())
    if rule == "auto":
        flagged = (combined.auto_flags if combined is not None else np.zeros(n, dtype=bool)) & cand
        # the effective threshold: the least suspicious flagged row (1.0 when none)
        threshold = float(suspicion[flagged].min()) if flagged.any() else 1.0
        rule_text = f"auto (label FDR {LABEL_FDR}, other detectors strength >= {AUTO_THRESHOLD})"
    elif rule == "contamination":
        k = int(np.ceil(rule_arg * n_cand))
        flagged = flag_top(ranked, k) & cand
        threshold, rule_text = float(suspicion[flagged].min()) if flagged.any() else 1.0, f"contamination={rule_arg}"
    else:
        flagged = flag_top(ranked, min(rule_arg, n_cand)) & cand
        threshold, rule_text = float(suspicion[flagged].min()) if flagged.any() else 1.0, f"top={rule_arg}"
    reasons = [""] * n
    row_detectors = [""] * n
    top_rows = np.argsort(-suspicion, kind="stable")[:10]
    explain_rows = np.union1d(np.flatnonzero(flagged), top_rows)
    t = time.perf_counter()
    if progress:
        progress("explain", len(chosen) + 1, total)
    _explain(fitted, X, y, strengths, explain_rows, raw, table, encoder, reasons, row_detectors)
    timings["explain"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    if progress:
        progress("done", total, total)
    info = {name: _detector_info(det) for name, det in fitted.items()}
    if combined is not None and combined.label_weights:
        for name, w in combined.label_weights.items():
            info.setdefault(name, {})["label_group_weight"] = round(w, 4)
    result = ScanResult(
        table=table,
        detectors=[d.name for d in chosen],
        suspicion=suspicion,
        flagged=flagged,
        reasons=reasons,
        row_detectors=row_detectors,
        detector_scores=pd.DataFrame(raw, index=pd.RangeIndex(n)),
        strengths=pd.DataFrame(strengths, index=pd.RangeIndex(n)),
        flag_rule=rule_text,
        threshold=threshold,
        failures=failures,
        timings=timings,
        warnings=list(table.warnings),
        detector_info=info,
        candidates=None if candidates is None else cand,
    )
    if strict:
        result.raise_for_status()
    return result


def _detector_info(det: BaseDetector) -> dict[str, Any]:
    """What a detector reports about the whole table (e.g. a per-class presence test)."""
    report = getattr(det, "report_", None)
    if report is None:
        return {}
    try:
        return json.loads(json.dumps(report, default=_jsonable))
    except (TypeError, ValueError):
        return {"report": str(report)}


def _explain(
    fitted: Mapping[str, BaseDetector],
    X: np.ndarray,
    y: np.ndarray | None,
    strengths: Mapping[str, np.ndarray],
    rows: np.ndarray,
    raw: Mapping[str, np.ndarray],
    table: PreparedTable,
    encoder: TableEncoder,
    reasons: list[str],
    row_detectors: list[str],
) -> None:
    """Fill ``reasons``/``row_detectors`` for ``rows`` from the detectors that drive each row."""
    if rows.size == 0 or not strengths:
        return
    names = list(strengths)
    S = np.stack([strengths[n][rows] for n in names], axis=1)
    # a detector speaks for a row when its strength reaches 0.5, or when it is the row's strongest
    speaks = (S >= 0.5) | (S == S.max(axis=1, keepdims=True)) & (S > 0)
    per_det: dict[str, dict[int, str]] = {}
    for j, name in enumerate(names):
        sel = rows[speaks[:, j]]
        if sel.size:
            exps = fitted[name].explain_rows(X, y, sel, scores=raw[name])
            per_det[name] = {e.row: _fill(e.reason, table, encoder) for e in exps}
    for i, r in enumerate(rows):
        order = np.argsort(-S[i], kind="stable")
        used = [names[j] for j in order if speaks[i, j]]
        row_detectors[r] = ",".join(used)
        reasons[r] = "; ".join(f"{n}: {per_det[n][int(r)]}" for n in used if int(r) in per_det.get(n, {}))


def _fill(text: str, table: PreparedTable, encoder: TableEncoder) -> str:
    def sub(m: re.Match[str]) -> str:
        kind, k = m.group(1), int(m.group(2))
        if kind == "label":
            return str(table.classes[k]) if k < len(table.classes) else f"#{k}"
        cols = encoder.columns_
        return cols[k].name if k < len(cols) else f"#{k}"

    return _PLACEHOLDER.sub(sub, text)
