"""Entry signing: HMAC-SHA256 (shared key file) or Ed25519 (``cryptography``).

Key files
---------
* HMAC: 32 random bytes, stored as 64 hex characters (``ledger init --alg hmac``).
* Ed25519: an unencrypted PKCS#8 PEM private key (``ledger init``, the default); a PEM
  public key verifies but cannot sign.

A key's id is the first 16 hex characters of SHA-256 over ``alg`` and the public
material (for HMAC, over the key itself: the id reveals nothing usable).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import InputError, KeyMissingError
from ..store import DEFAULT_DIR

__all__ = ["Signer", "KeyExistsError", "load_key", "generate_key", "resolve_key_path", "DEFAULT_KEY", "ENV_KEY", "ALGORITHMS"]

DEFAULT_KEY = DEFAULT_DIR / "ledger.key"
ENV_KEY = "POISONGUARD_LEDGER_KEY"
ALGORITHMS = ("ed25519", "hmac")


@dataclass(frozen=True)
class Signer:
    """A loaded key: signs (unless public-only) and verifies entry hashes."""

    alg: str
    key_id: str
    path: str
    _secret: bytes | None = None
    _private: Ed25519PrivateKey | None = None
    _public: Ed25519PublicKey | None = None

    @property
    def can_sign(self) -> bool:
        return self._secret is not None or self._private is not None

    def sign(self, message: bytes) -> str:
        if self.alg == "hmac" and self._secret is not None:
            return hmac.new(self._secret, message, hashlib.sha256).hexdigest()
        if self._private is not None:
            return self._private.sign(message).hex()
        raise KeyMissingError(f"key {self.path} is a public key; signing needs the private key")

    def verify(self, message: bytes, signature: str) -> bool:
        try:
            sig = bytes.fromhex(signature)
        except ValueError:
            return False
        if self.alg == "hmac":
            assert self._secret is not None
            return hmac.compare_digest(hmac.new(self._secret, message, hashlib.sha256).digest(), sig)
        assert self._public is not None
        try:
            self._public.verify(sig, message)
        except InvalidSignature:
            return False
        return True


def resolve_key_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$POISONGUARD_LEDGER_KEY``, else ``.poisonguard/ledger.key``."""
    if path is not None:
        return Path(path)
    env = os.environ.get(ENV_KEY)
    return Path(env) if env else DEFAULT_KEY


def _key_id(alg: str, material: bytes) -> str:
    return hashlib.sha256(b"poisonguard-key\x00" + alg.encode() + b"\x00" + material).hexdigest()[:16]


def load_key(path: str | os.PathLike[str] | None = None) -> Signer:
    """Load a signing key; raise :class:`KeyMissingError` when it is missing or unreadable."""
    p = resolve_key_path(path)
    if not p.is_file():
        raise KeyMissingError(
            f"signing key not found: {p}; create one with `poisonguard ledger init --key {p}` "
            f"or pass --key / set {ENV_KEY}"
        )
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise KeyMissingError(f"cannot read signing key {p}: {exc.strerror or exc}") from exc
    text = raw.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            if b"PRIVATE KEY" in text:
                priv = serialization.load_pem_private_key(text, password=None)
                if not isinstance(priv, Ed25519PrivateKey):
                    raise KeyMissingError(f"{p} is not an Ed25519 private key")
                pub = priv.public_key()
            else:
                loaded = serialization.load_pem_public_key(text)
                if not isinstance(loaded, Ed25519PublicKey):
                    raise KeyMissingError(f"{p} is not an Ed25519 public key")
                priv, pub = None, loaded
        except (ValueError, TypeError) as exc:
            raise KeyMissingError(f"cannot parse signing key {p}: {exc}") from exc
        raw_pub = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return Signer(alg="ed25519", key_id=_key_id("ed25519", raw_pub), path=str(p), _private=priv, _public=pub)
    try:
        secret = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise KeyMissingError(f"cannot parse signing key {p}: expected a PEM Ed25519 key or hex HMAC key") from exc
    if len(secret) < 16:
        raise KeyMissingError(f"HMAC key {p} is too short ({len(secret)} bytes; at least 16 needed)")
    return Signer(alg="hmac", key_id=_key_id("hmac", secret), path=str(p), _secret=secret)


class KeyExistsError(InputError):
    """:func:`generate_key` found a key file already there (possibly made a moment ago by another process)."""


def generate_key(path: str | os.PathLike[str] | None = None, *, alg: str = "ed25519") -> Signer:
    """Create a new key file with mode 0600 (refuses to overwrite) and return it loaded.

    For Ed25519 the public key is also written beside it as ``<path>.pub``.

    The key is written in full to a private temporary file and then hard-linked to
    ``path``, which fails if ``path`` exists: of several processes creating the same
    key at once exactly one succeeds, and nobody ever reads a half-written key.

    Raises
    ------
    KeyExistsError
        ``path`` already exists (also when another process created it first).
    """
    if alg not in ALGORITHMS:
        raise InputError(f"unknown signing algorithm {alg!r}; choose one of {', '.join(ALGORITHMS)}")
    p = resolve_key_path(path)
    if p.exists():
        raise KeyExistsError(f"key file {p} already exists; refusing to overwrite it")
    p.parent.mkdir(parents=True, exist_ok=True)
    if alg == "hmac":
        data = secrets.token_bytes(32).hex().encode() + b"\n"
        pub_data = None
    else:
        priv = Ed25519PrivateKey.generate()
        data = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
        pub_data = priv.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    tmp = _write_private(p, data)
    try:
        os.link(tmp, p)  # atomic and exclusive: EEXIST if another process got there first
    except FileExistsError as exc:
        raise KeyExistsError(f"key file {p} already exists; refusing to overwrite it") from exc
    finally:
        tmp.unlink(missing_ok=True)
    if pub_data is not None:
        pub_path = p.with_name(p.name + ".pub")
        pub_tmp = pub_path.with_name(f".{pub_path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        pub_tmp.write_bytes(pub_data)
        os.replace(pub_tmp, pub_path)
    return load_key(p)


def _write_private(p: Path, data: bytes) -> Path:
    """Write ``data`` to a new mode-0600 temporary file beside ``p`` and return its path."""
    tmp = p.with_name(f".{p.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)  # whatever the umask: a secret key is for its owner only
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp
