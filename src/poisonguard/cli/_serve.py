"""``poisonguard serve`` and ``poisonguard token ...``: the HTTP service and its API tokens."""

from __future__ import annotations

import logging
from typing import Optional

import typer
from rich.table import Table

from ..store import ENV_DB, open_store
from ._app import app, console

__all__: list[str] = []

token_app = typer.Typer(help="API tokens of the service (stored only as hashes).", no_args_is_help=True)
app.add_typer(token_app, name="token")

_DB = typer.Option(None, "--db", envvar=ENV_DB,
                   help="Store: SQLAlchemy URL or SQLite path [default: .poisonguard/poisonguard.db].")


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    db: Optional[str] = _DB,
    max_body_bytes: int = typer.Option(1 << 20, "--max-body-bytes", min=1024, help="Larger request bodies get 413."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (costs throughput)."),
) -> None:
    """Serve /v1/feedback, /v1/predict, /healthz and the OpenAPI spec (/openapi.json, /docs)."""
    from .._optional import import_optional
    from ..service import ServiceSettings, create_app

    uvicorn = import_optional("uvicorn", "serve")
    application = create_app(settings=ServiceSettings(db=db, max_body_bytes=max_body_bytes))
    logging.getLogger("poisonguard").setLevel(logging.INFO)
    console.print(f"serving on http://{host}:{port} (store {application.state.store.url})", highlight=False)
    uvicorn.run(application, host=host, port=port, log_level="warning", access_log=access_log)


@token_app.command("create")
def token_create(
    name: str = typer.Option(..., "--name", help="Who the token is for (unique)."),
    scope: str = typer.Option(..., "--scope", help="feedback | predict | admin."),
    db: Optional[str] = _DB,
) -> None:
    """Create a token and print it once; only its SHA-256 is stored."""
    from ..service import create_token

    with open_store(db, create=True) as store:
        raw = create_token(store, name=name, scope=scope)
    typer.echo(raw)  # not rich: the token must come out on one unwrapped line


@token_app.command("list")
def token_list(db: Optional[str] = _DB) -> None:
    """Names, scopes and state of the tokens (never the tokens)."""
    from ..service import list_tokens

    with open_store(db) as store:
        rows = list_tokens(store)
    t = Table("name", "scope", "created (UTC)", "state")
    import datetime as dt

    for r in rows:
        t.add_row(r.name, r.scope, dt.datetime.fromtimestamp(r.created_at, dt.timezone.utc).isoformat(timespec="seconds"),
                  "revoked" if r.revoked else "active")
    console.print(t)


@token_app.command("revoke")
def token_revoke(name: str = typer.Argument(..., help="Token name."), db: Optional[str] = _DB) -> None:
    """Revoke a token (the service stops accepting it within 5 seconds)."""
    from ..service import revoke_token

    with open_store(db) as store:
        revoke_token(store, name)
    console.print(f"token {name} revoked", highlight=False)
