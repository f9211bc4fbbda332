"""Tables of the provenance component (schema version 1).

The signed, hash-chained ``ledger_entries`` are the record of truth. The other tables
are indexes derived from the entries' payloads; ``verify`` checks that they agree.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base, register_component

__all__ = ["LedgerEntry", "LedgerHead", "SourceRow", "VersionRow", "RowHashesRow", "ScanRow", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
register_component("provenance", SCHEMA_VERSION)


class LedgerEntry(Base):
    """One signed entry; ``body`` is canonical JSON whose SHA-256 is ``entry_hash``."""

    __tablename__ = "ledger_entries"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    entry_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    signature: Mapped[str] = mapped_column(Text, nullable=False)


class LedgerHead(Base):
    """The signed pointer to the last entry, so that truncation is detected."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    entry_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    signature: Mapped[str] = mapped_column(Text, nullable=False)


class SourceRow(Base):
    __tablename__ = "sources"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    owner: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    entry_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    flagged: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    total: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    failed_verifications: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    n_scans: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class VersionRow(Base):
    __tablename__ = "dataset_versions"

    version_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, index=True)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    source: Mapped[str] = mapped_column(ForeignKey("sources.name"), nullable=False)
    parent: Mapped[str | None] = mapped_column(String(256))
    entry_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    digest: Mapped[str] = mapped_column(String(64), nullable=False)
    file_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    file_path: Mapped[str] = mapped_column(Text, nullable=False)
    n_rows: Mapped[int] = mapped_column(BigInteger, nullable=False)
    recorded_at: Mapped[str] = mapped_column(String(40), nullable=False)


class RowHashesRow(Base):
    """Per-row BLAKE2b-128 hashes (row order, 16 bytes each) and optional ids (Parquet)."""

    __tablename__ = "row_hashes"

    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.version_id"), primary_key=True)
    hashes: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    ids: Mapped[bytes | None] = mapped_column(LargeBinary)


class ScanRow(Base):
    __tablename__ = "scans"

    entry_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    version_id: Mapped[str] = mapped_column(ForeignKey("dataset_versions.version_id"), nullable=False, index=True)
    recorded_at: Mapped[str] = mapped_column(String(40), nullable=False)
    flag_rate: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text, nullable=False)
