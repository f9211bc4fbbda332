"""Tables of the feedback component (schema version 1).

``feedback_items`` keeps every item ever received, accepted or quarantined, with the
reason; nothing is deleted. ``predictions`` is the log of what ``/v1/predict`` served,
so feedback can be checked against it. ``feedback_events`` is the append-only record of
review decisions and campaign findings.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base, register_component

__all__ = ["FeedbackItem", "FeedbackUser", "TrustedLabel", "PredictionLog", "FeedbackBatch", "FeedbackEvent",
           "SCHEMA_VERSION", "STATUSES"]

SCHEMA_VERSION = 1
register_component("feedback", SCHEMA_VERSION)

#: accepted: may enter the next batch; quarantined: held for review (reason given);
#: released / rejected: a person's review decision on a quarantined item.
STATUSES = ("accepted", "quarantined", "released", "rejected")

_ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER keys


class FeedbackItem(Base):
    """One feedback item as received, with the decision taken on it."""

    __tablename__ = "feedback_items"
    __table_args__ = (
        UniqueConstraint("token_name", "client_id", name="uq_feedback_client_id"),
        Index("ix_feedback_user_time", "user_id", "received_at"),
        Index("ix_feedback_user_item", "user_id", "item_key"),
        Index("ix_feedback_status_batch", "status", "batch_id"),
        Index("ix_feedback_token_time", "token_name", "received_at"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    client_id: Mapped[str | None] = mapped_column(String(128))
    token_name: Mapped[str] = mapped_column(String(64), nullable=False)
    user_id: Mapped[str] = mapped_column(String(128), nullable=False)
    item_key: Mapped[str] = mapped_column(String(128), nullable=False)
    label: Mapped[str] = mapped_column(String(128), nullable=False)
    features: Mapped[str | None] = mapped_column(Text)  # canonical JSON object
    prediction_id: Mapped[str | None] = mapped_column(String(64))
    served_label: Mapped[str | None] = mapped_column(String(128))
    served_conf: Mapped[float | None] = mapped_column(Float)
    reputation: Mapped[float] = mapped_column(Float, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    received_at: Mapped[float] = mapped_column(Float, nullable=False)
    batch_id: Mapped[int | None] = mapped_column(Integer)
    reviewed_by: Mapped[str | None] = mapped_column(String(128))


class FeedbackUser(Base):
    """Running counts behind a user's reputation."""

    __tablename__ = "feedback_users"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_seen: Mapped[float] = mapped_column(Float, nullable=False)
    n_items: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    n_accepted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    n_quarantined: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    trusted_n: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    trusted_agree: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    conf_n: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    conf_agree: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class TrustedLabel(Base):
    """A label known to be right (curated, audited), keyed like feedback items."""

    __tablename__ = "feedback_trusted"

    item_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(128), nullable=False)
    source: Mapped[str] = mapped_column(String(200), nullable=False)
    added_at: Mapped[float] = mapped_column(Float, nullable=False)


class PredictionLog(Base):
    """One prediction served by ``/v1/predict``."""

    __tablename__ = "predictions"

    prediction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_name: Mapped[str] = mapped_column(String(64), nullable=False)
    at: Mapped[float] = mapped_column(Float, nullable=False, index=True)
    model_version: Mapped[int] = mapped_column(Integer, nullable=False)
    item_key: Mapped[str] = mapped_column(String(128), nullable=False, index=True)
    features: Mapped[str] = mapped_column(Text, nullable=False)
    label: Mapped[str] = mapped_column(String(128), nullable=False)
    confidence: Mapped[float] = mapped_column(Float, nullable=False)


class FeedbackBatch(Base):
    """A retraining batch: the accepted items it took (``feedback_items.batch_id``)."""

    __tablename__ = "feedback_batches"

    batch_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)
    n_items: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")  # open | promoted | blocked
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="{}")


class FeedbackEvent(Base):
    """Append-only: review decisions, campaign findings, batch formation."""

    __tablename__ = "feedback_events"

    seq: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
