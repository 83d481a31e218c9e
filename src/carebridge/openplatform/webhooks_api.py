"""Webhook endpoints: an app's subscriptions, its delivery log, redelivery (docs/openplatform.md, Webhooks)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query

from carebridge.auth.dependencies import current_principal, get_db
from carebridge.auth.principal import Principal
from carebridge.database.engine import Database
from carebridge.openplatform import webhooks
from carebridge.openplatform.models import DeliveryStatus
from carebridge.openplatform.schemas import DeliveryOut, SubscriptionCreated, SubscriptionIn, SubscriptionOut

router = APIRouter(prefix="/api/v1/partner-apps/{app_id}", tags=["open platform"])


@router.post("/webhooks", response_model=SubscriptionCreated, status_code=201, summary="Subscribe the app to events")
async def subscribe(
    app_id: uuid.UUID,
    body: SubscriptionIn,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> SubscriptionCreated:
    async with db.transaction() as session:
        row = await webhooks.subscribe(
            session, principal=principal, app_id=app_id, event_types=body.event_types, url=body.url
        )
        return SubscriptionCreated.model_validate(row)


@router.get("/webhooks", response_model=list[SubscriptionOut], summary="The app's webhook subscriptions")
async def subscriptions(
    app_id: uuid.UUID, principal: Principal = Depends(current_principal), db: Database = Depends(get_db)
) -> list[SubscriptionOut]:
    async with db.read() as session:
        rows = await webhooks.subscriptions(session, principal=principal, app_id=app_id)
        return [SubscriptionOut.model_validate(r) for r in rows]


@router.delete("/webhooks/{subscription_id}", status_code=204, summary="End a subscription")
async def unsubscribe(
    app_id: uuid.UUID,
    subscription_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> None:
    async with db.transaction() as session:
        await webhooks.unsubscribe(session, principal=principal, app_id=app_id, subscription_id=subscription_id)


@router.get("/webhook-deliveries", response_model=list[DeliveryOut], summary="The delivery log, newest first")
async def deliveries(
    app_id: uuid.UUID,
    status: DeliveryStatus | None = None,
    limit: int = Query(100, ge=1, le=500),
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> list[DeliveryOut]:
    async with db.read() as session:
        rows = await webhooks.deliveries(session, principal=principal, app_id=app_id, status=status, limit=limit)
        return [DeliveryOut.model_validate(r) for r in rows]


@router.post(
    "/webhook-deliveries/{delivery_id}/redeliver", response_model=DeliveryOut, summary="Send a delivery again now"
)
async def redeliver(
    app_id: uuid.UUID,
    delivery_id: uuid.UUID,
    principal: Principal = Depends(current_principal),
    db: Database = Depends(get_db),
) -> DeliveryOut:
    async with db.transaction() as session:
        return DeliveryOut.model_validate(
            await webhooks.redeliver(session, principal=principal, app_id=app_id, delivery_id=delivery_id)
        )
