"""Table of the promotion gate component (schema version 1): every gate report, append-only."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base, register_component

__all__ = ["GateReportRow", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
register_component("gate", SCHEMA_VERSION)


class GateReportRow(Base):
    __tablename__ = "gate_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, nullable=False)
    challenger: Mapped[int | None] = mapped_column(Integer)
    champion: Mapped[int | None] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean, nullable=False)
    report: Mapped[str] = mapped_column(Text, nullable=False)
