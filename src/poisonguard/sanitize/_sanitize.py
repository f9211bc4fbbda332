"""Split a table into kept and quarantined rows, from a scan or a reviewed file."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, InputError, IntegrityError
from ..validation import as_frame, is_parquet_path, load_table, read_csv_text
from .._io import (
    _table_bytes,
    atomic_write_bytes,
    atomic_write_json,
    check_outputs,
    compress_for,
    file_digest,
    frame_digest,
)

log = logging.getLogger(__name__)

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


#: Columns a reviewed file adds to the data's own columns (scan outputs and the reviewer's).
_REVIEW_COLUMNS = frozenset({"row", "suspicion", "detectors", "reason", "decision", "note"})


def _row_keys(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """One text key per row over ``cols``, equal for equal parsed cells (1.10 and 1.1, 00700 and 700)."""
    parts = []
    for c in cols:
        s = df[c]
        num = pd.to_numeric(s, errors="coerce")
        text = s.astype("string").str.strip().fillna("\x00NA").to_numpy(dtype=object)
        numeric = num.notna().to_numpy()
        vals = num.to_numpy(dtype=float, na_value=np.nan)
        text[numeric] = [repr(float(v)) for v in vals[numeric]]
        parts.append(text)
    if not parts:
        return np.full(len(df), "", dtype=object)
    return np.array(["\x1f".join(t) for t in zip(*parts)], dtype=object)


def _check_positions(review: pd.DataFrame, n: int, where: str) -> np.ndarray:
    rows = pd.to_numeric(review["row"], errors="coerce")
    if rows.isna().any() or not np.all(rows == np.round(rows)):
        bad = review["row"][rows.isna() | (rows != np.round(rows))].iloc[0]
        raise InputError(f"{where}: column 'row' must hold whole row numbers, got {bad!r}")
    rows = rows.to_numpy(dtype=np.int64)
    out_of_range = rows[(rows < 0) | (rows >= n)]
    if out_of_range.size:
        raise InputError(f"{where}: row {int(out_of_range[0])} is out of range for an input of {n} rows")
    return rows


def _match_by_content(review_keys: np.ndarray, data_keys: np.ndarray, hint: np.ndarray | None, where: str) -> np.ndarray:
    """Data row of each reviewed row by its cells; a tie between identical rows goes to ``hint``."""
    where_is: dict[str, list[int]] = {}
    for i, k in enumerate(data_keys):
        where_is.setdefault(k, []).append(i)
    out = np.empty(len(review_keys), dtype=np.int64)
    for i, k in enumerate(review_keys):
        found = where_is.get(k, [])
        if len(found) == 1:
            out[i] = found[0]
        elif hint is not None and int(hint[i]) in found:
            out[i] = int(hint[i])
        elif not found:
            at = f" (its row {int(hint[i])})" if hint is not None else ""
            raise InputError(
                f"{where}: reviewed row {i}{at} matches no row of the data; was the review made on another file?"
            )
        else:
            raise InputError(
                f"{where}: reviewed row {i} matches {len(found)} identical rows of the data ({found[:5]}); "
                "pass --id COL to say which"
            )
    return out


def _review_rows(review: pd.DataFrame, frame: pd.DataFrame, id_col: str | None, where: str) -> tuple[np.ndarray, str]:
    """Input row positions of the reviewed rows, and how they were matched.

    By id when ``id_col`` is in the review; else by ``row`` number, checked against
    the reviewed rows' own cells. When the cells disagree with the numbers (a
    review made on a reordered copy) rows are matched by their cells, provided the
    review carries every data column; a row that matches nothing is refused.
    """
    n = len(frame)
    shared = [c for c in map(str, frame.columns) if c in review.columns and c not in _REVIEW_COLUMNS]
    complete = len(shared) == frame.shape[1]
    hint = _check_positions(review, n, where) if "row" in review.columns else None
    if id_col is not None and id_col in review.columns:
        pos: dict[str, int] = {}
        for i, v in enumerate(frame[id_col].astype(str)):
            pos.setdefault(v, i)
        missing = [v for v in review[id_col].astype(str) if v not in pos]
        if missing:
            raise InputError(f"{where}: id(s) {missing[:5]} are not in the data's {id_col!r} column")
        rows = np.array([pos[v] for v in review[id_col].astype(str)], dtype=np.int64)
        if hint is not None:
            mism = np.flatnonzero(rows != hint)
            if mism.size:
                i = int(mism[0])
                raise InputError(
                    f"{where}: row {int(hint[i])} has id {review[id_col].iloc[i]!r} in the review but "
                    f"{frame[id_col].iloc[hint[i]]!r} in the data; was the review made on another file?"
                )
        how = "id"
    elif hint is not None:
        rows, how = hint, "row"
    elif complete:
        rows, how = _match_by_content(_row_keys(review, shared), _row_keys(frame, shared), None, where), "content"
    else:
        raise InputError(f"{where}: a reviewed file needs a 'row' column (as written by the scan) or the {{id_col}} column",
                         params=["id_col"])
    if shared:
        data_keys = _row_keys(frame, shared)
        review_keys = _row_keys(review, shared)
        wrong = np.flatnonzero(data_keys[rows] != review_keys)
        if wrong.size and how == "row" and complete:
            rows, how = _match_by_content(review_keys, data_keys, hint, where), "content"
            log.warning("%s: rows matched by their cells, not by row number (was the review made on a reordered copy?)", where)
        elif wrong.size:
            i = int(wrong[0])
            col = next(c for c in shared if _row_keys(review.iloc[[i]], [c])[0] != _row_keys(frame.iloc[[rows[i]]], [c])[0])
            raise InputError(
                f"{where}: reviewed row {i} does not match data row {int(rows[i])}: column {col!r} is "
                f"{review[col].iloc[i]!r} in the review and {frame[col].iloc[rows[i]]!r} in the data "
                f"({wrong.size} mismatched row(s)); was the review made on another or reordered file?"
            )
    dup = pd.Series(rows).duplicated()
    if dup.any():
        raise InputError(f"{where}: row {int(rows[dup.to_numpy()][0])} is listed twice")
    return rows, how


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
        raise InputError(f"{{label}} column {label!r} not found; columns are: {', '.join(map(str, frame.columns[:12]))}",
                         params=["label"])
    if id_col is not None and id_col not in frame.columns:
        raise InputError(f"{{id_col}} column {id_col!r} not found", params=["id_col"])
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
        rows, matched_by = _review_rows(rv, frame, id_col, where)
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
        info = {"mode": "review", "review": where, "review_rows": int(len(rv)), "matched_by": matched_by}
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


def _csv_records(text: str, sep: str) -> tuple[str, list[str]]:
    """The header's and each record's exact text, line endings included, as :func:`load_table` reads them.

    The csv module finds where each record ends (a quoted field may hold newlines),
    so a record is copied as the bytes it was, never re-serialised. Trailing blank
    lines, which the loader drops, are dropped here too.
    """
    body = text.rstrip("\r\n")
    ending = text[len(body):len(body) + 2]
    ending = "\r\n" if ending.startswith("\r\n") else (ending[:1] or _first_ending(text))
    body += ending
    lines = io.StringIO(body, newline="").readlines()
    offsets = np.concatenate([[0], np.cumsum([len(line) for line in lines])]).astype(np.int64)
    reader = csv.reader(iter(lines), delimiter=sep)
    spans: list[str] = []
    start = 0
    for _ in reader:
        end = int(offsets[reader.line_num])
        spans.append(body[start:end])
        start = end
    return spans[0], spans[1:]


def _first_ending(text: str) -> str:
    i = text.find("\n")
    return "\r\n" if i > 0 and text[i - 1] == "\r" else "\n"


def _source_payloads(result: SanitizeResult, targets: Mapping[str, Path]) -> dict[str, bytes]:
    """Kept and quarantined rows as bytes for each target, copied from the input file where the formats agree.

    CSV to CSV copies the input's own lines (header and records, byte for byte; the
    target's suffix may compress them); Parquet to Parquet takes the rows with
    pyarrow under the input's schema. Converting between formats, or an in-memory
    input, serialises the DataFrame.

    Raises
    ------
    IntegrityError
        The input file changed since :func:`sanitize` read it.
    """
    removed = np.zeros(result.n_input, dtype=bool)
    removed[result.removed_rows] = True
    selected = {"kept": np.flatnonzero(~removed), "quarantine": np.flatnonzero(removed)}
    frames = {"kept": result.kept, "quarantine": result.quarantined}
    inp = result.manifest["input"]["path"]
    src = Path(inp) if inp is not None else None
    if src is not None and file_digest(src) != result.manifest["input"]["digest"]:
        raise IntegrityError(f"{src} changed since it was sanitized; run sanitize again")
    src_parquet = src is not None and is_parquet_path(src)
    records = None
    out: dict[str, bytes] = {}
    for key, target in targets.items():
        to_parquet = target.suffix.lower() in (".parquet", ".pq")
        if src is not None and src_parquet and to_parquet:
            out[key] = _parquet_rows(src, selected[key])
        elif src is not None and not src_parquet and not to_parquet:
            if records is None:
                records = _input_records(src, result.n_input)
            header, bom, rows = records
            text = (("\ufeff" if bom else "") + header + "".join(rows[i] for i in selected[key])).encode("utf-8")
            out[key] = compress_for(text, target)
        else:
            out[key] = _table_bytes(frames[key], target)
    return out


def _input_records(src: Path, n_rows: int) -> tuple[str, bool, list[str]]:
    csv_text = read_csv_text(src)
    header, rows = _csv_records(csv_text.text, csv_text.sep)
    if len(rows) != n_rows:
        raise InputError(
            f"{src}: cannot copy rows verbatim: the csv module finds {len(rows)} records where the table has "
            f"{n_rows} rows; write a Parquet --out instead"
        )
    return header, csv_text.bom, rows


def _parquet_rows(src: Path, rows: np.ndarray) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(src)
    buf = io.BytesIO()
    pq.write_table(table.take(pa.array(rows, type=pa.int64())), buf)
    return buf.getvalue()


def write_outputs(
    result: SanitizeResult,
    out: str | Path,
    *,
    quarantine: str | Path | None = None,
    manifest: str | Path | None = None,
) -> dict[str, Path]:
    """Write kept rows to ``out``, quarantined rows and the manifest, each atomically.

    Rows are the input's own text: a CSV input's kept and quarantined rows are its
    lines, byte for byte (``00700`` stays ``00700``, ``NA`` stays ``NA``); see
    :func:`_source_payloads`. Every payload is prepared first, then each file is
    written to a temporary file and renamed into place; the manifest, which records
    the digests of the other outputs, is written last. A crash leaves either the
    old file or the complete new one, never a truncated table.

    Raises
    ------
    InputError
        ``out``, ``quarantine`` and ``manifest`` are not three different files, or
        one of them is the input.
    """
    inp = result.manifest["input"]["path"]
    check_outputs({"out": out, "quarantine": quarantine, "manifest": manifest}, {"data": inp})
    targets = {"kept": Path(out)}
    if quarantine is not None:
        targets["quarantine"] = Path(quarantine)
    payloads = _source_payloads(result, targets)
    import hashlib

    man = dict(result.manifest)
    man["outputs"] = {
        key: {"path": str(targets[key]), "digest": "sha256:" + hashlib.sha256(b).hexdigest()}
        for key, b in payloads.items()
    }
    written = {}
    for key, b in payloads.items():
        written[key] = atomic_write_bytes(b, targets[key])
    if manifest is not None:
        written["manifest"] = atomic_write_json(man, manifest)
    return written
