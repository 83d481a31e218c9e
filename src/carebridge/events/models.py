"""The outbox: every state change appends here in its own transaction (ARCHITECTURE.md, Events)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.core.ids import new_id
from carebridge.database.base import Base


class OutboxEvent(Base):
    __tablename__ = "outbox"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(64))
    catalog_version: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(default=clock.now)
    hospital_id: Mapped[uuid.UUID | None]
    region: Mapped[str | None] = mapped_column(String(12))
    actor: Mapped[str | None] = mapped_column(String(80))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]]
    published_at: Mapped[datetime | None]
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)

    __table_args__ = (
        Index("ix_outbox_unpublished", "published_at", "id"),
        Index("ix_outbox_subject", "subject_type", "subject_id"),
    )


class ConsumerReceipt(Base):
    """What a consumer has processed, so redelivery (at least once) changes nothing twice."""

    __tablename__ = "consumer_receipts"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(default=clock.now)
