"""Atomic writes shared by every command: a crash mid-write never leaves a truncated output behind."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InputError

__all__ = ["atomic_write_table", "atomic_write_json", "atomic_write_bytes", "file_digest", "frame_digest"]

_PARQUET = {".parquet", ".pq"}


def atomic_write_bytes(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise InputError(f"cannot write {p}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return p


def _table_bytes(df: pd.DataFrame, path: Path) -> bytes:
    if path.suffix.lower() in _PARQUET:
        import io

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    return df.to_csv(index=False).encode("utf-8")


def atomic_write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV or Parquet (by suffix), atomically."""
    p = Path(path)
    return atomic_write_bytes(_table_bytes(df, p), p)


def atomic_write_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return atomic_write_bytes((json.dumps(obj, indent=2, default=str) + "\n").encode("utf-8"), path)


def file_digest(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def frame_digest(df: pd.DataFrame) -> str:
    """``sha256:<hex>`` of a DataFrame's CSV serialisation (for in-memory inputs)."""
    return "sha256:" + hashlib.sha256(df.to_csv(index=False).encode("utf-8")).hexdigest()
