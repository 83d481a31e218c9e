"""Audit records: every unmasked read of personal data, and every privileged change, leaves one.

Written in the caller's transaction, so an audit record exists exactly when the read or change happened.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.core.context import request_id_var
from carebridge.core.ids import new_id
from carebridge.database.base import Base


class AuditRecord(Base):
    __tablename__ = "audit_records"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    occurred_at: Mapped[datetime] = mapped_column(default=clock.now)
    actor_user_id: Mapped[uuid.UUID | None]
    actor_role: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(64))
    hospital_id: Mapped[uuid.UUID | None]
    request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]

    __table_args__ = (Index("ix_audit_subject", "subject_type", "subject_id"),)


def record(
    session: AsyncSession,
    *,
    action: str,
    subject_type: str,
    subject_id: uuid.UUID | str,
    actor_user_id: uuid.UUID | None,
    actor_role: str | None,
    hospital_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditRecord(
            actor_user_id=actor_user_id,
            actor_role=actor_role,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            hospital_id=hospital_id,
            request_id=request_id_var.get(),
            detail=detail or {},
        )
    )
