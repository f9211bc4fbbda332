"""The HTTP service: ``/v1/feedback``, ``/v1/predict``, ``/healthz`` and the monitoring routes.

Built with FastAPI (extra ``serve``); the OpenAPI spec is at ``/openapi.json`` and the
docs at ``/docs``. Every route except ``/healthz`` needs ``Authorization: Bearer
<token>`` with the route's scope. Request bodies over ``max_body_bytes`` get 413,
malformed ones 422, and library errors their declared ``http_status``.
"""

# no `from __future__ import annotations`: FastAPI reads the routes' annotations as objects

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .._optional import import_optional
from ..errors import AuthError, PoisonguardError
from ..feedback import ChampionView, FeedbackIn, FeedbackPolicy, PredictionLog, canonical_features, item_key_for, submit_feedback
from ..store import Store, open_store
from ._tokens import TokenInfo, authenticate

__all__ = ["ServiceSettings", "create_app"]

log = logging.getLogger(__name__)
_TOKEN_CACHE_S = 5.0  # a revoked token stops working within this many seconds


@dataclass(frozen=True)
class ServiceSettings:
    """Settings of the service (keyword-only; all have safe defaults)."""

    db: str | None = None
    max_body_bytes: int = 1 << 20
    policy: FeedbackPolicy = field(default_factory=FeedbackPolicy)
    durable: bool = True


class _Champion:
    """The champion being served, reloaded (hash-verified) when the alias moves."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.version: int | None = None
        self.view: ChampionView | None = None

    def get(self) -> ChampionView | None:
        from ..registry import alias_version, get_version, load_version

        v = alias_version(self.store, "champion")
        with self.lock:
            if v != self.version:
                if v is None:
                    self.view = None
                else:
                    model = load_version(self.store, v)  # IntegrityError (409) if the files were changed
                    thr = get_version(self.store, v).detail.get("confident_threshold")
                    self.view = ChampionView.of(model, v, confident=thr)
                self.version = v
            return self.view


class _Tokens:
    """Token checks with a short cache, so a busy client does not cost a lookup per request."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache: dict[tuple[str, str], tuple[float, TokenInfo]] = {}
        self.lock = threading.Lock()

    def check(self, raw: "str | None", scope: str) -> TokenInfo:
        key = (raw or "", scope)
        now = time.monotonic()
        with self.lock:
            hit = self.cache.get(key)
        if hit is not None and now - hit[0] < _TOKEN_CACHE_S:
            return hit[1]
        info = authenticate(self.store, raw, scope=scope)
        with self.lock:
            if len(self.cache) > 10_000:
                self.cache.clear()
            self.cache[key] = (now, info)
        return info


def _durable(store: Store) -> None:
    """SQLite: WAL journal and a full sync at every commit, so an acknowledged write survives ``kill -9``.

    Set on every new connection (``journal_mode`` cannot change inside the transaction
    the store opens), after dropping the pooled ones.
    """
    if store.dialect != "sqlite":
        return
    from sqlalchemy import event

    store.engine.dispose()

    @event.listens_for(store.engine, "connect")
    def _sync(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        mode = cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        cur.execute("PRAGMA synchronous=FULL")
        cur.close()
        if mode != "wal":
            log.warning("SQLite journal mode is %s, not wal: readers will wait for writers", mode)


class _BodyLimit:
    """ASGI middleware: 413 for a body over the limit, declared or streamed."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(send, int(declared))
            return
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                break
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            more = msg.get("more_body", False)
            if size > self.limit:
                await self._reject(send, size)
                return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Any, size: int) -> None:
        payload = json.dumps({"detail": f"request body of {size} bytes exceeds the limit of {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def create_app(store: Store | None = None, *, settings: ServiceSettings | None = None) -> Any:
    """Build the FastAPI application.

    Parameters
    ----------
    store : Store, optional
        An open store; default ``open_store(settings.db, create=True)``.

    Raises
    ------
    MissingExtraError
        FastAPI is not installed (``pip install 'poisonguard[serve]'``).
    """
    fastapi = import_optional("fastapi", "serve")
    cfg = settings or ServiceSettings()
    st = store if store is not None else open_store(cfg.db, create=True)
    if cfg.durable:
        _durable(st)
    app = fastapi.FastAPI(title="poisonguard", version=_version(),
                          description="Validated feedback, champion predictions and monitoring for a model guarded "
                                      "against data poisoning.")
    app.state.store, app.state.settings = st, cfg
    app.state.champion, app.state.tokens = _Champion(st), _Tokens(st)
    _handlers(app, fastapi)
    _routes(app, fastapi, cfg)
    _monitor_routes(app, fastapi)
    app.add_middleware(_BodyLimit, limit=cfg.max_body_bytes)
    return app


def _version() -> str:
    from .. import __version__

    return __version__


def require_scope(scope: str) -> Any:
    """A FastAPI dependency: the caller's :class:`TokenInfo`, or 401/403."""
    from fastapi import Depends, Request
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    bearer = HTTPBearer(auto_error=False, description=f"API token with scope {scope!r} (or admin)")

    def dep(request: Request, cred: HTTPAuthorizationCredentials | None = Depends(bearer)) -> TokenInfo:
        raw = cred.credentials if cred is not None and cred.scheme.lower() == "bearer" else None
        return request.app.state.tokens.check(raw, scope)

    return dep


def _handlers(app: Any, fastapi: Any) -> None:
    from fastapi.responses import JSONResponse

    @app.exception_handler(PoisonguardError)
    async def _pg_error(request: Any, exc: PoisonguardError) -> Any:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) and exc.http_status == 401 else None
        if exc.http_status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(status_code=exc.http_status, content={"detail": str(exc)}, headers=headers)


def _routes(app: Any, fastapi: Any, cfg: ServiceSettings) -> None:
    from fastapi import Depends, Request

    from ._schemas import FeedbackBatchIn, FeedbackItemIn, FeedbackOut, PredictIn, PredictOut

    @app.get("/healthz", tags=["service"])
    def healthz(request: Request) -> dict[str, Any]:
        """Liveness and readiness: the store answers; the champion version being served."""
        from ..registry import alias_version

        return {"status": "ok", "champion": alias_version(request.app.state.store, "champion")}

    @app.post("/v1/feedback", response_model=FeedbackOut, tags=["feedback"])
    def post_feedback(body: FeedbackItemIn | FeedbackBatchIn, request: Request,
                      token: TokenInfo = Depends(require_scope("feedback"))) -> FeedbackOut:
        """Send one item or ``{"items": [...]}``. Each is accepted or quarantined with a reason; both are stored."""
        raw = body.items if isinstance(body, FeedbackBatchIn) else [body]
        items = [FeedbackIn(user=i.user, label=i.label, prediction_id=i.prediction_id, features=i.features,
                            item=i.item, client_id=i.id) for i in raw]
        champ = request.app.state.champion.get()
        decisions = submit_feedback(request.app.state.store, items, token=token.name, policy=cfg.policy, champion=champ)
        return FeedbackOut(
            accepted=sum(d.status == "accepted" for d in decisions),
            quarantined=sum(d.status != "accepted" for d in decisions),
            results=[{"index": d.index, "feedback_id": d.feedback_id, "id": d.client_id, "status": d.status,
                      "reason": d.reason, "replayed": d.replayed} for d in decisions])

    @app.post("/v1/predict", response_model=PredictOut, tags=["predict"])
    def post_predict(body: PredictIn, request: Request,
                     token: TokenInfo = Depends(require_scope("predict"))) -> PredictOut:
        """Predict with the champion; every prediction is logged so feedback can be checked against it."""
        from ..errors import NotFoundError

        champ = request.app.state.champion.get()
        if champ is None:
            raise NotFoundError("no champion model is registered; poisonguard registry add MODEL_DIR --champion")
        return _predict(request.app.state.store, champ, body.rows, token.name)


def _predict(store: Store, champ: ChampionView, rows: list[dict[str, Any]], token: str) -> Any:
    from sqlalchemy import insert

    from ._schemas import PredictOut

    labels, conf = champ.predict(rows)
    now = time.time()
    log_rows, out = [], []
    for feats, lab, c in zip(rows, labels, conf):
        pid = uuid.uuid4().hex
        log_rows.append({"prediction_id": pid, "token_name": token, "at": now, "model_version": champ.version,
                         "item_key": item_key_for(feats), "features": canonical_features(feats), "label": lab,
                         "confidence": c})
        out.append({"prediction_id": pid, "label": lab, "confidence": c})
    with store.write() as s:
        s.execute(insert(PredictionLog), log_rows)
    return PredictOut(model_version=int(champ.version or 0), predictions=out)


def _monitor_routes(app: Any, fastapi: Any) -> None:
    """Include the monitoring router (``service/_monitor_routes.py``) behind the same token auth."""
    from . import _monitor_routes as mod

    router = mod.router
    scope = mod.REQUIRED_SCOPE
    app.include_router(router, dependencies=[fastapi.Depends(require_scope(scope))])
