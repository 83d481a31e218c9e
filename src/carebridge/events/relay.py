"""The outbox relay: claims unpublished events, hands them to the bus, marks them published.

Claims are leases (``claimed_until``), so several workers can relay side by side and a worker that dies
mid-batch leaves its events to be claimed again. A failing event is retried with backoff and never blocks the
events behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import structlog
from sqlalchemy import or_, select, update

from carebridge.core import clock
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
        now = clock.now()
        claimable = or_(OutboxEvent.claimed_until.is_(None), OutboxEvent.claimed_until < now)
        async with self.db.transaction() as session:
            ids = (
                await session.scalars(
                    select(OutboxEvent.id)
                    .where(OutboxEvent.published_at.is_(None), claimable)
                    .order_by(OutboxEvent.id)
                    .limit(self.batch)
                )
            ).all()
            if not ids:
                return 0
            rows = (
                await session.scalars(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_(ids), OutboxEvent.published_at.is_(None), claimable)
                    .values(claimed_until=now + LEASE)
                    .returning(OutboxEvent)
                )
            ).all()
            events = sorted((Event.from_row(r) for r in rows), key=lambda e: e.id)
        published: list = []
        batch_failed = await self.bus.publish_batch(events)
        for event in events:
            try:
                await self.bus.publish(event)
                if event.id in batch_failed:
                    raise RuntimeError("a batch consumer failed")
                published.append(event.id)
            except Exception:
                async with self.db.transaction() as session:
                    attempts = await session.scalar(select(OutboxEvent.attempts).where(OutboxEvent.id == event.id))
                    backoff = timedelta(seconds=min(300, 2 ** min(int(attempts or 0), 8)))
                    await session.execute(
                        update(OutboxEvent)
                        .where(OutboxEvent.id == event.id)
                        .values(attempts=OutboxEvent.attempts + 1, claimed_until=clock.now() + backoff)
                    )
        if published:
            async with self.db.transaction() as session:
                await session.execute(
                    update(OutboxEvent).where(OutboxEvent.id.in_(published)).values(published_at=clock.now())
                )
        return len(ids)
