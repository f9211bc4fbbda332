"""The safe model format: plain arrays, JSON, torch ``state_dict`` and allow-listed skops.

A model directory holds a ``manifest.json`` that lists every other file with its
SHA-256. :func:`read_manifest` verifies every listed hash before anything is parsed,
and each loader below refuses anything that could run code when loaded:

* NumPy arrays are read with ``allow_pickle=False``;
* torch weights with ``torch.load(weights_only=True)`` (tensors only);
* scikit-learn trees with :func:`skops.io.load`, after checking
  :func:`skops.io.get_untrusted_types` against a fixed allow-list.

Nothing here ever unpickles. The manifest itself is not signed: it detects a file
changed after saving, not an attacker who rewrites the manifest too. Pin the
manifest's own digest (``expected_manifest_sha256``) or sign it with the provenance
tools for that.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..encoding import TableEncoder
from ..errors import IntegrityError, InputError, NotFoundError

__all__ = [
    "MANIFEST",
    "FORMAT",
    "FORMAT_VERSION",
    "SKOPS_ALLOWED_TYPES",
    "sha256_file",
    "sha256_bytes",
    "write_json",
    "write_manifest",
    "read_manifest",
    "read_verified",
    "encoder_to_json",
    "encoder_from_json",
    "save_arrays",
    "load_arrays",
    "load_skops",
    "dump_skops",
]

MANIFEST = "manifest.json"
FORMAT = "poisonguard-model"
FORMAT_VERSION = 1

#: Types that skops does not trust by default but that poisonguard's own models
#: contain. Anything else found in a ``.skops`` file makes loading fail.
SKOPS_ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def write_manifest(model_dir: Path, files: list[str]) -> str:
    """Write ``manifest.json`` listing ``files`` with their SHA-256; return the manifest's digest."""
    entries = {}
    for name in sorted(files):
        if not _SAFE_NAME.match(name) or name == MANIFEST:
            raise InputError(f"model file name {name!r} is not a plain file name")
        entries[name] = sha256_file(model_dir / name)
    write_json(model_dir / MANIFEST, {"format": FORMAT, "format_version": FORMAT_VERSION, "files": entries})
    return sha256_file(model_dir / MANIFEST)


def read_manifest(model_dir: str | Path, *, expected_manifest_sha256: str | None = None) -> dict[str, bytes]:
    """Verify every file listed in the manifest and return their bytes, by name.

    The bytes returned are the ones hashed, so a file cannot change between the
    check and its use.

    Raises
    ------
    NotFoundError
        The directory or its manifest does not exist.
    IntegrityError
        The manifest is malformed, a listed file is missing, or a hash differs.
    """
    d = Path(model_dir)
    if not d.is_dir():
        raise NotFoundError(f"model directory not found: {d}")
    mpath = d / MANIFEST
    if not mpath.is_file():
        raise NotFoundError(f"{d} is not a poisonguard model directory: {MANIFEST} is missing")
    raw = mpath.read_bytes()
    if expected_manifest_sha256 is not None and sha256_bytes(raw) != expected_manifest_sha256.lower():
        raise IntegrityError(
            f"{mpath}: manifest digest {sha256_bytes(raw)} differs from the expected {expected_manifest_sha256}"
        )
    try:
        manifest = json.loads(raw.decode("utf-8"))
        files = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(files, dict):
            raise ValueError("not a poisonguard model manifest")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{mpath} is malformed: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IntegrityError(
            f"{mpath}: unsupported format_version {manifest.get('format_version')!r} (expected {FORMAT_VERSION})"
        )
    out: dict[str, bytes] = {}
    for name, digest in sorted(files.items()):
        if not isinstance(name, str) or not _SAFE_NAME.match(name) or name == MANIFEST:
            raise IntegrityError(f"{mpath} lists an unsafe file name {name!r}")
        fpath = d / name
        if not fpath.is_file():
            raise IntegrityError(f"{d}: file {name!r} listed in the manifest is missing")
        data = fpath.read_bytes()
        actual = sha256_bytes(data)
        if actual != digest:
            raise IntegrityError(
                f"{fpath} was modified after saving: SHA-256 {actual[:16]}... differs from the "
                f"manifest's {str(digest)[:16]}...; refusing to load it"
            )
        out[name] = data
    return out


def read_verified(files: dict[str, bytes], name: str, where: str) -> bytes:
    if name not in files:
        raise IntegrityError(f"{where}: the manifest does not list the required file {name!r}")
    return files[name]


# ----------------------------------------------------------------------------- encoder


def encoder_to_json(enc: TableEncoder) -> dict[str, Any]:
    """The fitted :class:`TableEncoder`'s learned plan as plain JSON."""
    return enc.to_dict()


def encoder_from_json(obj: dict[str, Any]) -> TableEncoder:
    """Rebuild a fitted :class:`TableEncoder`; malformed data is an :class:`IntegrityError`."""
    try:
        return TableEncoder.from_dict(obj)
    except ValueError as exc:
        raise IntegrityError(f"the saved feature schema is malformed: {exc}") from exc


# ----------------------------------------------------------------------------- arrays / skops


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays as an uncompressed ``.npz`` (numeric dtypes only, never objects)."""
    for k, a in arrays.items():
        if a.dtype == object:
            raise TypeError(f"array {k!r} has dtype object, which would need pickle")
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_arrays(data: bytes, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ValueError as exc:  # object arrays refuse to load without pickle
        raise IntegrityError(f"{where}: refusing to load arrays: {exc}") from exc
    except Exception as exc:  # zipfile/format errors
        raise IntegrityError(f"{where}: cannot read arrays: {exc}") from exc


def dump_skops(obj: Any, path: Path) -> None:
    sio = _skops()
    sio.dump(obj, path)


def load_skops(data: bytes, where: str) -> Any:
    """Load a skops blob after checking its types against :data:`SKOPS_ALLOWED_TYPES`."""
    sio = _skops()
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise IntegrityError(f"{where}: not a readable skops file: {exc}") from exc
    refused = sorted(set(untrusted) - SKOPS_ALLOWED_TYPES)
    if refused:
        raise IntegrityError(f"{where}: refusing to load untrusted types {refused}")
    try:
        return sio.loads(data, trusted=sorted(untrusted))
    except Exception as exc:
        raise IntegrityError(f"{where}: cannot load skops file: {exc}") from exc


def _skops() -> Any:
    from .._optional import import_optional

    return import_optional("skops.io", "skops")
