"""The index tables, rebuilt from the signed entries and compared with what is stored.

Every column of ``sources``, ``dataset_versions``, ``row_hashes`` and ``scans`` is a
function of the signed, hash-chained entries (and of each entry's signed time), so
``verify`` recomputes each row from the chain and names every row and column that
differs, every row without an entry and every entry without its row. Nothing in
these tables is trusted on its own: an ``UPDATE sources SET kind = ...`` (which changes
a source's trust prior) is as visible as an edited entry.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..store import Store
from ._ledger import ChainProblem, Entry
from ._models import RowHashesRow, ScanRow, SourceRow, VersionRow

__all__ = ["check_index", "expected_index"]

Rows = dict[Any, dict[str, Any]]


def _sources(entries: list[Entry]) -> Rows:
    rows: Rows = {}
    for e in entries:
        if e.kind == "source":
            p = e.payload
            rows[p.get("name")] = {"kind": p.get("kind"), "owner": p.get("owner"), "url": p.get("url"),
                                   "notes": p.get("notes"), "entry_seq": e.seq, "flagged": 0, "total": 0,
                                   "failed_verifications": 0, "n_scans": 0}
    for e in entries:  # evidence, applied in ledger order as the writers applied it
        if e.kind == "scan":
            for src, ft in (e.payload.get("per_source") or {}).items():
                if src in rows:
                    r = rows[src]
                    r["flagged"] += int(ft[0])
                    r["total"] += int(ft[1])
                    r["n_scans"] += 1
        elif e.kind == "verification" and not e.payload.get("ok", True):
            src = e.payload.get("source")
            if src in rows:
                rows[src]["failed_verifications"] += 1
    return rows


def _versions(entries: list[Entry]) -> tuple[Rows, Rows]:
    versions: Rows = {}
    hashes: Rows = {}
    for e in entries:
        p = e.payload
        if e.kind != "version" or "version_id" not in p:
            continue
        vid = p["version_id"]
        f = p.get("file") or {}
        versions[vid] = {"name": p.get("name"), "number": p.get("number"), "source": p.get("source"),
                         "parent": p.get("parent"), "entry_seq": e.seq, "digest": p.get("digest"),
                         "file_sha256": f.get("sha256"), "file_path": f.get("path"), "n_rows": p.get("n_rows"),
                         "recorded_at": e.body.get("at")}
        hashes[vid] = {"hashes_sha256": p.get("row_hashes_sha256"), "ids_sha256": p.get("ids_sha256")}
    return versions, hashes


def _scans(entries: list[Entry]) -> Rows:
    rows: Rows = {}
    for e in entries:
        if e.kind != "scan":
            continue
        p = e.payload
        per = p.get("per_source") or {}
        tot_f = sum(int(ft[0]) for ft in per.values())
        tot_t = sum(int(ft[1]) for ft in per.values())
        rows[e.seq] = {"version_id": p.get("version_id"), "recorded_at": e.body.get("at"),
                       "flag_rate": (tot_f / tot_t) if tot_t else None, "summary": p.get("summary", {})}
    return rows


def expected_index(entries: list[Entry]) -> dict[str, Rows]:
    """What each index table must hold, by primary key, given the signed entries."""
    versions, hashes = _versions(entries)
    return {"sources": _sources(entries), "dataset_versions": versions, "row_hashes": hashes,
            "scans": _scans(entries)}


def _stored(s: Session) -> dict[str, Rows]:
    def blob_sha(b: bytes | None) -> str | None:
        return hashlib.sha256(b).hexdigest() if b is not None else None

    def summary(text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            return text  # never equal to a parsed summary: reported as edited

    cols = lambda row, names: {n: getattr(row, n) for n in names}  # noqa: E731
    src_cols = ("kind", "owner", "url", "notes", "entry_seq", "flagged", "total", "failed_verifications", "n_scans")
    ver_cols = ("name", "number", "source", "parent", "entry_seq", "digest", "file_sha256", "file_path", "n_rows",
                "recorded_at")
    return {
        "sources": {r.name: cols(r, src_cols) for r in s.execute(select(SourceRow)).scalars()},
        "dataset_versions": {r.version_id: cols(r, ver_cols) for r in s.execute(select(VersionRow)).scalars()},
        "row_hashes": {r.version_id: {"hashes_sha256": blob_sha(r.hashes), "ids_sha256": blob_sha(r.ids)}
                       for r in s.execute(select(RowHashesRow)).scalars()},
        "scans": {r.entry_seq: {"version_id": r.version_id, "recorded_at": r.recorded_at, "flag_rate": r.flag_rate,
                                "summary": summary(r.summary)} for r in s.execute(select(ScanRow)).scalars()},
    }


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-15)
    return bool(a == b)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


_WHAT = {"sources": "source", "dataset_versions": "version", "row_hashes": "row hashes of", "scans": "scan of entry"}


def _compare(table: str, stored: Rows, expected: Rows, seqs: dict[Any, int]) -> Iterable[ChainProblem]:
    what = _WHAT[table]
    for key, want in expected.items():
        have = stored.get(key)
        seq = seqs.get(key)
        if have is None:
            yield ChainProblem("index", seq, f"{what} {key} (entry {seq}) is missing from the {table} table")
            continue
        diff = [c for c in want if not _same(have.get(c), want[c])]
        if diff:
            shown = ", ".join(f"{c} is {_short(have.get(c))}, signed {_short(want[c])}" for c in diff[:4])
            more = f" and {len(diff) - 4} more column(s)" if len(diff) > 4 else ""
            yield ChainProblem("index", seq, f"{what} {key} was altered in the {table} table "
                                             f"(differs from entry {seq}): {shown}{more}")
    for key in sorted(stored.keys() - expected.keys(), key=str):
        yield ChainProblem("index", None, f"{what} {key} in the {table} table has no ledger entry "
                                          "(inserted behind the ledger)")


def check_index(store: Store, entries: list[Entry]) -> list[ChainProblem]:
    """Compare every row and column of the index tables with the one rebuilt from ``entries``."""
    want = expected_index(entries)
    with store.session() as s:
        have = _stored(s)
    problems: list[ChainProblem] = []
    version_seq = {k: v["entry_seq"] for k, v in want["dataset_versions"].items()}
    seqs = {"sources": {k: v["entry_seq"] for k, v in want["sources"].items()}, "dataset_versions": version_seq,
            "row_hashes": version_seq, "scans": {k: k for k in want["scans"]}}
    for table in ("sources", "dataset_versions", "row_hashes", "scans"):
        problems.extend(_compare(table, have[table], want[table], seqs[table]))
    return problems
