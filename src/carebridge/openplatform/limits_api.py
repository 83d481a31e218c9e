"""Partner apps' limits, usage figures and alerts (docs/openplatform.md, Limits and usage)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Depends, Query, Request

from carebridge.auth.dependencies import current_principal, get_db
from carebridge.auth.models import Role
from carebridge.auth.principal import Principal
from carebridge.core import clock
from carebridge.database.engine import Database
from carebridge.openplatform import service, usage
from carebridge.openplatform.schemas import AlertOut, AppOut, LimitsIn, UsageOut, UsageRow
from carebridge.openplatform.webhooks import owned_app

router = APIRouter(prefix="/api/v1", tags=["open platform"])


@router.put("/partner-apps/{app_id}/limits", response_model=AppOut, summary="Set an app's rate limit and daily quota")
async def set_limits(
    app_id: uuid.UUID, body: LimitsIn, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> AppOut:
    async with db.transaction() as session:
        app = await service.set_limits(session, principal=principal, app_id=app_id, **body.model_dump())
        return AppOut.model_validate(app)


@router.get("/partner-apps/{app_id}/usage", response_model=UsageOut, summary="An app's calls by hour, endpoint, status")
async def app_usage(
    app_id: uuid.UUID,
    request: Request,
    days: int = Query(7, ge=1, le=90),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> UsageOut:
    settings = request.app.state.settings
    since = clock.now().date() - timedelta(days=days - 1)
    async with db.read() as session:
        app = await owned_app(session, principal, app_id)
        rows = await usage.usage(session, app_id=app.id, since=since)
    today = clock.now().date()
    rate, quota = usage.limits(settings, app.rate_limit_per_second, app.daily_quota)
    return UsageOut(
        app_id=app.id,
        since=since,
        rate_limit_per_second=rate,
        daily_quota=quota,
        calls_today=sum(r.count for r in rows if r.day == today),
        rows=[UsageRow.model_validate(r) for r in rows],
    )


@router.get("/partner-apps/{app_id}/alerts", response_model=list[AlertOut], summary="An app's open alerts")
async def app_alerts(
    app_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[AlertOut]:
    async with db.read() as session:
        app = await owned_app(session, principal, app_id)
        return [AlertOut.model_validate(a) for a in await usage.alerts(session, app_ids=[app.id])]


@router.get("/partner-app-alerts", response_model=list[AlertOut], summary="Every app's open alerts (platform admins)")
async def all_alerts(
    principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[AlertOut]:
    principal.require_role(Role.platform_admin)
    async with db.read() as session:
        return [AlertOut.model_validate(a) for a in await usage.alerts(session, app_ids=None)]
