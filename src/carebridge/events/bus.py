"""The in-process bus: the relay publishes outbox events, subscribed consumers handle them.

Each consumer handles an event in its own transaction together with a receipt row, so a redelivered event
(delivery is at least once) is skipped: consumers are idempotent by construction. A NATS JetStream bus with
the same interface is the distributed mode's (ARCHITECTURE.md, Deployment modes).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.database.engine import Database
from carebridge.events.models import ConsumerReceipt
from carebridge.events.outbox import Event

log = structlog.get_logger(__name__)

Handler = Callable[[AsyncSession, Event], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, list[Event]], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    consumer: str
    pattern: str
    handler: Handler


@dataclass(frozen=True)
class BatchSubscription:
    """A consumer that takes a whole relay batch in one transaction and is idempotent on its own (the
    supervision engine keeps every event under its id, so it needs no receipts)."""

    consumer: str
    pattern: str
    handler: BatchHandler


class MemoryBus:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.subscriptions: list[Subscription] = []
        self.batch_subscriptions: list[BatchSubscription] = []

    def subscribe(self, consumer: str, pattern: str, handler: Handler) -> None:
        self.subscriptions.append(Subscription(consumer, pattern, handler))

    def subscribe_batch(self, consumer: str, pattern: str, handler: BatchHandler) -> None:
        self.batch_subscriptions.append(BatchSubscription(consumer, pattern, handler))

    async def publish_batch(self, events: list[Event]) -> set[object]:
        """Deliver a batch to the batch consumers; returns the ids of the events some consumer failed on.

        A failing batch is retried event by event, so one bad event cannot hold back the others."""
        failed: set[object] = set()
        for sub in self.batch_subscriptions:
            matching = [e for e in events if fnmatch.fnmatchcase(e.type, sub.pattern)]
            if not matching:
                continue
            try:
                async with self.db.transaction() as session:
                    await sub.handler(session, matching)
                continue
            except Exception:
                log.exception("batch_consumer_failed", consumer=sub.consumer, events=len(matching))
            for event in matching:
                try:
                    async with self.db.transaction() as session:
                        await sub.handler(session, [event])
                except Exception:
                    log.exception("consumer_failed", consumer=sub.consumer, event_id=str(event.id), type=event.type)
                    failed.add(event.id)
        return failed

    async def publish(self, event: Event) -> None:
        """Deliver to every matching consumer; raises if any consumer failed (the relay retries)."""
        failed: list[str] = []
        for sub in self.subscriptions:
            if not fnmatch.fnmatchcase(event.type, sub.pattern):
                continue
            try:
                async with self.db.transaction() as session:
                    seen = await session.scalar(
                        select(ConsumerReceipt.event_id).where(
                            ConsumerReceipt.consumer == sub.consumer, ConsumerReceipt.event_id == event.id
                        )
                    )
                    if seen is not None:
                        continue
                    session.add(ConsumerReceipt(consumer=sub.consumer, event_id=event.id))
                    await sub.handler(session, event)
            except Exception:
                log.exception("consumer_failed", consumer=sub.consumer, event_id=str(event.id), type=event.type)
                failed.append(sub.consumer)
        if failed:
            raise RuntimeError(f"consumers failed: {', '.join(failed)}")
