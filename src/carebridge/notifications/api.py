from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from carebridge.auth.dependencies import current_principal, get_db
from carebridge.auth.principal import Principal
from carebridge.core.schemas import Input, Output
from carebridge.database.engine import Database
from carebridge.notifications import service

router = APIRouter(prefix="/api/v1", tags=["notifications"])


class NotificationOut(Output):
    id: uuid.UUID
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class MarkReadIn(Input):
    ids: list[uuid.UUID] = Field(min_length=1, max_length=200)


@router.get("/notifications", response_model=list[NotificationOut])
async def list_notifications(
    unread: bool = False,
    limit: int = Query(50, ge=1, le=200),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[NotificationOut]:
    async with db.read() as session:
        rows = await service.list_for(session, principal=principal, unread_only=unread, limit=limit)
    return [NotificationOut.model_validate(n) for n in rows]


@router.post("/notifications/read", summary="Mark notifications read")
async def mark_read(
    body: MarkReadIn, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> dict[str, int]:
    async with db.transaction() as session:
        return {"marked": await service.mark_read(session, principal=principal, notification_ids=body.ids)}
