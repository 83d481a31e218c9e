"""The webhook sender: attempts due deliveries, signed, and records each outcome (docs/openplatform.md).

Every ``webhook_interval_seconds`` it claims up to ``BATCH`` due deliveries (a conditional update that pushes
their next attempt a lease ahead, so two workers never send one delivery at once), POSTs them concurrently,
and writes the result: 2xx delivered; otherwise the next attempt after a backoff, or the dead-letter list
once the delivery is 24 hours old. A receiver that hangs costs at most ``TIMEOUT`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
import orjson
import structlog
from sqlalchemy import select, update

from carebridge.core import clock
from carebridge.core.periodic import Periodic
from carebridge.database.engine import Database
from carebridge.openplatform import webhooks
from carebridge.openplatform.models import DeliveryStatus, WebhookDelivery, WebhookSubscription

log = structlog.get_logger(__name__)
BATCH = 50
CONCURRENCY = 10
TIMEOUT = 10.0
LEASE_SECONDS = 60


async def _claim(db: Database) -> list[tuple[WebhookDelivery, WebhookSubscription]]:
    now = clock.now()
    async with db.read() as session:
        due = (
            await session.scalars(
                select(WebhookDelivery.id)
                .where(WebhookDelivery.status == DeliveryStatus.pending, WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(BATCH)
            )
        ).all()
    if not due:
        return []
    async with db.transaction() as session:
        claimed = (
            await session.scalars(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id.in_(due),
                    WebhookDelivery.status == DeliveryStatus.pending,
                    WebhookDelivery.next_attempt_at <= now,
                )
                .values(
                    next_attempt_at=now + timedelta(seconds=LEASE_SECONDS),
                    attempts=WebhookDelivery.attempts + 1,
                )
                .returning(WebhookDelivery.id)
            )
        ).all()
        if not claimed:
            return []
        rows = (
            await session.execute(
                select(WebhookDelivery, WebhookSubscription)
                .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
                .where(WebhookDelivery.id.in_(claimed))
            )
        ).all()
    return [(d, s) for d, s in rows]


async def _attempt(client: httpx.AsyncClient, delivery: WebhookDelivery, sub: WebhookSubscription) -> dict[str, Any]:
    body = orjson.dumps(delivery.payload)
    timestamp = int(clock.now().timestamp())
    headers = {
        "content-type": "application/json",
        "user-agent": "CareBridge-Webhooks/1",
        webhooks.SIGNATURE_HEADER: webhooks.sign(sub.secret, timestamp, body),
        "CareBridge-Event-Id": str(delivery.event_id),
        "CareBridge-Event-Type": delivery.event_type,
        "CareBridge-Delivery-Id": str(delivery.id),
    }
    start = time.perf_counter()
    try:
        response = await client.post(sub.url, content=body, headers=headers)
        status, error = response.status_code, None if response.is_success else f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        status, error = None, f"{type(exc).__name__}: {exc}"[:300]
    return {"status_code": status, "error": error, "ms": round((time.perf_counter() - start) * 1000, 1)}


async def _record(db: Database, delivery: WebhookDelivery, outcome: dict[str, Any]) -> str:
    now = clock.now()
    values: dict[str, Any] = {
        "last_attempt_at": now,
        "last_status_code": outcome["status_code"],
        "last_error": outcome["error"],
        "last_ms": outcome["ms"],
    }
    if outcome["error"] is None:
        values |= {"status": DeliveryStatus.delivered, "delivered_at": now, "next_attempt_at": None}
        result = "delivered"
    elif now - delivery.created_at >= webhooks.RETRY_FOR:
        values |= {"status": DeliveryStatus.dead, "next_attempt_at": None}
        result = "dead"
    else:
        values["next_attempt_at"] = now + webhooks.backoff(delivery.attempts)
        result = "retrying"
    async with db.transaction() as session:
        await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(**values))
    return result


def sender(db: Database, interval: float) -> Periodic:
    client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def step(db: Database) -> dict[str, int]:
        claimed = await _claim(db)

        async def one(delivery: WebhookDelivery, sub: WebhookSubscription) -> str:
            async with gate:
                return await _record(db, delivery, await _attempt(client, delivery, sub))

        results = await asyncio.gather(*(one(d, s) for d, s in claimed))
        return {name: results.count(name) for name in ("delivered", "retrying", "dead")}

    return Periodic(db, interval, step, "webhook_sender")
