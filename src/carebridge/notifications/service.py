"""In-app notifications: written by event consumers, read and marked read by their owner."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.auth.principal import Principal
from carebridge.core import clock
from carebridge.notifications.models import Notification


def notify(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    kind: str,
    title: str,
    body: str,
    data: dict[str, Any],
    source_event_id: uuid.UUID | None = None,
) -> None:
    session.add(
        Notification(user_id=user_id, kind=kind, title=title, body=body, data=data, source_event_id=source_event_id)
    )


async def list_for(session: AsyncSession, *, principal: Principal, unread_only: bool, limit: int) -> list[Notification]:
    query = select(Notification).where(Notification.user_id == principal.user_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return list((await session.scalars(query.order_by(Notification.created_at.desc()).limit(limit))).all())


async def mark_read(session: AsyncSession, *, principal: Principal, notification_ids: list[uuid.UUID]) -> int:
    result = await session.execute(
        update(Notification)
        .where(
            Notification.user_id == principal.user_id,
            Notification.id.in_(notification_ids),
            Notification.read_at.is_(None),
        )
        .values(read_at=clock.now())
    )
    return int(result.rowcount or 0)
