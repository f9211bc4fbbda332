"""The shared declarative base and the schema-version registry.

Every feature that persists state (provenance ledger, monitoring, feedback, model
registry) declares its tables on :class:`Base` and registers one *component* with
:func:`register_component`: a name, the schema version its code writes, and the
migrations that bring an older stored schema up to date. :func:`~poisonguard.store.open_store`
checks the stored versions against this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Integer, String
from sqlalchemy.engine import Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "SchemaVersion", "Component", "register_component", "registered_components", "COMPONENT_MODULES"]


class Base(DeclarativeBase):
    """Declarative base shared by every table of the poisonguard store."""


class SchemaVersion(Base):
    """One row per component: the schema version stored in this database."""

    __tablename__ = "schema_versions"

    component: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)


Migration = Callable[[Connection], None]


@dataclass(frozen=True)
class Component:
    """A persisted feature: its name, current schema version and upgrade steps.

    ``migrations[v]`` upgrades a stored schema from version ``v`` to ``v + 1``.
    """

    name: str
    version: int
    migrations: dict[int, Migration] = field(default_factory=dict)


_COMPONENTS: dict[str, Component] = {}

# Modules that declare tables. The store imports them before checking a database so
# that every component it may find is known. A new feature adds one line here.
COMPONENT_MODULES: dict[str, str] = {
    "core": "poisonguard.store._base",
    "provenance": "poisonguard.provenance._models",
    "feedback": "poisonguard.feedback._models",
    "registry": "poisonguard.registry._models",
    "gate": "poisonguard.gate._models",
    "service": "poisonguard.service._models",
    "monitoring": "poisonguard.monitoring._models",
}


def register_component(name: str, version: int, migrations: dict[int, Migration] | None = None) -> Component:
    """Register a component's schema version; registering a name twice raises."""
    if name in _COMPONENTS:
        existing = _COMPONENTS[name]
        if existing.version == version:
            return existing
        raise ValueError(f"store component {name!r} is already registered (version {existing.version})")
    if version < 1:
        raise ValueError(f"schema version must be >= 1, got {version}")
    comp = Component(name=name, version=version, migrations=dict(migrations or {}))
    _COMPONENTS[name] = comp
    return comp


def registered_components() -> dict[str, Component]:
    """A copy of the component registry."""
    return dict(_COMPONENTS)


register_component("core", 1)
