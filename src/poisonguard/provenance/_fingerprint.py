"""Format-independent table fingerprints: canonical row values, per-row hashes, digests.

Canonical form of one cell (``CANON_VERSION`` 2)
-------------------------------------------------
Each column gets a kind: ``n`` numeric, ``b`` boolean, ``s`` string, ``t`` datetime or
``m`` mixed (an object column holding several types, whose cells then carry their own
kind letter). Each cell becomes text:

* null: ``None``, ``NaN``, ``NaT``, ``pd.NA`` and the empty string are all null and
  serialize as empty text;
* numbers: integers and *integral* finite floats serialize as the decimal integer, so
  ``3`` and ``3.0`` are the same value (``-0.0`` is ``0``); other floats as the shortest
  round-trip text in their own precision (a float32 ``0.1`` is ``0.1``, as a CSV holds it);
* text that is a number literal once surrounding whitespace is stripped (``" 2.5"``,
  ``"2.5 "``) loses that whitespace, as a numeric column's cells do when a CSV is
  parsed (canon 2; canon 1 kept it, so leading and trailing spaces hashed differently);
  other text keeps its whitespace;
* booleans as ``true``/``false``; strings NFC-normalized; datetimes as ISO 8601 (UTC when
  tz-aware); anything else as ``str(value)``.

A row is its cells' texts, escaped (``\\`` and ``\\x1f``) and joined with ``\\x1f`` in
*sorted column-name order*; its hash is BLAKE2b-128 of the UTF-8 bytes, personalized
with the column kinds (so the number ``1`` and the string ``"1"`` hash differently). The content
digest is SHA-256 over a header (canon version, ordered flag, sorted column names, row
count) and the 16-byte row hashes: sorted (order-independent, the default) or in row
order (``ordered=True``). A CSV and a Parquet file of the same table therefore share
their digest.

Versions record the canon they were hashed with (``"canon"``; absent means 1) and are
re-hashed with it, so ledgers written before canon 2 keep verifying. The row-hash
personalization is the same for both canons: rows the change does not touch hash
alike, so versions of either canon stay comparable row by row.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError

__all__ = [
    "CANON_VERSION",
    "ROW_HASH_SIZE",
    "Fingerprint",
    "RowHashes",
    "fingerprint_frame",
    "hash_frame",
    "row_hashes",
    "content_digest",
    "file_sha256",
]

CANON_VERSION = 2
_NUMBER_RE = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
_NUMBER = re.compile(_NUMBER_RE)
ROW_HASH_SIZE = 16
_SEP = "\x1f"
_INT_SAFE = 2.0**63


@dataclass(frozen=True)
class Fingerprint:
    """The fingerprint of one table.

    Attributes
    ----------
    columns : list of str
        Column names in canonical (sorted) order.
    n_rows : int
    row_hashes : ndarray of shape (n_rows, 16), uint8
        BLAKE2b-128 of each canonical row, in row order.
    digest : str
        SHA-256 hex content digest (order-independent unless ``ordered``).
    ordered_digest : str
        SHA-256 hex digest over the row hashes in row order (always computed).
    ordered : bool
        Whether ``digest`` depends on row order.
    """

    columns: list[str]
    n_rows: int
    row_hashes: np.ndarray
    digest: str
    ordered_digest: str
    ordered: bool

    @property
    def blob(self) -> bytes:
        """Row hashes in row order as one ``16 * n_rows`` byte string."""
        return np.ascontiguousarray(self.row_hashes).tobytes()


def file_sha256(path: Any, *, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


_L = pa.large_string()
_EMPTY = pa.scalar("", _L)


def _escape(arr: pa.Array) -> pa.Array:
    arr = pc.replace_substring(arr, "\\", "\\\\")
    return pc.replace_substring(arr, _SEP, "\\u")


def _nfc(arr: pa.Array) -> pa.Array:
    """NFC-normalize the strings when any is non-ASCII (ASCII is always NFC)."""
    if pc.all(pc.fill_null(pc.string_is_ascii(arr), True)).as_py():
        return arr
    return pc.utf8_normalize(arr, form="NFC")


def _canon_float(values: np.ndarray) -> pa.Array:
    """Float texts: integral values as integers, others as shortest round-trip text."""
    text = pc.cast(pa.array(values, from_pandas=True), _L)
    with np.errstate(invalid="ignore"):
        # Arrow prints integral floats as integers below ~1e13; fix the big ones and -0.0
        big = np.isfinite(values) & ((np.abs(values) >= 1e12) | ((values == 0) & np.signbit(values)))
    if big.any():
        idx = np.flatnonzero(big)
        fixed = [_canon_number(float(values[i])) for i in idx]
        py = text.to_pylist()
        for i, f in zip(idx.tolist(), fixed):
            py[i] = f
        text = pa.array(py, type=_L)
    return pc.fill_null(text, "")


def _canon_number(f: float) -> str:
    if f != f:
        return ""
    if np.isfinite(f) and f == int(f) and abs(f) < _INT_SAFE * 2**63:
        return str(int(f))
    return pc.cast(pa.array([f]), pa.string())[0].as_py()


def _canon_object_value(v: Any, canon: int = CANON_VERSION) -> str:
    """Self-tagged canonical text of one value of a mixed column."""
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "btrue" if v else "bfalse"
    if isinstance(v, (int, np.integer)):
        return f"n{int(v)}"
    if isinstance(v, (float, np.floating)):
        txt = _canon_number(float(v)) if isinstance(v, float) or v.dtype != np.float32 else (
            str(int(v)) if np.isfinite(v) and v == np.floor(v) else pc.cast(pa.array([v]), pa.string())[0].as_py()
        )
        return "n" + txt if txt else ""
    if isinstance(v, str):
        if canon >= 2 and v != v.strip() and _NUMBER.match(v.strip()):
            v = v.strip()
        return "s" + unicodedata.normalize("NFC", v) if v != "" else ""
    if isinstance(v, bytes):
        return "x" + v.hex()
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return "t" + _iso(pd.Timestamp(v))
    return "s" + unicodedata.normalize("NFC", str(v))


def _iso(ts: pd.Timestamp) -> str:
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.isoformat()


def _column_kind(col: pd.Series) -> str:
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "b"
    if pd.api.types.is_numeric_dtype(dtype):
        return "n"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "t"
    if pd.api.types.is_string_dtype(dtype) and not pd.api.types.is_object_dtype(dtype):
        return "s"
    values = col.dropna().to_numpy(dtype=object)
    if values.size == 0:
        return "s"
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    return {"string": "s", "empty": "s", "boolean": "b", "integer": "n", "floating": "n",
            "mixed-integer-float": "n", "decimal": "n"}.get(inferred, "m")


def _strip_numbers(arr: pa.Array) -> pa.Array:
    """Strip surrounding whitespace from the cells that are number literals once stripped (canon 2)."""
    stripped = pc.utf8_trim_whitespace(arr)
    is_number = pc.fill_null(pc.match_substring_regex(stripped, _NUMBER_RE), False)
    return pc.if_else(is_number, stripped, arr)


def _canon_column(col: pd.Series, canon: int = CANON_VERSION) -> tuple[str, pa.Array]:
    """Kind tag and canonical, escaped text of one column (null cells are empty text)."""
    kind = _column_kind(col)
    if kind == "b":
        arr = pa.array(col.to_numpy(dtype=object, na_value=None), type=pa.bool_())
        out = pc.if_else(arr, pa.scalar("true", _L), pa.scalar("false", _L))
        return kind, pc.fill_null(out, "")
    if kind == "n" and pd.api.types.is_integer_dtype(col.dtype):
        return kind, pc.fill_null(pc.cast(pa.Array.from_pandas(col), _L), "")
    if kind == "n" and str(col.dtype).lower() == "float32":
        values = col.to_numpy(dtype=np.float32, na_value=np.nan)
        text = pc.cast(pa.array(values, from_pandas=True), _L)  # shortest float32 text
        with np.errstate(invalid="ignore"):
            big = np.isfinite(values) & ((np.abs(values) >= 1e12) | ((values == 0) & np.signbit(values)))
        if big.any():
            py = text.to_pylist()
            for i in np.flatnonzero(big).tolist():
                py[i] = _canon_number(float(values[i]))
            text = pa.array(py, type=_L)
        return kind, pc.fill_null(text, "")
    if kind == "n" and pd.api.types.is_float_dtype(col.dtype):
        return kind, _canon_float(col.to_numpy(dtype=np.float64, na_value=np.nan))
    if kind == "s":
        if pd.api.types.is_object_dtype(col.dtype):
            arr = pa.array(col.to_numpy(dtype=object), type=_L, from_pandas=True)
        else:
            arr = pc.cast(pa.array(col), _L)
        if canon >= 2:
            arr = _strip_numbers(arr)
        return kind, pc.fill_null(_escape(_nfc(arr)), "")
    if kind == "t":
        return kind, pa.array([_canon_object_value(v)[1:] for v in col.tolist()], type=_L)
    if kind == "n":  # numeric values in an object column
        return kind, pa.array([_canon_object_value(v)[1:] for v in col.tolist()], type=_L)
    # mixed object column: slow path, each value tagged by its own type
    return kind, _escape(pa.array([_canon_object_value(v, canon) for v in col.tolist()], type=_L))


def _hash_rows(joined: pa.Array, n: int, person: bytes) -> np.ndarray:
    joined = pc.cast(joined, pa.large_binary())
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    blake = hashlib.blake2b
    size = ROW_HASH_SIZE
    # to_pylist on a binary array is a tight C loop building bytes objects
    digests = b"".join([blake(v, digest_size=size, person=person).digest() for v in joined.to_pylist()])
    return np.frombuffer(digests, dtype=np.uint8).reshape(n, ROW_HASH_SIZE)


def _person(kinds: list[str]) -> bytes:
    """BLAKE2b personalization binding every row hash to the column kinds (16 bytes)."""
    # "v1" for every canon: rows that canon 2 does not change must hash as under canon 1
    return hashlib.sha256(("poisonguard-row-v1:" + "".join(kinds)).encode()).digest()[:16]


@dataclass(frozen=True)
class RowHashes:
    """Row hashes of one frame, with the column kinds that personalized them.

    A partitioned dataset is hashed piece by piece; a column's kind is a property of the
    whole table (the kind of its values), so the pieces must agree on it. A piece where a
    column holds only nulls cannot tell its kind (every cell is empty text under any
    kind), which is why ``empty`` is kept: such a piece is re-hashed with the kinds of
    the pieces that hold values (see :func:`hash_frame`'s ``kinds``).

    Attributes
    ----------
    columns : list of str
        Column names in canonical (sorted) order.
    kinds : list of str
        The kind letter of each column, in ``columns`` order.
    empty : frozenset of str
        Columns whose every cell is empty text (null).
    hashes : ndarray of shape (n_rows, 16), uint8
    """

    columns: list[str]
    kinds: list[str]
    empty: frozenset[str]
    hashes: np.ndarray

    @property
    def kind_of(self) -> dict[str, str]:
        return dict(zip(self.columns, self.kinds))


def _canon_columns(df: pd.DataFrame, columns: list[str], canon: int, threads: int | None) -> list[tuple[str, pa.Array]]:
    by_name = {str(c): c for c in df.columns}
    workers = threads or min(4, os.cpu_count() or 1)
    if workers > 1 and len(columns) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda c: _canon_column(df[by_name[c]], canon), columns))
    return [_canon_column(df[by_name[c]], canon) for c in columns]


def _join(texts: list[pa.Array]) -> pa.Array:
    return pc.binary_join_element_wise(*texts, pa.scalar(_SEP, _L)) if len(texts) > 1 else texts[0]


def row_hashes(df: pd.DataFrame, *, threads: int | None = None, canon: int = CANON_VERSION) -> tuple[list[str], np.ndarray]:
    """Canonical column order and BLAKE2b-128 row hashes (``(n_rows, 16)`` uint8).

    Columns are canonicalized in a thread pool (Arrow kernels release the GIL).
    """
    columns = sorted(str(c) for c in df.columns)
    n = int(df.shape[0])
    if n == 0:
        return columns, np.zeros((0, ROW_HASH_SIZE), dtype=np.uint8)
    parts = _canon_columns(df, columns, canon, threads)
    kinds = [kind for kind, _ in parts]
    return columns, _hash_rows(_join([text for _, text in parts]), n, _person(kinds))


def hash_frame(df: pd.DataFrame, *, canon: int = CANON_VERSION, kinds: Mapping[str, str] | None = None,
               threads: int | None = None) -> RowHashes:
    """Row hashes as :func:`row_hashes`, with the kinds used and the columns that are all null.

    Parameters
    ----------
    df : DataFrame
    canon : int
        Canonical form (1 or 2).
    kinds : mapping of column name to kind letter, optional
        Kinds decided elsewhere (by the other pieces of the same table). They replace
        the kind inferred here only for columns that are empty in ``df``, where the kind
        cannot be inferred and does not change any cell's text; so the hashes are the
        ones the whole table gives.

    Raises
    ------
    DataError
        ``kinds`` gives another kind for a column that holds values here.
    """
    columns = sorted(str(c) for c in df.columns)
    n = int(df.shape[0])
    if n == 0:
        by_name = {str(c): c for c in df.columns}
        natural = [_column_kind(df[by_name[c]]) for c in columns]
        used = [(kinds or {}).get(c, k) for c, k in zip(columns, natural)]
        return RowHashes(columns, used, frozenset(columns), np.zeros((0, ROW_HASH_SIZE), dtype=np.uint8))
    parts = _canon_columns(df, columns, canon, threads)
    empty = frozenset(c for c, (_, text) in zip(columns, parts)
                      if pc.max(pc.binary_length(text)).as_py() == 0)
    used = []
    for c, (kind, _) in zip(columns, parts):
        want = (kinds or {}).get(c, kind)
        if want != kind and c not in empty:
            raise DataError(f"column {c!r} holds values of kind {_KIND_NAMES.get(kind, kind)} here but of kind "
                            f"{_KIND_NAMES.get(want, want)} in the rest of the table")
        used.append(want)
    hashes = _hash_rows(_join([text for _, text in parts]), n, _person(used))
    return RowHashes(columns, used, empty, hashes)


_KIND_NAMES = {"n": "numeric", "b": "boolean", "s": "string", "t": "datetime", "m": "mixed"}


def sort_hashes(hashes: np.ndarray) -> np.ndarray:
    """Row hashes sorted bytewise (lexicographically)."""
    if hashes.shape[0] < 2:
        return hashes
    keys = np.ascontiguousarray(hashes).view(">u8").reshape(-1, 2).astype(np.uint64)
    order = np.argsort(keys[:, 0], kind="stable")
    hi = keys[order, 0]
    if np.any(hi[1:] == hi[:-1]):  # equal 64-bit prefixes (duplicate rows): full sort
        order = np.lexsort((keys[:, 1], keys[:, 0]))
    return hashes[order]


def content_digest(columns: list[str], hashes: np.ndarray, *, ordered: bool, canon: int = CANON_VERSION) -> str:
    """SHA-256 content digest over the header and the (sorted unless ``ordered``) row hashes."""
    header = json.dumps(
        {"canon": canon, "ordered": bool(ordered), "columns": columns, "n_rows": int(hashes.shape[0])},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    h = hashlib.sha256(b"poisonguard-content\x00" + header.encode("utf-8") + b"\x00")
    body = hashes if ordered else sort_hashes(hashes)
    h.update(np.ascontiguousarray(body).tobytes())
    return h.hexdigest()


def fingerprint_frame(df: pd.DataFrame, *, ordered: bool = False, canon: int = CANON_VERSION) -> Fingerprint:
    """Fingerprint a DataFrame: canonical row hashes and content digests.

    Parameters
    ----------
    df : DataFrame
    ordered : bool, default False
        Make ``digest`` depend on row order.
    """
    if canon not in (1, 2):
        raise ValueError(f"unknown canon version {canon}; this poisonguard knows 1 and {CANON_VERSION}")
    columns, hashes = row_hashes(df, canon=canon)
    ordered_digest = content_digest(columns, hashes, ordered=True, canon=canon)
    digest = ordered_digest if ordered else content_digest(columns, hashes, ordered=False, canon=canon)
    return Fingerprint(columns=columns, n_rows=int(hashes.shape[0]), row_hashes=hashes,
                       digest=digest, ordered_digest=ordered_digest, ordered=bool(ordered))
