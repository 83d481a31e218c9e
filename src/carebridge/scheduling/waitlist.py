"""The waitlist: patients waiting for a full session. A freed place is held for the first in line for
``waitlist_hold_minutes``; unanswered, it passes to the next, and finally back to the pool."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.core import clock
from carebridge.events.outbox import append_event
from carebridge.scheduling import availability
from carebridge.scheduling.models import SlotPool, WaitlistEntry, WaitlistStatus

HOLD = timedelta(minutes=15)


def configure(hold_minutes: int) -> None:
    global HOLD
    HOLD = timedelta(minutes=hold_minutes)


async def _first_waiting(session: AsyncSession, schedule_id: uuid.UUID) -> WaitlistEntry | None:
    return await session.scalar(
        select(WaitlistEntry)
        .where(WaitlistEntry.schedule_id == schedule_id, WaitlistEntry.status == WaitlistStatus.waiting)
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(1)
    )


async def _offer(session: AsyncSession, entry: WaitlistEntry, pool: SlotPool) -> None:
    entry.status = WaitlistStatus.offered
    entry.offered_pool_id = pool.id
    entry.hold_expires_at = clock.now() + HOLD
    await session.flush()
    append_event(
        session,
        "waitlist.offered",
        subject_type="waitlist_entry",
        subject_id=entry.id,
        hospital_id=entry.hospital_id,
        actor="system",
        data={
            "waitlist_entry_id": entry.id,
            "schedule_id": entry.schedule_id,
            "patient_id": entry.patient_id,
            "slot_id": pool.slot_id,
            "hold_expires_at": entry.hold_expires_at,
        },
    )


async def release_place(session: AsyncSession, *, pool_id: uuid.UUID, schedule_id: uuid.UUID) -> None:
    """Give a cancelled place back: held for the first waiting patient if there is one, else free."""
    pool = await session.get(SlotPool, pool_id)
    assert pool is not None
    entry = await _first_waiting(session, schedule_id) if pool.starts_at > clock.now() else None
    values = {"booked": SlotPool.booked - 1}
    await availability.places_freed(session, pool.slot_id, pool.channel)
    if entry is not None:
        values["held"] = SlotPool.held + 1
    await session.execute(update(SlotPool).where(SlotPool.id == pool_id).values(**values))
    if entry is not None:
        await _offer(session, entry, pool)


async def convert_hold(session: AsyncSession, *, pool_id: uuid.UUID) -> bool:
    """Turn a held place into a booked one (the offered patient accepted)."""
    result = await session.execute(
        update(SlotPool)
        .where(SlotPool.id == pool_id, SlotPool.held > 0)
        .values(held=SlotPool.held - 1, booked=SlotPool.booked + 1)
    )
    return result.rowcount == 1


async def expire_offers(session: AsyncSession, *, limit: int = 500) -> int:
    """Expire unanswered offers; pass each held place to the next in line or back to the pool."""
    now = clock.now()
    expired = (
        await session.scalars(
            select(WaitlistEntry)
            .where(WaitlistEntry.status == WaitlistStatus.offered, WaitlistEntry.hold_expires_at <= now)
            .limit(limit)
        )
    ).all()
    for entry in expired:
        result = await session.execute(
            update(WaitlistEntry)
            .where(WaitlistEntry.id == entry.id, WaitlistEntry.status == WaitlistStatus.offered)
            .values(status=WaitlistStatus.expired)
        )
        if result.rowcount != 1 or entry.offered_pool_id is None:
            continue
        pool = await session.get(SlotPool, entry.offered_pool_id)
        assert pool is not None
        nxt = await _first_waiting(session, entry.schedule_id) if pool.starts_at > now else None
        if nxt is not None:
            await _offer(session, nxt, pool)  # the place stays held, now for the next patient
        else:
            await session.execute(
                update(SlotPool).where(SlotPool.id == pool.id, SlotPool.held > 0).values(held=SlotPool.held - 1)
            )
            await availability.places_freed(session, pool.slot_id, pool.channel)
    return len(expired)
