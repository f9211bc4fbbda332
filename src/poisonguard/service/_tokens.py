"""API tokens: created once, shown once, stored only as SHA-256 hashes.

A token is 32 random bytes (``secrets.token_urlsafe``) with a ``pg_`` prefix, so a
plain, fast SHA-256 is the right hash: there is no low-entropy secret to brute-force,
and a lookup by hash never compares secrets byte by byte.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select

from ..errors import AuthError, InputError, NotFoundError
from ..store import Store
from ._models import ApiToken

__all__ = ["SCOPES", "TokenInfo", "create_token", "list_tokens", "revoke_token", "authenticate", "hash_token"]

#: ``admin`` may do everything the others may.
SCOPES = ("feedback", "predict", "admin")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class TokenInfo:
    name: str
    scope: str
    created_at: float
    revoked: bool


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_token(store: Store, *, name: str, scope: str) -> str:
    """Create a token and return it; it cannot be shown again.

    Raises
    ------
    InputError
        Bad name, unknown scope, or a name already in use.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InputError(f"invalid token name {name!r}: 1-64 letters, digits, '_', '.', '-'")
    if scope not in SCOPES:
        raise InputError(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    raw = "pg_" + secrets.token_urlsafe(32)
    with store.write() as s:
        if s.get(ApiToken, name) is not None:
            raise InputError(f"a token named {name!r} already exists; revoke it or choose another name")
        s.add(ApiToken(name=name, token_sha256=hash_token(raw), scope=scope, created_at=time.time(), revoked=False))
    return raw


def list_tokens(store: Store) -> list[TokenInfo]:
    with store.session() as s:
        return [TokenInfo(r.name, r.scope, r.created_at, r.revoked)
                for r in s.execute(select(ApiToken).order_by(ApiToken.name)).scalars()]


def revoke_token(store: Store, name: str) -> None:
    with store.write() as s:
        r = s.get(ApiToken, name)
        if r is None:
            raise NotFoundError(f"no token named {name!r}")
        r.revoked = True


def authenticate(store: Store, raw: str | None, *, scope: str) -> TokenInfo:
    """The token's record if it exists, is not revoked and carries ``scope`` (or ``admin``).

    Raises
    ------
    AuthError
        401 for a missing, unknown or revoked token; 403 for a wrong scope.
    """
    if not raw:
        raise AuthError("missing API token: send 'Authorization: Bearer <token>'")
    with store.session() as s:
        r = s.execute(select(ApiToken).where(ApiToken.token_sha256 == hash_token(raw))).scalar_one_or_none()
        info = None if r is None else TokenInfo(r.name, r.scope, r.created_at, r.revoked)
    if info is None or info.revoked:
        raise AuthError("invalid or revoked API token")
    if info.scope != scope and info.scope != "admin":
        raise AuthError(f"token {info.name!r} has scope {info.scope!r}; this endpoint needs {scope!r}", http_status=403)
    return info
