"""Validation at the edges: loading tables and checking arrays.

Every check that guards a public entry point lives here, so messages are
consistent and give the actual values. Errors are from :mod:`poisonguard.errors`.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from .errors import DataError, InputError, NotFittedError

__all__ = [
    "load_table",
    "read_csv_text",
    "sniff_delimiter",
    "is_parquet_path",
    "CsvText",
    "SCAN_OUTPUT_COLUMNS",
    "check_output_columns",
    "check_count",
    "check_column_name",
    "save_table",
    "as_frame",
    "PreparedTable",
    "prepare_table",
    "parse_columns",
    "check_X",
    "check_y",
    "frozen_fact",
    "check_is_fitted",
    "check_fraction",
    "resolve_roles",
    "resolve_class",
]

_PARQUET_SUFFIXES = {".parquet", ".pq"}
_CSV_SUFFIXES = {".csv", ".tsv", ".txt"}


@dataclass(frozen=True)
class CsvText:
    """A CSV file's text after decompression and decoding, with its delimiter.

    Attributes
    ----------
    text : str
        The decoded text (without a byte-order mark).
    sep : str
        The field delimiter: ``,``, ``;``, tab or ``|``.
    bom : bool
        Whether the file started with a UTF-8 byte-order mark.
    compression : str or None
        ``gzip``, ``bz2``, ``xz`` or ``zip`` when the file was compressed.
    """

    text: str
    sep: str
    bom: bool = False
    compression: str | None = None


_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip"}
_DELIMITERS = (",", ";", "\t", "|")


def _compression(p: Path, raw: bytes) -> str | None:
    by_suffix = _COMPRESSIONS.get(p.suffix.lower())
    if by_suffix is not None:
        return by_suffix
    return next((kind for magic, kind in _MAGIC.items() if raw.startswith(magic)), None)


def _decompress(raw: bytes, kind: str, p: Path) -> bytes:
    """The bytes inside a gzip/bz2/xz file or a one-member zip archive."""
    import bz2
    import gzip
    import lzma
    import zipfile

    try:
        if kind == "gzip":
            return gzip.decompress(raw)
        if kind == "bz2":
            return bz2.decompress(raw)
        if kind == "xz":
            return lzma.decompress(raw)
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise InputError(f"{p}: a zip archive must hold exactly one table, it holds {len(names)} files")
            return zf.read(names[0])
    except (OSError, EOFError, ValueError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot decompress {p} as {kind}: {exc}") from exc


def sniff_delimiter(text: str, *, default: str = ",") -> str:
    """The delimiter among ``,`` ``;`` tab ``|`` that splits the first lines into one consistent width.

    The comma wins whenever it gives more than one column consistently; otherwise
    the candidate giving the most columns consistently; otherwise ``default``.
    """
    sample = text[:65536]
    if len(text) > len(sample):  # drop a record cut in half by the sample's end
        sample = sample[: sample.rfind("\n") + 1]
    best, best_width = default, 1
    for sep in _DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(sample), delimiter=sep) if r][:50]
        except csv.Error:
            continue
        widths = {len(r) for r in rows}
        if len(widths) != 1 or next(iter(widths)) < 2:
            continue
        width = next(iter(widths))
        if sep == ",":
            return sep
        if width > best_width:
            best, best_width = sep, width
    return best


def read_csv_text(path: str | Path) -> CsvText:
    """Read, decompress (by suffix or magic bytes) and decode a CSV file; sniff its delimiter.

    Raises
    ------
    InputError
        Unreadable or undecodable file (the message gives the byte offset and line).
    DataError
        The file is empty.
    """
    p = Path(path)
    raw = _read_bytes(p)
    kind = _compression(p, raw)
    if kind is not None:
        raw = _decompress(raw, kind, p)
    if len(raw) == 0:
        raise DataError(f"{p} is empty (0 bytes)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{p} is not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start} (line {line}); "
            "re-encode the file as UTF-8"
        ) from exc
    inner = p.with_suffix("").suffix.lower() if kind is not None and p.suffix.lower() in _COMPRESSIONS else p.suffix.lower()
    sep = "\t" if inner == ".tsv" else sniff_delimiter(text)
    return CsvText(text=text, sep=sep, bom=raw.startswith(b"\xef\xbb\xbf"), compression=kind)


def _read_bytes(p: Path) -> bytes:
    if not p.exists():
        raise InputError(f"file not found: {p}")
    if p.is_dir():
        raise InputError(f"expected a file but got a directory: {p}")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror or exc}") from exc


def is_parquet_path(path: str | Path) -> bool:
    """Whether ``path`` is read as Parquet: by suffix, else (no CSV suffix) by its magic bytes."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in _PARQUET_SUFFIXES:
        return True
    if suffix in _CSV_SUFFIXES or suffix in _COMPRESSIONS:
        return False
    try:
        with open(p, "rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame, with one-line errors.

    Parameters
    ----------
    path : str or Path
        ``.csv``/``.tsv``/``.txt`` or ``.parquet``/``.pq``. Other suffixes are sniffed:
        Parquet magic bytes first, then CSV. CSV may be compressed (``.gz``, ``.bz2``,
        ``.xz``, one-member ``.zip``); its delimiter (``,`` ``;`` tab ``|``) is sniffed
        (``.tsv`` is always tab-separated).

    Raises
    ------
    InputError
        Missing or unreadable file, non-UTF-8 bytes, duplicate column names.
    DataError
        The table has no rows or no columns.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"file not found: {p}")
    if p.is_dir():
        raise InputError(f"expected a file but got a directory: {p}")
    if is_parquet_path(p):
        raw = _read_bytes(p)
        try:
            df = pd.read_parquet(io.BytesIO(raw))
        except Exception as exc:  # pyarrow raises several unrelated types
            raise InputError(f"cannot read {p} as Parquet: {exc}") from exc
    else:
        csv_text = read_csv_text(p)
        text, sep = csv_text.text, csv_text.sep
        try:
            # A row whose every cell is empty is a blank line: keep it (pandas would drop
            # it silently, and a scan must never lose rows); only trailing newlines go.
            body = text.rstrip("\r\n") + "\n"
            df = pd.read_csv(io.StringIO(body), sep=sep, low_memory=False, skip_blank_lines=False)
        except pd.errors.EmptyDataError as exc:
            raise DataError(f"{p} has no columns") from exc
        except pd.errors.ParserError as exc:
            raise InputError(f"cannot parse {p} as CSV: {str(exc).strip()}") from exc
        # pandas silently renames duplicate headers to "a.1"; read the header to refuse them.
        header = next(csv.reader(io.StringIO(text), delimiter=sep), [])
        _check_unique_columns([c.strip() for c in header], p)
    _check_unique_columns([str(c) for c in df.columns], p)
    if df.shape[1] == 0:
        raise DataError(f"{p} has no columns")
    if df.shape[0] == 0:
        raise DataError(f"{p} has a header but no rows")
    return df


def save_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as Parquet or CSV depending on the suffix, atomically (see :mod:`poisonguard._io`)."""
    from ._io import atomic_write_table

    return atomic_write_table(df, path)


def _check_unique_columns(columns: Sequence[str], where: Any) -> None:
    seen: set[str] = set()
    dups = sorted({c for c in columns if c in seen or seen.add(c)})  # type: ignore[func-returns-value]
    if dups:
        raise InputError(f"{where}: duplicate column names: {', '.join(map(repr, dups))}")


def as_frame(data: Any, *, where: str = "data") -> pd.DataFrame:
    """Turn a path, DataFrame, dict or 2-D array into a DataFrame (copying nothing we mutate)."""
    if isinstance(data, (str, Path)):
        return load_table(data)
    if isinstance(data, pd.DataFrame):
        df = data
    elif isinstance(data, np.ndarray):
        if data.ndim != 2:
            raise InputError(f"{where} must be 2-D, got an array of shape {data.shape}")
        df = pd.DataFrame(data, columns=[f"x{i}" for i in range(data.shape[1])])
    elif isinstance(data, dict):
        df = pd.DataFrame(data)
    else:
        raise InputError(f"{where} must be a path, DataFrame or 2-D array, got {type(data).__name__}")
    _check_unique_columns([str(c) for c in df.columns], where)
    if df.shape[0] == 0:
        raise DataError(f"{where} has no rows")
    if df.shape[1] == 0:
        raise DataError(f"{where} has no columns")
    return df


def parse_columns(spec: str | Sequence[str] | None) -> list[str] | None:
    """Parse ``"a,b,c"`` or a sequence into a list of column names (``None`` stays ``None``)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        cols = [c.strip() for c in spec.split(",") if c.strip()]
    else:
        cols = [str(c) for c in spec]
    if not cols:
        raise InputError("an empty column list was given")
    return cols


@dataclass(frozen=True)
class PreparedTable:
    """A table split into its roles, after validation.

    Attributes
    ----------
    frame : DataFrame
        The original table, untouched (used for outputs).
    features : list of str
        Feature column names, in order.
    y : ndarray of int or None
        Label codes ``0..n_classes-1`` (``None`` without a label column).
    classes : ndarray
        The original label values; ``classes[y[i]]`` is row ``i``'s label.
    ids, sources : ndarray or None
        Per-row id and data-source values when those columns were given.
    """

    frame: pd.DataFrame
    features: list[str]
    label: str | None
    y: np.ndarray | None
    classes: np.ndarray
    id_col: str | None = None
    ids: np.ndarray | None = None
    source_col: str | None = None
    sources: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return int(self.frame.shape[0])


def resolve_roles(
    columns: Sequence[str],
    *,
    label: str | None = None,
    id_col: str | None = None,
    source_col: str | None = None,
    features: str | Sequence[str] | None = None,
    where: str = "data",
) -> list[str]:
    """Check the column roles against ``columns`` and return the feature columns.

    Shared by :func:`prepare_table` and the partitioned (Dask) scan, which checks the
    roles against partition schemas before reading any rows.

    Raises
    ------
    InputError
        A role that is not a column name or not a column, a column given two roles, an
        unknown or repeated feature, a feature that has another role, no feature left.
    """
    roles = {"label": label, "id_col": id_col, "source_col": source_col}
    for opt, col in roles.items():
        check_column_name(col, opt)
    columns = [str(c) for c in columns]
    for opt, col in roles.items():
        if col is not None and col not in columns:
            raise InputError(f"{where}: {{{opt}}} column {col!r} not found; columns are: {_preview(columns)}",
                             params=[opt])
    given = [c for c in roles.values() if c is not None]
    if len(set(given)) != len(given):
        raise InputError(f"{where}: the same column was given two roles: {given}")
    feats = parse_columns(features)
    if feats is None:
        feats = [c for c in columns if c not in given]
    else:
        unknown = [c for c in feats if c not in columns]
        if unknown:
            raise InputError(f"{where}: unknown feature column(s) {unknown}; columns are: {_preview(columns)}")
        if len(set(feats)) != len(feats):
            raise InputError(f"{where}: a feature column is listed twice in {{features}}: {feats}",
                             params=["features"])
        clash = [c for c in feats if c in given]
        if clash:
            raise InputError(f"{where}: column {clash[0]!r} is both a feature and the label/id/source column")
    if not feats:
        raise InputError(f"{where}: no feature columns left after removing label/id/source")
    return list(feats)


def prepare_table(
    data: Any,
    *,
    label: str | None = None,
    id_col: str | None = None,
    source_col: str | None = None,
    features: str | Sequence[str] | None = None,
    require_label: bool = False,
    where: str = "data",
) -> PreparedTable:
    """Validate column roles and encode labels.

    Raises
    ------
    InputError
        Unknown column, a column given two roles, no feature left.
    DataError
        NaN/empty labels (rows named), a single class, inf values, too few rows.
    """
    df = as_frame(data, where=where)
    columns = [str(c) for c in df.columns]
    if list(df.columns) != columns:
        df = df.set_axis(columns, axis=1)
    feats = resolve_roles(columns, label=label, id_col=id_col, source_col=source_col, features=features,
                          where=where)
    if require_label and label is None:
        raise InputError("this command needs a label column: pass {label} COL", params=["label"])
    if df.shape[0] < 3:
        raise DataError(f"{where} has {df.shape[0]} row(s); at least 3 are needed")
    _check_finite(df, feats, where)
    warnings: list[str] = []
    if len(feats) >= df.shape[0]:
        warnings.append(
            f"{where} has more feature columns ({len(feats)}) than rows ({df.shape[0]}); "
            "scores rest on few examples per dimension"
        )
    y = None
    classes = np.array([], dtype=object)
    if label is not None:
        y, classes = _encode_labels(df[label], label, where)
    ids = df[id_col].to_numpy() if id_col else None
    sources = df[source_col].astype("string").fillna("<missing>").to_numpy(dtype=object) if source_col else None
    return PreparedTable(
        frame=df, features=feats, label=label, y=y, classes=classes,
        id_col=id_col, ids=ids, source_col=source_col, sources=sources, warnings=warnings,
    )


def check_column_name(value: Any, option: str) -> None:
    """Refuse a column role given as something other than a column name.

    ``scan(X, label=y_array)`` is a natural thing to try; numpy would answer with an
    ambiguous-truth-value error from deep inside, so say what to do instead.
    """
    if value is None or isinstance(value, str):
        return
    if isinstance(value, (np.ndarray, pd.Series, list, tuple)):
        raise InputError(
            f"{{{option}}} must name a column of the table, got a {type(value).__name__} of values; "
            "add the values as a column (e.g. df.assign(label=y)) and pass its name", params=[option],
        )
    raise InputError(f"{{{option}}} must be a column name (str), got {type(value).__name__} {value!r}",
                     params=[option])


#: Columns that ``scan`` adds to ``suspicious_samples.csv`` beside the input's own columns.
SCAN_OUTPUT_COLUMNS = ("row", "suspicion", "detectors", "reason")


def check_output_columns(columns: Sequence[Any], *, reserved: Sequence[str] = SCAN_OUTPUT_COLUMNS,
                         where: str = "data") -> None:
    """Refuse input columns that an output would add under the same name, before any work starts.

    ``suspicious_samples.csv`` holds the input's columns plus ``row``, ``suspicion``,
    ``detectors`` and ``reason``; an input column of one of those names would be
    overwritten or crash the writer after the whole scan.

    Raises
    ------
    InputError
        Naming the clashing column(s).
    """
    clash = [str(c) for c in columns if str(c) in set(reserved)]
    if clash:
        raise InputError(
            f"{where}: column(s) {', '.join(map(repr, clash))} clash with the output columns "
            f"{', '.join(reserved)} of suspicious_samples.csv; rename them in the input"
        )


def check_count(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int ``>= minimum``; refuse non-integers (2.5), bools and NaN.

    Raises
    ------
    InputError
        Naming ``name`` and the value.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float, np.floating)):
        raise InputError(f"{{{name}}} must be a whole number >= {minimum}, got {value!r}", params=[name])
    if isinstance(value, (float, np.floating)) and not (np.isfinite(value) and float(value).is_integer()):
        raise InputError(f"{{{name}}} must be a whole number >= {minimum}, got {value!r}", params=[name])
    if int(value) < minimum:
        raise InputError(f"{{{name}}} must be >= {minimum}, got {value!r}", params=[name])
    return int(value)


def _preview(items: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def _check_finite(df: pd.DataFrame, feats: Sequence[str], where: str) -> None:
    num = df[list(feats)].select_dtypes(include=[np.number])
    if num.shape[1] == 0:
        return
    # column by column: the whole table as one float64 matrix was the largest temporary of a big scan
    first: tuple[int, int] | None = None  # (row, column) of the first inf value in row-major order
    total = 0
    for c in range(num.shape[1]):
        bad = np.isinf(num.iloc[:, c].to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            total += int(bad.sum())
            r = int(np.argmax(bad))
            if first is None or r < first[0]:
                first = (r, c)
    if first is not None:
        r, c = first
        raise DataError(
            f"{where}: column {num.columns[c]!r} has an infinite value at row {r} "
            f"({total} inf value(s) in all); replace them with a finite value or leave them empty"
        )


def _encode_labels(col: pd.Series, name: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    missing = col.isna().to_numpy().copy()  # pandas 3 may hand back a read-only view
    if col.dtype == object or pd.api.types.is_string_dtype(col):
        missing |= col.astype("string").str.strip().fillna("").eq("").to_numpy()
    if missing.any():
        rows = np.flatnonzero(missing)
        shown = ", ".join(map(str, rows[:10])) + (" ..." if rows.size > 10 else "")
        raise DataError(f"{where}: label column {name!r} is empty or NaN in {rows.size} row(s): {shown}")
    try:
        classes, codes = np.unique(col.to_numpy(), return_inverse=True)
    except TypeError:  # mixed types (e.g. 3 and "a") do not sort; their text does
        classes, codes = np.unique(col.astype(str).to_numpy(), return_inverse=True)
    if classes.size < 2:
        only = classes[0].item() if isinstance(classes[0], np.generic) else classes[0]
        raise DataError(f"{where}: label column {name!r} has a single class ({only!r}); at least 2 are needed")
    _check_class_label(col, name, where, n_classes=int(classes.size))
    return codes.astype(np.int64), classes


#: A float label with more distinct non-integer values than this is a measurement, not a class.
_MAX_FLOAT_CLASSES = 20
#: From this many rows, a label column whose every value is distinct is refused.
_MIN_ROWS_UNIQUE = 10


def _check_class_label(col: pd.Series, name: str, where: str, *, n_classes: int) -> None:
    """Refuse a label column that cannot be a class label.

    With fewer than two rows per class on average (every value unique is the extreme)
    or many distinct fractional values (a price, a measurement), every label-based
    detector sees each row as disagreeing with its neighbours and flags all of them.
    """
    n = len(col)
    # Small tables may legitimately hold few rows of many classes; refuse only what
    # is clearly not a label: every value distinct, or many classes of under 2 rows.
    if (n_classes == n and n >= _MIN_ROWS_UNIQUE) or (n_classes > _MAX_FLOAT_CLASSES and n_classes * 2 > n):
        raise DataError(
            f"{where}: label column {name!r} has {n_classes:,} distinct values in {n:,} rows "
            f"(fewer than 2 rows per class); it looks like an id or a measurement, not a class label"
        )
    if pd.api.types.is_float_dtype(col):
        vals = col.to_numpy(dtype=float)
        if n_classes > _MAX_FLOAT_CLASSES and not np.all(vals == np.round(vals)):
            raise DataError(
                f"{where}: label column {name!r} has {n_classes:,} distinct values in {n:,} rows, "
                "with fractions; it looks continuous, not a class label"
            )


T = TypeVar("T")

#: facts computed once per frozen array (see :func:`frozen_fact`), by ``id``
_FACTS: dict[int, tuple[weakref.ref, dict[str, Any]]] = {}
_FACTS_LOCK = threading.Lock()


def frozen_fact(arr: np.ndarray, name: str, compute: Callable[[np.ndarray], T]) -> T:
    """``compute(arr)``, remembered for as long as ``arr`` lives when ``arr`` cannot change.

    Only an array that owns its memory and is read-only qualifies (the scan freezes
    its encoded matrix); any other array is computed afresh on every call. Detectors
    check and fingerprint the same matrix a few dozen times per scan, which at a
    million rows cost as much as the detectors' own work.
    """
    if arr.flags.writeable or arr.base is not None:
        return compute(arr)
    key = id(arr)
    with _FACTS_LOCK:
        entry = _FACTS.get(key)
        if entry is not None and entry[0]() is arr and name in entry[1]:
            return entry[1][name]
    value = compute(arr)
    with _FACTS_LOCK:
        entry = _FACTS.get(key)
        if entry is None or entry[0]() is not arr:
            def forget(ref: weakref.ref, key: int = key) -> None:
                with _FACTS_LOCK:
                    if key in _FACTS and _FACTS[key][0] is ref:
                        del _FACTS[key]

            entry = (weakref.ref(arr, forget), {})
            _FACTS[key] = entry
        entry[1][name] = value
    return value


def _first_non_finite(arr: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first non-finite value in row-major order, or None; in blocks of rows."""
    step = max(1, (1 << 22) // max(arr.shape[1], 1))
    for r0 in range(0, arr.shape[0], step):
        block = arr[r0:r0 + step]
        if not np.isfinite(block).all():
            r, c = np.argwhere(~np.isfinite(block))[0]
            return r0 + int(r), int(c)
    return None


def check_X(X: Any, *, n_features: int | None = None, name: str = "X") -> np.ndarray:
    """Return ``X`` as a finite 2-D float array, checking its column count.

    A float32 array stays float32 (the scan encodes large tables in float32 to halve
    their memory); anything else becomes float64. A frozen array (see
    :func:`frozen_fact`) is checked once.

    Raises
    ------
    ValueError (InputError)
        Wrong dimensionality, non-finite values or a column count other than ``n_features``.
    """
    keep = isinstance(X, np.ndarray) and X.dtype == np.float32
    arr = X if keep else np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"{name} must be 2-D, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{name} has no rows")
    bad = frozen_fact(arr, "first_non_finite", _first_non_finite)
    if bad is not None:
        r, c = bad
        raise DataError(f"{name} has a non-finite value at row {r}, column {c}; encode the table first")
    if n_features is not None and arr.shape[1] != n_features:
        raise InputError(f"{name} has {arr.shape[1]} columns but the detector was fitted on {n_features}")
    return arr


def check_y(y: Any, n_rows: int, *, name: str = "y") -> np.ndarray:
    """Return integer label codes of length ``n_rows``."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n_rows:
        raise InputError(f"X has {n_rows} rows and {name} has {arr.shape[0]}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"{name} must hold integer class codes, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise InputError(f"{name} has a negative class code ({arr.min()})")
    return arr.astype(np.int64, copy=False)


def check_is_fitted(obj: Any, attribute: str) -> None:
    """Raise :class:`NotFittedError` unless ``obj`` has the learned ``attribute``."""
    if not hasattr(obj, attribute):
        raise NotFittedError(f"{type(obj).__name__} is not fitted yet; call fit(X, y) first")


def check_fraction(value: float, name: str, *, inclusive_zero: bool = False) -> float:
    """Check ``0 < value < 1`` (or ``0 <= value``) and return it as float."""
    v = float(value)
    lo_ok = v >= 0 if inclusive_zero else v > 0
    if not (lo_ok and v < 1):
        bound = "[0, 1)" if inclusive_zero else "(0, 1)"
        raise InputError(f"{{{name}}} must be in {bound}, got {value}", params=[name])
    return v


def resolve_class(value: Any, classes: np.ndarray, *, option: str, label: str) -> int:
    """Index of ``value`` in ``classes``, matching exactly or by its text (CLI input is text).

    Raises
    ------
    InputError
        ``value`` is not a class; the message lists the classes.
    """
    for i, c in enumerate(classes):
        if c == value or str(c) == str(value):
            return i
    shown = ", ".join(map(str, classes[:20])) + (" ..." if classes.size > 20 else "")
    raise InputError(f"{option} {value!r} is not a class of label column {label!r}; classes are: {shown}",
                     params=re.findall(r"\{(\w+)\}", option))
