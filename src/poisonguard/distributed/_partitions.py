"""A partitioned Parquet dataset: a directory or a glob of Parquet files, in one fixed order.

The order is part of the dataset's identity (row positions, the ledger's digest), so
it is defined here once: files sorted by their path relative to the dataset root, with
runs of digits compared as numbers (``part-2`` before ``part-10``).
"""

from __future__ import annotations

import glob as _glob
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["PartitionedDataset", "is_partitioned", "resolve_partitions", "load_partitioned"]

_PARQUET_SUFFIXES = (".parquet", ".pq")
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class PartitionedDataset:
    """The Parquet files of one dataset, in dataset order.

    Attributes
    ----------
    root : Path
        The directory, or the directory part of the glob before its first wildcard.
    files : tuple of Path
        The partition files in dataset order (see the module docstring).
    spec : str
        What the user gave (directory or glob), for messages.
    """

    root: Path
    files: tuple[Path, ...]
    spec: str

    @property
    def n_partitions(self) -> int:
        return len(self.files)


def is_partitioned(path: str | Path) -> bool:
    """True when ``path`` names a directory or contains glob wildcards."""
    text = str(path)
    return bool(_GLOB_CHARS.search(text)) or Path(text).is_dir()


def _natural_key(rel: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", rel)]


def resolve_partitions(path: str | Path) -> PartitionedDataset:
    """List the Parquet files of a directory (recursively) or a glob, in dataset order.

    Raises
    ------
    InputError
        Nothing matches, or a match is not a Parquet file.
    """
    text = str(path)
    if _GLOB_CHARS.search(text):
        matches = [Path(m) for m in _glob.glob(text, recursive=True) if Path(m).is_file()]
        root = Path(_GLOB_CHARS.split(text, maxsplit=1)[0] or ".")
        root = root if root.is_dir() else root.parent
    else:
        root = Path(text)
        if not root.exists():
            raise InputError(f"dataset not found: {text}")
        if not root.is_dir():
            raise InputError(f"expected a directory or a glob of Parquet files, got the file {text}")
        # hidden and underscore files are metadata (_SUCCESS, _common_metadata, .crc), as Spark and Dask write them
        matches = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith((".", "_"))]
    if not matches:
        raise InputError(f"no Parquet files found in {text}")
    bad = [m for m in matches if m.suffix.lower() not in _PARQUET_SUFFIXES]
    if bad:
        raise InputError(f"{len(bad)} file(s) in {text} are not Parquet (.parquet/.pq), e.g. {bad[0]}")
    files = sorted(matches, key=lambda m: _natural_key(m.relative_to(root).as_posix() if m.is_relative_to(root) else m.as_posix()))
    return PartitionedDataset(root=root, files=tuple(files), spec=text)


def load_partitioned(path: str | Path) -> pd.DataFrame:
    """Read every partition of a directory or glob into one DataFrame, in dataset order (single machine).

    Raises
    ------
    InputError
        Nothing found, an unreadable file, or partitions with different columns.
    """
    import pandas as pd

    from ..validation import load_table

    ds = resolve_partitions(path)
    frames = []
    for f in ds.files:
        df = load_table(f)
        if frames and list(df.columns) != list(frames[0].columns):
            raise InputError(f"{ds.spec}: partition {f} has other columns than {ds.files[0]}: "
                             f"{list(df.columns)[:8]} vs {list(frames[0].columns)[:8]}")
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
