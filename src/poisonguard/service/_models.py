"""Table of the service component (schema version 1): API tokens, stored only as SHA-256 hashes."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base, register_component

__all__ = ["ApiToken", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
register_component("service", SCHEMA_VERSION)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    revoked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
