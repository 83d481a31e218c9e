"""The queue board, read from the ``queue_entries`` projection (fed by events, see ``events.py``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from carebridge.scheduling.models import QueueEntry, QueueState, Schedule, SlotPool

DEFAULT_MINUTES_PER_PATIENT = 6.0


@dataclass(frozen=True)
class Position:
    appointment_id: uuid.UUID
    schedule_id: uuid.UUID
    number: int | None
    state: str
    ahead: int
    now_serving: int | None
    estimated_wait_minutes: int | None
    updated_at: datetime | None


async def minutes_per_patient(session: AsyncSession, schedule_id: uuid.UUID) -> float:
    """Observed average consultation length in this session, else slot length divided by places per slot."""
    done = (
        await session.execute(
            select(QueueEntry.called_at, QueueEntry.done_at).where(
                QueueEntry.schedule_id == schedule_id,
                QueueEntry.state == QueueState.done,
                QueueEntry.called_at.is_not(None),
                QueueEntry.done_at.is_not(None),
            )
        )
    ).all()
    if done:
        return max(1.0, sum((d - c).total_seconds() for c, d in done) / len(done) / 60)
    schedule = await session.get(Schedule, schedule_id)
    places = await session.scalar(select(func.sum(SlotPool.capacity)).where(SlotPool.schedule_id == schedule_id))
    slots = await session.scalar(
        select(func.count(func.distinct(SlotPool.slot_id))).where(SlotPool.schedule_id == schedule_id)
    )
    if schedule is None or not places or not slots:
        return DEFAULT_MINUTES_PER_PATIENT
    minutes = (schedule.ends_at - schedule.starts_at).total_seconds() / 60
    return max(1.0, minutes / int(places))


async def board(session: AsyncSession, schedule_id: uuid.UUID) -> list[QueueEntry]:
    return list(
        (
            await session.scalars(
                select(QueueEntry).where(QueueEntry.schedule_id == schedule_id).order_by(QueueEntry.number)
            )
        ).all()
    )


async def position(session: AsyncSession, *, appointment_id: uuid.UUID, schedule_id: uuid.UUID) -> Position:
    entries = await board(session, schedule_id)
    mine = next((e for e in entries if e.appointment_id == appointment_id), None)
    called = [e.number for e in entries if e.state == QueueState.called]
    serving = max(called) if called else None
    if mine is None:
        return Position(appointment_id, schedule_id, None, "not_checked_in", 0, serving, None, None)
    ahead = sum(1 for e in entries if e.state == QueueState.waiting and e.number < mine.number)
    wait = None
    if mine.state == QueueState.waiting:
        in_room = 1 if called else 0
        wait = round((ahead + in_room) * await minutes_per_patient(session, schedule_id))
    updated = max((t for e in entries for t in (e.checked_in_at, e.called_at, e.done_at) if t), default=None)
    return Position(appointment_id, schedule_id, mine.number, str(mine.state), ahead, serving, wait, updated)
