"""Tables of the model registry component (schema version 1).

``registry_events`` is append-only: every registration, alias move, promotion (forced
or gated) and rollback. ``model_aliases`` is the current state derived from it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base, register_component

__all__ = ["ModelVersionRow", "AliasRow", "RegistryEvent", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
register_component("registry", SCHEMA_VERSION)

_ID = BigInteger().with_variant(Integer, "sqlite")


class ModelVersionRow(Base):
    """A registered model: a copy of its directory and the manifest digest pinned at registration."""

    __tablename__ = "model_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    manifest_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    label: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False, default="")
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="{}")


class AliasRow(Base):
    __tablename__ = "model_aliases"

    alias: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)


class RegistryEvent(Base):
    """Append-only audit trail of the registry."""

    __tablename__ = "registry_events"

    seq: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    version: Mapped[int | None] = mapped_column(Integer)
    previous: Mapped[int | None] = mapped_column(Integer)
    gate_report: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
