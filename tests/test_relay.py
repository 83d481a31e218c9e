"""The outbox relay (events.relay) on a database of its own: every event reaches its consumer once, a failing
consumer holds back only its event (retried after a backoff), and two relays side by side never hand the same
event over twice. On PostgreSQL a batch is claimed by row locks held while it is published; on SQLite by a
lease."""

from __future__ import annotations

import asyncio

from sqlalchemy import select, update

from carebridge.config import Settings
from carebridge.core import clock
from carebridge.database.engine import Database
from carebridge.database.migrate import upgrade
from carebridge.events.bus import MemoryBus
from carebridge.events.models import OutboxEvent
from carebridge.events.outbox import Event
from carebridge.events.relay import OutboxRelay
from tests.factories import add_test_event


async def _append(db: Database, subjects: list[str]) -> None:
    async with db.transaction() as session:
        for subject in subjects:
            add_test_event(session, subject, {"subject": subject}, type="relaytest.happened")


async def _rows(db: Database) -> dict[str, OutboxEvent]:
    async with db.read() as session:
        return {r.subject_id: r for r in (await session.scalars(select(OutboxEvent))).all()}


def test_each_event_once_and_a_failing_one_retried(fresh_database_url: str) -> None:
    settings = Settings(database_url=fresh_database_url)
    upgrade(settings)

    async def run() -> tuple[list[str], dict[str, OutboxEvent], dict[str, OutboxEvent], list[str]]:
        db = Database(settings)
        try:
            seen: list[str] = []
            failing = {"s3"}

            async def handler(_session: object, event: Event) -> None:
                if event.subject_id in failing:  # down for this event until it is taken out of ``failing``
                    raise RuntimeError("consumer down")
                seen.append(event.subject_id)

            bus = MemoryBus(db)
            bus.subscribe("relay-test", "relaytest.*", handler)
            subjects = [f"s{i}" for i in range(10)]
            await _append(db, subjects)
            relays = [OutboxRelay(db, bus, batch=3), OutboxRelay(db, bus, batch=3)]
            for _ in range(4):  # two relays at once, small batches: they share the work
                await asyncio.gather(*(r.relay_once() for r in relays))
            first = await _rows(db)
            failing.clear()  # the consumer is back
            async with db.transaction() as session:  # and the backoff has passed
                await session.execute(
                    update(OutboxEvent).where(OutboxEvent.subject_id == "s3").values(claimed_until=clock.now())
                )
            while await relays[0].relay_once():
                pass
            return seen, first, await _rows(db), subjects
        finally:
            await db.dispose()

    seen, first, final, subjects = asyncio.run(run())
    held = first["s3"]  # held back, to be retried after a backoff (tried again if the rounds outlasted it)
    assert held.published_at is None and held.attempts >= 1 and held.claimed_until is not None
    assert all(first[s].published_at is not None for s in subjects if s != "s3")  # the rest went on
    assert sorted(seen) == sorted(subjects) and len(seen) == len(set(seen))  # each once, none twice
    assert all(r.published_at is not None for r in final.values()) and final["s3"].attempts == held.attempts


def test_nothing_to_relay(fresh_database_url: str) -> None:
    settings = Settings(database_url=fresh_database_url)
    upgrade(settings)

    async def run() -> int:
        db = Database(settings)
        try:
            return await OutboxRelay(db, MemoryBus(db)).relay_once()
        finally:
            await db.dispose()

    assert asyncio.run(run()) == 0
