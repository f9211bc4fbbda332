"""Atomic writes shared by every command: a crash mid-write never leaves a truncated output behind.

Every output of every command goes through this module, so the rules live once:

* :func:`check_outputs` refuses, before any work starts, an output that is one of
  the inputs or another output (``scan w.csv --out w.csv`` would replace the data).
* A regular file is written to a temporary file beside it and renamed over it. The
  temporary name carries the writer's pid, and the next write beside it removes
  temporaries whose writer is gone (``kill -9`` cannot leave litter for good).
* A device or FIFO (``--out /dev/null``, ``--out /dev/stdout``, a named pipe) is
  written through: renaming a regular file over ``/dev/null`` would replace the device.
* A directory is refused with one line. New files get ``0666 & ~umask`` and an
  existing file keeps its mode, as a shell redirection would.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import InputError

__all__ = [
    "atomic_write_table",
    "atomic_write_json",
    "atomic_write_bytes",
    "check_outputs",
    "same_file",
    "file_digest",
    "frame_digest",
]

_PARQUET = {".parquet", ".pq"}
_TMP_SUFFIX = ".pgtmp"


def _tmp_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(name)}\.(\d+)\.[0-9a-f]+{re.escape(_TMP_SUFFIX)}$")


def _key(path: str | Path) -> tuple[str, Any]:
    """What identifies a file: (device, inode) when it exists, else its real path."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return ("path", os.path.realpath(p))
    return ("inode", (st.st_dev, st.st_ino))


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name the same file (hard links and symlinks included)."""
    return _key(a) == _key(b)


def check_outputs(
    outputs: Mapping[str, str | Path | None],
    inputs: Mapping[str, str | Path | None] | None = None,
    *,
    input_dirs: Mapping[str, str | Path | None] | None = None,
) -> None:
    """Refuse an output that is an input or another output, before any work starts.

    Parameters
    ----------
    outputs, inputs : mapping of name to path
        Names are what the caller calls each file (an option such as ``--out``, or a
        parameter name); ``None`` paths are skipped. Devices such as ``/dev/null`` may
        be given for several outputs.
    input_dirs : mapping of name to directory, optional
        Input directories (a model directory): no output may be written inside them.

    Raises
    ------
    InputError
        Naming both the clashing names and the path.
    """
    seen: dict[tuple[str, Any], str] = {}
    for name, path in (inputs or {}).items():
        if path is not None:
            seen.setdefault(_key(path), name)
    folders = [(name, os.path.realpath(path)) for name, path in (input_dirs or {}).items() if path is not None]
    for name, path in outputs.items():
        if path is None:
            continue
        real = os.path.realpath(path)
        for other, folder in folders:  # e.g. predict MODEL_DIR --out MODEL_DIR/weights.npz
            if real.startswith(folder.rstrip(os.sep) + os.sep):
                raise InputError(f"{name} ({path}) is inside {other} ({folder}); writing it would change an input")
        k = _key(path)
        if k in seen and not _is_char_device(Path(path)):
            other = seen[k]
            kind = "the input" if other in (inputs or {}) else "the output"
            raise InputError(
                f"{name} and {other} are the same file ({path}); writing {name} would replace {kind} "
                f"{other}: choose another path"
            )
        seen.setdefault(k, name)


def _is_char_device(p: Path) -> bool:
    try:
        return stat.S_ISCHR(p.stat().st_mode)
    except OSError:
        return False


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # the only portable way to read it
    os.umask(old)
    return old


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, owned by someone else
        return True
    return True


def _remove_stale_tmp(p: Path) -> None:
    """Delete temporaries of ``p`` whose writing process no longer exists."""
    pattern = _tmp_pattern(p.name)
    try:
        entries = list(os.scandir(p.parent))
    except OSError:
        return
    for e in entries:
        m = pattern.match(e.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            try:
                os.unlink(e.path)
            except OSError:
                pass


def _write_through(data: bytes, p: Path) -> Path:
    """Write to a device or FIFO in place (no temporary file, no rename)."""
    try:
        with open(p, "wb") as fh:
            fh.write(data)
            fh.flush()
    except OSError as exc:
        raise InputError(f"cannot write {p}: {exc.strerror or exc}") from exc
    return p


def _target(path: str | Path) -> tuple[Path, os.stat_result | None]:
    """The file to replace (through symlinks) and its status, refusing what cannot be a file."""
    p = Path(path)
    if p.is_symlink():
        p = Path(os.path.realpath(p))  # replace the file the link points to, not the link
    try:
        st = p.stat()
    except FileNotFoundError:
        return p, None
    except OSError as exc:
        raise InputError(f"cannot write {p}: {exc.strerror or exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"cannot write {p}: it is a directory; give a file path")
    if stat.S_ISSOCK(st.st_mode):
        raise InputError(f"cannot write {p}: it is a socket")
    return p, st


def atomic_write_bytes(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the complete new one.

    Regular files: a temporary file beside ``path``, fsynced and renamed over it.
    Devices and FIFOs are written through. Returns ``path``.

    Raises
    ------
    InputError
        ``path`` is a directory or socket, or cannot be written (message gives the OS reason).
    """
    given = Path(path)
    p, st = _target(given)
    if st is not None and not stat.S_ISREG(st.st_mode):
        _write_through(data, p)
        return given
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(p)
        tmp = p.parent / f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}{_TMP_SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise InputError(f"cannot write {p}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {p}: {exc.strerror or exc}") from exc
        raise
    return given


def table_bytes(df: pd.DataFrame, path: str | Path) -> bytes:
    """``df`` serialised for ``path``: Parquet by suffix, else CSV (compressed by a .gz/.bz2/.xz/.zip suffix)."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in _PARQUET:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()
    text = df.to_csv(index=False).encode("utf-8")
    return compress_for(text, p)


_table_bytes = table_bytes  # the name older callers import


def compress_for(data: bytes, path: str | Path) -> bytes:
    """Compress ``data`` when ``path`` ends in .gz, .bz2, .xz or .zip (the archive holds one member)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".gz":
        import gzip

        return gzip.compress(data, mtime=0)  # mtime 0: the same table gives the same bytes
    if suffix == ".bz2":
        import bz2

        return bz2.compress(data)
    if suffix == ".xz":
        import lzma

        return lzma.compress(data)
    if suffix == ".zip":
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(zipfile.ZipInfo(Path(path).stem, date_time=(1980, 1, 1, 0, 0, 0)), data)
        return buf.getvalue()
    return data


def atomic_write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV or Parquet (by suffix), atomically."""
    return atomic_write_bytes(table_bytes(df, path), path)


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
