"""The outbox relay: claims unpublished events, hands them to the bus, marks them published.

Several workers can relay side by side, and a worker that dies mid-batch leaves its events to be claimed again.
On PostgreSQL a batch is claimed by row locks held while it is published (``SKIP LOCKED``: the other relays
take the next events), and each event is written once. On SQLite, where a transaction held open would block
the consumers' writes, a claim is a lease (``claimed_until``) written before publishing. A failing event is
retried with backoff (``claimed_until``) and never blocks the events behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import bindparam, or_, select, update

from carebridge.core import clock
from carebridge.core.batching import in_list
from carebridge.database.engine import Database
from carebridge.events import outbox
from carebridge.events.bus import MemoryBus
from carebridge.events.models import OutboxEvent
from carebridge.events.outbox import Event

log = structlog.get_logger(__name__)

LEASE = timedelta(seconds=60)


class OutboxRelay:
    def __init__(self, db: Database, bus: MemoryBus, *, batch: int = 200, idle_poll: float = 1.0) -> None:
        self.db = db
        self.bus = bus
        self.batch = batch
        self.idle_poll = idle_poll
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        if self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        outbox.set_wake(self.wake)
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        outbox.set_wake(None)
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                handled = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relay_failed")
                handled = 0
            if handled < self.batch:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_poll)

    async def relay_once(self) -> int:
        """Claim and publish one batch; returns how many events were claimed."""
        if self.db.is_sqlite:
            return await self._relay_leased()
        return await self._relay_locked()

    async def _relay_locked(self) -> int:
        """PostgreSQL: the batch is claimed by row locks (``FOR NO KEY UPDATE SKIP LOCKED``: another relay takes
        the next events) held while it is published, and each event is written once, published or to be retried
        later. A relay that dies mid-batch rolls back, and its events are free at once."""
        now = clock.now()
        async with self.db.transaction() as session:
            rows = (
                await session.scalars(
                    select(OutboxEvent)
                    .where(OutboxEvent.published_at.is_(None), _claimable(now))
                    .order_by(OutboxEvent.id)
                    .limit(self.batch)
                    .with_for_update(skip_locked=True, key_share=True)
                )
            ).all()
            if not rows:
                return 0
            published, failed = await self._publish([Event.from_row(r) for r in rows])
            if published:
                await session.execute(_PUBLISHED, {"ids": published, "at": clock.now()})
            attempts = {r.id: r.attempts for r in rows}
            for event_id in failed:
                await session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id == event_id)
                    .values(attempts=OutboxEvent.attempts + 1, claimed_until=clock.now() + _backoff(attempts[event_id]))
                )
        return len(rows)

    async def _relay_leased(self) -> int:
        """SQLite (one writer at a time: a transaction held while consumers write would block them): the batch
        is claimed by a lease (``claimed_until``) in one transaction and marked published in another."""
        now = clock.now()
        async with self.db.transaction() as session:
            ids = (
                await session.scalars(
                    select(OutboxEvent.id)
                    .where(OutboxEvent.published_at.is_(None), _claimable(now))
                    .order_by(OutboxEvent.id)
                    .limit(self.batch)
                )
            ).all()
            if not ids:
                return 0
            rows = (
                await session.scalars(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_(ids), OutboxEvent.published_at.is_(None), _claimable(now))
                    .values(claimed_until=now + LEASE)
                    .returning(OutboxEvent)
                )
            ).all()
            events = sorted((Event.from_row(r) for r in rows), key=lambda e: e.id)
        published, failed = await self._publish(events)
        for event_id in failed:
            async with self.db.transaction() as session:
                attempts = await session.scalar(select(OutboxEvent.attempts).where(OutboxEvent.id == event_id))
                await session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id == event_id)
                    .values(attempts=OutboxEvent.attempts + 1, claimed_until=clock.now() + _backoff(attempts))
                )
        if published:
            async with self.db.transaction() as session:
                await session.execute(_PUBLISHED, {"ids": published, "at": clock.now()})
        return len(ids)

    async def _publish(self, events: list[Event]) -> tuple[list[Any], list[Any]]:
        """Hand the events to the bus: (the ids published, the ids some consumer failed on)."""
        published: list[Any] = []
        failed: list[Any] = []
        batch_failed = await self.bus.publish_batch(events)
        for event in events:
            try:
                await self.bus.publish(event)
                if event.id in batch_failed:
                    raise RuntimeError("a batch consumer failed")
                published.append(event.id)
            except Exception:  # noqa: BLE001 - retried later with backoff; the events behind it go on
                failed.append(event.id)
        return published, failed


def _claimable(now: datetime) -> Any:
    return or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until < now)


def _backoff(attempts: int | None) -> timedelta:
    return timedelta(seconds=min(300, 2 ** min(int(attempts or 0), 8)))


_PUBLISHED = update(OutboxEvent).where(in_list(OutboxEvent.id, "ids")).values(published_at=bindparam("at"))
