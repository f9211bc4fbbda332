"""Split a table into kept and quarantined rows, from a scan or a reviewed file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, InputError, IntegrityError
from ..validation import as_frame, load_table
from .._io import atomic_write_bytes, atomic_write_json, file_digest, frame_digest, _table_bytes

__all__ = ["sanitize", "write_outputs", "SanitizeResult", "RemovedRow", "REMOVE_DECISIONS", "KEEP_DECISIONS"]

#: Reviewer decisions that remove a row (case-insensitive).
REMOVE_DECISIONS = frozenset({"remove", "poison", "poisoned", "drop", "reject", "quarantine", "bad"})
#: Reviewer decisions that keep a row even when a detector flagged it (case-insensitive).
KEEP_DECISIONS = frozenset({"keep", "clean", "ok", "accept", "good", "false_positive"})


@dataclass(frozen=True)
class RemovedRow:
    """One row set aside, and why.

    Attributes
    ----------
    row : int
        0-based position in the input table.
    id : object or None
        The row's id (``--id`` column) when given.
    suspicion : float or None
        The scan's combined suspicion (``None`` if the reviewed file has none).
    detectors : str
        Comma-separated detectors behind the suspicion.
    reason : str
        The detectors' evidence (and the reviewer's note, if any).
    decided_by : {"detector", "reviewer"}
        Who removed it: the flag rule, or a reviewer's ``decision``.
    """

    row: int
    id: Any
    suspicion: float | None
    detectors: str
    reason: str
    decided_by: str


@dataclass(frozen=True)
class SanitizeResult:
    """Kept and quarantined rows plus the manifest. ``len(kept) + len(quarantined) == n_input``."""

    kept: pd.DataFrame
    quarantined: pd.DataFrame
    removed: list[RemovedRow]
    manifest: dict[str, Any]
    n_input: int
    kept_by_reviewer: list[int] = field(default_factory=list)

    @property
    def removed_rows(self) -> np.ndarray:
        return np.array([r.row for r in self.removed], dtype=np.int64)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, (str, int, float, bool)):
        return None if isinstance(v, float) and np.isnan(v) else v
    return str(v)


def _normalise_decisions(review: pd.DataFrame, where: str) -> np.ndarray:
    """Map the ``decision`` column to "remove", "keep" or "" (no decision)."""
    col = review["decision"].astype("string").str.strip().str.lower().fillna("")
    out = np.full(len(col), "", dtype=object)
    bad: list[str] = []
    for i, v in enumerate(col.to_numpy()):
        if v == "":
            continue
        if v in REMOVE_DECISIONS:
            out[i] = "remove"
        elif v in KEEP_DECISIONS:
            out[i] = "keep"
        else:
            bad.append(v)
    if bad:
        raise InputError(
            f"{where}: unknown decision value(s) {sorted(set(bad))[:10]}; use one of "
            f"{sorted(REMOVE_DECISIONS)} to remove a row, {sorted(KEEP_DECISIONS)} to keep it, or leave it empty"
        )
    return out


def _review_rows(review: pd.DataFrame, frame: pd.DataFrame, id_col: str | None, where: str) -> np.ndarray:
    """Input row positions of the reviewed rows (by ``row``, or by id)."""
    n = len(frame)
    if "row" in review.columns:
        rows = pd.to_numeric(review["row"], errors="coerce")
        if rows.isna().any() or not np.all(rows == np.round(rows)):
            bad = review["row"][rows.isna() | (rows != np.round(rows))].iloc[0]
            raise InputError(f"{where}: column 'row' must hold whole row numbers, got {bad!r}")
        rows = rows.to_numpy(dtype=np.int64)
        out_of_range = rows[(rows < 0) | (rows >= n)]
        if out_of_range.size:
            raise InputError(f"{where}: row {int(out_of_range[0])} is out of range for an input of {n} rows")
        if id_col is not None and id_col in review.columns:
            mism = np.flatnonzero(frame[id_col].astype(str).to_numpy()[rows] != review[id_col].astype(str).to_numpy())
            if mism.size:
                i = int(mism[0])
                raise InputError(
                    f"{where}: row {int(rows[i])} has id {review[id_col].iloc[i]!r} in the review but "
                    f"{frame[id_col].iloc[rows[i]]!r} in the data; was the review made on another file?"
                )
    elif id_col is not None and id_col in review.columns:
        pos = {str(v): i for i, v in enumerate(frame[id_col].to_numpy())}
        missing = [v for v in review[id_col].astype(str) if v not in pos]
        if missing:
            raise InputError(f"{where}: id(s) {missing[:5]} are not in the data's {id_col!r} column")
        rows = np.array([pos[v] for v in review[id_col].astype(str)], dtype=np.int64)
    else:
        raise InputError(f"{where}: a reviewed file needs a 'row' column (as written by the scan) or the --id column")
    dup = pd.Series(rows).duplicated()
    if dup.any():
        raise InputError(f"{where}: row {int(rows[dup.to_numpy()][0])} is listed twice")
    return rows


def _load_review(review: Any) -> pd.DataFrame:
    """The reviewed table; a header-only file (a scan that flagged nothing) is an empty review."""
    if isinstance(review, pd.DataFrame):
        return review if len(review) == 0 else as_frame(review, where="review")
    if isinstance(review, (str, Path)):
        try:
            return load_table(review)
        except DataError as exc:
            if "no rows" not in str(exc):
                raise
            return pd.read_csv(review, nrows=0)
    return as_frame(review, where="review")


def sanitize(
    data: Any,
    *,
    label: str,
    review: Any = None,
    id_col: str | None = None,
    scan_result: Any = None,
    detectors: Any = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    contamination: float | str = "auto",
    random_state: int = 0,
) -> SanitizeResult:
    """Split ``data`` into kept and quarantined rows.

    Without ``review``, rows flagged by a scan (``scan_result``, or a fresh
    :func:`poisonguard.scan` with ``detectors``/``settings``/``contamination``) are
    removed. With ``review`` (a reviewed ``suspicious_samples.csv`` or DataFrame),
    no scan runs: every listed row is removed unless its ``decision`` keeps it;
    an empty decision leaves the detector's flag in force. Reviewer decisions
    always override the detectors.

    Decisions (case-insensitive): :data:`REMOVE_DECISIONS` remove the row,
    :data:`KEEP_DECISIONS` keep it, empty means "no decision".

    Raises
    ------
    InputError
        Unknown column, bad decision values, review rows that do not match the data.
    IntegrityError
        kept + quarantined would not equal the input (never expected).
    """
    path = Path(data) if isinstance(data, (str, Path)) else None
    frame = load_table(path) if path is not None else as_frame(data)
    if label not in frame.columns:
        raise InputError(f"--label column {label!r} not found; columns are: {', '.join(map(str, frame.columns[:12]))}")
    if id_col is not None and id_col not in frame.columns:
        raise InputError(f"--id column {id_col!r} not found")
    n = len(frame)
    digest = file_digest(path) if path is not None else frame_digest(frame)
    removed: list[RemovedRow] = []
    kept_by_reviewer: list[int] = []
    ids = frame[id_col].to_numpy() if id_col else None
    info: dict[str, Any]
    if review is not None:
        where = str(review) if isinstance(review, (str, Path)) else "review"
        rv = _load_review(review)
        if "decision" not in rv.columns:
            raise InputError(
                f"{where}: no 'decision' column; add one with remove/keep (or poison/clean) per row, empty = no decision"
            )
        rows = _review_rows(rv, frame, id_col, where)
        dec = _normalise_decisions(rv, where)
        susp = pd.to_numeric(rv["suspicion"], errors="coerce").to_numpy() if "suspicion" in rv.columns else np.full(len(rv), np.nan)
        dets = rv["detectors"].astype("string").fillna("").to_numpy() if "detectors" in rv.columns else np.full(len(rv), "")
        why = rv["reason"].astype("string").fillna("").to_numpy() if "reason" in rv.columns else np.full(len(rv), "")
        note = rv["note"].astype("string").fillna("").to_numpy() if "note" in rv.columns else np.full(len(rv), "")
        for i in np.argsort(rows, kind="stable"):
            r = int(rows[i])
            if dec[i] == "keep":
                kept_by_reviewer.append(r)
                continue
            reason = str(why[i]) + (f" [reviewer: {note[i]}]" if note[i] else "")
            removed.append(
                RemovedRow(
                    row=r, id=_jsonable(ids[r]) if ids is not None else None,
                    suspicion=None if np.isnan(susp[i]) else float(susp[i]), detectors=str(dets[i]), reason=reason,
                    decided_by="reviewer" if dec[i] == "remove" else "detector",
                )
            )
        info = {"mode": "review", "review": where, "review_rows": int(len(rv))}
    else:
        if scan_result is None:
            from ..scan import scan

            scan_result = scan(
                frame, label=label, id_col=id_col, detectors=detectors, settings=settings,
                contamination=contamination, random_state=random_state,
            )
        scan_result.raise_for_status()  # fail closed: a failed scan never sanitizes
        if scan_result.n_rows != n:
            raise InputError(f"the scan result has {scan_result.n_rows} rows but the data has {n}")
        for r in np.flatnonzero(scan_result.flagged):
            removed.append(
                RemovedRow(
                    row=int(r), id=_jsonable(ids[r]) if ids is not None else None,
                    suspicion=float(scan_result.suspicion[r]), detectors=scan_result.row_detectors[r],
                    reason=scan_result.reasons[r], decided_by="detector",
                )
            )
        info = {
            "mode": "scan", "flag_rule": scan_result.flag_rule, "threshold": float(scan_result.threshold),
            "detectors": list(scan_result.detectors),
            "presence": {k: v["presence"] for k, v in scan_result.detector_info.items() if isinstance(v, dict) and "presence" in v},
        }
    gone = np.zeros(n, dtype=bool)
    gone[[r.row for r in removed]] = True
    kept = frame.loc[~gone].reset_index(drop=True)
    quarantined = frame.loc[gone].reset_index(drop=True)
    if len(kept) + len(quarantined) != n:  # pragma: no cover - guarded invariant
        raise IntegrityError(f"kept ({len(kept)}) + quarantined ({len(quarantined)}) != input ({n})")
    manifest = {
        "schema": 1,
        "input": {"path": str(path) if path is not None else None, "digest": digest, "rows": n},
        "label": label,
        **info,
        "counts": {
            "input": n,
            "kept": int(len(kept)),
            "quarantined": int(len(quarantined)),
            "removed_by_detector": sum(r.decided_by == "detector" for r in removed),
            "removed_by_reviewer": sum(r.decided_by == "reviewer" for r in removed),
            "kept_by_reviewer": len(kept_by_reviewer),
        },
        "removed": [asdict(r) for r in removed],
        "kept_by_reviewer": sorted(kept_by_reviewer),
    }
    return SanitizeResult(
        kept=kept, quarantined=quarantined, removed=removed, manifest=manifest, n_input=n,
        kept_by_reviewer=sorted(kept_by_reviewer),
    )


def write_outputs(
    result: SanitizeResult,
    out: str | Path,
    *,
    quarantine: str | Path | None = None,
    manifest: str | Path | None = None,
) -> dict[str, Path]:
    """Write kept rows to ``out``, quarantined rows and the manifest, each atomically.

    Every payload is serialised first, then each file is written to a temporary
    file and renamed into place; the manifest, which records the digests of the
    other outputs, is written last. A crash leaves either the old file or the
    complete new one, never a truncated table.
    """
    targets = [Path(out)] + [Path(p) for p in (quarantine, manifest) if p is not None]
    resolved = [t.resolve() for t in targets]
    if len(set(resolved)) != len(resolved):
        raise InputError(f"--out, --quarantine and --manifest must be different files, got {[str(t) for t in targets]}")
    inp = result.manifest["input"]["path"]
    if inp is not None and Path(inp).resolve() in resolved:
        raise InputError(f"refusing to overwrite the input file {inp}; choose another --out/--quarantine/--manifest")
    payloads = {Path(out): _table_bytes(result.kept, Path(out))}
    if quarantine is not None:
        payloads[Path(quarantine)] = _table_bytes(result.quarantined, Path(quarantine))
    import hashlib

    man = dict(result.manifest)
    man["outputs"] = {
        ("kept" if p == Path(out) else "quarantine"): {"path": str(p), "digest": "sha256:" + hashlib.sha256(b).hexdigest()}
        for p, b in payloads.items()
    }
    written = {}
    for p, b in payloads.items():
        written["kept" if p == Path(out) else "quarantine"] = atomic_write_bytes(b, p)
    if manifest is not None:
        written["manifest"] = atomic_write_json(man, manifest)
    return written
