"""The poisonguard store: the project's one persistence layer.

An embedded SQLite file at ``.poisonguard/poisonguard.db`` by default, or any SQLAlchemy
URL (``--db URL`` or ``$POISONGUARD_DB``), PostgreSQL included. Features declare their
tables on the shared :class:`Base` and register a schema *component*
(:func:`register_component`); :func:`open_store` refuses a database whose components are
unknown or newer than the code, and a file that is not a database, with
:class:`~poisonguard.errors.StoreError`.
"""

from __future__ import annotations

from ._base import Base, Component, SchemaVersion, register_component, registered_components
from ._engine import DEFAULT_DB, DEFAULT_DIR, ENV_DB, Store, open_store, resolve_db_url

__all__ = [
    "Base",
    "Component",
    "SchemaVersion",
    "Store",
    "open_store",
    "resolve_db_url",
    "register_component",
    "registered_components",
    "DEFAULT_DB",
    "DEFAULT_DIR",
    "ENV_DB",
]
