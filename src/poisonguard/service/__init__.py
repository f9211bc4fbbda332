"""The HTTP service (``poisonguard serve``) and its API tokens.

Tokens work without FastAPI (``poisonguard token create``); :func:`create_app` needs
the ``serve`` extra and imports it only when called.
"""

from __future__ import annotations

from ._models import ApiToken
from ._tokens import SCOPES, TokenInfo, authenticate, create_token, hash_token, list_tokens, revoke_token

__all__ = ["SCOPES", "TokenInfo", "create_token", "list_tokens", "revoke_token", "authenticate", "hash_token",
           "ApiToken", "create_app", "ServiceSettings"]


def __getattr__(name: str):  # noqa: ANN202 - lazy: keep FastAPI out of `import poisonguard`
    if name in ("create_app", "ServiceSettings"):
        from . import _app

        return getattr(_app, name)
    raise AttributeError(name)
