"""Opening the store: URL resolution, engine, sessions, write locks, schema checks."""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from ..errors import StoreError
from ._base import COMPONENT_MODULES, Base, SchemaVersion, registered_components

__all__ = ["Store", "open_store", "resolve_db_url", "DEFAULT_DIR", "DEFAULT_DB", "ENV_DB"]

log = logging.getLogger(__name__)

DEFAULT_DIR = Path(".poisonguard")
DEFAULT_DB = DEFAULT_DIR / "poisonguard.db"
ENV_DB = "POISONGUARD_DB"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_PG_LOCK_ID = 0x706F69736F6E  # advisory lock key for write transactions ("poison")


def resolve_db_url(url: str | os.PathLike[str] | None = None) -> str:
    """The store URL: ``url``, else ``$POISONGUARD_DB``, else ``sqlite:///.poisonguard/poisonguard.db``.

    A plain path (no ``://``) is taken as an SQLite file.
    """
    raw = os.fspath(url) if url is not None else os.environ.get(ENV_DB) or None
    if raw is None:
        return f"sqlite:///{DEFAULT_DB}"
    if "://" not in raw:
        return f"sqlite:///{raw}"
    return raw


def _sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    db = u.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


@dataclass
class Store:
    """An open poisonguard store.

    Use :meth:`session` for reads and :meth:`write` for a locked read-modify-write
    transaction (SQLite ``BEGIN IMMEDIATE``; PostgreSQL transaction-level advisory lock).
    """

    url: str
    engine: Engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def path(self) -> Path | None:
        """The SQLite file, or ``None`` for server databases."""
        return _sqlite_path(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session (its transaction is rolled back at exit unless committed)."""
        with _wrap_db_errors(self.url), Session(self.engine, expire_on_commit=False) as s:
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A serialized write transaction, committed at exit, rolled back on error."""
        with _wrap_db_errors(self.url), self.engine.connect() as conn:
            conn = conn.execution_options(poisonguard_write=True)
            with Session(bind=conn, expire_on_commit=False) as s, s.begin():
                if self.dialect == "postgresql":
                    s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
                elif self.dialect == "mysql":  # pragma: no cover - no MySQL in CI
                    s.execute(text("SELECT GET_LOCK('poisonguard', 60)"))
                yield s

    def dispose(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()


@contextmanager
def _wrap_db_errors(url: str) -> Iterator[None]:
    try:
        yield
    except DBAPIError as exc:
        if isinstance(exc, OperationalError) and "locked" in str(exc.orig):
            raise  # let callers retry lock timeouts
        if _is_unique_violation(exc):
            raise
        raise StoreError(f"store {_safe(url)}: {str(exc.orig).strip() or type(exc.orig).__name__}") from exc


def _is_unique_violation(exc: BaseException) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return "unique" in msg or "duplicate key" in msg


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid url>"


def _make_engine(url: str) -> Engine:
    u = make_url(url)
    kwargs: dict[str, object] = {}
    if u.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 60}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout = 60000")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):  # type: ignore[no-untyped-def]
            write = conn.get_execution_options().get("poisonguard_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _import_components() -> None:
    for module in COMPONENT_MODULES.values():
        importlib.import_module(module)


def open_store(url: str | os.PathLike[str] | None = None, *, create: bool = False) -> Store:
    """Open (or with ``create=True`` create) the poisonguard store.

    Parameters
    ----------
    url : str or path, optional
        Any SQLAlchemy URL or an SQLite file path; default from :func:`resolve_db_url`.
    create : bool, default False
        Create the database and any missing tables. Without it a missing store raises.

    Raises
    ------
    StoreError
        No store at the URL (and ``create`` is false), a file that is not an SQLite
        database, a schema written by a newer or unknown poisonguard, or an
        unreachable server.
    """
    resolved = resolve_db_url(url)
    try:
        make_url(resolved)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL {resolved!r}: {exc}") from exc
    path = _sqlite_path(resolved)
    if path is not None:
        if path.exists():
            if path.is_dir():
                raise StoreError(f"store path {path} is a directory, not a database file")
            with open(path, "rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
            if head and head != _SQLITE_MAGIC:
                raise StoreError(f"store {path} is not an SQLite database (corrupt or wrong file)")
        elif not create:
            raise StoreError(f"no store at {path}; create it with: poisonguard ledger init")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
    _import_components()
    try:
        engine = _make_engine(resolved)
    except (ArgumentError, ImportError) as exc:
        raise StoreError(f"cannot open database {_safe(resolved)}: {exc}") from exc
    store = Store(url=resolved, engine=engine)
    try:
        _check_schema(store, create=create)
    except SQLAlchemyError as exc:
        engine.dispose()
        orig = getattr(exc, "orig", None) or exc
        raise StoreError(f"cannot use store {_safe(resolved)}: {str(orig).strip()}") from exc
    except BaseException:
        engine.dispose()
        raise
    return store


def _check_schema(store: Store, *, create: bool) -> None:
    comps = registered_components()
    for attempt in range(20):
        try:
            with store.engine.connect() as conn:
                conn = conn.execution_options(poisonguard_write=True)
                with conn.begin():
                    _check_schema_in(conn, store, comps, create=create)
            return
        except OperationalError as exc:
            if "locked" not in str(exc.orig) or attempt == 19:
                raise
            time.sleep(0.05 * (attempt + 1))


def _check_schema_in(conn, store: Store, comps, *, create: bool) -> None:  # type: ignore[no-untyped-def]
    has_table = inspect(conn).has_table(SchemaVersion.__tablename__)
    if not has_table:
        if not create:
            raise StoreError(
                f"{_safe(store.url)} is not a poisonguard store (no {SchemaVersion.__tablename__} table); "
                "create it with: poisonguard ledger init"
            )
        Base.metadata.create_all(conn)
    stored = {row.component: row.version for row in conn.execute(select(SchemaVersion))}
    unknown = sorted(set(stored) - set(comps))
    if unknown:
        raise StoreError(
            f"store {_safe(store.url)} has schema component(s) {unknown} unknown to this poisonguard; "
            "it was written by a newer version: upgrade poisonguard"
        )
    for name, version in stored.items():
        comp = comps[name]
        if version > comp.version:
            raise StoreError(
                f"store {_safe(store.url)} has {name} schema version {version}, newer than the "
                f"supported {comp.version}: upgrade poisonguard"
            )
        if version < comp.version:
            for v in range(version, comp.version):
                step = comp.migrations.get(v)
                if step is None:
                    raise StoreError(
                        f"store {_safe(store.url)} has {name} schema version {version} and no migration "
                        f"to {comp.version} exists"
                    )
                log.warning("migrating store component %s from schema %d to %d", name, v, v + 1)
                step(conn)
            conn.execute(SchemaVersion.__table__.update().where(SchemaVersion.component == name).values(version=comp.version))
    missing = [c for c in comps.values() if c.name not in stored]
    if missing:
        # a component new to this database (first use of a feature): create its tables
        Base.metadata.create_all(conn)
        for comp in missing:
            conn.execute(SchemaVersion.__table__.insert().values(component=comp.name, version=comp.version))
