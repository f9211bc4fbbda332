"""Tables of the monitoring component (schema version 1).

Predictions are the bulk of the data (millions of rows), so they live in one compact
table of integers and floats: class *codes* (indices into the baseline's classes), an
epoch-seconds timestamp and the caller's id, with a covering index on ``(model_id, ts)``
plus the four columns a check reads (a window is one range scan of the index) and unique on ``(model_id, pred_key)`` for joining late labels. Input features
are optional and stored per logged batch as one Parquet blob, because only input-drift
tests read them and they read whole columns. Baselines, checks and alerts are small
JSON documents kept append-only: a new baseline or check never rewrites an old one.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, LargeBinary, SmallInteger, String, Text
from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base, register_component

__all__ = ["MonitoredModel", "Baseline", "PredictionRow", "FeatureBatch", "ProbeSet", "CheckRow", "AlertRow",
           "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
register_component("monitoring", SCHEMA_VERSION)

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER keys


class MonitoredModel(Base):
    """A monitored model: its name and the class values that prediction codes index."""

    __tablename__ = "monitor_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    classes: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list of class values as strings
    created_at: Mapped[float] = mapped_column(Float, nullable=False)


class Baseline(Base):
    """One recorded baseline (JSON); the newest per model is in force."""

    __tablename__ = "monitor_baselines"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)


class PredictionRow(Base):
    """One logged prediction; ``label`` arrives later (``monitor labels``)."""

    __tablename__ = "monitor_predictions"
    __table_args__ = (
        UniqueConstraint("model_id", "pred_key", name="uq_monitor_pred_key"),
        # covering index: a window read never touches the table itself
        Index("ix_monitor_pred_window", "model_id", "ts", "pred", "conf", "label", "probe"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(Integer, nullable=False)
    pred_key: Mapped[str] = mapped_column(String(128), nullable=False)
    ts: Mapped[float] = mapped_column(Float, nullable=False)
    pred: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    conf: Mapped[float | None] = mapped_column(Float)
    label: Mapped[int | None] = mapped_column(SmallInteger)
    probe: Mapped[int | None] = mapped_column(Integer)  # probe set id; NULL for production traffic


class FeatureBatch(Base):
    """The input features of one logged batch (Parquet: ``ts`` plus the feature columns)."""

    __tablename__ = "monitor_feature_batches"
    __table_args__ = (Index("ix_monitor_feat_model_ts", "model_id", "ts_min", "ts_max"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(Integer, nullable=False)
    ts_min: Mapped[float] = mapped_column(Float, nullable=False)
    ts_max: Mapped[float] = mapped_column(Float, nullable=False)
    n_rows: Mapped[int] = mapped_column(Integer, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class ProbeSet(Base):
    """A registered probe set: rows carrying a suspected or simulated trigger."""

    __tablename__ = "monitor_probe_sets"
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_monitor_probe_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: n_rows, expected class shares, note
    data: Mapped[bytes | None] = mapped_column(LargeBinary)  # the probe rows (Parquet), to re-run them


class CheckRow(Base):
    """One stored check result (JSON body) with the columns the history needs."""

    __tablename__ = "monitor_checks"
    __table_args__ = (Index("ix_monitor_check_model_at", "model_id", "window_end"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(Integer, nullable=False)
    at: Mapped[float] = mapped_column(Float, nullable=False)
    window_start: Mapped[float] = mapped_column(Float, nullable=False)
    window_end: Mapped[float] = mapped_column(Float, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # ok | alert | failed
    n_predictions: Mapped[int] = mapped_column(BigInteger, nullable=False)
    n_labelled: Mapped[int] = mapped_column(BigInteger, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)


class AlertRow(Base):
    """One fired alert and what happened to its notifications."""

    __tablename__ = "monitor_alerts"
    __table_args__ = (Index("ix_monitor_alert_model_key", "model_id", "rule", "at"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(Integer, nullable=False)
    check_id: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    at: Mapped[float] = mapped_column(Float, nullable=False)
    rule: Mapped[str] = mapped_column(String(200), nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    suppressed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)  # within cooldown
    delivered: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    deliveries: Mapped[str] = mapped_column(Text, nullable=False, default="[]")  # JSON per channel
