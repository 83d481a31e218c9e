"""Audit records: every unmasked read of personal data, and every privileged change, leaves one.

Written in the caller's transaction, so an audit record exists exactly when the read or change happened.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from carebridge.core import clock
from carebridge.core.context import request_id_var
from carebridge.core.ids import new_id
from carebridge.database.base import Base
from carebridge.database.engine import add_row
from carebridge.database.paging import Bound, bounded, page


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
    # the patient's region, for a record attributed to no hospital (a partner app reading a patient's data):
    # the regulators of that region see it
    region: Mapped[str | None] = mapped_column(String(12))
    request_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]

    __table_args__ = (
        Index("ix_audit_subject", "subject_type", "subject_id"),
        Index("ix_audit_hospital_time", "hospital_id", "occurred_at"),  # a regulator's trail, newest first
        Index("ix_audit_region_time", "region", "occurred_at"),
    )


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
    region: str | None = None,
) -> None:
    add_row(
        session,
        AuditRecord,
        actor_user_id=actor_user_id,
        actor_role=actor_role,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        hospital_id=hospital_id,
        region=region,
        request_id=request_id_var.get(),
        detail=detail or {},
    )


async def search_records(
    session: AsyncSession,
    *,
    hospitals: Collection[uuid.UUID] | None,
    region_prefix: str | None = None,
    ids: list[uuid.UUID] | None = None,
    actions: list[str] | None = None,
    actor_user_id: uuid.UUID | None = None,
    subject: tuple[str, list[str]] | None = None,
    occurred: list[Bound] = (),  # type: ignore[assignment]
    limit: int,
    offset: int = 0,
    exact_total: bool = False,
) -> tuple[list[AuditRecord], int | None]:
    """Audit records of ``hospitals`` (None: every record, a platform admin's view), and with
    ``region_prefix`` those attributed to no hospital whose patient's region starts with it; newest first."""
    query = select(AuditRecord)
    if hospitals is not None:
        mine = AuditRecord.hospital_id.in_(hospitals)
        if region_prefix:
            mine = or_(
                mine,
                and_(AuditRecord.hospital_id.is_(None), AuditRecord.region.startswith(region_prefix, autoescape=True)),
            )
        query = query.where(mine)
    if ids is not None:
        query = query.where(AuditRecord.id.in_(ids))
    if actions:
        query = query.where(AuditRecord.action.in_(actions))
    if actor_user_id is not None:
        query = query.where(AuditRecord.actor_user_id == actor_user_id)
    if subject is not None:
        query = query.where(AuditRecord.subject_type == subject[0], AuditRecord.subject_id.in_(subject[1]))
    query = query.where(*bounded(AuditRecord.occurred_at, occurred))
    order = (AuditRecord.occurred_at.desc(), AuditRecord.id)
    rows, total = await page(session, query.order_by(*order), limit, offset, exact_total)
    return [r[0] for r in rows], total
